import ArgumentParser
import EFSCBus
import EFSCChannel
import EFSCCore
import EFSCDevnet
import EFSCCredentials
import EFSCIdentity
import EFSCSDK
import Foundation

/// `efsc bench channels`: end-to-end settlements through the broker and a TCC process.
struct BenchChannels: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "channels",
        abstract: "End-to-end settlements per second over many open channels, latency, and TCC CPU per settlement against its cryptography.",
        discussion: """
            Starts a devnet (broker, 4 nodes, one TCC process), records --channels TICs (one provider, one consumer)
            so the TCC opens that many channels, authenticates both parties on each, then for --seconds offers
            --rate settlements per second spread over the channels (at most one outstanding per channel). The
            provider signs each proposal; the consumer verifies and countersigns; the TCC verifies both and issues.
            Parties keep TSCs in memory and skip re-verifying the issued TSC (the TCC is what is measured).
            Reported: settlements/s completed, p50/p99 latency (propose → TSC back at the provider), the TCC
            process's CPU time per settlement (from /proc), the cost of its cryptography alone (2 Ed25519
            verifications + 1 signature of the same TSC, eddsa-jcs-2022 including canonicalization, measured now
            on one core), and their ratio. Targets on the reference 2-core machine: ≥ 5K settlements/s with 1000
            channels, p99 ≤ 20 ms, ratio ≤ 1.5. Everything shares the machine: 4 nodes, broker, TCC and both parties.
            The devnet is secure (accounts, ACL; the parties connect over TLS with client certificates, as remote
            parties would); --insecure runs the same on an anonymous plain broker, for the cost of security.
            JSON: secure, channels, settlementsPerSecond, p50Millis, p99Millis, tccCpuMicrosPerSettlement,
            cryptoMicrosPerSettlement, ratio (plus offeredRate, settlements, seconds, errors, and
            tccCryptoMicrosPerSettlement / ratioUnderLoad: the TCC's own thread-CPU account of its
            cryptography during the load, from its status topic, and the TCC CPU against that).
            """)
    @Option(name: .long, help: "Open channels.") var channels = 1000
    @Option(name: .long, help: "Seconds of measured load.") var seconds: Double = 10
    @Option(name: .long, help: "Settlements per second offered in total.") var rate: Double = 5000
    @Flag(name: .long, help: "Run on an --insecure devnet (anonymous plain broker) instead of the secure default.") var insecure = false
    @Flag(name: .long, help: "Print JSON.") var json = false

    final class Stats: @unchecked Sendable {
        let lock = Lock()
        var latencies: [Double] = []
        var errors = 0
        var firstError: String?
    }

    func run() async throws {
        try await exitOnError(code: 1) {
            guard (1...20_000).contains(channels), seconds > 0, rate > 0 else { throw CLIError("--channels 1...20000, --seconds > 0, --rate > 0") }
            let exe = Devnet.executable
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-bench-channels-\(getpid())").path
            try? FileManager.default.removeItem(atPath: dir)
            defer {
                _ = try? BenchOnchain.run(exe, ["devnet", "down", "--dir", dir], timeout: 60)
                try? FileManager.default.removeItem(atPath: dir)
            }
            guard try BenchOnchain.run(exe, ["devnet", "init", "--dir", dir] + (insecure ? ["--insecure"] : []), timeout: 60).code == 0 else { throw CLIError("devnet init failed") }
            let up = try BenchOnchain.run(exe, ["devnet", "up", "--dir", dir], timeout: 120)
            guard up.code == 0 else { throw CLIError("devnet up failed: \(up.out)") }
            let net = try Devnet(dir: dir)
            guard let tccPID = net.pid("tcc1") else { throw CLIError("the devnet's TCC is not running") }
            // The operator watches the TCC; each party has its own account.
            let bus = try await net.connectOperator()
            func party() async throws -> Trader {
                let id = try PartyIdentity.create(network: "devnet")
                let b = try await net.connect(party: id.did) { $0.offlinePolicy = .queue(limit: 1_000_000) }
                return Trader(chain: ChainClient(bus: b, timeout: 60), identity: id)
            }
            let provider = try await party()
            let consumer = try await party()
            try await provider.registerDID()
            try await consumer.registerDID()
            _ = try await provider.publishOffer(["offerId": "bench", "computingPower": ["resourceType": "gpu"], "unitPrice": 10, "capacity": .number(Double(channels))])
            progress("recording \(channels) TICs")
            var tics: [(String, VerifiableCredential)] = []
            let tit = BaseTemplates.tit
            var claim = ProviderTemplates.sampleTITClaim(provider: provider.me.did, consumer: consumer.me.did, period: 1, evidenceEvery: 100)
            for k in ["priceTable", "incentiveFactor"] { claim[k] = nil }
            claim["computingPower"] = ["resourceType": "gpu", "units": 1]
            claim["settlementStrategy"] = ["period": 1, "evidenceEvery": 100, "evidenceEveryMax": 1000]
            let resolver = LocalDIDResolver()
            resolver.add(try DIDHistory(create: provider.me.operation!))
            resolver.add(try DIDHistory(create: consumer.me.operation!))
            let templates = LocalTemplateStore()
            var apps: [VerifiableCredential] = []
            for _ in 0..<channels {
                apps.append(try await TIC.issue(application: try consumer.apply(claim: claim, template: tit), providerKey: provider.me.key, providerMethod: provider.me.verificationMethod, resolver: resolver, templates: templates))
            }
            try await withThrowingTaskGroup(of: (String, VerifiableCredential).self) { g in
                var next = 0
                func add() {
                    let t = apps[next]
                    next += 1
                    g.addTask { (try await consumer.record(tic: t, offerId: "bench")["channelId"]!.stringValue!, t) }
                }
                for _ in 0..<min(200, apps.count) { add() }
                while let r = try await g.next() {
                    tics.append(r)
                    if next < apps.count { add() }
                }
            }
            progress("authenticating \(2 * channels) parties")
            var pairs: [(ChannelSession, ChannelSession)] = []
            for (id, t) in tics {
                let p = try provider.session(channel: id, tic: t)
                let c = try consumer.session(channel: id, tic: t)
                p.verifyReceived = false
                c.verifyReceived = false
                pairs.append((p, c))
            }
            try await withThrowingTaskGroup(of: Void.self) { g in
                var next = 0
                func add() {
                    let (p, c) = pairs[next]
                    next += 1
                    g.addTask {
                        try await p.open(timeout: 60)
                        try await c.open(timeout: 60)
                    }
                }
                for _ in 0..<min(100, pairs.count) { add() }
                while try await g.next() != nil { if next < pairs.count { add() } }
            }
            // The cryptography a TCC cannot avoid, on one core, for one of these TSCs.
            let crypto = try await cryptoMicros(pairs[0].0, consumer: consumer.me)
            // The TCC's own account of its cryptography under this load (thread CPU time).
            let tccStatus = Guarded<JSON?>(nil)
            _ = try await bus.subscribe(Topics.tccStatus("tcc1"), qos: .atMostOnce) { m in
                if let j = try? JSONParser.parse(m.payload) { tccStatus.withLock { $0 = j } }
            }
            try await Task.sleep(nanoseconds: 1_200_000_000)
            let status0 = tccStatus.withLock { $0 }
            progress("load: \(Int(rate)) settlements/s over \(channels) channels for \(seconds) s")
            let stats = Stats()
            let perChannel = rate / Double(channels)
            let firstStart = DateTime.currentTime() - (perChannel * seconds + 30)
            let cpu0 = Self.cpuMicros(tccPID)
            let t0 = DateTime.currentTime()
            let end = t0 + seconds
            await withTaskGroup(of: Void.self) { g in
                for (k, (p, _)) in pairs.enumerated() {
                    g.addTask {
                        // Spread the channels' schedules over one interval.
                        var due = t0 + Double(k) / Double(channels) / perChannel
                        while due < end && DateTime.currentTime() < end {
                            let wait = due - DateTime.currentTime()
                            if wait > 0 { try? await Task.sleep(nanoseconds: UInt64(wait * 1e9)) }
                            // Behind schedule (saturated): skip the missed slots rather than burst.
                            due = max(due, DateTime.currentTime() - 1 / perChannel)
                            let s = DateTime.currentTime()
                            do {
                                _ = try await p.settle(usage: 0.0001, firstStart: firstStart, timeout: 10)
                                let l = (DateTime.currentTime() - s) * 1000
                                stats.lock.withLock { stats.latencies.append(l) }
                            } catch {
                                stats.lock.withLock {
                                    stats.errors += 1
                                    if stats.firstError == nil { stats.firstError = "\(error)" }
                                }
                            }
                            due += 1 / perChannel
                        }
                    }
                }
            }
            let elapsed = DateTime.currentTime() - t0
            let cpu1 = Self.cpuMicros(tccPID)
            try await Task.sleep(nanoseconds: 1_200_000_000)
            let status1 = tccStatus.withLock { $0 }
            await bus.disconnect()
            await provider.chain.bus.disconnect()
            await consumer.chain.bus.disconnect()
            let ds = (status1?["settlements"]?.doubleValue ?? 0) - (status0?["settlements"]?.doubleValue ?? 0)
            let dc = (status1?["cryptoMicros"]?.doubleValue ?? 0) - (status0?["cryptoMicros"]?.doubleValue ?? 0)
            let tccCrypto = ds > 0 ? dc / ds : 0
            let lat = stats.lock.withLock { stats.latencies.sorted() }
            func pct(_ q: Double) -> Double { lat.isEmpty ? 0 : (lat[min(lat.count - 1, Int(Double(lat.count) * q))] * 10).rounded() / 10 }
            let n = lat.count
            let tccCPU = n > 0 ? Double(cpu1 - cpu0) / Double(n) : 0
            let out: JSON = [
                "secure": .bool(!insecure), "channels": .number(Double(channels)), "settlementsPerSecond": .number((Double(n) / elapsed).rounded()), "p50Millis": .number(pct(0.5)),
                "p99Millis": .number(pct(0.99)), "tccCpuMicrosPerSettlement": .number(tccCPU.rounded()), "cryptoMicrosPerSettlement": .number(crypto.rounded()),
                "ratio": .number(crypto > 0 ? (tccCPU / crypto * 100).rounded() / 100 : 0),
                "tccCryptoMicrosPerSettlement": .number(tccCrypto.rounded()),
                "ratioUnderLoad": .number(tccCrypto > 0 ? (tccCPU / tccCrypto * 100).rounded() / 100 : 0),
                "offeredRate": .number(rate), "settlements": .number(Double(n)),
                "seconds": .number((elapsed * 100).rounded() / 100), "errors": .number(Double(stats.errors)),
                "firstError": stats.firstError.map(JSON.string) ?? .null,
            ]
            if json {
                Output.line(out.compactString())
            } else {
                Output.line(
                    "\(insecure ? "INSECURE network" : "secure network (parties over TLS)"): \(channels) channels: \(out["settlementsPerSecond"]!.intValue ?? 0) settlements/s (offered \(Int(rate))), latency p50 \(pct(0.5)) ms p99 \(pct(0.99)) ms; TCC CPU \(Int(tccCPU)) µs/settlement vs its cryptography \(Int(crypto)) µs: ratio \(out["ratio"]!.compactString()) (vs the \(Int(tccCrypto)) µs the TCC's cryptography took under this load: \(out["ratioUnderLoad"]!.compactString()))\(stats.errors > 0 ? "; \(stats.errors) errors, first: \(stats.firstError ?? "")" : "")")
            }
        }
    }

    func progress(_ s: String) { if !json { FileHandle.standardError.write(Data("\(s)…\n".utf8)) } }

    /// user + system CPU of a process, in microseconds (Linux /proc, clock ticks of 1/100 s).
    static func cpuMicros(_ pid: pid_t) -> Int {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = s.lastIndex(of: ")") else { return 0 }
        let f = s[s.index(after: close)...].split(separator: " ")
        // After the command: state(0) ppid(1) … utime(11) stime(12).
        guard f.count > 12, let u = Int(f[11]), let k = Int(f[12]) else { return 0 }
        let hz = Int(sysconf(Int32(_SC_CLK_TCK)))
        return (u + k) * 1_000_000 / max(hz, 1)
    }

    /// Median over rounds of: verify the provider's and the consumer's proofs, sign the TCC proof.
    func cryptoMicros(_ p: ChannelSession, consumer: PartyIdentity) async throws -> Double {
        let tcc = Ed25519SecretKey()
        let claim = p.terms.claim(sequence: 1, start: DateTime.currentTime() - 100, usage: 0.0001)
        let prop = try TSC.propose(claim: .object(claim), template: BaseTemplates.tst, tccDID: "did:key:x", providerKey: p.me.key, providerMethod: p.me.verificationMethod)
        let joint = try prop.signed(with: consumer.key, options: .init(verificationMethod: consumer.verificationMethod, id: TSC.consumerProofID))
        var unsigned = joint.json
        unsigned["proof"] = nil
        let proofs = joint.proofs
        let pk = p.me.key.publicKey
        let ck = consumer.key.publicKey
        var rounds: [Double] = []
        for _ in 0..<7 {
            let n = 200
            let s = DateTime.currentTime()
            for _ in 0..<n {
                try EddsaJcs2022.verifyProof(document: unsigned, proof: proofs[0], key: pk)
                try EddsaJcs2022.verifyProof(document: unsigned, proof: proofs[1], key: ck)
                _ = try TSC.issueVerified(joint, tccKey: tcc, tccMethod: "did:key:x#k")
            }
            rounds.append((DateTime.currentTime() - s) * 1e6 / Double(n))
        }
        return rounds.sorted()[rounds.count / 2]
    }
}
