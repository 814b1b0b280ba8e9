import ArgumentParser
import EFSCBus
import EFSCCore
import Foundation

/// Connection options shared by every command that talks to the broker:
/// a connection profile (`--network`) and fields that override it.
struct BrokerOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Connection profile: a profile file (JSON: broker, username, password, ca, cert, key — as `devnet init` and `devnet add-party` write them) or a devnet directory (its client.json; a command acting as a party uses parties/<party>.json when it exists). Default $EFSC_NETWORK.",
            valueName: "PATH"))
    var network: String?
    @Option(name: .long, help: "Broker URL, mqtt://HOST:PORT (loopback only) or mqtts://HOST:PORT (default: the profile's, else $EFSC_BROKER or mqtt://127.0.0.1:1883).")
    var broker: String?
    @Option(name: .long, help: "User name (also the client id: one connection per account at a time).") var username: String?
    @Option(name: .long, help: "Password (or $EFSC_PASSWORD).") var password: String?
    @Option(name: .long, help: "CA certificate for mqtts://.") var ca: String?
    @Option(name: .long, help: "Client certificate for mqtts://.") var cert: String?
    @Option(name: .long, help: "Client key for mqtts://.") var key: String?

    /// The profile these options name, for `party` (its account name) if given.
    func profile(party: String? = nil) throws -> BrokerProfile {
        let env = ProcessInfo.processInfo.environment
        var p: BrokerProfile
        if let path = network ?? env["EFSC_NETWORK"], !path.isEmpty {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw CLIError("--network \(path): no such profile or devnet directory") }
            if isDir.boolValue {
                let partyFile = party.map { "\(path)/parties/\($0).json" }
                if let f = partyFile, FileManager.default.fileExists(atPath: f) {
                    p = try BrokerProfile.load(f)
                } else if FileManager.default.fileExists(atPath: path + "/client.json") {
                    p = try BrokerProfile.load(path + "/client.json")
                } else {
                    throw CLIError("--network \(path): neither \(partyFile ?? "parties/<party>.json") nor client.json is there (is it a devnet directory?)")
                }
            } else {
                p = try BrokerProfile.load(path)
            }
        } else {
            p = BrokerProfile(url: env["EFSC_BROKER"] ?? "mqtt://127.0.0.1:1883")
        }
        if let broker { p.url = broker }
        if let username { p.username = username }
        if let pw = password ?? (p.password == nil ? env["EFSC_PASSWORD"] : nil) { p.password = pw }
        if let ca { p.caFile = ca }
        if let cert { p.certFile = cert }
        if let key { p.keyFile = key }
        return p
    }

    /// `party`: the account name of the party the command acts as (its
    /// profile is preferred in a devnet directory); `requireParty`: the
    /// command uses that party's channel topics, so another account will not do.
    /// Publishes a ride-through connection keeps while the broker is unreachable.
    static let rideThroughQueue = 1000

    func configuration(clientPrefix: String, party: String? = nil, requireParty: Bool = false) throws -> MQTTConfiguration {
        let p = try profile(party: party)
        if requireParty, let party, let u = p.username, u != party {
            throw CLIError("the profile's account '\(u)' is not party \(party): the broker would refuse its channel topics (add it with `efsc devnet add-party`)")
        }
        var c: MQTTConfiguration
        do { c = try p.configuration(fallbackClientID: "\(clientPrefix)-\(Hex.encode(Digest.randomBytes(4)))") } catch let e as BrokerProfileError { throw CLIError(e.description) }
        c.offlinePolicy = .failFast
        c.connectTimeout = 5
        return c
    }

    /// `rideThrough`: a long-running command that keeps going across broker
    /// restarts — publishes while disconnected are queued (up to
    /// `rideThroughQueue`) and sent on reconnect, which is tried every 1 s
    /// at first and at most every 5 s. Otherwise a publish without a
    /// connection fails at once.
    func connect(clientPrefix: String, party: String? = nil, requireParty: Bool = false, rideThrough: Bool = false) async throws -> MQTTClient {
        var c = try configuration(clientPrefix: clientPrefix, party: party, requireParty: requireParty)
        if rideThrough {
            c.offlinePolicy = .queue(limit: Self.rideThroughQueue)
            c.reconnectDelay = (1, 5)
        }
        let client = try MQTTClient(c)
        try await client.connect()
        return client
    }

    /// One request/response round trip on its own connection; the reply as JSON.
    func requestJSON(_ topic: String, payload: [UInt8], timeout: Double, clientPrefix: String, party: String? = nil) async throws -> JSON {
        let client = try await connect(clientPrefix: clientPrefix, party: party)
        let reply: MQTTMessage
        do {
            reply = try await client.request(topic, payload: payload, timeout: timeout)
        } catch {
            await client.disconnect()
            throw error
        }
        await client.disconnect()
        do { return try JSONParser.parse(reply.payload) } catch { throw CLIError("malformed reply on \(topic): \(error)") }
    }
}

