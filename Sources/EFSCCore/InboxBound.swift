/// A bound on work queued but not yet done: `enter` before enqueueing
/// (false: over the bound, drop it), `leave` when it is done.
public final class InboxBound: @unchecked Sendable {
    public let limitMessages: Int
    public let limitBytes: Int
    private let lock = Lock()
    private var messages = 0
    private var bytes = 0

    public init(messages: Int, bytes: Int) {
        limitMessages = messages
        limitBytes = bytes
    }

    public func enter(_ size: Int) -> Bool {
        lock.withLock {
            guard messages < limitMessages, bytes + size <= limitBytes else { return false }
            messages += 1
            bytes += size
            return true
        }
    }

    public func leave(_ size: Int) {
        lock.withLock {
            messages -= 1
            bytes -= size
        }
    }

    public var queued: (messages: Int, bytes: Int) { lock.withLock { (messages, bytes) } }
}
