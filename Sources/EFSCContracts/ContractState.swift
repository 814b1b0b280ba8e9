import EFSCCore
import EFSCLedger

/// Contract state as JSON values under string keys, read from the ledger
/// and overlaid with the writes of the block being executed. Writes become
/// `StateWrite`s (key UTF-8, value canonical JSON) for `Ledger.commit`.
public final class ContractState {
    let base: ([UInt8]) -> [UInt8]?
    let baseScan: ([UInt8]) -> [(key: [UInt8], value: [UInt8])]
    private(set) var pending: [String: JSON?] = [:]
    private var order: [String] = []
    /// Undo log: (key, value before the write; nil = key was not pending).
    private var journal: [(String, JSON??)] = []

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
        if let p = pending[key] { return p }
        guard let b = base(Array(key.utf8)) else { return nil }
        return try? JSONParser.parse(b)
    }

    public func set(_ key: String, _ value: JSON?) {
        let before = pending[key]
        journal.append((key, before))
        if before == nil { order.append(key) }
        pending[key] = .some(value)
    }

    /// Keys with `prefix`, committed and pending, in key order.
    public func scan(prefix: String) -> [(String, JSON)] {
        var out: [String: JSON] = [:]
        for (k, v) in baseScan(Array(prefix.utf8)) {
            if let j = try? JSONParser.parse(v) { out[String(decoding: k, as: UTF8.self)] = j }
        }
        for (k, v) in pending where k.hasPrefix(prefix) { out[k] = v ?? nil }
        return out.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
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
                if order.last == k { order.removeLast() } else if let i = order.lastIndex(of: k) { order.remove(at: i) }
            }
        }
    }

    /// The writes so far, in first-write order.
    public var writes: [StateWrite] {
        order.map { k in StateWrite(key: Array(k.utf8), value: pending[k]!.flatMap { try? JCS.canonicalize($0) }) }
    }
}
