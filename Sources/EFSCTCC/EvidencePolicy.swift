/// The paper's answer to bursts: evidence goes on chain every N settlements
/// per channel, and N grows while the chain's pending pool is long and
/// shrinks back once it drains. A pure value: feed it pool lengths, read
/// the factor; each channel's N is `min(base × factor, max)` from its TIC.
public struct EvidencePolicy: Sendable, Equatable {
    /// Pool length at or above which the factor doubles.
    public var high: Int
    /// Pool length at or below which the factor halves.
    public var low: Int
    /// Largest factor (a channel's own maximum bounds it further).
    public var maxFactor: Int
    public private(set) var factor = 1

    public init(high: Int = 2000, low: Int = 200, maxFactor: Int = 64) {
        self.high = high
        self.low = low
        self.maxFactor = maxFactor
    }

    /// Takes one observation of the pool; returns whether the factor changed.
    @discardableResult
    public mutating func observe(pool: Int) -> Bool {
        let before = factor
        if pool >= high {
            factor = min(factor * 2, maxFactor)
        } else if pool <= low {
            factor = max(factor / 2, 1)
        }
        return factor != before
    }

    /// N for a channel whose TIC says `every`, at most `maxEvery`.
    public func n(every: Int, maxEvery: Int) -> Int { Self.n(every: every, maxEvery: maxEvery, factor: factor) }

    /// N for a channel whose TIC says `every`, at most `maxEvery`, under `factor`.
    public static func n(every: Int, maxEvery: Int, factor: Int) -> Int { max(every, min(every * max(factor, 1), maxEvery)) }
}
