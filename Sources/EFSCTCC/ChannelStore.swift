import EFSCChannel
import EFSCCore
import EFSCStore

/// A TCC's durable state in RocksDB: each channel's TIC (written once) and
/// its small state record (state, last sequence and end, settlements since
/// the last evidence), every issued TSC, and the evidence not yet on chain. An
/// issued TSC, its channel's new record and any evidence it makes due are
/// written in one synced batch before the TSC is sent to anyone.
final class ChannelStore: @unchecked Sendable {
    let db: RocksDB
    let channels: ColumnFamily
    let tscs: ColumnFamily
    let evidence: ColumnFamily
    let tics: ColumnFamily

    init(path: String) throws {
        db = try RocksDB(path: path, columnFamilies: ["channels", "tscs", "evidence", "tics"], bulk: ["tscs", "tics"])
        tics = db.family("tics")
        channels = db.family("channels")
        tscs = db.family("tscs")
        evidence = db.family("evidence")
    }

    static func tscKey(_ channel: String, _ seq: Int) -> [UInt8] {
        Array("\(channel)/".utf8) + withUnsafeBytes(of: UInt64(seq).bigEndian, Array.init)
    }

    /// A new channel: its TIC and first record, in one synced batch.
    func open(_ record: ChannelRecord, tic: JSONObject) throws {
        let id = Array(record.channelId.utf8)
        let b = WriteBatch()
        b.put(id, try JCS.canonicalize(.object(tic)), in: tics)
        b.put(id, try JCS.canonicalize(record.json), in: channels)
        try db.write(b, sync: true)
    }

    /// Every channel's record with its TIC, one at a time (entries that do not parse are skipped).
    func forEachChannel(_ body: (ChannelRecord, JSONObject) -> Void) {
        for kv in db.scan(prefix: [], in: channels) {
            guard let j = try? JSONParser.parse(kv.value), let r = ChannelRecord(json: j), let tb = try? db.get(kv.key, in: tics),
                let t = (try? JSONParser.parse(tb))?.objectValue
            else { continue }
            body(r, t)
        }
    }

    func pendingEvidence() -> [EvidenceItem] {
        db.scan(prefix: [], in: evidence).compactMap { kv in (try? JSONParser.parse(kv.value)).flatMap(EvidenceItem.init(json:)) }
    }

    func tsc(_ channel: String, _ seq: Int) throws -> [UInt8]? { try db.get(Self.tscKey(channel, seq), in: tscs) }

    /// One group commit: several channels' writes (records, issued TSCs,
    /// evidence made due) in one synced batch.
    func commit(_ items: [ChannelWrite]) throws {
        let b = WriteBatch()
        for i in items {
            let id = Array(i.record.channelId.utf8)
            if let s = i.tscSequence, let t = i.tsc { b.put(Self.tscKey(i.record.channelId, s), t, in: tscs) }
            b.put(id, try JCS.canonicalize(i.record.json), in: channels)
            if let e = i.evidence { b.put(id, try JCS.canonicalize(e.json), in: evidence) }
        }
        try db.write(b, sync: true)
    }

    func removeEvidence(_ channels: [String]) throws {
        let b = WriteBatch()
        for c in channels { b.delete(Array(c.utf8), in: evidence) }
        try db.write(b, sync: true)
    }
}
