import EFSCCore
import Foundation
import Prometheus

/// A node's Prometheus metrics (per group): height, view, pending-pool
/// length, commit latency, consensus messages in and out.
public final class NodeMetrics: @unchecked Sendable {
    public let registry = PrometheusCollectorRegistry()
    struct Group {
        let height: Gauge
        let view: Gauge
        let pool: Gauge
        let messagesIn: Counter
        let messagesOut: Counter
        let transactions: Counter
        let commitLatency: ValueHistogram
    }
    private var groups: [String: Group] = [:]
    private let lock = Lock()

    public init() {}

    func group(_ g: String) -> Group {
        lock.withLock {
            if let x = groups[g] { return x }
            let l = [("group", g)]
            let x = Group(
                height: registry.makeGauge(name: "efsc_chain_height", labels: l, help: "Height of the last committed block"),
                view: registry.makeGauge(name: "efsc_pbft_view", labels: l, help: "Current PBFT view"),
                pool: registry.makeGauge(name: "efsc_pending_pool", labels: l, help: "Transactions waiting for a block"),
                messagesIn: registry.makeCounter(name: "efsc_consensus_messages_in_total", labels: l, help: "Consensus messages received"),
                messagesOut: registry.makeCounter(name: "efsc_consensus_messages_out_total", labels: l, help: "Consensus messages sent"),
                transactions: registry.makeCounter(name: "efsc_committed_transactions_total", labels: l, help: "Transactions committed"),
                commitLatency: registry.makeValueHistogram(
                    name: "efsc_commit_latency_seconds", labels: l, buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
                    help: "Seconds from a block's proposal timestamp to its commit here"))
            groups[g] = x
            return x
        }
    }

    public func text() -> String { registry.emitToString() }
}

