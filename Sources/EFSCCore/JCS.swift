/// Why a value has no canonical form.
public enum JCSError: Error, Sendable, Equatable, CustomStringConvertible {
    case nonFiniteNumber(path: String)

    public var description: String {
        switch self {
        case .nonFiniteNumber(let p): return "cannot canonicalize \(p): NaN and Infinity are not JSON numbers"
        }
    }
}

/// RFC 8785 JSON Canonicalization Scheme. Canonical bytes are what EFSC hashes
/// and signs, so this sits on the hot path of every credential issued.
public enum JCS {
    /// The canonical UTF-8 bytes of `value`.
    public static func canonicalize(_ value: JSON) throws(JCSError) -> [UInt8] {
        var w = JSONWriter(mode: .canonical)
        w.out.reserveCapacity(2048)
        try w.write(value)
        return w.out
    }

    /// Parses `text` and returns its canonical bytes.
    public static func canonicalize(bytes: [UInt8]) throws -> [UInt8] {
        try canonicalize(JSONParser.parse(bytes))
    }

    /// ECMAScript `Number.prototype.toString` of a finite double, as RFC 8785 §3.2.2.3 requires.
    public static func formatNumber(_ d: Double) -> String {
        var out: [UInt8] = []
        appendNumber(d, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Code-unit order of UTF-16, computed on UTF-8 bytes without transcoding.
    /// UTF-8 byte order equals code point order; the two orders differ only
    /// between U+E000–U+FFFF and supplementary characters (surrogates sort first).
    @inline(__always)
    public static func utf16Less(_ a: String, _ b: String) -> Bool {
        if let r = a.utf8.withContiguousStorageIfAvailable({ ab in
            b.utf8.withContiguousStorageIfAvailable { bb in utf16Less(ab, bb) }
        }), let r { return r }
        return a.utf16.lexicographicallyPrecedes(b.utf16)
    }

    @inline(__always)
    static func utf16Less(_ ab: UnsafeBufferPointer<UInt8>, _ bb: UnsafeBufferPointer<UInt8>) -> Bool {
        do {
            do {
                let n = min(ab.count, bb.count)
                var i = 0
                while i < n {
                    let x = ab[i]
                    let y = bb[i]
                    if x != y {
                        let xBMPHigh = x == 0xEE || x == 0xEF
                        let yBMPHigh = y == 0xEE || y == 0xEF
                        if xBMPHigh && y >= 0xF0 { return false }
                        if yBMPHigh && x >= 0xF0 { return true }
                        return x < y
                    }
                    i += 1
                }
                return ab.count < bb.count
            }
        }
    }
}

/// Serialises `JSON` canonically (JCS) or for people (pretty, insertion order).
public struct JSONWriter {
    public enum Mode { case canonical, compact, pretty }
    public let mode: Mode
    public var out: [UInt8] = []

    public init(mode: Mode) { self.mode = mode }

    public mutating func write(_ v: JSON) throws(JCSError) {
        if !write(v, depth: 0) {
            throw .nonFiniteNumber(path: Self.nonFinitePath(v, "$") ?? "$")
        }
    }

    /// Where the first NaN/Infinity is, for the error message (slow path only).
    static func nonFinitePath(_ v: JSON, _ path: String) -> String? {
        switch v {
        case .number(let d): return d.isFinite ? nil : path
        case .array(let a):
            for (i, e) in a.enumerated() { if let p = nonFinitePath(e, "\(path)[\(i)]") { return p } }
            return nil
        case .object(let o):
            for (k, e) in o { if let p = nonFinitePath(e, "\(path).\(k)") { return p } }
            return nil
        default: return nil
        }
    }

    private mutating func newline(_ depth: Int) {
        out.append(0x0A)
        for _ in 0..<depth { out.append(0x20); out.append(0x20) }
    }

    /// Returns false on a non-finite number (no allocation for error paths).
    private mutating func write(_ v: JSON, depth: Int) -> Bool {
        switch v {
        case .null: out.append(contentsOf: [0x6E, 0x75, 0x6C, 0x6C])
        case .bool(let b):
            if b { out.append(contentsOf: [0x74, 0x72, 0x75, 0x65]) } else { out.append(contentsOf: [0x66, 0x61, 0x6C, 0x73, 0x65]) }
        case .number(let d):
            guard d.isFinite else { return false }
            appendNumber(d, to: &out)
        case .string(let s):
            appendString(s, to: &out)
        case .array(let a):
            out.append(UInt8(ascii: "["))
            if a.isEmpty {
                out.append(UInt8(ascii: "]"))
                return true
            }
            for (i, e) in a.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                if mode == .pretty { newline(depth + 1) }
                if !write(e, depth: depth + 1) { return false }
            }
            if mode == .pretty { newline(depth) }
            out.append(UInt8(ascii: "]"))
        case .object(let o):
            out.append(UInt8(ascii: "{"))
            if o.isEmpty {
                out.append(UInt8(ascii: "}"))
                return true
            }
            let keys = o.keys
            let values = o.values
            var order = Array(keys.indices)
            if mode == .canonical {
                // Documents that were canonical already need no sort.
                var sorted = true
                var i = 1
                while i < keys.count {
                    if !JCS.utf16Less(keys[i - 1], keys[i]) {
                        sorted = false
                        break
                    }
                    i += 1
                }
                if !sorted { order.sort { JCS.utf16Less(keys[$0], keys[$1]) } }
            }
            var first = true
            for idx in order {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                if mode == .pretty { newline(depth + 1) }
                appendString(keys[idx], to: &out)
                out.append(UInt8(ascii: ":"))
                if mode == .pretty { out.append(0x20) }
                if !write(values[idx], depth: depth + 1) { return false }
            }
            if mode == .pretty { newline(depth) }
            out.append(UInt8(ascii: "}"))
        }
        return true
    }
}

extension JSON {
    /// Canonical (RFC 8785) bytes.
    public func canonicalBytes() throws(JCSError) -> [UInt8] { try JCS.canonicalize(self) }

