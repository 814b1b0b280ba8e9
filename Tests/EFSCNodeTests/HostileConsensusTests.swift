import EFSCBus
import EFSCCore
import EFSCLedger
import Foundation
import Testing

@testable import EFSCConsensus
@testable import EFSCNode

/// A node (a real group runner over RocksDB, no broker) facing a Byzantine
/// primary that holds only its own key: every block the ledger would refuse
/// is refused before a prepare, with `bad-proposal` counted; a valid one is
/// prepared and, with 2f+1 commits, committed; the overflowing new-view is
/// refused as out of range, and nothing is fatal.
@Suite struct HostileConsensusTests {
    final class Backup {
        let dir: String
        let keys = (0..<4).map { _ in Ed25519SecretKey() }
        let runner: GroupRunner
        var fatal: [String] = []

        /// Replica 1 of `group`; replica 0 is the primary of view 0.
        init(group: String = "identity") throws {
            dir = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-byz-\(UUID().uuidString.prefix(8))").path
            runner = try GroupRunner.offline(group: group, dataDir: dir, keys: keys, index: 1)
            runner.onFatal = { [unowned self] in self.fatal.append($0) }
        }

        deinit { try? FileManager.default.removeItem(atPath: dir) }

        func send(_ from: Int, _ m: PBFTMessage) {
            let sig = try! keys[from].sign(PBFTCodec.signingBytes(group: runner.group, sender: from, message: m))
            runner.receive(topic: Topics.pbft(runner.group, from: "node\(from + 1)"), payload: PBFTCodec.encode(group: runner.group, SignedMessage(sender: from, message: m, signature: sig)))
        }

        /// A block at height 1 on the genesis ledger, correct unless `edit` changes it.
        func block(txs: [[UInt8]] = [Array(#"{"op":"x"}"#.utf8)], _ edit: (inout BlockHeader) -> Void = { _ in }) -> [UInt8] {
            let l = runner.ledger
            var h = BlockHeader(
                group: runner.group, height: l.height + 1, parentHash: l.lastHash, stateRoot: l.stateRoot, transactionsRoot: Block.transactionsRoot(txs),
                proposer: 0, view: 0, timestamp: 1_700_000_000_000)
            edit(&h)
            return Block(header: h, transactions: txs).body
        }

        func propose(_ payload: [UInt8]) { send(0, .prePrepare(view: 0, seq: 1, digest: Digest.sha256(payload), payload: payload)) }
        var refused: [String: Int] { runner.refusals.byReason }
        var sent: Int { runner.q.sync { runner.consensusSent } }
    }

    @Test(arguments: ["wrong-parent", "wrong-state-root", "wrong-height", "wrong-proposer", "wrong-transactions-root", "identity-anchor", "too-large", "wrong-group"])
    func aBlockTheLedgerWouldRefuseIsNeverPrepared(fault: String) throws {
        let b = try Backup()
        let payload: [UInt8]
        switch fault {
        case "wrong-parent": payload = b.block { $0.parentHash = Digest.sha256([1]) }
        case "wrong-state-root": payload = b.block { $0.stateRoot = Digest.sha256([2]) }
        case "wrong-height": payload = b.block { $0.height = 2 }
        case "wrong-proposer": payload = b.block { $0.proposer = 3 }
        case "wrong-transactions-root": payload = b.block { $0.transactionsRoot = Digest.sha256([3]) }
        case "identity-anchor": payload = b.block { $0.anchor = .max }
        case "too-large": payload = b.block(txs: (0..<8).map { _ in Array(repeating: 0x61, count: 100_000) })
        default: payload = b.block { $0.group = "transaction" }
        }
        b.propose(payload)
        #expect(b.refused["bad-proposal"] == 1, "\(fault): \(b.refused)")
        #expect(b.sent == 0, "\(fault): a prepare was sent")
        #expect(b.fatal.isEmpty)
        #expect(b.runner.replica.durable.prepareVotes.isEmpty)
    }

    /// A valid block is prepared, and commits with 2f+1 commits: the ledger
    /// takes what the replica agreed to.
    @Test func aValidBlockIsPreparedAndCommitted() throws {
        let b = try Backup()
        let payload = b.block()
        let d = Digest.sha256(payload)
        b.propose(payload)
        #expect(b.refused.isEmpty, "\(b.refused)")
        #expect(b.sent == 1)  // its prepare
        b.send(2, .prepare(view: 0, seq: 1, digest: d))
        #expect(b.sent == 2)  // its commit
        b.send(0, .commit(view: 0, seq: 1, digest: d))
        b.send(2, .commit(view: 0, seq: 1, digest: d))
        #expect(b.runner.ledger.height == 1)
        #expect(b.fatal.isEmpty)
    }

    /// On the transaction group, an anchor above this node's identity height
    /// is waited for (within `anchorLead`), one far beyond or of 2⁶⁴−1 refused.
    @Test func anchorsAreBoundedByTheIdentityHeight() throws {
        let near = try Backup(group: "transaction")
        near.propose(near.block { $0.anchor = 3 })
        #expect(near.refused.isEmpty && near.sent == 0, "\(near.refused)")
        #expect(near.runner.replica.held.count == 1)
        for anchor in [WireLimits.anchorLead + 1, UInt64.max] {
            let far = try Backup(group: "transaction")
            far.propose(far.block { $0.anchor = anchor })
            #expect(far.refused["bad-proposal"] == 1, "\(anchor): \(far.refused)")
        }
    }

    /// The reported message — a new-view for 2⁶⁴−1 backed by three
    /// fabricated view-changes — and the same for a view the sender leads in
    /// range: refused, counted, the view unchanged, nothing fatal; a tick
    /// afterwards does not trap.
    @Test func theOverflowingNewViewIsRefused() throws {
        let b = try Backup()
        func vc(_ v: UInt64) -> PBFTMessage { .viewChange(newView: v, stableSeq: 0, stableDigest: PBFTReplica.genesisDigest, checkpointProof: [], prepared: []) }
        let top = UInt64.max - (UInt64.max % 4 + 4 - 3) % 4
        let fabricated = { (v: UInt64) in [0, 1, 2].map { SignedMessage(sender: $0, message: vc(v), signature: Array(repeating: 0, count: 64)) } }
        b.send(3, .newView(view: top, viewChanges: fabricated(top), prePrepares: []))
        b.send(3, .newView(view: 3, viewChanges: fabricated(3), prePrepares: []))
        #expect(b.refused["out-of-range"] == 1 && b.refused["bad-new-view"] == 1, "\(b.refused)")
        #expect(b.runner.replica.view == 0)
        b.runner.q.sync { b.runner.onTick() }
        #expect(b.fatal.isEmpty)
    }

    /// Every consensus refusal is counted under a reason of its own name.
    @Test func everyConsensusRefusalHasItsReason() {
        for r in PBFTRejection.allCases { #expect(Refusals.Reason(rawValue: r.rawValue) != nil, "\(r.rawValue)") }
    }
}
