import Dispatch
import EFSCBus
import EFSCChannel
import EFSCCore
import EFSCCredentials
import EFSCIdentity
import Foundation

/// The channel's TCC refused a message of this session (topics.md,
/// "Refusals"): the refusal's code, its reason and the sequence it names.
public struct ChannelRefusal: Error, Sendable, CustomStringConvertible {
    public let code: String
    public let message: String
    public let sequence: Int?
    public var description: String { "\(code): \(message)" }
}

/// A wait of a session that reached its deadline; `what` names what did not arrive.
public struct ChannelTimeout: Error, Sendable, CustomStringConvertible {
    public let what: String
    public let seconds: Double
    public var description: String { "no \(what) within \(seconds) s" }
}

/// One party's side of a transaction channel: authenticates to the channel's
/// TCC with its DID (answers the HPKE challenge), then — as provider —
/// proposes settlements, or — as consumer — checks and countersigns them,
/// and keeps every TSC it receives after checking its proofs.
///
/// Incoming channel messages are handled in order on one serial queue; the
/// counterparty's and the TCC's keys are resolved from the identity chain
/// when the session opens, so per-settlement checks need no I/O.
public final class ChannelSession: @unchecked Sendable {
    public enum Role: String, Sendable { case provider, consumer }

    public let chain: ChainClient
    public let me: PartyIdentity
    public let terms: SettlementTerms
    public let role: Role
    /// Where received TSCs are kept (nil: memory only, as benchmarks run).
    public let store: TSCStore?
    /// Consumer policy: whether to countersign a claim (after the terms check). Default: yes.
    public var approve: @Sendable (JSON) -> Bool = { _ in true }
    /// Called for every TSC received and checked, in sequence order.
    public var onTSC: (@Sendable (VerifiableCredential) -> Void)?
    /// Called when the TCC reports the channel closing or closed on chain.
    public var onClosed: (@Sendable (JSON) -> Void)?
    /// Whether received TSCs have their proofs verified (default true).
    public var verifyReceived = true

    let q: DispatchQueue
    let lock = Lock()
    var tcc: String?
    /// The DID of the TCC that admitted this session (nil before).
    public var tccDID: String? { lock.withLock { tcc } }
    var template: Template?
    var keys: [String: Ed25519PublicKey] = [:]
    public private(set) var lastSequence = 0
    public private(set) var lastEnd: Double?
    public private(set) var latest: VerifiableCredential?
    var admittedWaiter: CheckedContinuation<Void, Error>?
    /// A proposal that came while this consumer lacked the TSC before it
    /// (the TCC issued one and crashed before sending it here): countersigned
    /// once admission has handed that TSC over.
    var gapProposal: JSONObject?
    /// When this session last answered a challenge: no new hello goes out
    /// while that answer may still be in the TCC's hands. (A second hello
    /// meant a second admission, and the TCC re-sends the waiting proposal
    /// on every admission: the consumer countersigned it twice.)
    var answeredAt = 0.0
    static let answerGraceSeconds = 5.0
    var tscWaiters: [Int: CheckedContinuation<VerifiableCredential, Error>] = [:]
    /// Which wait owns each sequence's waiter (a timed-out wait must not end a newer one).
    var waiterTokens: [Int: Int] = [:]
    var nextWaiterToken = 0
    var subscription: UInt32?
    public private(set) var closedState: JSON?
    /// Messages the TCC refused, counted (and the last one's text).
    public private(set) var refusals = 0
    public private(set) var lastRefusal: String?
    /// The consumer's last countersignature (sent again if the TCC could not store its TSC).
    var lastCountersign: (seq: Int, message: ChannelMessage)?

    public init(chain: ChainClient, me: PartyIdentity, terms: SettlementTerms, store: TSCStore? = nil) throws {
        guard me.did == terms.provider || me.did == terms.consumer else {
            throw ChainError("\(me.did) is not a party of channel \(terms.channelId)")
        }
        self.chain = chain
        self.me = me
        self.terms = terms
        self.role = me.did == terms.provider ? .provider : .consumer
        self.store = store
        q = DispatchQueue(label: "efsc.session.\(terms.channelId)")
        if let store, let (s, tsc) = try store.latest(channel: terms.channelId) {
            lastSequence = s
            latest = tsc
            lastEnd = (tsc.subject?["end"]?.stringValue).flatMap(DateTime.parse)
        }
    }

