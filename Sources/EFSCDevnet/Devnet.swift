import EFSCBus
import EFSCCore
import EFSCIdentity
import Foundation

/// Why a devnet operation failed, with a code a caller can match on.
public struct DevnetError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        /// Not a devnet directory, or one already exists.
        case directory
        /// An option is out of range.
        case invalid
        /// A tool (openssl, mosquitto, mosquitto_ctrl) is missing or failed.
        case setup
        /// A process did not come up or go down in time.
        case timeout
        /// The account does not exist, or the name is taken or reserved.
        case account
    }
    public let code: Code
    public let message: String
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { message }
}

/// A devnet directory: `network.json`, `broker/`, `nodeK/` (config.json,
/// data/, node.log, node.pid, client.crt/.key), `tccK/`, `tccK.json`,
/// `client.json` (the default connection profile of client commands) and
/// `parties/` (a profile per party added with `add-party`).
///
/// Secure (the default): the broker refuses anonymous clients, each node
/// and TCC logs in with its own account (dynamic security plugin, roles of
/// topics.md), and a TLS listener that requires a client certificate signed
/// by the network CA serves everything not on this host. `--insecure`: an
/// anonymous loopback broker (broker/dev.conf), for tests of that case only.
public struct Devnet: Sendable {
    public let dir: String
    public let network: JSON

    public init(dir: String) throws {
        self.dir = dir
        let p = dir + "/network.json"
        guard let data = FileManager.default.contents(atPath: p) else {
            throw DevnetError(.directory, "\(dir) is not a devnet (no network.json; run `efsc devnet init --dir \(dir)`)")
        }
        do { network = try JSONParser.parse([UInt8](data)) } catch { throw DevnetError(.directory, "\(p): \(error)") }
    }

    public var nodes: [String] { network["nodes"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? [] }
    public var groups: [String] { network["groups"]?.arrayValue?.compactMap(\.stringValue) ?? [] }
    public var brokerPort: Int { network["brokerPort"]?.intValue ?? 1883 }
    public var brokerTLSPort: Int? { network["brokerTLSPort"]?.intValue }
    /// The plain loopback listener (components on this host).
    public var brokerURL: String { "mqtt://127.0.0.1:\(brokerPort)" }
    /// The TLS listener.
    public var brokerTLSURL: String? { brokerTLSPort.map { "mqtts://127.0.0.1:\($0)" } }
    public var isSecure: Bool { network["security"]?.stringValue != "insecure" }
    public var brokerDir: String { dir + "/broker" }

    /// TCCs of the devnet (directories `tccK/` with a config.json).
    public var tccs: [String] {
        (1...16).map { "tcc\($0)" }.filter { FileManager.default.fileExists(atPath: "\(dir)/\($0)/config.json") }
    }

    public static func isTCC(_ name: String) -> Bool { name.hasPrefix("tcc") }

    public func pid(_ node: String) -> pid_t? {
        let file = Self.isTCC(node) ? "tcc.pid" : "node.pid"
        guard let t = try? String(contentsOfFile: "\(dir)/\(node)/\(file)", encoding: .utf8), let p = Int32(t.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            return nil
        }
        return kill(p, 0) == 0 ? p : nil
    }

    public var brokerPID: pid_t? {
        guard let t = try? String(contentsOfFile: "\(brokerDir)/mosquitto.pid", encoding: .utf8), let p = Int32(t.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            return nil
        }
        return kill(p, 0) == 0 ? p : nil
    }

    /// The running `efsc` binary (devnet starts its nodes and TCCs with it).
    public static var executable: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path
    }

    // MARK: connection profiles

    /// The profile of the devnet's own tooling (status, up): account `operator`.
    public var operatorProfilePath: String { brokerDir + "/operator.json" }
    /// The dynamic-security admin's profile.
    public var adminProfilePath: String { brokerDir + "/admin.json" }
    /// The default profile of client commands (`--network DIR`): account `client`.
    public var clientProfilePath: String { dir + "/client.json" }
    public var partiesDir: String { dir + "/parties" }
    public func partyProfilePath(_ name: String) -> String { "\(partiesDir)/\(name).json" }

    public func profile(_ path: String) throws -> BrokerProfile {
        if FileManager.default.fileExists(atPath: path) { return try BrokerProfile.load(path) }
        // A devnet made before profiles existed: the anonymous loopback broker.
        var p = BrokerProfile(url: brokerURL)
        p.insecure = true
        return p
    }

    /// A connected client of the devnet's operator account.
    public func connectOperator() async throws -> MQTTClient {
        try await connect(profile: operatorProfilePath) { $0.connectTimeout = 3 }
    }

    // MARK: processes

    /// Starts a node (`nodeK`) or a TCC (`tccK`) unless it runs already.
    public func startNode(_ node: String) throws -> pid_t {
        if let p = pid(node) { return p }
        let kind = Self.isTCC(node) ? "tcc" : "node"
        let child = try ChildProcess(
            path: Self.executable, arguments: [kind, "--config", "\(dir)/\(node)/config.json"], outputPath: "\(dir)/\(node)/\(kind).log")
        try "\(child.pid)\n".write(toFile: "\(dir)/\(node)/\(kind).pid", atomically: true, encoding: .utf8)
        return child.pid
    }

    /// Sends `signal` and waits up to 10 s for the process to end.
    public static func stop(_ pid: pid_t, signal sig: Int32) -> Bool {
        kill(pid, sig)
        for _ in 0..<1000 {
            var st: Int32 = 0
            if waitpid(pid, &st, WNOHANG) == pid || kill(pid, 0) != 0 { return true }
            usleep(10_000)
        }
        return false
    }

