import EFSCChannel
import EFSCCore
import EFSCCredentials

/// What a channel's state machine needs that is not a pure function of its
/// events: the TCC's DID, fresh challenges (random secrets sealed with
/// HPKE) and the proof cryptography (which the service times). Injected,
/// so a transcript of events gives the same actions every time.
public protocol ChannelCrypto: Sendable {
    /// The TCC's DID (issuer of every TSC).
    var tcc: String { get }
    /// A new challenge for `did`: the message to send, its id and the secret the answer must give back.
    func challenge(to key: X25519PublicKey, channel: String, did: String, expires: Double) throws -> (message: ChannelMessage, id: String, secret: [UInt8])
    /// The hash of the document a Data Integrity proof signs (JCS of proof options and document).
    func inputHash(_ document: JSONObject, _ proof: JSONObject) throws -> [UInt8]
    func verify(inputHash: [UInt8], proof: JSONObject, key: Ed25519PublicKey) throws
    /// Adds the TCC's proof to a verified, jointly signed TSC; returns it with its JCS bytes.
    func issue(_ joint: VerifiableCredential, created: String) throws -> (json: JSONObject, bytes: [UInt8])
}

/// What the machine is told besides its event: the clock, the adaptive
/// evidence factor of the moment, and the crypto.
public struct ChannelContext {
    public var now: Double
    public var evidenceFactor: Int
    /// How long a challenge can be answered (seconds).
    public var challengeSeconds: Double
    public let crypto: any ChannelCrypto

    public init(now: Double, evidenceFactor: Int = 1, challengeSeconds: Double = 10, crypto: any ChannelCrypto) {
        self.now = now
        self.evidenceFactor = evidenceFactor
        self.challengeSeconds = challengeSeconds
        self.crypto = crypto
    }
}

/// A party DID's keys as the identity chain gives them.
public struct PartyKeys: Sendable {
    public let keyAgreement: X25519PublicKey
    /// Assertion method URL → key.
    public let assertion: [String: Ed25519PublicKey]
    public init(keyAgreement: X25519PublicKey, assertion: [String: Ed25519PublicKey]) {
        self.keyAgreement = keyAgreement
        self.assertion = assertion
    }
}

/// Evidence of one issued TSC, due on chain.
public struct EvidenceItem: Sendable, Equatable {
    public let channelId: String
    public let sequence: Int
    public let tscHash: String
    public var json: JSON { ["channelId": .string(channelId), "sequence": .number(Double(sequence)), "tscHash": .string(tscHash)] }
    public init(channelId: String, sequence: Int, tscHash: String) {
        self.channelId = channelId
        self.sequence = sequence
        self.tscHash = tscHash
    }
    public init?(json: JSON) {
        guard let c = json["channelId"]?.stringValue, let s = json["sequence"]?.intValue, let h = json["tscHash"]?.stringValue else { return nil }
        self.init(channelId: c, sequence: s, tscHash: h)
    }
}

/// One atomic write a channel asks for: its next record, with the TSC it
/// issues and the evidence that makes due, if any.
public struct ChannelWrite: Sendable, Equatable {
    public let record: ChannelRecord
    public let tscSequence: Int?
    public let tsc: [UInt8]?
    public let evidence: EvidenceItem?
}

/// Inputs of a channel's state machine.
public enum ChannelEvent: Sendable {
    /// A payload on the channel's `up` topic of `party` (the topic's segment, unverified).
    case message(party: String, payload: [UInt8])
    /// The identity chain's answer to a `resolve` action.
    case resolved(did: String, party: String, PartyKeys)
    case resolveFailed(did: String, party: String, reason: String)
    /// The TIC's settlement template, once read from the chain.
    case template(Template)
    /// The persist action with this id is durable.
    case persisted(Int)
    /// The persist action with this id failed: nothing of it happened.
    case persistFailed(Int, reason: String)
    /// The channel as chain state records it (read after a block touched it).
    case chain(ChannelState, fields: JSONObject)
}

