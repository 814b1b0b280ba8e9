import ArgumentParser
import EFSCBus
import EFSCCore
import EFSCDevnet
import Foundation

/// `efsc bench bus`: publish → broker → subscriber through the Swift client,
/// against mosquitto_pub/mosquitto_sub moving the same traffic in the same run.
struct BenchBus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bus",
        abstract: "Bus throughput and latency of the Swift client vs Mosquitto's own C tools.",
        discussion: """
            Without --broker, starts a private mosquitto from broker/dev.conf (looked up from the current directory
            and from the executable's location) on a free loopback port. Each round publishes --payload-bytes
            messages as fast as the publisher takes them for --seconds through the Swift client (one publishing, one
            subscribing connection; QoS 1 keeps 500 publishes awaiting PUBACK), then the same for --seconds with
            `mosquitto_pub -l` into `mosquitto_sub`; the rate is what the subscriber received per second in that
            window, so the work is sized by the time given, not by a message count. Rounds alternate and medians
            are reported, at QoS 0 and QoS 1 alike, with the ratio Swift / C tools.
            Latency (p50/p99) is publish-to-delivery of 2000 messages sent one at a time before each Swift round
            (so it is not queueing delay). Messages published but not delivered (QoS 0 may drop) are reported as
            lost. Target: ratio ≥ 0.8 at QoS 0. JSON keys: qos, payloadBytes, msgsPerSecond, baselineMsgsPerSecond,
            ratio, p50Micros, p99Micros (plus messages: received by the Swift subscriber over all rounds, lost,
            rounds, seconds). --tls (private broker only: broker/bench-tls.conf, a throwaway CA) adds, in the same
            run and alternating with the plain rounds, the Swift client over the TLS listener with a client
            certificate, and the cost of TLS against plain loopback: tlsMsgsPerSecond, tlsP50Micros, tlsP99Micros,
            tlsRatio (TLS / plain). Exit status: 0 measured, 1 when a round received nothing within 30 s (the error
            names the round and side).
            """)
    @Option(name: .long, help: "Payload size in bytes (16...65536).") var payloadBytes = 256
    @Option(name: .long, help: "QoS 0 or 1.") var qos = 0
    @Option(name: .long, help: "Seconds each measurement publishes for, (0, 600].") var seconds: Double = 2
    @Option(name: .long, help: "Alternating rounds; medians are reported.") var rounds = 3
    @Option(name: .long, help: "Use this broker instead of a private one (mqtt://HOST:PORT).") var broker: String?
    @Option(name: .long, help: "broker/dev.conf to start the private broker from.") var brokerConfig: String?
    @Flag(name: .long, help: "Also measure the Swift client over TLS (client certificate) against the plain loopback run.") var tls = false
    @Flag(name: .long, help: "Print one JSON object.") var json = false

    func validate() throws {
        guard (16...65536).contains(payloadBytes) else { throw ValidationError("--payload-bytes must be 16...65536") }
        guard qos == 0 || qos == 1 else { throw ValidationError("--qos must be 0 or 1") }
        guard seconds > 0 && seconds <= 600 else { throw ValidationError("--seconds must be in (0, 600]") }
        guard (1...51).contains(rounds) else { throw ValidationError("--rounds must be 1...51") }
        guard !(tls && broker != nil) else { throw ValidationError("--tls measures a private broker; it cannot be combined with --broker") }
    }

    func run() async throws {
        try await exitOnError(code: 1) {
            let work = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-bench-bus-\(getpid())").path
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: work) }
            var local: BrokerProcess? = nil
            let url: String
            var tlsClient: MQTTConfiguration.TLS? = nil
            if let b = broker {
                url = b
            } else if tls {
                let ca = try NetworkCA.create(in: work + "/broker")
                try ca.issueClient("bench", certificate: work + "/broker/bench.crt", key: work + "/broker/bench.key")
                tlsClient = .init(caFile: ca.certificate, certFile: work + "/broker/bench.crt", keyFile: work + "/broker/bench.key")
                let p = try BrokerProcess(template: try BrokerTemplates.find("bench-tls.conf", explicit: brokerConfig), dir: work + "/broker")
                try p.start()
                local = p
                url = p.url
            } else {
                let p = try BrokerProcess(template: try BrokerTemplates.find("dev.conf", explicit: brokerConfig), dir: work + "/broker")
                try p.start()
                local = p
                url = p.url
            }
            defer { local?.stop() }
            guard let pub = BrokerProcess.which("mosquitto_pub"), let sub = BrokerProcess.which("mosquitto_sub") else {
                throw CLIError("mosquitto_pub/mosquitto_sub not found (apt-get install mosquitto-clients)")
            }
            let cfg = try MQTTConfiguration(url: url, clientID: "x")
            var swiftRates: [Double] = []
            var baseRates: [Double] = []
            var p50s: [Double] = []
            var p99s: [Double] = []
            var lost = 0
            var received = 0
            var tlsRates: [Double] = [], tlsP50s: [Double] = [], tlsP99s: [Double] = []
            for r in 0..<rounds {
                if let tlsClient, let tlsURL = local?.tlsURL {
                    let t = try await swiftRound(url: tlsURL, round: 1000 + r, tls: tlsClient)
                    tlsRates.append(t.rate)
                    tlsP50s.append(t.p50)
                    tlsP99s.append(t.p99)
                }
                let s = try await swiftRound(url: url, round: r)
                swiftRates.append(s.rate)
                p50s.append(s.p50)
                p99s.append(s.p99)
                lost += s.lost
                received += s.received
                baseRates.append(try await baselineRound(host: cfg.host, port: cfg.port, work: work, pub: pub, sub: sub, round: r))
            }
            let rate = BenchSupport.median(swiftRates)
            let base = BenchSupport.median(baseRates)
            let ratio = base > 0 ? rate / base : 0
            var out: JSONObject = [
                "qos": .number(Double(qos)), "payloadBytes": .number(Double(payloadBytes)), "msgsPerSecond": .number(rate.rounded()),
                "baselineMsgsPerSecond": .number(base.rounded()), "ratio": .number((ratio * 1000).rounded() / 1000),
                "p50Micros": .number(BenchSupport.median(p50s).rounded()), "p99Micros": .number(BenchSupport.median(p99s).rounded()),
                "messages": .number(Double(received)), "lost": .number(Double(lost)), "rounds": .number(Double(rounds)), "seconds": .number(seconds),
            ]
            let tlsRate = tlsRates.isEmpty ? 0 : BenchSupport.median(tlsRates)
            if !tlsRates.isEmpty {
                out["tlsMsgsPerSecond"] = .number(tlsRate.rounded())
                out["tlsP50Micros"] = .number(BenchSupport.median(tlsP50s).rounded())
                out["tlsP99Micros"] = .number(BenchSupport.median(tlsP99s).rounded())
                out["tlsRatio"] = .number(rate > 0 ? (tlsRate / rate * 1000).rounded() / 1000 : 0)
            }
            if json {
                Output.line(JSON.object(out).prettyString())
            } else {
                Output.line("bus: \(payloadBytes) B messages at QoS \(qos), \(rounds) round(s) of \(seconds) s per side, medians; broker \(url)")
                Output.line("  Swift client (libmosquitto)   \(Int(rate)) msgs/s   p50 \(Int(BenchSupport.median(p50s))) µs   p99 \(Int(BenchSupport.median(p99s))) µs   lost \(lost)")
                Output.line("  mosquitto_pub → mosquitto_sub \(Int(base)) msgs/s (the raw limit)")
                Output.line("  ratio \(String(format: "%.3f", ratio)) (target ≥ 0.8 at QoS 0)")
                if !tlsRates.isEmpty {
                    Output.line("  Swift client over TLS         \(Int(tlsRate)) msgs/s   p50 \(Int(BenchSupport.median(tlsP50s))) µs   p99 \(Int(BenchSupport.median(tlsP99s))) µs   (client certificate, TLS 1.2+)")
                    Output.line("  cost of TLS: \(String(format: "%.3f", rate > 0 ? tlsRate / rate : 0)) × the plain loopback rate")
                }
            }
        }
    }

    struct SwiftRound {
        let rate: Double
        let p50: Double
        let p99: Double
        let lost: Int
        let received: Int
    }

    final class Receiver: @unchecked Sendable {
        let lock = Lock()
        var count = 0
        var latencies: [Double] = []
        var recordLatency = true
        var received: Int { lock.withLock { count } }
    }

    final class StopSignal: @unchecked Sendable {
        let lock = Lock()
        var raised = false
        var value: Bool { lock.withLock { raised } }
        func raise() { lock.withLock { raised = true } }
    }

    /// Waits (polling) until `current` moved past `from`; the error names what did not arrive.
    static func firstArrival(_ what: String, from: Int, _ current: () -> Int) async throws {
        try await StateWait.until(what, timeout: 30, every: 0.002) { current() > from }
    }

    /// Samples `current` over a window of `seconds` starting now; returns per-second growth.
    static func window(seconds: Double, _ current: () -> Int) async throws -> Double {
        let a = current(), ta = BenchSupport.monotonic()
        try await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
        let b = current(), tb = BenchSupport.monotonic()
        return Double(b - a) / (tb - ta)
    }

    func swiftRound(url: String, round: Int, tls: MQTTConfiguration.TLS? = nil) async throws -> SwiftRound {
        let topic = Topics.presence("bench-\(getpid())-\(round)")
        var sc = try MQTTConfiguration(url: url, clientID: "bench-sub-\(getpid())-\(round)")
        sc.offlinePolicy = .failFast
        sc.tls = tls
        var pc = try MQTTConfiguration(url: url, clientID: "bench-pub-\(getpid())-\(round)")
        pc.offlinePolicy = .failFast
        pc.tls = tls
        let subscriber = try MQTTClient(sc)
        let publisher = try MQTTClient(pc)
        try await subscriber.connect()
        try await publisher.connect()
        let recv = Receiver()
        recv.latencies.reserveCapacity(2000)
        let q = QoS(rawValue: qos)!
        try await subscriber.subscribe(topic, qos: q) { m in
            let now = BenchSupport.monotonic()
            var sent = 0.0
            if m.payload.count >= 8 {
                sent = m.payload.withUnsafeBytes { $0.loadUnaligned(as: Double.self) }
            }
            recv.lock.withLock {
                recv.count += 1
                if recv.recordLatency { recv.latencies.append((now - sent) * 1e6) }
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
        for i in 0..<2000 {
            try await publisher.publish(topic, payload: stamped(), qos: q)
            try await Self.firstArrival("ping \(i + 1) of round \(round + 1) (Swift client)", from: i) { recv.received }
        }
        let pingLatencies = recv.lock.withLock { () -> [Double] in
            defer {
                recv.count = 0
                recv.latencies = []
                recv.recordLatency = false
            }
            return recv.latencies
        }
        // Throughput: publish as fast as the client takes them until told to
        // stop; QoS 1 keeps a window of 500 publishes awaiting PUBACK.
        let stop = StopSignal()
        let publishing = Task { () -> Int in
            var sent = 0
            if q == .atMostOnce {
                while !stop.value {
                    for _ in 0..<256 { try publisher.publishNow(topic, payload: stamped()) }
                    sent += 256
                    await Task.yield()
                }
            } else {
                while !stop.value {
                    try await withThrowingTaskGroup(of: Void.self) { g in
                        for _ in 0..<500 { g.addTask { try await publisher.publish(topic, payload: stamped(), qos: q) } }
                        try await g.waitForAll()
                    }
                    sent += 500
                }
            }
            return sent
        }
        let rate: Double
        do {
            try await Self.firstArrival("the first message of round \(round + 1) (Swift client)", from: 0) { recv.received }
            rate = try await Self.window(seconds: seconds) { recv.received }
        } catch {
            stop.raise()
            _ = await publishing.result
            throw error
        }
        stop.raise()
        let sent = try await publishing.value
        // Everything published arrives, or nothing more has arrived for 2 s (QoS 0 may drop).
        var last = -1
        var idleSince = BenchSupport.monotonic()
        while recv.received < sent {
            let c = recv.received
            if c != last {
                last = c
                idleSince = BenchSupport.monotonic()
            } else if BenchSupport.monotonic() - idleSince > 2 {
                break
            }
            try await Task.sleep(nanoseconds: 2_000_000)
        }
        await publisher.disconnect()
        await subscriber.disconnect()
        let received = recv.received
        let sorted = pingLatencies.sorted()
        func pct(_ p: Double) -> Double { sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] }
        return SwiftRound(rate: rate, p50: pct(0.5), p99: pct(0.99), lost: max(0, sent - received), received: received)
    }

    /// `mosquitto_pub -l` fed lines through a FIFO for as long as the window
    /// lasts, into `mosquitto_sub` writing each payload as a line to a file:
    /// the rate is the file's growth over --seconds, in messages.
    func baselineRound(host: String, port: Int, work: String, pub: String, sub: String, round: Int) async throws -> Double {
        // A write to the FIFO after the publisher ended must fail with EPIPE, not end this process.
        signal(SIGPIPE, SIG_IGN)
        let topic = Topics.presence("bench-c-\(getpid())-\(round)")
        let fifo = "\(work)/lines-\(round).fifo", output = "\(work)/received-\(round).txt"
        unlink(fifo)
        guard mkfifo(fifo, 0o600) == 0 else { throw CLIError("cannot make a FIFO in \(work): \(String(cString: strerror(errno)))") }
        defer {
            unlink(fifo)
            unlink(output)
        }
        let s = try ChildProcess(
            path: sub, arguments: ["-h", host, "-p", String(port), "-t", topic, "-q", String(qos), "-V", "mqttv5", "-i", "bench-csub-\(getpid())-\(round)"],
            outputPath: output)
        defer { s.terminate(grace: 1) }
        // The subscriber is subscribed once the broker shows it; give it that time before traffic starts.
        try await Task.sleep(nanoseconds: 300_000_000)
        // The feeder: whole lines of payloadBytes - 1 characters, as long as the publisher reads them.
        let stop = StopSignal()
        let line = [UInt8](repeating: 0x78, count: payloadBytes - 1) + [0x0A]
        let chunk = Array([[UInt8]](repeating: line, count: max(1, 65536 / payloadBytes)).joined())
        let feeder = Thread {
            let fd = open(fifo, O_WRONLY)
            guard fd >= 0 else { return }
            defer { close(fd) }
            while !stop.value {
                let w = chunk.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                if w < 0 { return }
            }
        }
        // Started first: opening the FIFO for writing waits for its reader, and
        // the publisher's spawn waits for its open of the FIFO for reading.
        feeder.start()
        defer { stop.raise() }
        let p = try ChildProcess(
            path: pub, arguments: ["-h", host, "-p", String(port), "-t", topic, "-q", String(qos), "-l", "-V", "mqttv5", "-i", "bench-cpub-\(getpid())-\(round)"],
            inputPath: fifo)
        defer { p.terminate(grace: 1) }
        let bytesPerMessage = payloadBytes
        func received() -> Int {
            let size = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
            return size / bytesPerMessage
        }
        try await Self.firstArrival("the first message of round \(round + 1) (mosquitto_pub → mosquitto_sub)", from: 0, received)
        return try await Self.window(seconds: seconds, received)
    }
}
