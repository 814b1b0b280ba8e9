import EFSCCore

/// A template field's `pattern`, matched in time linear in the subject: the
/// pattern compiles to a Thompson NFA that is simulated breadth-first (a
/// Pike VM without captures), so no pattern can backtrack catastrophically
/// (`^(a|a)*$` against 10,000 `a`s and a `!` costs what `^a*$` does).
///
/// The subset is what JSON Schema patterns use in practice (ECMA-262
/// syntax): literals; `.`; escapes `\d \D \w \W \s \S` and escaped
/// punctuation, `\n \r \t`; classes `[a-z_]`, `[^0-9]` with those escapes;
/// anchors `^ $`; groups `( )`, `(?: )`; alternation `|`; quantifiers
/// `* + ? {n} {n,} {n,m}` (lazy forms accepted, same result: only "does it
/// match" is asked). Backreferences, lookaround and named groups are refused
/// at registration with a reason. Limits (`WireLimits`): a pattern of at most
/// `patternLength` characters, counted repetition up to 1,000 and at most
/// 4,096 NFA instructions; subjects of at most `patternSubjectLength`
/// characters. Search is unanchored, as JSON Schema asks.
public struct TemplatePattern: Sendable, Equatable {
    public let source: String
    let program: [Instruction]
    public static let maxInstructions = 4096
    public static let maxRepeat = 1000

    public struct PatternError: Error, Sendable, Equatable, CustomStringConvertible {
        public let code = "invalid-pattern"
        public let message: String
        public var description: String { message }
    }

    enum CharSet: Sendable, Equatable {
        case any  // `.`: anything but line terminators
        case ranges([ClosedRange<UInt32>], negated: Bool)

        func contains(_ c: UInt32) -> Bool {
            switch self {
            case .any: return c != 0x0A && c != 0x0D && c != 0x2028 && c != 0x2029
            case .ranges(let rs, let neg):
                var hit = false
                for r in rs where r.contains(c) {
                    hit = true
                    break
                }
                return hit != neg
            }
        }
    }

    enum Instruction: Sendable, Equatable {
        case char(CharSet)
        case split(Int, Int)
        case jump(Int)
        case assertStart
        case assertEnd
        case match
    }

    indirect enum Node {
        case set(CharSet)
        case empty
        case start, end
        case concat([Node])
        case alt([Node])
        case rep(Node, min: Int, max: Int?)  // max nil: unbounded
    }

    public init(_ source: String) throws(PatternError) {
        guard source.unicodeScalars.count <= WireLimits.patternLength else {
            throw PatternError(message: "pattern longer than \(WireLimits.patternLength) characters")
        }
        self.source = source
        var p = Parser(chars: Array(source.unicodeScalars).map(\.value))
        let node = try p.parseAlternation()
        guard p.i == p.chars.count else { throw PatternError(message: "unbalanced ')' at character \(p.i + 1)") }
        var prog: [Instruction] = []
        try Self.emit(node, into: &prog)
        prog.append(.match)
        program = prog
    }

    public static func == (a: TemplatePattern, b: TemplatePattern) -> Bool { a.source == b.source }

    // MARK: compiling

    static func emit(_ n: Node, into p: inout [Instruction]) throws(PatternError) {
        guard p.count <= maxInstructions else { throw PatternError(message: "pattern too large (more than \(maxInstructions) NFA instructions)") }
        switch n {
        case .set(let s): p.append(.char(s))
        case .empty: break
        case .start: p.append(.assertStart)
        case .end: p.append(.assertEnd)
        case .concat(let parts): for x in parts { try emit(x, into: &p) }
        case .alt(let options):
            // split L1, next; L1: a; jump end; next: split L2, … ; last: z
            var jumps: [Int] = []
            for (k, o) in options.enumerated() {
                if k < options.count - 1 {
                    let split = p.count
                    p.append(.split(split + 1, -1))
                    try emit(o, into: &p)
                    jumps.append(p.count)
                    p.append(.jump(-1))
                    p[split] = .split(split + 1, p.count)
                } else {
                    try emit(o, into: &p)
                }
            }
            for j in jumps { p[j] = .jump(p.count) }
        case .rep(let x, let lo, let hi):
            for _ in 0..<lo { try emit(x, into: &p) }
            if let hi {
                // (x(x(x)?)?)? for the optional copies.
                var splits: [Int] = []
                for _ in lo..<hi {
                    splits.append(p.count)
                    p.append(.split(p.count + 1, -1))
                    try emit(x, into: &p)
                    guard p.count <= maxInstructions else { throw PatternError(message: "pattern too large (more than \(maxInstructions) NFA instructions)") }
                }
                for s in splits { p[s] = .split(s + 1, p.count) }
            } else {
                // L: split body, out; body; jump L
                let l = p.count
                p.append(.split(l + 1, -1))
                try emit(x, into: &p)
                p.append(.jump(l))
                p[l] = .split(l + 1, p.count)
            }
        }
        guard p.count <= maxInstructions else { throw PatternError(message: "pattern too large (more than \(maxInstructions) NFA instructions)") }
    }

