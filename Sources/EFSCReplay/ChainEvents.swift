import EFSCContracts
import EFSCCore
import EFSCLedger

/// Which events an event log emits (all given filters must hold). Block
/// events are emitted whenever their group is, so a consumer always sees
/// where it is; `ops`, `channel` and `did` select transactions and the
/// domain events derived from them; `events` selects event types.
public struct EventFilter: Sendable {
    public var ops: Set<String> = []
    public var channel: String? = nil
    public var did: String? = nil
    public var events: Set<String> = []
    public init(ops: Set<String> = [], channel: String? = nil, did: String? = nil, events: Set<String> = []) {
        self.ops = ops
        self.channel = channel
        self.did = did
        self.events = events
    }
    var selectsTransactions: Bool { !ops.isEmpty || channel != nil || did != nil }
}

/// The events of one verified block (topics.md "Event log"), as JSON
/// objects: the block, each transaction with its arguments' summary and,
/// when the block was re-executed, its receipt, then the domain events of
/// each committed transaction. Pure.
public enum ChainEvents {
    /// Every domain event type, in the order of the contracts.
    public static let domainTypes = [
        "did.registered", "did.rotated", "did.deactivated", "template.registered", "offer.published", "tic.recorded", "channel.opened",
        "evidence.anchored", "channel.closing", "channel.challenged", "channel.closed",
    ]

    public static func events(_ v: VerifiedBlock, receipts: [Receipt?]?, filter: EventFilter = EventFilter()) -> [JSON] {
        let h = v.block.header
        var out: [JSON] = []
        func keep(_ type: String) -> Bool { filter.events.isEmpty || filter.events.contains(type) }
        if keep("block") {
            out.append([
                "event": "block", "group": .string(h.group), "height": .number(Double(h.height)), "hash": .string(Hex.encode(v.hash)),
                "parentHash": .string(Hex.encode(h.parentHash)), "stateRoot": .string(Hex.encode(h.stateRoot)),
                "transactionsRoot": .string(Hex.encode(h.transactionsRoot)), "timestamp": .number(Double(h.timestamp)),
                "proposer": .number(Double(h.proposer)), "view": .number(Double(h.view)), "anchor": .number(Double(h.anchor)),
                "transactions": .number(Double(v.block.transactions.count)), "signatures": .number(Double(v.signers)), "null": .bool(v.isNull),
            ])
        }
        for (i, bytes) in v.block.transactions.enumerated() {
            let tx = (try? JSONParser.parse(bytes))?.objectValue
            let receipt = receipts.flatMap { i < $0.count ? $0[i] : nil }
            let domain = receipt.map { r in r.ok ? Self.domain(tx ?? [:], r) : [] } ?? []
            if filter.selectsTransactions && !matches(tx, domain, filter) { continue }
            var base: JSONObject = [
                "group": .string(h.group), "height": .number(Double(h.height)), "index": .number(Double(i)), "txHash": .string(Digest.sha256Hex(bytes)),
            ]
            if keep("transaction") {
                var e = base
                e["event"] = "transaction"
                if let s = tx?["sender"]?.stringValue { e["sender"] = .string(s) }
                if let op = tx?["op"]?.stringValue { e["op"] = .string(op) }
                if let n = tx?["nonce"], case .number = n { e["nonce"] = n }
                e["args"] = .object(summary(tx ?? [:]))
                if receipts != nil {
                    if let r = receipt {
                        var o: JSONObject = ["status": .string(r.ok ? "committed" : "rejected")]
                        if let err = r.error { o["error"] = .string(err) }
                        if let res = r.result { o["result"] = res }
                        e["receipt"] = .object(o)
                    } else {
                        e["receipt"] = ["status": "rejected", "error": "not a transaction (no JSON object); nodes skip it"]
                    }
                }
                out.append(.object(e))
            }
            if let s = tx?["sender"]?.stringValue { base["sender"] = .string(s) }
            for var d in domain {
                guard let type = d["event"]?.stringValue, keep(type) else { continue }
                if let ch = filter.channel, d["channelId"]?.stringValue != ch, type == "evidence.anchored" { continue }
                for (k, x) in base where d[k] == nil { d[k] = x }
                out.append(.object(d))
            }
        }
        return out
    }

    /// Whether a transaction (or a domain event of it) is selected.
    static func matches(_ tx: JSONObject?, _ domain: [JSONObject], _ f: EventFilter) -> Bool {
        let op = tx?["op"]?.stringValue ?? ""
        if !f.ops.isEmpty && !f.ops.contains(op) { return false }
        let args = tx?["args"]?.objectValue ?? [:]
        if let ch = f.channel {
            let named = args["channelId"]?.stringValue == ch || (args["channelIds"]?.arrayValue?.contains(.string(ch)) ?? false)
                || (args["items"]?.arrayValue?.contains { $0["channelId"]?.stringValue == ch } ?? false)
                || domain.contains { $0["channelId"]?.stringValue == ch }
            if !named { return false }
        }
        if let did = f.did {
            let keys = ["did", "provider", "consumer", "tcc", "closedBy", "challengedBy"]
            let named = tx?["sender"]?.stringValue == did || summary(tx ?? [:]).values.contains(.string(did))
                || domain.contains { d in keys.contains { d[$0]?.stringValue == did } }
            if !named { return false }
        }
        return true
    }

