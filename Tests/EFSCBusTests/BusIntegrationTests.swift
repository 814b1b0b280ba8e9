import EFSCCore
import Foundation
import Testing
@testable import EFSCBus

/// The MQTT client against a real mosquitto (broker/dev.conf) on a free port.
@Suite(.serialized) struct BusIntegrationTests {
    @Test(arguments: QoS.allCases)
    func publishSubscribeAtEachQoS(qos: QoS) async throws {
        try await BrokerFixture.withDevBroker { b in
            let sub = try await BrokerFixture.client(b.url, "sub-\(qos.rawValue)")
            let pub = try await BrokerFixture.client(b.url, "pub-\(qos.rawValue)")
            let inbox = Inbox()
            let topic = Topics.status("transaction", node: "n\(qos.rawValue)")
            try await sub.subscribe(topic, qos: qos) { inbox.add($0) }
            let props = MQTTProperties(contentType: "application/json", userProperties: [UserProperty("k", "v")])
            for i in 0..<50 { try await pub.publish(topic, payload: Array("m\(i)".utf8), qos: qos, properties: props) }
            #expect(await inbox.wait(for: 50))
            let got = inbox.messages
            #expect(got.map(\.payloadString) == (0..<50).map { "m\($0)" })
            #expect(got.allSatisfy { $0.qos == qos && $0.properties.contentType == "application/json" })
            #expect(got.first?.properties.userProperties == [UserProperty("k", "v")])
            await pub.disconnect()
            await sub.disconnect()
        }
    }

    /// No Local: a client does not get back what it published itself, and
    /// still gets what others publish.
    @Test func noLocalSubscriptionSkipsOwnMessages() async throws {
        try await BrokerFixture.withDevBroker { b in
            let me = try await BrokerFixture.client(b.url, "me")
            let other = try await BrokerFixture.client(b.url, "other")
            let mine = Inbox()
            let everything = Inbox()
            let topic = Topics.pbft("transaction", from: "node1")
            try await me.subscribe(Topics.pbftAll("transaction"), qos: .atLeastOnce, noLocal: true) { mine.add($0) }
            try await other.subscribe(Topics.pbftAll("transaction"), qos: .atLeastOnce) { everything.add($0) }
            try await me.publish(topic, payload: Array("own".utf8), qos: .atLeastOnce)
            try await other.publish(topic, payload: Array("theirs".utf8), qos: .atLeastOnce)
            #expect(await everything.wait(for: 2))
            #expect(await mine.wait(for: 1))
            try await Task.sleep(nanoseconds: 200_000_000)
            #expect(mine.messages.map(\.payloadString) == ["theirs"])
            await me.disconnect()
            await other.disconnect()
        }
    }

