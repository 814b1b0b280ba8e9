import Foundation

/// Why a local broker could not be started.
public struct BrokerError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { "broker: \(message)" }
}

/// A local `mosquitto` process started from one of the configurations in
/// `broker/`, on loopback ports chosen here. Used by tests, benchmarks and
/// devnet. The rendered configuration, persistence and log live in `dir`.
public final class BrokerProcess: @unchecked Sendable {
    public let dir: String
    public let port: Int
    public let tlsPort: Int?
    public let configPath: String
    public private(set) var process: ChildProcess?
    private let dieWithParent: Bool

    public var url: String { "mqtt://127.0.0.1:\(port)" }
    public var tlsURL: String? { tlsPort.map { "mqtts://127.0.0.1:\($0)" } }
    public var logPath: String { dir + "/mosquitto.log" }

    /// Renders `template` (a broker/ config) for this instance: the first
    /// `listener` gets `port`, a second one `tlsPort`; `persistence_location`
    /// points into `dir`; `@DIR@` is replaced by `dir` (certificates, password
    /// and ACL files of secure.conf).
    public init(template: String, dir: String, port: Int? = nil, tlsPort: Int? = nil, dieWithParent: Bool = true) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        self.dir = dir
        self.port = try port ?? BrokerProcess.freePort()
        var listeners = 0
        var tls: Int? = nil
        guard let text = try? String(contentsOfFile: template, encoding: .utf8) else {
            throw BrokerError(message: "cannot read configuration template \(template)")
        }
        var out: [String] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            var l = String(line).replacingOccurrences(of: "@DIR@", with: dir)
            if l.contains("@DYNSEC@") {
                guard let plugin = DynamicSecurity.pluginPath() else {
                    throw BrokerError(message: "\(template) needs Mosquitto's dynamic security plugin (mosquitto_dynamic_security.so), which is not installed")
                }
                l = l.replacingOccurrences(of: "@DYNSEC@", with: plugin)
            }
            if l.hasPrefix("listener ") {
                listeners += 1
                if listeners == 1 {
                    l = "listener \(self.port) 127.0.0.1"
                } else {
                    let p = try tlsPort ?? BrokerProcess.freePort()
                    tls = p
                    l = "listener \(p) 127.0.0.1"
                }
            } else if l.hasPrefix("persistence_location") {
                l = "persistence_location \(dir)/data/"
            } else if l.hasPrefix("log_dest") {
                continue
            }
            out.append(l)
        }
        out.append("log_dest file \(dir)/mosquitto.log")
        out.append("pid_file \(dir)/mosquitto.pid")
        // Started as root, mosquitto would switch to the `mosquitto` user and
        // lose access to `dir`; keep the starting user instead.
        if getuid() == 0 { out.append("user root") }
        try FileManager.default.createDirectory(atPath: dir + "/data", withIntermediateDirectories: true)
        self.tlsPort = tls
        self.configPath = dir + "/mosquitto.conf"
        self.dieWithParent = dieWithParent
        try out.joined(separator: "\n").write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    deinit { stop() }

    /// A loopback TCP port that was free a moment ago.
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw BrokerError(message: "socket(): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sp in
                bind(fd, sp, len) == 0 && getsockname(fd, sp, &len) == 0
            }
        }
        guard ok else { throw BrokerError(message: "cannot find a free port: \(String(cString: strerror(errno)))") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// Whether a loopback TCP port can be bound right now.
    public static func isFree(_ port: Int) -> Bool { onLoopbackSocket(port) { bind($0, $1, $2) == 0 } }

    /// A free loopback port outside the kernel's ephemeral range
    /// (/proc/sys/net/ipv4/ip_local_port_range), for a port chosen now and
    /// bound later: a port from `freePort()` may meanwhile become the local
    /// end of some outgoing connection. Not one of `taken`.
    public static func stablePort(excluding taken: Set<Int> = []) throws -> Int {
        var lo = 32768, hi = 60999
        if let t = try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8) {
            let v = t.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
            if v.count == 2 { (lo, hi) = (v[0], v[1]) }
        }
        let below = lo - 10_000 >= 1_000 ? Array(10_000..<lo) : []
        let above = hi < 65_000 ? Array((hi + 1)...65_535) : []
        let candidates = below + above
        guard !candidates.isEmpty else { return try freePort() }
        for _ in 0..<500 {
            let p = candidates[Int.random(in: 0..<candidates.count)]
            if !taken.contains(p) && isFree(p) { return p }
        }
        throw BrokerError(message: "no free loopback port outside the ephemeral range \(lo)-\(hi)")
    }

    /// The path of an executable on $PATH (or in the sbin directories).
    public static func which(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin"
        let dirs: [String] = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin"]
        for d in dirs {
            let p = "\(d)/\(name)"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    /// Starts mosquitto and waits until every listener accepts connections.
    public func start(timeout: Double = 10) throws {
        guard process == nil else { return }
        guard let mosquitto = Self.which("mosquitto") else {
            throw BrokerError(message: "mosquitto not found (apt-get install mosquitto)")
        }
        try? FileManager.default.removeItem(atPath: pidPath)
        let p: ChildProcess
        if dieWithParent {
            // A watchdog shell: the broker ends when this process ends, even
            // after kill -9, so a crashed test run leaves no orphan broker.
            let me = getpid()
            p = try ChildProcess(
                path: "/bin/sh",
                arguments: [
                    "-c",
                    """
                    "$1" -c "$2" & m=$!
                    trap 'kill -TERM $m 2>/dev/null; wait $m; exit 0' TERM INT
                    while kill -0 \(me) 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 0.1; done
                    kill -TERM $m 2>/dev/null; wait $m
                    """,
                    "efsc-broker", mosquitto, configPath,
                ])
        } else {
            p = try ChildProcess(path: mosquitto, arguments: ["-c", configPath])
        }
        process = p
        let deadline = Date().addingTimeInterval(timeout)
        for port in [port] + (tlsPort.map { [$0] } ?? []) {
            while !Self.accepts(port) {
                if !p.isRunning {
                    process = nil
                    let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
                    throw BrokerError(message: "mosquitto exited at start: \(log.split(separator: "\n").suffix(3).joined(separator: " | "))")
                }
                if Date() > deadline {
                    stop()
                    throw BrokerError(message: "mosquitto did not accept connections on port \(port) within \(timeout) s")
                }
                usleep(20_000)
            }
        }
    }

    var pidPath: String { dir + "/mosquitto.pid" }

    /// The mosquitto process id (from its pid file), once it runs.
    public var brokerPID: pid_t? {
        guard let t = try? String(contentsOfFile: pidPath, encoding: .utf8), let v = Int32(t.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            return nil
        }
        return v
    }

    /// Stops the broker: SIGTERM (it saves its persistence file), then SIGKILL after 5 s.
    public func stop() {
        guard let p = process else { return }
        process = nil
        let broker = brokerPID
        // The watchdog shell forwards SIGTERM to mosquitto and waits for it.
        p.signal(SIGTERM)
        if !p.wait(timeout: 5) {
            if let broker { kill(broker, SIGKILL) }
            p.signal(SIGKILL)
            p.wait(timeout: 5)
        }
    }

    /// Kills the broker at once (no persistence save), as a crash would.
    public func kill9() {
        guard let p = process else { return }
        process = nil
        if let b = brokerPID { kill(b, SIGKILL) }
        p.signal(SIGTERM)
        p.wait(timeout: 5)
    }

    /// Leaves the broker running after this object goes away (devnet).
    public func detach() { process = nil }

    public var isRunning: Bool { process?.isRunning ?? false }

    static func accepts(_ port: Int) -> Bool { onLoopbackSocket(port) { connect($0, $1, $2) == 0 } }

    /// `body` on a fresh TCP socket and the address 127.0.0.1:`port`.
    static func onLoopbackSocket(_ port: Int, _ body: (Int32, UnsafePointer<sockaddr>, socklen_t) -> Bool) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { body(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }
}
