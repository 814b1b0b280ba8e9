#if canImport(Glibc)
import Glibc
#endif

/// Sorting keys in RocksDB's byte order, fast enough to run on every block.
///
/// A block of evidences has thousands of state writes and as many evidence
/// index entries. Sorting them as `[UInt8]` values retained and released
/// arrays at every move, and a comparison sort through memcmp touched
/// scattered memory. Here the keys are copied into one buffer and sorted as
/// 64-bit tags, most significant window first: a tag holds the next 7 bytes
/// of a key (big-endian, so integer order is byte order) and, in its low
/// byte, how many bytes remain (capped at 8, "more than the window"), so a
/// key sorts before its own extensions. Tags are radix-sorted (stable, so
/// equal keys keep their order); a run of equal tags whose keys go on is
/// sorted again on their next 7 bytes. Passes over a byte every key shares
/// (state keys share long prefixes such as "evidence/…") are skipped.
///
/// Sorted input also matters to RocksDB: a memtable takes a key-sorted batch
/// faster, and the evidence index's vector memtable sorts itself before each
/// flush, which costs much less when it holds sorted runs.
public enum KeyOrder {
    /// Indices of `keys` in byte order (shorter first on a common prefix);
    /// equal keys keep their relative order.
    public static func of(_ keys: [[UInt8]]) -> [Int] {
        let n = keys.count
        guard n > 1 else { return Array(0..<n) }
        var flat: [UInt8] = []
        flat.reserveCapacity(keys.reduce(0) { $0 + $1.count })
        var starts: [Int] = []
        starts.reserveCapacity(n + 1)
        for k in keys {
            starts.append(flat.count)
            flat.append(contentsOf: k)
        }
        starts.append(flat.count)
        return flat.withUnsafeBufferPointer { f in
            starts.withUnsafeBufferPointer { s in order(f, s, n) }
        }
    }

    /// Below this many keys a range is insertion-sorted.
    static let smallRange = 24

    static func order(_ f: UnsafeBufferPointer<UInt8>, _ s: UnsafeBufferPointer<Int>, _ n: Int) -> [Int] {
        // Order, tags, and the radix passes' spare copies of both.
        let ix = UnsafeMutableBufferPointer<Int>.allocate(capacity: n)
        let si = UnsafeMutableBufferPointer<Int>.allocate(capacity: n)
        let tg = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: n)
        let st = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: n)
        defer {
            ix.deallocate()
            si.deallocate()
            tg.deallocate()
            st.deallocate()
        }
        for i in 0..<n { ix[i] = i }
        var pending = [(lo: 0, hi: n, offset: 0)]
        while let (lo, hi, offset) = pending.popLast() {
            for i in lo..<hi { tg[i] = tag(f, from: s[ix[i]] + offset, end: s[ix[i] + 1]) }
            if hi - lo < smallRange {
                insertionSort(ix, tg, lo, hi)
            } else {
                radixSort(ix, tg, si, st, lo, hi)
            }
            // Runs of equal tags whose keys continue: next window.
            var i = lo
            while i < hi {
                var j = i + 1
                while j < hi && tg[j] == tg[i] { j += 1 }
                if j - i > 1 && tg[i] & 0xFF == 8 { pending.append((i, j, offset + 7)) }
                i = j
            }
        }
        return Array(ix)
    }

    /// The 7 bytes from `from` (zero-padded) and min(bytes left, 8).
    @inline(__always) static func tag(_ f: UnsafeBufferPointer<UInt8>, from: Int, end: Int) -> UInt64 {
        var t: UInt64 = 0
        for j in 0..<7 {
            t <<= 8
            if from + j < end { t |= UInt64(f[from + j]) }
        }
        return t << 8 | UInt64(min(max(end - from, 0), 8))
    }

    static func insertionSort(_ ix: UnsafeMutableBufferPointer<Int>, _ tg: UnsafeMutableBufferPointer<UInt64>, _ lo: Int, _ hi: Int) {
        guard hi - lo > 1 else { return }
        for i in (lo + 1)..<hi {
            let t = tg[i], x = ix[i]
            var j = i
            while j > lo && tg[j - 1] > t {
                tg[j] = tg[j - 1]
                ix[j] = ix[j - 1]
                j -= 1
            }
            tg[j] = t
            ix[j] = x
        }
    }

    /// Stable LSD radix sort of [lo, hi) by tag, a byte per pass.
    static func radixSort(
        _ ix: UnsafeMutableBufferPointer<Int>, _ tg: UnsafeMutableBufferPointer<UInt64>, _ si: UnsafeMutableBufferPointer<Int>,
        _ st: UnsafeMutableBufferPointer<UInt64>, _ lo: Int, _ hi: Int
    ) {
        var counts = [Int](repeating: 0, count: 256)
        counts.withUnsafeMutableBufferPointer { c in
            for shift in stride(from: 0, to: 64, by: 8) {
                for b in 0..<256 { c[b] = 0 }
                for i in lo..<hi { c[Int(truncatingIfNeeded: tg[i] >> UInt64(shift)) & 0xFF] += 1 }
                // A byte every tag shares orders nothing.
                if c[Int(truncatingIfNeeded: tg[lo] >> UInt64(shift)) & 0xFF] == hi - lo { continue }
                var sum = lo
                for b in 0..<256 {
                    let k = c[b]
                    c[b] = sum
                    sum += k
                }
                for i in lo..<hi {
                    let b = Int(truncatingIfNeeded: tg[i] >> UInt64(shift)) & 0xFF
                    st[c[b]] = tg[i]
                    si[c[b]] = ix[i]
                    c[b] += 1
                }
                for i in lo..<hi {
                    tg[i] = st[i]
                    ix[i] = si[i]
                }
            }
        }
    }
}