/// Outputs of a channel's state machine, carried out in order by the TCC service.
public enum ChannelAction: Sendable, Equatable {
    /// Publish on the `down` topic of this party DID.
    case send(to: String, payload: [UInt8])
    /// A message from `party` (the topic's segment) refused: counted by code
    /// (`auth`: an authentication failure) and logged. The error reply, if any, is a `send`.
    case refused(party: String, code: String, auth: Bool, message: String)
    /// Look the DID up on the identity chain; answer with `resolved` or `resolveFailed`.
    case resolve(did: String, party: String)
    /// Write this durably; answer with `persisted(id)` or `persistFailed(id)`.
    case persist(id: Int, ChannelWrite)
    /// Send `admitted` with these fields to the DID, adding the stored TSC of `tscSequence` as `credential`.
    case admitted(did: String, fields: JSONObject, tscSequence: Int?)
    /// Send the stored TSC of this sequence to the DID again (a party that retries after missing it).
    case resendTSC(to: String, sequence: Int)
    /// A TSC is durable and sent (counted).
    case issued(sequence: Int)
    /// Evidence due on chain (already durable in the same write).
    case evidence(EvidenceItem)
    /// Record `channel.close` (cooperative) with this final TSC.
    case closeCooperatively(tsc: JSONObject)
    case stateChanged(from: ChannelState, to: ChannelState)
    case log(String)
}

/// One channel's protocol (topics.md, "The channel protocol") as a pure,
/// deterministic state machine: `step(event) → actions`, like the PBFT
/// replica. It owns every rule: admission by DID challenge and its bounds,
/// proposal checks against the TIC and its template, the countersignature,
/// issuing, the evidence policy, closing. The service around it only does
/// I/O. The durable record changes only when the persist action that
/// carries it completed: a TSC is sent, counted and its sequence used only
/// after it is durable, and at most one write per channel is in flight
/// (so writes land in order). Chain states only move forward.
public struct ChannelMachine: Sendable {
    public let terms: SettlementTerms
    /// The durable state (as last persisted).
    public private(set) var record: ChannelRecord
    var template: Template?
    /// Admitted parties: DID → assertion method URL → key.
    var admitted: [String: [String: Ed25519PublicKey]] = [:]
    struct Challenge: Sendable {
        let did: String
        let secret: [UInt8]
        let expires: Double
        let keys: [String: Ed25519PublicKey]
    }
    var challenges: [String: Challenge] = [:]
    /// DID lookups asked for and not answered (they count against the challenge bound).
    var lookups = 0
    struct Proposal: Sendable {
        let seq: Int
        let unsigned: JSONObject
        let providerProof: JSONObject
        let final: Bool
        let inputHash: [UInt8]
        let end: Double?
    }
    /// The proposal waiting for the consumer's countersignature.
    var pending: Proposal?
    enum Write: Sendable {
        case tsc(id: Int, record: ChannelRecord, message: [UInt8], evidence: EvidenceItem?, final: JSONObject?)
        case record(id: Int, record: ChannelRecord, fields: JSONObject)
        var id: Int {
            switch self {
            case .tsc(let id, _, _, _, _), .record(let id, _, _): id
            }
        }
        var record: ChannelRecord {
            switch self {
            case .tsc(_, let r, _, _, _), .record(_, let r, _): r
            }
        }
    }
    /// The one write in flight.
    var writing: Write?
    /// A chain state seen while a write was in flight, applied after it.
    var deferredChain: (state: ChannelState, fields: JSONObject)?
    var nextWrite = 1

    /// Outstanding challenges (and lookups for new ones) per channel.
    public static let challengesPerChannel = WireLimits.challengesPerChannel

    public init(terms: SettlementTerms, record: ChannelRecord? = nil) {
        self.terms = terms
        self.record = record ?? ChannelRecord(channelId: terms.channelId)
    }

    public var id: String { terms.channelId }
    public var state: ChannelState { record.state }
    /// Whether a write is in flight (tests, status).
    public var isWriting: Bool { writing != nil }
    public var hasTemplate: Bool { template != nil }

