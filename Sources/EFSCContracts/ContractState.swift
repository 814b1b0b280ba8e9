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
        if pending[key] == nil { order.append(key) }
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

    /// Snapshot used to undo a rejected transaction's partial writes.
    func mark() -> ([String: JSON?], [String]) { (pending, order) }
    func reset(_ m: ([String: JSON?], [String])) {
        pending = m.0
        order = m.1
    }

    /// The writes so far, in first-write order.
    public var writes: [StateWrite] {
        order.map { k in StateWrite(key: Array(k.utf8), value: pending[k]!.flatMap { try? JCS.canonicalize($0) }) }
    }
}
