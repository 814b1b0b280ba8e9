import EFSCBus
import EFSCChannel
import EFSCConsensus
import EFSCContracts
import EFSCCore
import EFSCCredentials
import EFSCIdentity
import EFSCLedger
import EFSCNode
import EFSCReplay
import Foundation

/// The fuzz targets: each feeds one input, as the network would deliver it,
/// to the code that parses and acts on it. libFuzzer drives them through
/// `fuzz/` (`make fuzz`); the suite replays the committed corpus and every
/// input a fuzzer found (`fuzz/corpus/<target>/`), so what once crashed
/// stays a regression test. A target returns normally for any input;
/// anything else (a trap, a hang past libFuzzer's -timeout, memory past its
/// -rss_limit_mb) is a finding.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// A transaction into a node's admission, then (re-signed by a known
    /// DID, so execution gets past the signature) executed by the contracts.
    case transaction
    /// Query parameters of every query kind.
    case query
    /// Block, consensus frame and sync-reply decoding.
    case block
    /// Channel messages, TIC settlement terms with proposals checked
    /// against them, and templates with claims validated.
    case channel
    /// Base58 / multibase / DID parsing.
    case base58
    /// Template patterns: compiled and matched.
    case pattern
    /// The PBFT replica's `step`, driven by a program of crafted messages
    /// (`ReplicaHarness`), with its safety and memory invariants checked.
    case replica

    public func run(_ data: [UInt8]) {
        switch self {
        case .transaction: FuzzEnvironment.shared.transaction(data)
        case .query: FuzzEnvironment.shared.query(data)
        case .block: Self.block(data)
        case .channel: Self.channel(data)
        case .base58: Self.base58(data)
        case .pattern: Self.pattern(data)
        case .replica:
            var h = ReplicaHarness(data)
            h.run()
        }
    }

    /// A fixed genesis for the event log's checks (no input carries its signatures).
    static let replayNetwork = try! TrustedNetwork(
        network: "fuzz", members: (1...4).map { (try! Ed25519SecretKey(seed: [UInt8](repeating: UInt8($0), count: 32))).publicKey }, tccs: [])

    static func block(_ data: [UInt8]) {
        if let b = try? Block(decoding: data) { _ = b.json }
        _ = try? PBFTCodec.decode(data)
        _ = try? PBFTCodec.decodeDurable(data)
        _ = GroupRunner.parseSyncReply(data)
        _ = try? HistoryPage(decoding: data)
        // What an event log does with a live block: peek, verify, derive events.
        if let (g, h) = BlockVerifier.peek(data), let v = try? BlockVerifier(network: Self.replayNetwork).verify(data, group: g, height: h, parent: nil) {
            _ = ChainEvents.events(v, receipts: nil)
        }
        _ = PayloadDecoder.decode(topic: Topics.blocks("transaction", node: "node1"), payload: data)
        _ = PayloadDecoder.decode(topic: Topics.pbft("transaction", from: "node1"), payload: data)
    }

    static func channel(_ data: [UInt8]) {
        _ = try? ChannelMessage(bytes: data)
        guard let j = try? JSONParser.parse(data), let o = j.objectValue else { return }
        // As a TIC: its terms, then its own members as a proposal's claim.
        if let terms = try? SettlementTerms(channelId: "ch-fuzz", tic: o) {
            _ = try? terms.check(j["claim"] ?? j, lastSequence: j["lastSequence"]?.intValue ?? 0, lastEnd: j["lastEnd"]?.doubleValue, now: 1_700_000_000)
            _ = terms.fee(usage: j["usage"]?.doubleValue ?? 1, start: j["start"]?.doubleValue ?? 0)
            _ = terms.claim(sequence: j["sequence"]?.intValue ?? 1, start: j["start"]?.doubleValue ?? 0, usage: j["usage"]?.doubleValue ?? 1)
        }
        // As a template, and as a claim against the built-in templates.
        if let t = try? Template(json: j) { _ = t.validate(j["claim"] ?? .object([:])) }
        _ = BaseTemplates.tit.validate(j)
        _ = BaseTemplates.tst.validate(j)
        _ = try? VerifiableCredential(json: o).hash()
        _ = EddsaJcs2022.proofs(of: o)
    }

    static func base58(_ data: [UInt8]) {
        let text = String(decoding: data, as: UTF8.self)
        _ = Base58.decode(text)
        _ = try? Multibase.decodeRaw(text)
        _ = try? Multibase.decode(text, as: .ed25519Pub)
        _ = try? EFSCDID.parse(text)
        _ = DIDSyntax.isValid(text)
        _ = try? DIDKey.resolve(text)
        _ = try? Ed25519PublicKey(multibase: text)
        _ = Hex.decode(text)
    }

    static func pattern(_ data: [UInt8]) {
        // The pattern, a zero byte, then the subject.
        let cut = data.firstIndex(of: 0) ?? data.count
        let pattern = String(decoding: data[..<cut], as: UTF8.self)
        let subject = cut < data.count ? String(decoding: data[(cut + 1)...], as: UTF8.self) : ""
        guard let p = try? TemplatePattern(pattern) else { return }
        _ = p.matches(subject)
    }
}

