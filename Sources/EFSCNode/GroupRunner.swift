import Dispatch
import Foundation
import EFSCBus
import EFSCConsensus
import EFSCContracts
import EFSCCore
import EFSCCredentials
import EFSCIdentity
import EFSCLedger

/// Runs one chain group on a node: feeds the pure PBFT replica with bus
/// messages and clock ticks on a serial queue, and carries out its actions
/// (persist to RocksDB, publish on the bus, execute and commit blocks).
/// Bus handlers only enqueue work, so the MQTT network thread never waits.
public final class GroupRunner: @unchecked Sendable {
    public let group: String
    let config: NodeConfig
    let client: MQTTClient
    public let ledger: Ledger
    let consensusStore: ConsensusStore
    let contracts: Contracts
    let q: DispatchQueue
    var replica: PBFTReplica
    var timer: DispatchSourceTimer?

    struct Pending {
        let tx: ChainTransaction
        let bytes: [UInt8]
        let hash: [UInt8]
        /// When this node received it (seconds), for the unknown-sender hold.
        let arrived: Double
        /// The key its signature verified with at admission (nil while its sender is unknown).
        var signer: Contracts.SignerKey?
        /// The request to answer with its receipt, if it asked for one.
        var request: MQTTMessage?
    }

    /// Admitted transactions (signature verified), in arrival order.
    var pool: [Pending] = []
    var poolIndex: [[UInt8]: Int] = [:]
    /// Canonical bytes in the pool, and pooled transactions per sender.
    var poolBytes = 0
    var poolBySender: [String: Int] = [:]
    /// Transactions whose sender's DID this node does not know yet (its
    /// registration may still be on its way here): not in the pool, bounded,
    /// admitted once the DID is known or refused after `unknownSenderHoldSeconds`.
    var waiting: [Pending] = []
    var waitingBytes = 0
    var lastWaitingReview = 0.0
    static let waitingLimit = WireLimits.unknownSenderWaiting
    static let waitingByteLimit = WireLimits.unknownSenderWaitingBytes
    let refusals: Refusals
    /// Called when the group can no longer keep a safety invariant (a persist
    /// or a commit failed): the default logs one line and exits the process
    /// with status 70. Nothing is sent or served after it.
    var onFatal: (String) -> Void
    /// Writes the replica's durable state (the consensus store; tests inject failures).
    var persist: (PBFTDurableState) throws -> Void = { _ in }
    /// Consensus messages handed to the bus (broadcasts and direct sends).
    var consensusSent = 0
    /// Messages waiting for the group's queue, bounded in count and bytes:
    /// past the bound a message is dropped (consensus retransmits; a request
    /// is told the node is overloaded) instead of growing memory without end.
    let inbox = InboxBound(messages: WireLimits.groupQueueMessages, bytes: WireLimits.groupQueueBytes)
    var replies: [[UInt8]: MQTTMessage] = [:]
    var lastProposal = 0.0
    /// Identity-group height the transactions being executed read DIDs and
    /// templates at (the block's anchor), so every node executes alike.
    public internal(set) var executionAnchor: UInt64 = 0
    /// The identity group's committed height on this node (nil: not run here).
    var identityHeight: () -> UInt64? = { nil }
    /// Committed blocks waiting for the identity group to reach their anchor.
    var deferred: [(committed: CommittedBlock, block: Block?)] = []
    /// DID histories read from this group's state, valid for one height.
    let historyCache = Guarded<(height: UInt64, entries: [String: DIDHistory?])>((0, [:]))
    var lastStatus = 0.0
    public private(set) var log: (String) -> Void
    /// The anchor of the last committed block (a null block keeps its
    /// parent's): a proposal's anchor may not go below it.
    var lastAnchor: UInt64 = 0
    /// The last proposal whose block passed the checks that need no state
    /// (`checkedBlock`), so a held one is not decoded again every tick.
    var checkedProposal: (digest: [UInt8], seq: UInt64, view: UInt64, block: Block)?

    let metrics: NodeMetrics.Group

