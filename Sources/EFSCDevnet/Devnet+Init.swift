import EFSCBus
import EFSCCore
import EFSCIdentity
import Foundation

extension Devnet {
    /// What `efsc devnet init` creates.
    public struct Options: Sendable {
        public var nodes = 4
        public var groups = ["identity", "transaction"]
        public var network = "devnet"
        public var maxTransactionsPerBlock = 256
        public var minBlockIntervalMillis = 0
        /// Plain loopback listener; nil: a free port.
        public var brokerPort: Int?
        /// TLS listener; nil: a free port.
        public var brokerTLSPort: Int?
        /// Further TCC DIDs allowed to submit evidence.
        public var extraTCCs: [String] = []
        public var tccCount = 1
        /// Broker URL written into the node and TCC configurations (nil:
        /// the plain loopback listener). Not on loopback: must be mqtts://.
        public var brokerURL: String?
        /// Host names or addresses the broker's certificate is valid for,
        /// besides localhost and 127.0.0.1 (Compose: `broker`).
        public var brokerHosts: [String] = []
        /// An anonymous loopback broker with no accounts and no TLS.
        public var insecure = false
        public init() {}
    }

    /// Accounts every secure devnet has besides its nodes and TCCs.
    public static let reservedAccounts = ["admin", "operator", "client"]

