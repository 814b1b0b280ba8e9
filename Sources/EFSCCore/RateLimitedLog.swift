/// One log line per key every `interval` seconds, at most: a flood of the
/// same refusal cannot fill the disk. The line that does go out says how
/// many of its key were held back since the last one.
public final class RateLimitedLog: @unchecked Sendable {
    public let interval: Double
    private let lock = Lock()
    private var last: [String: (time: Double, suppressed: Int)] = [:]

    public init(interval: Double = 10) { self.interval = interval }

    /// The line to log for `key` now, or nil when one went out within the
    /// interval. Long details are cut to 300 characters.
    public func line(_ key: String, now: Double = DateTime.currentTime(), _ detail: () -> String) -> String? {
        let suppressed: Int? = lock.withLock {
            let l = last[key] ?? (-.infinity, 0)
            guard now - l.time >= interval else {
                last[key] = (l.time, l.suppressed + 1)
                return nil
            }
            last[key] = (now, 0)
            return l.suppressed
        }
        guard let suppressed else { return nil }
        let d = detail()
        let shown = d.utf8.count > 300 ? String(d.prefix(300)) + "…" : d
        return shown + (suppressed > 0 ? " [\(suppressed) more of this kind not logged]" : "")
    }
}
