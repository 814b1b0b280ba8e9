// A computing-power provider in a few dozen lines of EFSC's SDK:
//
//   1. its DID (created on first run, kept in --identity) registered on the identity chain;
//   2. an offer published on the transaction chain;
//   3. a consumer's TIC application taken from --inbox/application.json, the
//      TIC issued and recorded (which opens the channel), written to --inbox/tic.json;
//   4. the TCC's DID challenge passed, --count settlements proposed (the last
//      one final: a cooperative close), each TSC checked and kept in --wallet.
//
// Every step prints one JSON line on stdout: {"event": "registered" | "offer" |
// "channel" | "tsc" | "done", ...}. Errors go to stderr as one line, exit 1.
import EFSCBus
import EFSCChannel
import EFSCCore
import EFSCCredentials
import EFSCSDK
import Foundation

struct Options {
    var broker = "mqtt://127.0.0.1:1883"
    var identity = "provider.json"
    var network = "devnet"
    var offer = "edge-gpu"
    var inbox = "inbox"
    var wallet = "provider-wallet"
    var count = 3
    var timeout = 120.0
    var profile: String?

    static let usage = """
        usage: swift-provider [--profile FILE | --broker URL] [--identity FILE] [--network NAME] [--offer ID]
                             [--inbox DIR] [--wallet DIR] [--count N] [--timeout SECONDS]
        defaults: --broker mqtt://127.0.0.1:1883 --identity provider.json --network devnet --offer edge-gpu
                  --inbox inbox --wallet provider-wallet --count 3 (1...10000) --timeout 120 (seconds to wait
                  for the consumer's application and for each settlement)
        --profile: the connection profile `efsc devnet add-party` wrote for this provider (broker URL, account,
                  CA, client certificate); --broker alone connects anonymously (an --insecure network only)
        """

    init(_ args: [String]) throws {
        var i = 0
        func value() throws -> String {
            i += 1
            guard i < args.count else { throw ProviderError("\(args[i - 1]) needs a value") }
            return args[i]
        }
        while i < args.count {
            switch args[i] {
            case "--broker": broker = try value()
            case "--profile": profile = try value()
            case "--identity": identity = try value()
            case "--network": network = try value()
            case "--offer": offer = try value()
            case "--inbox": inbox = try value()
            case "--wallet": wallet = try value()
            case "--count":
                guard let n = Int(try value()), (1...10_000).contains(n) else { throw ProviderError("--count must be 1...10000") }
                count = n
            case "--timeout":
                guard let t = Double(try value()), t > 0, t <= 3600 else { throw ProviderError("--timeout must be in (0, 3600] seconds") }
                timeout = t
            case "-h", "--help":
                FileHandle.standardOutput.write(Data((Self.usage + "\n").utf8))
                exit(0)
            default: throw ProviderError("unknown option \(args[i])\n\(Self.usage)")
            }
            i += 1
        }
    }
}

struct ProviderError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

func emit(_ j: JSON) {
    FileHandle.standardOutput.write(Data((j.compactString() + "\n").utf8))
}

func readJSON(_ path: String) throws -> JSON {
    try JSONParser.parse(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
}

func write(_ path: String, _ j: JSON) throws {
    try Data((j.prettyString() + "\n").utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
}

func run(_ o: Options) async throws {
    // 1. Identity: created once, then reused (mode 600: it holds the secret key).
    let me: PartyIdentity
    if FileManager.default.fileExists(atPath: o.identity) {
        me = try PartyIdentity(json: try readJSON(o.identity))
    } else {
        me = try PartyIdentity.create(network: o.network)
        try write(o.identity, me.json)
        chmod(o.identity, 0o600)
    }
    // A secured network: the profile's account (client id = user name); else anonymous.
    var config = try (o.profile.map { try BrokerProfile.load($0) } ?? BrokerProfile(url: o.broker))
        .configuration(fallbackClientID: "swift-provider-\(PartyName.of(me.did).prefix(8))")
    config.offlinePolicy = .failFast
    let bus = try MQTTClient(config)
    try await bus.connect()
    let provider = Trader(chain: ChainClient(bus: bus), identity: me)
    try await provider.registerDID()
    emit(["event": "registered", "did": .string(me.did)])

    // 2. The offer.
    _ = try await provider.publishOffer([
        "offerId": .string(o.offer), "computingPower": ["resourceType": "gpu", "model": "Jetson-Orin", "memoryGiB": 16],
        "unitPrice": 2.5, "capacity": 4,
    ])
    emit(["event": "offer", "offerId": .string(o.offer), "did": .string(me.did)])

    // 3. A consumer's application, handed over out of band (here: a file).
    let applicationPath = o.inbox + "/application.json"
    let deadline = Date().addingTimeInterval(o.timeout)
    while !FileManager.default.fileExists(atPath: applicationPath) {
        guard Date() < deadline else { throw ProviderError("no TIC application at \(applicationPath) within \(Int(o.timeout)) s") }
        try await Task.sleep(nanoseconds: 100_000_000)
    }
    guard let appJSON = try readJSON(applicationPath).objectValue else { throw ProviderError("\(applicationPath) is not a JSON object") }
    let tic = try await provider.issue(VerifiableCredential(json: appJSON))
    let record = try await provider.record(tic: tic, offerId: o.offer)
    guard let channel = record["channelId"]?.stringValue else { throw ProviderError("the chain returned no channel id: \(record.compactString())") }
    try write(o.inbox + "/tic.json.part", .object(tic.json))
    try FileManager.default.moveItem(atPath: o.inbox + "/tic.json.part", toPath: o.inbox + "/tic.json")
    emit(["event": "channel", "channelId": .string(channel)])

    // 4. Settle through the TCC: propose, the consumer countersigns, the TCC issues.
    let session = try provider.session(channel: channel, tic: tic, store: try TSCStore(directory: o.wallet))
    try await session.open(timeout: o.timeout)
    // Back to back: the settlement periods lie in the past (a real provider waits one period each).
    let firstStart = DateTime.currentTime() - Double(session.terms.period * (o.count + 1))
    let usage = 0.0001
    for i in 1...o.count {
        let tsc = try await session.settle(usage: usage, final: i == o.count, firstStart: firstStart, timeout: o.timeout)
        emit(["event": "tsc", "channelId": .string(channel), "sequence": tsc.subject?["sequence"] ?? .null, "fee": tsc.subject?["fee"] ?? .null])
    }
    emit(["event": "done", "channelId": .string(channel), "settled": .number(Double(o.count)), "lastSequence": .number(Double(session.lastSequence))])
    await session.detach()
    await bus.disconnect()
}

do {
    try await run(try Options(Array(CommandLine.arguments.dropFirst())))
} catch {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
}
