import EFSCCore

/// Where an on-chain evidence is: block height, transaction position and
/// item within the transaction, plus (for a channel's latest evidence) its
/// sequence number. The evidence registry writes two of these per evidence,
/// so they are stored as 17 or 25 bytes rather than JSON: on a block of
/// 64K evidences, encoding JSON was ≈ 8 % of a node's CPU.
///
/// Bytes: format 0x01, height (u64), tx (u32), index (u32), then sequence
/// (u64) if present; all big-endian. A JSON object `{height, tx, index,
/// sequence?}` (ledgers written before this format) is read too.
public struct EvidenceLocation: Equatable, Sendable {
    public var height: UInt64
    public var tx: Int
    public var index: Int
    public var sequence: Int?

    public init(height: UInt64, tx: Int, index: Int, sequence: Int? = nil) {
        self.height = height
        self.tx = tx
        self.index = index
        self.sequence = sequence
    }

    static let format: UInt8 = 1

    public var encoded: [UInt8] {
        // Written in place: two of these per evidence, and appending byte by
        // byte checked capacity at each.
        let n = sequence == nil ? 17 : 25
        return [UInt8](unsafeUninitializedCapacity: n) { b, count in
            func put(_ v: UInt64, _ at: Int, _ width: Int) {
                for k in 0..<width { b[at + k] = UInt8(truncatingIfNeeded: v >> UInt64(8 * (width - 1 - k))) }
            }
            b[0] = Self.format
            put(height, 1, 8)
            put(UInt64(tx), 9, 4)
            put(UInt64(index), 13, 4)
            if let s = sequence { put(UInt64(s), 17, 8) }
            count = n
        }
    }

    /// Decodes either format; nil if `bytes` are neither.
    public init?(decoding bytes: [UInt8]) {
        if bytes.first == Self.format, bytes.count == 17 || bytes.count == 25 {
            func get(_ at: Int, _ n: Int) -> UInt64 { bytes[at..<at + n].reduce(0) { $0 << 8 | UInt64($1) } }
            var sequence: Int? = nil
            if bytes.count == 25 {
                let s = get(17, 8)
                guard s <= UInt64(Int.max) else { return nil }
                sequence = Int(s)
            }
            self.init(height: get(1, 8), tx: Int(get(9, 4)), index: Int(get(13, 4)), sequence: sequence)
            return
        }
        guard bytes.first == UInt8(ascii: "{"), let j = try? JSONParser.parse(bytes), let h = j["height"]?.intValue, h >= 0,
            let t = j["tx"]?.intValue, t >= 0, let i = j["index"]?.intValue, i >= 0
        else { return nil }
        self.init(height: UInt64(h), tx: t, index: i, sequence: j["sequence"]?.intValue)
    }
}
