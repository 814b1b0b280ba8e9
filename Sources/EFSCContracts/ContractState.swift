import EFSCCore
import EFSCLedger
#if canImport(Glibc)
import Glibc
#endif

/// Contract state under string keys, read from the ledger and overlaid with
/// the writes of the block being executed. Values are JSON (stored as
/// canonical JSON) or, for records written once per evidence, compact bytes
/// a contract encodes itself. Writes become `StateWrite`s for `Ledger.commit`.
///
/// Keys are compared as UTF-8 bytes, as RocksDB compares them. (Swift's
/// String equality is canonical equivalence: "é" and "e\u{301}" would be one
/// key here and two in the ledger.)
public final class ContractState {
    /// A key as bytes, hashed as one block of memory: the element-wise
    /// `[UInt8]` hash was ≈ 3 % of a node's CPU on blocks of evidences.
    struct Key: Hashable {
        let bytes: [UInt8]
        func hash(into h: inout Hasher) { bytes.withUnsafeBytes { h.combine(bytes: $0) } }
        static func == (a: Key, b: Key) -> Bool {
            a.bytes.withUnsafeBufferPointer { x in
                b.bytes.withUnsafeBufferPointer { y in x.count == y.count && (x.count == 0 || memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0) }
            }
        }
    }

    /// A pending write.
    enum Value {
        case json(JSON)
        case bytes([UInt8])
        case deleted

        var encoded: [UInt8]? {
            switch self {
            case .json(let j): return (try? JCS.canonicalize(j)) ?? []
            case .bytes(let b): return b
            case .deleted: return nil
            }
        }
    }

    let base: ([UInt8]) -> [UInt8]?
    let baseScan: ([UInt8]) -> [(key: [UInt8], value: [UInt8])]
    private var pending: [Key: Value] = [:]
    /// Undo log: (key, value before the write; nil = key was not pending).
    private var journal: [(Key, Value?)] = []
    /// Evidence index entries (credential hash → location), in execution
    /// order: the ledger keeps them beside the state, not in it.
    public private(set) var evidenceIndex: [StateWrite] = []

    public init(ledger: Ledger) {
        base = { try? ledger.stateValue($0) }
        baseScan = { ledger.stateScan(prefix: $0) }
    }

    /// In-memory state (tests, dry runs).
    public init(memory: [String: JSON] = [:]) {
        var m: [[UInt8]: [UInt8]] = [:]
        for (k, v) in memory { m[Array(k.utf8)] = (try? JCS.canonicalize(v)) ?? [] }
        base = { m[$0] }
        baseScan = { p in m.filter { $0.key.starts(with: p) }.sorted { $0.key.lexicographicallyPrecedes($1.key) }.map { ($0.key, $0.value) } }
    }

    /// The JSON value at `key` (nil: absent, or not JSON).
    public func get(_ key: String) -> JSON? {
        let k = Key(bytes: Array(key.utf8))
        switch pending[k] {
        case .json(let j): return j
        case .bytes(let b): return try? JSONParser.parse(b)
        case .deleted: return nil
        case nil:
            guard let b = base(k.bytes) else { return nil }
            return try? JSONParser.parse(b)
        }
    }

    /// The stored bytes at `key`, whatever their encoding.
    public func getBytes(_ key: String) -> [UInt8]? { getBytes(keyBytes: Array(key.utf8)) }

    /// `getBytes` under a key given as its UTF-8 bytes (a contract that
    /// builds keys per evidence skips making a String of each).
    public func getBytes(keyBytes: [UInt8]) -> [UInt8]? {
        let k = Key(bytes: keyBytes)
        if let v = pending[k] { return v.encoded }
        return base(k.bytes)
    }

    /// Makes room for about `writes` state writes and as many evidence index
    /// entries, so a block's execution does not rehash its pending writes
    /// every time they double (≈ 3 % of a node's CPU on evidence blocks).
    public func reserve(writes: Int) {
        pending.reserveCapacity(pending.count + writes)
        journal.reserveCapacity(journal.count + writes)
        evidenceIndex.reserveCapacity(evidenceIndex.count + writes)
    }

    /// Writes a JSON value (nil deletes).
    public func set(_ key: String, _ value: JSON?) { write(key, value.map { .json($0) } ?? .deleted) }

    /// Indexes an evidence by its credential hash (a later entry for the same
    /// hash wins).
    public func indexEvidence(tscHash: [UInt8], _ location: [UInt8]) { evidenceIndex.append(StateWrite(key: tscHash, value: location)) }

    /// Writes bytes a contract encodes itself.
    public func setBytes(_ key: String, _ value: [UInt8]) { write(key, .bytes(value)) }

    /// `setBytes` under a key given as its UTF-8 bytes.
    public func setBytes(keyBytes: [UInt8], _ value: [UInt8]) { write(Key(bytes: keyBytes), .bytes(value)) }

    private func write(_ key: String, _ value: Value) { write(Key(bytes: Array(key.utf8)), value) }

    private func write(_ k: Key, _ value: Value) {
        journal.append((k, pending.updateValue(value, forKey: k)))
    }

    /// JSON values under keys with `prefix` (a byte prefix), committed and
    /// pending, in key byte order.
    public func scan(prefix: String) -> [(String, JSON)] {
        let p = Array(prefix.utf8)
        var out: [[UInt8]: JSON?] = [:]
        for (k, v) in baseScan(p) {
            if let j = try? JSONParser.parse(v) { out[k] = j }
        }
        for (k, v) in pending where k.bytes.starts(with: p) {
            switch v {
            case .json(let j): out[k.bytes] = j
            case .bytes(let b): out[k.bytes] = try? JSONParser.parse(b)
            case .deleted: out[k.bytes] = .some(nil)
            }
        }
        return out.compactMap { k, v in v.map { (k, $0) } }.sorted { $0.0.lexicographicallyPrecedes($1.0) }.map {
            (String(decoding: $0.0, as: UTF8.self), $0.1)
        }
    }

    /// A point to undo a rejected transaction's partial writes back to
    /// (an undo log, so a block of many transactions costs linear time).
    func mark() -> (journal: Int, index: Int) { (journal.count, evidenceIndex.count) }
    func reset(_ m: (journal: Int, index: Int)) {
        evidenceIndex.removeLast(evidenceIndex.count - m.index)
        while journal.count > m.journal {
            let (k, before) = journal.removeLast()
            if let b = before {
                pending.updateValue(b, forKey: k)
            } else {
                pending.removeValue(forKey: k)
            }
        }
    }

    /// The writes so far, one per key, in key (byte) order: the order the
    /// state root hashes them in, and the order in which RocksDB's memtable
    /// takes a batch fastest (each insert starts near the previous one).
    public var writes: [StateWrite] {
        // Sorted as indices (`KeyOrder`): sorting the writes themselves
        // retained and released their arrays at every move (≈ 7 % of a
        // node's CPU on a block of evidences).
        let entries = pending.map { (key: $0.key.bytes, value: $0.value) }
        let order = KeyOrder.of(entries.map(\.key))
        return order.map { i in StateWrite(key: entries[i].key, value: entries[i].value.encoded) }
    }
}
