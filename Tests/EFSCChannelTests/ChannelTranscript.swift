import EFSCChannel
import EFSCCore
import EFSCCredentials
import EFSCTCC
import Foundation
import Testing

/// Deterministic crypto for transcripts: challenges are not sealed (the
/// secret is derived from the challenge id, so the harness can answer),
/// proofs are real eddsa-jcs-2022, the TCC's key is fixed.
final class TranscriptCrypto: ChannelCrypto, @unchecked Sendable {
    let tcc: String
    let key: Ed25519SecretKey
    private let lock = Lock()
    private var count = 0

    init(tcc: String, key: Ed25519SecretKey) {
        self.tcc = tcc
        self.key = key
    }

    static func secret(_ id: String) -> [UInt8] { Digest.sha256(Array("secret \(id)".utf8)) }

    func challenge(to key: X25519PublicKey, channel: String, did: String, expires: Double) throws -> (message: ChannelMessage, id: String, secret: [UInt8]) {
        let id = lock.withLock { () -> String in
            count += 1
            return "c\(count)"
        }
        let m = ChannelMessage(.challenge, channel: channel, ["did": .string(did), "challengeId": .string(id), "tcc": .string(tcc), "expires": .string(DateTime.format(expires))])
        return (m, id, Self.secret(id))
    }

    func inputHash(_ document: JSONObject, _ proof: JSONObject) throws -> [UInt8] { try EddsaJcs2022.inputHash(document: document, proof: proof) }

    func verify(inputHash: [UInt8], proof: JSONObject, key: Ed25519PublicKey) throws {
        try EddsaJcs2022.verifyProof(inputHash: inputHash, proof: proof, key: key)
    }

    func issue(_ joint: VerifiableCredential, created: String) throws -> (json: JSONObject, bytes: [UInt8]) {
        let vc = try TSC.issueVerified(joint, tccKey: key, tccMethod: tcc + "#key-1", created: created)
        return (vc.json, try JCS.canonicalize(.object(vc.json)))
    }
}

/// Runs a transcript (Tests/EFSCChannelTests/testdata/*.txt) against a
/// `ChannelMachine`, in the spirit of etcd-io/raft's interaction tests.
/// A line is a command; the lines after it that start with `> ` are the
/// actions it must produce, rendered by `render`, in order (a command
/// followed by none must produce none). An expected line ending in `...`
/// matches any action that begins with the text before it. `#` starts a
/// comment line.
///
/// Commands (roles: provider, consumer, stranger):
/// - `hello ROLE [did=ROLE] [topic=ROLE]`, `resolved ROLE`, `resolve-failed ROLE`
/// - `answer ROLE [challenge=ID] [wrong] [as=ROLE]` (default: the latest challenge sent to ROLE)
/// - `template` — the settlement template arrives
/// - `propose [seq=N] [final] [fee=X] [bad-proof] [issuer=DID] [from=ROLE]`
/// - `countersign [seq=N] [tampered] [bad-proof] [from=ROLE]`
/// - `persisted [id=N]`, `persist-failed [id=N]` (default: the latest persist asked for)
/// - `chain STATE` — the chain reports the channel in STATE
/// - `tick SECONDS`, `factor N` — the clock and the adaptive evidence factor
/// - `raw ROLE TEXT` — TEXT as the payload on ROLE's up topic
/// - `again` — the last message delivered once more (a duplicate)
/// - `crash` — a new machine from what is durable (what persisted), nothing else kept
struct ChannelTranscript {
    struct Party {
        let did: String
        let key: Ed25519SecretKey
        var method: String { did + "#key-1" }
        var name: String { PartyName.of(did) }
    }

    static func party(_ name: String, seed: UInt8) -> Party {
        Party(did: "did:efsc:devnet:\(name)", key: try! Ed25519SecretKey(seed: [UInt8](repeating: seed, count: 32)))
    }

    let provider = party("Prov1", seed: 1)
    let consumer = party("Cons1", seed: 2)
    let stranger = party("Mallory", seed: 3)
    let crypto = TranscriptCrypto(tcc: "did:efsc:devnet:TCC1", key: try! Ed25519SecretKey(seed: [UInt8](repeating: 9, count: 32)))
    let terms: SettlementTerms
    var machine: ChannelMachine
    /// What persisted, as a restarted TCC would find it.
    var disk: ChannelRecord
    var asked: [Int: ChannelWrite] = [:]
    var lastPersist: Int?
    var challenges: [String: String] = [:]
    var proposals: [Int: VerifiableCredential] = [:]
    var lastMessage: ChannelEvent?
    var now: Double
    var factor = 1
    let start: Double

    init() throws {
        let claim = ProviderTemplates.sampleTITClaim(provider: provider.did, consumer: consumer.did, period: 60, evidenceEvery: 3)
        var c = claim
        c["settlementStrategy"] = ["period": 60, "evidenceEvery": 3, "evidenceEveryMax": 12]
        terms = try SettlementTerms(channelId: "ch-1", tic: ["credentialSubject": .object(c)])
        machine = ChannelMachine(terms: terms)
        disk = machine.record
        start = DateTime.parse("2026-11-28T10:00:00Z")!
        now = start + 3600
    }

