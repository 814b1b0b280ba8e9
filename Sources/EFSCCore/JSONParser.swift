/// Why a JSON text was refused. Every case names the byte offset so a user can
/// find the problem in a large document.
public enum JSONError: Error, Sendable, Equatable, CustomStringConvertible {
    case syntax(String, offset: Int)
    case duplicateKey(String, offset: Int)
    case tooDeep(limit: Int, offset: Int)
    case tooLarge(bytes: Int, limit: Int)
    case invalidNumber(String)
    /// More members or elements than `WireLimits` allows.
    case tooMany(String, limit: Int, offset: Int)

    public var description: String {
        switch self {
        case .syntax(let m, let o): return "malformed JSON at byte \(o): \(m)"
        case .duplicateKey(let k, let o): return "malformed JSON at byte \(o): duplicate key \"\(k)\""
        case .tooDeep(let l, let o): return "malformed JSON at byte \(o): nesting deeper than \(l) levels"
        case .tooLarge(let b, let l): return "JSON document of \(b) bytes exceeds the limit of \(l) bytes"
        case .invalidNumber(let m): return "invalid JSON number: \(m)"
        case .tooMany(let what, let l, let o): return "malformed JSON at byte \(o): more than \(l) \(what)"
        }
    }
}

/// A strict RFC 8259 parser that also enforces what JCS (RFC 8785) needs:
/// no duplicate keys, no lone surrogates, numbers representable as doubles.
/// It never traps on hostile input: depth and size are bounded.
public struct JSONParser {
    /// Default limits, documented in topics.md ("Limits"): 64 MiB and
    /// `WireLimits.jsonDepth` levels; members and elements per `WireLimits`.
    public static let defaultMaxBytes = 64 << 20
    public static let defaultMaxDepth = WireLimits.jsonDepth

    public static func parse(_ text: String, maxDepth: Int = defaultMaxDepth) throws(JSONError) -> JSON {
        try parse(Array(text.utf8), maxDepth: maxDepth)
    }

    public static func parse(
        _ bytes: [UInt8], maxBytes: Int = defaultMaxBytes, maxDepth: Int = defaultMaxDepth
    ) throws(JSONError) -> JSON {
        guard bytes.count <= maxBytes else { throw .tooLarge(bytes: bytes.count, limit: maxBytes) }
        let r: Result<JSON, JSONError> = bytes.withUnsafeBytes { buf in
            Result { () throws(JSONError) in try parse(bytes: buf, maxDepth: maxDepth) }
        }
        return try r.get()
    }

    public static func parse(bytes: UnsafeRawBufferPointer, maxDepth: Int = defaultMaxDepth) throws(JSONError) -> JSON {
        var p = Cursor(buf: bytes, maxDepth: maxDepth)
        return try p.document()
    }

    /// A parsed document that also says whether its text was already in JCS
    /// canonical form, and where each member of a top-level object is.
    public struct Noted: Sendable {
        public let value: JSON
        /// True only if the text is byte for byte JCS (RFC 8785) of `value`.
        /// False may also mean "not cheaply provable": a string with any
        /// escape, or a number that is not a short integer.
        public let canonical: Bool
        /// For a top-level object: each member's key and the bytes from its
        /// key's opening quote to the end of its value, in text order.
        public let members: [(key: String, range: Range<Int>)]
    }

    /// Parses `bytes` as `parse` does and notes (at almost no extra cost)
    /// whether they are canonical already, so a receiver of canonical text
    /// can keep it instead of serializing the value again.
    public static func parseNoting(_ bytes: [UInt8], maxBytes: Int = defaultMaxBytes, maxDepth: Int = defaultMaxDepth) throws(JSONError) -> Noted {
        guard bytes.count <= maxBytes else { throw .tooLarge(bytes: bytes.count, limit: maxBytes) }
        let r: Result<Noted, JSONError> = bytes.withUnsafeBytes { buf in
            Result { () throws(JSONError) in
                var p = Cursor(buf: buf, maxDepth: maxDepth)
                p.noteTop = true
                let v = try p.document()
                return Noted(value: v, canonical: p.canonical, members: p.topMembers)
            }
        }
        return try r.get()
    }
}

