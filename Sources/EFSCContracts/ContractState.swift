import EFSCCore
import EFSCLedger

/// Contract state as JSON values under string keys, read from the ledger
/// and overlaid with the writes of the block being executed. Writes become
/// `StateWrite`s (key UTF-8, value canonical JSON) for `Ledger.commit`.
///
/// Keys are compared as UTF-8 bytes, as RocksDB compares them. (Swift's
/// String equality is canonical equivalence: "é" and "e\u{301}" would be one
/// key here and two in the ledger.)
public final class ContractState {
    let base: ([UInt8]) -> [UInt8]?
    let baseScan: ([UInt8]) -> [(key: [UInt8], value: [UInt8])]
    private(set) var pending: [[UInt8]: JSON?] = [:]
    /// Undo log: (key, value before the write; nil = key was not pending).
    private var journal: [([UInt8], JSON??)] = []

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

    public func get(_ key: String) -> JSON? {
        let k = Array(key.utf8)
        if let p = pending[k] { return p }
        guard let b = base(k) else { return nil }
        return try? JSONParser.parse(b)
    }

    public func set(_ key: String, _ value: JSON?) {
        let k = Array(key.utf8)
        let before = pending[k]
        journal.append((k, before))
        pending[k] = .some(value)
    }

    /// Keys with `prefix` (a byte prefix), committed and pending, in key byte order.
    public func scan(prefix: String) -> [(String, JSON)] {
        let p = Array(prefix.utf8)
        var out: [[UInt8]: JSON] = [:]
        for (k, v) in baseScan(p) {
            if let j = try? JSONParser.parse(v) { out[k] = j }
        }
        for (k, v) in pending where k.starts(with: p) { out[k] = v ?? nil }
        return out.sorted { $0.key.lexicographicallyPrecedes($1.key) }.map { (String(decoding: $0.key, as: UTF8.self), $0.value) }
    }

    /// A point to undo a rejected transaction's partial writes back to
    /// (an undo log, so a block of many transactions costs linear time).
    func mark() -> Int { journal.count }
    func reset(_ m: Int) {
        while journal.count > m {
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
        // Sorted as indices over one flat buffer of key bytes: sorting the
        // writes themselves retained and released their arrays at every move
        // (≈ 7 % of a node's CPU on a block of evidences).
        let entries = pending.map { (key: $0.key, value: $0.value) }
        var flat: [UInt8] = []
        flat.reserveCapacity(entries.reduce(0) { $0 + $1.key.count })
        var spans: [(start: Int, count: Int)] = []
        spans.reserveCapacity(entries.count)
        for e in entries {
            spans.append((flat.count, e.key.count))
            flat.append(contentsOf: e.key)
        }
        var order = Array(entries.indices)
        flat.withUnsafeBufferPointer { fb in
            spans.withUnsafeBufferPointer { sb in
                order.sort { a, b in
                    StateWrite.bytesPrecede(
                        UnsafeBufferPointer(rebasing: fb[sb[a].start..<sb[a].start + sb[a].count]),
                        UnsafeBufferPointer(rebasing: fb[sb[b].start..<sb[b].start + sb[b].count]))
                }
            }
        }
        return order.map { i in StateWrite(key: entries[i].key, value: entries[i].value.flatMap { try? JCS.canonicalize($0) }) }
    }
}
