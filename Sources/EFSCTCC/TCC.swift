#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import EFSCBus
import EFSCChannel
import EFSCConsensus
import EFSCContracts
import EFSCCore
import EFSCCredentials
import EFSCIdentity
import EFSCLedger
import Foundation
import Logging
import ServiceLifecycle

/// The transaction channel controller: takes "open" events from the chain
/// (one TCC per event, by shared subscription), authenticates each party by
/// a DID challenge, checks and countersigns settlements, persists every TSC
/// before sending it, anchors evidence every N settlements (N adapting to
/// the chain's pending pool), and follows closes recorded on chain.
///
/// Work for a channel runs on one of `workers` serial queues (so a channel's
/// messages stay in order while channels proceed in parallel); issued TSCs
/// are group-committed to RocksDB by one committer queue.
public final class TCC: @unchecked Sendable {
    public let config: TCCConfig
    let bus: MQTTClient
    let chain: ChainClient
    let store: ChannelStore
    let resolver: ChainDIDResolver
    let templates: ChainTemplateStore
    let partitions: [DispatchQueue]
    let committerQ = DispatchQueue(label: "efsc.tcc.commit")
    let nonces = NonceSource()
    let log: (String) -> Void
    var timers: [DispatchSourceTimer] = []

    let lock = Lock()
    var channels: [String: ChannelBox] = [:]
    /// Settlement template reads, by "id#version" (see `template(id:version:)`).
    var templateTasks: [String: Task<Template, any Error>] = [:]
    /// Channels not closed (kept with every state change, never read from the machines).
    var openChannels = 0
    let crypto: TCCCrypto
    /// Evidence not yet on chain, per channel (a newer one replaces an older one).
    var pendingEvidence: [String: EvidenceItem] = [:]
    var evidenceInFlight = false
    var policy: EvidencePolicy
    var poolByNode: [String: Int] = [:]
    /// Keys (height, parent, transactions root) of the blocks acted on lately (bounded): a block delivered
    /// twice or late is acted on once, and no height, however large, makes
    /// the TCC ignore later blocks. What it acts on is read from chain state.
    var recentBlocks: [[UInt8]] = []
    var recentBlockSet: Set<[UInt8]> = []
    static let recentBlocksKept = WireLimits.recentBlocks
    /// Refusal log lines, at most one per reason every 10 s.
    let refusalLog = RateLimitedLog(interval: 10)
    var metricsEndpoint: MetricsEndpoint?
    let metrics = TCCMetrics()
    /// Party messages waiting for their channels' queues (all channels).
    let inbox = InboxBound(messages: WireLimits.tccQueueMessages, bytes: WireLimits.tccQueueBytes)
    /// The port of the metrics endpoint once started (nil: off).
    public var metricsPort: Int? { metricsEndpoint?.port }
    /// Channel ids of open events awaiting the chain's confirmation (queued
    /// or being confirmed), the queue, and how many confirmations run.
    var pendingOpens: Set<String> = []
    var openQueue: [OpenRequest] = []
    var openQueueHead = 0
    var confirming = 0
    static let pendingOpensLimit = WireLimits.pendingOpenEvents
    static let confirmationsInFlight = WireLimits.openConfirmationsInFlight

    /// Counters published on the TCC's status topic.
    public struct Stats: Sendable {
        public var settlements = 0
        public var admitted = 0
        public var authFailures = 0
        public var rejected = 0
        public var evidences = 0
        public var evidenceTransactions = 0
        /// Channel-control events refused because the chain did not confirm them.
        public var refusedEvents = 0
        /// Party messages refused, by the code of the error sent back (topics.md).
        public var refusals: [String: Int] = [:]
        /// Thread CPU time spent in settlement cryptography (proof hashes
        /// with their JCS canonicalization, verifications, the TCC's
        /// signature), so the overhead around it can be measured under load.
        public var cryptoMicros = 0.0
    }

    var stats = Stats()
    var commitBuffer: [(ChannelWrite, (String?) -> Void)] = []
    var commitScheduled = false

