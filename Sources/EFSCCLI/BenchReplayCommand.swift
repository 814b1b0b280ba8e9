import ArgumentParser
import EFSCBus
import EFSCChannel
import EFSCCore
import EFSCDevnet
import EFSCReplay
import Foundation

/// `efsc bench replay`: the event log's throughput against the raw cost of checking blocks.
struct BenchReplay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Blocks and events per second that efsc events fetches, verifies and emits, against the raw cost of checking the same blocks.",
        discussion: """
            A fresh devnet of 4 nodes (all on this machine) gets a history of at least --blocks transaction
            blocks of TCC evidence batches (`efsc chain load`, --batch evidences per transaction, at most
            --in-flight transactions at once). Then, alternating, --rounds times each: the event log over
            heights 1…H of the transaction group (history query, verification against the genesis keys,
            re-execution with the identity group it reads, JSON lines to /dev/null), and the raw limit on one
            core: SHA-256 over each block's bytes plus 2f+1 Ed25519 verifications of its certificate.
            Medians are reported: blocksPerSecond and eventsPerSecond (the event log, wall clock),
            rawBlocksPerSecond, and ratio = blocksPerSecond ÷ rawBlocksPerSecond (target ≥ 0.5). Also
            verifyOnlyBlocksPerSecond and verifyOnlyRatio (--verify-only: no re-execution).
            JSON keys: blocks, blocksPerSecond, eventsPerSecond, rawBlocksPerSecond, signaturesPerBlock, ratio,
            verifyOnlyBlocksPerSecond, verifyOnlyRatio, transactionsPerBlock, bytesPerBlock, rounds.
            """)
    @Option(name: .long, help: "Transaction blocks of history to fill (at least).") var blocks = 300
    @Option(name: .long, help: "Evidences per evidence transaction (a TCC batch).") var batch = 64
    @Option(name: .long, help: "Evidence transactions in flight while filling (bounds transactions per block).") var inFlight = 2
    @Option(name: .long, help: "Alternating measurement rounds.") var rounds = 3
    @Flag(name: .long, help: "Print JSON.") var json = false

    func run() async throws {
        try await exitOnError(code: 1) {
            guard (10...100_000).contains(blocks), (1...4096).contains(batch), (1...64).contains(inFlight), (1...15).contains(rounds) else {
                throw CLIError("--blocks 10-100000, --batch 1-4096, --in-flight 1-64, --rounds 1-15")
            }
            let exe = Devnet.executable
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-bench-replay-\(getpid())").path
            defer {
                _ = try? ChildProcess.run(exe, ["devnet", "down", "--dir", dir], timeout: 60)
                try? FileManager.default.removeItem(atPath: dir)
            }
            guard try ChildProcess.run(exe, ["devnet", "init", "--dir", dir], timeout: 60).code == 0 else { throw CLIError("devnet init failed") }
            let up = try ChildProcess.run(exe, ["devnet", "up", "--dir", dir], timeout: 120)
            guard up.code == 0 else { throw CLIError("devnet up failed: \(up.out)") }
            let net = try Devnet(dir: dir)
            let bus = try await net.connectOperator()
            defer { Task { await bus.disconnect() } }
            let chain = ChainClient(bus: bus, timeout: 10)
            func height() async -> UInt64 {
                do { return try await chain.history("transaction", from: 1, max: 1).committedHeight } catch let e as HistoryError { return e.height ?? 0 } catch { return 0 }
            }
            var filled = await height()
            var loads = 0
            while filled < UInt64(blocks) {
                loads += 1
                guard loads <= 200 else { throw CLIError("the devnet reached only \(filled) blocks") }
                let load = try ChildProcess.run(
                    exe,
                    ["chain", "load", "--network", dir, "--broker", net.brokerURL, "--identity", dir + "/tcc1.json", "--rate", "1000", "--seconds", "3",
                     "--batch", String(batch), "--in-flight", String(inFlight), "--json"], timeout: 140)
                guard load.code == 0 else { throw CLIError("chain load failed: \(load.out)") }
                filled = await height()
                if !json { Output.note("history: \(filled) transaction blocks") }
            }
            let network = try TrustedNetwork(path: dir)
            let fetched = try await ReplayBenchmark.fetch(chain: chain, group: "transaction", until: filled)
            let txs = fetched.reduce(0) { $0 + $1.transactions.count }
            let bytes = fetched.reduce(0) { $0 + $1.encoded.count }
            var logRuns: [ReplayBenchmark.Run] = []
            var verifyRuns: [ReplayBenchmark.Run] = []
            var raws: [Double] = []
            var signatures = 0
            for _ in 0..<rounds {
                logRuns.append(try await ReplayBenchmark.eventLog(chain: chain, network: network, until: filled, execute: true))
                let r = ReplayBenchmark.raw(fetched, network: network)
                raws.append(r.seconds > 0 ? Double(fetched.count) / r.seconds : 0)
                signatures = r.signatures
                verifyRuns.append(try await ReplayBenchmark.eventLog(chain: chain, network: network, until: filled, execute: false))
            }
            func median(_ x: [Double]) -> Double { let s = x.sorted(); return s.isEmpty ? 0 : s[s.count / 2] }
            let bps = median(logRuns.map(\.blocksPerSecond))
            let eps = median(logRuns.map(\.eventsPerSecond))
            let raw = median(raws)
            let vps = median(verifyRuns.map(\.blocksPerSecond))
            let n = Double(max(fetched.count, 1))
            let o: JSON = [
                "blocks": .number(Double(fetched.count)), "blocksPerSecond": .number(bps.rounded()), "eventsPerSecond": .number(eps.rounded()),
                "rawBlocksPerSecond": .number(raw.rounded()), "signaturesPerBlock": .number((Double(signatures) / n * 100).rounded() / 100),
                "ratio": .number(raw > 0 ? (bps / raw * 1000).rounded() / 1000 : 0), "verifyOnlyBlocksPerSecond": .number(vps.rounded()),
                "verifyOnlyRatio": .number(raw > 0 ? (vps / raw * 1000).rounded() / 1000 : 0),
                "transactionsPerBlock": .number((Double(txs) / n * 100).rounded() / 100), "bytesPerBlock": .number((Double(bytes) / n).rounded()),
                "rounds": .number(Double(rounds)),
            ]
            if json {
                Output.line(o.prettyString())
            } else {
                Output.line(
                    "\(fetched.count) blocks (\(o["transactionsPerBlock"]!.compactString()) evidence transactions, \(o["bytesPerBlock"]!.compactString()) bytes each): event log \(Int(bps)) blocks/s, \(Int(eps)) events/s; raw check \(Int(raw)) blocks/s on one core (SHA-256 + \(o["signaturesPerBlock"]!.compactString()) signatures a block); ratio \(o["ratio"]!.compactString()) (target ≥ 0.5); verify-only \(Int(vps)) blocks/s, ratio \(o["verifyOnlyRatio"]!.compactString()) — medians of \(rounds) alternating rounds")
            }
        }
    }
}