    var counterparty: String { role == .provider ? terms.consumer : terms.provider }
    var up: String { Topics.channelUp(terms.channelId, party: PartyName.of(me.did)) }

    func send(_ m: ChannelMessage) async throws { try await chain.bus.publish(up, payload: m.bytes, qos: .atLeastOnce) }

    func addKeys(of did: String) async throws {
        let r = try await chain.resolveDID(did)
        guard !r.deactivated else { throw ChainError("\(did) is deactivated") }
        var found: [String: Ed25519PublicKey] = [:]
        for ref in r.document.relationships[.assertionMethod] ?? [] {
            let url = ref.hasPrefix("#") ? did + ref : ref
            if let k = try? r.document.signingKey(url, for: .assertionMethod) { found[url] = k }
        }
        lock.withLock { for (u, k) in found { keys[u] = k } }
    }

    /// Subscribes, says hello until the TCC challenges, answers, and returns
    /// once admitted. Throws if no TCC answers within `timeout` seconds or
    /// the TCC refuses.
    public func open(timeout: Double = 20) async throws {
        if template == nil {
            template = try await ChainTemplateStore(chain: chain).template(id: terms.templateId, version: terms.templateVersion)
            try await addKeys(of: counterparty)
        }
        if subscription == nil {
            subscription = try await chain.bus.subscribe(Topics.channelDown(terms.channelId, party: PartyName.of(me.did)), qos: .atLeastOnce) {
                [weak self] m in
                guard let s = self else { return }
                s.q.async { s.handle(m) }
            }
        }
        let deadline = DateTime.currentTime() + timeout
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, Error>) in
            lock.withLock {
                admittedWaiter?.resume(throwing: ChainError("superseded by a new authentication"))
                admittedWaiter = c
                answeredAt = 0
            }
            Task {
                // Hello until admitted: the TCC may not have heard of the channel yet.
                while DateTime.currentTime() < deadline {
                    guard self.lock.withLock({ self.admittedWaiter != nil }) else { return }
                    if DateTime.currentTime() - self.lock.withLock({ self.answeredAt }) > Self.answerGraceSeconds {
                        try? await self.send(ChannelMessage(.hello, channel: self.terms.channelId, ["did": .string(self.me.did)]))
                    }
                    try? await Task.sleep(nanoseconds: 1_000_000_000)
                }
                self.lock.withLock { self.admittedWaiter.take() }?.resume(
                    throwing: ChannelTimeout(what: "admission of \(self.me.did) to channel \(self.terms.channelId) by a TCC", seconds: timeout))
            }
        }
    }

    /// Stops listening on the channel.
    public func detach() async {
        if let s = subscription { try? await chain.bus.unsubscribe(id: s) }
        subscription = nil
    }

    // MARK: provider

    /// Proposes the next settlement (`usage` unit-hours over the next period)
    /// and returns the issued TSC. The first period starts at `firstStart`
    /// (default: one period ago). `final` asks for a cooperative close.
    ///
    /// Rides through a lost broker connection, a lost message and a TCC
    /// restart: without the TSC after `retryEvery` seconds the same proposal
    /// is sent again (the TCC drops a repeat while that TSC is written, and
    /// answers one already issued with its TSC, so none is issued twice);
    /// refused as `not-admitted` (a restarted TCC), the session
    /// authenticates again first. Gives up with `ChannelTimeout` after
    /// `timeout` seconds without the TSC; any other refusal is thrown as
    /// `ChannelRefusal`.
    public func settle(usage: Double, final: Bool = false, firstStart: Double? = nil, timeout: Double = 15, retryEvery: Double = 5) async throws -> VerifiableCredential {
        guard role == .provider else { throw ChainError("only the provider proposes settlements") }
        let deadline = DateTime.currentTime() + timeout
        var proposal: (seq: Int, message: ChannelMessage)?
        var attempts = 0
        while true {
            let remaining = deadline - DateTime.currentTime()
            let (seq, start, tccDID) = lock.withLock { (lastSequence + 1, lastEnd ?? firstStart ?? DateTime.currentTime() - Double(terms.period), tcc) }
            guard remaining > 0 else {
                throw ChannelTimeout(what: "TSC for sequence \(seq) of channel \(terms.channelId) (proposed \(attempts) times)", seconds: timeout)
            }
            guard let tccDID, let template else { throw ChainError("the session is not open") }
            if proposal?.seq != seq {
                let claim = terms.claim(sequence: seq, start: start, usage: usage, final: final)
                let vc = try TSC.propose(claim: .object(claim), template: template, tccDID: tccDID, providerKey: me.key, providerMethod: me.verificationMethod)
                proposal = (seq, ChannelMessage(.propose, channel: terms.channelId, ["sequence": .number(Double(seq)), "credential": .object(vc.json)]))
            }
            let m = proposal!.message
            attempts += 1
            do {
                return try await awaitTSC(seq, timeout: min(retryEvery, remaining)) { try await self.send(m) }
            } catch let e as ChannelRefusal where e.code == "not-admitted" {
                // The TCC no longer knows this party (it restarted): authenticate again.
                do { try await open(timeout: max(1, deadline - DateTime.currentTime())) } catch is ChannelTimeout { continue }
            } catch is ChannelTimeout {
                continue
            } catch is MQTTError {
                // Not connected (and not queueing): wait for the connection to come back.
                try? await Task.sleep(nanoseconds: 500_000_000)
            }
        }
    }

    /// Waits until the TSC with `sequence` has arrived (consumer or provider).
    public func waitFor(sequence: Int, timeout: Double = 30) async throws -> VerifiableCredential {
        try await awaitTSC(sequence, timeout: timeout) {}
    }

    func awaitTSC(_ seq: Int, timeout: Double, start: @escaping @Sendable () async throws -> Void) async throws -> VerifiableCredential {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<VerifiableCredential, Error>) in
            let (token, done) = lock.withLock { () -> (Int, VerifiableCredential?) in
                if seq <= lastSequence, let l = latest, l.subject?["sequence"]?.intValue == seq { return (0, l) }
                tscWaiters[seq]?.resume(throwing: ChainError("superseded"))
                tscWaiters[seq] = c
                nextWaiterToken += 1
                waiterTokens[seq] = nextWaiterToken
                return (nextWaiterToken, nil)
            }
            if let done {
                c.resume(returning: done)
                return
            }
            // Ends only this wait: a later wait for the same sequence has its own token.
            func end(_ error: any Error) {
                lock.withLock { () -> CheckedContinuation<VerifiableCredential, Error>? in
                    guard waiterTokens[seq] == token else { return nil }
                    waiterTokens[seq] = nil
                    return tscWaiters.removeValue(forKey: seq)
                }?.resume(throwing: error)
            }
            Task {
                do { try await start() } catch {
                    end(error)
                    return
                }
                try? await Task.sleep(nanoseconds: UInt64(timeout * 1e9))
                let last = self.lock.withLock { self.lastRefusal }.map { " (last refusal: \($0))" } ?? ""
                end(ChannelTimeout(what: "TSC for sequence \(seq) of channel \(self.terms.channelId)\(last)", seconds: timeout))
            }
        }
    }

    // MARK: incoming

    func handle(_ m: MQTTMessage) {
        guard let msg = try? ChannelMessage(bytes: m.payload), msg.channelId == terms.channelId else { return }
        switch msg.kind {
        case .challenge:
            // Only a challenge this session asked for (it said hello) is answered.
            guard msg["did"]?.stringValue == me.did, lock.withLock({ admittedWaiter != nil }) else { return }
            do {
                let a = try ChannelAuth.answer(msg, key: me.keyAgreementKey, did: me.did)
                lock.withLock { answeredAt = DateTime.currentTime() }
                Task { try? await self.send(a) }
                if let t = msg["tcc"]?.stringValue { lock.withLock { tcc = t } }
            } catch {
                lock.withLock { admittedWaiter.take() }?.resume(throwing: error)
            }
        case .admitted:
            guard let t = msg["tcc"]?.stringValue else { return }
            Task {
                do {
                    try await self.addKeys(of: t)
                } catch {
                    self.lock.withLock { self.admittedWaiter.take() }?.resume(throwing: error)
                    return
                }
                self.q.async {
                    self.lock.withLock { self.tcc = t }
                    // The TCC may hold a TSC this party never received (it
                    // crashed after persisting, before sending): take it now.
                    if let cj = msg["credential"]?.objectValue { self.accept(VerifiableCredential(json: cj)) }
                    self.lock.withLock { self.admittedWaiter.take() }?.resume()
                    if let p = self.lock.withLock({ self.gapProposal.take() }) { self.countersign(p) }
                }
            }
        case .propose:
            guard role == .consumer, let doc = msg["credential"]?.objectValue else { return }
            countersign(doc)
        case .tsc:
            guard let doc = msg["credential"]?.objectValue else { return }
            accept(VerifiableCredential(json: doc))
        case .closed:
            lock.withLock { closedState = msg.json }
            onClosed?(msg.json)
        case .error:
            let code = msg["code"]?.stringValue ?? "error"
            let refusal = ChannelRefusal(code: code, message: msg["error"]?.stringValue ?? "", sequence: msg["sequence"]?.intValue)
            let text = refusal.description
            let waiter = lock.withLock { () -> CheckedContinuation<VerifiableCredential, Error>? in
                refusals += 1
                lastRefusal = text
                // A consumer waits for the provider's progress: a refused
                // countersignature is recovered from (authenticate again, sign
                // again, or the provider proposes again), not the end of its wait;
                // it times out naming the last refusal.
                if role == .consumer { return nil }
                if let s = msg["sequence"]?.intValue { return tscWaiters.removeValue(forKey: s) }
                if code == "not-admitted", let k = tscWaiters.keys.min() { return tscWaiters.removeValue(forKey: k) }
                return nil
            }
            waiter?.resume(throwing: refusal)
            if ["not-a-party", "unknown-did", "wrong-answer", "late", "replayed", "busy"].contains(code) {
                lock.withLock { admittedWaiter.take() }?.resume(throwing: refusal)
            }
            // The TCC could not store the TSC of this countersignature: countersign again.
            if code == "internal" && role == .consumer, let s = refusal.sequence, let c = lock.withLock({ lastCountersign }), c.seq == s {
                Task { try? await self.send(c.message) }
            }
            // A consumer the TCC no longer knows (it restarted) authenticates again.
            if code == "not-admitted" && role == .consumer { Task { try? await self.open() } }
        default:
            break
        }
    }

    func verify(_ doc: JSONObject, proof: JSONObject, by did: String) throws {
        guard let vm = proof["verificationMethod"]?.stringValue, DIDSyntax.did(ofURL: vm) == did, let k = lock.withLock({ keys[vm] }) else {
            throw ChainError("proof \(proof["id"]?.stringValue ?? "?") is not by an assertion key of \(did)")
        }
        try EddsaJcs2022.verifyProof(document: doc, proof: proof, key: k)
    }

    func countersign(_ doc: JSONObject) {
        do {
            let vc = VerifiableCredential(json: doc)
            let claim = vc.subject ?? .null
            let (last, end) = lock.withLock { (lastSequence, lastEnd) }
            if let s = claim["sequence"]?.intValue, s > last + 1 {
                // A TSC this consumer never received: the TCC hands its latest
                // over on admission, so authenticate again and come back to this.
                let opening = lock.withLock { () -> Bool in
                    gapProposal = doc
                    return admittedWaiter != nil
                }
                if !opening { Task { try? await self.open() } }
                throw ChainError("sequence \(s) follows \(last + 1), which this consumer has not received; authenticating again to fetch it")
            }
            try terms.check(claim, lastSequence: last, lastEnd: end, now: DateTime.currentTime())
            guard let t = template, t.validate(claim).isEmpty else { throw ChainError("the claim does not satisfy the settlement template") }
            guard vc.issuer == lock.withLock({ tcc }) else { throw ChainError("the proposal names another TCC") }
            let proofs = vc.proofs
            guard proofs.count == 1, proofs[0]["id"]?.stringValue == TSC.providerProofID else { throw ChainError("the proposal lacks the provider's proof") }
            var unsigned = doc
            unsigned["proof"] = nil
            try verify(unsigned, proof: proofs[0], by: terms.provider)
            guard approve(claim) else { throw ChainError("declined by the consumer's policy") }
            let signed = try vc.signed(with: me.key, options: .init(verificationMethod: me.verificationMethod, id: TSC.consumerProofID))
            let m = ChannelMessage(.countersign, channel: terms.channelId, ["sequence": claim["sequence"] ?? .null, "credential": .object(signed.json)])
            if let s = claim["sequence"]?.intValue { lock.withLock { lastCountersign = (s, m) } }
            Task { try? await self.send(m) }
        } catch {
            lock.withLock {
                refusals += 1
                lastRefusal = "not countersigned: \(error)"
            }
        }
    }

    /// Checks an issued TSC (TCC proof chained to both parties', the
    /// counterparty's proof) and keeps it if it is the next one.
    func accept(_ vc: VerifiableCredential) {
        guard let seq = vc.subject?["sequence"]?.intValue else { return }
        do {
            if seq <= lock.withLock({ lastSequence }) { return }
            if verifyReceived {
                let proofs = vc.proofs
                guard proofs.count == 3, let tp = proofs.first(where: { $0["id"]?.stringValue == TSC.tccProofID }),
                    Set(EddsaJcs2022.previousProofIDs(tp)) == [TSC.providerProofID, TSC.consumerProofID]
                else { throw ChainError("the TSC lacks a TCC proof chained to both parties' proofs") }
                guard let t = lock.withLock({ tcc }) ?? vc.issuer, vc.issuer == t else { throw ChainError("the TSC is issued by \(vc.issuer ?? "?"), not the channel's TCC") }
                try verify(vc.json, proof: tp, by: t)
                let other = role == .provider ? TSC.consumerProofID : TSC.providerProofID
                guard let op = proofs.first(where: { $0["id"]?.stringValue == other }) else { throw ChainError("the TSC lacks the \(counterparty) proof") }
                var unsigned = vc.json
                unsigned["proof"] = nil
                try verify(unsigned, proof: op, by: counterparty)
            }
            try store?.put(vc, channel: terms.channelId, sequence: seq)
        } catch {
            lock.withLock {
                refusals += 1
                lastRefusal = "TSC \(seq) not accepted: \(error)"
            }
            lock.withLock { tscWaiters.removeValue(forKey: seq) }?.resume(throwing: ChainError("TSC \(seq) not accepted: \(error)"))
            return
        }
        let waiters = lock.withLock { () -> [CheckedContinuation<VerifiableCredential, Error>] in
            lastSequence = seq
            lastEnd = (vc.subject?["end"]?.stringValue).flatMap(DateTime.parse)
            latest = vc
            let ready = tscWaiters.keys.filter { $0 <= seq }
            return ready.compactMap { tscWaiters.removeValue(forKey: $0) }
        }
        onTSC?(vc)
        for w in waiters { w.resume(returning: vc) }
    }
}

