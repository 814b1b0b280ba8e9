import Dispatch
import EFSCBus
import EFSCChannel
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

    /// One channel's live state; touched only on its partition queue.
    final class Channel: @unchecked Sendable {
        let id: String
        let terms: SettlementTerms
        let tic: JSONObject
        let queue: DispatchQueue
        var state: String
        var lastSequence: Int
        var lastEnd: Double?
        var lastTscHash: String?
        var sinceEvidence: Int
        var template: Template?
        /// Admitted parties: DID → (verification method URL → assertion key).
        var admitted: [String: [String: Ed25519PublicKey]] = [:]
        var challenges: [String: (did: String, secret: [UInt8], expires: Double, keys: [String: Ed25519PublicKey])] = [:]
        /// The proposal waiting for the consumer, with the hash of the document both parties' proofs sign.
        var pending: (seq: Int, unsigned: JSONObject, providerProof: JSONObject, final: Bool, inputHash: [UInt8])?

        init(id: String, terms: SettlementTerms, tic: JSONObject, queue: DispatchQueue, record: JSON?) {
            self.id = id
            self.terms = terms
            self.tic = tic
            self.queue = queue
            state = record?["state"]?.stringValue ?? "open"
            lastSequence = record?["lastSequence"]?.intValue ?? 0
            lastEnd = record?["lastEnd"]?.doubleValue
            lastTscHash = record?["lastTscHash"]?.stringValue
            sinceEvidence = record?["sinceEvidence"]?.intValue ?? 0
        }

        var record: JSON {
            [
                "channelId": .string(id), "state": .string(state), "lastSequence": .number(Double(lastSequence)),
                "lastEnd": lastEnd.map(JSON.number) ?? .null, "lastTscHash": lastTscHash.map(JSON.string) ?? .null,
                "sinceEvidence": .number(Double(sinceEvidence)),
            ]
        }
    }

    let lock = Lock()
    var channels: [String: Channel] = [:]
    /// Evidence not yet on chain: channel → {channelId, sequence, tscHash}.
    var pendingEvidence: [String: JSON] = [:]
    var evidenceInFlight = false
    var policy: EvidencePolicy
    var poolByNode: [String: Int] = [:]
    var lastBlockHeight: UInt64 = 0

    /// Counters published on the TCC's status topic.
    public struct Stats: Sendable {
        public var settlements = 0
        public var admitted = 0
        public var authFailures = 0
        public var rejected = 0
        public var evidences = 0
        public var evidenceTransactions = 0
    }

    var stats = Stats()
    var commitBuffer: [(ChannelStore.Issued, () -> Void)] = []
    var commitScheduled = false

    public init(config: TCCConfig, log: @escaping (String) -> Void) throws {
        self.config = config
        self.log = log
        var mc = try MQTTConfiguration(url: config.broker, clientID: config.name)
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
        for (r, tic) in store.allChannels() {
            guard let id = r["channelId"]?.stringValue, let terms = try? SettlementTerms(channelId: id, tic: tic) else { continue }
            channels[id] = Channel(id: id, terms: terms, tic: tic, queue: partition(id), record: r)
        }
        for (c, item) in store.pendingEvidence() { pendingEvidence[c] = item }
        try await bus.connect()
        try await registerIfNeeded()
        try await bus.publish(Topics.presence(config.name), payload: Array(#"{"client":"\#(config.name)","state":"online"}"#.utf8))
        for ch in channels.values where ch.state != "closed" {
            try await subscribe(ch)
            loadTemplate(ch)
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

    func registerIfNeeded() async throws {
        if (try? await chain.resolveDID(did)) != nil { return }
        guard let op = config.identity.operation else { throw ChainError("TCC DID \(did) is not on the identity chain and the identity has no create operation") }
        let tx = try ChainTransaction.make(
            group: "identity", sender: did, nonce: nonces.next(), op: "did.register", args: ["operation": .object(op)], key: config.identity.key,
            method: config.identity.verificationMethod)
        let r = try await chain.submit(tx)
        guard r["status"]?.stringValue == "committed" || (r["error"]?.stringValue ?? "").contains("already registered") else {
            throw ChainError("registering the TCC DID failed: \(r["error"]?.stringValue ?? r.compactString())")
        }
    }

    func subscribe(_ ch: Channel) async throws {
        _ = try await bus.subscribe(Topics.channelUp(ch.id, party: "+"), qos: .atLeastOnce) { [weak self] m in self?.onParty(m) }
    }

    func loadTemplate(_ ch: Channel) {
        Task {
            do {
                let t = try await templates.template(id: ch.terms.templateId, version: ch.terms.templateVersion)
                ch.queue.async { ch.template = t }
            } catch {
                log("channel \(ch.id): settlement template \(ch.terms.templateId) v\(ch.terms.templateVersion) unavailable: \(error)")
            }
        }
    }

    // MARK: chain events

    func onControl(_ m: MQTTMessage) {
        guard let j = try? JSONParser.parse(m.payload), let id = j["channelId"]?.stringValue else {
            log("ignored a malformed channel-control event")
            return
        }
        switch j["event"]?.stringValue {
        case "open":
            guard lock.withLock({ channels[id] }) == nil else { return }
            guard let tic = j["tic"]?.objectValue, let terms = try? SettlementTerms(channelId: id, tic: tic) else {
                log("open event for \(id) carries no usable TIC; ignored")
                return
            }
            let ch = Channel(id: id, terms: terms, tic: tic, queue: partition(id), record: nil)
            do { try store.open(ch.record, tic: tic) } catch {
                log("cannot persist channel \(id): \(error)")
                return
            }
            lock.withLock { channels[id] = ch }
            loadTemplate(ch)
            Task {
                do { try await self.subscribe(ch) } catch { self.log("cannot subscribe to channel \(id): \(error)") }
            }
            log("channel \(id) opened: provider \(terms.provider), consumer \(terms.consumer), period \(terms.period) s, N = \(terms.evidenceEvery)")
        default:
            break
        }
    }

    func onChainStatus(_ m: MQTTMessage) {
        guard let j = try? JSONParser.parse(m.payload), let node = j["node"]?.stringValue ?? m.topic.split(separator: "/").last.map(String.init),
            let p = j["pendingPool"]?.intValue
        else { return }
        lock.withLock { poolByNode[node] = p }
    }

    /// Committed transaction blocks: closes, challenges and finalizations of
    /// our channels are read back from chain state.
    func onBlock(_ m: MQTTMessage) {
        guard let b = try? Block(decoding: m.payload) else { return }
        let fresh = lock.withLock { () -> Bool in
            guard b.header.height > lastBlockHeight else { return false }
            lastBlockHeight = b.header.height
            return true
        }
        guard fresh else { return }
        var touched = Set<String>()
        for t in b.transactions {
            guard let j = try? JSONParser.parse(t), let op = j["op"]?.stringValue, op.hasPrefix("channel."),
                let id = j["args"]?["channelId"]?.stringValue, lock.withLock({ channels[id] }) != nil
            else { continue }
            touched.insert(id)
        }
        for id in touched { refreshFromChain(id) }
    }

    func refreshFromChain(_ id: String) {
        Task {
            guard let rec = try? await chain.channel(id), let ch = lock.withLock({ channels[id] }) else { return }
            ch.queue.async {
                let s = rec["state"]?.stringValue ?? "open"
                guard s != ch.state else { return }
                ch.state = s
                ch.pending = nil
                try? self.store.putChannel(ch.record)
                var f: JSONObject = ["state": .string(s)]
                for k in ["finalSequence", "finalTscHash", "closeKind", "closedBy", "challengeUntil", "closedAt", "challengedBy"] { f[k] = rec[k] }
                for p in [ch.terms.provider, ch.terms.consumer] { self.send(ch, to: p, ChannelMessage(.closed, channel: id, f)) }
                self.log("channel \(id) is \(s) on chain (\(rec["closeKind"]?.stringValue ?? "?"))")
            }
        }
    }

    // MARK: party messages

    func onParty(_ m: MQTTMessage) {
        let parts = m.topic.split(separator: "/")
        // efsc/v1/channel/{channel}/party/{party}/up
        guard parts.count == 7 else { return }
        let id = String(parts[3])
        let party = String(parts[5])
        guard let ch = lock.withLock({ channels[id] }) else { return }
        ch.queue.async {
            let msg: ChannelMessage
            do {
                msg = try ChannelMessage(bytes: m.payload)
            } catch {
                self.refuse(ch, party: party, "\(error)", code: "malformed")
                return
            }
            guard msg.channelId == id else {
                self.refuse(ch, party: party, "channelId \(msg.channelId) does not match the topic's \(id)", code: "malformed")
                return
            }
            switch msg.kind {
            case .hello: self.hello(ch, party, msg)
            case .answer: self.answer(ch, party, msg)
            case .propose: self.propose(ch, party, msg, raw: m.payload)
            case .countersign: self.countersign(ch, party, msg)
            default: self.refuse(ch, party: party, "a party cannot send '\(msg.kind.rawValue)'", code: "unexpected")
            }
        }
    }

    func didOf(_ ch: Channel, party: String) -> String? {
        if PartyName.of(ch.terms.provider) == party { return ch.terms.provider }
        if PartyName.of(ch.terms.consumer) == party { return ch.terms.consumer }
        return nil
    }

    func send(_ ch: Channel, to did: String, _ m: ChannelMessage) { send(ch, to: did, payload: m.bytes) }

    /// QoS 1 without waiting for the acknowledgement (libmosquitto retries).
    func send(_ ch: Channel, to did: String, payload: [UInt8]) {
        let topic = Topics.channelDown(ch.id, party: PartyName.of(did))
        do { try bus.publishNow(topic, payload: payload, qos: .atLeastOnce) } catch { log("cannot send on \(topic): \(error)") }
    }

    func refuse(_ ch: Channel, party: String, _ message: String, code: String, sequence: Int? = nil, auth: Bool = false) {
        lock.withLock {
            if auth { stats.authFailures += 1 } else { stats.rejected += 1 }
        }
        log("channel \(ch.id) party \(party): refused (\(code)): \(message)")
        // Only the channel's two parties have a down topic worth writing to.
        guard let did = didOf(ch, party: party) else { return }
        send(ch, to: did, .error(ch.id, message, code: code, sequence: sequence))
    }

    func hello(_ ch: Channel, _ party: String, _ m: ChannelMessage) {
        guard let did = m["did"]?.stringValue, did == ch.terms.provider || did == ch.terms.consumer else {
            refuse(ch, party: party, "\(m["did"]?.stringValue ?? "(no DID)") is not a party of channel \(ch.id)", code: "not-a-party", auth: true)
            return
        }
        guard PartyName.of(did) == party else {
            refuse(ch, party: party, "\(did) must use its own topic (party \(PartyName.of(did)))", code: "not-a-party", auth: true)
            return
        }
        let now = DateTime.currentTime()
        ch.challenges = ch.challenges.filter { $0.value.expires > now }
        guard ch.challenges.count < 8 else {
            refuse(ch, party: party, "too many outstanding challenges; answer one first", code: "busy", auth: true)
            return
        }
        Task {
            do {
                let r = try await self.resolver.resolve(did, fresh: true)
                guard !r.deactivated else { throw ChainError("\(did) is deactivated") }
                let (_, ka) = try r.document.keyAgreementKey()
                var found: [String: Ed25519PublicKey] = [:]
                for ref in r.document.relationships[.assertionMethod] ?? [] {
                    let url = ref.hasPrefix("#") ? did + ref : ref
                    if let k = try? r.document.signingKey(url, for: .assertionMethod) { found[url] = k }
                }
                let keys = found
                ch.queue.async {
                    do {
                        let cid = Hex.encode(Digest.randomBytes(12))
                        let expires = DateTime.currentTime() + self.config.challengeSeconds
                        let (msg, secret) = try ChannelAuth.challenge(to: ka, channel: ch.id, did: did, challengeId: cid, tcc: self.did, expires: expires)
                        ch.challenges[cid] = (did, secret, expires, keys)
                        self.send(ch, to: did, msg)
                    } catch {
                        self.refuse(ch, party: party, "cannot build a challenge: \(error)", code: "internal", auth: true)
                    }
                }
            } catch {
                ch.queue.async { self.refuse(ch, party: party, "cannot resolve \(did) on the identity chain: \(error)", code: "unknown-did", auth: true) }
            }
        }
    }

    func answer(_ ch: Channel, _ party: String, _ m: ChannelMessage) {
        guard let cid = m["challengeId"]?.stringValue, let c = ch.challenges.removeValue(forKey: cid) else {
            refuse(ch, party: party, "unknown or already answered challenge", code: "replayed", auth: true)
            return
        }
        guard PartyName.of(c.did) == party, m["did"]?.stringValue == c.did else {
            refuse(ch, party: party, "the answer is not from the challenged DID", code: "not-a-party", auth: true)
            return
        }
        guard DateTime.currentTime() <= c.expires else {
            refuse(ch, party: party, "the answer came after the challenge expired (\(config.challengeSeconds) s)", code: "late", auth: true)
            return
        }
        guard let p = m["plaintext"]?.stringValue.flatMap(Base64URL.decode), ChannelAuth.matches(p, c.secret) else {
            refuse(ch, party: party, "wrong answer to the challenge", code: "wrong-answer", auth: true)
            return
        }
        ch.admitted[c.did] = c.keys
        lock.withLock { stats.admitted += 1 }
        var f: JSONObject = [
            "did": .string(c.did), "tcc": .string(did), "state": .string(ch.state), "sequence": .number(Double(ch.lastSequence)),
            "lastEnd": ch.lastEnd.map { .string(DateTime.format($0)) } ?? .null,
        ]
        if ch.lastSequence > 0, let b = try? store.tsc(ch.id, ch.lastSequence), let t = try? JSONParser.parse(b) { f["credential"] = t }
        send(ch, to: c.did, ChannelMessage(.admitted, channel: ch.id, f))
        // A consumer that (re)joins gets the proposal waiting for it.
        if c.did == ch.terms.consumer, let p = ch.pending {
            var j = p.unsigned
            j["proof"] = .object(p.providerProof)
            send(ch, to: c.did, ChannelMessage(.propose, channel: ch.id, ["sequence": .number(Double(p.seq)), "credential": .object(j)]))
        }
    }

    /// Verifies `proof` with an admitted party's key, given the hash of the document it signs.
    func verify(_ ch: Channel, _ party: String, inputHash: [UInt8], proof: JSONObject) throws(ChainError) {
        guard let vm = proof["verificationMethod"]?.stringValue, let key = ch.admitted[party]?[vm] else {
            throw ChainError("the proof's verificationMethod is not an assertion key of \(party)")
        }
        do { try EddsaJcs2022.verifyProof(inputHash: inputHash, proof: proof, key: key) } catch { throw ChainError("proof by \(party) does not verify: \(error)") }
    }

    static func inputHash(_ doc: JSONObject, _ proof: JSONObject) throws(ChainError) -> [UInt8] {
        do { return try EddsaJcs2022.inputHash(document: doc, proof: proof) } catch { throw ChainError("\(error)") }
    }

    func propose(_ ch: Channel, _ party: String, _ m: ChannelMessage, raw: [UInt8]) {
        let provider = ch.terms.provider
        guard party == PartyName.of(provider), ch.admitted[provider] != nil else {
            refuse(ch, party: party, "only the admitted provider can propose; authenticate first", code: "not-admitted")
            return
        }
        let seq = m["credential"]?["credentialSubject"]?["sequence"]?.intValue
        guard ch.state == "open" else {
            refuse(ch, party: party, "channel \(ch.id) is \(ch.state)", code: "closed", sequence: seq)
            return
        }
        do {
            guard let doc = m["credential"]?.objectValue else { throw ChainError("propose needs a credential") }
            let vc = VerifiableCredential(json: doc)
            do { try vc.checkStructure() } catch { throw ChainError("\(error)") }
            guard vc.types.contains(TSC.type) else { throw ChainError("the credential is not a \(TSC.type)") }
            guard vc.issuer == did else { throw ChainError("the TSC must name this channel's TCC \(did) as issuer") }
            guard let ref = vc.template, ref.id == ch.terms.templateId, ref.version == ch.terms.templateVersion else {
                throw ChainError("the TSC must use the TIC's settlement template \(ch.terms.templateId) v\(ch.terms.templateVersion)")
            }
            guard let t = ch.template else { throw ChainError("the settlement template is still loading; retry") }
            let claim = vc.subject ?? .null
            let violations = t.validate(claim)
            guard violations.isEmpty else { throw ChainError("claim: " + violations.map(\.description).joined(separator: "; ")) }
            try ch.terms.check(claim, lastSequence: ch.lastSequence, lastEnd: ch.lastEnd, now: DateTime.currentTime())
            let proofs = vc.proofs
            guard proofs.count == 1, let p = proofs.first, p["id"]?.stringValue == TSC.providerProofID else {
                throw ChainError("a proposal carries exactly the provider's proof (\(TSC.providerProofID))")
            }
            var unsigned = doc
            unsigned["proof"] = nil
            let h = try Self.inputHash(unsigned, p)
            try verify(ch, provider, inputHash: h, proof: p)
            let s = claim["sequence"]!.intValue!
            ch.pending = (s, unsigned, p, claim["final"]?.boolValue == true, h)
            // Forwarded as received: the consumer checks the same bytes.
            send(ch, to: ch.terms.consumer, payload: raw)
        } catch {
            refuse(ch, party: party, "\(error)", code: "invalid", sequence: seq)
        }
    }

    func countersign(_ ch: Channel, _ party: String, _ m: ChannelMessage) {
        let consumer = ch.terms.consumer
        guard party == PartyName.of(consumer), ch.admitted[consumer] != nil else {
            refuse(ch, party: party, "only the admitted consumer can countersign; authenticate first", code: "not-admitted")
            return
        }
        let seq = m["credential"]?["credentialSubject"]?["sequence"]?.intValue
        guard let p = ch.pending, seq == p.seq else {
            refuse(ch, party: party, "no proposal with sequence \(seq.map(String.init) ?? "?") is waiting (stale or replayed)", code: "stale", sequence: seq)
            return
        }
        do {
            guard var doc = m["credential"]?.objectValue else { throw ChainError("countersign needs a credential") }
            let proofs = EddsaJcs2022.proofs(of: doc)
            guard proofs.count == 2, proofs[0] == p.providerProof, proofs[1]["id"]?.stringValue == TSC.consumerProofID else {
                throw ChainError("a countersigned TSC carries the provider's proof as proposed, then the consumer's (\(TSC.consumerProofID))")
            }
            doc["proof"] = nil
            guard doc == p.unsigned else { throw ChainError("the countersigned credential differs from the proposal") }
            // Both proofs of the set sign the same document when their contexts agree.
            let h = proofs[1]["@context"] == p.providerProof["@context"] ? p.inputHash : try Self.inputHash(doc, proofs[1])
            try verify(ch, consumer, inputHash: h, proof: proofs[1])
            doc["proof"] = .array([.object(proofs[0]), .object(proofs[1])])
            let tsc = try TSC.issueVerified(VerifiableCredential(json: doc), tccKey: config.identity.key, tccMethod: config.identity.verificationMethod)
            let bytes = try JCS.canonicalize(.object(tsc.json))
            let hash = Digest.sha256Hex(bytes)
            ch.pending = nil
            ch.lastSequence = p.seq
            ch.lastEnd = (p.unsigned["credentialSubject"]?["end"]?.stringValue).flatMap(DateTime.parse)
            ch.lastTscHash = hash
            ch.sinceEvidence += 1
            let n = lock.withLock { policy.n(every: ch.terms.evidenceEvery, maxEvery: ch.terms.evidenceEveryMax) }
            var evidence: JSON?
            if p.final || ch.sinceEvidence >= n {
                evidence = ["channelId": .string(ch.id), "sequence": .number(Double(p.seq)), "tscHash": .string(hash)]
                ch.sinceEvidence = 0
            }
            if p.final { ch.state = "closing" }
            let issued = ChannelStore.Issued(channel: ch.id, sequence: p.seq, tsc: bytes, record: ch.record, evidence: evidence)
            // The message in JCS form, around the TSC bytes already canonical
            // (keys in order: channelId, credential, sequence, tscHash, type).
            let msg = try JCS.canonicalize(.string(ch.id)).withUnsafeBufferPointer { id in
                Array(#"{"channelId":"#.utf8) + id + Array(#","credential":"#.utf8) + bytes
                    + Array(#","sequence":\#(p.seq),"tscHash":"\#(hash)","type":"tsc"}"#.utf8)
            }
            enqueueCommit(issued) {
                if let e = evidence { self.lock.withLock { self.pendingEvidence[ch.id] = e } }
                self.send(ch, to: ch.terms.provider, payload: msg)
                self.send(ch, to: consumer, payload: msg)
                if p.final { self.closeCooperatively(ch, tsc: tsc.json) }
            }
        } catch {
            refuse(ch, party: party, "\(error)", code: "invalid", sequence: seq)
        }
    }

    // MARK: persistence (group commit)

    /// Queues an issued TSC; `then` runs once it is durable.
    func enqueueCommit(_ item: ChannelStore.Issued, then: @escaping () -> Void) {
        let schedule = lock.withLock { () -> Bool in
            commitBuffer.append((item, then))
            defer { commitScheduled = true }
            return !commitScheduled
        }
        guard schedule else { return }
        committerQ.async {
            let batch = self.lock.withLock { () -> [(ChannelStore.Issued, () -> Void)] in
                defer {
                    self.commitBuffer = []
                    self.commitScheduled = false
                }
                return self.commitBuffer
            }
            do {
                try self.store.commit(batch.map(\.0))
            } catch {
                // Nothing was acknowledged; the parties hear why and retry after a restart.
                self.log("cannot persist \(batch.count) TSC(s): \(error); not sending them")
                return
            }
            self.lock.withLock { self.stats.settlements += batch.count }
            for (_, then) in batch { then() }
        }
    }

    // MARK: evidence

    func submitEvidence() {
        let items = lock.withLock { () -> [JSON]? in
            guard !evidenceInFlight, !pendingEvidence.isEmpty else { return nil }
            evidenceInFlight = true
            return Array(pendingEvidence.values.prefix(config.evidenceBatchMax))
        }
        guard var items else { return }
        Task {
            defer { self.lock.withLock { self.evidenceInFlight = false } }
            while !items.isEmpty {
                let args: JSONObject = items.count == 1 ? items[0].objectValue! : ["items": .array(items)]
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
    func removeEvidence(_ items: [JSON], count: Bool) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            committerQ.async {
                let done = self.lock.withLock { () -> [String] in
                    var out: [String] = []
                    for i in items {
                        guard let ch = i["channelId"]?.stringValue, self.pendingEvidence[ch] == i else { continue }
                        self.pendingEvidence[ch] = nil
                        out.append(ch)
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

    func closeCooperatively(_ ch: Channel, tsc: JSONObject) {
        Task {
            for attempt in 1...5 {
                do {
                    let tx = try ChainTransaction.make(
                        group: "transaction", sender: did, nonce: nonces.next(), op: "channel.close",
                        args: ["channelId": .string(ch.id), "kind": "cooperative", "tsc": .object(tsc)], key: config.identity.key,
                        method: config.identity.verificationMethod)
                    try await chain.submitCommitted(tx)
                    refreshFromChain(ch.id)
                    return
                } catch {
                    log("cooperative close of \(ch.id), attempt \(attempt): \(error)")
                    try? await Task.sleep(nanoseconds: 1_000_000_000)
                }
            }
        }
    }

    // MARK: status

    public var snapshot: JSON {
        let (s, f, pe, n) = lock.withLock { (stats, policy.factor, pendingEvidence.count, channels.values.filter { $0.state != "closed" }.count) }
        return [
            "tcc": .string(did), "name": .string(config.name), "openChannels": .number(Double(n)), "settlements": .number(Double(s.settlements)),
            "admitted": .number(Double(s.admitted)), "authFailures": .number(Double(s.authFailures)), "rejected": .number(Double(s.rejected)),
            "evidences": .number(Double(s.evidences)), "evidenceTransactions": .number(Double(s.evidenceTransactions)),
            "pendingEvidence": .number(Double(pe)), "evidenceFactor": .number(Double(f)), "time": .string(DateTime.now()),
        ]
    }

    func tickStatus() {
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