    // MARK: matching

    /// Whether the pattern matches somewhere in `subject` (nil: the subject is
    /// longer than `WireLimits.patternSubjectLength` and was not examined).
    public func matches(_ subject: String) -> Bool? {
        let s = Array(subject.unicodeScalars).map(\.value)
        guard s.count <= WireLimits.patternSubjectLength else { return nil }
        let n = program.count
        var current = [Int](), next = [Int]()
        current.reserveCapacity(n)
        next.reserveCapacity(n)
        var onList = [Int](repeating: -1, count: n)  // generation each pc was added in
        var stack: [Int] = []
        var generation = 0
        // Adds pc and its epsilon closure at position `at`; returns true on reaching match.
        func add(_ pc0: Int, at: Int, to list: inout [Int]) -> Bool {
            stack.append(pc0)
            while let pc = stack.popLast() {
                if onList[pc] == generation { continue }
                onList[pc] = generation
                switch program[pc] {
                case .jump(let t): stack.append(t)
                case .split(let a, let b):
                    stack.append(b)
                    stack.append(a)
                case .assertStart: if at == 0 { stack.append(pc + 1) }
                case .assertEnd: if at == s.count { stack.append(pc + 1) }
                case .match:
                    stack.removeAll(keepingCapacity: true)
                    return true
                case .char: list.append(pc)
                }
            }
            return false
        }
        generation += 1
        if add(0, at: 0, to: &current) { return true }
        for at in 0..<s.count {
            let c = s[at]
            generation += 1
            next.removeAll(keepingCapacity: true)
            for pc in current {
                if case .char(let set) = program[pc], set.contains(c), add(pc + 1, at: at + 1, to: &next) { return true }
            }
            // Unanchored search: a new thread starts at every position.
            if add(0, at: at + 1, to: &next) { return true }
            swap(&current, &next)
        }
        return false
    }

    // MARK: parsing

    struct Parser {
        let chars: [UInt32]
        var i = 0
        var depth = 0

        func error(_ m: String) -> PatternError { PatternError(message: "pattern: \(m) at character \(i + 1)") }

        var peek: UInt32? { i < chars.count ? chars[i] : nil }

        mutating func parseAlternation() throws(PatternError) -> Node {
            var options = [try parseConcat()]
            while peek == 0x7C {  // |
                i += 1
                options.append(try parseConcat())
            }
            return options.count == 1 ? options[0] : .alt(options)
        }

        mutating func parseConcat() throws(PatternError) -> Node {
            var parts: [Node] = []
            while let c = peek, c != 0x7C, c != 0x29 {  // | )
                var atom = try parseAtom()
                atom = try parseQuantifier(atom)
                parts.append(atom)
            }
            return parts.count == 1 ? parts[0] : .concat(parts)
        }

        mutating func parseQuantifier(_ atom: Node) throws(PatternError) -> Node {
            guard let c = peek else { return atom }
            var lo = 0, hi: Int? = nil
            switch c {
            case 0x2A: i += 1  // *
            case 0x2B: i += 1; lo = 1  // +
            case 0x3F: i += 1; hi = 1  // ?
            case 0x7B:  // {
                guard let (a, b) = try parseBraces() else { return atom }
                lo = a
                hi = b
            default: return atom
            }
            if case .start = atom { throw error("nothing to repeat") }
            if case .end = atom { throw error("nothing to repeat") }
            if peek == 0x3F { i += 1 }  // lazy: same answer for matching
            if let c2 = peek, c2 == 0x2A || c2 == 0x2B || c2 == 0x3F || c2 == 0x7B { throw error("a quantifier cannot follow a quantifier") }
            return .rep(atom, min: lo, max: hi)
        }

        /// `{n}`, `{n,}`, `{n,m}`; nil (a literal `{`) when it is not one.
        mutating func parseBraces() throws(PatternError) -> (Int, Int?)? {
            var j = i + 1
            func number() -> Int? {
                var v = 0, digits = 0
                while j < chars.count, chars[j] >= 0x30, chars[j] <= 0x39, digits < 6 {
                    v = v * 10 + Int(chars[j] - 0x30)
                    digits += 1
                    j += 1
                }
                return digits == 0 ? nil : v
            }
            guard let lo = number() else { return nil }
            var hi: Int? = lo
            if j < chars.count, chars[j] == 0x2C {  // ,
                j += 1
                hi = number()
            }
            guard j < chars.count, chars[j] == 0x7D else { return nil }
            i = j + 1
            guard lo <= TemplatePattern.maxRepeat, (hi ?? 0) <= TemplatePattern.maxRepeat else {
                throw error("repetition above \(TemplatePattern.maxRepeat)")
            }
            if let h = hi, h < lo { throw error("{\(lo),\(h)}: the maximum is below the minimum") }
            return (lo, hi)
        }

