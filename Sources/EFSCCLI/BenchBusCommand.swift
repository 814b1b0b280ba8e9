import ArgumentParser
import EFSCBus
import EFSCCore
import Foundation

/// `efsc bench bus`: publish → broker → subscriber through the Swift client,
/// against mosquitto_pub/mosquitto_sub moving the same traffic in the same run.
struct BenchBus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bus",
        abstract: "Bus throughput and latency of the Swift client vs Mosquitto's own C tools.",
        discussion: """
            Without --broker, starts a private mosquitto from broker/dev.conf (looked up from the current directory
            and from the executable's location) on a free loopback port. Each round sends --messages messages of
            --payload-bytes through the Swift client (one publishing, one subscribing connection), then the same
            number with `mosquitto_pub -l` into `mosquitto_sub -C`; rounds alternate and medians are reported.
            Latency (p50/p99) is publish-to-delivery of 2000 messages sent one at a time before each Swift round
            (so it is not queueing delay). Lost messages (QoS 0) are reported.
            Target: ratio ≥ 0.8 at QoS 0. JSON keys: qos, payloadBytes, msgsPerSecond, baselineMsgsPerSecond,
            ratio, p50Micros, p99Micros (plus messages, lost, rounds).
            """)
    @Option(name: .long, help: "Payload size in bytes (16...65536).") var payloadBytes = 256
    @Option(name: .long, help: "QoS 0 or 1.") var qos = 0
    @Option(name: .long, help: "Approximate seconds per measurement (sets --messages when not given).") var seconds: Double = 2
    @Option(name: .long, help: "Messages per measurement (default: about 100K per second of --seconds).") var messages: Int?
    @Option(name: .long, help: "Alternating rounds; medians are reported.") var rounds = 3
    @Option(name: .long, help: "Use this broker instead of a private one (mqtt://HOST:PORT).") var broker: String?
    @Option(name: .long, help: "broker/dev.conf to start the private broker from.") var brokerConfig: String?
    @Flag(name: .long, help: "Print one JSON object.") var json = false

    func validate() throws {
        guard (16...65536).contains(payloadBytes) else { throw ValidationError("--payload-bytes must be 16...65536") }
        guard qos == 0 || qos == 1 else { throw ValidationError("--qos must be 0 or 1") }
        guard seconds > 0 && seconds <= 600 else { throw ValidationError("--seconds must be in (0, 600]") }
        guard (1...51).contains(rounds) else { throw ValidationError("--rounds must be 1...51") }
        if let m = messages, m < 100 || m > 50_000_000 { throw ValidationError("--messages must be 100...50000000") }
    }

    static func findDevConf(_ explicit: String?) throws -> String {
        var candidates: [String] = []
        if let e = explicit { candidates.append(e) }
        candidates.append(FileManager.default.currentDirectoryPath + "/broker/dev.conf")
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = exe.deletingLastPathComponent()
        for _ in 0..<5 {
            candidates.append(dir.appendingPathComponent("broker/dev.conf").path)
            dir = dir.deletingLastPathComponent()
        }
        for c in candidates where FileManager.default.fileExists(atPath: c) { return c }
        throw CLIError("cannot find broker/dev.conf (run from the repository or pass --broker-config)")
    }

    func run() async throws {
        try await exitOnError(code: 1) {
            let work = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-bench-bus-\(getpid())").path
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: work) }
            var local: BrokerProcess? = nil
            let url: String
            if let b = broker {
                url = b
            } else {
                let p = try BrokerProcess(template: try Self.findDevConf(brokerConfig), dir: work + "/broker")
                try p.start()
                local = p
                url = p.url
            }
            defer { local?.stop() }
            guard let pub = BrokerProcess.which("mosquitto_pub"), let sub = BrokerProcess.which("mosquitto_sub") else {
                throw CLIError("mosquitto_pub/mosquitto_sub not found (apt-get install mosquitto-clients)")
            }
            let cfg = try MQTTConfiguration(url: url, clientID: "x")
            let n = messages ?? max(1000, Int(seconds * 100_000))
            // The baseline's input: n lines of payloadBytes-1 characters plus newline.
            let line = String(repeating: "x", count: payloadBytes - 1) + "\n"
            let input = work + "/lines.txt"
            FileManager.default.createFile(atPath: input, contents: nil)
            let h = try FileHandle(forWritingTo: URL(fileURLWithPath: input))
            let chunk = Data(String(repeating: line, count: 1000).utf8)
            for _ in 0..<(n / 1000) { h.write(chunk) }
            h.write(Data(String(repeating: line, count: n % 1000).utf8))
            try h.close()

            var swiftRates: [Double] = []
            var baseRates: [Double] = []
            var p50s: [Double] = []
            var p99s: [Double] = []
            var lost = 0
            for r in 0..<rounds {
                let s = try await swiftRound(url: url, n: n, round: r)
                swiftRates.append(s.rate)
                p50s.append(s.p50)
                p99s.append(s.p99)
                lost += s.lost
                baseRates.append(try baselineRound(host: cfg.host, port: cfg.port, n: n, input: input, pub: pub, sub: sub, round: r))
            }
            let rate = BenchSupport.median(swiftRates)
            let base = BenchSupport.median(baseRates)
            let out: JSON = [
                "qos": .number(Double(qos)), "payloadBytes": .number(Double(payloadBytes)), "msgsPerSecond": .number(rate.rounded()),
                "baselineMsgsPerSecond": .number(base.rounded()), "ratio": .number(base > 0 ? ((rate / base) * 1000).rounded() / 1000 : 0),
                "p50Micros": .number(BenchSupport.median(p50s).rounded()), "p99Micros": .number(BenchSupport.median(p99s).rounded()),
                "messages": .number(Double(n)), "lost": .number(Double(lost)), "rounds": .number(Double(rounds)),
            ]
            if json {
                Output.line(out.prettyString())
            } else {
                Output.line("bus: \(n) messages × \(payloadBytes) B at QoS \(qos), \(rounds) round(s), medians; broker \(url)")
                Output.line("  Swift client (libmosquitto)   \(Int(rate)) msgs/s   p50 \(Int(BenchSupport.median(p50s))) µs   p99 \(Int(BenchSupport.median(p99s))) µs   lost \(lost)")
                Output.line("  mosquitto_pub → mosquitto_sub \(Int(base)) msgs/s")
                Output.line("  ratio \(String(format: "%.3f", base > 0 ? rate / base : 0)) (target ≥ 0.8 at QoS 0)")
            }
        }
    }

    struct SwiftRound {
        let rate: Double
        let p50: Double
        let p99: Double
        let lost: Int
    }

    final class Receiver: @unchecked Sendable {
        let lock = Lock()
        var count = 0
        var last = 0.0
        var latencies: [Double] = []
        init(capacity: Int) { latencies.reserveCapacity(capacity) }
    }

    func swiftRound(url: String, n: Int, round: Int) async throws -> SwiftRound {
        let topic = Topics.presence("bench-\(getpid())-\(round)")
        var sc = try MQTTConfiguration(url: url, clientID: "bench-sub-\(getpid())-\(round)")
        sc.offlinePolicy = .failFast
        var pc = try MQTTConfiguration(url: url, clientID: "bench-pub-\(getpid())-\(round)")
        pc.offlinePolicy = .failFast
        let subscriber = try MQTTClient(sc)
        let publisher = try MQTTClient(pc)
        try await subscriber.connect()
        try await publisher.connect()
        let recv = Receiver(capacity: n)
        let q = QoS(rawValue: qos)!
        try await subscriber.subscribe(topic, qos: q) { m in
            let now = BenchSupport.monotonic()
            var sent = 0.0
            if m.payload.count >= 8 {
                sent = m.payload.withUnsafeBytes { $0.loadUnaligned(as: Double.self) }
            }
            recv.lock.withLock {
                recv.count += 1
                recv.last = now
                recv.latencies.append((now - sent) * 1e6)
            }
        }
        let payloadBytes = self.payloadBytes
        @Sendable func stamped() -> [UInt8] {
            var payload = [UInt8](repeating: 0x78, count: payloadBytes)
            var t = BenchSupport.monotonic()
            withUnsafeBytes(of: &t) { b in for k in 0..<8 { payload[k] = b[k] } }
            return payload
        }
        // Latency first: one message in flight at a time, so queueing does not count.
        let pings = min(2000, n)
        for i in 0..<pings {
            try await publisher.publish(topic, payload: stamped(), qos: q)
            while recv.lock.withLock({ recv.count }) <= i { await Task.yield() }
        }
        let pingLatencies = recv.lock.withLock { () -> [Double] in
            defer {
                recv.count = 0
                recv.latencies = []
            }
            return recv.latencies
        }
        // Throughput: as fast as the client takes them; QoS 1 keeps a window of
        // 500 publishes awaiting PUBACK.
        let start = BenchSupport.monotonic()
        if q == .atMostOnce {
            for _ in 0..<n { try publisher.publishNow(topic, payload: stamped()) }
        } else {
            var sent = 0
            while sent < n {
                let k = min(500, n - sent)
                try await withThrowingTaskGroup(of: Void.self) { g in
                    for _ in 0..<k { g.addTask { try await publisher.publish(topic, payload: stamped(), qos: q) } }
                    try await g.waitForAll()
                }
                sent += k
            }
        }
        // Wait until everything arrived, or nothing has arrived for 2 s.
        var lastCount = -1
        var idleSince = BenchSupport.monotonic()
        while true {
            let c = recv.lock.withLock { recv.count }
            if c >= n { break }
            if c != lastCount {
                lastCount = c
                idleSince = BenchSupport.monotonic()
            } else if BenchSupport.monotonic() - idleSince > 2 {
                break
            }
            try await Task.sleep(nanoseconds: 2_000_000)
        }
        await publisher.disconnect()
        await subscriber.disconnect()
        let (count, last) = recv.lock.withLock { (recv.count, recv.last) }
        let sorted = pingLatencies.sorted()
        func pct(_ p: Double) -> Double { sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] }
        return SwiftRound(rate: count > 0 ? Double(count) / (last - start) : 0, p50: pct(0.5), p99: pct(0.99), lost: n - count)
    }

    func baselineRound(host: String, port: Int, n: Int, input: String, pub: String, sub: String, round: Int) throws -> Double {
        let topic = Topics.presence("bench-c-\(getpid())-\(round)")
        let s = try ChildProcess(path: sub, arguments: ["-h", host, "-p", String(port), "-t", topic, "-q", String(qos), "-C", String(n), "-V", "mqttv5", "-i", "bench-csub-\(getpid())-\(round)"])
        // Give the subscriber time to subscribe before traffic starts.
        usleep(300_000)
        let start = BenchSupport.monotonic()
        let p = try ChildProcess(
            path: pub, arguments: ["-h", host, "-p", String(port), "-t", topic, "-q", String(qos), "-l", "-V", "mqttv5", "-i", "bench-cpub-\(getpid())-\(round)"],
            inputPath: input)
        let limit = max(30.0, Double(n) / 10_000)
        let finished = s.wait(timeout: limit)
        let end = BenchSupport.monotonic()
        p.terminate(grace: 1)
        if !finished {
            s.terminate(grace: 1)
            throw CLIError("mosquitto_sub did not receive \(n) messages within \(Int(limit)) s (QoS 0 loss?); try --qos 1 or fewer --messages")
        }
        return Double(n) / (end - start)
    }
}