/// `efsc bus`: watch the bus.
struct BusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bus", abstract: "Watch the MQTT bus.", subcommands: [Tap.self])

    struct Tap: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print every message on a topic filter (topic, QoS, retain, properties, decoded payload).",
            discussion: """
                Binary EFSC payloads (consensus messages, blocks, sync replies) are decoded to JSON by their
                schema in topics.md; JSON payloads are shown as JSON; anything else as base64.
                Exits after --count messages or --seconds, else runs until interrupted.
                """)
        @Argument(help: ArgumentHelp("Topic filter, e.g. '\(Topics.root)/#' or '\(Topics.statusAll("+"))'.")) var filter: String
        @OptionGroup var brokerOptions: BrokerOptions
        @Option(name: .long, help: "Stop after this many messages.") var count: Int?
        @Option(name: .long, help: "Stop after this many seconds.") var seconds: Double?
        @Option(name: .long, help: "Subscription QoS (0, 1 or 2; default 1).") var qos = 1
        @Flag(name: .long, help: "One JSON object per line.") var json = false

        func validate() throws {
            if let c = count, c < 1 { throw ValidationError("--count must be ≥ 1") }
            guard (0...2).contains(qos) else { throw ValidationError("--qos must be 0, 1 or 2") }
            guard TopicFilter.isValid(filter) else { throw ValidationError("'\(filter)' is not a valid MQTT topic filter") }
        }

        func run() async throws {
            let client = try await exitOnError(code: 1) { try await brokerOptions.connect(clientPrefix: "efsc-tap") }
            let stream = try await exitOnError(code: 1) { try await client.subscribe(filter, qos: QoS(rawValue: qos)!) }
            let deadline = seconds.map { DateTime.currentTime() + $0 }
            var seen = 0
            let timer = Task {
                if let s = seconds {
                    try? await Task.sleep(nanoseconds: UInt64(s * 1e9))
                    await client.disconnect()
                }
            }
            for await m in stream {
                Output.line(Self.render(m, json: json))
                seen += 1
                if let c = count, seen >= c { break }
                if let d = deadline, DateTime.currentTime() >= d { break }
            }
            timer.cancel()
            await client.disconnect()
        }

        static func render(_ m: MQTTMessage, json: Bool) -> String {
            var props = JSONObject()
            let p = m.properties
            if let v = p.responseTopic { props["responseTopic"] = .string(v) }
            if let v = p.correlationData { props["correlationData"] = .string(Hex.encode(v)) }
            if let v = p.messageExpiry { props["messageExpiry"] = .number(Double(v)) }
            if let v = p.contentType { props["contentType"] = .string(v) }
            if let v = p.payloadIsUTF8 { props["payloadFormatUTF8"] = .bool(v) }
            if !p.userProperties.isEmpty { props["userProperties"] = .array(p.userProperties.map { [$0.name: .string($0.value)] }) }
            let payload = PayloadDecoder.decode(topic: m.topic, payload: m.payload)
            if json {
                let o: JSON = [
                    "time": .string(DateTime.now()), "topic": .string(m.topic), "qos": .number(Double(m.qos.rawValue)),
                    "retain": .bool(m.retain), "properties": .object(props), "bytes": .number(Double(m.payload.count)), "payload": payload,
                ]
                return o.compactString()
            }
            return "\(DateTime.now()) \(m.topic) qos=\(m.qos.rawValue)\(m.retain ? " retained" : "") \(props.isEmpty ? "" : JSON.object(props).compactString() + " ")\(payload.compactString())"
        }
    }
}