    init(
        group: String, config: NodeConfig, client: MQTTClient, metrics: NodeMetrics, resolveDID: @escaping (String) -> DIDHistory?,
        resolveTemplate: @escaping (String, Int) -> Template?, log: @escaping (String) -> Void
    ) throws {
        self.group = group
        self.metrics = metrics.group(group)
        self.config = config
        self.client = client
        self.log = log
        refusals = Refusals(group: group, registry: metrics.registry, log: log)
        onFatal = { line in
            log("FATAL: \(line); stopping the node (exit 70) rather than serve state it cannot keep")
            exit(70)
        }
        ledger = try Ledger(path: "\(config.dataDir)/\(group)", group: group)
        contracts = Contracts(group: group, tccs: Set(config.tccs), resolveDID: resolveDID, resolveTemplate: resolveTemplate)
        q = DispatchQueue(label: "efsc.group.\(group)")
        var pc = PBFTConfig(group: group, n: config.members.count)
        pc.viewChangeTimeout = config.viewChangeTimeoutTicks
        pc.checkpointInterval = UInt64(config.checkpointInterval)
        pc.retransmitInterval = max(5, config.viewChangeTimeoutTicks / 8)
        consensusStore = ConsensusStore(ledger: ledger)
        let store = consensusStore
        persist = { try store.save($0) }
        var durable = try consensusStore.load()
        // The ledger is the truth for what was executed (it is committed before
        // the replica's state is persisted again).
        if durable.lastExec < ledger.height {
            durable.lastExec = ledger.height
            durable.lastExecDigest = ledger.lastHash
            // Its commit certificate, as the block stores it (a view-change carries it).
            let l = ledger
            if let b = try l.block(at: l.height) {
                let m = PBFTMessage.commit(view: b.certificateView, seq: b.header.height, digest: l.lastHash)
                durable.lastExecCert = b.certificate.map { SignedMessage(sender: $0.replica, message: m, signature: $0.signature) }
            }
        }
        replica = PBFTReplica(
            config: pc, me: config.index, authenticator: Ed25519Authenticator(secret: config.secretKey, members: config.members.map(\.publicKey)),
            durable: durable)
        lastAnchor = try ledger.block(at: ledger.height)?.header.anchor ?? 0
        // Proposed blocks are judged on this group's queue, against the ledger.
        replica.validate = { [unowned self] proposal in self.judge(proposal) }
    }

    var memberID: String { config.nodeId }

    /// A runner of `group` over a ledger in `dataDir` with fresh keys and no
    /// broker (publishes queue offline): for tools and fuzzing that feed it
    /// network input directly.
    /// `adjust` may change the configuration (pool limits, …) before it is read.
    /// `keys` are the members' node keys (fresh ones if nil) and `index` is this runner's.
    public static func offline(
        group: String, dataDir: String, keys given: [Ed25519SecretKey]? = nil, index: Int = 0, adjust: (inout JSONObject) -> Void = { _ in }
    ) throws -> GroupRunner {
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        let keys = given ?? (0..<4).map { _ in Ed25519SecretKey() }
        var json: JSONObject = [
            "network": "devnet", "nodeId": .string("node\(index + 1)"), "index": .number(Double(index)), "secretKeyMultibase": .string(keys[index].multibase),
            "members": .array(keys.enumerated().map { ["id": .string("node\($0.offset + 1)"), "publicKeyMultibase": .string($0.element.publicKey.multibase)] }),
            "broker": "mqtt://127.0.0.1:1", "dataDir": .string(dataDir),
        ]
        adjust(&json)
        let cfg = try NodeConfig(json: .object(json))
        var mc = try MQTTConfiguration(url: cfg.broker, clientID: "offline-\(Hex.encode(Digest.randomBytes(4)))")
        mc.offlinePolicy = .queue(limit: 1000)
        return try GroupRunner(group: group, config: cfg, client: try MQTTClient(mc), metrics: NodeMetrics(), resolveDID: { _ in nil }, resolveTemplate: { _, _ in nil }, log: { _ in })
    }

    /// Feeds one message as if it arrived on `topic` (transactions, queries,
    /// sync requests, consensus), and waits until the runner handled it.
    public func receive(topic: String, payload: [UInt8]) {
        let m = MQTTMessage(topic: topic, payload: payload, qos: .atLeastOnce, properties: MQTTProperties(responseTopic: Topics.reply(clientID: "fuzz"), correlationData: [1]))
        switch topic.split(separator: "/").dropFirst(2).first {
        case "query": onQuery(m)
        case "chain":
            if topic.hasSuffix("/tx") { onTransaction(m) } else if topic.contains("/sync/") { onSyncRequest(m) } else { onConsensus(m) }
        default: return
        }
        q.sync {}
    }

    /// Largest block body a proposer packs (bytes).
    public static let maxBlockBytes = 700_000
    /// Longest a transaction from a not-yet-visible DID waits (outside the
    /// pool) before it is refused as coming from an unknown DID.
    static let unknownSenderHoldSeconds = WireLimits.unknownSenderHoldSeconds

    // MARK: start / stop