    public init(config: TCCConfig, log: @escaping (String) -> Void) throws {
        self.config = config
        self.log = log
        var mc = try config.brokerProfile.configuration(fallbackClientID: config.name)
        // A persistent session: "open" events that arrive while this TCC is
        // down wait for it at the broker.
        mc.cleanStart = false
        mc.sessionExpiry = 86_400
        mc.offlinePolicy = .queue(limit: 100_000)
        mc.reconnectDelay = (1, 5)
        mc.will = .init(topic: Topics.presence(config.name), payload: Array(#"{"client":"\#(config.name)","state":"offline"}"#.utf8))
        bus = try MQTTClient(mc)
        chain = ChainClient(bus: bus)
        resolver = ChainDIDResolver(chain: chain)
        templates = ChainTemplateStore(chain: chain)
        try FileManager.default.createDirectory(atPath: config.dataDir, withIntermediateDirectories: true)
        store = try ChannelStore(path: config.dataDir + "/tcc")
        partitions = (0..<config.workers).map { DispatchQueue(label: "efsc.tcc.worker\($0)") }
        policy = EvidencePolicy(high: config.poolHigh, low: config.poolLow)
        crypto = TCCCrypto(identity: config.identity)
    }

    var did: String { config.identity.did }

    func partition(_ id: String) -> DispatchQueue {
        var h: UInt32 = 2_166_136_261
        for b in id.utf8 { h = (h ^ UInt32(b)) &* 16_777_619 }
        return partitions[Int(h % UInt32(partitions.count))]
    }

    // MARK: lifecycle

    /// Recovers channels and pending evidence from RocksDB, connects,
    /// registers the TCC's DID if needed, and starts serving.
    public func start() async throws {
        // One channel at a time: a parsed TIC lives only until its terms are taken.
        store.forEachChannel { r, tic in
            guard let terms = try? SettlementTerms(channelId: r.channelId, tic: tic) else { return }
            channels[r.channelId] = ChannelBox(queue: partition(r.channelId), machine: ChannelMachine(terms: terms, record: r))
            if r.state != .closed { openChannels += 1 }
        }
        for e in store.pendingEvidence() { pendingEvidence[e.channelId] = e }
        // Read before connecting: once connected, a resumed session may deliver to the machines.
        let recovered = channels.values.filter { $0.machine.state != .closed }
        if let p = config.metricsPort {
            let m = metrics
            metricsEndpoint = try MetricsEndpoint(port: p) { m.text() }
            log("metrics on http://127.0.0.1:\(metricsEndpoint!.port)/metrics")
        }
        try await bus.connect()
        try await chain.register(config.identity, nonce: nonces.next())
        try await bus.publish(Topics.presence(config.name), payload: Array(#"{"client":"\#(config.name)","state":"online"}"#.utf8))
        for box in recovered {
            try await subscribe(box.id)
            loadTemplate(box)
        }
        _ = try await bus.subscribe(Topics.tccControlShared(shareGroup: config.shareGroup), qos: .atLeastOnce) { [weak self] m in self?.onControl(m) }
        _ = try await bus.subscribe(Topics.statusAll("transaction"), qos: .atMostOnce) { [weak self] m in self?.onChainStatus(m) }
        let blocks = config.node.map { Topics.blocks("transaction", node: $0) } ?? Topics.blocksAll("transaction")
        _ = try await bus.subscribe(blocks, qos: .atLeastOnce) { [weak self] m in self?.onBlock(m) }
        schedule(every: config.evidenceIntervalMillis) { [weak self] in self?.submitEvidence() }
        schedule(every: config.statusIntervalMillis) { [weak self] in self?.tickStatus() }
        log("TCC \(did) serving \(channels.count) recovered channel(s), \(pendingEvidence.count) pending evidence(s), on \(config.broker)")
    }

    public func stop() async {
        for t in timers { t.cancel() }
        timers = []
        metricsEndpoint?.stop()
        for q in partitions { q.sync {} }
        committerQ.sync {}
        try? await bus.publish(Topics.presence(config.name), payload: Array(#"{"client":"\#(config.name)","state":"offline"}"#.utf8))
        await bus.disconnect()
    }

    func schedule(every millis: Int, _ body: @escaping @Sendable () -> Void) {
        let t = DispatchSource.makeTimerSource(queue: DispatchQueue.global())
        t.schedule(deadline: .now() + .milliseconds(millis), repeating: .milliseconds(millis))
        t.setEventHandler(handler: body)
        t.resume()
        timers.append(t)
    }

    func subscribe(_ id: String) async throws {
        _ = try await bus.subscribe(Topics.channelUp(id, party: "+"), qos: .atLeastOnce) { [weak self] m in self?.onParty(m) }
    }

    /// One read of each settlement template, shared by every channel that
    /// uses it (thousands of channels opening or recovered at once would
    /// otherwise each ask the chain and each keep a copy).
    func template(id: String, version: Int) async throws -> Template {
        let key = "\(id)#\(version)"
        let task = lock.withLock { () -> Task<Template, any Error> in
            if let t = templateTasks[key] { return t }
            let t = Task { [templates] in try await templates.template(id: id, version: version) }
            templateTasks[key] = t
            return t
        }
        do { return try await task.value } catch {
            // A failed read is tried again by the next channel that needs it.
            lock.withLock { if templateTasks[key] == task { templateTasks[key] = nil } }
            throw error
        }
    }

    func loadTemplate(_ box: ChannelBox) {
        let (id, version) = box.template
        Task {
            do {
                let t = try await template(id: id, version: version)
                deliver(box, .template(t))
            } catch {
                log("channel \(box.id): settlement template \(id) v\(version) unavailable: \(error)")
            }
        }
    }

    // MARK: persistence (group commit)

    /// Queues a channel's write for the next group commit; `then` runs
    /// once it is durable (nil) or failed (the reason).
    func enqueueCommit(_ item: ChannelWrite, then: @escaping (String?) -> Void) {
        let schedule = lock.withLock { () -> Bool in
            commitBuffer.append((item, then))
            defer { commitScheduled = true }
            return !commitScheduled
        }
        guard schedule else { return }
        committerQ.async {
            let batch = self.lock.withLock { () -> [(ChannelWrite, (String?) -> Void)] in
                defer {
                    self.commitBuffer = []
                    self.commitScheduled = false
                }
                return self.commitBuffer
            }
            do {
                try self.store.commit(batch.map(\.0))
            } catch {
                // Nothing of it happened: each channel hears so and nothing advanced.
                self.log("cannot persist \(batch.count) channel write(s): \(error)")
                for (_, then) in batch { then("\(error)") }
                return
            }
            for (_, then) in batch { then(nil) }
        }
    }

    // MARK: evidence

    func submitEvidence() {
        let items = lock.withLock { () -> [EvidenceItem]? in
            guard !evidenceInFlight, !pendingEvidence.isEmpty else { return nil }
            evidenceInFlight = true
            return Array(pendingEvidence.values.prefix(config.evidenceBatchMax))
        }
        guard var items else { return }
        Task {
            defer { self.lock.withLock { self.evidenceInFlight = false } }
            while !items.isEmpty {
                // Columns: a node parses three values rather than an object per evidence.
                let args = EvidenceBatch.args(items.map { ($0.channelId, $0.sequence, $0.tscHash) })
                do {
                    let tx = try ChainTransaction.make(
                        group: "transaction", sender: did, nonce: nonces.next(), op: "evidence.submit", args: args, key: config.identity.key,
                        method: config.identity.verificationMethod)
                    let r = try await chain.submit(tx)
                    if r["status"]?.stringValue == "committed" {
                        await removeEvidence(items, count: true)
                        return
                    }
                    let e = r["error"]?.stringValue ?? ""
                    // "item i: stale sequence …": already superseded on chain; drop it and resubmit the rest.
                    if e.hasPrefix("item "), e.contains("stale sequence"), let i = Int(e.dropFirst(5).prefix { $0.isNumber }), i < items.count {
                        await removeEvidence([items[i]], count: false)
                        items.remove(at: i)
                        continue
                    }
                    if items.count == 1, e.contains("stale sequence") {
                        await removeEvidence(items, count: false)
                        return
                    }
                    log("evidence batch of \(items.count) rejected: \(e); will retry")
                    return
                } catch {
                    log("evidence submission failed: \(error); will retry")
                    return
                }
            }
        }
    }

    /// Forgets evidence that is on chain, unless a newer one replaced it meanwhile.
    func removeEvidence(_ items: [EvidenceItem], count: Bool) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            committerQ.async {
                let done = self.lock.withLock { () -> [String] in
                    var out: [String] = []
                    for i in items where self.pendingEvidence[i.channelId] == i {
                        self.pendingEvidence[i.channelId] = nil
                        out.append(i.channelId)
                    }
                    if count {
                        self.stats.evidences += items.count
                        self.stats.evidenceTransactions += 1
                    }
                    return out
                }
                do { try self.store.removeEvidence(done) } catch { self.log("cannot clear submitted evidence: \(error)") }
                c.resume()
            }
        }
    }

    func closeCooperatively(_ id: String, tsc: JSONObject) {
        Task {
            for attempt in 1...5 {
                do {
                    let tx = try ChainTransaction.make(
                        group: "transaction", sender: did, nonce: nonces.next(), op: "channel.close",
                        args: ["channelId": .string(id), "kind": "cooperative", "tsc": .object(tsc)], key: config.identity.key,
                        method: config.identity.verificationMethod)
                    try await chain.submitCommitted(tx)
                    refreshFromChain(id)
                    return
                } catch {
                    log("cooperative close of \(id), attempt \(attempt): \(error)")
                    try? await Task.sleep(nanoseconds: 1_000_000_000)
                }
            }
        }
    }

    // MARK: status

    public var snapshot: JSON {
        var (s, f, pe, n) = lock.withLock { (stats, policy.factor, pendingEvidence.count, openChannels) }
        s.cryptoMicros = crypto.cryptoMicros
        return [
            "tcc": .string(did), "name": .string(config.name), "openChannels": .number(Double(n)), "settlements": .number(Double(s.settlements)),
            "admitted": .number(Double(s.admitted)), "authFailures": .number(Double(s.authFailures)), "rejected": .number(Double(s.rejected)),
            "evidences": .number(Double(s.evidences)), "evidenceTransactions": .number(Double(s.evidenceTransactions)), "refusedEvents": .number(Double(s.refusedEvents)),
            "refusals": .object(JSONObject(s.refusals.sorted { $0.key < $1.key }.map { ($0.key, JSON.number(Double($0.value))) })),
            "pendingEvidence": .number(Double(pe)), "evidenceFactor": .number(Double(f)), "cryptoMicros": .number(s.cryptoMicros.rounded()),
            "time": .string(DateTime.now()),
        ]
    }

    func tickStatus() {
        let (open, pending) = lock.withLock { (openChannels, pendingEvidence.count) }
        metrics.openChannels.set(Double(open))
        metrics.pendingEvidence.set(Double(pending))
        lock.withLock {
            let pool = poolByNode.values.max() ?? 0
            if policy.observe(pool: pool) { log("chain pending pool \(pool): evidence factor now \(policy.factor)") }
        }
        let payload = (try? JCS.canonicalize(snapshot)) ?? []
        try? bus.publishNow(Topics.tccStatus(config.name), payload: payload, retain: true, properties: .init(contentType: "application/json"))
    }
}

/// A TCC is a service: it starts, serves until the service group asks for a
/// graceful shutdown (SIGTERM/SIGINT), then stops its timers, lets its
/// queues and the committer drain, and disconnects.
extension TCC: Service {
    public func run() async throws {
        try await start()
        try? await gracefulShutdown()
        await stop()
    }
}

extension TCC {
    /// A TCC logging through swift-log.
    public convenience init(config: TCCConfig, logger: Logger) throws {
        try self.init(config: config) { line in logger.notice("\(line)") }
    }
}
