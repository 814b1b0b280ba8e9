#if canImport(Glibc)
import Glibc
#endif

/// CPU time, in microseconds. Wall time would count the waits of a busy
/// machine; these count only what ran.
public enum CPUClock {
    /// CPU time of the calling thread.
    public static func threadMicros() -> Double { read(CLOCK_THREAD_CPUTIME_ID) }
    /// CPU time of every thread of this process (background threads included).
    public static func processMicros() -> Double { read(CLOCK_PROCESS_CPUTIME_ID) }

    static func read(_ clock: clockid_t) -> Double {
        var ts = timespec()
        clock_gettime(clock, &ts)
        return Double(ts.tv_sec) * 1e6 + Double(ts.tv_nsec) / 1e3
    }
}