    public mutating func step(_ event: ChannelEvent, _ ctx: ChannelContext) -> [ChannelAction] {
        var out: [ChannelAction] = []
        switch event {
        case .message(let party, let payload): onMessage(party, payload, ctx, &out)
        case .resolved(let did, let party, let keys): onResolved(did, party, keys, ctx, &out)
        case .resolveFailed(let did, let party, let reason):
            guard lookups > 0 else { break }
            lookups -= 1
            refuse(party, "cannot resolve \(did) on the identity chain: \(reason)", code: "unknown-did", auth: true, &out)
        case .template(let t): template = t
        case .persisted(let id): onPersisted(id, ctx, &out)
        case .persistFailed(let id, let reason): onPersistFailed(id, reason, &out)
        case .chain(let s, let fields): onChain(s, fields, &out)
        }
        return out
    }

    // MARK: messages

    func didOf(party: String) -> String? {
        if PartyName.of(terms.provider) == party { return terms.provider }
        if PartyName.of(terms.consumer) == party { return terms.consumer }
        return nil
    }

    func refuse(_ party: String, _ message: String, code: String, sequence: Int? = nil, auth: Bool = false, _ out: inout [ChannelAction]) {
        out.append(.refused(party: party, code: code, auth: auth, message: message))
        // Only the channel's two parties have a down topic worth writing to.
        if let did = didOf(party: party) { out.append(.send(to: did, payload: ChannelMessage.error(id, message, code: code, sequence: sequence).bytes)) }
    }

    mutating func onMessage(_ party: String, _ payload: [UInt8], _ ctx: ChannelContext, _ out: inout [ChannelAction]) {
        let m: ChannelMessage
        do { m = try ChannelMessage(bytes: payload) } catch {
            refuse(party, "\(error)", code: "malformed", &out)
            return
        }
        guard m.channelId == id else {
            refuse(party, "channelId \(m.channelId) does not match the topic's \(id)", code: "malformed", &out)
            return
        }
        switch m.kind {
        case .hello: hello(party, m, ctx, &out)
        case .answer: answer(party, m, ctx, &out)
        case .propose: propose(party, m, payload, ctx, &out)
        case .countersign: countersign(party, m, ctx, &out)
        default: refuse(party, "a party cannot send '\(m.kind.rawValue)'", code: "unexpected", &out)
        }
    }

    mutating func hello(_ party: String, _ m: ChannelMessage, _ ctx: ChannelContext, _ out: inout [ChannelAction]) {
        guard let did = m["did"]?.stringValue, did == terms.provider || did == terms.consumer else {
            refuse(party, "\(m["did"]?.stringValue ?? "(no DID)") is not a party of channel \(id)", code: "not-a-party", auth: true, &out)
            return
        }
        guard PartyName.of(did) == party else {
            refuse(party, "\(did) must use its own topic (party \(PartyName.of(did)))", code: "not-a-party", auth: true, &out)
            return
        }
        challenges = challenges.filter { $0.value.expires > ctx.now }
        // Lookups in flight count too: the bound holds before the chain is asked.
        guard challenges.count + lookups < Self.challengesPerChannel else {
            refuse(party, "too many outstanding challenges; answer one first", code: "busy", auth: true, &out)
            return
        }
        lookups += 1
        out.append(.resolve(did: did, party: party))
    }

    mutating func onResolved(_ did: String, _ party: String, _ keys: PartyKeys, _ ctx: ChannelContext, _ out: inout [ChannelAction]) {
        // An answer to a lookup this machine did not ask for (one from before a restart) is ignored.
        guard lookups > 0 else { return }
        lookups -= 1
        guard did == terms.provider || did == terms.consumer else { return }
        do {
            let expires = ctx.now + ctx.challengeSeconds
            let c = try ctx.crypto.challenge(to: keys.keyAgreement, channel: id, did: did, expires: expires)
            challenges[c.id] = Challenge(did: did, secret: c.secret, expires: expires, keys: keys.assertion)
            out.append(.send(to: did, payload: c.message.bytes))
        } catch {
            refuse(party, "cannot build a challenge: \(error)", code: "internal", auth: true, &out)
        }
    }

