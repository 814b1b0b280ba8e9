import EFSCCore
import Foundation
import Testing

/// The TCC's channel state machine, driven by the scripted transcripts in
/// testdata/ (events in, expected actions out): no broker, no clock, no sleeps.
@Suite struct ChannelMachineTests {
    static let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("testdata").path
    static let transcripts = ["admission", "settlement", "durability", "closing", "pending-close", "cooperative"]

    @Test(arguments: transcripts) func transcript(_ name: String) throws {
        let failures = try ChannelTranscript.check("\(Self.dir)/\(name).txt")
        for f in failures { Issue.record(Comment(rawValue: f)) }
    }

    /// Every transcript in testdata/ is run (none is forgotten in the list above).
    @Test func everyTranscriptIsListed() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.dir).filter { $0.hasSuffix(".txt") }.map { String($0.dropLast(4)) }
        #expect(Set(files) == Set(Self.transcripts))
    }

    /// A transcript that expects the wrong thing fails: the driver can fail.
    @Test func aWrongExpectationIsReported() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-transcript-\(UUID().uuidString.prefix(8)).txt").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try "hello provider\n> send provider challenge c1\nhello stranger\n".write(toFile: path, atomically: true, encoding: .utf8)
        let f = try ChannelTranscript.check(path)
        #expect(f.count == 2)
        #expect(f.first?.contains("> resolve provider") == true)
    }
}