    func role(_ name: String) -> Party {
        switch name {
        case "provider": provider
        case "consumer": consumer
        default: stranger
        }
    }

    func roleName(_ did: String) -> String {
        did == provider.did ? "provider" : did == consumer.did ? "consumer" : did
    }

    /// One action as a transcript line.
    func render(_ a: ChannelAction) -> String {
        switch a {
        case .send(let to, let payload):
            let j = (try? JSONParser.parse(payload)) ?? .null
            let type = j["type"]?.stringValue ?? "?"
            var s = "send \(roleName(to)) \(type)"
            switch type {
            case "error": s += " \(j["code"]?.stringValue ?? "?")"
            case "challenge": s += " \(j["challengeId"]?.stringValue ?? "?")"
            case "closed": s += " \(j["state"]?.stringValue ?? "?")"
            default: break
            }
            if let q = j["sequence"]?.intValue { s += " seq=\(q)" }
            if type == "tsc", let h = j["tscHash"]?.stringValue, let c = j["credential"], let b = try? JCS.canonicalize(c) {
                s += Digest.sha256Hex(b) == h ? " hash-ok" : " hash-WRONG"
            }
            return s
        case .refused(_, let code, let auth, let message): return "refused \(code)\(auth ? " auth" : ""): \(message)"
        case .resolve(let did, _): return "resolve \(roleName(did))"
        case .persist(let id, let w):
            return "persist #\(id) seq=\(w.record.lastSequence) state=\(w.record.state.rawValue) since=\(w.record.sinceEvidence) tsc=\(w.tscSequence.map(String.init) ?? "-") evidence=\(w.evidence.map { String($0.sequence) } ?? "-")"
        case .admitted(let did, let f, let tsc):
            return "admitted \(roleName(did)) seq=\(f["sequence"]?.intValue ?? -1) state=\(f["state"]?.stringValue ?? "?") tsc=\(tsc.map(String.init) ?? "-")"
        case .resendTSC(let to, let seq): return "resend-tsc \(roleName(to)) seq=\(seq)"
        case .issued(let seq): return "issued seq=\(seq)"
        case .evidence(let e): return "evidence seq=\(e.sequence)"
        case .closeCooperatively(let tsc): return "close-cooperatively seq=\(tsc["credentialSubject"]?["sequence"]?.intValue ?? -1)"
        case .stateChanged(let from, let to): return "state \(from.rawValue) -> \(to.rawValue)"
        case .log(let line): return "log: \(line)"
        }
    }

    mutating func step(_ e: ChannelEvent) -> [ChannelAction] {
        let ctx = ChannelContext(now: now, evidenceFactor: factor, challengeSeconds: 10, crypto: crypto)
        let out = machine.step(e, ctx)
        for a in out {
            switch a {
            case .persist(let id, let w):
                asked[id] = w
                lastPersist = id
            case .send(let to, let payload):
                if let j = try? JSONParser.parse(payload), j["type"]?.stringValue == "challenge", let c = j["challengeId"]?.stringValue { challenges[roleName(to)] = c }
            default: break
            }
        }
        return out
    }

    func message(_ kind: ChannelMessage.Kind, _ fields: JSONObject) -> [UInt8] { ChannelMessage(kind, channel: terms.channelId, fields).bytes }

    func claim(_ seq: Int, final: Bool) -> JSONObject { terms.claim(sequence: seq, start: start + Double((seq - 1) * terms.period), usage: 0.01, final: final) }

    /// The provider's proposal of `seq` (not delivered).
    func proposal(_ seq: Int, final: Bool, fee: Double?, badProof: Bool, issuer: String?) throws -> VerifiableCredential {
        var c = claim(seq, final: final)
        if let f = fee { c["fee"] = .number(f) }
        let vc = VerifiableCredential(
            id: "urn:efsc:tsc:\(seq)", types: [TSC.type], issuer: issuer ?? crypto.tcc, validFrom: c["start"]!.stringValue!, subject: .object(c),
            template: (terms.templateId, terms.templateVersion))
        return try vc.signed(with: badProof ? stranger.key : provider.key, options: .init(verificationMethod: provider.method, created: "2026-11-28T11:00:00Z", id: TSC.providerProofID))
    }