        mutating func parseAtom() throws(PatternError) -> Node {
            let c = chars[i]
            switch c {
            case 0x28:  // (
                i += 1
                if peek == 0x3F {  // (?
                    guard i + 1 < chars.count, chars[i + 1] == 0x3A else { throw error("lookaround and named groups are not supported") }
                    i += 2
                }
                depth += 1
                guard depth <= 32 else { throw error("groups nested deeper than 32") }
                let inner = try parseAlternation()
                guard peek == 0x29 else { throw error("missing ')'") }
                i += 1
                depth -= 1
                return inner
            case 0x5B: return .set(try parseClass())  // [
            case 0x2E: i += 1; return .set(.any)  // .
            case 0x5E: i += 1; return .start  // ^
            case 0x24: i += 1; return .end  // $
            case 0x5C:  // backslash
                i += 1
                guard let e = peek else { throw error("trailing backslash") }
                i += 1
                if let s = Self.classEscape(e) { return .set(s) }
                if e >= 0x31 && e <= 0x39 { throw error("backreferences are not supported") }
                if e == 0x62 || e == 0x42 { throw error("word boundaries are not supported") }
                return .set(.ranges([Self.escaped(e)...Self.escaped(e)], negated: false))
            case 0x2A, 0x2B, 0x3F: throw error("nothing to repeat")
            default:
                i += 1
                return .set(.ranges([c...c], negated: false))
            }
        }

        static let digit: [ClosedRange<UInt32>] = [0x30...0x39]
        static let word: [ClosedRange<UInt32>] = [0x30...0x39, 0x41...0x5A, 0x5F...0x5F, 0x61...0x7A]
        static let space: [ClosedRange<UInt32>] = [0x09...0x0D, 0x20...0x20, 0xA0...0xA0, 0x1680...0x1680, 0x2000...0x200A, 0x2028...0x2029, 0x202F...0x202F, 0x205F...0x205F, 0x3000...0x3000, 0xFEFF...0xFEFF]

        static func classEscape(_ e: UInt32) -> CharSet? {
            switch e {
            case 0x64: return .ranges(digit, negated: false)  // d
            case 0x44: return .ranges(digit, negated: true)
            case 0x77: return .ranges(word, negated: false)  // w
            case 0x57: return .ranges(word, negated: true)
            case 0x73: return .ranges(space, negated: false)  // s
            case 0x53: return .ranges(space, negated: true)
            default: return nil
            }
        }

        static func escaped(_ e: UInt32) -> UInt32 {
            switch e {
            case 0x6E: return 0x0A  // n
            case 0x72: return 0x0D  // r
            case 0x74: return 0x09  // t
            case 0x66: return 0x0C  // f
            case 0x76: return 0x0B  // v
            default: return e
            }
        }

        mutating func parseClass() throws(PatternError) -> CharSet {
            i += 1  // [
            var negated = false
            if peek == 0x5E {
                negated = true
                i += 1
            }
            var ranges: [ClosedRange<UInt32>] = []
            var first = true
            while true {
                guard let c = peek else { throw error("missing ']'") }
                if c == 0x5D && !first { i += 1; break }
                first = false
                var lo: UInt32
                i += 1
                if c == 0x5C {
                    guard let e = peek else { throw error("trailing backslash") }
                    i += 1
                    if let s = Self.classEscape(e) {
                        guard case .ranges(let rs, let neg) = s else { continue }
                        if neg {
                            // The complement of \D, \W, \S inside a class.
                            var at: UInt32 = 0
                            for r in rs {
                                if r.lowerBound > at { ranges.append(at...(r.lowerBound - 1)) }
                                at = r.upperBound + 1
                            }
                            ranges.append(at...0x10FFFF)
                        } else {
                            ranges += rs
                        }
                        continue
                    }
                    lo = Self.escaped(e)
                } else {
                    lo = c
                }
                // A range a-z (a '-' before ']' is literal).
                if peek == 0x2D, i + 1 < chars.count, chars[i + 1] != 0x5D {
                    i += 1
                    var hi = chars[i]
                    i += 1
                    if hi == 0x5C {
                        guard let e = peek else { throw error("trailing backslash") }
                        i += 1
                        guard Self.classEscape(e) == nil else { throw error("a class escape cannot end a range") }
                        hi = Self.escaped(e)
                    }
                    guard lo <= hi else { throw error("range out of order") }
                    ranges.append(lo...hi)
                } else {
                    ranges.append(lo...lo)
                }
                guard ranges.count <= 256 else { throw error("more than 256 ranges in a class") }
            }
            return .ranges(ranges, negated: negated)
        }
    }
}