    /// The broker of this devnet, rendered from `template` (broker/devnet.conf
    /// when secure, broker/dev.conf when insecure; found by `BrokerTemplates`).
    public func brokerProcess(template: String? = nil, dieWithParent: Bool) throws -> BrokerProcess {
        let t = try template ?? BrokerTemplates.find(isSecure ? "devnet.conf" : "dev.conf")
        return try BrokerProcess(template: t, dir: brokerDir, port: brokerPort, tlsPort: brokerTLSPort, dieWithParent: dieWithParent)
    }

    /// Starts the broker (if stopped), every node, then every TCC, and waits
    /// until each reports its status. Returns a one-line summary.
    public func up(timeout: Double = 30, brokerTemplate: String? = nil) async throws -> String {
        if brokerPID == nil {
            let b = try brokerProcess(template: brokerTemplate, dieWithParent: false)
            try b.start()
            b.detach()
        }
        for n in nodes { _ = try startNode(n) }
        let deadline = DateTime.currentTime() + timeout
        while true {
            let st = try await statuses(seconds: 0.5)
            let ready = nodes.filter { n in groups.allSatisfy { st[n]?[$0] != nil } && pid(n) != nil }
            if ready.count == nodes.count { break }
            if DateTime.currentTime() > deadline {
                throw DevnetError(.timeout, "only \(ready.count) of \(nodes.count) nodes came up within \(Int(timeout)) s; see \(dir)/nodeK/node.log")
            }
        }
        for t in tccs { _ = try startNode(t) }
        while !tccs.isEmpty {
            let st = try await tccStatuses(seconds: 0.5)
            if tccs.allSatisfy({ st[$0] != nil && pid($0) != nil }) { break }
            if DateTime.currentTime() > deadline { throw DevnetError(.timeout, "the TCC did not come up within \(Int(timeout)) s; see \(dir)/tcc1/tcc.log") }
        }
        let where_ = isSecure ? "\(brokerURL) (loopback, accounts) and \(brokerTLSURL ?? "-") (TLS, client certificates)" : "\(brokerURL) (INSECURE: anonymous)"
        return "devnet up: broker \(where_), \(nodes.count) nodes, \(tccs.count) TCC(s)"
    }

    /// Stops every TCC and node (SIGTERM, then SIGKILL after 10 s) and the broker.
    public func down() {
        let pids = (tccs + nodes).compactMap { pid($0) }
        for p in pids { kill(p, SIGTERM) }
        for p in pids where !Self.stop(p, signal: SIGTERM) { _ = Self.stop(p, signal: SIGKILL) }
        if let b = brokerPID, !Self.stop(b, signal: SIGTERM) { _ = Self.stop(b, signal: SIGKILL) }
    }

    // MARK: status

    /// Latest retained status of every TCC, by name.
    public func tccStatuses(seconds: Double = 0.7) async throws -> [String: JSON] {
        try await retained([Topics.tccStatus("+")], seconds: seconds) { j in j["name"]?.stringValue.map { ($0, "tcc") } }
            .compactMapValues { $0["tcc"] }
    }

    /// Latest retained status of every node and group.
    public func statuses(seconds: Double = 0.7) async throws -> [String: [String: JSON]] {
        try await retained(groups.map { Topics.statusAll($0) }, seconds: seconds) { j in
            guard let node = j["node"]?.stringValue, let grp = j["group"]?.stringValue else { return nil }
            return (node, grp)
        }
    }

    /// Collects the retained JSON messages on `filters` for `seconds`, keyed
    /// by what `key` picks from each (outer, inner); others are skipped.
    public func retained(_ filters: [String], seconds: Double, key: @escaping @Sendable (JSON) -> (String, String)?) async throws -> [String: [String: JSON]] {
        let client = try await connectOperator()
        let collected = StatusBox()
        for f in filters {
            try await client.subscribe(f, qos: .atLeastOnce) { m in
                guard let j = try? JSONParser.parse(m.payload), let (a, b) = key(j) else { return }
                collected.set(a, b, j)
            }
        }
        try await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
        await client.disconnect()
        return collected.value
    }

    final class StatusBox: @unchecked Sendable {
        let lock = Lock()
        var value: [String: [String: JSON]] = [:]
        func set(_ n: String, _ g: String, _ j: JSON) { lock.withLock { value[n, default: [:]][g] = j } }
    }
}

/// Finds the broker configurations of `broker/` (dev.conf, devnet.conf, …):
/// the explicit path, then `broker/` in the current directory, next to the
/// executable and up to five directories above it, then
/// /usr/local/share/efsc/broker and /usr/share/efsc/broker (the image's layout).
public enum BrokerTemplates {
    public static func find(_ name: String, explicit: String? = nil) throws -> String {
        var candidates: [String] = []
        if let e = explicit { candidates.append(e) }
        candidates.append(FileManager.default.currentDirectoryPath + "/broker/" + name)
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<5 {
            candidates.append(dir.appendingPathComponent("broker/" + name).path)
            dir = dir.deletingLastPathComponent()
        }
        candidates += ["/usr/local/share/efsc/broker/" + name, "/usr/share/efsc/broker/" + name]
        for c in candidates where FileManager.default.fileExists(atPath: c) { return c }
        throw DevnetError(.setup, "cannot find broker/\(name) (run from the repository or pass --broker-config)")
    }
}
