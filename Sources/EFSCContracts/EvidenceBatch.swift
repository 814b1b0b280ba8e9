import EFSCCore

/// The evidences of one `evidence.submit` (topics.md), in any of its three
/// forms: one evidence (`channelId`, `sequence`, `tscHash`), a list of them
/// (`items`), or columns (`channelIds`, `sequences`, and `tscHashes`: the
/// hashes' hex concatenated). Columns say the same in about a quarter fewer
/// bytes and parse into three values instead of an object per evidence, which
/// is what a node's time per evidence goes to; a TCC submits its batches so.
///
/// Items are read lazily and checked by the contract, so its errors name the
/// item; only the shape of the columns is checked here.
public struct EvidenceBatch {
    /// At most this many evidences per transaction.
    public static let maxCount = 4096

    private enum Form {
        case items([JSONObject])
        case columns(channels: [JSON], sequences: [JSON], hashes: [UInt8])
    }
    private let form: Form

    public init(args: JSONObject) throws {
        let hasColumns = args["channelIds"] != nil || args["sequences"] != nil || args["tscHashes"] != nil
        if hasColumns {
            guard args["items"] == nil, args["channelId"] == nil else {
                throw ContractError("give evidences as one, as items or as columns (channelIds, sequences, tscHashes), not mixed")
            }
            guard let ids = args["channelIds"]?.arrayValue, let seqs = args["sequences"]?.arrayValue, let hx = args["tscHashes"]?.stringValue,
                (1...Self.maxCount).contains(ids.count), seqs.count == ids.count
            else {
                throw ContractError("channelIds and sequences must be arrays of one length, 1-\(Self.maxCount), with tscHashes a string")
            }
            guard hx.utf8.count == 64 * ids.count, let flat = Hex.decode(hx) else {
                throw ContractError("tscHashes must be 64 hex digits per evidence, concatenated (\(64 * ids.count) for \(ids.count))")
            }
            form = .columns(channels: ids, sequences: seqs, hashes: flat)
        } else if let list = args["items"]?.arrayValue {
            let items = list.compactMap(\.objectValue)
            guard items.count == list.count, !items.isEmpty, items.count <= Self.maxCount else {
                throw ContractError("items must be 1-\(Self.maxCount) objects")
            }
            form = .items(items)
        } else {
            form = .items([args])
        }
    }

    /// How many evidences `args` claim to hold, from their shape alone (no
    /// hex decoding, nothing checked): for sizing, before `init(args:)`.
    public static func declaredCount(args: JSONObject) -> Int {
        args["channelIds"]?.arrayValue?.count ?? args["items"]?.arrayValue?.count ?? 1
    }

    public var count: Int {
        switch form {
        case .items(let i): return i.count
        case .columns(let c, _, _): return c.count
        }
    }

    public func channelId(_ i: Int) -> String? {
        switch form {
        case .items(let items): return items[i]["channelId"]?.stringValue
        case .columns(let c, _, _): return c[i].stringValue
        }
    }

    public func sequence(_ i: Int) -> Int? {
        switch form {
        case .items(let items): return items[i]["sequence"]?.intValue
        case .columns(_, let s, _): return s[i].intValue
        }
    }

    /// The settlement credential hash (32 bytes), or nil if it is not 64 hex digits.
    public func tscHash(_ i: Int) -> [UInt8]? {
        switch form {
        case .items(let items):
            guard let h = items[i]["tscHash"]?.stringValue, h.utf8.count == 64 else { return nil }
            return Hex.decode(h)
        case .columns(_, _, let flat): return Array(flat[32 * i..<32 * i + 32])
        }
    }

    /// The arguments of an evidence transaction in columns (one evidence
    /// stays in the one-evidence form).
    public static func args(_ evidences: [(channelId: String, sequence: Int, tscHash: String)]) -> JSONObject {
        if evidences.count == 1, let e = evidences.first {
            return ["channelId": .string(e.channelId), "sequence": .number(Double(e.sequence)), "tscHash": .string(e.tscHash)]
        }
        return [
            "channelIds": .array(evidences.map { .string($0.channelId) }), "sequences": .array(evidences.map { .number(Double($0.sequence)) }),
            "tscHashes": .string(evidences.map(\.tscHash).joined()),
        ]
    }
}