    func start() async throws {
        try await client.subscribe(Topics.pbftAll(group), qos: .atMostOnce, noLocal: true) { [weak self] m in self?.onConsensus(m) }
        try await client.subscribe(Topics.direct(group, to: memberID), qos: .atMostOnce) { [weak self] m in self?.onConsensus(m) }
        try await client.subscribe(Topics.tx(group), qos: .atLeastOnce) { [weak self] m in self?.onTransaction(m) }
        try await client.subscribe(Topics.sync(group, node: memberID), qos: .atLeastOnce) { [weak self] m in self?.onSyncRequest(m) }
        try await client.subscribe(Topics.queryShared(group), qos: .atLeastOnce) { [weak self] m in self?.onQuery(m) }
        try await client.subscribe(Topics.queryForNode(group, node: memberID), qos: .atLeastOnce) { [weak self] m in self?.onQuery(m) }
        let t = DispatchSource.makeTimerSource(queue: q)
        t.schedule(deadline: .now(), repeating: .milliseconds(config.tickMillis))
        t.setEventHandler { [weak self] in self?.onTick() }
        timer = t
        t.resume()
        q.async { self.publishStatus(force: true) }
    }

    /// Stops ticking and writes the ledger's memtables to table files, so a
    /// clean stop leaves no WAL to replay (and the data directory at its
    /// compressed size).
    func stop() {
        q.sync {
            timer?.cancel()
            timer = nil
            do { try ledger.flush() } catch { log("\(group): flush on stop failed: \(error)") }
        }
    }

    // MARK: inputs (network thread → queue)

    func onConsensus(_ m: MQTTMessage) {
        onQueue(m) {
            guard let (g, sm) = try? PBFTCodec.decode(m.payload), g == self.group else {
                self.refusals.refuse(.malformed, "consensus message on \(m.topic) does not decode")
                return
            }
            guard sm.sender != self.config.index else { return }
            self.metrics.messagesIn.increment()
            self.apply(self.replica.step(.message(sm)))
        }
    }

    func onTick() {
        if !deferred.isEmpty { drainDeferred() }
        reviewWaiting(now: DateTime.currentTime())
        apply(replica.step(.pendingWork(!pool.isEmpty)))
        apply(replica.step(.tick))
        maybePropose()
        publishStatus(force: false)
    }

    // MARK: proposing

    func maybePropose() {
        guard replica.canPropose, !pool.isEmpty, deferred.isEmpty, ledger.height == replica.lastExecuted else { return }
        let now = DateTime.currentTime()
        guard (now - lastProposal) * 1000 >= Double(config.minBlockIntervalMillis) else { return }
        lastProposal = now
        // At most M transactions, and at most 700 KB so the pre-prepare fits
        // the broker's 1 MiB packet limit.
        let anchor = group == "identity" ? 0 : (identityHeight() ?? 0)
        // Only admitted transactions are pooled (signature checked; senders
        // this node did not know yet wait outside the pool).
        var take: [Pending] = []
        var bytes = 0
        for p in pool {
            if take.count >= config.maxTransactionsPerBlock { break }
            if !take.isEmpty && bytes + p.bytes.count + 4 > Self.maxBlockBytes { break }
            take.append(p)
            bytes += p.bytes.count + 4
        }
        guard !take.isEmpty else { return }
        let txs = take.map(\.bytes)
        // The block names the state it executes on; every replica (this one
        // too) executes it once it is committed.
        let header = BlockHeader(
            group: group, height: ledger.height + 1, parentHash: ledger.lastHash, stateRoot: ledger.stateRoot,
            transactionsRoot: Block.transactionsRoot(txs), proposer: config.index, view: replica.view, timestamp: UInt64(now * 1000),
            anchor: max(anchor, lastAnchor))
        apply(replica.step(.propose(Block(header: header, transactions: txs).body)))
    }

    // MARK: actions

    func apply(_ actions: [PBFTAction]) {
        for a in actions {
            switch a {
            case .persist(let d):
                // Persist before anything that follows is sent: a vote must
                // never leave without the state that promises it.
                do { try persist(d) } catch {
                    onFatal("\(group): cannot persist consensus state: \(error)")
                    return
                }
            case .broadcast(let m):
                metrics.messagesOut.increment()
                consensusSent += 1
                try? client.publishNow(Topics.pbft(group, from: memberID), payload: PBFTCodec.encode(group: group, m))
            case .send(let to, let m):
                guard to >= 0, to < config.members.count else { continue }
                consensusSent += 1
                try? client.publishNow(Topics.direct(group, to: config.members[to].id), payload: PBFTCodec.encode(group: group, m))
            case .commit(let b):
                commit(b)
            case .requestSync(let from, let hint):
                requestSync(from: from, hint: hint)
            case .divergence(let seq, let mine, let quorum):
                log("DIVERGENCE in \(group) at \(seq): our state root \(Hex.encode(mine)), quorum \(Hex.encode(quorum))")
            case .rejected(let sender, let reason, let detail):
                refusals.refuse(Refusals.Reason(reason), "\(detail)\(sender.map { " (replica \($0))" } ?? "")")
            case .viewChanged(let v):
                log("\(group): view \(v)")
                publishStatus(force: true)
            }
        }
    }

