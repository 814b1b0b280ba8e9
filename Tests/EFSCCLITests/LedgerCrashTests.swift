import EFSCBus
import EFSCCore
import EFSCLedger
import Foundation
import Testing

/// kill -9 a process while it commits blocks: nothing it acknowledged is
/// lost, the ledger reopens consistent, and writing resumes.
@Suite(.serialized) struct LedgerCrashTests {
    @Test func killNineLosesNothingAcknowledged() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-crash-\(UUID().uuidString)").path
        let log = dir + ".log"
        defer {
            try? FileManager.default.removeItem(atPath: dir)
            try? FileManager.default.removeItem(atPath: log)
        }
        func acknowledged() -> UInt64 {
            ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n")
                .compactMap { $0.hasPrefix("committed ") ? UInt64($0.dropFirst(10)) : nil }.max() ?? 0
        }
        var before: UInt64 = 0
        for round in 0..<3 {
            let p = try ChildProcess(
                path: CLITests.binary, arguments: ["ledger", "fill", "--dir", dir, "--blocks", "1000000", "--m", "8"], outputPath: log)
            // Killed while it writes: once it acknowledged a few blocks beyond
            // the last round's (a state, whatever the machine's speed).
            let want = before + UInt64(3 + round * 5)
            let deadline = Date().addingTimeInterval(60)
            while acknowledged() < want && Date() < deadline && p.exitCode == nil { usleep(5_000) }
            p.signal(SIGKILL)
            #expect(p.wait(timeout: 5))
            let ack = acknowledged()
            #expect(ack >= want, "round \(round): the writer did not acknowledge block \(want) within 60 s (it did \(ack))")
            let ledger = try Ledger(path: dir, group: "transaction")
            #expect(ledger.height >= ack, "round \(round): acknowledged \(ack), ledger has \(ledger.height)")
            before = ledger.height
        }
        let check = try ChildProcess(path: CLITests.binary, arguments: ["ledger", "verify", "--dir", dir], outputPath: log + ".verify")
        defer { try? FileManager.default.removeItem(atPath: log + ".verify") }
        #expect(check.wait(timeout: 60))
        #expect(check.exitCode == 0, "\((try? String(contentsOfFile: log + ".verify", encoding: .utf8)) ?? "")")
    }
}
