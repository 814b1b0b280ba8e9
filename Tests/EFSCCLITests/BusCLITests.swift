import EFSCBus
import EFSCCore
import Foundation
import Testing

/// `efsc bus tap` and `efsc bench bus` against a real broker.
@Suite(.serialized) struct BusCLITests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    func withBroker(_ body: (BrokerProcess) async throws -> Void) async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-cli-bus-\(UUID().uuidString.prefix(8))").path
        let b = try BrokerProcess(template: Self.repo + "/broker/dev.conf", dir: dir)
        try b.start()
        defer {
            b.stop()
            try? FileManager.default.removeItem(atPath: dir)
        }
        try await body(b)
    }

    func spawn(_ args: [String], out: String) throws -> ChildProcess {
        try ChildProcess(path: CLITests.binary, arguments: args, outputPath: out)
    }

    @Test func tapPrintsDecodedMessages() async throws {
        try await withBroker { b in
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("tap-\(UUID().uuidString).txt").path
            defer { try? FileManager.default.removeItem(atPath: out) }
            let tap = try spawn(["bus", "tap", "efsc/v1/chain/#", "--broker", b.url, "--count", "2", "--json"], out: out)
            defer { tap.terminate(grace: 1) }
            var c = try MQTTConfiguration(url: b.url, clientID: "pub")
            c.offlinePolicy = .failFast
            let pub = try MQTTClient(c)
            try await pub.connect()
            // Publish until the tap has subscribed and seen both.
            var block: [UInt8] = [0x45, 0x42, 1, 8] + Array("identity".utf8)
            block += [UInt8](repeating: 0, count: 7) + [3] + [UInt8](repeating: 0, count: 96) + [0, 1] + [UInt8](repeating: 0, count: 24) + [0, 0, 0, 0]
            for _ in 0..<100 where tap.isRunning {
                try await pub.publish(Topics.status("identity", node: "node1"), payload: Array(#"{"height":3}"#.utf8), properties: .init(contentType: "application/json"))
                try await pub.publish(Topics.blocks("identity", node: "node1"), payload: block)
                try await Task.sleep(nanoseconds: 100_000_000)
            }
            #expect(tap.wait(timeout: 10))
            #expect(tap.exitCode == 0)
            let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").compactMap { try? JSONParser.parse(String($0)) }
            #expect(lines.count == 2)
            let status = lines.first { $0["topic"]?.stringValue?.contains("/status/") == true }
            #expect(status?["payload"]?["height"]?.intValue == 3)
            #expect(status?["properties"]?["contentType"] == "application/json")
            #expect(status?["qos"]?.intValue == 1)
            let blk = lines.first { $0["topic"]?.stringValue?.contains("/blocks/") == true }
            #expect(blk?["payload"]?["format"] == "Block")
            #expect(blk?["payload"]?["height"]?.intValue == 3)
            await pub.disconnect()
        }
    }

    @Test func tapReportsAnUnreachableBroker() throws {
        let port = try BrokerProcess.freePort()
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("tap-\(UUID().uuidString).txt").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let tap = try spawn(["bus", "tap", "efsc/v1/#", "--broker", "mqtt://127.0.0.1:\(port)", "--count", "1"], out: out)
        #expect(tap.wait(timeout: 15))
        #expect(tap.exitCode == 1)
        let text = try String(contentsOfFile: out, encoding: .utf8)
        #expect(text.hasPrefix("error: cannot connect to the broker"))
        #expect(text.split(separator: "\n").count == 1)
    }

    /// Sized by time at both QoS levels: the ratio is reported against the
    /// C tools' rate measured in the same run, whatever this machine's speed.
    @Test(arguments: [0, 1]) func benchBusJSONShape(qos: Int) async throws {
        try await withBroker { b in
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("bench-\(UUID().uuidString).txt").path
            defer { try? FileManager.default.removeItem(atPath: out) }
            let p = try spawn(["bench", "bus", "--broker", b.url, "--qos", String(qos), "--seconds", "0.5", "--rounds", "1", "--json"], out: out)
            #expect(p.wait(timeout: 120), "bench bus did not finish within 120 s")
            let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
            #expect(p.exitCode == 0, "\(text)")
            let j = try JSONParser.parse(text)
            for k in ["qos", "payloadBytes", "msgsPerSecond", "baselineMsgsPerSecond", "ratio", "p50Micros", "p99Micros", "messages", "lost", "seconds"] {
                #expect(j[k]?.doubleValue != nil, "\(k)")
            }
            #expect(j["qos"]?.intValue == qos && j["payloadBytes"]?.intValue == 256)
            #expect((j["msgsPerSecond"]?.doubleValue ?? 0) > 0)
            #expect((j["baselineMsgsPerSecond"]?.doubleValue ?? 0) > 0)
            #expect((j["ratio"]?.doubleValue ?? 0) > 0)
            if qos == 1 { #expect(j["lost"]?.intValue == 0, "QoS 1 loses nothing: \(text)") }
        }
    }

    /// `--tls`: the Swift client over a TLS listener with a client
    /// certificate, next to the plain loopback run of the same invocation.
    @Test func benchBusReportsTheCostOfTLS() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("bench-tls-\(UUID().uuidString).txt").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let p = try spawn(["bench", "bus", "--tls", "--seconds", "0.5", "--rounds", "1", "--json"], out: out)
        #expect(p.wait(timeout: 120), "bench bus --tls did not finish within 120 s")
        let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        #expect(p.exitCode == 0, "\(text)")
        let j = try JSONParser.parse(text)
        for k in ["msgsPerSecond", "tlsMsgsPerSecond", "tlsP50Micros", "tlsP99Micros", "tlsRatio"] {
            #expect((j[k]?.doubleValue ?? 0) > 0, "\(k) in \(text)")
        }
        let ratio = (j["tlsMsgsPerSecond"]?.doubleValue ?? 0) / max(1, j["msgsPerSecond"]?.doubleValue ?? 1)
        #expect(abs(ratio - (j["tlsRatio"]?.doubleValue ?? 0)) < 0.01, "\(text)")
        let bad = try spawn(["bench", "bus", "--tls", "--broker", "mqtt://127.0.0.1:1"], out: out)
        #expect(bad.wait(timeout: 30) && bad.exitCode != 0)
    }
}