    /// Indented, insertion-ordered text for people. Non-finite numbers print as `null`.
    public func prettyString() -> String {
        var w = JSONWriter(mode: .pretty)
        if (try? w.write(self)) == nil { return "null" }
        return String(decoding: w.out, as: UTF8.self)
    }

    /// One line, insertion order (for `--json` line output).
    public func compactString() -> String {
        var w = JSONWriter(mode: .compact)
        if (try? w.write(self)) == nil { return "null" }
        return String(decoding: w.out, as: UTF8.self)
    }
}

private let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

@inline(__always)
func appendString(_ s: String, to out: inout [UInt8]) {
    out.append(0x22)
    if s.utf8.withContiguousStorageIfAvailable({ appendEscaped($0, to: &out) }) == nil {
        var c = s
        c.withUTF8 { appendEscaped($0, to: &out) }
    }
    out.append(0x22)
}

@inline(__always)
func appendEscaped(_ u: UnsafeBufferPointer<UInt8>, to out: inout [UInt8]) {
    do {
        var runStart = 0
        var i = 0
        let n = u.count
        while i < n {
            let c = u[i]
            if c >= 0x20 && c != 0x22 && c != 0x5C {
                i += 1
                continue
            }
            if i > runStart { out.append(contentsOf: UnsafeBufferPointer(rebasing: u[runStart..<i])) }
            switch c {
            case 0x22: out.append(0x5C); out.append(0x22)
            case 0x5C: out.append(0x5C); out.append(0x5C)
            case 0x08: out.append(0x5C); out.append(UInt8(ascii: "b"))
            case 0x09: out.append(0x5C); out.append(UInt8(ascii: "t"))
            case 0x0A: out.append(0x5C); out.append(UInt8(ascii: "n"))
            case 0x0C: out.append(0x5C); out.append(UInt8(ascii: "f"))
            case 0x0D: out.append(0x5C); out.append(UInt8(ascii: "r"))
            default:
                out.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hexDigits[Int(c >> 4)], hexDigits[Int(c & 0xF)]])
            }
            i += 1
            runStart = i
        }
        if n > runStart { out.append(contentsOf: UnsafeBufferPointer(rebasing: u[runStart..<n])) }
    }
}

