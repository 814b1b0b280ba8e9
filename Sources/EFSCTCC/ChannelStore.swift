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
        db = try RocksDB(path: path, columnFamilies: ["channels", "tscs", "evidence", "tics"])
        tics = db.family("tics")
        channels = db.family("channels")
        tscs = db.family("tscs")
        evidence = db.family("evidence")
    }

    static func tscKey(_ channel: String, _ seq: Int) -> [UInt8] {
        Array("\(channel)/".utf8) + withUnsafeBytes(of: UInt64(seq).bigEndian, Array.init)
    }

    /// A new channel: its TIC and first record, in one synced batch.
    func open(_ record: JSON, tic: JSONObject) throws {
        guard let id = record["channelId"]?.stringValue else { return }
        let b = WriteBatch()
        b.put(Array(id.utf8), try JCS.canonicalize(.object(tic)), in: tics)
        b.put(Array(id.utf8), try JCS.canonicalize(record), in: channels)
        try db.write(b, sync: true)
    }

    func putChannel(_ record: JSON) throws {
        guard let id = record["channelId"]?.stringValue else { return }
        try db.put(Array(id.utf8), try JCS.canonicalize(record), in: channels)
    }

    /// Every channel's record with its TIC.
    func allChannels() -> [(record: JSON, tic: JSONObject)] {
        db.scan(prefix: [], in: channels).compactMap { kv in
            guard let r = try? JSONParser.parse(kv.value), let tb = try? db.get(kv.key, in: tics), let t = (try? JSONParser.parse(tb))?.objectValue else { return nil }
            return (r, t)
        }
    }

    func pendingEvidence() -> [(channel: String, item: JSON)] {
        db.scan(prefix: [], in: evidence).compactMap { kv in (try? JSONParser.parse(kv.value)).map { (String(decoding: kv.key, as: UTF8.self), $0) } }
    }

    func tsc(_ channel: String, _ seq: Int) throws -> [UInt8]? { try db.get(Self.tscKey(channel, seq), in: tscs) }

    /// One group commit: several channels' issued TSCs at once.
    struct Issued {
        let channel: String
        let sequence: Int
        let tsc: [UInt8]
        let record: JSON
        let evidence: JSON?
    }

    func commit(_ items: [Issued]) throws {
        let b = WriteBatch()
        for i in items {
            b.put(Self.tscKey(i.channel, i.sequence), i.tsc, in: tscs)
            b.put(Array(i.channel.utf8), try JCS.canonicalize(i.record), in: channels)
            if let e = i.evidence { b.put(Array(i.channel.utf8), try JCS.canonicalize(e), in: evidence) }
        }
        try db.write(b, sync: true)
    }

    func removeEvidence(_ channels: [String]) throws {
        let b = WriteBatch()
        for c in channels { b.delete(Array(c.utf8), in: evidence) }
        try db.write(b, sync: true)
    }
}
