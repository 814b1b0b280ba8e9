import EFSCCore
import Foundation

/// Turns any EFSC payload into JSON for people and tools, following the
/// schemas of topics.md: JSON stays JSON; the binary consensus, block and
/// sync formats are decoded field by field; anything else is shown as base64.
public enum PayloadDecoder {
    public static func decode(topic: String, payload: [UInt8]) -> JSON {
        let parts = topic.split(separator: "/").map(String.init)
        if parts.count >= 5, parts[0] == "efsc", parts[1] == "v1", parts[2] == "chain" {
            switch parts[4] {
            case "pbft", "direct":
                if let j = try? consensus(payload) { return j }
            case "blocks":
                if let j = try? block(payload) { return j }
            case "sync":
                if let j = try? syncReply(payload) { return j }
            default: break
            }
        }
        if let j = try? JSONParser.parse(payload) { return j }
        return ["encoding": "base64", "bytes": .number(Double(payload.count)), "data": .string(Data(payload).base64EncodedString())]
    }

    struct Truncated: Error {}

    /// Big-endian reader over a payload; throws instead of trapping on short input.
    struct Reader {
        let b: [UInt8]
        var i = 0
        mutating func u8() throws -> UInt8 {
            guard i < b.count else { throw Truncated() }
            defer { i += 1 }
            return b[i]
        }
        mutating func uint(_ n: Int) throws -> UInt64 {
            guard i + n <= b.count else { throw Truncated() }
            var v: UInt64 = 0
            for k in 0..<n { v = v << 8 | UInt64(b[i + k]) }
            i += n
            return v
        }
        mutating func bytes(_ n: Int) throws -> [UInt8] {
            guard n >= 0, i + n <= b.count else { throw Truncated() }
            defer { i += n }
            return Array(b[i..<(i + n)])
        }
        mutating func str8() throws -> String { String(decoding: try bytes(Int(try u8())), as: UTF8.self) }
        var remaining: Int { b.count - i }
    }

    static let consensusTypes = [1: "pre-prepare", 2: "prepare", 3: "commit", 4: "checkpoint", 5: "view-change", 6: "new-view"]

    public static func consensus(_ p: [UInt8]) throws -> JSON {
        var r = Reader(b: p)
        guard try r.bytes(2) == [0x45, 0x50] else { throw Truncated() }
        let version = try r.u8()
        let type = Int(try r.u8())
        let group = try r.str8()
        let sender = try r.uint(2)
        var o: JSONObject = [
            "format": "ConsensusMessage", "version": .number(Double(version)), "type": .string(consensusTypes[type] ?? "unknown(\(type))"),
            "group": .string(group), "sender": .number(Double(sender)), "bytes": .number(Double(p.count)),
        ]
        if (1...6).contains(type) {
            let v = try r.uint(8)
            let seq = try r.uint(8)
            if type == 6 {
                o["view"] = .number(Double(v))
            } else {
                let digest = try r.bytes(32)
                o[type == 5 ? "newView" : "view"] = .number(Double(v))
                o[type == 5 ? "stableCheckpoint" : "sequence"] = .number(Double(seq))
                o[type >= 4 ? "stateRoot" : "digest"] = .string(Hex.encode(digest))
                if type == 1 {
                    let body = try r.bytes(Int(try r.uint(4)))
                    o["block"] = (try? block(body)) ?? .string("(\(body.count) bytes)")
                }
            }
        }
        if type <= 4 {
            let sig = try r.bytes(Int(try r.uint(2)))
            guard r.remaining == 0 else { throw Truncated() }
            o["signature"] = .string(Hex.encode(sig))
        }
        return .object(o)
    }

    public static func block(_ p: [UInt8]) throws -> JSON {
        var r = Reader(b: p)
        guard try r.bytes(2) == [0x45, 0x42] else { throw Truncated() }
        let version = try r.u8()
        let group = try r.str8()
        let height = try r.uint(8)
        let parent = try r.bytes(32)
        let state = try r.bytes(32)
        let txRoot = try r.bytes(32)
        let proposer = try r.uint(2)
        let view = try r.uint(8)
        let ts = try r.uint(8)
        let anchor = try r.uint(8)
        let t = Int(try r.uint(4))
        guard t <= r.remaining / 4 else { throw Truncated() }
        var txs: [JSON] = []
        for _ in 0..<t {
            let len = Int(try r.uint(4))
            let bytes = try r.bytes(len)
            txs.append((try? JSONParser.parse(bytes)) ?? .string(Data(bytes).base64EncodedString()))
        }
        let hashEnd = r.i
        var cert: [JSON] = []
        var certView: JSON = .null
        if r.remaining > 0 {
            certView = .number(Double(try r.uint(8)))
            let c = Int(try r.uint(2))
            for _ in 0..<c {
                let replica = try r.uint(2)
                let sig = try r.bytes(Int(try r.uint(2)))
                cert.append(["replica": .number(Double(replica)), "signature": .string(Hex.encode(sig))])
            }
            guard r.remaining == 0 else { throw Truncated() }
        }
        return [
            "format": "Block", "version": .number(Double(version)), "group": .string(group), "height": .number(Double(height)),
            "hash": .string(Digest.sha256Hex(Array(p[0..<hashEnd]))),
            "parentHash": .string(Hex.encode(parent)), "stateRoot": .string(Hex.encode(state)), "transactionsRoot": .string(Hex.encode(txRoot)),
            "proposer": .number(Double(proposer)), "view": .number(Double(view)), "timestamp": .number(Double(ts)), "anchor": .number(Double(anchor)),
            "transactions": .array(txs), "certificateView": certView, "certificate": .array(cert),
        ]
    }

    public static func syncReply(_ p: [UInt8]) throws -> JSON {
        var r = Reader(b: p)
        let n = Int(try r.uint(4))
        guard n <= r.remaining / 4 else { throw Truncated() }
        var blocks: [JSON] = []
        for _ in 0..<n {
            let len = Int(try r.uint(4))
            blocks.append(try block(try r.bytes(len)))
        }
        return ["format": "SyncReply", "blocks": .array(blocks)]
    }
}
