/// Bitcoin-alphabet base58, the `z` encoding of multibase used by did:key and
/// Data Integrity proof values.
public enum Base58 {
    static let alphabet: [UInt8] = Array("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz".utf8)
    static let decodeTable: [Int8] = {
        var t = [Int8](repeating: -1, count: 256)
        for (i, c) in alphabet.enumerated() { t[Int(c)] = Int8(i) }
        return t
    }()

    /// 58^9: the largest power of 58 whose product with 256 fits in 64 bits,
    /// so the conversion works on 9 base-58 digits per limb.
    static let limbBase: UInt64 = 7_427_658_739_644_928

    public static func encode(_ bytes: [UInt8]) -> String {
        var zeros = 0
        while zeros < bytes.count && bytes[zeros] == 0 { zeros += 1 }
        // Little-endian limbs of 9 base-58 digits each.
        var limbs: [UInt64] = []
        limbs.reserveCapacity(bytes.count / 6 + 1)
        for byte in bytes[zeros...] {
            var carry = UInt64(byte)
            for k in 0..<limbs.count {
                let v = limbs[k] &* 256 &+ carry
                limbs[k] = v % limbBase
                carry = v / limbBase
            }
            while carry > 0 {
                limbs.append(carry % limbBase)
                carry /= limbBase
            }
        }
        var digits: [UInt8] = []
        digits.reserveCapacity(limbs.count * 9)
        for (i, limb) in limbs.enumerated() {
            var v = limb
            let last = i == limbs.count - 1
            var n = 0
            while (last && v > 0) || (!last && n < 9) {
                digits.append(alphabet[Int(v % 58)])
                v /= 58
                n += 1
            }
        }
        var out = [UInt8](repeating: alphabet[0], count: zeros)
        out.append(contentsOf: digits.reversed())
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes base58btc; `nil` when a character is outside the alphabet or
    /// the text is longer than `maxLength` (decoding is quadratic in length,
    /// so hostile input is refused before any work: `WireLimits.base58Length`).
    public static func decode(_ text: String, maxLength: Int = WireLimits.base58Length) -> [UInt8]? {
        guard text.utf8.count <= maxLength else { return nil }
        let chars = Array(text.utf8)
        var zeros = 0
        while zeros < chars.count && chars[zeros] == alphabet[0] { zeros += 1 }
        var b256 = [UInt8](repeating: 0, count: (chars.count - zeros) * 733 / 1000 + 1)
        var length = 0
        for c in chars[zeros...] {
            let v = decodeTable[Int(c)]
            if v < 0 { return nil }
            var carry = Int(v)
            var i = 0
            var k = b256.count - 1
            while (carry != 0 || i < length) && k >= 0 {
                carry += 58 * Int(b256[k])
                b256[k] = UInt8(carry % 256)
                carry /= 256
                i += 1
                k -= 1
            }
            length = i
        }
        var start = b256.count - length
        while start < b256.count && b256[start] == 0 { start += 1 }
        return [UInt8](repeating: 0, count: zeros) + b256[start...]
    }
}

/// Lower-case hex, for hashes shown to people and stored as keys.
public enum Hex {
    /// Lower-case hex of `bytes`.
    public static func encode<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        if let s = bytes.withContiguousStorageIfAvailable({ encode(raw: UnsafeRawBufferPointer($0)) }) { return s }
        return Array(bytes).withUnsafeBytes { encode(raw: $0) }
    }

    /// Lower-case hex of raw bytes, written straight into the string's
    /// storage: going through a generic sequence and a byte array first was
    /// most of the load generator's time per evidence (a hash in hex each).
    public static func encode(raw: UnsafeRawBufferPointer) -> String {
        @inline(__always) func digit(_ n: UInt8) -> UInt8 { n < 10 ? n &+ 0x30 : n &+ 0x57 }
        return String(unsafeUninitializedCapacity: raw.count * 2) { out in
            for (i, b) in raw.enumerated() {
                out[2 * i] = digit(b >> 4)
                out[2 * i + 1] = digit(b & 0xF)
            }
            return raw.count * 2
        }
    }

    /// The bytes of `text` (either case), or nil if it is not whole hex.
    /// Reads the string's UTF-8 in place: a node decodes a credential hash
    /// per evidence, and copying each string first was most of the cost.
    public static func decode(_ text: String) -> [UInt8]? {
        if let r = text.utf8.withContiguousStorageIfAvailable({ decode(bytes: $0) }) { return r }
        return Array(text.utf8).withUnsafeBufferPointer { decode(bytes: $0) }
    }

    static func decode(bytes u: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        guard u.count % 2 == 0 else { return nil }
        // A table rather than range checks: in a hash, digit or letter is a
        // coin toss per character, and the mispredicted branches made this
        // ≈ 2 % of a loaded node (it decodes every credential hash).
        var bad: UInt8 = 0
        let out = nibbles.withUnsafeBufferPointer { t in
            [UInt8](unsafeUninitializedCapacity: u.count / 2) { buf, n in
                var i = 0
                while i < u.count {
                    let h = t[Int(u[i])], l = t[Int(u[i + 1])]
                    bad |= h | l
                    buf[i / 2] = h << 4 | (l & 0x0F)
                    i += 2
                }
                n = u.count / 2
            }
        }
        return bad & 0xF0 == 0 ? out : nil
    }

    /// Each byte's hex value, or 0xFF if it is not a hex digit.
    private static let nibbles: [UInt8] = (0..<256).map { c -> UInt8 in
        switch UInt8(c) {
        case 0x30...0x39: return UInt8(c) - 0x30
        case 0x41...0x46: return UInt8(c) - 0x41 + 10
        case 0x61...0x66: return UInt8(c) - 0x61 + 10
        default: return 0xFF
        }
    }
}
