import ArgumentParser
import EFSCBus
import EFSCChannel
import EFSCContracts
import EFSCCore
import EFSCIdentity
import Foundation

/// `chain submit`: one signed transaction.
struct ChainSubmit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit", abstract: "Submit a signed transaction (JSON) and print its receipt once committed.",
        discussion: "Exit status: 0 committed, 1 rejected or no receipt within --timeout.")
    @OptionGroup var brokerOptions: BrokerOptions
    @Option(name: .long, help: "Seconds to wait for the receipt.") var timeout: Double = 10
    @Argument(help: "Transaction JSON file, or - for standard input.") var file: String?

    func run() async throws {
        let r = try await exitOnError(code: 1) { () async throws -> JSON in
            let tx = try Output.readObject(file, what: "transaction")
            guard let g = tx["group"]?.stringValue else { throw CLIError("transaction has no group") }
            return try await brokerOptions.requestJSON(Topics.tx(g), payload: try JCS.canonicalize(.object(tx)), timeout: timeout, clientPrefix: "efsc-submit")
        }
        Output.line(r.compactString())
        if r["status"]?.stringValue != "committed" { throw ExitCode(1) }
    }
}

struct ChainLoad: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Submit signed evidence transactions at a rate and report committed throughput and latency.",
        discussion: """
            Signs as a TCC (--identity: a tcc1.json written by `efsc devnet init`), registering its DID on the
            identity group first if needed. Each transaction carries --batch evidences (distinct channels).
            Reports submitted and committed transactions, committed evidences per second and commit latency
            p50/p99 (submit → receipt), as JSON with --json: submitted, committed, rejected, evidencesPerSecond,
            commitP50Millis, commitP99Millis, seconds, firstError, maxInFlight (the most transactions awaiting
            receipts at any moment). With --in-flight the load is closed-loop (at most that many
            transactions awaiting receipts, still at most --rate per second) and submission stops after --seconds.
            """)
    @OptionGroup var brokerOptions: BrokerOptions
    @Option(name: .long, help: "Chain group (evidence lives on transaction).") var group = "transaction"
    @Option(name: .long, help: "Transactions per second to submit.") var rate: Double = 100
    @Option(name: .long, help: "Seconds to submit for.") var seconds: Double = 5
    @Option(name: .long, help: "Evidences per transaction.") var batch = 1
    @Option(name: .long, help: "TCC identity file (did, secretKeyMultibase, operation).") var identity: String
    @Option(name: .long, help: "Seconds to wait for the last receipts.") var drain: Double = 15
    @Option(
        name: .long,
        help: "At most this many transactions awaiting their receipts (0: no limit). With a limit the load is closed-loop: it finds the chain's capacity without an ever-growing queue.")
    var inFlight = 0
    @Flag(name: .long, help: "Print JSON.") var json = false

    final class Stats: @unchecked Sendable {
        let lock = Lock()
        var committed = 0
        var rejected = 0
        var latencies: [Double] = []
        var firstError: String?
        /// Transactions awaiting their receipts now, and the most at any time.
        var outstanding = 0
        var maxOutstanding = 0
    }

    /// A signed `evidence.submit` of `batch` evidences of fresh channels
    /// `<channelPrefix>-<k>` (sequence 1; one item as plain args when `batch` is 1).
    static func evidenceTransaction(
        group: String, sender: String, method: String, key: Ed25519SecretKey, nonce: Int, channelPrefix: String, batch: Int
    ) throws -> ChainTransaction {
        // In columns, as a TCC submits its batches (`EvidenceBatch`). The
        // credential hashes stand in for real ones: distinct and uniformly
        // spread, as SHA-256 values are, but drawn from a SplitMix64 stream
        // seeded by one hash of the prefix. A SHA-256 per evidence was the
        // load generator's largest cost, on the cores the nodes share.
        var rng = SplitMix64(seed: Digest.sha256(Array(channelPrefix.utf8)).prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
        func next() -> UInt64 { rng.next() }
        let args = EvidenceBatch.args(
            (0..<batch).map { k in
                let words = [next(), next(), next(), next()]
                return ("\(channelPrefix)-\(k)", 1, words.withUnsafeBytes { Hex.encode(raw: $0) })
            })
        return try ChainTransaction.make(group: group, sender: sender, nonce: nonce, op: "evidence.submit", args: args, key: key, method: method)
    }

    func run() async throws {
        try await exitOnError(code: 1) {
            guard rate > 0, rate <= 1_000_000, seconds > 0, (1...4096).contains(batch), inFlight >= 0 else {
                throw CLIError("--rate must be in (0, 1e6], --seconds > 0, --batch 1...4096, --in-flight ≥ 0")
            }
            let id = try Output.readJSON(identity)
            guard let did = id["did"]?.stringValue, let sk = id["secretKeyMultibase"]?.stringValue, let op = id["operation"]?.objectValue else {
                throw CLIError("\(identity) needs did, secretKeyMultibase and operation")
            }
            let key = try Ed25519SecretKey(multibase: sk)
            let client = try await brokerOptions.connect(clientPrefix: "efsc-load")
            try await ChainClient(bus: client).register(PartyIdentity(did: did, key: key, operation: op), nonce: 0)
            let stats = Stats()
            let start = DateTime.currentTime()
            let total = Int(rate * seconds)
            let run = Hex.encode(Digest.randomBytes(4))
            let baseNonce = Int(start * 1000) * 1000
            var submitted = 0
            let slots = inFlight > 0 ? AsyncSlots(inFlight) : nil
            try await withThrowingTaskGroup(of: Void.self) { g in
                for i in 0..<total {
                    let due = start + Double(i) / rate
                    let wait = due - DateTime.currentTime()
                    if wait > 0 { try await Task.sleep(nanoseconds: UInt64(wait * 1e9)) }
                    if let slots {
                        await slots.acquire()
                        // Closed loop: stop at the end of the time, not of the count.
                        if DateTime.currentTime() - start > seconds {
                            slots.release()
                            break
                        }
                    }
                    submitted += 1
                    let tx = try Self.evidenceTransaction(
                        group: group, sender: did, method: "\(did)#key-1", key: key, nonce: baseNonce + i, channelPrefix: "load-\(run)-\(i)", batch: batch)
                    let sent = DateTime.currentTime()
                    let timeout = drain + seconds
                    stats.lock.withLock {
                        stats.outstanding += 1
                        stats.maxOutstanding = max(stats.maxOutstanding, stats.outstanding)
                    }
                    g.addTask {
                        defer {
                            stats.lock.withLock { stats.outstanding -= 1 }
                            slots?.release()
                        }
                        do {
                            let r = try await client.request(Topics.tx(group), payload: tx.bytes, timeout: timeout)
                            let j = try JSONParser.parse(r.payload)
                            stats.lock.withLock {
                                if j["status"]?.stringValue == "committed" {
                                    stats.committed += 1
                                    stats.latencies.append((DateTime.currentTime() - sent) * 1000)
                                } else {
                                    stats.rejected += 1
                                    if stats.firstError == nil { stats.firstError = j["error"]?.stringValue }
                                }
                            }
                        } catch {
                            stats.lock.withLock { if stats.firstError == nil { stats.firstError = "\(error)" } }
                        }
                    }
                }
                try await g.waitForAll()
            }
            await client.disconnect()
            let elapsed = DateTime.currentTime() - start
            let (c, rj, lat, err, peak) = stats.lock.withLock { (stats.committed, stats.rejected, stats.latencies.sorted(), stats.firstError, stats.maxOutstanding) }
            func pct(_ p: Double) -> Double { lat.isEmpty ? 0 : lat[min(lat.count - 1, Int(Double(lat.count) * p))] }
            let out: JSON = [
                "submitted": .number(Double(submitted)), "committed": .number(Double(c)), "rejected": .number(Double(rj)),
                "evidencesPerSecond": .number((Double(c * batch) / elapsed).rounded()), "commitP50Millis": .number((pct(0.5) * 10).rounded() / 10),
                "commitP99Millis": .number((pct(0.99) * 10).rounded() / 10), "seconds": .number((elapsed * 100).rounded() / 100),
                "firstError": err.map(JSON.string) ?? .null, "maxInFlight": .number(Double(peak)),
            ]
            if json {
                Output.line(out.compactString())
            } else {
                Output.line("submitted \(submitted), committed \(c), rejected \(rj) in \(String(format: "%.1f", elapsed)) s: \(Int(Double(c * batch) / elapsed)) evidences/s, commit p50 \(pct(0.5)) ms p99 \(pct(0.99)) ms\(err.map { "; first error: \($0)" } ?? "")")
            }
        }
    }
}
