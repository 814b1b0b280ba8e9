import EFSCBus
import EFSCConsensus
import EFSCCore
import EFSCLedger
import EFSCNode
import Foundation

/// A Byzantine node on a real network: it takes one node's configuration
/// (its real key and broker address), listens to the consensus traffic of
/// every group, and every `interval` publishes, as that node, the messages
/// of each chosen attack (`PBFTAdversary`). It runs no consensus of its own.
/// For chaos drills and the integration test that replaces one node with it:
/// the honest nodes must stay up, keep committing and agree.
public final class ByzantineNode: @unchecked Sendable {
    public struct Report: Sendable {
        /// Messages published per attack.
        public var sent: [PBFTAttack: Int] = [:]
        /// Honest consensus messages observed.
        public var observed = 0
    }

    let config: NodeConfig
    let attacks: [PBFTAttack]
    let client: MQTTClient
    let groups = ["identity", "transaction"]
    private let lock = Lock()
    private var adversaries: [String: PBFTAdversary] = [:]
    /// Block hashes honest replicas committed, per group and height (from their commits).
    private var committed: [String: [UInt64: [UInt8]]] = [:]
    private var report = Report()
    private var rng: SplitMix64

    public init(config: NodeConfig, attacks: [PBFTAttack] = PBFTAttack.allCases, seed: UInt64 = 1) throws {
        self.config = config
        self.attacks = attacks
        // The node's own account (the honest process is stopped): the broker
        // lets it write only what a node may.
        var mc = try config.brokerProfile.configuration(fallbackClientID: "\(config.nodeId)-byzantine")
        mc.offlinePolicy = .queue(limit: 10_000)
        client = try MQTTClient(mc)
        rng = SplitMix64(seed: seed)
        for g in groups {
            var c = PBFTConfig(group: g, n: config.members.count)
            c.checkpointInterval = UInt64(config.checkpointInterval)
            adversaries[g] = PBFTAdversary(
                config: c, me: config.index,
                authenticator: Ed25519Authenticator(secret: config.secretKey, members: config.members.map(\.publicKey)))
        }
    }

    /// Runs for `seconds`, attacking every `interval` seconds; returns what it did.
    public func run(seconds: Double, interval: Double = 0.25) async throws -> Report {
        try await client.connect()
        for g in groups {
            _ = try await client.subscribe(Topics.pbftAll(g), qos: .atMostOnce, noLocal: true) { [weak self] m in self?.observe(g, m.payload) }
        }
        let end = DateTime.currentTime() + seconds
        while DateTime.currentTime() < end {
            for g in groups { round(g) }
            try await Task.sleep(nanoseconds: UInt64(interval * 1e9))
        }
        await client.disconnect()
        return lock.withLock { report }
    }

    func observe(_ group: String, _ payload: [UInt8]) {
        guard let (g, m) = try? PBFTCodec.decode(payload), g == group, m.sender != config.index else { return }
        lock.withLock {
            report.observed += 1
            adversaries[group]?.observe(m)
            if case .commit(_, let s, let d) = m.message { committed[group, default: [:]][s] = d }
        }
    }

    /// One round of every attack on one group.
    func round(_ group: String) {
        let msgs: [(PBFTAttack, SignedMessage)] = lock.withLock {
            guard let adv = adversaries[group] else { return [] }
            var out: [(PBFTAttack, SignedMessage)] = []
            for a in attacks {
                let list = adv.craft(a, rng: &rng) { fault, seq, view in self.faultyBlock(group, fault, seq, view) }
                out += list.map { (a, $0) }
            }
            return out
        }
        for (a, m) in msgs {
            try? client.publishNow(Topics.pbft(group, from: config.nodeId), payload: PBFTCodec.encode(group: group, m))
            lock.withLock { report.sent[a, default: 0] += 1 }
        }
    }

    /// A block that extends what the honest replicas committed but is wrong
    /// in one way (called with the lock held).
    func faultyBlock(_ group: String, _ fault: BlockFault, _ seq: UInt64, _ view: UInt64) -> [UInt8] {
        let parent = committed[group]?[seq &- 1] ?? [UInt8](repeating: 0, count: 32)
        let txs = [Array(#"{"op":"byzantine"}"#.utf8)]
        var h = BlockHeader(
            group: group, height: seq, parentHash: parent, stateRoot: Digest.sha256(Array("unknown state".utf8)),
            transactionsRoot: Block.transactionsRoot(txs), proposer: config.index, view: view, timestamp: UInt64(DateTime.currentTime() * 1000),
            anchor: 0)
        switch fault {
        case .wrongParent: h.parentHash = Digest.sha256(Array("no such parent".utf8))
        case .wrongStateRoot: break
        case .wrongHeight: h.height = seq &+ 1
        case .farAnchor: h.anchor = group == "identity" ? 1 : WireLimits.anchorLead * 2
        case .maxAnchor: h.anchor = .max
        }
        return Block(header: h, transactions: txs).body
    }
}
