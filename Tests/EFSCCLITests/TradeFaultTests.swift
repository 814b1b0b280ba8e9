import EFSCBus
import EFSCCore
import EFSCDevnet
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What a user runs keeps settling through faults: two `efsc trade settle`
/// processes (provider and consumer, period 1 s) on a secure devnet ride
/// through a broker SIGKILL, a TCC SIGKILL and a restart of the node the TCC
/// is attached to, each in the middle of the trade, and end with the same
/// contiguous TSCs in both wallets, none issued twice.
extension NetworkSuites {
@Suite(.serialized) struct TradeFaultTests {
    let run = DevnetIntegrationTests()

    struct Ended: Error, CustomStringConvertible { let detail: String; var description: String { detail } }

    /// Sequences of the TSC files in a wallet's channel directory.
    static func sequences(_ wallet: String, _ channel: String) -> [Int] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "\(wallet)/\(channel)")) ?? []).compactMap { f in
            f.hasSuffix(".json") && f != "tic.json" ? Int(f.dropLast(5)) : nil
        }.sorted()
    }

    @Test func tradeSettleRidesThroughBrokerTCCAndNodeRestarts() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-fault-\(UUID().uuidString.prefix(8))").path
        var children: [ChildProcess] = []
        defer {
            for c in children { c.terminate(grace: 2) }
            _ = try? run.efsc(["devnet", "down", "--dir", dir])
            try? FileManager.default.removeItem(atPath: dir)
        }
        #expect(try run.efsc(["devnet", "init", "--dir", dir]).code == 0)
        #expect(try run.efsc(["devnet", "up", "--dir", dir]).code == 0)
        let net = try Devnet(dir: dir)
        func efsc(_ a: [String]) throws -> DevnetIntegrationTests.Run { try run.efsc(a + ["--network", dir]) }
        for who in ["provider", "consumer"] {
            let c = try run.efsc(["did", "create", "--network", "devnet"])
            try c.out.write(toFile: "\(dir)/\(who).json", atomically: true, encoding: .utf8)
            #expect(try run.efsc(["devnet", "add-party", "--dir", dir, "--identity", "\(dir)/\(who).json"]).code == 0)
            #expect(try efsc(["did", "register", "--identity", "\(dir)/\(who).json", "--json"]).code == 0)
        }
        #expect(try efsc(["offer", "publish", "--identity", "\(dir)/provider.json", "--offer-id", "fault-gpu", "--resource-type", "gpu", "--unit-price", "10", "--capacity", "4", "--json"]).code == 0)
        let wallets = ["provider": "\(dir)/wallet-provider", "consumer": "\(dir)/wallet-consumer"]
        let start = try efsc(
            ["trade", "start", "--identity", "\(dir)/consumer.json", "--provider-identity", "\(dir)/provider.json", "--offer", "fault-gpu", "--period", "1",
             "--evidence-every", "2", "--json", "--wallet", wallets["consumer"]!])
        let channel = try #require(start.json?["channelId"]?.stringValue, "\(start.out)")
        // Each party has its own wallet; both start from the TIC.
        try FileManager.default.createDirectory(atPath: "\(wallets["provider"]!)/\(channel)", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(wallets["consumer"]!)/\(channel)/tic.json", toPath: "\(wallets["provider"]!)/\(channel)/tic.json")

        let count = 24
        // Both with their defaults (period 1 s, --usage from the TIC, --idle 60 s), as a user runs them.
        for who in ["consumer", "provider"] {
            children.append(
                try ChildProcess(
                    path: CLITests.binary,
                    arguments: ["trade", "settle", "--identity", "\(dir)/\(who).json", "--channel", channel, "--count", String(count), "--json", "--network", dir,
                                "--wallet", wallets[who]!],
                    outputPath: "\(dir)/\(who)-settle.out"))
        }
        func output(_ who: String) -> String { (try? String(contentsOfFile: "\(dir)/\(who)-settle.out", encoding: .utf8)) ?? "" }
        func progress(_ n: Int, _ after: String) async throws {
            try await StateWait.until("\(after): both wallets holding TSC \(n)", timeout: 90, every: 0.2) {
                let p = Self.sequences(wallets["provider"]!, channel).last ?? 0
                let c = Self.sequences(wallets["consumer"]!, channel).last ?? 0
                guard children.allSatisfy(\.isRunning) || (p >= n && c >= n) else {
                    throw Ended(detail: "a trade settle process ended early: provider: \(output("provider")) consumer: \(output("consumer"))")
                }
                return p >= n && c >= n
            }
        }
        try await progress(4, "the trade under way")

        // 1. The broker killed, restarted 3 s later.
        let brokerPID = try #require(net.brokerPID)
        kill(brokerPID, SIGKILL)
        try await StateWait.until("the broker stopped", timeout: 10) { kill(brokerPID, 0) != 0 }
        try await Task.sleep(nanoseconds: 3_000_000_000)
        let broker = try net.brokerProcess(dieWithParent: false)
        try broker.start()
        broker.detach()
        let afterBroker = (Self.sequences(wallets["provider"]!, channel).last ?? 0) + 3
        try await progress(afterBroker, "after the broker restart")

        // 2. The TCC killed, started again 3 s later.
        #expect(try run.efsc(["devnet", "stop-node", "--dir", dir, "--kill", "tcc1"]).code == 0)
        try await Task.sleep(nanoseconds: 3_000_000_000)
        #expect(try run.efsc(["devnet", "start-node", "--dir", dir, "tcc1"]).code == 0)
        let afterTCC = (Self.sequences(wallets["provider"]!, channel).last ?? 0) + 3
        try await progress(afterTCC, "after the TCC restart")

        // 3. The node the TCC is attached to (node1) restarted.
        #expect(try run.efsc(["devnet", "stop-node", "--dir", dir, "node1"]).code == 0)
        try await Task.sleep(nanoseconds: 2_000_000_000)
        #expect(try run.efsc(["devnet", "start-node", "--dir", dir, "node1"]).code == 0)
        let afterNode = min(count, (Self.sequences(wallets["provider"]!, channel).last ?? 0) + 3)
        try await progress(afterNode, "after the node restart")

        for (who, c) in zip(["consumer", "provider"], children) {
            #expect(c.wait(timeout: 120), "\(who) still running: \(output(who))")
            #expect(c.exitCode == 0, "\(who): \(output(who))")
            let j = try? JSONParser.parse(output(who).split(separator: "\n").last.map(String.init) ?? "")
            #expect(j?["lastSequence"]?.intValue == count, "\(who): \(output(who))")
        }
        // No gap, no duplicate, the same TSCs on both sides.
        let p = Self.sequences(wallets["provider"]!, channel)
        let c = Self.sequences(wallets["consumer"]!, channel)
        #expect(p == Array(1...count) && c == Array(1...count), "provider \(p), consumer \(c)")
        for s in 1...count {
            let name = String(format: "%08d.json", s)
            let a = try JSONParser.parse(try String(contentsOfFile: "\(wallets["provider"]!)/\(channel)/\(name)", encoding: .utf8))
            let b = try JSONParser.parse(try String(contentsOfFile: "\(wallets["consumer"]!)/\(channel)/\(name)", encoding: .utf8))
            #expect(a == b, "TSC \(s) differs between the wallets")
        }
        // The last one verifies against the chain, with its evidence anchored (every 2).
        let v = try efsc(["tsc", "verify", "\(wallets["consumer"]!)/\(channel)/\(String(format: "%08d.json", count))", "--json"])
        #expect(v.code == 0 && v.json?["valid"] == true, "\(v.out)")
    }
}
}
