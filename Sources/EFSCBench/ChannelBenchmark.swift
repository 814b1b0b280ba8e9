#if canImport(Glibc)
import Glibc
#endif
import EFSCBus
import EFSCChannel
import EFSCCore
import EFSCCredentials
import EFSCDevnet
import EFSCIdentity
import EFSCSDK
import Foundation

/// `efsc bench channels`: settlements through the broker and K TCC
/// processes of a fresh devnet, with the TCCs' CPU per settlement against
/// the cryptography a settlement cannot avoid, measured in the same run.
public struct ChannelBenchmark: Sendable {
    public struct Options: Sendable {
        public var channels = 1000
        public var seconds = 10.0
        /// Live mode: settlements per second offered in total.
        public var rate = 5000.0
        public var insecure = false
        public var presigned = false
        public var tccs = 1
        public var idleChannels = 0
        public init() {}
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        init(_ d: String) { description = d }
    }

    let o: Options
    let progress: @Sendable (String) -> Void

    public init(_ options: Options, progress: @escaping @Sendable (String) -> Void) {
        o = options
        self.progress = progress
    }

    /// Limits of the options (named in `--help`).
    public static let channelRange = 1...20_000
    public static let tccRange = 1...8
    public static let idleRange = 0...50_000

    /// user + system CPU of a process, in microseconds (Linux /proc, clock ticks).
    public static func cpuMicros(_ pid: pid_t) -> Int {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = s.lastIndex(of: ")") else { return 0 }
        let f = s[s.index(after: close)...].split(separator: " ")
        // After the command: state(0) ppid(1) … utime(11) stime(12).
        guard f.count > 12, let u = Int(f[11]), let k = Int(f[12]) else { return 0 }
        let hz = Int(sysconf(Int32(_SC_CLK_TCK)))
        return (u + k) * 1_000_000 / max(hz, 1)
    }

