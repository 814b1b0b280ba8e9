import EFSCBus
import EFSCCore
import Foundation
import Testing

/// `make demo`'s scenario, run by the suite exactly as `make demo` runs it
/// (the script's default settlement count), so a broken demo turns the suite red.
extension NetworkSuites {
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
        env["SETTLEMENTS"] = nil
        let p = try ChildProcess(path: "/bin/bash", arguments: [root + "/scripts/demo.sh"], outputPath: log, environment: env)
        #expect(p.wait(timeout: 600), "the demo did not finish within 600 s")
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(p.exitCode == 0, "\(text.suffix(2000))")
        #expect(text.contains("== summary: 0 failed re-verifications"))
        #expect(text.contains("closed cooperatively"))
        // Artifacts a user can re-verify: TICs, TSCs of every party, DIDs from the chain, committed blocks.
        #expect(FileManager.default.fileExists(atPath: out + "/tics/consumer1.json"))
        #expect(FileManager.default.fileExists(atPath: out + "/dids/provider.json"))
        #expect(FileManager.default.fileExists(atPath: out + "/dids/tcc1.json"))
        #expect(FileManager.default.fileExists(atPath: out + "/dids/node4.json"))
        let summary = try JSONParser.parse(try String(contentsOfFile: out + "/summary.json", encoding: .utf8))
        #expect(summary["failed"]?.arrayValue?.isEmpty == true, "\(summary.compactString())")
        #expect((summary["blocks"]?.intValue ?? 0) > 0)
        // blocks.jsonl is the event log: one block event per block the summary counts, each
        // block's events in height order per group, and the trade's domain events.
        let lines = try String(contentsOfFile: out + "/blocks.jsonl", encoding: .utf8).split(separator: "\n").map { try JSONParser.parse(Array($0.utf8)) }
        let blockEvents = lines.filter { $0["event"]?.stringValue == "block" }
        #expect(blockEvents.count == summary["blocks"]?.intValue)
        for g in ["identity", "transaction"] {
            let hs = blockEvents.filter { $0["group"]?.stringValue == g }.compactMap { $0["height"]?.intValue }
            #expect(!hs.isEmpty && hs == Array(1...hs.count), "\(g) heights \(hs)")
        }
        let types = Set(lines.compactMap { $0["event"]?.stringValue })
        for t in ["did.registered", "template.registered", "offer.published", "tic.recorded", "channel.opened", "evidence.anchored", "channel.closed"] {
            #expect(types.contains(t), "no \(t) event in blocks.jsonl")
        }
        #expect(text.contains("certified state roots reproduced"), "the demo's ledger replay")
        let tscs = FileManager.default.enumerator(atPath: out + "/tscs")?.allObjects.compactMap { $0 as? String }.filter { $0.hasSuffix(".json") } ?? []
        // 24 settlements per channel (the script's default), kept by both parties of both channels.
        #expect(tscs.count == 4 * 24)
        // The logs of the broker, the nodes and the TCC stay with the artifacts.
        for name in ["broker.log", "node1.log", "node4.log", "tcc1.log"] {
            #expect(FileManager.default.fileExists(atPath: out + "/logs/" + name), "\(name) in \(out)/logs")
        }
    }
}
}