    /// Executes committed blocks in order once the identity group has
    /// reached each block's anchor (it catches up by its own consensus/sync).
    func commit(_ cb: CommittedBlock) {
        // Decoded once here; nil for a null block or one that does not decode.
        deferred.append((cb, cb.payload.isEmpty ? nil : try? Block(decoding: cb.payload)))
        drainDeferred()
    }

    func drainDeferred() {
        while let (cb, decoded) = deferred.first {
            if let b = decoded, b.header.anchor > 0 {
                guard let ih = identityHeight(), ih >= b.header.anchor else { return }
            }
            deferred.removeFirst()
            execute(cb, decoded)
        }
    }

    func execute(_ cb: CommittedBlock, _ decoded: Block?) {
        var block: Block
        if cb.payload.isEmpty {
            // A null block (a view change found nothing to re-issue at this height).
            let header = BlockHeader(
                group: group, height: cb.seq, parentHash: ledger.lastHash, stateRoot: ledger.stateRoot,
                transactionsRoot: Block.transactionsRoot([]), proposer: config.members.count, view: cb.view, timestamp: 0, anchor: lastAnchor)
            block = Block(header: header, transactions: [])
        } else {
            guard let b = decoded else {
                onFatal("\(group): committed block \(cb.seq) does not decode")
                timer?.cancel()
                return
            }
            block = b
        }
        // Hashed once for the pool, the transaction index and the pool's cleanup.
        let txHashes = block.transactions.map { Digest.sha256($0) }
        let (writes, evidenceIndex, receipts) = run(block, txHashes: txHashes)
        block.certificateView = cb.view
        block.certificate = cb.certificate.map { CertificateEntry(replica: $0.sender, signature: $0.signature) }
        let encoded: [UInt8]
        do {
            encoded = try ledger.commit(block, writes: writes, evidenceIndex: evidenceIndex, txHashes: txHashes)
            lastAnchor = block.header.anchor
        } catch {
            onFatal("\(group): cannot commit block \(cb.seq): \(error)")
            timer?.cancel()
            return
        }
        // Committed transactions leave the pool; the node that received a
        // request answers it with the receipt.
        let committed = Set(txHashes)
        if !committed.isEmpty, pool.contains(where: { committed.contains($0.hash) }) {
            pool.removeAll { p in
                guard committed.contains(p.hash) else { return false }
                poolBytes -= p.bytes.count
                if let sender = p.tx.sender {
                    poolBySender[sender, default: 1] -= 1
                    if poolBySender[sender] == 0 { poolBySender[sender] = nil }
                }
                return true
            }
            poolIndex = [:]
            for (i, p) in pool.enumerated() { poolIndex[p.hash] = i }
        }
        // A recorded TIC opens a channel: the block's proposer tells the TCCs
        // (one of them takes it through the shared subscription).
        if block.header.proposer == config.index {
            for (tx, r) in receipts where r.ok && tx.op == "tic.record" {
                guard let ch = r.result?["channelId"]?.stringValue, var ev = r.result?.objectValue else { continue }
                ev["event"] = "open"
                ev["group"] = .string(group)
                ev["height"] = .number(Double(cb.seq))
                ev["tic"] = tx.args["tic"] ?? .null
                let payload = (try? JCS.canonicalize(.object(ev))) ?? []
                Task {
                    try? await client.publish(
                        Topics.tccControl(group), payload: payload, qos: .atLeastOnce, properties: .init(userProperties: [UserProperty("channel", ch)]))
                }
            }
        }
        for (tx, r) in receipts {
            if let req = replies.removeValue(forKey: tx.hash) {
                var j = r.json
                j["height"] = .number(Double(cb.seq))
                reply(req, j)
            }
        }
        metrics.transactions.increment(by: Int64(block.transactions.count))
        if block.header.timestamp > 0 {
            metrics.commitLatency.record(max(0, DateTime.currentTime() - Double(block.header.timestamp) / 1000))
        }
        Task { try? await client.publish(Topics.blocks(group, node: memberID), payload: encoded, qos: .atLeastOnce) }
        apply(replica.step(.executed(seq: cb.seq, stateDigest: ledger.stateRoot)))
        publishStatus(force: false)
    }

}