private struct Cursor {
    let buf: UnsafeRawBufferPointer
    let maxDepth: Int
    var i = 0
    /// Cleared at the first thing JCS would write differently (or that is
    /// not cheap to check): whitespace, an escape, keys out of order, a
    /// number other than a short integer.
    var canonical = true
    var noteTop = false
    var topMembers: [(key: String, range: Range<Int>)] = []

    init(buf: UnsafeRawBufferPointer, maxDepth: Int) {
        self.buf = buf
        self.maxDepth = maxDepth
    }

    mutating func document() throws(JSONError) -> JSON {
        let bytes = buf
        // A UTF-8 byte order mark is not JSON (RFC 8259 §8.1); refuse it clearly.
        if bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF {
            throw .syntax("byte order mark is not allowed", offset: 0)
        }
        skipWS()
        let v = try value(depth: 0)
        skipWS()
        if i < buf.count { throw .syntax("unexpected trailing data", offset: i) }
        return v
    }

    @inline(__always) mutating func skipWS() {
        let from = i
        while i < buf.count {
            let c = buf[i]
            if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { i += 1 } else { break }
        }
        if i != from { canonical = false }
    }

    mutating func value(depth: Int) throws(JSONError) -> JSON {
        guard i < buf.count else { throw .syntax("unexpected end of input", offset: i) }
        switch buf[i] {
        case UInt8(ascii: "{"): return try object(depth: depth + 1)
        case UInt8(ascii: "["): return try array(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        default:
            throw .syntax("unexpected character '\(printable(buf[i]))'", offset: i)
        }
    }

    func printable(_ c: UInt8) -> String {
        c >= 0x20 && c < 0x7F ? String(UnicodeScalar(c)) : "\\x" + (c < 16 ? "0" : "") + String(c, radix: 16)
    }

    mutating func literal(_ word: StaticString) throws(JSONError) {
        let n = word.utf8CodeUnitCount
        guard i + n <= buf.count else { throw .syntax("unexpected end of input", offset: i) }
        let w = word.utf8Start
        for k in 0..<n where buf[i + k] != w[k] {
            throw .syntax("invalid literal", offset: i)
        }
        i += n
    }

    mutating func object(depth: Int) throws(JSONError) -> JSON {
        guard depth <= maxDepth else { throw .tooDeep(limit: maxDepth, offset: i) }
        i += 1
        var obj = JSONObject()
        skipWS()
        if i < buf.count, buf[i] == UInt8(ascii: "}") {
            i += 1
            return .object(obj)
        }
        while true {
            skipWS()
            guard i < buf.count else { throw .syntax("unexpected end of input in object", offset: i) }
            guard buf[i] == UInt8(ascii: "\"") else { throw .syntax("expected a string key", offset: i) }
            let keyOffset = i
            let key = try string()
            if canonical, let last = obj.keys.last, !JCS.utf16Less(last, key) { canonical = false }
            // Small objects scan their keys, large ones keep an index (JSONObject).
            if obj.index(of: key) != nil { throw .duplicateKey(key, offset: keyOffset) }
            guard obj.count < WireLimits.jsonMembers else { throw .tooMany("members in an object", limit: WireLimits.jsonMembers, offset: keyOffset) }
            skipWS()
            guard i < buf.count, buf[i] == UInt8(ascii: ":") else { throw .syntax("expected ':' after key", offset: i) }
            i += 1
            skipWS()
            let v = try value(depth: depth)
            if noteTop && depth == 1 { topMembers.append((key, keyOffset..<i)) }
            obj.appendUnchecked(key, v)
            skipWS()
            guard i < buf.count else { throw .syntax("unexpected end of input in object", offset: i) }
            if buf[i] == UInt8(ascii: ",") {
                i += 1
                continue
            }
            if buf[i] == UInt8(ascii: "}") {
                i += 1
                return .object(obj)
            }
            throw .syntax("expected ',' or '}' in object", offset: i)
        }
    }

    mutating func array(depth: Int) throws(JSONError) -> JSON {
        guard depth <= maxDepth else { throw .tooDeep(limit: maxDepth, offset: i) }
        i += 1
        var arr: [JSON] = []
        skipWS()
        if i < buf.count, buf[i] == UInt8(ascii: "]") {
            i += 1
            return .array(arr)
        }
        while true {
            skipWS()
            guard arr.count < WireLimits.jsonElements else { throw .tooMany("elements in an array", limit: WireLimits.jsonElements, offset: i) }
            arr.append(try value(depth: depth))
            skipWS()
            guard i < buf.count else { throw .syntax("unexpected end of input in array", offset: i) }
            if buf[i] == UInt8(ascii: ",") {
                i += 1
                continue
            }
            if buf[i] == UInt8(ascii: "]") {
                i += 1
                return .array(arr)
            }
            throw .syntax("expected ',' or ']' in array", offset: i)
        }
    }

    mutating func number() throws(JSONError) -> Double {
        let start = i
        if buf[i] == UInt8(ascii: "-") { i += 1 }
        guard i < buf.count else { throw .syntax("incomplete number", offset: start) }
        if buf[i] == UInt8(ascii: "0") {
            i += 1
        } else if buf[i] >= UInt8(ascii: "1") && buf[i] <= UInt8(ascii: "9") {
            while i < buf.count, buf[i] >= UInt8(ascii: "0"), buf[i] <= UInt8(ascii: "9") { i += 1 }
        } else {
            throw .syntax("invalid number", offset: start)
        }
        var isInteger = true
        if i < buf.count, buf[i] == UInt8(ascii: ".") {
            isInteger = false
            i += 1
            let d = i
            while i < buf.count, buf[i] >= UInt8(ascii: "0"), buf[i] <= UInt8(ascii: "9") { i += 1 }
            if i == d { throw .syntax("digit expected after decimal point", offset: i) }
        }
        if i < buf.count, buf[i] == UInt8(ascii: "e") || buf[i] == UInt8(ascii: "E") {
            isInteger = false
            i += 1
            if i < buf.count, buf[i] == UInt8(ascii: "+") || buf[i] == UInt8(ascii: "-") { i += 1 }
            let d = i
            while i < buf.count, buf[i] >= UInt8(ascii: "0"), buf[i] <= UInt8(ascii: "9") { i += 1 }
            if i == d { throw .syntax("digit expected in exponent", offset: i) }
        }
        // Fast path: short integers need no decimal-to-binary conversion.
        let len = i - start
        // JCS writes an integer of up to 15 digits as those digits; "-0" as "0".
        if !isInteger || len > 15 || (len == 2 && buf[start] == UInt8(ascii: "-") && buf[start + 1] == UInt8(ascii: "0")) { canonical = false }
        if isInteger && len <= 15 {
            var neg = false
            var k = start
            if buf[k] == UInt8(ascii: "-") {
                neg = true
                k += 1
            }
            var v: Int64 = 0
            while k < i {
                v = v &* 10 &+ Int64(buf[k] &- 0x30)
                k += 1
            }
            return neg ? (v == 0 ? -0.0 : -Double(v)) : Double(v)
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: buf[start..<i]), as: UTF8.self)
        guard let d = Double(text) else { throw .syntax("invalid number", offset: start) }
        guard d.isFinite else { throw .syntax("number \(text) is out of the range of a double", offset: start) }
        return d
    }