    /// Creates a devnet in `dir`: node keys, genesis, configurations and,
    /// unless insecure, the network CA, the broker's server certificate, the
    /// dynamic-security accounts and roles (a temporary broker on the
    /// devnet's ports applies them), and each component's credentials
    /// (files of mode 600).
    @discardableResult
    public static func create(dir: String, options o: Options) async throws -> Devnet {
        guard o.nodes >= 4, (o.nodes - 1) % 3 == 0, o.nodes <= 100 else { throw DevnetError(.invalid, "--nodes must be 3f+1 (4, 7, 10, …, ≤ 100)") }
        guard (1...16).contains(o.tccCount) else { throw DevnetError(.invalid, "--tcc-count must be 1...16") }
        guard !o.groups.isEmpty, o.groups.allSatisfy({ Topics.Group(rawValue: $0) != nil }) else {
            throw DevnetError(.invalid, "--groups must be among identity,transaction")
        }
        if FileManager.default.fileExists(atPath: dir + "/network.json") { throw DevnetError(.directory, "\(dir) already holds a devnet") }
        // Keys, passwords and certificates are born private (openssl included).
        let oldMask = umask(0o077)
        defer { umask(oldMask) }
        try FileManager.default.createDirectory(atPath: dir + "/broker", withIntermediateDirectories: true)
        // Ports are chosen now and bound at `devnet up`: outside the kernel's
        // ephemeral range, so no outgoing connection takes one meanwhile.
        var taken: Set<Int> = []
        func stable() throws -> Int {
            let p = try BrokerProcess.stablePort(excluding: taken)
            taken.insert(p)
            return p
        }
        let port = try o.brokerPort ?? stable()
        taken.insert(port)
        let tlsPort = o.insecure ? nil : try o.brokerTLSPort ?? stable()
        let componentURL = o.brokerURL ?? "mqtt://127.0.0.1:\(port)"
        let parsed: MQTTConfiguration
        do { parsed = try MQTTConfiguration(url: componentURL, clientID: "check") } catch { throw DevnetError(.invalid, "--broker-url: \(error)") }
        if componentURL.hasPrefix("mqtt://") && !o.insecure && !BrokerProfile.isLoopback(parsed.host) {
            throw DevnetError(.invalid, "--broker-url \(componentURL): plain MQTT would leave the host unencrypted; use the TLS listener (mqtts://\(parsed.host):PORT) or --insecure")
        }
        let dirPath = URL(fileURLWithPath: dir).standardizedFileURL.path
        let brokerDir = dirPath + "/broker"

        // Broker accounts: password and certificate per component.
        var accounts: [(name: String, kind: BrokerRoles.Kind, profile: BrokerProfile)] = []
        let ca = o.insecure ? nil : try NetworkCA.create(in: brokerDir, serverNames: o.brokerHosts)
        func account(_ name: String, _ kind: BrokerRoles.Kind, url: String, files prefix: String) throws -> BrokerProfile {
            guard let ca else {
                var p = BrokerProfile(url: "mqtt://127.0.0.1:\(port)")
                p.insecure = true
                return p
            }
            try ca.issueClient(name, certificate: prefix + ".crt", key: prefix + ".key")
            let p = BrokerProfile(
                url: url, username: name, password: Hex.encode(Digest.randomBytes(18)), caFile: ca.certificate, certFile: prefix + ".crt", keyFile: prefix + ".key")
            accounts.append((name, kind, p))
            return p
        }
        let admin = try account("admin", .observer, url: componentURL, files: brokerDir + "/admin")
        let tlsURL = tlsPort.map { "mqtts://127.0.0.1:\($0)" } ?? "mqtt://127.0.0.1:\(port)"

        let keys = (0..<o.nodes).map { _ in Ed25519SecretKey() }
        let members: [JSON] = keys.enumerated().map { ["id": .string("node\($0.offset + 1)"), "publicKeyMultibase": .string($0.element.publicKey.multibase)] }
        // TCC identities are generated with the network (their DIDs are in genesis);
        // TCC k is attached to node k (round robin) and all share the control topic.
        var tccList: [JSON] = []
        for t in 1...o.tccCount {
            let tccKey = Ed25519SecretKey()
            let (tccDID, _, tccOp) = try EFSCDID.createOperation(network: o.network, key: tccKey)
            let tccIdentity: JSON = [
                "did": .string(tccDID), "verificationMethod": .string("\(tccDID)#key-1"), "secretKeyMultibase": .string(tccKey.multibase),
                "operation": .object(tccOp),
            ]
            try write("\(dir)/tcc\(t).json", tccIdentity, private: true)
            tccList.append(.string(tccDID))
            try FileManager.default.createDirectory(atPath: "\(dir)/tcc\(t)/data", withIntermediateDirectories: true)
            let auth = try account("tcc\(t)", .tcc, url: componentURL, files: "\(dirPath)/tcc\(t)/client")
            let tccConfig: JSON = [
                "name": .string("tcc\(t)"), "broker": .string(componentURL), "brokerAuth": auth.authJSON, "dataDir": .string("\(dirPath)/tcc\(t)/data"),
                "identity": .string("\(dirPath)/tcc\(t).json"), "node": .string("node\((t - 1) % o.nodes + 1)"),
                "metricsPort": .number(Double(try stable())),
                "members": .array(keys.map { .object(["publicKeyMultibase": .string($0.publicKey.multibase)]) }),
            ]
            try write("\(dir)/tcc\(t)/config.json", tccConfig, private: true)
        }
        tccList += o.extraTCCs.map { .string($0) }
        for (i, k) in keys.enumerated() {
            let id = "node\(i + 1)"
            try FileManager.default.createDirectory(atPath: "\(dir)/\(id)/data", withIntermediateDirectories: true)
            let auth = try account(id, .node, url: componentURL, files: "\(dirPath)/\(id)/client")
            let cfg: JSON = [
                "network": .string(o.network), "nodeId": .string(id), "index": .number(Double(i)), "secretKeyMultibase": .string(k.multibase),
                "members": .array(members), "groups": .array(o.groups.map { .string($0) }), "broker": .string(componentURL), "brokerAuth": auth.authJSON,
                "dataDir": .string("\(dirPath)/\(id)/data"), "tccs": .array(tccList), "maxTransactionsPerBlock": .number(Double(o.maxTransactionsPerBlock)),
                "minBlockIntervalMillis": .number(Double(o.minBlockIntervalMillis)),
                "metricsPort": .number(Double(try stable())),
            ]
            try write("\(dir)/\(id)/config.json", cfg, private: true)
        }
        let op = try account("operator", .observer, url: componentURL, files: brokerDir + "/operator")
        let client = try account("client", .observer, url: tlsURL, files: dirPath + "/client")
        var net: JSONObject = [
            "network": .string(o.network), "brokerPort": .number(Double(port)), "groups": .array(o.groups.map { .string($0) }), "nodes": .array(members),
            "maxTransactionsPerBlock": .number(Double(o.maxTransactionsPerBlock)), "tccs": .array(tccList),
            "security": .string(o.insecure ? "insecure" : "tls"), "componentBroker": .string(componentURL),
        ]
        if let tlsPort { net["brokerTLSPort"] = .number(Double(tlsPort)) }
        try write(dir + "/network.json", .object(net), private: false)
        try write(dirPath + "/client.json", client.json, private: true)
        try write(brokerDir + "/operator.json", op.json, private: true)
        guard ca != nil else { return try Devnet(dir: dir) }
        try write(brokerDir + "/admin.json", admin.json, private: true)

        // The accounts, applied by a temporary broker on the devnet's own ports.
        try DynamicSecurity.initialize(file: brokerDir + "/dynamic-security.json", admin: "admin", password: admin.password ?? "")
        let devnet = try Devnet(dir: dir)
        try await devnet.withTemporaryBroker { broker in
            try await Self.administer(url: broker.url, admin: admin) { ds in
                try await ds.installRoles()
                for a in accounts where a.name != "admin" { try await ds.addAccount(a.name, password: a.profile.password ?? "", kind: a.kind) }
            }
        }
        return devnet
    }

