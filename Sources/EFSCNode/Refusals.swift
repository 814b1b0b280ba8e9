import EFSCConsensus
import EFSCCore
import Foundation
import Prometheus

/// Input refused from the network, counted by reason
/// (`efsc_refusals_total{group, reason}`) and logged at most once per reason
/// every `logInterval` seconds (with how many were not logged), so a flood
/// cannot fill the disk. Reasons are a fixed vocabulary (topics.md
/// "Refusals"), never text from the input.
public final class Refusals: @unchecked Sendable {
    public enum Reason: String, Sendable, CaseIterable {
        case malformed  // not JSON, not an object, or a binary frame that does not decode
        case tooLarge = "too-large"  // over a WireLimits size
        case wrongGroup = "wrong-group"
        case badEnvelope = "bad-envelope"  // sender, nonce, op
        case badSignature = "bad-signature"
        case unknownSender = "unknown-sender"
        case poolFull = "pool-full"
        case senderQuota = "sender-quota"
        case badQuery = "bad-query"
        case badSync = "bad-sync"
        case overloaded  // the group's inbound queue is full
        // Consensus messages and proposed blocks (PBFTRejection).
        case outOfRange = "out-of-range"
        case oversized
        case badCertificate = "bad-certificate"
        case badNewView = "bad-new-view"
        case badProposal = "bad-proposal"
        case equivocation
        case replayed

        /// A consensus refusal counts under the reason of the same name
        /// (every `PBFTRejection` has one; `HostileConsensusTests` checks).
        init(_ r: PBFTRejection) { self = Self(rawValue: r.rawValue) ?? .malformed }
    }

    let group: String
    let registry: PrometheusCollectorRegistry
    let log: (String) -> Void
    let limiter: RateLimitedLog
    private let lock = Lock()
    private var counters: [Reason: Counter] = [:]
    private var counts: [Reason: Int] = [:]

    init(group: String, registry: PrometheusCollectorRegistry, logInterval: Double = 10, log: @escaping (String) -> Void) {
        self.group = group
        self.registry = registry
        self.limiter = RateLimitedLog(interval: logInterval)
        self.log = log
    }

    /// Counts one refusal; logs `detail` unless this reason was logged within the interval.
    func refuse(_ reason: Reason, _ detail: @autoclosure () -> String) {
        let counter: Counter = lock.withLock {
            let c = counters[reason] ?? registry.makeCounter(
                name: "efsc_refusals_total", labels: [("group", group), ("reason", reason.rawValue)], help: "Input refused from the network, by reason")
            counters[reason] = c
            counts[reason, default: 0] += 1
            return c
        }
        counter.increment()
        if let line = limiter.line(reason.rawValue, { "\(group): refused (\(reason.rawValue)): \(detail())" }) { log(line) }
    }

    /// Refusals so far by reason (what the metrics endpoint also shows).
    public var byReason: [String: Int] { lock.withLock { Dictionary(uniqueKeysWithValues: counts.map { ($0.key.rawValue, $0.value) }) } }
}
