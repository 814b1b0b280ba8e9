import ArgumentParser
import EFSCBus
import EFSCChannel
import EFSCCore
import EFSCLedger
import EFSCReplay
import Foundation

/// `efsc ledger`: offline tools on a node's ledger directory.
struct LedgerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger", abstract: "Check a ledger directory, or fill one with synthetic blocks (crash drills, sizing).",
        subcommands: [Verify.self, Replay.self, Fill.self])

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-execute the chain into a fresh ledger and check every block and certified state root (an audit without consensus).",
            discussion: """
                Reads blocks from a node's data directory (--source DIR, holding identity/ and transaction/;
                the node must be stopped) or, without --source, from the history query over the broker
                (--network). Every block must verify against the genesis node keys (hash, transactions root,
                parent link, 2f+1 commit signatures) and is re-executed with the nodes' contracts; the state
                root each block certifies must be the one re-execution reached. The identity group is replayed
                first (the transaction group reads it as of each block's anchor).
                Reports the first failing height and why (code bad-block or divergence).
                Exit status: 0 every state root reproduced, 1 a block does not verify or the state diverges,
                2 cannot open the source or the genesis.
                """)
        @OptionGroup var brokerOptions: BrokerOptions
        @Option(name: .long, help: "Genesis (network.json or a devnet directory; default the --network directory's).") var genesis: String?
        @Option(name: .long, help: "A stopped node's data directory to read blocks from (default: the history query).") var source: String?
        @Option(name: .long, help: "Group to replay (repeatable; default both; transaction replays identity too).") var group: [String] = []
        @Option(name: .long, help: "Replay state directory (must not hold a ledger; default temporary, removed).") var state: String?
        @Option(name: .long, help: "Last height to replay.") var until: UInt64?
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() async throws {
            let gpath = try await exitOnError(code: 2) { () throws -> String in
                if let genesis { return genesis }
                if let n = brokerOptions.network { return n }
                throw CLIError("name the genesis: --genesis network.json (or --network with a devnet directory)")
            }
            let network = try await exitOnError(code: 2) { try TrustedNetwork(path: gpath) }
            let temporary = state == nil
            let dir = state ?? FileManager.default.temporaryDirectory.appendingPathComponent("efsc-replay-\(UUID().uuidString.prefix(8))").path
            defer { if temporary { try? FileManager.default.removeItem(atPath: dir) } }
            if !temporary, ReplayState.groups.contains(where: { FileManager.default.fileExists(atPath: "\(dir)/\($0)") }) {
                Output.error("--state \(dir) already holds a ledger; give a fresh directory")
                throw ExitCode(2)
            }
            var bus: MQTTClient? = nil
            let src: BlockSource = try await exitOnError(code: 2) {
                if let source { return try LedgerSource(dataDir: source) }
                let b = try await brokerOptions.connect(clientPrefix: "efsc-replay")
                bus = b
                return HistorySource(chain: ChainClient(bus: b, timeout: 10))
            }
            defer { if let b = bus { Task { await b.disconnect() } } }
            let groups = group.isEmpty ? ReplayState.groups : group
            let r = try await exitOnError(code: 2) { try await LedgerReplay.run(source: src, network: network, stateDir: dir, groups: groups, until: until) }
            if json {
                var o: JSONObject = [
                    "consistent": .bool(r.failure == nil), "rootsChecked": .number(Double(r.rootsChecked)), "transactions": .number(Double(r.transactions)),
                ]
                o["groups"] = .object(JSONObject(r.heights.keys.sorted().map { g in
                    (g, JSON.object(["height": .number(Double(r.heights[g]!)), "stateRoot": .string(Hex.encode(r.stateRoots[g] ?? []))]))
                }))
                if let f = r.failure {
                    o["failure"] = ["group": .string(f.group), "height": .number(Double(f.height)), "code": .string(f.error.code.rawValue), "error": .string(f.error.message)]
                }
                Output.line(JSON.object(o).compactString())
            } else if let f = r.failure {
                Output.line("\(f.error.code.rawValue) at height \(f.height) of \(f.group): \(f.error.message)")
            } else {
                let hs = r.heights.keys.sorted().map { "\($0) \(r.heights[$0]!)" }.joined(separator: ", ")
                Output.line("consistent: \(hs) blocks re-executed, \(r.rootsChecked) certified state roots reproduced, \(r.transactions) transactions")
            }
            if r.failure != nil { throw ExitCode(1) }
        }
    }

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