    /// Resident memory of a process in bytes (/proc/PID/status VmRSS).
    public static func residentBytes(_ pid: pid_t) -> Int {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
        for line in s.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
        }
        return 0
    }

    /// The median over rounds of one settlement's unavoidable cryptography:
    /// verify the provider's and the consumer's proofs, add the TCC's proof,
    /// canonicalize the TSC (eddsa-jcs-2022), on this one thread.
    public static func cryptoMicros(terms: SettlementTerms, provider: PartyIdentity, consumer: PartyIdentity) throws -> Double {
        let tcc = Ed25519SecretKey()
        let claim = terms.claim(sequence: 1, start: DateTime.currentTime() - 100, usage: 0.0001)
        let prop = try TSC.propose(claim: .object(claim), template: BaseTemplates.tst, tccDID: "did:key:x", providerKey: provider.key, providerMethod: provider.verificationMethod)
        let joint = try prop.signed(with: consumer.key, options: .init(verificationMethod: consumer.verificationMethod, id: TSC.consumerProofID))
        var unsigned = joint.json
        unsigned["proof"] = nil
        let proofs = joint.proofs
        let pk = provider.key.publicKey
        let ck = consumer.key.publicKey
        var rounds: [Double] = []
        for _ in 0..<7 {
            let n = 200
            let s = CPUClock.threadMicros()
            for _ in 0..<n {
                try EddsaJcs2022.verifyProof(document: unsigned, proof: proofs[0], key: pk)
                try EddsaJcs2022.verifyProof(document: unsigned, proof: proofs[1], key: ck)
                let t = try TSC.issueVerified(joint, tccKey: tcc, tccMethod: "did:key:x#k")
                _ = try JCS.canonicalize(.object(t.json))
            }
            rounds.append((CPUClock.threadMicros() - s) / Double(n))
        }
        return rounds.sorted()[rounds.count / 2]
    }

    /// The TCCs' retained status, per TCC name.
    final class TCCWatch: @unchecked Sendable {
        let lock = Lock()
        var status: [String: JSON] = [:]
        func sum(_ key: String) -> Double { lock.withLock { status.values.reduce(0) { $0 + ($1[key]?.doubleValue ?? 0) } } }
        func each(_ key: String) -> [String: Int] { lock.withLock { status.mapValues { $0[key]?.intValue ?? 0 } } }
    }

    public func run() async throws -> JSON {
        guard Self.channelRange.contains(o.channels), o.seconds > 0, o.rate > 0, Self.tccRange.contains(o.tccs), Self.idleRange.contains(o.idleChannels) else {
            throw Failure("--channels \(Self.channelRange), --tccs \(Self.tccRange), --idle-channels \(Self.idleRange), --seconds > 0, --rate > 0")
        }
        let exe = Devnet.executable
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-bench-channels-\(getpid())").path
        try? FileManager.default.removeItem(atPath: dir)
        defer {
            _ = try? ChildProcess.run(exe, ["devnet", "down", "--dir", dir], timeout: 60)
            try? FileManager.default.removeItem(atPath: dir)
        }
        let initArgs = ["devnet", "init", "--dir", dir, "--tcc-count", String(o.tccs)] + (o.insecure ? ["--insecure"] : [])
        guard try ChildProcess.run(exe, initArgs, timeout: 60).code == 0 else { throw Failure("devnet init failed") }
        let up = try ChildProcess.run(exe, ["devnet", "up", "--dir", dir], timeout: 120)
        guard up.code == 0 else { throw Failure("devnet up failed: \(up.out)") }
        let net = try Devnet(dir: dir)
        let names = (1...o.tccs).map { "tcc\($0)" }
        var pids = names.compactMap { net.pid($0) }
        guard pids.count == o.tccs else { throw Failure("not every TCC of the devnet is running") }
        func tccCPU() -> Int { pids.reduce(0) { $0 + Self.cpuMicros($1) } }
        func tccRSS() -> Int { pids.reduce(0) { $0 + Self.residentBytes($1) } }
        let bus = try await net.connectOperator()
        defer { Task { await bus.disconnect() } }
        let watch = TCCWatch()
        for n in names {
            _ = try await bus.subscribe(Topics.tccStatus(n), qos: .atMostOnce) { m in
                if let j = try? JSONParser.parse(m.payload) { watch.lock.withLock { watch.status[n] = j } }
            }
        }
        func party() async throws -> Trader {
            let id = try PartyIdentity.create(network: "devnet")
            let b = try await net.connect(party: id.did) { $0.offlinePolicy = .queue(limit: 1_000_000) }
            return Trader(chain: ChainClient(bus: b, timeout: 60), identity: id)
        }
        let provider = try await party()
        let consumer = try await party()
        defer {
            Task {
                await provider.chain.bus.disconnect()
                await consumer.chain.bus.disconnect()
            }
        }
        try await provider.registerDID()
        try await consumer.registerDID()
        _ = try await provider.publishOffer(
            ["offerId": "bench", "computingPower": ["resourceType": "gpu"], "unitPrice": 10, "capacity": .number(Double(o.channels + o.idleChannels))])
        var claim = ProviderTemplates.sampleTITClaim(provider: provider.me.did, consumer: consumer.me.did, period: 1, evidenceEvery: 100)
        for k in ["priceTable", "incentiveFactor"] { claim[k] = nil }
        claim["computingPower"] = ["resourceType": "gpu", "units": 1]
        claim["settlementStrategy"] = ["period": 1, "evidenceEvery": 100, "evidenceEveryMax": 1000]
        let resolver = LocalDIDResolver()
        resolver.add(try DIDHistory(create: provider.me.operation!))
        resolver.add(try DIDHistory(create: consumer.me.operation!))
        let templates = LocalTemplateStore()
        func record(_ n: Int) async throws -> [(String, VerifiableCredential)] {
            var apps: [VerifiableCredential] = []
            for _ in 0..<n {
                apps.append(
                    try await TIC.issue(
                        application: try consumer.apply(claim: claim, template: BaseTemplates.tit), providerKey: provider.me.key,
                        providerMethod: provider.me.verificationMethod, resolver: resolver, templates: templates))
            }
            return try await withThrowingTaskGroup(of: (String, VerifiableCredential).self) { g in
                var out: [(String, VerifiableCredential)] = []
                var next = 0
                func add() {
                    let t = apps[next]
                    next += 1
                    g.addTask { (try await consumer.record(tic: t, offerId: "bench")["channelId"]!.stringValue!, t) }
                }
                for _ in 0..<min(200, apps.count) { add() }
                while let r = try await g.next() {
                    out.append(r)
                    if next < apps.count { add() }
                }
                return out
            }
        }
        func waitOpen(_ n: Int) async throws {
            try await StateWait.until("the TCCs reporting \(n) open channels", timeout: 120 + Double(n) / 100, every: 0.5) { watch.sum("openChannels") >= Double(n) }
        }
        var out: JSONObject = ["secure": .bool(!o.insecure), "channels": .number(Double(o.channels)), "tccs": .number(Double(o.tccs)), "presigned": .bool(o.presigned)]

        // Idle cost: resident memory and CPU per second of the TCCs with N open, idle channels.
        if o.idleChannels > 0 {
            try await Task.sleep(nanoseconds: 1_500_000_000)
            let rss0 = tccRSS()
            let c0 = tccCPU()
            try await Task.sleep(nanoseconds: 10_000_000_000)
            let base = Double(tccCPU() - c0) / 10 / 1000
            progress("recording \(o.idleChannels) idle channels")
            _ = try await record(o.idleChannels)
            try await waitOpen(o.idleChannels)
            // What a TCC holding N channels needs, not the high-water mark of
            // opening them in a burst: the TCCs restart and recover them from
            // their stores, then settle.
            for n in names {
                guard try ChildProcess.run(exe, ["devnet", "stop-node", "--dir", dir, n], timeout: 60).code == 0,
                    try ChildProcess.run(exe, ["devnet", "start-node", "--dir", dir, n], timeout: 60).code == 0
                else { throw Failure("cannot restart \(n)") }
            }
            pids = names.compactMap { net.pid($0) }
            guard pids.count == o.tccs else { throw Failure("a TCC did not come back after its restart") }
            watch.lock.withLock { watch.status = [:] }
            try await waitOpen(o.idleChannels)
            try await Task.sleep(nanoseconds: 5_000_000_000)
            let rss1 = tccRSS()
            let c1 = tccCPU()
            try await Task.sleep(nanoseconds: 10_000_000_000)
            let idle = Double(tccCPU() - c1) / 10 / 1000
            out["idleChannels"] = .number(Double(o.idleChannels))
            out["memoryBytesPerIdleChannel"] = .number((Double(rss1 - rss0) / Double(o.idleChannels)).rounded())
            out["idleCpuMillisPerSecond"] = .number((idle * 10).rounded() / 10)
            out["baseCpuMillisPerSecond"] = .number((base * 10).rounded() / 10)
        }

        progress("recording \(o.channels) TICs")
        let tics = try await record(o.channels)
        try await waitOpen(o.channels + o.idleChannels)
        progress("authenticating \(2 * o.channels) parties")
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
        // Every channel is owned by exactly one TCC: the one that admitted both parties.
        let owners = pairs.map { ($0.0.tccDID, $0.1.tccDID) }
        guard owners.allSatisfy({ $0.0 != nil && $0.0 == $0.1 }) else { throw Failure("a channel's parties were admitted by different TCCs") }
        let byTCC = Dictionary(grouping: owners.compactMap(\.0), by: { $0 }).mapValues(\.count)
        out["channelsPerTCC"] = .object(JSONObject(byTCC.sorted { $0.key < $1.key }.map { ($0.key, JSON.number(Double($0.value))) }))
        let crypto = try Self.cryptoMicros(terms: pairs[0].0.terms, provider: provider.me, consumer: consumer.me)
        out["cryptoMicrosPerSettlement"] = .number(crypto.rounded())
        func ratio(_ cpu: Double) -> JSON { .number(crypto > 0 ? (cpu / crypto * 100).rounded() / 100 : 0) }

        if o.presigned {
            for (p, c) in pairs {
                await p.detach()
                await c.detach()
            }
            let firstStart = DateTime.currentTime() - 20_000
            let load = PresignedLoad(
                provider: provider.me, consumer: consumer.me, providerBus: provider.chain.bus, consumerBus: consumer.chain.bus,
                channels: pairs.map { ($0.0.terms.channelId, $0.0.terms, $0.0.tccDID!) }, firstStart: firstStart, usage: 0.0001)
            try await load.attach()
            let template = try await ChainTemplateStore(chain: provider.chain).template(id: BaseTemplates.tst.id, version: BaseTemplates.tst.version)
            func prepare(rate: Double) async throws {
                let per = max(4, Int((rate * o.seconds * 1.2 / Double(o.channels)).rounded(.up)) + 2)
                progress("pre-signing \(per * o.channels) settlements")
                try await load.prepare(perChannel: per, template: template)
            }
            func phase(_ name: String, _ body: () async -> PresignedLoad.Phase) async throws -> (PresignedLoad.Phase, Double) {
                let c0 = tccCPU()
                let p = await body()
                let left = await load.drain(timeout: 30)
                let cpu = Double(tccCPU() - c0) / Double(max(p.completed, 1))
                if left > 0 { throw Failure("\(name): \(left) settlements still outstanding 30 s after the phase") }
                load.trim()
                return (p, cpu)
            }
            try await prepare(rate: 6000)
            progress("saturated: every channel with one settlement outstanding for \(o.seconds) s")
            let (sat, satCPU) = try await phase("saturated") { await load.closedLoop(seconds: o.seconds) }
            let satRate = sat.perSecond
            progress("saturated at \(Int(satRate))/s; latency at 50 % and 80 % of it, CPU at 600/s")
            try await prepare(rate: satRate * 1.3 + 600)
            let (half, _) = try await phase("50 %") { await load.openLoop(rate: satRate * 0.5, seconds: o.seconds) }
            let (eighty, _) = try await phase("80 %") { await load.openLoop(rate: satRate * 0.8, seconds: o.seconds) }
            let (low, lowCPU) = try await phase("600/s") { await load.openLoop(rate: min(600, satRate * 0.5), seconds: o.seconds) }
            let (errors, firstError) = load.errorSummary
            out["saturatedPerSecond"] = .number(satRate.rounded())
            out["settlementsPerSecond"] = .number(satRate.rounded())
            out["p50Millis"] = .number(sat.percentile(0.5))
            out["p99Millis"] = .number(sat.percentile(0.99))
            out["p50MillisAtHalf"] = .number(half.percentile(0.5))
            out["p99MillisAtHalf"] = .number(half.percentile(0.99))
            out["p50MillisAt80"] = .number(eighty.percentile(0.5))
            out["p99MillisAt80"] = .number(eighty.percentile(0.99))
            out["tccCpuMicrosPerSettlement"] = .number(satCPU.rounded())
            out["ratio"] = ratio(satCPU)
            out["lowRate"] = .number(low.perSecond.rounded())
            out["tccCpuMicrosPerSettlementAtLowRate"] = .number(lowCPU.rounded())
            out["ratioAtLowRate"] = ratio(lowCPU)
            out["p99MillisAtLowRate"] = .number(low.percentile(0.99))
            out["settlements"] = .number(Double(sat.completed + half.completed + eighty.completed + low.completed))
            out["skippedSlots"] = .number(Double(half.skipped + eighty.skipped + low.skipped))
            out["seconds"] = .number(o.seconds)
            out["errors"] = .number(Double(errors))
            out["firstError"] = firstError.map(JSON.string) ?? .null
        } else {
            try await live(pairs, crypto: crypto, tccCPU: tccCPU, watch: watch, into: &out)
        }
        out["tccOpenChannels"] = .object(JSONObject(watch.each("openChannels").sorted { $0.key < $1.key }.map { ($0.key, JSON.number(Double($0.value))) }))
        return .object(out)
    }

    /// Live signing: the provider signs each proposal and the consumer
    /// verifies and countersigns it, on this machine, at `rate` in total.
    func live(_ pairs: [(ChannelSession, ChannelSession)], crypto: Double, tccCPU: () -> Int, watch: TCCWatch, into out: inout JSONObject) async throws {
        try await Task.sleep(nanoseconds: 1_200_000_000)
        let s0 = watch.sum("settlements")
        let k0 = watch.sum("cryptoMicros")
        progress("load: \(Int(o.rate)) settlements/s over \(o.channels) channels for \(o.seconds) s")
        final class Stats: @unchecked Sendable {
            let lock = Lock()
            var latencies: [Double] = []
            var errors = 0
            var firstError: String?
        }
        let stats = Stats()
        let channels = o.channels
        let perChannel = o.rate / Double(channels)
        let seconds = o.seconds
        let firstStart = DateTime.currentTime() - (perChannel * seconds + 30)
        let cpu0 = tccCPU()
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
                            _ = try await p.settle(usage: 0.0001, firstStart: firstStart, timeout: 10, retryEvery: 10)
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
        let cpu1 = tccCPU()
        try await Task.sleep(nanoseconds: 1_200_000_000)
        let ds = watch.sum("settlements") - s0
        let dc = watch.sum("cryptoMicros") - k0
        let tccCrypto = ds > 0 ? dc / ds : 0
        let lat = stats.lock.withLock { stats.latencies.sorted() }
        func pct(_ q: Double) -> Double { lat.isEmpty ? 0 : (lat[min(lat.count - 1, Int(Double(lat.count) * q))] * 10).rounded() / 10 }
        let n = lat.count
        let cpu = n > 0 ? Double(cpu1 - cpu0) / Double(n) : 0
        out["settlementsPerSecond"] = .number((Double(n) / elapsed).rounded())
        out["p50Millis"] = .number(pct(0.5))
        out["p99Millis"] = .number(pct(0.99))
        out["tccCpuMicrosPerSettlement"] = .number(cpu.rounded())
        out["ratio"] = .number(crypto > 0 ? (cpu / crypto * 100).rounded() / 100 : 0)
        out["tccCryptoMicrosPerSettlement"] = .number(tccCrypto.rounded())
        out["ratioUnderLoad"] = .number(tccCrypto > 0 ? (cpu / tccCrypto * 100).rounded() / 100 : 0)
        out["offeredRate"] = .number(o.rate)
        out["settlements"] = .number(Double(n))
        out["seconds"] = .number((elapsed * 100).rounded() / 100)
        let (errors, firstError) = stats.lock.withLock { (stats.errors, stats.firstError) }
        out["errors"] = .number(Double(errors))
        out["firstError"] = firstError.map(JSON.string) ?? .null
    }
}
