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
        let runner = try GroupRunner.offline(group: "transaction", dataDir: dir)
        var identity: UInt64 = 2
        runner.identityHeight = { identity }
        let ledger = runner.ledger
        let header = BlockHeader(
            group: "transaction", height: 1, parentHash: ledger.lastHash, stateRoot: ledger.stateRoot, transactionsRoot: Block.transactionsRoot([]),
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
