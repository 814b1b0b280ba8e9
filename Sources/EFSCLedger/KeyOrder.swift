#if canImport(Glibc)
import Glibc
#endif

/// Sorting keys in RocksDB's byte order, fast enough to run on every block.
///
/// A block of evidences has thousands of state writes and as many evidence
/// index entries. Sorting them as `[UInt8]` values retained and released
/// arrays at every move, and comparing through memcmp touched scattered
/// memory. Here each key is tagged with the 8 bytes that follow the prefix
/// all keys share (big-endian, so integer order is byte order), and plain
/// (tag, index) pairs are sorted; only keys with equal tags are compared in
/// full. State keys share long prefixes ("evidence/…"), index keys are hashes.
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

    static func order(_ f: UnsafeBufferPointer<UInt8>, _ s: UnsafeBufferPointer<Int>, _ n: Int) -> [Int] {
        @inline(__always) func length(_ i: Int) -> Int { s[i + 1] - s[i] }
        // The prefix every key shares.
        var common = length(0)
        for i in 1..<n where common > 0 {
            let a = s[0], b = s[i]
            var j = 0
            let m = min(common, length(i))
            while j < m && f[a + j] == f[b + j] { j += 1 }
            common = j
        }
        var tagged = [(tag: UInt64, index: Int)]()
        tagged.reserveCapacity(n)
        for i in 0..<n {
            var t: UInt64 = 0
            let from = s[i] + common, end = s[i + 1]
            for j in 0..<8 {
                t <<= 8
                if from + j < end { t |= UInt64(f[from + j]) }
            }
            tagged.append((t, i))
        }
        tagged.sort { x, y in
            if x.tag != y.tag { return x.tag < y.tag }
            // Equal tags: the rest of the keys decide, then the input order.
            let a = s[x.index] + common, b = s[y.index] + common
            let la = s[x.index + 1] - a, lb = s[y.index + 1] - b
            let m = min(la, lb)
            let c = m == 0 ? 0 : memcmp(f.baseAddress! + a, f.baseAddress! + b, m)
            if c != 0 { return c < 0 }
            if la != lb { return la < lb }
            return x.index < y.index
        }
        return tagged.map(\.index)
    }
}
