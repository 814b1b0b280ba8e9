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
    /// What this node's own proposal produced when it executed it, so that
    /// committing the same block on the same parent needs no second execution.
    var proposed: (digest: [UInt8], parent: [UInt8], writes: [StateWrite], evidenceIndex: [StateWrite], receipts: [(ChainTransaction, Receipt)])?

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
        }
        let maxTx = config.maxTransactionsPerBlock
        let g = group
        replica = PBFTReplica(
            config: pc, me: config.index, authenticator: Ed25519Authenticator(secret: config.secretKey, members: config.members.map(\.publicKey)),
            durable: durable,
            validate: { seq, payload in
                guard let b = try? Block(decoding: payload) else { return false }
                return b.header.group == g && b.header.height == seq && b.transactions.count <= maxTx && (g != "identity" || b.header.anchor == 0)
                    && b.header.transactionsRoot == Block.transactionsRoot(b.transactions)
            })
    }

    var memberID: String { config.nodeId }

    /// A runner of `group` over a ledger in `dataDir` with fresh keys and no
    /// broker (publishes queue offline): for tools and fuzzing that feed it
    /// network input directly.
    public static func offline(group: String, dataDir: String) throws -> GroupRunner {
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        let keys = (0..<4).map { _ in Ed25519SecretKey() }
        let cfg = try NodeConfig(json: [
            "network": "devnet", "nodeId": "node1", "index": 0, "secretKeyMultibase": .string(keys[0].multibase),
            "members": .array(keys.enumerated().map { ["id": .string("node\($0.offset + 1)"), "publicKeyMultibase": .string($0.element.publicKey.multibase)] }),
            "broker": "mqtt://127.0.0.1:1", "dataDir": .string(dataDir),
        ])
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

    /// Refusals so far, by reason.
    public var refusalCounts: [String: Int] { refusals.byReason }

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
        guard inbox.enter(m.payload.count) else {
            overloaded(m)
            return
        }
        q.async {
            defer { self.inbox.leave(m.payload.count) }
            guard let (g, sm) = try? PBFTCodec.decode(m.payload), g == self.group else {
                self.refusals.refuse(.malformed, "consensus message on \(m.topic) does not decode")
                return
            }
            guard sm.sender != self.config.index else { return }
            self.metrics.messagesIn.increment()
            self.apply(self.replica.step(.message(sm)))
        }
    }

    func onTransaction(_ m: MQTTMessage) {
        guard inbox.enter(m.payload.count) else {
            overloaded(m)
            return
        }
        q.async {
            defer { self.inbox.leave(m.payload.count) }
            let parsed: ChainTransaction?
            do { parsed = try ChainTransaction(received: m.payload, maxBytes: WireLimits.packetBytes) } catch {
                self.refuse(m, .malformed, "transaction: \(error)")
                return
            }
            guard let tx = parsed else {
                self.refuse(m, .malformed, "transaction is not a JSON object")
                return
            }
            guard tx.group == self.group else {
                self.refuse(m, .wrongGroup, "transaction is for group '\(tx.group.map { String($0.prefix(40)) } ?? "?")'")
                return
            }
            let h = tx.hash
            if self.poolIndex[h] != nil || self.waiting.contains(where: { $0.hash == h }) { return }
            self.admit(Pending(tx: tx, bytes: tx.bytes, hash: h, arrived: DateTime.currentTime(), signer: nil, request: m.properties.responseTopic != nil ? m : nil))
        }
    }

    /// Admission (on the queue): the pool's bounds, then the envelope and the
    /// signature (`Contracts.admit`); an unknown sender waits outside the pool.
    func admit(_ p: Pending) {
        guard pool.count < config.poolLimit, poolBytes + p.bytes.count <= config.poolByteLimit else {
            refuse(p.request, .poolFull, "pending pool is full (\(pool.count) transactions, \(poolBytes) bytes); retry later")
            return
        }
        if let sender = p.tx.sender, poolBySender[sender, default: 0] >= config.poolPerSender {
            refuse(p.request, .senderQuota, "sender has \(config.poolPerSender) transactions pending already; retry later")
            return
        }
        switch withCurrentAnchor({ contracts.admit(p.tx, state: ContractState(ledger: ledger)) }) {
        case .verified(let key):
            var admitted = p
            admitted.signer = key
            poolIndex[p.hash] = pool.count
            pool.append(admitted)
            poolBytes += p.bytes.count
            if let sender = p.tx.sender { poolBySender[sender, default: 0] += 1 }
            if let r = p.request { replies[p.hash] = r }
        case .unknownSender(let did):
            guard waiting.count < Self.waitingLimit, waitingBytes + p.bytes.count <= Self.waitingByteLimit else {
                refuse(p.request, .unknownSender, "unknown DID \(DIDSyntax.shown(did)) (and too many transactions wait for theirs)")
                return
            }
            waiting.append(p)
            waitingBytes += p.bytes.count
        case .rejected(let code, let e):
            refuse(p.request, code == .tooLarge ? .tooLarge : code == .badSignature ? .badSignature : .badEnvelope, e.message)
        }
    }

    /// Waiting transactions whose sender became known enter the pool; those
    /// held longer than `unknownSenderHoldSeconds` are refused.
    func reviewWaiting(now: Double) {
        guard !waiting.isEmpty, now - lastWaitingReview >= 0.05 else { return }
        lastWaitingReview = now
        let held = waiting
        waiting = []
        waitingBytes = 0
        for p in held {
            if withCurrentAnchor({ contracts.resolveDIDForAdmission(p.tx.sender ?? "", state: ContractState(ledger: ledger)) }) {
                admit(p)
            } else if now - p.arrived >= Self.unknownSenderHoldSeconds {
                refuse(p.request, .unknownSender, "unknown DID \(DIDSyntax.shown(p.tx.sender ?? "?"))")
            } else {
                waiting.append(p)
                waitingBytes += p.bytes.count
            }
        }
    }

    /// Admission reads DIDs as the identity group has them now (execution
    /// reads them at its block's anchor): the anchor is set for the call and restored.
    func withCurrentAnchor<T>(_ body: () -> T) -> T {
        guard group != "identity" else { return body() }
        let saved = executionAnchor
        executionAnchor = identityHeight() ?? saved
        defer { executionAnchor = saved }
        return body()
    }

    /// Messages waiting for the group's queue, bounded in count and bytes:
    /// past the bound a message is dropped (consensus retransmits; a request
    /// is told the node is overloaded) instead of growing memory without end.
    let inbox = InboxBound(messages: WireLimits.groupQueueMessages, bytes: WireLimits.groupQueueBytes)

    func overloaded(_ m: MQTTMessage) {
        refusals.refuse(.overloaded, "the group's queue holds \(inbox.limitMessages) messages or \(inbox.limitBytes) bytes; dropped one on \(m.topic)")
        if m.properties.responseTopic != nil {
            reply(m, ["status": "rejected", "ok": false, "code": "overloaded", "error": "the node is overloaded; retry later"])
        }
    }

    /// Counts a refusal and answers the request (if it asked) with the reason.
    func refuse(_ request: MQTTMessage?, _ reason: Refusals.Reason, _ message: String) {
        refusals.refuse(reason, message)
        if let request { reply(request, ["status": "rejected", "code": .string(reason.rawValue), "error": .string(message)]) }
    }

    func refuse(_ request: MQTTMessage, _ reason: Refusals.Reason, _ message: String) {
        refuse(Optional(request), reason, message)
    }

    func reply(_ request: MQTTMessage, _ body: JSON) {
        guard request.properties.responseTopic != nil else { return }
        var payload = (try? JCS.canonicalize(body)) ?? []
        // A reply never exceeds what a packet can carry: a result too large
        // is answered with that fact rather than lost in the publish.
        if payload.count > WireLimits.replyBytes {
            let err: JSON = [
                "ok": false, "status": "rejected", "code": "too-large", "node": .string(memberID),
                "error": .string("the reply of \(payload.count) bytes exceeds the reply limit of \(WireLimits.replyBytes); narrow the query"),
            ]
            payload = (try? JCS.canonicalize(err)) ?? []
        }
        Task { try? await self.client.respond(to: request, payload: payload) }
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
        executionAnchor = anchor
        // Only admitted transactions are pooled (signature checked; senders
        // this node did not know yet wait outside the pool).
        var take: [Pending] = []
        var bytes = 0
        for p in pool {
            if take.count >= config.maxTransactionsPerBlock { break }
            if !take.isEmpty && bytes + p.bytes.count > Self.maxBlockBytes { break }
            take.append(p)
            bytes += p.bytes.count + 4
        }
        guard !take.isEmpty else { return }
        let txs = take.map(\.bytes)
        let state = ContractState(ledger: ledger)
        state.reserve(writes: Contracts.plannedWrites(take.map(\.tx)))
        let height = ledger.height + 1
        let receipts = take.enumerated().map { ($1.tx, contracts.execute($1.tx, state: state, height: height, index: $0, admitted: $1.signer)) }
        let writes = state.writes
        let header = BlockHeader(
            group: group, height: height, parentHash: ledger.lastHash, stateRoot: ledger.nextStateRoot(writes),
            transactionsRoot: Block.transactionsRoot(txs), proposer: config.index, view: replica.view, timestamp: UInt64(now * 1000), anchor: anchor)
        let body = Block(header: header, transactions: txs).body
        proposed = (Digest.sha256(body), ledger.lastHash, writes, state.evidenceIndex, receipts)
        apply(replica.step(.propose(body)))
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
                group: group, height: cb.seq, parentHash: ledger.lastHash, stateRoot: ledger.nextStateRoot([]),
                transactionsRoot: Block.transactionsRoot([]), proposer: config.members.count, view: cb.view, timestamp: 0)
            block = Block(header: header, transactions: [])
        } else {
            guard let b = decoded else {
                onFatal("\(group): committed block \(cb.seq) does not decode")
                timer?.cancel()
                return
            }
            block = b
        }
        executionAnchor = block.header.anchor
        // Hashed once for the pool, the transaction index and the pool's cleanup.
        let txHashes = block.transactions.map { Digest.sha256($0) }
        var receipts: [(ChainTransaction, Receipt)] = []
        let writes: [StateWrite]
        let evidenceIndex: [StateWrite]
        if let p = proposed, !cb.payload.isEmpty, p.parent == ledger.lastHash, p.digest == cb.digest {
            // Our own proposal, executed on this very parent state when proposed.
            receipts = p.receipts
            writes = p.writes
            evidenceIndex = p.evidenceIndex
        } else {
            let state = ContractState(ledger: ledger)
            // Usually this node parsed the transaction when it reached the pool.
            let txs: [(ChainTransaction, Contracts.SignerKey?)?] = block.transactions.enumerated().map { i, t in
                if let pi = poolIndex[txHashes[i]], pool[pi].bytes == t { return (pool[pi].tx, pool[pi].signer) }
                guard let j = try? JSONParser.parse(t), let o = j.objectValue else { return nil }
                return (ChainTransaction(json: o, blockBytes: t), nil)
            }
            state.reserve(writes: Contracts.plannedWrites(txs.compactMap { $0?.0 }))
            for (i, t) in txs.enumerated() {
                guard let (tx, signer) = t else { continue }
                receipts.append((tx, contracts.execute(tx, state: state, height: cb.seq, index: i, admitted: signer)))
            }
            writes = state.writes
            evidenceIndex = state.evidenceIndex
        }
        proposed = nil
        block.certificateView = cb.view
        block.certificate = cb.certificate.map { CertificateEntry(replica: $0.sender, signature: $0.signature) }
        let encoded: [UInt8]
        do {
            encoded = try ledger.commit(block, writes: writes, evidenceIndex: evidenceIndex, txHashes: txHashes)
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

    // MARK: state transfer

    func requestSync(from: UInt64, hint: Int?) {
        let peers = config.members.indices.filter { $0 != config.index }
        let target = hint.flatMap { peers.contains($0) ? $0 : nil } ?? peers.randomElement()!
        let req: JSON = ["from": .number(Double(from)), "max": 64]
        let topic = Topics.sync(group, node: config.members[target].id)
        Task {
            guard let r = try? await client.request(topic, payload: (try? JCS.canonicalize(req)) ?? [], timeout: 5),
                let fetched = Self.parseSyncReply(r.payload)
            else {
                self.refusals.refuse(.badSync, "a sync reply from \(self.config.members[target].id) did not arrive or does not decode")
                return
            }
            q.async {
                for b in fetched {
                    // Null blocks were agreed as an empty payload.
                    let isNull = b.header.proposer == self.config.members.count && b.transactions.isEmpty
                    let payload = isNull ? [] : b.body
                    let digest = Digest.sha256(payload)
                    let cert = b.certificate.map {
                        SignedMessage(sender: $0.replica, message: .commit(view: b.certificateView, seq: b.header.height, digest: digest), signature: $0.signature)
                    }
                    self.apply(self.replica.step(.synced(seq: b.header.height, payload: payload, certificate: cert)))
                }
            }
        }
    }

    /// The encoded blocks from `from` on for one sync reply: at most `max`,
    /// sized by bytes before each block is added, so the reply (a count, then
    /// each block's length and bytes) always fits `WireLimits.replyBytes`.
    static func syncReplyBlocks(ledger: Ledger, from: UInt64, max: Int) -> [[UInt8]] {
        var blocks: [[UInt8]] = []
        var h = from
        var size = 4
        while blocks.count < max, h <= ledger.height, let b = try? ledger.block(at: h) {
            let e = b.encoded
            guard size + e.count + 4 <= WireLimits.replyBytes else { break }
            size += e.count + 4
            blocks.append(e)
            h += 1
        }
        return blocks
    }

    /// A `SyncReply` (topics.md): nil unless it is exactly a count of at most
    /// `WireLimits.syncBlocks` and that many length-prefixed blocks that decode.
    public static func parseSyncReply(_ payload: [UInt8]) -> [Block]? {
        var blocks: [Block] = []
        var rd = payload[...]
        func u32() -> Int? {
            guard rd.count >= 4 else { return nil }
            defer { rd = rd.dropFirst(4) }
            return rd.prefix(4).reduce(0) { $0 << 8 | Int($1) }
        }
        guard let n = u32(), n <= WireLimits.syncBlocks else { return nil }
        for _ in 0..<n {
            guard let len = u32(), rd.count >= len, let b = try? Block(decoding: Array(rd.prefix(len))) else { return nil }
            rd = rd.dropFirst(len)
            blocks.append(b)
        }
        return rd.isEmpty ? blocks : nil
    }

    func onSyncRequest(_ m: MQTTMessage) {
        guard inbox.enter(m.payload.count) else {
            overloaded(m)
            return
        }
        q.async {
            defer { self.inbox.leave(m.payload.count) }
            guard let j = try? JSONParser.parse(m.payload), let from = j["from"]?.intValue, from >= 1 else {
                self.refusals.refuse(.badSync, "sync request without a height ≥ 1 in 'from'")
                return
            }
            let max = Swift.max(1, Swift.min(WireLimits.syncBlocks, j["max"]?.intValue ?? WireLimits.syncBlocks))
            var out: [UInt8] = []
            let blocks = Self.syncReplyBlocks(ledger: self.ledger, from: UInt64(from), max: max)
            func u32(_ v: Int) { out += [UInt8(truncatingIfNeeded: v >> 24), UInt8(truncatingIfNeeded: v >> 16), UInt8(truncatingIfNeeded: v >> 8), UInt8(truncatingIfNeeded: v)] }
            u32(blocks.count)
            for b in blocks {
                u32(b.count)
                out += b
            }
            Task { try? await self.client.respond(to: m, payload: out) }
        }
    }

    // MARK: status and queries

    func statusJSON() -> JSON {
        [
            "group": .string(group), "node": .string(memberID), "height": .number(Double(ledger.height)), "view": .number(Double(replica.view)),
            "leader": .string(config.members[replica.primary].id), "isLeader": .bool(replica.isPrimary), "changingView": .bool(replica.isChangingView),
            "pendingPool": .number(Double(pool.count)), "lastBlockHash": .string(Hex.encode(ledger.lastHash)),
            "stateRoot": .string(Hex.encode(ledger.stateRoot)), "time": .string(DateTime.now()),
        ]
    }

    func publishStatus(force: Bool) {
        metrics.height.set(Double(ledger.height))
        metrics.view.set(Double(replica.view))
        metrics.pool.set(Double(pool.count))
        let now = DateTime.currentTime()
        guard force || now - lastStatus >= 0.25 else { return }
        lastStatus = now
        let payload = (try? JCS.canonicalize(statusJSON())) ?? []
        try? client.publishNow(Topics.status(group, node: memberID), payload: payload, retain: true, properties: .init(contentType: "application/json"))
    }

    func onQuery(_ m: MQTTMessage) {
        guard inbox.enter(m.payload.count) else {
            overloaded(m)
            return
        }
        q.async {
            defer { self.inbox.leave(m.payload.count) }
            let kind = m.topic.split(separator: "/").dropFirst(4).first.map(String.init) ?? ""
            let body = try? JSONParser.parse(m.payload)
            let params = body?["params"]?.objectValue ?? body?.objectValue ?? [:]
            var result: JSON
            do {
                result = ["ok": true, "node": .string(self.memberID), "height": .number(Double(self.ledger.height)), "result": try self.query(kind, params)]
            } catch let e as QueryParameterError {
                self.refusals.refuse(.badQuery, e.message)
                result = ["ok": false, "node": .string(self.memberID), "code": "bad-query", "error": .string(e.message)]
            } catch {
                result = ["ok": false, "node": .string(self.memberID), "error": .string("\(error)")]
            }
            self.reply(m, result)
        }
    }

    /// A query parameter that is present but not of its type or range.
    struct QueryParameterError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    /// `params.height`: absent means `default`; otherwise an integer ≥ 0.
    static func height(_ p: JSONObject, default d: UInt64) throws -> UInt64 {
        guard let v = p["height"] else { return d }
        guard let i = v.intValue, i >= 0 else { throw QueryParameterError(message: "params.height must be an integer ≥ 0") }
        return UInt64(i)
    }

    /// A string parameter of at most `max` bytes (nil when absent).
    static func string(_ p: JSONObject, _ name: String, max: Int) throws -> String? {
        guard let v = p[name] else { return nil }
        guard let s = v.stringValue, s.utf8.count <= max else { throw QueryParameterError(message: "params.\(name) must be a string of at most \(max) bytes") }
        return s
    }

    func query(_ kind: String, _ p: JSONObject) throws -> JSON {
        let state = ContractState(ledger: ledger)
        switch kind {
        case "status":
            return statusJSON()
        case "block":
            let h = try Self.height(p, default: ledger.height)
            guard let b = try ledger.block(at: h) else { throw ContractError("no block at height \(h)") }
            return b.json
        case "tx":
            guard let hs = try Self.string(p, "hash", max: 64), let h = Hex.decode(hs), let t = try ledger.transaction(hash: h) else { throw ContractError("unknown transaction") }
            return [
                "height": .number(Double(t.height)), "index": .number(Double(t.index)), "transaction": (try? JSONParser.parse(t.block.transactions[t.index])) ?? .null,
                "proof": .array(t.proof.map { .string(Hex.encode($0)) }), "transactionsRoot": .string(Hex.encode(t.block.header.transactionsRoot)),
                "blockHash": .string(Hex.encode(t.block.hash)), "size": .number(Double(t.block.transactions.count)),
            ]
        case "did":
            guard let did = try Self.string(p, "did", max: WireLimits.didLength) else { throw ContractError("params.did is missing") }
            let at = try Self.height(p, default: ledger.height)
            guard let ops = state.get("did/\(did)")?.arrayValue?.compactMap(\.objectValue), !ops.isEmpty else {
                throw ContractError("unknown DID '\(did)'")
            }
            guard let h = Contracts.history(did, atHeight: at, state: state) else { throw ContractError("'\(did)' was not registered at height \(at)") }
            return [
                "didDocument": h.current.document.json,
                "didDocumentMetadata": ["versionId": .string(String(h.current.version)), "deactivated": .bool(h.deactivated)],
                "operations": .array(ops.prefix(h.versions.count).map { .object($0) }), "height": .number(Double(at)),
            ]
        case "template":
            guard let id = try Self.string(p, "id", max: 512) else { throw ContractError("params.id is missing") }
            let v = p["version"]?.intValue ?? 1
            guard let t = state.get("template/\(id)/\(v)") else { throw ContractError("unknown template '\(id)' version \(v)") }
            return t
        case "offers":
            return .array(state.scan(prefix: "offer/").map(\.1))
        case "match":
            return .array(try Contracts.match(p, state: state))
        case "evidence":
            var stored: [UInt8]? = nil
            if let h = try Self.string(p, "tscHash", max: 64) {
                guard let hash = Hex.decode(h), hash.count == 32 else { throw ContractError("params.tscHash must be 64 hex digits") }
                // Ledgers written before the evidence index kept it in the state.
                stored = try ledger.evidenceLocation(tscHash: hash) ?? state.getBytes("evidence-hash/\(h)")
            }
            if stored == nil, let c = try Self.string(p, "channelId", max: 128) { stored = state.getBytes("evidence/\(c)") }
            guard let stored else { throw ContractError("no evidence for that channel or hash") }
            guard let at = EvidenceLocation(decoding: stored) else { throw LedgerError.corrupt("evidence record does not decode") }
            let t = at.tx
            guard let b = try ledger.block(at: at.height), t < b.transactions.count else {
                throw LedgerError.corrupt("evidence points at a missing transaction (height \(at.height), position \(t))")
            }
            return try Contracts.evidenceRecord(at, transaction: b.transactions[t])
        case "channel":
            guard let c = try Self.string(p, "channelId", max: 128), let ch = state.get("channel/\(c)") else { throw ContractError("unknown channel") }
            return ch
        default:
            throw ContractError("unknown query kind '\(kind)'")
        }
    }

}