    mutating func answer(_ party: String, _ m: ChannelMessage, _ ctx: ChannelContext, _ out: inout [ChannelAction]) {
        guard let cid = m["challengeId"]?.stringValue, let c = challenges.removeValue(forKey: cid) else {
            refuse(party, "unknown or already answered challenge", code: "replayed", auth: true, &out)
            return
        }
        guard PartyName.of(c.did) == party, m["did"]?.stringValue == c.did else {
            refuse(party, "the answer is not from the challenged DID", code: "not-a-party", auth: true, &out)
            return
        }
        guard ctx.now <= c.expires else {
            refuse(party, "the answer came after the challenge expired (\(ctx.challengeSeconds) s)", code: "late", auth: true, &out)
            return
        }
        guard let p = m["plaintext"]?.stringValue.flatMap(Base64URL.decode), ChannelAuth.matches(p, c.secret) else {
            refuse(party, "wrong answer to the challenge", code: "wrong-answer", auth: true, &out)
            return
        }
        admitted[c.did] = c.keys
        let fields: JSONObject = [
            "did": .string(c.did), "tcc": .string(ctx.crypto.tcc), "state": .string(record.state.rawValue), "sequence": .number(Double(record.lastSequence)),
            "lastEnd": record.lastEnd.map { .string(DateTime.format($0)) } ?? .null,
        ]
        out.append(.admitted(did: c.did, fields: fields, tscSequence: record.lastSequence > 0 ? record.lastSequence : nil))
        // A consumer that (re)joins gets the proposal waiting for it.
        if c.did == terms.consumer, let p = pending, record.state == .open {
            var j = p.unsigned
            j["proof"] = .object(p.providerProof)
            out.append(.send(to: c.did, payload: ChannelMessage(.propose, channel: id, ["sequence": .number(Double(p.seq)), "credential": .object(j)]).bytes))
        }
    }

    /// The key of an admitted party for a proof's verification method.
    func key(_ party: String, _ proof: JSONObject) throws(ChainError) -> Ed25519PublicKey {
        guard let vm = proof["verificationMethod"]?.stringValue, let key = admitted[party]?[vm] else {
            throw ChainError("the proof's verificationMethod is not an assertion key of \(party)")
        }
        return key
    }

    /// The sequence of the TSC being written, if one is.
    var writingSequence: Int? {
        if case .tsc(_, let r, _, _, _) = writing { return r.lastSequence }
        return nil
    }

