import EFSCCore
import Foundation
import Testing
@testable import EFSCBus

/// Connection profiles: what they read, and the transport rule (plain MQTT
/// only to this host's loopback).
struct BrokerProfileTests {
    @Test func readsFieldsAndResolvesPathsFromItsDirectory() throws {
        let dir = BrokerFixture.tempDir("profile")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let j: JSON = ["broker": "mqtts://127.0.0.1:8883", "username": "alice", "password": "pw", "ca": "ca.crt", "cert": "/abs/alice.crt", "key": "alice.key"]
        try (j.prettyString()).write(toFile: dir + "/alice.json", atomically: true, encoding: .utf8)
        let p = try BrokerProfile.load(dir + "/alice.json")
        #expect(p.url == "mqtts://127.0.0.1:8883" && p.username == "alice" && p.password == "pw")
        #expect(p.caFile == dir + "/ca.crt" && p.certFile == "/abs/alice.crt" && p.keyFile == dir + "/alice.key")
        let c = try p.configuration(fallbackClientID: "ignored")
        #expect(c.clientID == "alice" && c.username == "alice" && c.tls?.caFile == dir + "/ca.crt")
        // No account: the fallback client id, anonymous.
        let anon = try BrokerProfile(url: "mqtt://127.0.0.1:1883").configuration(fallbackClientID: "tool-1")
        #expect(anon.clientID == "tool-1" && anon.username == nil && anon.tls == nil)
    }

    @Test func refusesWhatCannotWork() throws {
        func code(_ j: JSON) -> BrokerProfileError.Code? {
            do { _ = try BrokerProfile(json: j); return nil } catch { return error.code }
        }
        #expect(code(["username": "a"]) == .invalid)  // no broker
        #expect(code(["broker": "mqtt://127.0.0.1:1", "cert": "c.crt"]) == .invalid)  // cert without key
        #expect(code(["broker": "mqtt://127.0.0.1:1", "password": "p"]) == .invalid)  // password without user
        #expect(code(["broker": "mqtt://127.0.0.1:1", "username": 7]) == .invalid)
        #expect(throws: BrokerProfileError.self) { try BrokerProfile.load("/nonexistent/profile.json") }
        // TLS needs the CA.
        #expect(throws: BrokerProfileError.self) { try BrokerProfile(url: "mqtts://127.0.0.1:8883").configuration(fallbackClientID: "x") }
    }

    @Test func plainMQTTOnlyOnLoopback() throws {
        for host in ["127.0.0.1", "127.9.9.9", "localhost"] {
            _ = try BrokerProfile(url: "mqtt://\(host):1883").configuration(fallbackClientID: "x")
        }
        for host in ["192.0.2.1", "broker", "example.org"] {
            do {
                _ = try BrokerProfile(url: "mqtt://\(host):1883").configuration(fallbackClientID: "x")
                Issue.record("plain MQTT to \(host) was accepted")
            } catch let e as BrokerProfileError {
                #expect(e.code == .plainRemote, "\(e)")
            }
            var insecure = BrokerProfile(url: "mqtt://\(host):1883")
            insecure.insecure = true
            _ = try insecure.configuration(fallbackClientID: "x")
            _ = try BrokerProfile(url: "mqtts://\(host):8883", caFile: "/ca.crt").configuration(fallbackClientID: "x")
        }
    }
}

/// Ports a devnet chooses at init and binds later lie outside the kernel's
/// ephemeral range (an outgoing connection could take one meanwhile), are
/// free now, and are never handed out twice in one init.
@Test func stablePortsLieOutsideTheEphemeralRange() throws {
    let t = try String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)
    let v = t.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
    var taken: Set<Int> = []
    for _ in 0..<50 {
        let p = try BrokerProcess.stablePort(excluding: taken)
        #expect(!(v[0]...v[1]).contains(p), "port \(p) is in the ephemeral range \(v)")
        #expect(!taken.contains(p) && BrokerProcess.isFree(p))
        taken.insert(p)
    }
}
