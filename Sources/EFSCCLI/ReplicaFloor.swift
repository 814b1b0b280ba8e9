import EFSCChannel
import EFSCContracts
import EFSCCore
import EFSCIdentity
import EFSCLedger
import EFSCNode
import Foundation

/// The raw limit `bench onchain` is compared with: one replica's own work on
/// evidence blocks with nothing else running — parse each transaction and
/// make its canonical bytes (as a node's pool does), check its signature,
/// execute it, and commit the block to a real RocksDB ledger with a synced
/// WAL. No consensus, no broker, no load generator. Every replica of the
/// devnet must do at least this for every block, so n replicas sharing c
/// cores top out at rate·c/n.
///
/// The rate is per CPU second of the whole process (RocksDB's background
/// flushes included, making the transactions excluded), so it does not
/// depend on how many cores ran it.
struct ReplicaFloor {
    /// Evidences per second one replica executes and commits, blocks packed
    /// as a proposer packs them (at most `m` transactions and
    /// `GroupRunner.maxBlockBytes`), measured over at least `seconds` of CPU.
    static func measure(m: Int, batch: Int, seconds: Double) throws -> Double {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-replica-floor-\(getpid())-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tcc = try PartyIdentity.create(network: "bench")
        let history = try DIDHistory(create: tcc.operation!)
        let contracts = Contracts(group: "transaction", tccs: [tcc.did], resolveDID: { $0 == tcc.did ? history : nil })
        var ledger: Ledger? = try Ledger(path: dir, group: "transaction")
        defer { ledger = nil }
        var nonce = 0
        // Signing is the load generator's work, not the replica's: each
        // block's transactions are made off the clock.
        func makeBlockTransactions() throws -> [[UInt8]] {
            var txs: [[UInt8]] = []
            var bytes = 0
            while txs.count < m {
                nonce += 1
                let tx = try ChainLoad.evidenceTransaction(
                    group: "transaction", sender: tcc.did, method: tcc.verificationMethod, key: tcc.key, nonce: nonce, channelPrefix: "floor-\(nonce)",
                    batch: batch)
                if !txs.isEmpty && bytes + tx.bytes.count > GroupRunner.maxBlockBytes { break }
                txs.append(tx.bytes)
                bytes += tx.bytes.count + 4
            }
            return txs
        }
        var evidences = 0
        var making = 0.0
        let start = CPUClock.processMicros()
        func busy() -> Double { (CPUClock.processMicros() - start - making) / 1e6 }
        while busy() < seconds {
            let m0 = CPUClock.threadMicros()
            let txs = try makeBlockTransactions()
            making += CPUClock.threadMicros() - m0
            let l = ledger!
            let state = ContractState(ledger: l)
            let height = l.height + 1
            // As a node takes a transaction into its pool: parsed once,
            // canonical bytes kept (or made), and found to be the block's.
            let parsed = try txs.map { t in
                guard let tx = try ChainTransaction(received: t) else { throw CLIError("replica floor: transaction is not an object") }
                guard tx.bytes == t else { throw CLIError("replica floor: transaction bytes are not canonical") }
                return tx
            }
            state.reserve(writes: Contracts.plannedWrites(parsed))
            for (i, tx) in parsed.enumerated() {
                let r = contracts.execute(tx, state: state, height: height, index: i)
                guard r.ok else { throw CLIError("replica floor: evidence rejected: \(r.error ?? "?")") }
            }
            let writes = state.writes
            let header = BlockHeader(
                group: "transaction", height: height, parentHash: l.lastHash, stateRoot: l.stateRoot,
                transactionsRoot: Block.transactionsRoot(txs), proposer: 0, view: 0, timestamp: UInt64(DateTime.currentTime() * 1000))
            try l.commit(Block(header: header, transactions: txs), writes: writes, evidenceIndex: state.evidenceIndex)
            evidences += txs.count * batch
        }
        return Double(evidences) / busy()
    }
}
