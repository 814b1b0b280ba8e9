import EFSCBus
import EFSCCore
import EFSCLedger
import Foundation
import Testing

@testable import EFSCConsensus
@testable import EFSCNode

/// A transaction block names the identity height it was executed against;
/// a node whose identity group is behind keeps it until it catches up.
@Suite struct DeferralTests {
    @Test func aBlockWaitsForItsIdentityAnchor() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-defer-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let keys = (0..<4).map { _ in Ed25519SecretKey() }
        let cfg = try NodeConfig(json: [
            "network": "devnet", "nodeId": "node1", "index": 0, "secretKeyMultibase": .string(keys[0].multibase),
            "members": .array(keys.enumerated().map { ["id": .string("node\($0.offset + 1)"), "publicKeyMultibase": .string($0.element.publicKey.multibase)] }),
            "broker": "mqtt://127.0.0.1:1", "dataDir": .string(dir),
        ])
        var mc = try MQTTConfiguration(url: cfg.broker, clientID: "defer-test")
        mc.offlinePolicy = .queue(limit: 100)
        let runner = try GroupRunner(
            group: "transaction", config: cfg, client: try MQTTClient(mc), metrics: NodeMetrics(), resolveDID: { _ in nil }, resolveTemplate: { _, _ in nil },
            log: { _ in })
        var identity: UInt64 = 2
        runner.identityHeight = { identity }
        let ledger = runner.ledger
        let header = BlockHeader(
            group: "transaction", height: 1, parentHash: ledger.lastHash, stateRoot: ledger.nextStateRoot([]), transactionsRoot: Block.transactionsRoot([]),
            proposer: 1, view: 0, timestamp: 1, anchor: 5)
        let body = Block(header: header, transactions: []).body
        runner.q.sync {
            runner.commit(CommittedBlock(seq: 1, view: 0, digest: Digest.sha256(body), payload: body, certificate: []))
        }
        #expect(ledger.height == 0, "identity is at 2, the block needs 5: it waits")
        #expect(runner.q.sync { runner.deferred.count } == 1)
        identity = 5
        runner.q.sync { runner.drainDeferred() }
        #expect(ledger.height == 1 && ledger.lastHash == Digest.sha256(body))
        #expect(runner.q.sync { runner.executionAnchor } == 5)
    }
}
