import EFSCConsensus
import EFSCCore
import EFSCLedger
import Foundation
import Testing

@testable import EFSCNode

/// The stored consensus state carries no blocks: committed ones come back
/// from the ledger, uncommitted ones are stored once beside it, and both
/// return byte for byte after a restart.
@Suite struct DurableStateTests {
    func cert(_ seq: UInt64, _ payload: [UInt8]) -> PreparedCertificate {
        let pp = SignedMessage(
            sender: 0, message: .prePrepare(view: 0, seq: seq, digest: Digest.sha256(payload), payload: payload), signature: Array(repeating: 7, count: 64))
        return PreparedCertificate(
            prePrepare: pp,
            prepares: [SignedMessage(sender: 1, message: .prepare(view: 0, seq: seq, digest: Digest.sha256(payload)), signature: Array(repeating: 1, count: 64))])
    }

    func block(_ ledger: Ledger, _ height: UInt64) -> Block {
        let txs = [Array(#"{"op":"x\#(height)"}"#.utf8)]
        let header = BlockHeader(
            group: "transaction", height: height, parentHash: ledger.lastHash, stateRoot: ledger.stateRoot,
            transactionsRoot: Block.transactionsRoot(txs), proposer: 0, view: 0, timestamp: 1)
        return Block(header: header, transactions: txs)
    }

    @Test func storedStateCarriesNoBlocksAndRestoresThem() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-durable-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let b1: Block
        let pending = Array("block 2, not yet in the ledger".utf8)
        var d = PBFTDurableState()
        do {
            let ledger = try Ledger(path: dir, group: "transaction")
            b1 = block(ledger, 1)
            try ledger.commit(b1, writes: [])
            let store = ConsensusStore(ledger: ledger)
            d.lastExec = 1
            d.prepared[1] = cert(1, b1.body)
            d.prepared[2] = cert(2, pending)
            try store.save(d)
            // A later vote stores the state again, without the block again.
            try store.save(d)
            let stored = try #require(try ledger.getMeta(ConsensusStore.stateKey))
            #expect(stored.count < PBFTCodec.encode(durable: d).count - pending.count, "the stored state has no block in it")
            #expect(try PBFTCodec.decodeDurable(stored).prepared.values.allSatisfy { $0.payload.isEmpty })
            #expect(try ledger.getMeta(ConsensusStore.payloadKey(Digest.sha256(pending))) == pending)
            #expect(try ledger.getMeta(ConsensusStore.payloadKey(Digest.sha256(b1.body))) == nil, "a committed block is not stored twice")
        }
        // Restart: both blocks come back.
        let ledger = try Ledger(path: dir, group: "transaction")
        let store = ConsensusStore(ledger: ledger)
        #expect(try store.load() == d)
        // Block 2 commits; the next save drops its stored copy.
        let b2 = block(ledger, 2)
        try ledger.commit(b2, writes: [])
        d.lastExec = 2
        d.prepared[2] = cert(2, b2.body)
        try store.save(d)
        #expect(try ledger.getMeta(ConsensusStore.payloadKey(Digest.sha256(pending))) == nil)
        #expect(try store.load() == d)
    }

    @Test func aCorruptStoredBlockIsNotRestored() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-durable-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let ledger = try Ledger(path: dir, group: "transaction")
        let store = ConsensusStore(ledger: ledger)
        let pending = Array("uncommitted".utf8)
        var d = PBFTDurableState()
        d.prepared[1] = cert(1, pending)
        try store.save(d)
        try ledger.writeMeta(puts: [(ConsensusStore.payloadKey(Digest.sha256(pending)), Array("tampered".utf8))])
        let back = try ConsensusStore(ledger: ledger).load()
        #expect(back.prepared[1]?.payload.isEmpty == true, "a block that fails its digest stays out")
        #expect(back.prepared[1]?.digest == Digest.sha256(pending))
    }

    @Test func storedBlocksNoCertificateNamesAreDeletedOnLoad() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-durable-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let ledger = try Ledger(path: dir, group: "transaction")
        let kept = Array("still prepared".utf8)
        var d = PBFTDurableState()
        d.prepared[1] = cert(1, kept)
        try ConsensusStore(ledger: ledger).save(d)
        // As if a crash came between storing a block and the save that drops it.
        let orphan = ConsensusStore.payloadKey(Digest.sha256(Array("abandoned by a view change".utf8)))
        try ledger.writeMeta(puts: [(orphan, Array("abandoned by a view change".utf8))])
        #expect(try ConsensusStore(ledger: ledger).load() == d)
        #expect(try ledger.getMeta(orphan) == nil)
        #expect(ledger.metaKeys(prefix: ConsensusStore.payloadPrefix) == [ConsensusStore.payloadKey(Digest.sha256(kept))])
    }
}