    /// What a transaction event says of its arguments (topics.md).
    public static func summary(_ tx: JSONObject) -> JSONObject {
        let a = tx["args"]?.objectValue ?? [:]
        var s: JSONObject = [:]
        func put(_ k: String, _ v: JSON?) { if let v, v != .null { s[k] = v } }
        switch tx["op"]?.stringValue ?? "" {
        case "did.register", "did.update", "did.deactivate":
            put("did", a["operation"]?["did"] ?? tx["sender"])
            put("operation", a["operation"]?["operation"])
        case "template.register":
            put("id", a["template"]?["id"])
            put("version", a["template"]?["version"])
        case "offer.publish":
            put("offerId", a["offerId"])
            put("resourceType", a["computingPower"]?["resourceType"])
            put("unitPrice", a["unitPrice"])
            put("capacity", a["capacity"])
        case "tic.record":
            put("offerId", a["offerId"])
            put("provider", a["tic"]?["credentialSubject"]?["providerDid"])
            put("consumer", a["tic"]?["credentialSubject"]?["consumerDid"])
        case "evidence.submit":
            s["evidences"] = .number(Double(EvidenceBatch.declaredCount(args: a)))
        case "channel.close":
            put("channelId", a["channelId"])
            put("kind", a["kind"] ?? "unilateral")
        case "channel.challenge", "channel.finalize":
            put("channelId", a["channelId"])
        default:
            s["keys"] = .array(a.keys.sorted().map { .string($0) })
        }
        return s
    }

    /// The domain events of a committed transaction, from its arguments
    /// and its receipt's result.
    static func domain(_ tx: JSONObject, _ r: Receipt) -> [JSONObject] {
        let a = tx["args"]?.objectValue ?? [:]
        let sender = tx["sender"] ?? .null
        let res = r.result?.objectValue ?? [:]
        func ev(_ type: String, _ fields: [(String, JSON?)]) -> JSONObject {
            var o: JSONObject = ["event": .string(type)]
            for (k, v) in fields { if let v, v != .null { o[k] = v } }
            return o
        }
        switch tx["op"]?.stringValue ?? "" {
        case "did.register": return [ev("did.registered", [("did", res["did"] ?? sender), ("version", res["version"])])]
        case "did.update": return [ev("did.rotated", [("did", res["did"] ?? sender), ("version", res["version"])])]
        case "did.deactivate": return [ev("did.deactivated", [("did", res["did"] ?? sender), ("version", res["version"])])]
        case "template.register": return [ev("template.registered", [("id", res["id"]), ("version", res["version"]), ("owner", sender)])]
        case "offer.publish":
            return [ev("offer.published", [("offerId", res["offerId"]), ("provider", res["provider"]), ("unitPrice", res["unitPrice"]), ("capacity", res["capacity"])])]
        case "tic.record":
            let f: [(String, JSON?)] = [("channelId", res["channelId"]), ("provider", res["providerDid"]), ("consumer", res["consumerDid"])]
            return [
                ev("tic.recorded", f + [("ticHash", res["ticHash"]), ("offerId", res["offerId"]), ("units", res["units"])]),
                ev("channel.opened", f + [("openedAt", res["openedAt"])]),
            ]
        case "evidence.submit":
            guard let batch = try? EvidenceBatch(args: a) else { return [] }
            return (0..<batch.count).map { i in
                ev("evidence.anchored", [
                    ("channelId", batch.channelId(i).map { .string($0) }), ("sequence", batch.sequence(i).map { .number(Double($0)) }),
                    ("tscHash", batch.tscHash(i).map { .string(Hex.encode($0)) }), ("tcc", sender), ("item", .number(Double(i))),
                ])
            }
        case "channel.close":
            let closed = res["state"]?.stringValue == "closed"
            return [ev(closed ? "channel.closed" : "channel.closing", [
                ("channelId", res["channelId"]), ("closeKind", res["closeKind"]), ("finalSequence", res["finalSequence"]),
                ("finalTscHash", res["finalTscHash"]), ("closedBy", res["closedBy"]), ("challengeUntil", res["challengeUntil"]),
            ])]
        case "channel.challenge":
            return [ev("channel.challenged", [
                ("channelId", res["channelId"]), ("finalSequence", res["finalSequence"]), ("finalTscHash", res["finalTscHash"]),
                ("challengedBy", res["challengedBy"]), ("challengeUntil", res["challengeUntil"]),
            ])]
        case "channel.finalize":
            return [ev("channel.closed", [
                ("channelId", res["channelId"]), ("closeKind", res["closeKind"]), ("finalSequence", res["finalSequence"]),
                ("finalTscHash", res["finalTscHash"]), ("closedAt", res["closedAt"]),
            ])]
        default: return []
        }
    }
}