/// What the stateful targets share within one process: a node's group
/// runners over temporary ledgers, and a DID registered in an in-memory
/// identity state whose key signs structure-aware inputs.
final class FuzzEnvironment: @unchecked Sendable {
    static let shared = FuzzEnvironment()
    let dir: String
    let identity: GroupRunner
    let transactionRunner: GroupRunner
    let key: Ed25519SecretKey
    let did: String
    let registration: ChainTransaction

    init() {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-fuzz-\(getpid())").path
        try? FileManager.default.removeItem(atPath: dir)
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        identity = try! GroupRunner.offline(group: "identity", dataDir: dir + "/n1")
        transactionRunner = try! GroupRunner.offline(group: "transaction", dataDir: dir + "/n2")
        key = try! Ed25519SecretKey(seed: Array(repeating: 7, count: 32))
        let (d, _, op) = try! EFSCDID.createOperation(network: "devnet", key: key, created: "2024-01-01T00:00:00Z")
        did = d
        registration = try! ChainTransaction.make(
            group: "identity", sender: d, nonce: 0, op: "did.register", args: ["operation": .object(op)], key: key, method: "\(d)#key-1",
            created: "2024-01-01T00:00:00Z")
    }

    func transaction(_ data: [UInt8]) {
        // 1. Raw, into both groups' admission.
        identity.receive(topic: Topics.tx("identity"), payload: data)
        transactionRunner.receive(topic: Topics.tx("transaction"), payload: data)
        // 2. Structure-aware: the input's members as a transaction of the
        // registered DID, signed, executed on both groups' contracts.
        guard let j = try? JSONParser.parse(data), let o = j.objectValue else { return }
        let state = ContractState(memory: [:])
        let identityContracts = Contracts(group: "identity", resolveDID: { _ in nil })
        _ = identityContracts.execute(registration, state: state, height: 1)
        let resolve: (String) -> DIDHistory? = { did in Contracts.history(did, atHeight: .max, state: state) }
        for group in ["identity", "transaction"] {
            let contracts = Contracts(group: group, tccs: [did], resolveDID: resolve)
            guard let tx = try? ChainTransaction.make(
                group: group, sender: did, nonce: (o["nonce"]?.intValue).map { abs($0 % 1_000_000) } ?? 1, op: o["op"]?.stringValue ?? "offer.publish",
                args: o["args"]?.objectValue ?? o, key: key, method: "\(did)#key-1", created: "2024-01-01T00:00:00Z")
            else { continue }
            let s = group == "identity" ? state : ContractState(memory: [:])
            _ = contracts.admit(tx, state: s)
            _ = contracts.execute(tx, state: s, height: 2, index: 0)
        }
    }

    func query(_ data: [UInt8]) {
        // The first byte picks the kind; the rest is the request body.
        let kinds = ["did", "template", "offers", "match", "evidence", "block", "tx", "status", "channel", "nonsense"]
        let kind = kinds[Int(data.first ?? 0) % kinds.count]
        let body = Array(data.dropFirst())
        identity.receive(topic: Topics.query("identity", kind), payload: body)
        transactionRunner.receive(topic: Topics.query("transaction", kind), payload: body)
        transactionRunner.receive(topic: Topics.sync("transaction", node: "node1"), payload: body)
    }
}
