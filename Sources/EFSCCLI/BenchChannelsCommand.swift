import ArgumentParser
import EFSCBench
import EFSCCore
import Foundation

/// `efsc bench channels`: settlements through the broker and the TCCs of a fresh devnet (EFSCBench.ChannelBenchmark).
struct BenchChannels: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "channels",
        abstract: "Settlements per second over many open channels, latency, and TCC CPU per settlement against its cryptography.",
        discussion: """
            Starts a devnet (broker, 4 nodes, --tccs TCC processes), records --channels TICs (one provider, one
            consumer) so the TCCs open that many channels (each "open" event reaches one TCC, which owns the
            channel), and authenticates both parties on each. The cryptography a settlement cannot avoid (2
            Ed25519 verifications + 1 signature, eddsa-jcs-2022 with canonicalization) is measured in the same run
            on one core; each ratio is TCC CPU per settlement (all TCC processes, from /proc) against it.

            Live signing (default): for --seconds, --rate settlements per second in total (at most one
            outstanding per channel); the provider signs each proposal, the consumer verifies and countersigns.
            Everything shares the machine: nodes, broker, TCCs and both parties' signing.
            JSON: secure, channels, tccs, presigned, settlementsPerSecond, p50Millis, p99Millis,
            tccCpuMicrosPerSettlement, cryptoMicrosPerSettlement, ratio, tccCryptoMicrosPerSettlement,
            ratioUnderLoad (against the TCCs' own thread-CPU account of their cryptography), offeredRate,
            settlements, seconds, errors, firstError, channelsPerTCC, tccOpenChannels.

            --presigned: every proposal and countersignature is made before the timed windows (the parties'
            proofs form a proof set and do not depend on the TCC), so during them the machine runs only the
            broker, the nodes and the TCCs; the parties publish prepared bytes. Windows of --seconds each:
            saturated (every channel keeps one settlement outstanding), then open load at 50 % and 80 % of the
            saturated rate, then 600/s (or half the saturated rate if lower). JSON adds saturatedPerSecond
            (= settlementsPerSecond), p50/p99 at saturation (p50Millis, p99Millis), p50MillisAtHalf,
            p99MillisAtHalf, p50MillisAt80, p99MillisAt80, lowRate, tccCpuMicrosPerSettlementAtLowRate,
            ratioAtLowRate, p99MillisAtLowRate, skippedSlots (open-load slots whose channel was still busy).
            Targets on the 2-core reference machine: ratio ≤ 1.5 at saturation and at 600/s, ≥ 3,000/s
            saturated with 1,000 channels, p99 ≤ 20 ms at 50 %.

            --tccs K (1-8): K TCC processes share the channels; the CPU per settlement is over all of them
            (target: within 10 % of K = 1). channelsPerTCC counts the channels each TCC admitted both parties
            of; a channel whose parties were admitted by different TCCs fails the run.

            --idle-channels N (0-50000): before the load, N more channels are opened and left idle; JSON adds
            idleChannels, memoryBytesPerIdleChannel (TCC resident memory growth ÷ N), idleCpuMillisPerSecond
            (TCC CPU with them open) and baseCpuMillisPerSecond (before). Target at N = 20,000: ≤ 4 KiB per
            idle channel and no CPU that grows with idle channels.
            --insecure runs the same on an anonymous plain broker, for the cost of security.
            """)
    @Option(name: .long, help: "Open channels under load (1-20000).") var channels = 1000
    @Option(name: .long, help: "Seconds of each measured window.") var seconds: Double = 10
    @Option(name: .long, help: "Live signing: settlements per second offered in total.") var rate: Double = 5000
    @Flag(name: .long, help: "Pre-sign every proposal and countersignature before the timed windows (the TCCs' capacity).") var presigned = false
    @Option(name: .long, help: "TCC processes sharing the channels (1-8).") var tccs = 1
    @Option(name: .long, help: "Idle channels opened before the load, for memory and CPU per idle channel (0-50000).") var idleChannels = 0
    @Flag(name: .long, help: "Run on an --insecure devnet (anonymous plain broker) instead of the secure default.") var insecure = false
    @Flag(name: .long, help: "Print JSON.") var json = false

    func run() async throws {
        try await exitOnError(code: 1) {
            var o = ChannelBenchmark.Options()
            o.channels = channels
            o.seconds = seconds
            o.rate = rate
            o.presigned = presigned
            o.tccs = tccs
            o.idleChannels = idleChannels
            o.insecure = insecure
            let quiet = json
            let r: JSON
            do {
                r = try await ChannelBenchmark(o) { s in if !quiet { Output.note("\(s)…") } }.run()
            } catch let e as ChannelBenchmark.Failure {
                throw CLIError(e.description)
            }
            if json {
                Output.line(r.compactString())
                return
            }
            func n(_ k: String) -> String { r[k]?.compactString() ?? "-" }
            let net = insecure ? "INSECURE network" : "secure network (parties over TLS)"
            var line: String
            if presigned {
                line = "\(net), pre-signed load, \(channels) channels, \(tccs) TCC(s): saturated \(n("saturatedPerSecond")) settlements/s (p50 \(n("p50Millis")) ms, p99 \(n("p99Millis")) ms); p99 \(n("p99MillisAtHalf")) ms at 50 %, \(n("p99MillisAt80")) ms at 80 %; TCC CPU \(n("tccCpuMicrosPerSettlement")) µs/settlement saturated, \(n("tccCpuMicrosPerSettlementAtLowRate")) µs at \(n("lowRate"))/s, vs its cryptography \(n("cryptoMicrosPerSettlement")) µs: ratio \(n("ratio")) saturated, \(n("ratioAtLowRate")) at \(n("lowRate"))/s"
            } else {
                line = "\(net): \(channels) channels, \(tccs) TCC(s): \(n("settlementsPerSecond")) settlements/s (offered \(Int(rate))), latency p50 \(n("p50Millis")) ms p99 \(n("p99Millis")) ms; TCC CPU \(n("tccCpuMicrosPerSettlement")) µs/settlement vs its cryptography \(n("cryptoMicrosPerSettlement")) µs: ratio \(n("ratio")) (vs the \(n("tccCryptoMicrosPerSettlement")) µs the TCC's cryptography took under this load: \(n("ratioUnderLoad")))"
            }
            if r["idleChannels"] != nil {
                line += "; \(n("idleChannels")) idle channels: \(n("memoryBytesPerIdleChannel")) bytes each, TCC CPU \(n("idleCpuMillisPerSecond")) ms/s with them (\(n("baseCpuMillisPerSecond")) ms/s without)"
            }
            if (r["errors"]?.intValue ?? 0) > 0 { line += "; \(n("errors")) errors, first: \(r["firstError"]?.stringValue ?? "")" }
            Output.line(line)
        }
    }
}
