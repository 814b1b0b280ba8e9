import EFSCBus
import EFSCChannel
import EFSCCore
import EFSCCredentials
import EFSCIdentity
import EFSCSDK
import Foundation

/// The parties' side of `bench channels --presigned`: every provider
/// proposal and consumer countersignature is made before the timed window
/// (they do not depend on the TCC's answers: the parties' proofs form a
/// proof set), so during it the parties only publish prepared bytes. The
/// consumer answers each forwarded proposal with its prepared
/// countersignature; the provider times each settlement from its proposal
/// to the TSC coming back. At most one settlement per channel is
/// outstanding.
final class PresignedLoad: @unchecked Sendable {
    struct Channel {
        let id: String
        let terms: SettlementTerms
        let tcc: String
        /// Prepared (propose, countersign) payloads; index k is sequence `first + k`.
        var prepared: [(propose: [UInt8], countersign: [UInt8])] = []
        var first = 1
        var next = 1
        /// The sequence outstanding and when its proposal went out.
        var outstanding: (seq: Int, sent: Double)?
    }

    let provider: PartyIdentity
    let consumer: PartyIdentity
    let providerBus: MQTTClient
    let consumerBus: MQTTClient
    let firstStart: Double
    let usage: Double
    private let lock = Lock()
    private var channels: [Channel]
    private var index: [String: Int] = [:]
    /// Latencies (ms) of settlements completed since the last `take`.
    private var latencies: [Double] = []
    private var errors = 0
    private var firstError: String?
    /// Closed loop: a completed settlement sends the channel's next at once.
    private var closedLoopUntil: Double = 0