/// ECMAScript Number::toString (ECMA-262 §6.1.6.1.20) for finite doubles.
/// The shortest round-trip digits come from Swift's own `description`
/// (which is shortest-and-closest, as ECMAScript requires); only the layout
/// differs, so we re-lay them out.
@inline(__always)
func appendNumber(_ d: Double, to out: inout [UInt8]) {
    if d == 0 {
        out.append(0x30)  // also -0 → "0"
        return
    }
    // Integers below 2^53: every digit is needed, so the integer is the shortest form.
    if d.rounded(.towardZero) == d && abs(d) < 9_007_199_254_740_992 {
        var v = Int64(d)
        if v < 0 {
            out.append(UInt8(ascii: "-"))
            v = -v
        }
        var buf: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &buf) { b in
            var p = 16
            repeat {
                p -= 1
                b[p] = UInt8(truncatingIfNeeded: v % 10) + 0x30
                v /= 10
            } while v > 0
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: b[p..<16]))
        }
        return
    }
    var neg = false
    var x = d
    if x < 0 {
        neg = true
        x = -x
    }
    // Parse Swift's shortest representation: I[.F][e±X]
    let desc = Array(x.description.utf8)
    var digits: [UInt8] = []
    digits.reserveCapacity(20)
    var intLen = 0
    var seenDot = false
    var exp = 0
    var j = 0
    while j < desc.count {
        let c = desc[j]
        if c == UInt8(ascii: ".") {
            seenDot = true
        } else if c == UInt8(ascii: "e") || c == UInt8(ascii: "E") {
            j += 1
            var eneg = false
            if desc[j] == UInt8(ascii: "-") {
                eneg = true
                j += 1
            } else if desc[j] == UInt8(ascii: "+") {
                j += 1
            }
            var e = 0
            while j < desc.count {
                e = e * 10 + Int(desc[j] - 0x30)
                j += 1
            }
            exp = eneg ? -e : e
            break
        } else {
            digits.append(c)
            if !seenDot { intLen += 1 }
        }
        j += 1
    }
    // Strip leading zeros (move the point), then trailing zeros.
    var lead = 0
    while lead < digits.count - 1 && digits[lead] == 0x30 { lead += 1 }
    var n = intLen + exp - lead
    digits.removeFirst(lead)
    while digits.count > 1 && digits.last == 0x30 { digits.removeLast() }
    if digits == [0x30] { n = 1 }
    let k = digits.count
    if neg { out.append(UInt8(ascii: "-")) }
    if k <= n && n <= 21 {
        out.append(contentsOf: digits)
        for _ in 0..<(n - k) { out.append(0x30) }
    } else if 0 < n && n <= 21 {
        out.append(contentsOf: digits[0..<n])
        out.append(UInt8(ascii: "."))
        out.append(contentsOf: digits[n...])
    } else if -6 < n && n <= 0 {
        out.append(0x30)
        out.append(UInt8(ascii: "."))
        for _ in 0..<(-n) { out.append(0x30) }
        out.append(contentsOf: digits)
    } else {
        let e = n - 1
        out.append(digits[0])
        if k > 1 {
            out.append(UInt8(ascii: "."))
            out.append(contentsOf: digits[1...])
        }
        out.append(UInt8(ascii: "e"))
        out.append(e < 0 ? UInt8(ascii: "-") : UInt8(ascii: "+"))
        out.append(contentsOf: Array(String(abs(e)).utf8))
    }
}
