import ArgumentParser
import EFSCCore
import EFSCLedger

/// `efsc ledger`: offline tools on a node's ledger directory.
struct LedgerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger", abstract: "Check a ledger directory, or fill one with synthetic blocks (crash drills, sizing).",
        subcommands: [Verify.self, Fill.self])

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check every block: height sequence, parent hashes, transactions roots, and the recorded last hash.",
            discussion: "Exit status: 0 consistent, 1 inconsistent (names the first bad height), 2 cannot open.")
        @Option(name: .long, help: "Ledger directory (RocksDB).") var dir: String
        @Option(name: .long, help: "Chain group of the ledger.") var group = "transaction"
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() async throws {
            let ledger = try await exitOnError(code: 2) { try Ledger(path: dir, group: group) }
            var parent = [UInt8](repeating: 0, count: 32)
            var txs = 0
            for h in stride(from: UInt64(1), through: ledger.height, by: 1) {
                guard let b = try? ledger.block(at: h), b.header.height == h, b.header.parentHash == parent,
                    b.header.transactionsRoot == Block.transactionsRoot(b.transactions)
                else {
                    Output.line("inconsistent: block \(h) is missing or does not extend block \(h - 1)")
                    throw ExitCode(1)
                }
                parent = b.hash
                txs += b.transactions.count
            }
            guard parent == ledger.lastHash else {
                Output.line("inconsistent: recorded last hash differs from block \(ledger.height)")
                throw ExitCode(1)
            }
            if json {
                Output.line(
                    JSON.object([
                        "group": .string(group), "height": .number(Double(ledger.height)), "transactions": .number(Double(txs)),
                        "lastHash": .string(Hex.encode(ledger.lastHash)), "stateRoot": .string(Hex.encode(ledger.stateRoot)), "consistent": true,
                    ]).compactString())
            } else {
                Output.line("consistent: \(ledger.height) blocks, \(txs) transactions, last hash \(Hex.encode(ledger.lastHash))")
            }
        }
    }

    struct Fill: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Append synthetic blocks of evidence-like transactions, printing 'committed H' after each durable commit.",
            discussion: "Every printed height is on disk (synced WAL) when printed: a crash drill kills this with SIGKILL and checks nothing printed is lost.")
        @Option(name: .long, help: "Ledger directory (RocksDB; created if missing).") var dir: String
        @Option(name: .long, help: "Chain group.") var group = "transaction"
        @Option(name: .long, help: "Blocks to append.") var blocks = 100
        @Option(name: .long, help: "Transactions per block (M).") var m = 16

        func run() async throws {
            try await exitOnError(code: 1) {
                guard blocks >= 0, m >= 0, m <= 100_000 else { throw CLIError("--blocks must be ≥ 0 and --m 0...100000") }
                let ledger = try Ledger(path: dir, group: group)
                for _ in 0..<blocks {
                    let h = ledger.height + 1
                    let txs = (0..<m).map { i in
                        Array("{\"channelId\":\"ch-\(i)\",\"op\":\"evidence.submit\",\"sequence\":\(h),\"tscHash\":\"\(Hex.encode(Digest.sha256(Array("\(h)/\(i)".utf8))))\"}".utf8)
                    }
                    let writes = [StateWrite(key: Array("evidence/\(h)".utf8), value: Digest.sha256(txs.flatMap { $0 }))]
                    let header = BlockHeader(
                        group: group, height: h, parentHash: ledger.lastHash, stateRoot: ledger.stateRoot,
                        transactionsRoot: Block.transactionsRoot(txs), proposer: 0, view: 0, timestamp: UInt64(DateTime.currentTime() * 1000))
                    try ledger.commit(Block(header: header, transactions: txs), writes: writes)
                    Output.line("committed \(h)")
                }
            }
        }
    }
}
