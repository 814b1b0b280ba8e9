import EFSCBus
import EFSCChannel
import EFSCCore
import EFSCDevnet
import EFSCIdentity
import Foundation
import Testing

/// The default devnet is secure: what `devnet init` and `devnet up` make,
/// checked from the outside as an attacker and as each kind of account.
extension NetworkSuites {
@Suite(.serialized) struct DevnetSecurityTests {
    let run = DevnetIntegrationTests()

    final class Inbox: @unchecked Sendable {
        let lock = Lock()
        var items: [MQTTMessage] = []
        func add(_ m: MQTTMessage) { lock.withLock { items.append(m) } }
        var count: Int { lock.withLock { items.count } }
        func wait(for n: Int, timeout: Double = 10) async -> Bool {
            (try? await StateWait.until("\(n) message(s)", timeout: timeout) { count >= n }) != nil
        }
    }

    func login(_ p: BrokerProfile, _ fallback: String = "x", configure: (inout MQTTConfiguration) -> Void = { _ in }) async throws -> MQTTClient {
        var c = try p.configuration(fallbackClientID: fallback)
        c.offlinePolicy = .failFast
        c.connectTimeout = 5
        c.reconnectDelay = (1, 1)
        configure(&c)
        let m = try MQTTClient(c)
        try await m.connect()
        return m
    }

    func config(_ dir: String, _ node: String) throws -> JSON { try JSONParser.parse(try String(contentsOfFile: "\(dir)/\(node)/config.json", encoding: .utf8)) }

    @Test func theDefaultDevnetAuthenticatesEncryptsAndConfines() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-sec-\(UUID().uuidString.prefix(8))").path
        defer {
            _ = try? run.efsc(["devnet", "down", "--dir", dir])
            try? FileManager.default.removeItem(atPath: dir)
        }
        #expect(try run.efsc(["devnet", "init", "--dir", dir]).code == 0)
        let up = try run.efsc(["devnet", "up", "--dir", dir])
        try #require(up.code == 0, "\(up.out)")
        let net = try Devnet(dir: dir)
        let tls = try #require(net.brokerTLSURL)
        // Secrets are private.
        for f in ["client.json", "client.key", "tcc1.json", "node1/config.json", "node1/client.key", "tcc1/config.json", "broker/ca.key", "broker/admin.json"] {
            let mode = (try FileManager.default.attributesOfItem(atPath: "\(dir)/\(f)")[.posixPermissions] as? Int) ?? 0
            #expect(mode & 0o077 == 0, "\(f) is mode \(String(mode, radix: 8))")
        }

        // 1. Anonymous clients are refused at connect, on both listeners.
        for url in [net.brokerURL] {
            await #expect(throws: MQTTError.self, "anonymous on \(url)") { _ = try await login(BrokerProfile(url: url), "anon") }
        }
        await #expect(throws: MQTTError.self, "anonymous over TLS") {
            _ = try await login(BrokerProfile(url: tls, caFile: dir + "/broker/ca.crt"), "anon")
        }

        // 2. Over TLS a client needs a certificate of the network CA: none, or one of another CA, is refused.
        let client = try net.profile(net.clientProfilePath)
        #expect(client.url == tls)
        var noCert = client
        noCert.certFile = nil
        noCert.keyFile = nil
        await #expect(throws: MQTTError.self, "TLS without a client certificate") { _ = try await login(noCert) }
        let other = try NetworkCA.create(in: dir + "/other-ca")
        try other.issueClient("client", certificate: dir + "/other-ca/client.crt", key: dir + "/other-ca/client.key")
        var foreign = client
        foreign.certFile = dir + "/other-ca/client.crt"
        foreign.keyFile = dir + "/other-ca/client.key"
        await #expect(throws: MQTTError.self, "TLS with a certificate of another CA") { _ = try await login(foreign) }
        var wrongPassword = client
        wrongPassword.password = "not-it"
        await #expect(throws: MQTTError.self, "a wrong password") { _ = try await login(wrongPassword) }
        // A plain URL to a remote host is refused before any connection.
        var remote = client
        remote.url = "mqtt://192.0.2.1:1883"
        #expect(throws: BrokerProfileError.self) { _ = try remote.configuration(fallbackClientID: "x") }

        // Client commands reach it with the profile alone: `bus tap` reads what the client account may,
        // and a filter it may not read is refused with the broker's reason.
        let tap = try run.efsc(["bus", "tap", Topics.statusAll("transaction"), "--network", dir, "--count", "1", "--json"])
        #expect(tap.code == 0 && tap.out.contains("\"topic\""), "\(tap.out)")
        let snoop = try run.efsc(["bus", "tap", Topics.pbftAll("transaction"), "--network", dir, "--count", "1", "--seconds", "2"])
        #expect(snoop.code != 0 && snoop.out.contains("refused"), "\(snoop.out)")