    mutating func propose(_ party: String, _ m: ChannelMessage, _ raw: [UInt8], _ ctx: ChannelContext, _ out: inout [ChannelAction]) {
        let provider = terms.provider
        guard party == PartyName.of(provider), admitted[provider] != nil else {
            refuse(party, "only the admitted provider can propose; authenticate first", code: "not-admitted", &out)
            return
        }
        let seq = m["credential"]?["credentialSubject"]?["sequence"]?.intValue
        guard record.state == .open, !(deferredChain.map { $0.state > .open } ?? false), writing.map({ $0.record.state == .open }) ?? true else {
            refuse(party, "channel \(id) is \(record.state == .open ? ChannelState.closing.rawValue : record.state.rawValue)", code: "closed", sequence: seq, &out)
            return
        }
        // A retry of the proposal whose TSC is being written: that TSC comes.
        if let s = seq, s == writingSequence { return }
        // A retry of one already issued: the TSC again.
        if let s = seq, s > 0, s == record.lastSequence {
            out.append(.resendTSC(to: provider, sequence: s))
            return
        }
        do {
            guard let doc = m["credential"]?.objectValue else { throw ChainError("propose needs a credential") }
            let vc = VerifiableCredential(json: doc)
            do { try vc.checkStructure() } catch { throw ChainError("\(error)") }
            guard vc.types.contains(TSC.type) else { throw ChainError("the credential is not a \(TSC.type)") }
            guard vc.issuer == ctx.crypto.tcc else { throw ChainError("the TSC must name this channel's TCC \(ctx.crypto.tcc) as issuer") }
            guard let ref = vc.template, ref.id == terms.templateId, ref.version == terms.templateVersion else {
                throw ChainError("the TSC must use the TIC's settlement template \(terms.templateId) v\(terms.templateVersion)")
            }
            guard let t = template else { throw ChainError("the settlement template is still loading; retry") }
            let claim = vc.subject ?? .null
            let violations = t.validate(claim)
            guard violations.isEmpty else { throw ChainError("claim: " + violations.map(\.description).joined(separator: "; ")) }
            let end = try terms.check(claim, lastSequence: record.lastSequence, lastEnd: record.lastEnd, now: ctx.now)
            let proofs = vc.proofs
            guard proofs.count == 1, let p = proofs.first, p["id"]?.stringValue == TSC.providerProofID else {
                throw ChainError("a proposal carries exactly the provider's proof (\(TSC.providerProofID))")
            }
            var unsigned = doc
            unsigned["proof"] = nil
            let h: [UInt8]
            do {
                h = try ctx.crypto.inputHash(unsigned, p)
                try ctx.crypto.verify(inputHash: h, proof: p, key: try key(provider, p))
            } catch let e as ChainError {
                throw e
            } catch {
                throw ChainError("proof by \(provider) does not verify: \(error)")
            }
            pending = Proposal(seq: claim["sequence"]!.intValue!, unsigned: unsigned, providerProof: p, final: claim["final"]?.boolValue == true, inputHash: h, end: end)
            // Forwarded as received: the consumer checks the same bytes.
            out.append(.send(to: terms.consumer, payload: raw))
        } catch {
            refuse(party, "\(error)", code: "invalid", sequence: seq, &out)
        }
    }

    mutating func countersign(_ party: String, _ m: ChannelMessage, _ ctx: ChannelContext, _ out: inout [ChannelAction]) {
        let consumer = terms.consumer
        guard party == PartyName.of(consumer), admitted[consumer] != nil else {
            refuse(party, "only the admitted consumer can countersign; authenticate first", code: "not-admitted", &out)
            return
        }
        let seq = m["credential"]?["credentialSubject"]?["sequence"]?.intValue
        // A retry while its TSC is written: that TSC comes. After: the TSC again.
        if let s = seq, s == writingSequence { return }
        if let s = seq, s > 0, s == record.lastSequence, pending == nil {
            out.append(.resendTSC(to: consumer, sequence: s))
            return
        }
        guard let p = pending, seq == p.seq, writing == nil else {
            refuse(party, "no proposal with sequence \(seq.map(String.init) ?? "?") is waiting (stale or replayed)", code: "stale", sequence: seq, &out)
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
            let issued: (json: JSONObject, bytes: [UInt8])
            do {
                // Both proofs of the set sign the same document when their contexts agree.
                let h = proofs[1]["@context"] == p.providerProof["@context"] ? p.inputHash : try ctx.crypto.inputHash(doc, proofs[1])
                try ctx.crypto.verify(inputHash: h, proof: proofs[1], key: try key(consumer, proofs[1]))
                doc["proof"] = .array([.object(proofs[0]), .object(proofs[1])])
                issued = try ctx.crypto.issue(VerifiableCredential(json: doc), created: DateTime.format(ctx.now))
            } catch let e as ChainError {
                throw e
            } catch {
                throw ChainError("proof by \(consumer) does not verify: \(error)")
            }
            let hash = Digest.sha256Hex(issued.bytes)
            var next = record
            next.lastSequence = p.seq
            next.lastEnd = p.end
            next.lastTscHash = hash
            next.sinceEvidence += 1
            let n = EvidencePolicy.n(every: terms.evidenceEvery, maxEvery: terms.evidenceEveryMax, factor: ctx.evidenceFactor)
            var evidence: EvidenceItem?
            if p.final || next.sinceEvidence >= n {
                evidence = EvidenceItem(channelId: id, sequence: p.seq, tscHash: hash)
                next.sinceEvidence = 0
            }
            if p.final { next.state = .closing }
            let w = nextWrite
            nextWrite += 1
            writing = .tsc(id: w, record: next, message: Self.tscMessage(channel: id, sequence: p.seq, tsc: issued.bytes, hash: hash), evidence: evidence, final: p.final ? issued.json : nil)
            out.append(.persist(id: w, ChannelWrite(record: next, tscSequence: p.seq, tsc: issued.bytes, evidence: evidence)))
        } catch {
            refuse(party, "\(error)", code: "invalid", sequence: seq, &out)
        }
    }

