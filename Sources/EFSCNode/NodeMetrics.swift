import EFSCCore
import Foundation
import Prometheus

/// A node's Prometheus metrics (per group): height, view, pending-pool
/// length, commit latency, consensus messages in and out.
public final class NodeMetrics: @unchecked Sendable {
    public let registry = PrometheusCollectorRegistry()
    struct Group {
        let height: Gauge
        let view: Gauge
        let pool: Gauge
        let messagesIn: Counter
        let messagesOut: Counter
        let transactions: Counter
        let commitLatency: ValueHistogram
    }
    private var groups: [String: Group] = [:]
    private let lock = Lock()

    public init() {}

    func group(_ g: String) -> Group {
        lock.withLock {
            if let x = groups[g] { return x }
            let l = [("group", g)]
            let x = Group(
                height: registry.makeGauge(name: "efsc_chain_height", labels: l, help: "Height of the last committed block"),
                view: registry.makeGauge(name: "efsc_pbft_view", labels: l, help: "Current PBFT view"),
                pool: registry.makeGauge(name: "efsc_pending_pool", labels: l, help: "Transactions waiting for a block"),
                messagesIn: registry.makeCounter(name: "efsc_consensus_messages_in_total", labels: l, help: "Consensus messages received"),
                messagesOut: registry.makeCounter(name: "efsc_consensus_messages_out_total", labels: l, help: "Consensus messages sent"),
                transactions: registry.makeCounter(name: "efsc_committed_transactions_total", labels: l, help: "Transactions committed"),
                commitLatency: registry.makeValueHistogram(
                    name: "efsc_commit_latency_seconds", labels: l, buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
                    help: "Seconds from a block's proposal timestamp to its commit here"))
            groups[g] = x
            return x
        }
    }

    public func text() -> String { registry.emitToString() }
}

/// Serves `GET /metrics` (Prometheus text format) on a loopback port.
/// A deliberately small HTTP/1.0 responder: one request per connection.
public final class MetricsServer: @unchecked Sendable {
    let fd: Int32
    public let port: Int
    let metrics: NodeMetrics
    private var running = true

    public init(port: Int, metrics: NodeMetrics) throws {
        self.metrics = metrics
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        guard fd >= 0 else { throw ConfigError("metrics: socket(): \(String(cString: strerror(errno)))") }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && listen(fd, 16) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok else {
            let e = String(cString: strerror(errno))
            close(fd)
            throw ConfigError("metrics: cannot listen on 127.0.0.1:\(port): \(e)")
        }
        self.port = Int(UInt16(bigEndian: addr.sin_port))
        let t = Thread { [weak self] in self?.serve() }
        t.name = "efsc-metrics"
        t.start()
    }

    func serve() {
        while running {
            let c = accept(fd, nil, nil)
            if c < 0 { if running { continue } else { return } }
            var buf = [UInt8](repeating: 0, count: 2048)
            let n = read(c, &buf, buf.count)
            let request = n > 0 ? String(decoding: buf[0..<n], as: UTF8.self) : ""
            let ok = request.hasPrefix("GET /metrics")
            let body = ok ? metrics.text() : "not found: try GET /metrics\n"
            let head = "HTTP/1.0 \(ok ? "200 OK" : "404 Not Found")\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n"
            let out = Array((head + body).utf8)
            _ = out.withUnsafeBytes { write(c, $0.baseAddress, $0.count) }
            close(c)
        }
    }

    public func stop() {
        running = false
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }
}
