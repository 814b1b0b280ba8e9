import ArgumentParser
import EFSCBus
import EFSCCore
import EFSCDevnet
import Foundation

/// `efsc bench onchain`: the paper's Fig. 3 on a local devnet.
struct BenchOnchain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "onchain",
        abstract: "Committed evidences per second and bytes per evidence for each block size M (paper Fig. 3).",
        discussion: """
            For each M: a fresh devnet of --nodes node processes and one broker (all on this machine), then `efsc chain load` submits evidence transactions of --batch evidences each (one TCC signature per transaction, as a TCC batches them) for --seconds, keeping --in-flight transactions awaiting their receipts (closed loop, default max(4, min(2·M, 32))), at most --rate per second. Reports committed evidences per second, on-disk bytes per evidence (one node's transaction-group RocksDB directory after the run, divided by its evidences), and commit latency p50/p99. Paper: ≈1.2K evidences/s at M = 64 on a 24-core server, 1.2–1.9 KB per evidence.

            The raw limit, measured in the same run for each M (--floor-seconds of CPU, 0 skips it): one replica's own work alone in this process (parse and canonicalize each transaction, check its signature, execute it, commit the block to RocksDB with a synced WAL; no consensus, broker or load), per CPU second with RocksDB's flushes, as replicaEvidencesPerSecond. Every node does that work for every block, so --nodes replicas on this machine's cores reach at most ceilingEvidencesPerSecond = replica rate × cores ÷ nodes; ratioToCeiling = evidencesPerSecond ÷ that.

            JSON: one object per M with m, evidencesPerSecond, bytesPerEvidence, commitP50Millis, commitP99Millis, committedEvidences, nodes, and (unless --floor-seconds 0) replicaEvidencesPerSecond, ceilingEvidencesPerSecond, ratioToCeiling, cores. With --floor-only: m and replicaEvidencesPerSecond.
            """)
    @Option(name: .long, help: "Nodes (3f+1).") var nodes = 4
    @Option(name: .long, help: "Comma-separated M values (transactions per block).") var m = "1,2,4,8,16,32,64,128,256"
    @Option(name: .long, help: "Seconds of load per M.") var seconds: Double = 5
    @Option(name: .long, help: "Most transactions per second offered.") var rate: Double = 2000
    @Option(name: .long, help: "Evidences per transaction (one TCC signature over a batch).") var batch = 256
    @Option(name: .long, help: "Transactions awaiting receipts at once (default max(4, min(2·M, 32))).") var inFlight: Int?
    @Option(name: .long, help: "Seconds of the one-replica measurement per M (0: skip it).") var floorSeconds: Double = 2
    @Flag(name: .long, help: "Measure only the one-replica limit (no devnet; prints m and replicaEvidencesPerSecond).") var floorOnly = false
    @Flag(name: .long, help: "Print JSON.") var json = false

    func run() async throws {
        try await exitOnError(code: 1) {
            let parts = m.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            let ms = parts.compactMap { Int($0) }
            guard !ms.isEmpty, ms.count == parts.count, ms.allSatisfy({ (1...100_000).contains($0) }) else {
                throw CLIError("--m must list block sizes 1...100000 separated by commas, not '\(m)'")
            }
            guard nodes >= 4, (nodes - 1) % 3 == 0, nodes <= 100 else { throw CLIError("--nodes must be 3f+1 (4, 7, 10, …, ≤ 100), not \(nodes)") }
            guard seconds > 0 else { throw CLIError("--seconds must be > 0") }
            guard rate > 0, rate <= 1_000_000 else { throw CLIError("--rate must be in (0, 1000000]") }
            guard floorSeconds >= 0 else { throw CLIError("--floor-seconds must be ≥ 0") }
            guard (1...4096).contains(batch) else { throw CLIError("--batch must be 1...4096, not \(batch)") }
            if let k = inFlight, k < 1 { throw CLIError("--in-flight must be ≥ 1, not \(k)") }
            let cores = ProcessInfo.processInfo.activeProcessorCount
            let exe = Devnet.executable
            var rows: [JSON] = []
            if floorOnly {
                for mv in ms {
                    let replica = try ReplicaFloor.measure(m: mv, batch: batch, seconds: max(floorSeconds, 0.1))
                    rows.append(["m": .number(Double(mv)), "replicaEvidencesPerSecond": .number(replica.rounded())])
                    if !json { Output.line("M=\(mv): one replica alone \(Int(replica)) evidences/s") }
                }
                if json { Output.line(JSON.array(rows).prettyString()) }
                return
            }
            for mv in ms {
                let dir = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-bench-onchain-\(getpid())-\(mv)").path
                defer {
                    _ = try? ChildProcess.run(exe, ["devnet", "down", "--dir", dir], timeout: 60)
                    try? FileManager.default.removeItem(atPath: dir)
                }
                guard try ChildProcess.run(exe, ["devnet", "init", "--dir", dir, "--nodes", String(nodes), "--m", String(mv)], timeout: 60).code == 0 else {
                    throw CLIError("devnet init failed")
                }
                let up = try ChildProcess.run(exe, ["devnet", "up", "--dir", dir], timeout: 120)
                guard up.code == 0 else { throw CLIError("devnet up failed: \(up.out)") }
                let net = try Devnet(dir: dir)
                let load = try ChildProcess.run(
                    exe,
                    // The load stands for a TCC on the broker's host: the client account on the loopback listener.
                    ["chain", "load", "--network", dir, "--broker", net.brokerURL, "--identity", dir + "/tcc1.json", "--rate", String(rate), "--seconds", String(seconds),
                     "--batch", String(batch), "--in-flight", String(inFlight ?? max(4, min(2 * mv, 32))), "--json"], timeout: seconds + 120)
                guard load.code == 0, let j = try? JSONParser.parse(load.out) else { throw CLIError("chain load failed: \(load.out)") }
                _ = try ChildProcess.run(exe, ["devnet", "down", "--dir", dir], timeout: 60)
                let committed = (j["committed"]?.doubleValue ?? 0) * Double(batch)
                let bytes = Self.directorySize(dir + "/node1/data/transaction")
                var row: JSON = [
                    "m": .number(Double(mv)), "evidencesPerSecond": j["evidencesPerSecond"] ?? 0,
                    "bytesPerEvidence": .number(committed > 0 ? (Double(bytes) / committed).rounded() : 0),
                    "commitP50Millis": j["commitP50Millis"] ?? 0, "commitP99Millis": j["commitP99Millis"] ?? 0,
                    "committedEvidences": .number(committed), "nodes": .number(Double(nodes)),
                ]
                var floorText = ""
                if floorSeconds > 0 {
                    let replica = try ReplicaFloor.measure(m: mv, batch: batch, seconds: floorSeconds)
                    let ceiling = replica * Double(cores) / Double(nodes)
                    let measured = row["evidencesPerSecond"]?.doubleValue ?? 0
                    row["replicaEvidencesPerSecond"] = .number(replica.rounded())
                    row["ceilingEvidencesPerSecond"] = .number(ceiling.rounded())
                    row["ratioToCeiling"] = .number((measured / ceiling * 100).rounded() / 100)
                    row["cores"] = .number(Double(cores))
                    floorText = "; one replica alone \(Int(replica)) evidences/s → ceiling \(Int(ceiling)) for \(nodes) on \(cores) cores (ratio \(String(format: "%.2f", measured / ceiling)))"
                }
                rows.append(row)
                if !json {
                    Output.line(
                        "M=\(mv): \(row["evidencesPerSecond"]!.intValue ?? 0) evidences/s, \(row["bytesPerEvidence"]!.intValue ?? 0) B/evidence, commit p50 \(row["commitP50Millis"]!.compactString()) ms p99 \(row["commitP99Millis"]!.compactString()) ms\(floorText)")
                }
            }
            if json { Output.line(JSON.array(rows).prettyString()) }
        }
    }

    static func directorySize(_ path: String) -> Int {
        var total = 0
        if let e = FileManager.default.enumerator(atPath: path) {
            for case let f as String in e {
                total += (try? FileManager.default.attributesOfItem(atPath: path + "/" + f)[.size] as? Int) ?? 0
            }
        }
        return total
    }
}
