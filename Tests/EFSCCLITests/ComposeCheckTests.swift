import EFSCBus
import EFSCCore
import EFSCDevnet
import Foundation
import Testing
import Yams

/// compose/ cannot run here (no Docker engine), so it is checked without
/// one: the compose file parses; every service's command, config file and
/// mounted path exists in the layout the Dockerfile and the init service
/// build (the init command is run for real into a directory standing for
/// the /net volume); only the broker's TLS port is published; and the broker
/// configuration Compose mounts starts with the real mosquitto and enforces
/// the model (no anonymous clients, TLS with the network's certificates).
extension NetworkSuites {
@Suite(.serialized) struct ComposeCheckTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    @Test func composeFileImageLayoutAndBrokerConfig() async throws {
        let text = try String(contentsOfFile: Self.repo + "/compose/docker-compose.yml", encoding: .utf8)
        let doc = try #require(try Yams.load(yaml: text) as? [String: Any])
        let services = try #require(doc["services"] as? [String: Any])
        #expect(Set(services.keys) == ["broker", "init", "node1", "node2", "node3", "node4", "tcc1"])
        let dockerfile = try String(contentsOfFile: Self.repo + "/compose/Dockerfile", encoding: .utf8)
        #expect(dockerfile.contains("COPY --from=build /src/.build/release/efsc /usr/local/bin/efsc"))
        #expect(dockerfile.contains("ENTRYPOINT [\"efsc\"]"))
        for pkg in ["mosquitto", "openssl"] { #expect(dockerfile.contains(" \(pkg)"), "the image lacks \(pkg) (devnet init needs it)") }
        // The image's /usr/local/share/efsc/broker is the repository's broker/.
        #expect(dockerfile.contains("COPY broker /usr/local/share/efsc/broker"))
        #expect(FileManager.default.fileExists(atPath: Self.repo + "/broker/devnet.conf"))

        // The init service, run for real into a stand-in for the /net volume.
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-compose-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: work) }
        let netDir = work + "/net"
        let initService = try #require(services["init"] as? [String: Any])
        let initCommand = try #require((initService["command"] as? [String])?.first)
        let efscPart = try #require(initCommand.components(separatedBy: "(efsc ").last?.components(separatedBy: " && ").first)
        let args = efscPart.split(whereSeparator: \.isWhitespace).map { $0 == "/net" ? netDir : String($0) }
        #expect(args.starts(with: ["devnet", "init"]) && args.contains("mqtts://broker:8883"), "\(args)")
        let r = try DevnetIntegrationTests().efsc(args)
        try #require(r.code == 0, "\(args): \(r.out)")

        // Every efsc service: built from compose/Dockerfile, a command the CLI has, its config in /net.
        for name in ["node1", "node2", "node3", "node4", "tcc1"] {
            let s = try #require(services[name] as? [String: Any])
            let build = try #require(s["build"] as? [String: Any], "\(name) has no build")
            #expect(build["dockerfile"] as? String == "compose/Dockerfile")
            #expect((s["volumes"] as? [String])?.contains("net:/net") == true, "\(name) does not mount the net volume")
            #expect(s["ports"] == nil, "\(name) publishes ports")
            let cmd = try #require(s["command"] as? [String])
            #expect(cmd.count == 3 && ["node", "tcc"].contains(cmd[0]) && cmd[1] == "--config", "\(name): \(cmd)")
            let config = cmd[2].replacingOccurrences(of: "/net/", with: netDir + "/")
            let j = try JSONParser.parse(try String(contentsOfFile: config, encoding: .utf8))
            #expect(j["broker"]?.stringValue == "mqtts://broker:8883", "\(name)")
            for k in ["ca", "cert", "key"] { #expect(FileManager.default.fileExists(atPath: j["brokerAuth"]?[k]?.stringValue ?? "-"), "\(name): \(k)") }
            #expect(j["brokerAuth"]?["username"]?.stringValue == name)
            // The CLI accepts the configuration (parses, then fails only to reach `broker`).
            let help = try DevnetIntegrationTests().efsc([cmd[0], "--help"])
            #expect(help.code == 0 && help.out.contains("--config"), "\(name): efsc \(cmd[0]) --help")
        }

        // The broker: only its TLS port, published on the host's loopback; its config and the files it names exist.
        let broker = try #require(services["broker"] as? [String: Any])
        #expect((broker["ports"] as? [String]) == ["127.0.0.1:8883:8883"])
        let mounts = try #require(broker["volumes"] as? [String])
        #expect(mounts.contains("./mosquitto.conf:/mosquitto/config/mosquitto.conf:ro") && mounts.contains("net:/net"), "\(mounts)")
        let conf = try String(contentsOfFile: Self.repo + "/compose/mosquitto.conf", encoding: .utf8)
        #expect(conf.contains("allow_anonymous false") && conf.contains("require_certificate true"))
        let listeners = conf.split(separator: "\n").filter { $0.hasPrefix("listener ") }
        #expect(listeners == ["listener 8883 0.0.0.0"], "\(listeners)")
        for line in conf.split(separator: "\n") {
            for word in line.split(separator: " ") where word.hasPrefix("/net/") {
                #expect(FileManager.default.fileExists(atPath: word.replacingOccurrences(of: "/net/", with: netDir + "/")), "\(word) is not made by init")
            }
        }

        // That config, with the image's paths mapped here, starts the real mosquitto and enforces the model.
        let plugin = try #require(DynamicSecurity.pluginPath(), "mosquitto_dynamic_security.so is not installed")
        let local = conf.replacingOccurrences(of: "/usr/lib/mosquitto_dynamic_security.so", with: plugin)
            .replacingOccurrences(of: "/net/", with: netDir + "/").replacingOccurrences(of: "/mosquitto/data/", with: work + "/data/")
        try local.write(toFile: work + "/compose-local.conf", atomically: true, encoding: .utf8)
        let b = try BrokerProcess(template: work + "/compose-local.conf", dir: work + "/broker-run")
        try b.start()
        defer { b.stop() }
        let tls = "mqtts://127.0.0.1:\(b.port)"
        var anon = try MQTTConfiguration(url: tls, clientID: "anon")
        anon.tls = .init(caFile: netDir + "/broker/ca.crt")
        anon.connectTimeout = 5
        await #expect(throws: MQTTError.self, "anonymous over TLS") { try await MQTTClient(anon).connect() }
        let node1 = try JSONParser.parse(try String(contentsOfFile: netDir + "/node1/config.json", encoding: .utf8))
        var c = try BrokerProfile(json: try #require(node1["brokerAuth"]), url: tls).configuration(fallbackClientID: "x")
        c.connectTimeout = 5
        let client = try MQTTClient(c)
        try await client.connect()
        try await client.publish(Topics.tccControl("transaction"), payload: Array("{}".utf8), qos: .atLeastOnce)
        await client.disconnect()
    }
}
}
