import EFSCBus
import EFSCChannel
import EFSCCore

/// `efsc tcc --config FILE`: a JSON object. Required: `broker` (mqtt URL),
/// `dataDir`, and the TCC identity (`did`, `secretKeyMultibase`, optional
/// `verificationMethod` and `operation` for registration) or `identity`, a
/// path to such a file. Optional, with defaults: `name` (client id and
/// status topic name; the DID's id), `node` (the chain node it is attached
/// to, whose committed blocks it follows; default any node), `shareGroup`
/// ("tcc"), `workers` (2), `challengeSeconds` (10), `evidenceIntervalMillis`
/// (200), `evidenceBatchMax` (1024), `poolHigh` (2000), `poolLow` (200),
/// `statusIntervalMillis` (1000), `brokerAuth` (the TCC's broker account:
/// `username` — its `name` —, `password`, `ca`, `cert`, `key`; see
/// `BrokerProfile`), `members` (the network's node keys from
/// genesis, `publicKeyMultibase` in replica order: blocks are acted on only
/// with a commit certificate of 2f+1 of them; absent: not checked), `metricsPort` (Prometheus `GET /metrics` on
/// 127.0.0.1; absent: off; 0 picks a free port).
public struct TCCConfig: Sendable {
    public var broker: String
    /// `broker` with the TCC's account (`brokerAuth`).
    public var brokerProfile: BrokerProfile
    public var dataDir: String
    public var identity: PartyIdentity
    public var name: String
    public var node: String?
    public var shareGroup = "tcc"
    public var workers = 2
    public var challengeSeconds = 10.0
    public var evidenceIntervalMillis = 200
    public var evidenceBatchMax = 1024
    public var poolHigh = 2000
    public var poolLow = 200
    public var statusIntervalMillis = 1000
    public var metricsPort: Int?
    public var members: [Ed25519PublicKey] = []

    public init(broker: String, dataDir: String, identity: PartyIdentity, name: String? = nil) {
        self.broker = broker
        self.brokerProfile = BrokerProfile(url: broker)
        self.dataDir = dataDir
        self.identity = identity
        self.name = name ?? "tcc-" + PartyName.of(identity.did)
    }

    public init(json j: JSON, identity: PartyIdentity) throws(ChainError) {
        guard let b = j["broker"]?.stringValue else { throw ChainError("TCC config: broker is missing") }
        guard let d = j["dataDir"]?.stringValue else { throw ChainError("TCC config: dataDir is missing") }
        self.init(broker: b, dataDir: d, identity: identity, name: j["name"]?.stringValue)
        node = j["node"]?.stringValue
        do { brokerProfile = try BrokerProfile(json: j["brokerAuth"] ?? .object([:]), url: b) } catch { throw ChainError("TCC config: brokerAuth: \(error.message)") }
        if let v = j["shareGroup"]?.stringValue { shareGroup = v }
        if let v = j["workers"]?.intValue { workers = v }
        if let v = j["challengeSeconds"]?.doubleValue { challengeSeconds = v }
        if let v = j["evidenceIntervalMillis"]?.intValue { evidenceIntervalMillis = v }
        if let v = j["evidenceBatchMax"]?.intValue { evidenceBatchMax = v }
        if let v = j["poolHigh"]?.intValue { poolHigh = v }
        if let v = j["poolLow"]?.intValue { poolLow = v }
        if let v = j["statusIntervalMillis"]?.intValue { statusIntervalMillis = v }
        if let ms = j["members"]?.arrayValue {
            do { members = try ms.map { try Ed25519PublicKey(multibase: $0["publicKeyMultibase"]?.stringValue ?? $0.stringValue ?? "") } } catch {
                throw ChainError("TCC config: members must list the nodes' publicKeyMultibase keys: \(error)")
            }
            guard members.count >= 4, (members.count - 1) % 3 == 0 else { throw ChainError("TCC config: members must be n = 3f+1 ≥ 4 node keys") }
        }
        if let v = j["metricsPort"]?.intValue {
            guard (0...65535).contains(v) else { throw ChainError("TCC config: metricsPort must be 0...65535") }
            metricsPort = v
        }
        guard (1...64).contains(workers) else { throw ChainError("TCC config: workers must be 1...64") }
        guard challengeSeconds > 0, challengeSeconds <= 300 else { throw ChainError("TCC config: challengeSeconds must be in (0, 300]") }
        guard (1...4096).contains(evidenceBatchMax) else { throw ChainError("TCC config: evidenceBatchMax must be 1...4096") }
        guard evidenceIntervalMillis >= 10, statusIntervalMillis >= 50 else { throw ChainError("TCC config: intervals too small") }
        guard poolLow < poolHigh else { throw ChainError("TCC config: poolLow must be below poolHigh") }
    }
}