    static let tscSuffix = Array(#""type":"tsc"}"#.utf8)
    static let proposeSuffix = Array(#""type":"propose"}"#.utf8)
    static let errorSuffix = Array(#""type":"error"}"#.utf8)

    init(provider: PartyIdentity, consumer: PartyIdentity, providerBus: MQTTClient, consumerBus: MQTTClient, channels: [(String, SettlementTerms, String)], firstStart: Double, usage: Double) {
        self.provider = provider
        self.consumer = consumer
        self.providerBus = providerBus
        self.consumerBus = consumerBus
        self.firstStart = firstStart
        self.usage = usage
        self.channels = channels.map { Channel(id: $0.0, terms: $0.1, tcc: $0.2) }
        for (i, c) in self.channels.enumerated() { index[c.id] = i }
    }

    var count: Int { channels.count }

    /// Subscribes both parties' down topics of every channel.
    func attach() async throws {
        for c in lock.withLock({ channels }) {
            let id = c.id
            _ = try await consumerBus.subscribe(Topics.channelDown(id, party: PartyName.of(consumer.did)), qos: .atLeastOnce) { [weak self] m in self?.onConsumer(id, m.payload) }
            _ = try await providerBus.subscribe(Topics.channelDown(id, party: PartyName.of(provider.did)), qos: .atLeastOnce) { [weak self] m in self?.onProvider(id, m.payload) }
        }
    }

    /// Prepares `perChannel` more settlements on every channel (both parties' signatures), on all cores.
    func prepare(perChannel: Int, template: Template) async throws {
        let snapshot = lock.withLock { channels.map { ($0.id, $0.terms, $0.tcc, $0.first + $0.prepared.count) } }
        let lanes = max(1, ProcessInfo.processInfo.activeProcessorCount)
        let made = try await withThrowingTaskGroup(of: [(Int, [(propose: [UInt8], countersign: [UInt8])])].self) { g in
            for lane in 0..<lanes {
                g.addTask { [self] in
                    var out: [(Int, [(propose: [UInt8], countersign: [UInt8])])] = []
                    for (i, c) in snapshot.enumerated() where i % lanes == lane {
                        var list: [(propose: [UInt8], countersign: [UInt8])] = []
                        for seq in c.3..<(c.3 + perChannel) { list.append(try self.sign(channel: c.0, terms: c.1, tcc: c.2, seq: seq, template: template)) }
                        out.append((i, list))
                    }
                    return out
                }
            }
            var all: [(Int, [(propose: [UInt8], countersign: [UInt8])])] = []
            for try await part in g { all += part }
            return all
        }
        lock.withLock {
            for (i, list) in made { channels[i].prepared += list }
        }
    }

    func sign(channel: String, terms: SettlementTerms, tcc: String, seq: Int, template: Template) throws -> (propose: [UInt8], countersign: [UInt8]) {
        let claim = terms.claim(sequence: seq, start: firstStart + Double((seq - 1) * terms.period), usage: usage)
        let vc = try TSC.propose(claim: .object(claim), template: template, tccDID: tcc, providerKey: provider.key, providerMethod: provider.verificationMethod)
        let joint = try vc.signed(with: consumer.key, options: .init(verificationMethod: consumer.verificationMethod, id: TSC.consumerProofID))
        let p = ChannelMessage(.propose, channel: channel, ["sequence": .number(Double(seq)), "credential": .object(vc.json)]).bytes
        let c = ChannelMessage(.countersign, channel: channel, ["sequence": .number(Double(seq)), "credential": .object(joint.json)]).bytes
        return (p, c)
    }

    static func hasSuffix(_ b: [UInt8], _ s: [UInt8]) -> Bool { b.count >= s.count && b.suffix(s.count).elementsEqual(s) }

    func onConsumer(_ id: String, _ payload: [UInt8]) {
        guard Self.hasSuffix(payload, Self.proposeSuffix) else { return }
        let bytes = lock.withLock { () -> [UInt8]? in
            guard let i = index[id], let o = channels[i].outstanding else { return nil }
            let k = o.seq - channels[i].first
            return k >= 0 && k < channels[i].prepared.count ? channels[i].prepared[k].countersign : nil
        }
        guard let bytes else { return }
        publish(consumerBus, Topics.channelUp(id, party: PartyName.of(consumer.did)), bytes)
    }

    func onProvider(_ id: String, _ payload: [UInt8]) {
        if Self.hasSuffix(payload, Self.errorSuffix) {
            lock.withLock {
                errors += 1
                if firstError == nil { firstError = String(decoding: payload.prefix(300), as: UTF8.self) }
            }
            return
        }
        guard Self.hasSuffix(payload, Self.tscSuffix) else { return }
        let now = DateTime.currentTime()
        let again = lock.withLock { () -> Bool in
            guard let i = index[id], let o = channels[i].outstanding else { return false }
            channels[i].outstanding = nil
            latencies.append((now - o.sent) * 1000)
            return now < closedLoopUntil
        }
        if again { _ = send(id) }
    }

    func publish(_ bus: MQTTClient, _ topic: String, _ bytes: [UInt8]) {
        do { try bus.publishNow(topic, payload: bytes, qos: .atLeastOnce) } catch {
            lock.withLock {
                errors += 1
                if firstError == nil { firstError = "\(error)" }
            }
        }
    }

    /// Sends the channel's next prepared proposal if none is outstanding and one is left.
    @discardableResult
    func send(_ id: String) -> Bool {
        let bytes = lock.withLock { () -> [UInt8]? in
            guard let i = index[id], channels[i].outstanding == nil else { return nil }
            let k = channels[i].next - channels[i].first
            guard k >= 0 && k < channels[i].prepared.count else { return nil }
            channels[i].outstanding = (channels[i].next, DateTime.currentTime())
            channels[i].next += 1
            return channels[i].prepared[k].propose
        }
        guard let bytes else { return false }
        publish(providerBus, Topics.channelUp(id, party: PartyName.of(provider.did)), bytes)
        return true
    }

    /// What a phase produced.
    struct Phase {
        var completed: Int
        var seconds: Double
        var latencies: [Double]
        var skipped: Int
        var perSecond: Double { seconds > 0 ? Double(completed) / seconds : 0 }
        func percentile(_ q: Double) -> Double {
            let s = latencies.sorted()
            return s.isEmpty ? 0 : (s[min(s.count - 1, Int(Double(s.count) * q))] * 10).rounded() / 10
        }
    }

    /// Frees the prepared payloads already sent.
    func trim() {
        lock.withLock {
            for i in channels.indices {
                let keep = channels[i].outstanding?.seq ?? channels[i].next
                let used = max(0, min(keep - channels[i].first, channels[i].prepared.count))
                channels[i].prepared.removeFirst(used)
                channels[i].first += used
            }
        }
    }

    func takeLatencies() -> [Double] {
        lock.withLock {
            defer { latencies = [] }
            return latencies
        }
    }

    var errorSummary: (count: Int, first: String?) { lock.withLock { (errors, firstError) } }
    var outstanding: Int { lock.withLock { channels.filter { $0.outstanding != nil }.count } }
    /// Prepared settlements not sent yet, the fewest of any channel.
    var leastLeft: Int { lock.withLock { channels.map { $0.first + $0.prepared.count - $0.next }.min() ?? 0 } }

    /// Every channel keeps one settlement outstanding for `seconds`: the saturated rate.
    func closedLoop(seconds: Double) async -> Phase {
        _ = takeLatencies()
        let t0 = DateTime.currentTime()
        lock.withLock { closedLoopUntil = t0 + seconds }
        for id in lock.withLock({ channels.map(\.id) }) { send(id) }
        while DateTime.currentTime() < t0 + seconds { try? await Task.sleep(nanoseconds: 20_000_000) }
        let l = takeLatencies()
        return Phase(completed: l.count, seconds: DateTime.currentTime() - t0, latencies: l, skipped: 0)
    }

    /// `rate` settlements per second spread over the channels round robin for
    /// `seconds`; a slot whose channel is still outstanding is skipped (counted).
    func openLoop(rate: Double, seconds: Double) async -> Phase {
        _ = takeLatencies()
        lock.withLock { closedLoopUntil = 0 }
        let ids = lock.withLock { channels.map(\.id) }
        let t0 = DateTime.currentTime()
        var slot = 0
        var skipped = 0
        while true {
            let now = DateTime.currentTime()
            if now >= t0 + seconds { break }
            let due = Int((now - t0) * rate)
            while slot <= due {
                if !send(ids[slot % ids.count]) { skipped += 1 }
                slot += 1
            }
            try? await Task.sleep(nanoseconds: 1_000_000)
        }
        let l = takeLatencies()
        return Phase(completed: l.count, seconds: DateTime.currentTime() - t0, latencies: l, skipped: skipped)
    }

    /// Waits (at most `timeout` s) until nothing is outstanding; what still is.
    func drain(timeout: Double) async -> Int {
        let deadline = DateTime.currentTime() + timeout
        while outstanding > 0 && DateTime.currentTime() < deadline { try? await Task.sleep(nanoseconds: 20_000_000) }
        _ = takeLatencies()
        return outstanding
    }
}
