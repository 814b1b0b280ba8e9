import EFSCConsensus
import EFSCCore
import EFSCLedger
import Foundation
import Testing

@testable import EFSCNode

/// The stored consensus state leaves out blocks the ledger holds, and gets
/// them back byte for byte after a restart.
@Suite struct DurableStateTests {
    @Test func slimStateDropsLedgerBlocksAndRestoresThem() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-durable-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let ledger = try Ledger(path: dir, group: "transaction")
        let txs = [Array(#"{"op":"x"}"#.utf8)]
        let header = BlockHeader(
            group: "transaction", height: 1, parentHash: ledger.lastHash, stateRoot: ledger.nextStateRoot([]),
            transactionsRoot: Block.transactionsRoot(txs), proposer: 0, view: 0, timestamp: 1)
        let block = Block(header: header, transactions: txs)
        try ledger.commit(block, writes: [])
        let body = block.body
        func cert(_ seq: UInt64, _ payload: [UInt8]) -> PreparedCertificate {
            let pp = SignedMessage(
                sender: 0, message: .prePrepare(view: 0, seq: seq, digest: Digest.sha256(payload), payload: payload), signature: Array(repeating: 7, count: 64))
            return PreparedCertificate(prePrepare: pp, prepares: [SignedMessage(sender: 1, message: .prepare(view: 0, seq: seq, digest: Digest.sha256(payload)), signature: Array(repeating: 1, count: 64))])
        }
        var d = PBFTDurableState()
        d.lastExec = 1
        d.prepared[1] = cert(1, body)
        d.prepared[2] = cert(2, Array("not yet in the ledger".utf8))
        let slim = GroupRunner.slim(d, ledgerHeight: ledger.height)
        #expect(slim.prepared[1]?.payload.isEmpty == true)
        #expect(slim.prepared[1]?.digest == Digest.sha256(body))
        #expect(slim.prepared[2] == d.prepared[2], "a block the ledger lacks is kept whole")
        var back = try PBFTCodec.decodeDurable(PBFTCodec.encode(durable: slim))
        #expect(PBFTCodec.encode(durable: slim).count < PBFTCodec.encode(durable: d).count)
        GroupRunner.restorePayloads(&back, ledger: ledger)
        #expect(back == d)
    }
}
