import EFSCBus
import EFSCChannel
import EFSCCore
import EFSCDevnet
import EFSCCredentials
import EFSCSDK
import Foundation
import Testing

/// EFSC as a dependency: `examples/swift-provider` is a separate package that
/// names EFSC by URL and version. The test makes a clone of this repository
/// tagged with the package's version, builds the example against it (so
/// SwiftPM resolves EFSC as a versioned dependency, which it refuses for a
/// package with unsafe flags), and runs it as the provider of a trade on a
/// devnet, with a consumer settling from the SDK in this process.
extension NetworkSuites {
@Suite(.serialized) struct SwiftProviderExampleTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// Runs a shell command line; returns (exit status, output).
    func shell(_ line: String, environment: [String: String]? = nil, timeout: Double, log: String) throws -> (Int32, String) {
        let p = try ChildProcess(path: "/bin/sh", arguments: ["-c", line], outputPath: log, environment: environment)
        let finished = p.wait(timeout: timeout)
        if !finished { p.terminate(grace: 2) }
        let out = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        return (finished ? (p.exitCode ?? -1) : -1, finished ? out : "timed out after \(Int(timeout)) s: \(out.suffix(3000))")
    }

    /// The JSON events the provider printed so far.
    func events(_ path: String) -> [JSON] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").compactMap { try? JSONParser.parse(String($0)) }
    }

    @Test func providerPackageBuildsAgainstATaggedCloneAndTrades() async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-example-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        let net = work + "/net"
        let run = DevnetIntegrationTests()
        defer {
            _ = try? run.efsc(["devnet", "down", "--dir", net])
            try? FileManager.default.removeItem(atPath: work)
        }
        // 1. A clone of this repository's committed HEAD, tagged with the version the example requires.
        let (c1, o1) = try shell(
            "git clone --quiet --no-hardlinks '\(Self.root)' '\(work)/efsc' && git -C '\(work)/efsc' tag -f 0.1.0 >/dev/null && cp -R '\(work)/efsc/examples/swift-provider' '\(work)/provider'",
            timeout: 120, log: work + "/clone.log")
        try #require(c1 == 0, "tagged clone: \(o1)")

        // 2. The example resolves EFSC by URL and version from that clone, and builds.
        let swift = try #require(BrokerProcess.which("swift"), "swift is not on PATH")
        var env = ProcessInfo.processInfo.environment
        env["EFSC_PACKAGE_URL"] = "file://\(work)/efsc"
        let (c2, o2) = try shell("'\(swift)' build --package-path '\(work)/provider' 2>&1", environment: env, timeout: 1500, log: work + "/build.log")
        try #require(c2 == 0, "building the example against EFSC 0.1.0: \(o2.suffix(4000))")
        let resolved = (try? String(contentsOfFile: work + "/provider/Package.resolved", encoding: .utf8)) ?? ""
        #expect(resolved.contains("\"version\" : \"0.1.0\""), "EFSC resolved by version: \(resolved)")
        let binary = work + "/provider/.build/debug/swift-provider"
        #expect(FileManager.default.isExecutableFile(atPath: binary))

        // 3. A devnet, and the example as the provider of a trade.
        #expect(try run.efsc(["devnet", "init", "--dir", net]).code == 0)
        let up = try run.efsc(["devnet", "up", "--dir", net])
        try #require(up.code == 0, "\(up.out)")
        // The provider's identity and its broker account, made before it starts.
        let ident = try run.efsc(["did", "create", "--network", "devnet"])
        try ident.out.write(toFile: work + "/provider.json", atomically: true, encoding: .utf8)
        let added = try run.efsc(["devnet", "add-party", "--dir", net, "--identity", work + "/provider.json", "--json"])
        let profile = try #require(added.json?["profile"]?.stringValue, "\(added.out)")
        let inbox = work + "/inbox"
        try FileManager.default.createDirectory(atPath: inbox, withIntermediateDirectories: true)
        let out = work + "/provider.out"
        let provider = try ChildProcess(
            path: binary,
            arguments: ["--profile", profile, "--identity", work + "/provider.json", "--inbox", inbox, "--wallet", work + "/provider-wallet", "--count", "3", "--timeout", "120"],
            outputPath: out)
        defer { provider.terminate(grace: 2) }
        let providerDID = try await StateWait.until("the example provider to register its DID and publish its offer", timeout: 120) { () -> StateWait.Probe<String> in
            let ev = events(out)
            if provider.exitCode != nil { return .reached("") }  // it ended: reported below
            guard let offer = ev.first(where: { $0["event"] == "offer" }), let did = offer["did"]?.stringValue else { return .notYet("\(ev.count) events") }
            return .reached(did)
        }
        try #require(!providerDID.isEmpty, "the example provider exited: \((try? String(contentsOfFile: out, encoding: .utf8)) ?? "")")

        // The consumer: its DID, the offer found on chain, a TIC application handed to the provider.
        let consumerID = try PartyIdentity.create(network: "devnet")
        let bus = try await Devnet(dir: net).connect(party: consumerID.did)
        let consumer = Trader(chain: ChainClient(bus: bus), identity: consumerID)
        try await consumer.registerDID()
        let offer = try #require(try await consumer.offers().first { $0["offerId"] == "edge-gpu" }, "the example's offer is on chain")
        #expect(offer["provider"]?.stringValue == providerDID)
        let claim: JSONObject = [
            "providerDid": .string(providerDID), "consumerDid": .string(consumer.me.did),
            "computingPower": ["resourceType": "gpu", "units": 1], "unitPrice": 2.5, "currency": "CNY",
            "settlementStrategy": ["period": 1, "evidenceEvery": 2, "evidenceEveryMax": 10],
            "initialPricing": 0, "settlementTemplateId": .string(BaseTemplates.tstID), "settlementTemplateVersion": 1,
            "encryptionMethod": "HPKE-X25519-SHA256-ChaCha20Poly1305",
        ]
        let application = try consumer.apply(claim: claim, template: BaseTemplates.tit)
        try (JSON.object(application.json).prettyString() + "\n").write(toFile: inbox + "/application.json.part", atomically: true, encoding: .utf8)
        try FileManager.default.moveItem(atPath: inbox + "/application.json.part", toPath: inbox + "/application.json")

        // The provider issues and records the TIC; the consumer joins the channel and countersigns.
        let channel = try await StateWait.until("the example provider to record the TIC and open a channel", timeout: 120) { () -> StateWait.Probe<String> in
            guard let ev = events(out).first(where: { $0["event"] == "channel" }), let id = ev["channelId"]?.stringValue,
                FileManager.default.fileExists(atPath: inbox + "/tic.json")
            else { return .notYet((try? String(contentsOfFile: out, encoding: .utf8)) ?? "") }
            return .reached(id)
        }
        let tic = VerifiableCredential(json: try JSONParser.parse(try String(contentsOfFile: inbox + "/tic.json", encoding: .utf8)).objectValue!)
        let store = try TSCStore(directory: work + "/consumer-wallet")
        let session = try consumer.session(channel: channel, tic: tic, store: store)
        try await session.open()
        let last = try await session.waitFor(sequence: 3, timeout: 120)
        #expect(last.subject?["final"]?.boolValue == true, "the third settlement is the final one")
        #expect(provider.wait(timeout: 60), "the example provider did not exit within 60 s of its last settlement")
        let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        #expect(provider.exitCode == 0, "\(text)")
        let done = try #require(events(out).first { $0["event"] == "done" }, "\(text)")
        #expect(done["settled"]?.intValue == 3 && done["lastSequence"]?.intValue == 3, "\(text)")
        #expect(events(out).filter { $0["event"] == "tsc" }.compactMap { $0["sequence"]?.intValue } == [1, 2, 3])
        #expect(store.sequences(channel: channel) == [1, 2, 3])
        // Every TSC verifies against the chain's DID documents, and the channel closes cooperatively.
        for s in 1...3 {
            let vc = try #require(try store.get(channel: channel, sequence: s))
            let v = await TSC.verify(vc, resolver: ChainDIDResolver(chain: consumer.chain), templates: ChainTemplateStore(chain: consumer.chain))
            #expect(v.ok, "TSC \(s): \(v.summary)")
        }
        let closed = try? await StateWait.until("channel \(channel) to close cooperatively", timeout: 60) { () -> StateWait.Probe<JSON> in
            let rec = try await consumer.chain.channel(channel)
            return rec["state"] == "closed" ? .reached(rec) : .notYet(rec.compactString())
        }
        #expect(closed?["closeKind"] == "cooperative" && closed?["finalSequence"]?.intValue == 3, "\(closed?.compactString() ?? "not closed")")
        await session.detach()
        await bus.disconnect()
    }
}
}
