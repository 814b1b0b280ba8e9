import EFSCBus
import EFSCCore
import Foundation
import Testing

/// The trade as a user drives it from the shell: `did create|register|rotate`,
/// `template register`, `offer publish|match`, `trade start|settle|close|show`
/// and `tsc verify --broker`, each with --json, against a devnet with a TCC.
extension NetworkSuites {
@Suite(.serialized) struct TradeCLITests {
    @Test func shellTradeFromOfferToFinalClose() async throws {
        let run = DevnetIntegrationTests()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-tcli-\(UUID().uuidString.prefix(8))").path
        defer {
            _ = try? run.efsc(["devnet", "down", "--dir", dir])
            try? FileManager.default.removeItem(atPath: dir)
        }
        #expect(try run.efsc(["devnet", "init", "--dir", dir]).code == 0)
        #expect(try run.efsc(["devnet", "up", "--dir", dir]).code == 0)
        // Every command finds its profile in the devnet: a party's own (parties/<name>.json), else client.json.
        func efsc(_ a: [String]) throws -> DevnetIntegrationTests.Run { try run.efsc(a + ["--network", dir]) }
        // Identities.
        for who in ["provider", "consumer"] {
            let c = try run.efsc(["did", "create", "--network", "devnet"])
            try c.out.write(toFile: "\(dir)/\(who).json", atomically: true, encoding: .utf8)
            #expect(try run.efsc(["devnet", "add-party", "--dir", dir, "--identity", "\(dir)/\(who).json"]).code == 0)
            let id = try JSONParser.parse(try String(contentsOfFile: "\(dir)/\(who).json", encoding: .utf8))
            try JSON.array([id["operation"]!]).compactString().write(toFile: "\(dir)/\(who).log", atomically: true, encoding: .utf8)
            // The provider names its operation log; the consumer relies on its identity file.
            let log = who == "provider" ? ["--log", "\(dir)/\(who).log"] : []
            let r = try efsc(["did", "register", "--identity", "\(dir)/\(who).json", "--json"] + log)
            #expect(r.json?["status"] == "committed" || r.out.contains("already registered"), "\(r.out)")
        }
        let provider = try JSONParser.parse(try String(contentsOfFile: "\(dir)/provider.json", encoding: .utf8))["did"]!.stringValue!
        let resolved = try efsc(["did", "resolve", "--chain", provider, "--json"])
        #expect(resolved.json?["didDocument"]?["id"]?.stringValue == provider, "\(resolved.out)")
        // Offer, match.
        let pub = try efsc([
            "offer", "publish", "--identity", "\(dir)/provider.json", "--offer-id", "cli-gpu", "--resource-type", "gpu", "--unit-price", "10",
            "--capacity", "4", "--json",
        ])
        #expect(pub.json?["status"] == "committed", "\(pub.out)")
        let match = try efsc(["offer", "match", "--resource-type", "gpu", "--quantity", "1", "--json"])
        #expect(match.out.contains("cli-gpu"), "\(match.out)")
        // Start: apply, issue, record.
        let wallet = ["--wallet", "\(dir)/wallet"]
        let start = try efsc(
            ["trade", "start", "--identity", "\(dir)/consumer.json", "--provider-identity", "\(dir)/provider.json", "--offer", "cli-gpu", "--period", "1",
             "--evidence-every", "2", "--json"] + wallet)
        let channel = try #require(start.json?["channelId"]?.stringValue, "\(start.out)")
        // Settle: both parties at once, as two processes.
        let consumerOut = "\(dir)/consumer-settle.out"
        let consumer = try ChildProcess(
            path: CLITests.binary,
            arguments: ["trade", "settle", "--identity", "\(dir)/consumer.json", "--channel", channel, "--count", "4", "--json", "--network", dir] + wallet,
            outputPath: consumerOut)
        let prov = try efsc(["trade", "settle", "--identity", "\(dir)/provider.json", "--channel", channel, "--count", "4", "--no-wait", "--usage", "0.0002", "--json"] + wallet)
        #expect(consumer.wait(timeout: 60))
        let consumerText = (try? String(contentsOfFile: consumerOut, encoding: .utf8)) ?? ""
        #expect(prov.json?["lastSequence"]?.intValue == 4, "provider: \(prov.out); consumer: \(consumerText)")
        let cj = try #require(try? JSONParser.parse(consumerText.split(separator: "\n").last.map(String.init) ?? ""), "consumer: \(consumerText)")
        #expect(cj["role"] == "consumer" && cj["lastSequence"]?.intValue == 4, "\(consumerText)")
        // Show and verify against the chain.
        var show = try efsc(["trade", "show", "--channel", channel, "--json"] + wallet)
        // Waits (up to 60 s) for the state: evidence of sequence 4 on chain.
        let evidenceDeadline = Date().addingTimeInterval(60)
        while (show.json?["evidence"]?["sequence"]?.intValue ?? 0) < 4 && Date() < evidenceDeadline {
            usleep(200_000)
            show = try efsc(["trade", "show", "--channel", channel, "--json"] + wallet)
        }
        #expect(show.json?["channel"]?["state"] == "open" && show.json?["evidence"]?["sequence"]?.intValue == 4, "\(show.out)")
        let tsc4 = "\(dir)/wallet/\(channel)/00000004.json"
        let v = try efsc(["tsc", "verify", tsc4, "--json"])
        #expect(v.code == 0 && v.json?["valid"] == true && v.json?["onChain"]?["state"] == "anchored", "\(v.out)")
        let v1 = try efsc(["tsc", "verify", "\(dir)/wallet/\(channel)/00000001.json", "--json"])
        #expect(v1.json?["onChain"]?["state"] == "superseded", "\(v1.out)")
        // Key rotation keeps the DID; the identity file now holds key-2.
        let rot = try efsc(["did", "rotate", "--identity", "\(dir)/provider.json", "--json"])
        #expect(rot.json?["verificationMethod"]?.stringValue == "\(provider)#key-2", "\(rot.out)")
        // A TSC the provider signed with key-1 still verifies against the chain after the rotation.
        var again = try efsc(["tsc", "verify", tsc4, "--json"])
        // Waits (up to 60 s) for the state: the rotation committed and the resolver's cache expired.
        let rotationDeadline = Date().addingTimeInterval(60)
        while !again.out.contains("earlier version") && Date() < rotationDeadline {
            usleep(250_000)  // the chain resolver caches documents briefly; the rotation must have committed
            again = try efsc(["tsc", "verify", tsc4, "--json"])
        }
        #expect(again.code == 0 && again.json?["valid"] == true && again.out.contains("earlier version"), "\(again.out)")
        // Close unilaterally with the latest TSC and finalize.
        let close = try efsc(["trade", "close", "--identity", "\(dir)/consumer.json", "--channel", channel, "--unilateral", "--finalize", "--json"] + wallet)
        #expect(close.json?["state"] == "closed" && close.json?["finalSequence"]?.intValue == 4, "\(close.out)")
        // Bad input: an unknown channel is a one-line error and exit 1.
        let bad = try efsc(["trade", "show", "--channel", "ch-nope"] + wallet)
        #expect(bad.code == 1 && bad.out.contains("unknown channel"))
    }

