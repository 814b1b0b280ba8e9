#if canImport(Glibc)
import Glibc
#endif

/// CPU time of the calling thread. Wall time would count the waits of a
/// busy machine; this counts only what the thread itself ran.
enum ThreadCPU {
    static func micros() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) * 1e6 + Double(ts.tv_nsec) / 1e3
    }
}
