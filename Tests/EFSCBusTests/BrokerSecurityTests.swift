import EFSCCore
import Foundation
import Testing
@testable import EFSCBus

/// broker/secure.conf with the users and ACL made by broker/make-users.sh and
/// the certificates made by broker/gen-certs.sh.
@Suite(.serialized) struct BrokerSecurityTests {
    struct Network {
        let broker: BrokerProcess
        let dir: String
        let passwords: [String: String]
    }

    static func withSecureBroker<T>(_ body: (Network) async throws -> T) async throws -> T {
        let dir = BrokerFixture.tempDir("secure")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try BrokerFixture.script("gen-certs.sh", [dir, "alice", "node1"])
        try BrokerFixture.script("make-users.sh", [dir, "--nodes", "node1", "--tccs", "tcc1", "--parties", "alice,bob"])
        var pw: [String: String] = [:]
        for line in try String(contentsOfFile: dir + "/credentials", encoding: .utf8).split(separator: "\n") {
            let f = line.split(separator: " ")
            if f.count >= 2 { pw[String(f[0])] = String(f[1]) }
        }
        let b = try BrokerProcess(template: BrokerFixture.repo + "/broker/secure.conf", dir: dir)
        try b.start()
        defer { b.stop() }
        return try await body(Network(broker: b, dir: dir, passwords: pw))
    }

    static func login(_ n: Network, _ user: String, url: String? = nil, configure: (inout MQTTConfiguration) -> Void = { _ in }) async throws -> MQTTClient {
        try await BrokerFixture.client(url ?? n.broker.url, user) { c in
            c.username = user
            c.password = n.passwords[user]
            configure(&c)
        }
    }

