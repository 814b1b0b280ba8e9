import EFSCCore

/// RFC 6962 Merkle trees over transactions: leaf = SHA-256(0x00 ‖ data),
/// node = SHA-256(0x01 ‖ left ‖ right), split at the largest power of two
/// below the size. Gives the transactions root of a block and inclusion
/// proofs ("this evidence is in the block at height h").
public enum Merkle {
    /// SHA-256(0x00 ‖ data), hashed in place (transactions are up to 700 KB
    /// a block, and prefixing made a copy of each).
    public static func leafHash(_ data: [UInt8]) -> [UInt8] { Digest.sha256(prefix: 0, data) }
    static func nodeHash(_ l: [UInt8], _ r: [UInt8]) -> [UInt8] { Digest.sha256([1] + l + r) }

    /// The root of `leaves` (already leaf-hashed); SHA-256 of nothing when empty.
    public static func root(_ leaves: [[UInt8]]) -> [UInt8] {
        if leaves.isEmpty { return Digest.sha256([]) }
        return mth(leaves[...])
    }

    static func split(_ n: Int) -> Int {
        var k = 1
        while k << 1 < n { k <<= 1 }
        return k
    }

    static func mth(_ l: ArraySlice<[UInt8]>) -> [UInt8] {
        if l.count == 1 { return l.first! }
        let k = split(l.count)
        return nodeHash(mth(l.prefix(k)), mth(l.dropFirst(k)))
    }

    /// The audit path of leaf `index` (sibling hashes from the leaf up).
    public static func proof(_ leaves: [[UInt8]], index: Int) -> [[UInt8]] {
        precondition(index >= 0 && index < leaves.count)
        return path(index, leaves[...])
    }

    static func path(_ m: Int, _ d: ArraySlice<[UInt8]>) -> [[UInt8]] {
        if d.count <= 1 { return [] }
        let k = split(d.count)
        if m < k { return path(m, d.prefix(k)) + [mth(d.dropFirst(k))] }
        return path(m - k, d.dropFirst(k)) + [mth(d.prefix(k))]
    }

    /// Checks that `leaf` is at `index` of a tree of `size` leaves with `root`.
    public static func verify(leaf: [UInt8], index: Int, size: Int, proof: [[UInt8]], root: [UInt8]) -> Bool {
        guard index >= 0, index < size else { return false }
        var fn = index
        var sn = size - 1
        var r = leaf
        for p in proof {
            if sn == 0 { return false }
            if fn & 1 == 1 || fn == sn {
                r = nodeHash(p, r)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                r = nodeHash(r, p)
            }
            fn >>= 1
            sn >>= 1
        }
        return sn == 0 && r == root
    }
}