    mutating func hex4() throws(JSONError) -> UInt16 {
        guard i + 4 <= buf.count else { throw .syntax("incomplete \\u escape", offset: i) }
        var v: UInt16 = 0
        for _ in 0..<4 {
            let c = buf[i]
            let d: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - 0x30
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - 0x61 + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c - 0x41 + 10
            default: throw .syntax("invalid hex digit in \\u escape", offset: i)
            }
            v = v << 4 | UInt16(d)
            i += 1
        }
        return v
    }

    mutating func string() throws(JSONError) -> String {
        let open = i
        i += 1
        let start = i
        // Fast path: scan for the closing quote; if no escapes, validate UTF-8 in one go.
        var hasEscape = false
        var hasHigh = false
        while i < buf.count {
            let c = buf[i]
            if c == UInt8(ascii: "\"") { break }
            if c == UInt8(ascii: "\\") {
                hasEscape = true
                break
            }
            if c < 0x20 { throw .syntax("unescaped control character in string", offset: i) }
            if c >= 0x80 { hasHigh = true }
            i += 1
        }
        guard i < buf.count else { throw .syntax("unterminated string", offset: open) }
        if !hasEscape {
            let slice = UnsafeRawBufferPointer(rebasing: buf[start..<i])
            i += 1
            if !hasHigh { return String(decoding: slice, as: UTF8.self) }
            guard let s = String(validating: slice, as: UTF8.self) else {
                throw .syntax("invalid UTF-8 in string", offset: start)
            }
            return s
        }
        // Slow path with escapes: collect UTF-8 bytes. (JCS escapes only
        // what it must; proving this string needs no other form is not
        // worth it, so the text counts as not canonical.)
        canonical = false
        var out = [UInt8](UnsafeRawBufferPointer(rebasing: buf[start..<i]))
        while true {
            guard i < buf.count else { throw .syntax("unterminated string", offset: open) }
            let c = buf[i]
            if c == UInt8(ascii: "\"") {
                i += 1
                break
            }
            if c < 0x20 { throw .syntax("unescaped control character in string", offset: i) }
            if c != UInt8(ascii: "\\") {
                out.append(c)
                i += 1
                continue
            }
            i += 1
            guard i < buf.count else { throw .syntax("unterminated escape", offset: i) }
            let e = buf[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                let at = i - 2
                let u = try hex4()
                var scalar: UInt32
                if u >= 0xD800 && u <= 0xDBFF {
                    guard i + 6 <= buf.count, buf[i] == UInt8(ascii: "\\"), buf[i + 1] == UInt8(ascii: "u") else {
                        throw .syntax("lone high surrogate in \\u escape", offset: at)
                    }
                    i += 2
                    let lo = try hex4()
                    guard lo >= 0xDC00 && lo <= 0xDFFF else { throw .syntax("invalid low surrogate in \\u escape", offset: at) }
                    scalar = 0x10000 + ((UInt32(u) - 0xD800) << 10) + (UInt32(lo) - 0xDC00)
                } else if u >= 0xDC00 && u <= 0xDFFF {
                    throw .syntax("lone low surrogate in \\u escape", offset: at)
                } else {
                    scalar = UInt32(u)
                }
                appendUTF8(&out, scalar)
            default:
                throw .syntax("invalid escape '\\\(printable(e))'", offset: i - 2)
            }
        }
        guard let s = String(validating: out, as: UTF8.self) else {
            throw .syntax("invalid UTF-8 in string", offset: start)
        }
        return s
    }
}

@inline(__always)
func appendUTF8(_ out: inout [UInt8], _ s: UInt32) {
    if s < 0x80 {
        out.append(UInt8(s))
    } else if s < 0x800 {
        out.append(UInt8(0xC0 | (s >> 6)))
        out.append(UInt8(0x80 | (s & 0x3F)))
    } else if s < 0x10000 {
        out.append(UInt8(0xE0 | (s >> 12)))
        out.append(UInt8(0x80 | ((s >> 6) & 0x3F)))
        out.append(UInt8(0x80 | (s & 0x3F)))
    } else {
        out.append(UInt8(0xF0 | (s >> 18)))
        out.append(UInt8(0x80 | ((s >> 12) & 0x3F)))
        out.append(UInt8(0x80 | ((s >> 6) & 0x3F)))
        out.append(UInt8(0x80 | (s & 0x3F)))
    }
}
