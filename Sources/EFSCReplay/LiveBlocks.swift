import EFSCCore
import Foundation

/// Blocks seen on the live blocks topics, held until the event log is at
/// their height: per group and height at most `WireLimits.replayCopiesPerHeight`
/// distinct copies (each node publishes every block), heights from the one
/// due to `WireLimits.replayBufferedHeights` above it, and
/// `WireLimits.replayBufferedBytes` in all. Anything else is dropped and
/// counted: history fills what was dropped. Unverified: copies are checked
/// when taken. Wakes the event log when a block arrives.
final class LiveBlocks: @unchecked Sendable {
    private let lock = Lock()
    private var held: [String: [UInt64: [[UInt8]]]] = [:]
    private var due: [String: UInt64] = [:]
    private var bytes = 0
    private(set) var dropped = 0
    /// The highest height seen per group (a hint of the head, unverified).
    private var seen: [String: UInt64] = [:]
    private var waiter: CheckedContinuation<Void, Never>?
    private var signalled = false

    static func peek(_ b: [UInt8]) -> (group: String, height: UInt64)? { BlockVerifier.peek(b) }

    func setDue(_ group: String, _ height: UInt64) {
        lock.withLock {
            due[group] = height
            guard var g = held[group] else { return }
            for h in g.keys where h < height {
                bytes -= g[h]!.reduce(0) { $0 + $1.count }
                g[h] = nil
            }
            held[group] = g
        }
    }

    func add(_ payload: [UInt8]) {
        guard let (g, h) = Self.peek(payload) else {
            lock.withLock { dropped += 1 }
            return
        }
        let wake = lock.withLock { () -> CheckedContinuation<Void, Never>? in
            guard let d = due[g], h >= d, h < d + UInt64(WireLimits.replayBufferedHeights), bytes + payload.count <= WireLimits.replayBufferedBytes
            else {
                dropped += 1
                return nil
            }
            var copies = held[g]?[h] ?? []
            guard copies.count < WireLimits.replayCopiesPerHeight, !copies.contains(payload) else { return nil }
            copies.append(payload)
            held[g, default: [:]][h] = copies
            bytes += payload.count
            seen[g] = max(seen[g] ?? 0, h)
            signalled = true
            defer { waiter = nil }
            return waiter
        }
        wake?.resume()
    }

    /// The held copies of `group` at `height`, removed.
    func take(_ group: String, _ height: UInt64) -> [[UInt8]] {
        lock.withLock {
            guard let c = held[group]?.removeValue(forKey: height) else { return [] }
            bytes -= c.reduce(0) { $0 + $1.count }
            return c
        }
    }

    func highestSeen(_ group: String) -> UInt64 { lock.withLock { seen[group] ?? 0 } }

    /// Returns when a block arrived since the last call, or after `seconds`.
    func wait(seconds: Double) async {
        let already = lock.withLock { () -> Bool in
            defer { signalled = false }
            return signalled
        }
        if already { return }
        let timer = Task { [weak self] in
            try? await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
            self?.wakeWaiter()
        }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = lock.withLock { () -> Bool in
                if signalled {
                    signalled = false
                    return true
                }
                waiter = c
                return false
            }
            if now { c.resume() }
        }
        timer.cancel()
        lock.withLock { signalled = false }
    }

    private func wakeWaiter() {
        let w = lock.withLock { () -> CheckedContinuation<Void, Never>? in
            defer { waiter = nil }
            return waiter
        }
        w?.resume()
    }
}