    /// `bench channels --json` runs end to end and reports every key the issue names.
    @Test func benchChannelsReports() throws {
        let r = try DevnetIntegrationTests().efsc(["bench", "channels", "--channels", "6", "--rate", "30", "--seconds", "2", "--json"], timeout: 240)
        #expect(r.code == 0, "\(r.out)")
        let j = try #require(r.json, "\(r.out)")
        for k in ["channels", "settlementsPerSecond", "p50Millis", "p99Millis", "tccCpuMicrosPerSettlement", "cryptoMicrosPerSettlement", "ratio"] {
            #expect(j[k]?.doubleValue != nil, "missing \(k)")
        }
        #expect(j["channels"]?.intValue == 6 && (j["settlements"]?.intValue ?? 0) >= 1 && j["errors"]?.intValue == 0, "\(r.out)")
        #expect((j["cryptoMicrosPerSettlement"]?.doubleValue ?? 0) > 0 && (j["tccCpuMicrosPerSettlement"]?.doubleValue ?? 0) > 0)
        // The TCC's own account of its cryptography: positive, and below its whole CPU per settlement.
        let inTCC = j["tccCryptoMicrosPerSettlement"]?.doubleValue ?? 0
        #expect(inTCC > 0 && inTCC < (j["tccCpuMicrosPerSettlement"]?.doubleValue ?? 0) && (j["ratioUnderLoad"]?.doubleValue ?? 0) > 1, "\(r.out)")
    }

    /// The pre-signed capacity run with two TCCs and idle channels: every key
    /// is there, both TCCs own channels, each channel exactly one, no errors.
    @Test func benchChannelsPresignedWithTwoTCCsAndIdleChannels() throws {
        let r = try DevnetIntegrationTests().efsc(
            ["bench", "channels", "--presigned", "--channels", "8", "--tccs", "2", "--idle-channels", "20", "--seconds", "1", "--json"], timeout: 300)
        #expect(r.code == 0, "\(r.out)")
        let j = try #require(r.json, "\(r.out)")
        for k in [
            "saturatedPerSecond", "p99MillisAtHalf", "p99MillisAt80", "tccCpuMicrosPerSettlement", "cryptoMicrosPerSettlement", "ratio", "ratioAtLowRate",
            "memoryBytesPerIdleChannel", "idleCpuMillisPerSecond",
        ] {
            #expect(j[k]?.doubleValue != nil, "missing \(k): \(r.out)")
        }
        #expect(j["presigned"] == true && j["tccs"]?.intValue == 2 && j["idleChannels"]?.intValue == 20 && j["errors"]?.intValue == 0, "\(r.out)")
        #expect((j["saturatedPerSecond"]?.doubleValue ?? 0) > 0 && (j["settlements"]?.intValue ?? 0) > 0, "\(r.out)")
        // The channels under load are split between the TCCs, each owned by one.
        let per = j["channelsPerTCC"]?.objectValue ?? [:]
        #expect(per.count == 2 && per.values.reduce(0) { $0 + ($1.intValue ?? 0) } == 8, "\(r.out)")
        // Both TCCs together hold every channel, idle ones included, once.
        let open = j["tccOpenChannels"]?.objectValue ?? [:]
        #expect(open.values.reduce(0) { $0 + ($1.intValue ?? 0) } == 28, "\(r.out)")
    }
}
}