    /// Runs one command; the actions it produced, or a usage error.
    mutating func run(_ line: String) throws -> [ChannelAction] {
        let words = line.split(separator: " ").map(String.init)
        var opts: [String: String] = [:]
        var flags = Set<String>()
        for w in words.dropFirst() {
            if let eq = w.firstIndex(of: "=") { opts[String(w[..<eq])] = String(w[w.index(after: eq)...]) } else { flags.insert(w) }
        }
        let arg = words.count > 1 ? words[1] : ""
        func deliver(_ party: String, _ payload: [UInt8]) -> [ChannelAction] {
            let e = ChannelEvent.message(party: party, payload: payload)
            lastMessage = e
            return step(e)
        }
        switch words.first {
        case "hello":
            let who = role(arg)
            let did = opts["did"].map { role($0).did } ?? who.did
            let topic = opts["topic"].map { role($0).name } ?? who.name
            return deliver(topic, message(.hello, ["did": .string(did)]))
        case "resolved":
            let who = role(arg)
            let ka = try X25519SecretKey(raw: Digest.sha256(Array(who.did.utf8))).publicKey
            return step(.resolved(did: who.did, party: who.name, PartyKeys(keyAgreement: ka, assertion: [who.method: who.key.publicKey])))
        case "resolve-failed":
            let who = role(arg)
            return step(.resolveFailed(did: who.did, party: who.name, reason: "not on chain"))
        case "answer":
            let who = role(arg)
            let sender = opts["as"].map(role) ?? who
            guard let cid = opts["challenge"] ?? challenges[arg] else { throw TranscriptError("no challenge was sent to \(arg)") }
            let secret = flags.contains("wrong") ? [UInt8](repeating: 0, count: 32) : TranscriptCrypto.secret(cid)
            return deliver(sender.name, message(.answer, ["did": .string(who.did), "challengeId": .string(cid), "plaintext": .string(Base64URL.encode(secret))]))
        case "template":
            return step(.template(BaseTemplates.tst))
        case "propose":
            let seq = Int(opts["seq"] ?? "") ?? machine.record.lastSequence + 1
            let signed = try proposal(seq, final: flags.contains("final"), fee: opts["fee"].flatMap(Double.init), badProof: flags.contains("bad-proof"), issuer: opts["issuer"])
            proposals[seq] = signed
            let from = opts["from"].map { role($0).name } ?? provider.name
            return deliver(from, message(.propose, ["sequence": .number(Double(seq)), "credential": .object(signed.json)]))
        case "countersign":
            let seq = Int(opts["seq"] ?? "") ?? machine.record.lastSequence + 1
            var p = try proposals[seq] ?? proposal(seq, final: false, fee: nil, badProof: false, issuer: nil)
            let signer = flags.contains("bad-proof") ? stranger.key : consumer.key
            var signed = try p.signed(with: signer, options: .init(verificationMethod: consumer.method, created: "2026-11-28T11:00:01Z", id: TSC.consumerProofID))
            if flags.contains("tampered") {
                var j = signed.json
                j["validFrom"] = "2026-11-28T09:00:00Z"
                signed = VerifiableCredential(json: j)
            }
            p = signed
            let from = opts["from"].map { role($0).name } ?? consumer.name
            return deliver(from, message(.countersign, ["sequence": .number(Double(seq)), "credential": .object(p.json)]))
        case "persisted", "persist-failed":
            guard let id = Int(opts["id"] ?? "") ?? lastPersist, let w = asked[id] else { throw TranscriptError("no persist was asked for") }
            if words[0] == "persisted" {
                disk = w.record
                return step(.persisted(id))
            }
            return step(.persistFailed(id, reason: "disk full"))
        case "chain":
            guard let s = ChannelState(rawValue: arg) else { throw TranscriptError("unknown state \(arg)") }
            return step(.chain(s, fields: s == .open ? [:] : ["closeKind": "cooperative"]))
        case "tick":
            now += Double(arg)!
            return []
        case "factor":
            factor = Int(arg)!
            return []
        case "raw":
            let text = words.dropFirst(2).joined(separator: " ")
            return deliver(role(arg).name, Array(text.utf8))
        case "again":
            guard let e = lastMessage else { throw TranscriptError("no message to deliver again") }
            return step(e)
        case "crash":
            machine = ChannelMachine(terms: terms, record: disk)
            asked = [:]
            lastPersist = nil
            return []
        default:
            throw TranscriptError("unknown command '\(line)'")
        }
    }

    struct TranscriptError: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }

    /// Runs the transcript at `path`; every mismatch as "file:line: …".
    static func check(_ path: String) throws -> [String] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var t = try ChannelTranscript()
        var failures: [String] = []
        let name = URL(fileURLWithPath: path).lastPathComponent
        var steps: [(line: Int, command: String, expected: [String])] = []
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let l = raw.trimmingCharacters(in: .whitespaces)
            if l.isEmpty || l.hasPrefix("#") { continue }
            if l.hasPrefix(">") {
                guard !steps.isEmpty else {
                    failures.append("\(name):\(i + 1): an expected action before any command")
                    continue
                }
                steps[steps.count - 1].expected.append(String(l.dropFirst()).trimmingCharacters(in: .whitespaces))
            } else {
                steps.append((i + 1, l, []))
            }
        }
        for s in steps {
            let got: [String]
            do { got = try t.run(s.command).map(t.render) } catch {
                failures.append("\(name):\(s.line): \(s.command): \(error)")
                continue
            }
            let matches =
                got.count == s.expected.count
                && zip(got, s.expected).allSatisfy { g, e in e.hasSuffix("...") ? g.hasPrefix(String(e.dropLast(3))) : g == e }
            if !matches {
                failures.append("\(name):\(s.line): \(s.command)\n  expected:\n\(s.expected.map { "    > " + $0 }.joined(separator: "\n"))\n  got:\n\(got.map { "    > " + $0 }.joined(separator: "\n"))")
            }
        }
        return failures
    }
}
