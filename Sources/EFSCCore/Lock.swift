#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A pthread mutex for the small in-memory tables (resolvers, stores) that
/// are read from many tasks. Not reentrant.
public final class Lock: @unchecked Sendable {
    private var m = pthread_mutex_t()
    public init() { pthread_mutex_init(&m, nil) }
    deinit { pthread_mutex_destroy(&m) }

    public func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(&m)
        defer { pthread_mutex_unlock(&m) }
        return try body()
    }
}

/// A value behind its own lock, for state shared between queues and tasks.
public final class Guarded<T>: @unchecked Sendable {
    private let lock = Lock()
    private var value: T
    public init(_ v: T) { value = v }
    public func withLock<R>(_ body: (inout T) -> R) -> R { lock.withLock { body(&value) } }
}
