import Foundation

public struct MetricsEndpointError: Error, Sendable, CustomStringConvertible {
    public let code = "metrics-endpoint"
    public let message: String
    public var description: String { message }
}

/// Serves `GET /metrics` (Prometheus text format) on a loopback port.
/// A deliberately small HTTP/1.0 responder: one request per connection.
public final class MetricsEndpoint: @unchecked Sendable {
    let fd: Int32
    public let port: Int
    let text: @Sendable () -> String
    private var running = true

    /// Listens on 127.0.0.1:`port` (0 picks a free one) and answers
    /// `GET /metrics` with `text()`.
    public init(port: Int, text: @escaping @Sendable () -> String) throws {
        self.text = text
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        guard fd >= 0 else { throw MetricsEndpointError(message: "metrics: socket(): \(String(cString: strerror(errno)))") }
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
            throw MetricsEndpointError(message: "metrics: cannot listen on 127.0.0.1:\(port): \(e)")
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
            // A client that connects and sends nothing cannot stall the endpoint.
            var timeout = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var buf = [UInt8](repeating: 0, count: 2048)
            let n = read(c, &buf, buf.count)
            let request = n > 0 ? String(decoding: buf[0..<n], as: UTF8.self) : ""
            let ok = request.hasPrefix("GET /metrics")
            let body = ok ? text() : "not found: try GET /metrics\n"
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
