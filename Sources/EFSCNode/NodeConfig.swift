import EFSCBus
import EFSCCore

/// Why a node configuration is unusable.
public struct ConfigError: Error, CustomStringConvertible {
    public let message: String
    public init(_ m: String) { message = m }
    public var description: String { "node config: \(message)" }
}

/// A chain node's configuration file (JSON), as `efsc devnet init` writes it.
///
/// Keys: `network`, `nodeId`, `index` (replica index in `members`),
/// `secretKeyMultibase` (node key), `members` ([{id, publicKeyMultibase}]),
/// `groups`, `broker` (URL), `brokerAuth` (the node's broker account:
/// `username`, `password`, `ca`, `cert`, `key`, as `BrokerProfile` reads
/// them; absent on an `--insecure` network), `dataDir`, `tccs` (TCC DIDs), and limits
/// `maxTransactionsPerBlock` (M, default 256), `minBlockIntervalMillis`
/// (default 0), `poolLimit` (default 200000 transactions), `poolByteLimit`
/// (default 256 MiB of canonical transaction bytes), `poolPerSender`
/// (default 10000 transactions of one sender), `tickMillis` (default 20),
/// `viewChangeTimeoutTicks` (default 100), `checkpointInterval` (default 64),
/// `metricsPort` (Prometheus `GET /metrics` on 127.0.0.1; absent: off).
public struct NodeConfig: Sendable {
    public struct Member: Sendable {
        public let id: String
        public let publicKey: Ed25519PublicKey
    }

    public var network: String
    public var nodeId: String
    public var index: Int
    public var secretKey: Ed25519SecretKey
    public var members: [Member]
    public var groups: [String]
    public var broker: String
    /// `broker` with the node's account (`brokerAuth`).
    public var brokerProfile: BrokerProfile
    public var dataDir: String
    public var tccs: [String]
    public var maxTransactionsPerBlock = 256
    public var minBlockIntervalMillis = 0
    public var poolLimit = 200_000
    public var poolByteLimit = 256 << 20
    public var poolPerSender = 10_000
    public var tickMillis = 20
    public var viewChangeTimeoutTicks = 100
    public var checkpointInterval = 64
    /// Loopback port of the Prometheus endpoint (`GET /metrics`); nil disables it, 0 picks a free port.
    public var metricsPort: Int? = nil

    public init(json: JSON) throws {
        func str(_ k: String) throws -> String {
            guard let v = json[k]?.stringValue, !v.isEmpty else { throw ConfigError("'\(k)' is missing") }
            return v
        }
        network = try str("network")
        nodeId = try str("nodeId")
        guard let i = json["index"]?.intValue else { throw ConfigError("'index' is missing") }
        index = i
        do { secretKey = try Ed25519SecretKey(multibase: try str("secretKeyMultibase")) } catch { throw ConfigError("secretKeyMultibase: \(error)") }
        guard let ms = json["members"]?.arrayValue, ms.count >= 4, ms.count <= WireLimits.maxReplicas, (ms.count - 1) % 3 == 0 else {
            throw ConfigError("'members' must list n = 3f+1 nodes, 4 ≤ n ≤ \(WireLimits.maxReplicas)")
        }
        members = try ms.map { m in
            guard let id = m["id"]?.stringValue, let pk = m["publicKeyMultibase"]?.stringValue else { throw ConfigError("each member needs id and publicKeyMultibase") }
            do { return Member(id: id, publicKey: try Ed25519PublicKey(multibase: pk)) } catch { throw ConfigError("member \(id): \(error)") }
        }
        guard index >= 0, index < members.count, members[index].id == nodeId, members[index].publicKey == secretKey.publicKey else {
            throw ConfigError("nodeId/index/secret key do not match the members list")
        }
        groups = json["groups"]?.arrayValue?.compactMap(\.stringValue) ?? ["identity", "transaction"]
        broker = try str("broker")
        do { brokerProfile = try BrokerProfile(json: json["brokerAuth"] ?? .object([:]), url: broker) } catch { throw ConfigError("brokerAuth: \(error.message)") }
        dataDir = try str("dataDir")
        tccs = json["tccs"]?.arrayValue?.compactMap(\.stringValue) ?? []
        if let v = json["maxTransactionsPerBlock"]?.intValue { maxTransactionsPerBlock = v }
        if let v = json["minBlockIntervalMillis"]?.intValue { minBlockIntervalMillis = v }
        if let v = json["poolLimit"]?.intValue { poolLimit = v }
        if let v = json["poolByteLimit"]?.intValue { poolByteLimit = v }
        if let v = json["poolPerSender"]?.intValue { poolPerSender = v }
        guard poolLimit >= 1, poolByteLimit >= WireLimits.transactionBytes, poolPerSender >= 1 else {
            throw ConfigError("poolLimit and poolPerSender must be ≥ 1, poolByteLimit ≥ \(WireLimits.transactionBytes)")
        }
        if let v = json["tickMillis"]?.intValue { tickMillis = v }
        if let v = json["viewChangeTimeoutTicks"]?.intValue { viewChangeTimeoutTicks = v }
        if let v = json["checkpointInterval"]?.intValue { checkpointInterval = v }
        metricsPort = json["metricsPort"]?.intValue
        guard (1...100_000).contains(maxTransactionsPerBlock) else { throw ConfigError("maxTransactionsPerBlock must be 1...100000") }
        guard (1...10_000).contains(tickMillis) else { throw ConfigError("tickMillis must be 1...10000") }
    }
}