    @Test func anonymousAndWrongPasswordAreRefused() async throws {
        try await Self.withSecureBroker { n in
            let anon = try MQTTClient(try MQTTConfiguration(url: n.broker.url, clientID: "anon"))
            await #expect {
                try await anon.connect()
            } throws: { e in
                guard case MQTTError.connectionRefused(let code, _) = e else { return false }
                return code == 0x87 || code == 0x86
            }
            var c = try MQTTConfiguration(url: n.broker.url, clientID: "alice")
            c.username = "alice"
            c.password = "wrong"
            await #expect(throws: MQTTError.self) { try await MQTTClient(c).connect() }
            // The right password works.
            let ok = try await Self.login(n, "alice")
            await ok.disconnect()
        }
    }

    @Test func partiesAreConfinedToTheirOwnChannels() async throws {
        try await Self.withSecureBroker { n in
            let alice = try await Self.login(n, "alice")
            let bob = try await Self.login(n, "bob")
            let tcc = try await Self.login(n, "tcc1")
            let channel = "ch-42"
            // Alice may not read Bob's side of a channel: Mosquitto's ACL file
            // acknowledges the SUBSCRIBE but never delivers what the ACL denies.
            let snoop = Inbox()
            try await alice.subscribe(Topics.channelDown(channel, party: "bob"), qos: .atLeastOnce) { snoop.add($0) }
            let bobInbox = Inbox()
            try await bob.subscribe(Topics.channelDown(channel, party: "bob"), qos: .atLeastOnce) { bobInbox.add($0) }
            try await tcc.publish(Topics.channelDown(channel, party: "bob"), payload: Array("for bob".utf8), qos: .atLeastOnce)
            #expect(await bobInbox.wait(for: 1))
            try await Task.sleep(nanoseconds: 300_000_000)
            #expect(snoop.count == 0)
            // Nor write Bob's side.
            await #expect {
                try await alice.publish(Topics.channelUp(channel, party: "bob"), payload: [1], qos: .atLeastOnce)
            } throws: { e in
                if case MQTTError.publishRefused(let code, _) = e { return code == 0x87 }
                return false
            }
            // Nor publish consensus messages.
            await #expect(throws: MQTTError.self) {
                try await alice.publish(Topics.pbft("transaction", from: "node1"), payload: [1], qos: .atLeastOnce)
            }
            // Her own side works both ways through the TCC.
            let tccInbox = Inbox()
            try await tcc.subscribe(Topics.channelUpAll(), qos: .atLeastOnce) { tccInbox.add($0) }
            let aliceInbox = Inbox()
            try await alice.subscribe(Topics.channelDown(channel, party: "alice"), qos: .atLeastOnce) { aliceInbox.add($0) }
            try await alice.publish(Topics.channelUp(channel, party: "alice"), payload: Array("hello".utf8), qos: .atLeastOnce)
            #expect(await tccInbox.wait(for: 1))
            try await tcc.publish(Topics.channelDown(channel, party: "alice"), payload: Array("welcome".utf8), qos: .atLeastOnce)
            #expect(await aliceInbox.wait(for: 1))
            // A party may not impersonate the TCC side.
            await #expect(throws: MQTTError.self) {
                try await bob.publish(Topics.channelDown(channel, party: "alice"), payload: [0], qos: .atLeastOnce)
            }
            for c in [alice, bob, tcc] { await c.disconnect() }
        }
    }

    @Test func onlyNodesPublishConsensus() async throws {
        try await Self.withSecureBroker { n in
            let node = try await Self.login(n, "node1")
            let tcc = try await Self.login(n, "tcc1")
            try await node.publish(Topics.pbft("identity", from: "node1"), payload: [1], qos: .atLeastOnce)
            await #expect(throws: MQTTError.self) {
                try await tcc.publish(Topics.pbft("identity", from: "node1"), payload: [1], qos: .atLeastOnce)
            }
            await node.disconnect()
            await tcc.disconnect()
        }
    }

    @Test func tlsRequiresAValidClientCertificate() async throws {
        try await Self.withSecureBroker { n in
            let url = try #require(n.broker.tlsURL)
            // With the CA and a client certificate from it: accepted.
            let ok = try await Self.login(n, "alice", url: url) { c in
                c.tls = .init(caFile: n.dir + "/ca.crt", certFile: n.dir + "/alice.crt", keyFile: n.dir + "/alice.key")
            }
            try await ok.publish(Topics.presence("alice"), payload: [1])
            await ok.disconnect()
            // Without a client certificate: the handshake fails.
            var noCert = try MQTTConfiguration(url: url, clientID: "alice")
            noCert.username = "alice"
            noCert.password = n.passwords["alice"]
            noCert.tls = .init(caFile: n.dir + "/ca.crt")
            noCert.connectTimeout = 3
            await #expect(throws: MQTTError.self) { try await MQTTClient(noCert).connect() }
            // With a certificate from another CA: refused too.
            let other = BrokerFixture.tempDir("otherca")
            defer { try? FileManager.default.removeItem(atPath: other) }
            try BrokerFixture.script("gen-certs.sh", [other, "alice"])
            var foreign = noCert
            foreign.tls = .init(caFile: n.dir + "/ca.crt", certFile: other + "/alice.crt", keyFile: other + "/alice.key")
            await #expect(throws: MQTTError.self) { try await MQTTClient(foreign).connect() }
        }
    }

    /// libmosquitto's own loop thread ends for good on a TLS error; a TLS
    /// client must still come back when its broker is killed and restarted,
    /// and get its subscriptions back.
    @Test func aTLSClientReconnectsAfterItsBrokerIsKilledAndRestarted() async throws {
        try await Self.withSecureBroker { n in
            let url = try #require(n.broker.tlsURL)
            let alice = try await Self.login(n, "alice", url: url) { c in
                c.tls = .init(caFile: n.dir + "/ca.crt", certFile: n.dir + "/alice.crt", keyFile: n.dir + "/alice.key")
                c.reconnectDelay = (1, 2)
            }
            defer { Task { await alice.disconnect() } }
            let got = Counter()
            _ = try await alice.subscribe(Topics.tccStatus("tcc1"), qos: .atLeastOnce) { _ in got.add() }
            for round in 1...2 {
                n.broker.kill9()
                try n.broker.start()
                try await StateWait.until("alice reconnected over TLS after broker restart \(round)", timeout: 30) { alice.reconnectCount >= round }
                let tcc = try await Self.login(n, "tcc1")
                let before = got.value
                try await StateWait.until("alice's subscription delivering again after restart \(round)", timeout: 20) {
                    try? await tcc.publish(Topics.tccStatus("tcc1"), payload: Array("{}".utf8), qos: .atLeastOnce)
                    return got.value > before
                }
                await tcc.disconnect()
            }
        }
    }

    final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var n = 0
        func add() { lock.lock(); n += 1; lock.unlock() }
        var value: Int { lock.lock(); defer { lock.unlock() }; return n }
    }
}