    /// The `tsc` message in JCS form around the TSC's bytes, already
    /// canonical (keys in order: channelId, credential, sequence, tscHash, type).
    public static func tscMessage(channel: String, sequence: Int, tsc: [UInt8], hash: String) -> [UInt8] {
        let id = (try? JCS.canonicalize(.string(channel))) ?? []
        return Array(#"{"channelId":"#.utf8) + id + Array(#","credential":"#.utf8) + tsc
            + Array(#","sequence":\#(sequence),"tscHash":"\#(hash)","type":"tsc"}"#.utf8)
    }

    // MARK: durability

    mutating func onPersisted(_ wid: Int, _ ctx: ChannelContext, _ out: inout [ChannelAction]) {
        guard let w = writing, w.id == wid else { return }
        writing = nil
        let before = record.state
        record = w.record
        switch w {
        case .tsc(_, let r, let message, let evidence, let final):
            if let p = pending, p.seq <= r.lastSequence { pending = nil }
            out.append(.issued(sequence: r.lastSequence))
            if let e = evidence { out.append(.evidence(e)) }
            out.append(.send(to: terms.provider, payload: message))
            out.append(.send(to: terms.consumer, payload: message))
            if record.state != before { out.append(.stateChanged(from: before, to: record.state)) }
            if let f = final { out.append(.closeCooperatively(tsc: f)) }
        case .record(_, let r, let fields):
            out.append(.stateChanged(from: before, to: r.state))
            var f: JSONObject = ["state": .string(r.state.rawValue)]
            for (k, v) in fields { f[k] = v }
            let msg = ChannelMessage(.closed, channel: id, f).bytes
            out.append(.send(to: terms.provider, payload: msg))
            out.append(.send(to: terms.consumer, payload: msg))
            out.append(.log("channel \(id) is \(r.state.rawValue) on chain (\(fields["closeKind"]?.stringValue ?? "?"))"))
        }
        if let d = deferredChain {
            deferredChain = nil
            onChain(d.state, d.fields, &out)
        }
    }

    mutating func onPersistFailed(_ wid: Int, _ reason: String, _ out: inout [ChannelAction]) {
        guard let w = writing, w.id == wid else { return }
        writing = nil
        switch w {
        case .tsc(_, let r, _, _, _):
            // Nothing advanced: the proposal still waits, so the consumer's retry is taken.
            out.append(.log("channel \(id): cannot persist TSC \(r.lastSequence): \(reason); not sent"))
            refuse(PartyName.of(terms.consumer), "the TSC could not be stored; countersign again", code: "internal", sequence: r.lastSequence, &out)
        case .record(_, let r, _):
            // Tried again with the next chain event that reports it.
            out.append(.log("channel \(id): cannot persist state \(r.state.rawValue): \(reason)"))
        }
        if let d = deferredChain {
            deferredChain = nil
            onChain(d.state, d.fields, &out)
        }
    }

    // MARK: chain

    mutating func onChain(_ s: ChannelState, _ fields: JSONObject, _ out: inout [ChannelAction]) {
        guard s > (writing?.record.state ?? record.state) else { return }
        // No proposal of a channel that is closing is countersigned.
        pending = nil
        guard writing == nil else {
            if deferredChain.map({ s > $0.state }) ?? true { deferredChain = (s, fields) }
            return
        }
        deferredChain = nil
        var next = record
        next.state = s
        let w = nextWrite
        nextWrite += 1
        writing = .record(id: w, record: next, fields: fields)
        out.append(.persist(id: w, ChannelWrite(record: next, tscSequence: nil, tsc: nil, evidence: nil)))
    }
}