    @Test func retainedMessageReachesLateSubscriber() async throws {
        try await BrokerFixture.withDevBroker { b in
            let pub = try await BrokerFixture.client(b.url, "pub")
            let topic = Topics.status("identity", node: "node1")
            try await pub.publish(topic, payload: Array(#"{"height":7}"#.utf8), qos: .atLeastOnce, retain: true)
            let sub = try await BrokerFixture.client(b.url, "late")
            let stream = try await sub.subscribe(topic)
            var it = stream.makeAsyncIterator()
            let m = await it.next()
            #expect(m?.retain == true)
            #expect(m?.payloadString == #"{"height":7}"#)
            await sub.disconnect()
            await pub.disconnect()
        }
    }

    @Test func sharedSubscriptionSpreadsMessages() async throws {
        try await BrokerFixture.withDevBroker { b in
            let a = try await BrokerFixture.client(b.url, "tcc-a")
            let c = try await BrokerFixture.client(b.url, "tcc-b")
            let pub = try await BrokerFixture.client(b.url, "node")
            let ia = Inbox()
            let ib = Inbox()
            try await a.subscribe(Topics.tccControlShared(), qos: .atLeastOnce) { ia.add($0) }
            try await c.subscribe(Topics.tccControlShared(), qos: .atLeastOnce) { ib.add($0) }
            for i in 0..<200 { try await pub.publish(Topics.tccControl("transaction"), payload: Array("open-\(i)".utf8)) }
            let deadline = Date().addingTimeInterval(10)
            while ia.count + ib.count < 200 && Date() < deadline { try await Task.sleep(nanoseconds: 10_000_000) }
            #expect(ia.count + ib.count == 200)
            #expect(ia.count > 0)
            #expect(ib.count > 0)
            // Each message went to exactly one member of the group.
            #expect(Set(ia.messages.map(\.payloadString)).isDisjoint(with: Set(ib.messages.map(\.payloadString))))
            for x in [a, c, pub] { await x.disconnect() }
        }
    }

    @Test func requestResponseWithCorrelation() async throws {
        try await BrokerFixture.withDevBroker { b in
            let server = try await BrokerFixture.client(b.url, "node1")
            let client = try await BrokerFixture.client(b.url, "wallet")
            let topic = Topics.query("identity", "did")
            try await server.subscribe(topic) { req in
                Task { try? await server.respond(to: req, payload: Array("echo:".utf8) + req.payload) }
            }
            // Concurrent requests each get their own reply.
            try await withThrowingTaskGroup(of: Void.self) { g in
                for i in 0..<20 {
                    g.addTask {
                        let r = try await client.request(topic, payload: Array("q\(i)".utf8), timeout: 5)
                        #expect(r.payloadString == "echo:q\(i)")
                        #expect(r.properties.correlationData?.count == 16)
                    }
                }
                try await g.waitForAll()
            }
            // Nobody answers on another topic: a timeout, not a hang.
            await #expect(throws: MQTTError.timeout("a reply on \(Topics.query("identity", "template")) (0.3 s)")) {
                try await client.request(Topics.query("identity", "template"), payload: [1], timeout: 0.3)
            }
            await server.disconnect()
            await client.disconnect()
        }
    }

    @Test func willMessageOnAbruptDisconnect() async throws {
        try await BrokerFixture.withDevBroker { b in
            let watcher = try await BrokerFixture.client(b.url, "watcher")
            let inbox = Inbox()
            try await watcher.subscribe(Topics.presence("+")) { inbox.add($0) }
            let fragile = try await BrokerFixture.client(b.url, "fragile") { c in
                c.will = .init(topic: Topics.presence("fragile"), payload: Array("gone".utf8), qos: .atLeastOnce)
                c.keepAlive = 5
            }
            fragile.dropConnection()
            #expect(await inbox.wait(for: 1))
            #expect(inbox.messages.first?.payloadString == "gone")
            // A clean disconnect sends no will.
            let polite = try await BrokerFixture.client(b.url, "polite") { c in
                c.will = .init(topic: Topics.presence("polite"), payload: Array("gone".utf8))
            }
            await polite.disconnect()
            try await Task.sleep(nanoseconds: 300_000_000)
            #expect(inbox.count == 1)
            await fragile.disconnect()
            await watcher.disconnect()
        }
    }

    /// The broker restarts; a persistent session gets the QoS 1 messages
    /// published while it was away, and a publisher's offline queue is flushed.
    @Test func persistentSessionSurvivesBrokerRestart() async throws {
        let dir = BrokerFixture.tempDir("restart")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let broker = try BrokerProcess(template: BrokerFixture.repo + "/broker/dev.conf", dir: dir)
        try broker.start()
        defer { broker.stop() }
        let topic = Topics.blocks("transaction", node: "node1")
        let sub = try await BrokerFixture.client(broker.url, "explorer") { c in
            c.cleanStart = false
            c.sessionExpiry = 600
            c.reconnectDelay = (1, 2)
        }
        let inbox = Inbox()
        try await sub.subscribe(topic, qos: .atLeastOnce) { inbox.add($0) }
        let pub = try await BrokerFixture.client(broker.url, "node1") { c in
            c.reconnectDelay = (1, 2)
            c.offlinePolicy = .queue(limit: 100)
        }
        try await pub.publish(topic, payload: Array("before".utf8))
        #expect(await inbox.wait(for: 1))
        broker.stop()
        try await Task.sleep(nanoseconds: 200_000_000)
        #expect(!pub.isConnected)
        // Published while the broker is down: queued, completed after reconnect.
        let queued = Task { for i in 0..<20 { try await pub.publish(topic, payload: Array("q\(i)".utf8)) } }
        try await Task.sleep(nanoseconds: 300_000_000)
        try broker.start()
        try await queued.value
        #expect(await inbox.wait(for: 21, timeout: 15))
        #expect(inbox.messages.map(\.payloadString) == ["before"] + (0..<20).map { "q\($0)" })
        #expect(sub.reconnectCount >= 1)
        await sub.disconnect()
        await pub.disconnect()
    }

    @Test func failFastAndBoundedOfflineQueue() async throws {
        let dir = BrokerFixture.tempDir("offline")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let broker = try BrokerProcess(template: BrokerFixture.repo + "/broker/dev.conf", dir: dir)
        try broker.start()
        let fast = try await BrokerFixture.client(broker.url, "fast") { $0.offlinePolicy = .failFast }
        let small = try await BrokerFixture.client(broker.url, "small") { $0.offlinePolicy = .queue(limit: 2) }
        broker.stop()
        try await Task.sleep(nanoseconds: 300_000_000)
        await #expect(throws: MQTTError.notConnected) { try await fast.publish("efsc/v1/presence/fast", payload: [1], qos: .atMostOnce) }
        try small.publishNow("efsc/v1/presence/small", payload: [1])
        try small.publishNow("efsc/v1/presence/small", payload: [2])
        #expect(throws: MQTTError.offlineQueueFull(limit: 2)) { try small.publishNow("efsc/v1/presence/small", payload: [3]) }
        await fast.disconnect()
        await small.disconnect()
    }

    @Test func oversizedPayloadIsRefused() async throws {
        try await BrokerFixture.withDevBroker { b in
            let c = try await BrokerFixture.client(b.url, "big")
            let big = [UInt8](repeating: 7, count: 2 << 20)
            await #expect(throws: MQTTError.payloadTooLarge(bytes: big.count)) {
                try await c.publish(Topics.tx("transaction"), payload: big)
            }
            // The connection is still usable afterwards.
            try await c.publish(Topics.tx("transaction"), payload: [1])
            await c.disconnect()
        }
    }