    /// Runs `body` with a broker of this devnet that is stopped afterwards.
    func withTemporaryBroker<T: Sendable>(_ body: (BrokerProcess) async throws -> T) async throws -> T {
        let b = try brokerProcess(dieWithParent: true)
        try b.start()
        defer { b.stop() }
        return try await body(b)
    }

    /// Connects as the dynamic-security admin at `url` and runs `body`.
    static func administer<T: Sendable>(url: String, admin: BrokerProfile, _ body: (DynamicSecurity) async throws -> T) async throws -> T {
        var p = admin
        p.url = url
        var c = try p.configuration(fallbackClientID: "admin")
        c.offlinePolicy = .failFast
        c.connectTimeout = 5
        let client = try MQTTClient(c)
        try await client.connect()
        do {
            let r = try await body(DynamicSecurity(admin: client))
            await client.disconnect()
            return r
        } catch {
            await client.disconnect()
            throw error
        }
    }

    /// Runs `body` as the admin: on the running broker, or on a temporary one
    /// if the devnet is down (the plugin saves every change to its file).
    public func administer<T: Sendable>(_ body: (DynamicSecurity) async throws -> T) async throws -> T {
        guard isSecure else { throw DevnetError(.invalid, "\(dir) is an --insecure devnet: its broker has no accounts") }
        let admin = try BrokerProfile.load(adminProfilePath)
        // A broker elsewhere (Compose: mqtts://broker:8883) is administered
        // where it runs; so is this devnet's own while it is up.
        let remote = (try? MQTTConfiguration(url: admin.url, clientID: "x")).map { !BrokerProfile.isLoopback($0.host) } ?? false
        if remote || brokerPID != nil { return try await Self.administer(url: admin.url, admin: admin, body) }
        return try await withTemporaryBroker { b in try await Self.administer(url: b.url, admin: admin, body) }
    }

    static func write(_ path: String, _ json: JSON, private: Bool) throws {
        do { try (json.prettyString() + "\n").write(toFile: path, atomically: true, encoding: .utf8) } catch {
            throw DevnetError(.directory, "\(path): cannot write: \(error.localizedDescription)")
        }
        if `private` { chmod(path, 0o600) }
    }
}
