/// A counting semaphore for async code: at most `count` holders at once;
/// `acquire` suspends (it does not poll) until a slot is free. Waiters are
/// served in arrival order.
public final class AsyncSlots: @unchecked Sendable {
    private let lock = Lock()
    private var free: Int
    private var waiters: [CheckedContinuation<Void, Never>] = []

    public init(_ count: Int) {
        precondition(count >= 1, "AsyncSlots needs at least one slot")
        free = count
    }

    public func acquire() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = lock.withLock { () -> Bool in
                if free > 0 {
                    free -= 1
                    return true
                }
                waiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }

    public func release() {
        let next = lock.withLock { () -> CheckedContinuation<Void, Never>? in
            if waiters.isEmpty {
                free += 1
                return nil
            }
            return waiters.removeFirst()
        }
        next?.resume()
    }
}