    @Test func connectionErrorsAreTyped() async throws {
        let port = try BrokerProcess.freePort()
        let c = try MQTTClient(try MQTTConfiguration(url: "mqtt://127.0.0.1:\(port)", clientID: "nobody"))
        await #expect(throws: MQTTError.self) { try await c.connect() }
        #expect(throws: MQTTError.invalidURL("http://x:1")) { try MQTTConfiguration(url: "http://x:1", clientID: "c") }
        #expect(throws: MQTTError.invalidURL("mqtt://host")) { try MQTTConfiguration(url: "mqtt://host", clientID: "c") }
    }

    @Test func topicFilters() {
        #expect(TopicFilter.matches("efsc/v1/chain/+/pbft/+", "efsc/v1/chain/identity/pbft/node1"))
        #expect(TopicFilter.matches("efsc/v1/#", "efsc/v1/chain/identity/pbft/node1"))
        #expect(TopicFilter.matches("$share/g/efsc/v1/tcc/control/+", "efsc/v1/tcc/control/transaction"))
        #expect(!TopicFilter.matches("efsc/v1/chain/+", "efsc/v1/chain/identity/pbft"))
        #expect(!TopicFilter.matches("#", "$SYS/broker/uptime"))
        #expect(TopicFilter.isValid("a/+/#"))
        #expect(!TopicFilter.isValid("a/#/b"))
        #expect(!TopicFilter.isValid("a/b+"))
        #expect(!TopicFilter.isValidTopic("a/+"))
    }

    /// Two handlers of one filter on one connection: a second SUBSCRIBE to
    /// the same filter replaces the broker's subscription (and its
    /// identifier), so the client shares one broker subscription between
    /// them: both receive, and dropping one leaves the other receiving.
    @Test func twoHandlersOfOneFilterBothReceive() async throws {
        try await BrokerFixture.withDevBroker { b in
            let c = try await BrokerFixture.client(b.url, "two-handlers")
            let pub = try await BrokerFixture.client(b.url, "two-handlers-pub")
            let first = Inbox(), second = Inbox(), overlapping = Inbox()
            let topic = Topics.presence("two-handlers-topic")
            let id1 = try await c.subscribe(topic, qos: .atLeastOnce) { first.add($0) }
            _ = try await c.subscribe(topic, qos: .atLeastOnce) { second.add($0) }
            _ = try await c.subscribe(Topics.presenceAll, qos: .atLeastOnce) { overlapping.add($0) }
            try await pub.publish(topic, payload: [1], qos: .atLeastOnce)
            for (name, inbox) in [("first", first), ("second", second), ("overlapping", overlapping)] { #expect(await inbox.wait(for: 1), "\(name) got nothing") }
            try await c.unsubscribe(id: id1)
            try await pub.publish(topic, payload: [2], qos: .atLeastOnce)
            #expect(await second.wait(for: 2), "the remaining handler stopped receiving")
            #expect(await overlapping.wait(for: 2))
            #expect(first.count == 1, "an unsubscribed handler still received")
            await c.disconnect()
            await pub.disconnect()
        }
    }
}