        // 3. Parties join at runtime, each confined to its own channel halves.
        let alice = try PartyIdentity.create(network: "devnet"), bob = try PartyIdentity.create(network: "devnet")
        for p in [alice, bob] {
            let r = try run.efsc(["devnet", "add-party", "--dir", dir, "--did", p.did, "--json"])
            #expect(r.code == 0 && r.json?["account"]?.stringValue == PartyName.of(p.did), "\(r.out)")
        }
        #expect(try run.efsc(["devnet", "add-party", "--dir", dir, "--did", alice.did]).code == 1, "a second account for alice")
        #expect(try run.efsc(["devnet", "add-party", "--dir", dir, "--did", "did:efsc:devnet:node2"]).code == 1, "a party named like a node")
        let a = PartyName.of(alice.did), b = PartyName.of(bob.did)
        let aliceBus = try await login(try net.profile(net.partyProfilePath(a)))
        let bobBus = try await login(try net.profile(net.partyProfilePath(b)))
        let ch = "ch-" + Hex.encode(Digest.randomBytes(16))
        // What a party may not write: another's half, a down half, consensus, direct, sync, blocks, channel control, TCC status, replies.
        for topic in [
            Topics.channelUp(ch, party: b), Topics.channelDown(ch, party: a), Topics.pbft("transaction", from: "node1"), Topics.direct("identity", to: "node2"),
            Topics.sync("transaction", node: "node3"), Topics.blocks("transaction", node: "node1"), Topics.status("transaction", node: "node1"),
            Topics.tccControl("transaction"), Topics.tccStatus("tcc1"), Topics.reply(clientID: "node1"), Topics.presence("node1"),
        ] {
            await #expect(throws: MQTTError.self, "alice published on \(topic)") { try await aliceBus.publish(topic, payload: [1], qos: .atLeastOnce) }
        }
        // What it may not read: another's half, consensus, sync, control, up halves.
        for filter in [Topics.channelDown(ch, party: b), Topics.pbftAll("transaction"), Topics.sync("transaction", node: "node1"), Topics.tccControl("transaction"),
                       Topics.channelUpAll(), Topics.root + "/#", Topics.reply(clientID: b)] {
            await #expect(throws: MQTTError.self, "alice subscribed to \(filter)") { try await aliceBus.subscribe(filter, qos: .atLeastOnce) { _ in } }
        }
        // What it may: its own up half, transactions, queries; and it reads blocks and statuses.
        try await aliceBus.publish(Topics.channelUp(ch, party: a), payload: Array("{}".utf8), qos: .atLeastOnce)
        let statuses = Inbox()
        try await aliceBus.subscribe(Topics.statusAll("transaction"), qos: .atLeastOnce) { statuses.add($0) }
        #expect(await statuses.wait(for: 1), "alice read no node status")
        let reply = try await aliceBus.request(Topics.query("transaction", "status"), payload: Array("{}".utf8), timeout: 10)
        #expect(reply.payloadString.contains("height"), "\(reply.payloadString)")

        // 4. A node's account may not write a channel's down half, nor speak as another node.
        #expect(try run.efsc(["devnet", "stop-node", "--dir", dir, "node4"]).code == 0)
        let node4 = try BrokerProfile(json: try #require(config(dir, "node4")["brokerAuth"]), url: net.brokerURL)
        let nodeBus = try await login(node4)
        for topic in [Topics.channelDown(ch, party: a), Topics.channelUp(ch, party: a), Topics.pbft("transaction", from: "node1"), Topics.blocks("identity", node: "node2"),
                      Topics.tccStatus("tcc1")] {
            await #expect(throws: MQTTError.self, "node4 published on \(topic)") { try await nodeBus.publish(topic, payload: [1], qos: .atLeastOnce) }
        }
        try await nodeBus.publish(Topics.tccControl("transaction"), payload: Array("{}".utf8), qos: .atLeastOnce)
        await nodeBus.disconnect()
        #expect(try run.efsc(["devnet", "start-node", "--dir", dir, "node4"]).code == 0)

        // 5. A removed party is disconnected at once and cannot come back; the other is unaffected.
        #expect(try run.efsc(["devnet", "remove-party", "--dir", dir, bob.did]).code == 0)
        try await StateWait.until("bob disconnected after remove-party", timeout: 10) { !bobBus.isConnected }
        var bobProfile = try net.profile(net.clientProfilePath)
        bobProfile.username = b
        await #expect(throws: MQTTError.self, "bob logged in again") { _ = try await login(bobProfile) }
        #expect(!FileManager.default.fileExists(atPath: net.partyProfilePath(b)))
        #expect(try run.efsc(["devnet", "remove-party", "--dir", dir, bob.did]).code == 1, "removing bob twice")
        try await aliceBus.publish(Topics.channelUp(ch, party: a), payload: Array("{}".utf8), qos: .atLeastOnce)

        // 6. Rotation: the old password stops working at once, the new one works; a rotated node comes back.
        let before = try net.profile(net.partyProfilePath(a))
        #expect(try run.efsc(["devnet", "rotate", "--dir", dir, a]).code == 0)
        try await StateWait.until("alice's old connection dropped by the rotation", timeout: 10) { !aliceBus.isConnected }
        await aliceBus.disconnect()
        await #expect(throws: MQTTError.self, "the old password") { _ = try await login(before) }
        let after = try await login(try net.profile(net.partyProfilePath(a)))
        await after.disconnect()
        #expect(try run.efsc(["devnet", "rotate", "--dir", dir, "node2"]).code == 0)
        let s = try run.converged(dir, nodes: ["node1", "node2", "node3", "node4"], min: 0, timeout: 30)
        #expect(s["node2"]?["running"]?.boolValue == true)
        #expect(try run.efsc(["chain", "load", "--network", dir, "--identity", dir + "/tcc1.json", "--rate", "10", "--seconds", "1", "--json"]).json?["committed"]?.intValue == 10)
    }

    /// `--insecure` is explicit, warns, and is what it says.
    @Test func anInsecureDevnetIsExplicitAndWarns() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-insec-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + ".err"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let p = try ChildProcess(path: CLITests.binary, arguments: ["devnet", "init", "--dir", dir, "--insecure"], outputPath: out)
        #expect(p.wait(timeout: 60) && p.exitCode == 0)
        #expect(((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").contains("WARNING: insecure devnet"))
        let net = try Devnet(dir: dir)
        #expect(!net.isSecure && net.brokerTLSURL == nil)
        #expect(!FileManager.default.fileExists(atPath: dir + "/broker/dynamic-security.json"))
        #expect(try net.profile(net.clientProfilePath).insecure)
    }
}
}
