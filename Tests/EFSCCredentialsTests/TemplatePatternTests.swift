import EFSCCore
import Foundation
import Testing

@testable import EFSCCredentials

/// Template patterns: the linear-time matcher agrees with Swift's Regex on
/// the subset, refuses what is outside it, and cannot be made to backtrack.
@Suite struct TemplatePatternTests {
    static let cases: [(String, [String: Bool])] = [
        ("^[a-z]+$", ["abc": true, "": false, "aB": false, "abc\n": false]),
        ("gpu|cpu", ["a gpu here": true, "tpu": false, "cpu": true]),
        ("^did:efsc:[a-z0-9-]{1,32}:[1-9A-HJ-NP-Za-km-z]+$", ["did:efsc:devnet:3xYz": true, "did:efsc::3x": false, "did:efsc:dev:0": false]),
        ("^\\d{4}-\\d{2}$", ["2024-01": true, "2024-1": false, "12024-01": false]),
        ("a{2,3}", ["a": false, "aa": true, "xaaay": true]),
        ("^(ab|cd)*e?$", ["": true, "abcdab": true, "cde": true, "abce": false, "abc": false, "e": true]),
        ("[^0-9]", ["123": false, "12a": true]),
        ("^\\w+@\\w+\\.com$", ["x@y.com": true, "x@y.org": false, "@y.com": false]),
        ("^[\\s\\S]{0,5}$", ["": true, "12345": true, "123456": false, "a\nb": true]),
        ("colou?r", ["color": true, "colour": true, "colouur": false]),
        ("^(?:x|y)+$", ["xyx": true, "xz": false]),
        ("[-a]", ["-": true, "a": true, "b": false]),
        ("^.$", ["\n": false, "é": true]),
        ("^[\\D]+$", ["abc": true, "a1": false]),
        ("\\.", ["a.b": true, "ab": false]),
        ("^a*?b$", ["aaab": true, "aaa": false]),
    ]

    @Test func agreesWithRegexOnTheSubset() throws {
        for (pattern, subjects) in Self.cases {
            let p = try TemplatePattern(pattern)
            let r = try Regex(pattern)
            for (subject, expected) in subjects {
                #expect(p.matches(subject) == expected, "\(pattern) on \(subject.debugDescription)")
                #expect((subject.firstMatch(of: r) != nil) == expected, "Regex disagrees with the table: \(pattern) on \(subject.debugDescription)")
            }
        }
    }

    /// Seeded random patterns over a small alphabet, each compared with Regex.
    @Test func agreesWithRegexOnRandomPatterns() throws {
        var rng = SplitMix64(seed: 7)
        let atoms = ["a", "b", ".", "[ab]", "[^a]", "(a|b)", "(ab|a)", "(?:b|)", "\\w"]
        let quantifiers = ["", "", "*", "+", "?", "{2}", "{1,3}", "{0,}"]
        for _ in 0..<400 {
            var pattern = rng.next() % 4 == 0 ? "^" : ""
            for _ in 0..<(1 + Int(rng.next() % 4)) { pattern += atoms[Int(rng.next() % UInt64(atoms.count))] + quantifiers[Int(rng.next() % UInt64(quantifiers.count))] }
            if rng.next() % 4 == 0 { pattern += "$" }
            let p = try TemplatePattern(pattern)
            let r = try Regex(pattern)
            for _ in 0..<6 {
                let subject = String((0..<Int(rng.next() % 7)).map { _ in ["a", "b", "c"][Int(rng.next() % 3)] as Character })
                #expect(p.matches(subject) == (subject.firstMatch(of: r) != nil), "\(pattern) on \(subject.debugDescription)")
            }
        }
    }

    /// Unbounded work per message: the patterns that make a backtracking
    /// engine take exponential time answer here after one pass.
    @Test(.timeLimit(.minutes(1))) func unboundedWorkPerMessage_patternsCannotBacktrack() throws {
        let subject = String(repeating: "a", count: WireLimits.patternSubjectLength - 1) + "!"
        for pattern in ["^(a|a)*$", "^(a+)+$", "^(a|aa)+$", "^(a*)*b$", "(x+x+)+y"] {
            #expect(try TemplatePattern(pattern).matches(subject) == false, "\(pattern)")
        }
        #expect(try TemplatePattern("^(a|a)*!$").matches(subject) == true)
        // Longer subjects are not examined at all.
        #expect(try TemplatePattern("a").matches(String(repeating: "a", count: WireLimits.patternSubjectLength + 1)) == nil)
    }

    @Test func refusesWhatItCannotMatchSafely() {
        for bad in ["(a", "a)", "[a", "*a", "a**", "(?=a)", "(?<n>a)", "(a)\\1", "\\bword", "a{3,2}", "a{1001}", "[z-a]", "\\",
            String(repeating: "a", count: WireLimits.patternLength + 1), String(repeating: "(a{1000})", count: 5)]
        {
            #expect(throws: TemplatePattern.PatternError.self, "\(bad.prefix(40))") { try TemplatePattern(bad) }
        }
    }

    /// A template whose pattern the matcher refuses is refused at registration, with the reason.
    @Test func templateWithAnUnsafePatternIsRefused() throws {
        let text = #"{"id":"urn:x:t","version":1,"owner":"did:key:z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2","type":"TIT","fields":{"f":{"type":"string","pattern":"(?=a)"}}}"#
        #expect(throws: (any Error).self) { try Template(json: try JSONParser.parse(text)) }
    }
}
