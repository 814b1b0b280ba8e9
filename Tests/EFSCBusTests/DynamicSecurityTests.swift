import EFSCCore
import Foundation
import Testing
@testable import EFSCBus

/// broker/dynsec.conf: Mosquitto's dynamic security plugin administered
/// over its control topic while the broker runs (`DynamicSecurity`).
/// Accounts and roles are created at runtime, a party is confined to its
/// own channel halves by a role of its own, and deleting a party's account
/// disconnects it at once and keeps it out.
@Suite(.serialized) struct DynamicSecurityTests {
    static func login(_ url: String, _ user: String, _ password: String) async throws -> MQTTClient {
        try await BrokerFixture.client(url, user) { c in
            c.username = user
            c.password = password
            c.reconnectDelay = (1, 1)
        }
    }

    @Test func accountsChangeAtRuntimeAndARemovedPartyIsDisconnected() async throws {
        guard DynamicSecurity.pluginPath() != nil else {
            Issue.record("mosquitto_dynamic_security.so is not installed")
            return
        }
        let dir = BrokerFixture.tempDir("dynsec")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try DynamicSecurity.initialize(file: dir + "/dynamic-security.json", admin: "admin", password: "admin-secret")
        let attrs = try FileManager.default.attributesOfItem(atPath: dir + "/dynamic-security.json")
        #expect((attrs[.posixPermissions] as? Int) == 0o600)
        let broker = try BrokerProcess(template: BrokerFixture.repo + "/broker/dynsec.conf", dir: dir)
        try broker.start()
        defer { broker.stop() }

        let admin = try await Self.login(broker.url, "admin", "admin-secret")
        let ds = DynamicSecurity(admin: admin)
        let channel = "ch-7"
        try await ds.createRole("tcc", BrokerACL.read(Topics.channelUpAll()) + BrokerACL.write("efsc/v1/channel/+/party/+/down"))
        for p in ["alice", "bob"] {
            try await ds.createRole(
                "party-\(p)", BrokerACL.write("efsc/v1/channel/+/party/\(p)/up") + BrokerACL.read("efsc/v1/channel/+/party/\(p)/down"))
        }
        try await ds.createClient("tcc1", password: "t-secret", roles: ["tcc"])
        try await ds.createClient("alice", password: "a-secret", roles: ["party-alice"])
        try await ds.createClient("bob", password: "b-secret", roles: ["party-bob"])
        #expect(Set(try await ds.listClients()).isSuperset(of: ["admin", "tcc1", "alice", "bob"]))
        // A second account with a taken name is refused by the plugin, with its reason.
        await #expect(throws: DynamicSecurityError.self) { try await ds.createClient("alice", password: "x", roles: []) }

        // Anonymous clients and wrong passwords are refused at connect.
        await #expect(throws: MQTTError.self) { try await MQTTClient(try MQTTConfiguration(url: broker.url, clientID: "anon")).connect() }
        await #expect(throws: MQTTError.self) { _ = try await Self.login(broker.url, "alice", "wrong") }

        let tcc = try await Self.login(broker.url, "tcc1", "t-secret")
        let alice = try await Self.login(broker.url, "alice", "a-secret")
        let bob = try await Self.login(broker.url, "bob", "b-secret")
        let ups = Inbox()
        try await tcc.subscribe(Topics.channelUpAll(), qos: .atLeastOnce) { ups.add($0) }
        // Alice writes her own half; not Bob's, not the TCC's, not consensus.
        try await alice.publish(Topics.channelUp(channel, party: "alice"), payload: Array("hello".utf8), qos: .atLeastOnce)
        #expect(await ups.wait(for: 1))
        for topic in [Topics.channelUp(channel, party: "bob"), Topics.channelDown(channel, party: "alice"), Topics.pbft("transaction", from: "node1")] {
            await #expect(throws: MQTTError.self, "alice published on \(topic)") {
                try await alice.publish(topic, payload: [1], qos: .atLeastOnce)
            }
        }
        // Nor read Bob's half: the subscription is refused, nothing arrives.
        let snoop = Inbox()
        _ = try? await alice.subscribe(Topics.channelDown(channel, party: "bob"), qos: .atLeastOnce) { snoop.add($0) }
        let bobInbox = Inbox()
        try await bob.subscribe(Topics.channelDown(channel, party: "bob"), qos: .atLeastOnce) { bobInbox.add($0) }
        try await tcc.publish(Topics.channelDown(channel, party: "bob"), payload: Array("for bob".utf8), qos: .atLeastOnce)
        #expect(await bobInbox.wait(for: 1))
        #expect(snoop.count == 0)

