import EFSCBus
import Foundation
import Testing

/// `make demo`'s scenario, run by the suite with the debug binary and fewer
/// settlements, so a broken demo turns the suite red.
@Suite(.serialized) struct DemoScriptTests {
    @Test func demoPassesEveryCheck() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-demo-\(UUID().uuidString.prefix(8))").path
        let log = out + ".log"
        defer {
            try? FileManager.default.removeItem(atPath: out)
            try? FileManager.default.removeItem(atPath: log)
        }
        var env = ProcessInfo.processInfo.environment
        env["EFSC"] = CLITests.binary
        env["OUT"] = out
        env["SETTLEMENTS"] = "3"
        let p = try ChildProcess(path: "/bin/bash", arguments: [root + "/scripts/demo.sh"], outputPath: log, environment: env)
        #expect(p.wait(timeout: 300))
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(p.exitCode == 0, "\(text.suffix(2000))")
        #expect(text.contains("0 failed"))
        #expect(text.contains("tic.record: channel ch-"))
        // Artifacts a user can re-verify: TICs, TSCs, DID documents from the chain.
        #expect(FileManager.default.fileExists(atPath: out + "/tic/consumer1.tic.json"))
        #expect(FileManager.default.fileExists(atPath: out + "/tsc/consumer2-3.json"))
        #expect(FileManager.default.fileExists(atPath: out + "/dids/provider.onchain.json"))
    }
}
