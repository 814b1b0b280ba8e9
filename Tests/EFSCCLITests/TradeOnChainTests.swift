import EFSCBus
import EFSCContracts
import EFSCCore
import EFSCCredentials
import EFSCIdentity
import Foundation
import Testing

/// The on-chain start of a trade over a real devnet: DIDs and a provider
/// template registered on the identity chain, an offer published and
/// matched, a TIC recorded — and a TCC told to open the channel.
extension NetworkSuites {
@Suite(.serialized) struct TradeOnChainTests {
    final class Box: @unchecked Sendable {
        let lock = Lock()
        var items: [MQTTMessage] = []
    }

    @Test func ticRecordOpensChannelAndNotifiesATCC() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-trade-\(UUID().uuidString.prefix(8))").path
        let run = DevnetIntegrationTests()
        defer {
            _ = try? run.efsc(["devnet", "down", "--dir", dir])
            try? FileManager.default.removeItem(atPath: dir)
        }
        // --insecure: this test reads the channel-control topic, which on the
        // secure default only TCC accounts may read.
        #expect(try run.efsc(["devnet", "init", "--dir", dir, "--insecure"]).code == 0)
        #expect(try run.efsc(["devnet", "up", "--dir", dir]).code == 0)
        var c = try DevnetIntegrationTests.clientConfiguration(dir, "trader")
        c.offlinePolicy = .failFast
        let client = try MQTTClient(c)
        try await client.connect()
        defer { Task { await client.disconnect() } }
        let control = Box()
        // A plain subscription sees every control event (the devnet's TCC takes them through the shared one).
        try await client.subscribe(Topics.tccControl("transaction"), qos: .atLeastOnce) { m in control.lock.withLock { control.items.append(m) } }

        func submit(_ tx: ChainTransaction) async throws -> JSON {
            let r = try await client.request(Topics.tx(tx.group!), payload: tx.bytes, timeout: 20)
            return try JSONParser.parse(r.payload)
        }
        let provider = Ed25519SecretKey()
        let consumer = Ed25519SecretKey()
        let (pdid, _, pop) = try EFSCDID.createOperation(network: "devnet", key: provider)
        let (cdid, _, cop) = try EFSCDID.createOperation(network: "devnet", key: consumer)
        var n = 0
        func tx(_ g: String, _ did: String, _ k: Ed25519SecretKey, _ op: String, _ args: JSONObject) throws -> ChainTransaction {
            n += 1
            return try ChainTransaction.make(group: g, sender: did, nonce: n, op: op, args: args, key: k, method: "\(did)#key-1")
        }
        #expect(try await submit(try tx("identity", pdid, provider, "did.register", ["operation": .object(pop)]))["status"] == "committed")
        #expect(try await submit(try tx("identity", cdid, consumer, "did.register", ["operation": .object(cop)]))["status"] == "committed")
        let tit = try ProviderTemplates.timeOfDayTIT(owner: pdid)
        #expect(try await submit(try tx("identity", pdid, provider, "template.register", ["template": tit.json]))["status"] == "committed")
        let offer: JSONObject = ["offerId": "a100", "computingPower": ["resourceType": "gpu", "memoryGiB": 80], "unitPrice": 12.5, "capacity": 4]
        #expect(try await submit(try tx("transaction", pdid, provider, "offer.publish", offer))["status"] == "committed")
        // Matchmaking over the bus.
        let q: JSON = ["kind": "match", "params": ["resourceType": "gpu", "quantity": 2, "durationHours": 1]]
        let m = try JSONParser.parse(try await client.request(Topics.query("transaction", "match"), payload: try JCS.canonicalize(q), timeout: 10).payload)
        #expect(m["result"]?.arrayValue?.first?["offerId"] == "a100")
        // The TIC: applied for by the consumer, issued by the provider, recorded on chain.
        let resolver = LocalDIDResolver()
        resolver.add(try DIDHistory(create: pop))
        resolver.add(try DIDHistory(create: cop))
        let claim = ProviderTemplates.sampleTITClaim(provider: pdid, consumer: cdid)
        let app = try TIC.apply(claim: .object(claim), template: tit, consumerKey: consumer, consumerMethod: "\(cdid)#key-1")
        let ticVC = try await TIC.issue(application: app, providerKey: provider, providerMethod: "\(pdid)#key-1", resolver: resolver, templates: LocalTemplateStore([tit]))
        let rec = try await submit(try tx("transaction", cdid, consumer, "tic.record", ["tic": .object(ticVC.json), "offerId": "a100"]))
        #expect(rec["status"] == "committed", "\(rec.compactString())")
        let channel = try #require(rec["result"]?["channelId"]?.stringValue)
        // "open" is published on the TCC control topic…
        let deadline = Date().addingTimeInterval(10)
        while control.lock.withLock({ control.items.isEmpty }) && Date() < deadline { try await Task.sleep(nanoseconds: 50_000_000) }
        let ev = try #require(control.lock.withLock { control.items.first })
        let j = try JSONParser.parse(ev.payload)
        #expect(j["event"] == "open")
        #expect(j["channelId"]?.stringValue == channel)
        #expect(j["consumerDid"]?.stringValue == cdid)
        #expect(ev.properties.userProperties.contains(UserProperty("channel", channel)))
        // The offer's capacity went down by the TIC's units.
        let o = try JSONParser.parse(try await client.request(Topics.query("transaction", "offers"), payload: Array("{}".utf8), timeout: 10).payload)
        #expect(o["result"]?.arrayValue?.first?["remaining"]?.intValue == 2)
        // …and the devnet's TCC took the channel.
        var open = 0
        // Waits (up to 60 s) for the TCC's status to show the channel.
        let openDeadline = Date().addingTimeInterval(60)
        while open < 1 && Date() < openDeadline {
            open = try run.efsc(["devnet", "status", "--dir", dir, "--json"]).json?["tccs"]?.arrayValue?.first?["status"]?["openChannels"]?.intValue ?? 0
        }
        #expect(open == 1)
    }
}
}
