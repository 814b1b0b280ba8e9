import Testing
@testable import EFSCCore

/// RFC 8785 behaviour: the published examples and number table, plus the
/// parser's rejections of input JCS cannot canonicalize.
@Suite struct JCSTests {
    func canon(_ s: String) throws -> String {
        String(decoding: try JCS.canonicalize(try JSONParser.parse(s)), as: UTF8.self)
    }

    /// RFC 8785 §3.2.2 sample input and its canonical output.
    @Test func rfcSample() throws {
        let input = #"""
            {
              "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
              "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
              "literals": [null, true, false]
            }
            """#
        let expected = #"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        #expect(try canon(input) == expected)
    }

    /// RFC 8785 §3.2.3: keys sorted by UTF-16 code units (the emoji's high
    /// surrogate sorts before U+FB33 although its code point is larger).
    @Test func rfcSortingExample() throws {
        let input = #"""
            {
              "\u20ac": "Euro Sign",
              "\r": "Carriage Return",
              "\ufb33": "Hebrew Letter Dalet With Dagesh",
              "1": "One",
              "\ud83d\ude00": "Emoji: Grinning Face",
              "\u0080": "Control",
              "\u00f6": "Latin Small Letter O With Diaeresis"
            }
            """#
        let out = try canon(input)
        let order = ["\\r", "1", "\u{80}", "ö", "€", "😀", "\u{FB33}"]
        var last = out.startIndex
        for k in order {
            let r = out.range(of: "\"\(k)\":", range: last..<out.endIndex)
            #expect(r != nil, "key \(k) out of order in \(out)")
            if let r { last = r.upperBound }
        }
    }

    /// RFC 8785 Appendix B: IEEE-754 bit patterns and their ECMAScript strings.
    @Test(arguments: [
        (UInt64(0x0000_0000_0000_0000), "0"),
        (0x8000_0000_0000_0000, "0"),
        (0x0000_0000_0000_0001, "5e-324"),
        (0x8000_0000_0000_0001, "-5e-324"),
        (0x7FEF_FFFF_FFFF_FFFF, "1.7976931348623157e+308"),
        (0xFFEF_FFFF_FFFF_FFFF, "-1.7976931348623157e+308"),
        (0x4340_0000_0000_0000, "9007199254740992"),
        (0xC340_0000_0000_0000, "-9007199254740992"),
        (0x4430_0000_0000_0000, "295147905179352830000"),
        (0x44B5_2D02_C7E1_4AF5, "9.999999999999997e+22"),
        (0x44B5_2D02_C7E1_4AF6, "1e+23"),
        (0x44B5_2D02_C7E1_4AF7, "1.0000000000000001e+23"),
        (0x444B_1AE4_D6E2_EF4E, "999999999999999700000"),
        (0x444B_1AE4_D6E2_EF4F, "999999999999999900000"),
        (0x444B_1AE4_D6E2_EF50, "1e+21"),
        (0x3EB0_C6F7_A0B5_ED8C, "9.999999999999997e-7"),
        (0x3EB0_C6F7_A0B5_ED8D, "0.000001"),
        (0x41B3_DE43_5555_5553, "333333333.3333332"),
        (0x41B3_DE43_5555_5554, "333333333.33333325"),
        (0x41B3_DE43_5555_5555, "333333333.3333333"),
        (0x41B3_DE43_5555_5556, "333333333.3333334"),
        (0x41B3_DE43_5555_5557, "333333333.33333343"),
        (0xBECB_F647_612F_3696, "-0.0000033333333333333333"),
    ])
    func rfcNumbers(bits: UInt64, expected: String) {
        #expect(JCS.formatNumber(Double(bitPattern: bits)) == expected)
    }

    @Test(arguments: [
        ("1e30", "1e+30"), ("4.50", "4.5"), ("2e-3", "0.002"), ("1e-7", "1e-7"), ("-0", "0"), ("-0.0", "0"),
        ("100", "100"), ("1e21", "1e+21"), ("1e20", "100000000000000000000"), ("0.1", "0.1"), ("-1.5e-9", "-1.5e-9"),
        ("123456789012345680000", "123456789012345680000"), ("1.0", "1"), ("-12", "-12"),
    ])
    func ecmascriptNumbers(input: String, expected: String) throws {
        #expect(try canon(input) == expected)
    }

    @Test func escapesOnlyWhatJCSRequires() throws {
        #expect(try canon(#""\u0007\b\t\n\f\r\"\\\/\u007f\u2028é""#) == "\"\\u0007\\b\\t\\n\\f\\r\\\"\\\\/\u{7f}\u{2028}é\"")
    }

    @Test func nestedSortAndWhitespace() throws {
        #expect(try canon(" { \"b\" : [ { \"z\":1, \"a\":2 } ], \"a\" : { } } ") == #"{"a":{},"b":[{"a":2,"z":1}]}"#)
    }

    @Test func rejectsNonFiniteValues() {
        #expect(throws: JCSError.self) { try JCS.canonicalize(.number(.nan)) }
        #expect(throws: JCSError.self) { try JCS.canonicalize(["x": .number(.infinity)]) }
        #expect(throws: JSONError.self) { try JSONParser.parse("NaN") }
        #expect(throws: JSONError.self) { try JSONParser.parse("[Infinity]") }
        #expect(throws: JSONError.self) { try JSONParser.parse("1e400") }
    }

    @Test func rejectsDuplicateKeys() {
        #expect(throws: JSONError.duplicateKey("a", offset: 8)) { try JSONParser.parse(#"{"a":1, "a":2}"#) }
        // Large objects use a set; duplicates are still found.
        let many = (0..<40).map { "\"k\($0)\":\($0)" }.joined(separator: ",")
        #expect(throws: JSONError.self) { try JSONParser.parse("{\(many),\"k7\":0}") }
        // Same key after escape decoding is a duplicate too.
        #expect(throws: JSONError.self) { try JSONParser.parse(#"{"a":1,"\u0061":2}"#) }
    }

    @Test(arguments: [
        "", "{", "[1,]", "{\"a\":1,}", "01", "1.", ".5", "+1", "\"\\x\"", "\"\u{01}\"", "\"\\ud800\"", "\"\\udc00\"",
        "tru", "nul", "[1] 2", "{\"a\" 1}", "'a'", "\u{FEFF}{}", "-", "1e", "\"abc",
    ])
    func rejectsMalformedJSON(text: String) {
        #expect(throws: JSONError.self) { try JSONParser.parse(text) }
    }

    @Test func rejectsInvalidUTF8() {
        #expect(throws: JSONError.self) { try JSONParser.parse([0x22, 0xC3, 0x28, 0x22]) }
        #expect(throws: JSONError.self) { try JSONParser.parse([0x22, 0xED, 0xA0, 0x80, 0x22]) }  // encoded surrogate
    }

    @Test func boundsDepthAndSize() throws {
        let deep = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        #expect(throws: JSONError.self) { try JSONParser.parse(deep) }
        // The limit itself (WireLimits.jsonDepth) parses; one more level does not.
        let n = WireLimits.jsonDepth
        _ = try JSONParser.parse(String(repeating: "[", count: n) + String(repeating: "]", count: n))
        #expect(throws: JSONError.tooDeep(limit: n, offset: n)) {
            try JSONParser.parse(String(repeating: "[", count: n + 1) + String(repeating: "]", count: n + 1))
        }
        #expect(throws: JSONError.tooLarge(bytes: 10, limit: 5)) { try JSONParser.parse(Array("[1,2,3,4]\n".utf8), maxBytes: 5) }
    }

    @Test func surrogatePairsDecode() throws {
        #expect(try JSONParser.parse(#""\ud83d\ude00""#) == .string("😀"))
    }

    @Test func roundTripIsStable() throws {
        let text = #"{"z":[1,2.5,"x",{"b":null,"a":true}],"a":-3e-10,"m":"\u00e9\n"}"#
        let once = try JCS.canonicalize(try JSONParser.parse(text))
        let twice = try JCS.canonicalize(try JSONParser.parse(once))
        #expect(once == twice)
        let pretty = try JSONParser.parse(text).prettyString()
        #expect(try JCS.canonicalize(try JSONParser.parse(pretty)) == once)
    }

    @Test func utf16OrderMatchesTranscodedComparison() {
        let samples = ["", "a", "ab", "é", "€", "\u{FB33}", "😀", "\u{E000}", "\u{FFFF}", "\u{10000}", "a😀", "a\u{FB33}", "Z", "z"]
        for a in samples {
            for b in samples {
                #expect(JCS.utf16Less(a, b) == a.utf16.lexicographicallyPrecedes(b.utf16), "\(a) vs \(b)")
            }
        }
    }

    /// `parseNoting` calls text canonical only when it is byte for byte JCS
    /// of what it parsed to; anything JCS would write differently is not.
    @Test func parseNotingTellsCanonicalTextApart() throws {
        let canonical = [
            #"{"a":1,"b":[true,false,null],"c":{"x":"é€😀","y":-7}}"#, #"[]"#,
            #"{"a":[{"b":[1,{"c":2}],"d":3},[],{}],"e":{"f":[[{}]],"g":[{"h":[{"i":0}]}]}}"#, #"{}"#, #""plain""#, "0", "123456789012345",
            #"{"😀":1,"\#u{E000}":2}"#,
        ]
        for t in canonical {
            let n = try JSONParser.parseNoting(Array(t.utf8))
            #expect(n.canonical, "\(t)")
            #expect(try JCS.canonicalize(n.value) == Array(t.utf8), "\(t)")
        }
        let other = [
            #"{"b":1,"a":2}"#, #"{"a": 1}"#, " [1]", "[1] ", #"{"a":1.0}"#, #"{"a":1e2}"#, "-0", "1234567890123456",
            #""a\/b""#, #""\u0041""#, #""tab\t""#, #"{"\#u{E000}":1,"😀":2}"#, "[1,\n2]",
        ]
        for t in other {
            let n = try JSONParser.parseNoting(Array(t.utf8))
            #expect(!n.canonical, "\(t)")
            // Same value as the plain parser's.
            #expect(n.value == (try JSONParser.parse(t)), "\(t)")
        }
        // Top-level members: key's quote to the value's end.
        let t = Array(#"{"args":{"k":[1]},"proof":"p","z":0}"#.utf8)
        let n = try JSONParser.parseNoting(t)
        #expect(n.members.map(\.key) == ["args", "proof", "z"])
        #expect(n.members.map { String(decoding: t[$0.range], as: UTF8.self) } == [#""args":{"k":[1]}"#, #""proof":"p""#, #""z":0"#])
        #expect(throws: JSONError.self) { try JSONParser.parseNoting(Array("{\"a\":".utf8)) }
    }
}