/// A party's own copy of its TSCs: one canonical JSON file per settlement,
/// `DIR/<channel>/<sequence>.json`, written and fsync'd before it counts as received.
public final class TSCStore: @unchecked Sendable {
    public let directory: String

    public init(directory: String) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    func path(_ channel: String, _ seq: Int) -> String { "\(directory)/\(channel)/\(String(format: "%08d", seq)).json" }

    public func put(_ vc: VerifiableCredential, channel: String, sequence: Int) throws {
        try FileManager.default.createDirectory(atPath: "\(directory)/\(channel)", withIntermediateDirectories: true)
        let bytes = try JCS.canonicalize(.object(vc.json)) + [0x0A]
        let p = path(channel, sequence)
        let tmp = p + ".\(getpid()).\(Hex.encode(Digest.randomBytes(4))).tmp"
        let fd = Foundation.open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw ChainError("cannot write \(tmp): errno \(errno)") }
        let ok = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == bytes.count && fsync(fd) == 0
        close(fd)
        guard ok, rename(tmp, p) == 0 else { throw ChainError("cannot write \(p): errno \(errno)") }
    }

    /// Every sequence number held for `channel`, ascending.
    public func sequences(channel: String) -> [Int] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "\(directory)/\(channel)")) ?? [])
            .compactMap { $0.hasSuffix(".json") ? Int($0.dropLast(5)) : nil }.sorted()
    }

    public func get(channel: String, sequence: Int) throws -> VerifiableCredential? {
        guard let d = FileManager.default.contents(atPath: path(channel, sequence)) else { return nil }
        guard let o = try JSONParser.parse(Array(d)).objectValue else { throw ChainError("\(path(channel, sequence)) is not a JSON object") }
        return VerifiableCredential(json: o)
    }

    public func latest(channel: String) throws -> (Int, VerifiableCredential)? {
        guard let s = sequences(channel: channel).last, let vc = try get(channel: channel, sequence: s) else { return nil }
        return (s, vc)
    }
}
