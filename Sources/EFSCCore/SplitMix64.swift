/// SplitMix64: a small, fast, seeded generator of well-spread 64-bit values
/// (Steele, Lea & Flood), for deterministic load and tests. Not for secrets.
public struct SplitMix64: Sendable, RandomNumberGenerator {
    public private(set) var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A value in 0..<n (n ≥ 1; slightly biased for huge n, which is fine here).
    public mutating func below(_ n: Int) -> Int { Int(next() % UInt64(Swift.max(1, n))) }
}