        // Removing Bob disconnects him at once, and he cannot come back.
        try await ds.deleteClient("bob")
        try await StateWait.until("bob disconnected after his account was deleted", timeout: 10) { !bob.isConnected }
        await #expect(throws: MQTTError.self) { _ = try await Self.login(broker.url, "bob", "b-secret") }
        // Alice is unaffected.
        try await alice.publish(Topics.channelUp(channel, party: "alice"), payload: Array("still here".utf8), qos: .atLeastOnce)
        #expect(await ups.wait(for: 2))
        for c in [alice, bob, tcc, admin] { await c.disconnect() }
    }

    /// topics.md's roles (`BrokerRoles`) on the plugin: a party cannot touch
    /// consensus, sync, channel-control or another party's halves; a node
    /// cannot write a channel's `down` half; nodes take queries and TCCs
    /// control events through their shared subscriptions.
    @Test func theRolesOfTopicsMd() async throws {
        guard DynamicSecurity.pluginPath() != nil else {
            Issue.record("mosquitto_dynamic_security.so is not installed")
            return
        }
        let dir = BrokerFixture.tempDir("roles")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try DynamicSecurity.initialize(file: dir + "/dynamic-security.json", admin: "admin", password: "admin-secret")
        let broker = try BrokerProcess(template: BrokerFixture.repo + "/broker/dynsec.conf", dir: dir)
        try broker.start()
        defer { broker.stop() }
        let admin = try await Self.login(broker.url, "admin", "admin-secret")
        let ds = DynamicSecurity(admin: admin)
        try await ds.installRoles()
        try await ds.addAccount("node1", password: "n1", kind: .node)
        try await ds.addAccount("tcc1", password: "t1", kind: .tcc)
        try await ds.addAccount("alice", password: "a1", kind: .party)
        let node = try await Self.login(broker.url, "node1", "n1")
        let tcc = try await Self.login(broker.url, "tcc1", "t1")
        let alice = try await Self.login(broker.url, "alice", "a1")

        // A party: none of consensus, direct, sync, blocks (write), channel control, TCC status.
        for topic in [Topics.pbft("transaction", from: "node1"), Topics.direct("transaction", to: "node1"), Topics.sync("transaction", node: "node1"),
                      Topics.blocks("transaction", node: "node1"), Topics.tccControl("transaction"), "efsc/v1/tcc/status/tcc1", "efsc/v1/reply/node1"] {
            await #expect(throws: MQTTError.self, "alice published on \(topic)") { try await alice.publish(topic, payload: [1], qos: .atLeastOnce) }
        }
        // A node may not write a channel's down half, nor a party's up half.
        await #expect(throws: MQTTError.self) { try await node.publish(Topics.channelDown("ch-1", party: "alice"), payload: [1], qos: .atLeastOnce) }
        await #expect(throws: MQTTError.self) { try await node.publish(Topics.channelUp("ch-1", party: "alice"), payload: [1], qos: .atLeastOnce) }
        // What each may do arrives: a transaction and a query at the node
        // (the query through the nodes' shared subscription), a control
        // event at the TCC through its shared one, the party's own halves.
        let txs = Inbox(), queries = Inbox(), control = Inbox(), ups = Inbox(), downs = Inbox(), snoop = Inbox()
        try await node.subscribe(Topics.tx("transaction"), qos: .atLeastOnce) { txs.add($0) }
        try await node.subscribe(Topics.queryShared("transaction"), qos: .atLeastOnce) { queries.add($0) }
        try await tcc.subscribe("$share/tcc/efsc/v1/tcc/control/+", qos: .atLeastOnce) { control.add($0) }
        try await tcc.subscribe(Topics.channelUpAll(), qos: .atLeastOnce) { ups.add($0) }
        try await alice.subscribe(Topics.channelDown("ch-1", party: "alice"), qos: .atLeastOnce) { downs.add($0) }
        _ = try? await alice.subscribe(Topics.pbftAll("transaction"), qos: .atLeastOnce) { snoop.add($0) }
        try await alice.publish(Topics.tx("transaction"), payload: [1], qos: .atLeastOnce)
        try await alice.publish("efsc/v1/query/transaction/block", payload: [2], qos: .atLeastOnce)
        try await node.publish(Topics.tccControl("transaction"), payload: [3], qos: .atLeastOnce)
        try await node.publish(Topics.pbft("transaction", from: "node1"), payload: [4], qos: .atLeastOnce)
        try await alice.publish(Topics.channelUp("ch-1", party: "alice"), payload: [5], qos: .atLeastOnce)
        try await tcc.publish(Topics.channelDown("ch-1", party: "alice"), payload: [6], qos: .atLeastOnce)
        for (name, inbox) in [("transaction", txs), ("query", queries), ("control", control), ("up", ups), ("down", downs)] {
            #expect(await inbox.wait(for: 1), "no \(name) arrived")
        }
        #expect(snoop.count == 0, "a party read consensus traffic")
        for c in [node, tcc, alice, admin] { await c.disconnect() }
    }
}
