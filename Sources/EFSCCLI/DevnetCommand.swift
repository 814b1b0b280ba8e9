import ArgumentParser
import EFSCBus
import EFSCCore
import EFSCIdentity
import Foundation

/// A devnet directory: `network.json`, `broker/`, and `nodeK/config.json`,
/// `nodeK/data/`, `nodeK/node.log`, `nodeK/node.pid` per node.
struct Devnet {
    let dir: String
    let network: JSON

    init(dir: String) throws {
        self.dir = dir
        let p = dir + "/network.json"
        guard FileManager.default.fileExists(atPath: p) else { throw CLIError("\(dir) is not a devnet (no network.json; run `efsc devnet init --dir \(dir)`)") }
        network = try Output.readJSON(p)
    }

    var nodes: [String] { network["nodes"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? [] }
    var groups: [String] { network["groups"]?.arrayValue?.compactMap(\.stringValue) ?? [] }
    var brokerPort: Int { network["brokerPort"]?.intValue ?? 1883 }
    var brokerURL: String { "mqtt://127.0.0.1:\(brokerPort)" }

    /// TCCs of the devnet (directories `tccK/` with a config.json).
    var tccs: [String] {
        (1...16).map { "tcc\($0)" }.filter { FileManager.default.fileExists(atPath: "\(dir)/\($0)/config.json") }
    }

    static func isTCC(_ name: String) -> Bool { name.hasPrefix("tcc") }

    func pid(_ node: String) -> pid_t? {
        let file = Self.isTCC(node) ? "tcc.pid" : "node.pid"
        guard let t = try? String(contentsOfFile: "\(dir)/\(node)/\(file)", encoding: .utf8), let p = Int32(t.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            return nil
        }
        return kill(p, 0) == 0 ? p : nil
    }

    var brokerPID: pid_t? {
        guard let t = try? String(contentsOfFile: "\(dir)/broker/mosquitto.pid", encoding: .utf8), let p = Int32(t.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            return nil
        }
        return kill(p, 0) == 0 ? p : nil
    }

    static var executable: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path
    }

    /// Starts a node (`nodeK`) or a TCC (`tccK`) unless it runs already.
    func startNode(_ node: String) throws -> pid_t {
        if let p = pid(node) { return p }
        let kind = Self.isTCC(node) ? "tcc" : "node"
        let child = try ChildProcess(
            path: Self.executable, arguments: [kind, "--config", "\(dir)/\(node)/config.json"], outputPath: "\(dir)/\(node)/\(kind).log")
        try "\(child.pid)\n".write(toFile: "\(dir)/\(node)/\(kind).pid", atomically: true, encoding: .utf8)
        return child.pid
    }

    /// Latest retained status of every TCC, by name.
    func tccStatuses(seconds: Double = 0.7) async throws -> [String: JSON] {
        try await retained([Topics.tccStatus("+")], seconds: seconds) { j in j["name"]?.stringValue.map { ($0, "tcc") } }
            .compactMapValues { $0["tcc"] }
    }

    /// Collects the retained JSON messages on `filters` for `seconds`, keyed
    /// by what `key` picks from each (outer, inner); others are skipped.
    func retained(_ filters: [String], seconds: Double, key: @escaping @Sendable (JSON) -> (String, String)?) async throws -> [String: [String: JSON]] {
        var c = try MQTTConfiguration(url: brokerURL, clientID: "efsc-devnet-\(Hex.encode(Digest.randomBytes(4)))")
        c.offlinePolicy = .failFast
        c.connectTimeout = 3
        let client = try MQTTClient(c)
        try await client.connect()
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

    /// Sends `signal` and waits up to 10 s for the process to end.
    static func stop(_ pid: pid_t, signal sig: Int32) -> Bool {
        kill(pid, sig)
        for _ in 0..<1000 {
            var st: Int32 = 0
            if waitpid(pid, &st, WNOHANG) == pid || kill(pid, 0) != 0 { return true }
            usleep(10_000)
        }
        return false
    }

    /// Latest retained status of every node and group.
    func statuses(seconds: Double = 0.7) async throws -> [String: [String: JSON]] {
        try await retained(groups.map { Topics.statusAll($0) }, seconds: seconds) { j in
            guard let node = j["node"]?.stringValue, let grp = j["group"]?.stringValue else { return nil }
            return (node, grp)
        }
    }

    final class StatusBox: @unchecked Sendable {
        let lock = Lock()
        var value: [String: [String: JSON]] = [:]
        func set(_ n: String, _ g: String, _ j: JSON) { lock.withLock { value[n, default: [:]][g] = j } }
    }
}

/// `efsc devnet`: a local network of chain nodes and a broker.
struct DevnetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devnet", abstract: "Create, start, inspect and stop a local network (broker + chain nodes).",
        subcommands: [Init.self, Up.self, Down.self, Status.self, StopNode.self, StartNode.self, Byzantine.self])

    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Generate node keys, genesis and configurations in a directory.")
        @Option(name: .long, help: "Devnet directory (created).") var dir: String
        @Option(name: .long, help: "Number of nodes, n = 3f+1 (4, 7, 10, …).") var nodes = 4
        @Option(name: .long, help: "Chain groups, comma-separated.") var groups = "identity,transaction"
        @Option(name: .long, help: "Network name (used in did:efsc).") var network = "devnet"
        @Option(name: .long, help: "Transactions per block, M.") var m = 256
        @Option(name: .long, help: "Minimum milliseconds between blocks.") var minBlockInterval = 0
        @Option(name: .long, help: "Broker port (default: a free loopback port).") var brokerPort: Int?
        @Option(name: .long, help: "Further TCC DIDs allowed to submit evidence (comma-separated).") var tccs = ""
        @Option(name: .long, help: "TCCs to generate (tccK.json identity + tccK/config.json each), 1...16; they share channels.") var tccCount = 1
        @Option(name: .long, help: "Broker URL written into the node and TCC configurations (default mqtt://127.0.0.1:<broker port>; Compose uses mqtt://broker:1883).")
        var brokerUrl: String?

        func run() async throws {
            try await exitOnError(code: 1) {
                guard nodes >= 4, (nodes - 1) % 3 == 0, nodes <= 100 else { throw CLIError("--nodes must be 3f+1 (4, 7, 10, …, ≤ 100)") }
                guard (1...16).contains(tccCount) else { throw CLIError("--tcc-count must be 1...16") }
                let gs = groups.split(separator: ",").map(String.init)
                guard !gs.isEmpty, gs.allSatisfy({ Topics.Group(rawValue: $0) != nil }) else { throw CLIError("--groups must be among identity,transaction") }
                if FileManager.default.fileExists(atPath: dir + "/network.json") { throw CLIError("\(dir) already holds a devnet") }
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                let port = try brokerPort ?? BrokerProcess.freePort()
                let brokerFor = brokerUrl ?? "mqtt://127.0.0.1:\(port)"
                _ = try MQTTConfiguration(url: brokerFor, clientID: "check")
                let keys = (0..<nodes).map { _ in Ed25519SecretKey() }
                let members: [JSON] = keys.enumerated().map { ["id": .string("node\($0.offset + 1)"), "publicKeyMultibase": .string($0.element.publicKey.multibase)] }
                let dirPath = URL(fileURLWithPath: dir).standardizedFileURL.path
                // TCC identities are generated with the network (their DIDs are in genesis);
                // TCC k is attached to node k (round robin) and all share the control topic.
                var tccList: [JSON] = []
                for t in 1...tccCount {
                    let tccKey = Ed25519SecretKey()
                    let (tccDID, _, tccOp) = try EFSCDID.createOperation(network: network, key: tccKey)
                    let tccIdentity: JSON = [
                        "did": .string(tccDID), "verificationMethod": .string("\(tccDID)#key-1"), "secretKeyMultibase": .string(tccKey.multibase),
                        "operation": .object(tccOp),
                    ]
                    try Output.write("\(dir)/tcc\(t).json", tccIdentity.prettyString() + "\n")
                    chmod("\(dir)/tcc\(t).json", 0o600)
                    tccList.append(.string(tccDID))
                    try FileManager.default.createDirectory(atPath: "\(dir)/tcc\(t)/data", withIntermediateDirectories: true)
                    let tccConfig: JSON = [
                        "name": .string("tcc\(t)"), "broker": .string(brokerFor), "dataDir": .string("\(dirPath)/tcc\(t)/data"),
                        "identity": .string("\(dirPath)/tcc\(t).json"), "node": .string("node\((t - 1) % nodes + 1)"),
                        "metricsPort": .number(Double(try BrokerProcess.freePort())),
                        "members": .array(keys.map { .object(["publicKeyMultibase": .string($0.publicKey.multibase)]) }),
                    ]
                    try Output.write("\(dir)/tcc\(t)/config.json", tccConfig.prettyString() + "\n")
                }
                tccList += tccs.split(separator: ",").map { .string(String($0)) }
                for (i, k) in keys.enumerated() {
                    let id = "node\(i + 1)"
                    try FileManager.default.createDirectory(atPath: "\(dir)/\(id)/data", withIntermediateDirectories: true)
                    let cfg: JSON = [
                        "network": .string(network), "nodeId": .string(id), "index": .number(Double(i)), "secretKeyMultibase": .string(k.multibase),
                        "members": .array(members), "groups": .array(gs.map { .string($0) }), "broker": .string(brokerFor),
                        "dataDir": .string("\(dirPath)/\(id)/data"), "tccs": .array(tccList), "maxTransactionsPerBlock": .number(Double(m)),
                        "minBlockIntervalMillis": .number(Double(minBlockInterval)),
                        "metricsPort": .number(Double(try BrokerProcess.freePort())),
                    ]
                    try Output.write("\(dir)/\(id)/config.json", cfg.prettyString() + "\n")
                    chmod("\(dir)/\(id)/config.json", 0o600)
                }
                let net: JSON = [
                    "network": .string(network), "brokerPort": .number(Double(port)), "groups": .array(gs.map { .string($0) }), "nodes": .array(members),
                    "maxTransactionsPerBlock": .number(Double(m)), "tccs": .array(tccList),
                ]
                try Output.write(dir + "/network.json", net.prettyString() + "\n")
                Output.line("devnet in \(dir): \(nodes) nodes, groups \(gs.joined(separator: ",")), broker mqtt://127.0.0.1:\(port)")
            }
        }
    }

    struct Up: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start the devnet's broker (broker/dev.conf) and nodes, and wait until every node reports its status.")
        @Option(name: .long, help: "Devnet directory.") var dir: String
        @Option(name: .long, help: "broker/dev.conf to render the broker from.") var brokerConfig: String?
        @Option(name: .long, help: "Seconds to wait for the nodes.") var timeout: Double = 30

        func run() async throws {
            try await exitOnError(code: 1) {
                let net = try Devnet(dir: dir)
                if net.brokerPID == nil {
                    let b = try BrokerProcess(
                        template: try BenchBus.findDevConf(brokerConfig), dir: dir + "/broker", port: net.brokerPort, dieWithParent: false)
                    try b.start()
                    b.detach()
                }
                for n in net.nodes { _ = try net.startNode(n) }
                let deadline = DateTime.currentTime() + timeout
                while true {
                    let st = try await net.statuses(seconds: 0.5)
                    let ready = net.nodes.filter { n in net.groups.allSatisfy { st[n]?[$0] != nil } && net.pid(n) != nil }
                    if ready.count == net.nodes.count { break }
                    if DateTime.currentTime() > deadline {
                        throw CLIError("only \(ready.count) of \(net.nodes.count) nodes came up within \(Int(timeout)) s; see \(dir)/nodeK/node.log")
                    }
                }
                for t in net.tccs { _ = try net.startNode(t) }
                while !net.tccs.isEmpty {
                    let st = try await net.tccStatuses(seconds: 0.5)
                    if net.tccs.allSatisfy({ st[$0] != nil && net.pid($0) != nil }) { break }
                    if DateTime.currentTime() > deadline { throw CLIError("the TCC did not come up within \(Int(timeout)) s; see \(dir)/tcc1/tcc.log") }
                }
                Output.line("devnet up: broker \(net.brokerURL), \(net.nodes.count) nodes, \(net.tccs.count) TCC(s)")
            }
        }
    }

    struct Down: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop the devnet's nodes (SIGTERM) and broker.")
        @Option(name: .long, help: "Devnet directory.") var dir: String

        func run() async throws {
            try await exitOnError(code: 1) {
                let net = try Devnet(dir: dir)
                // SIGTERM to all at once (each stops gracefully), then wait for each.
                let pids = (net.tccs + net.nodes).compactMap { net.pid($0) }
                for p in pids { kill(p, SIGTERM) }
                for p in pids where !Devnet.stop(p, signal: SIGTERM) { _ = Devnet.stop(p, signal: SIGKILL) }
                if let b = net.brokerPID, !Devnet.stop(b, signal: SIGTERM) { _ = Devnet.stop(b, signal: SIGKILL) }
                Output.line("devnet down")
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the broker URL and, per node, its id, process id and per group height, view, leadership and last block hash.")
        @Option(name: .long, help: "Devnet directory.") var dir: String
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() async throws {
            try await exitOnError(code: 1) {
                let net = try Devnet(dir: dir)
                let st = net.brokerPID == nil ? [:] : try await net.statuses()
                var nodes: [JSON] = []
                for n in net.nodes {
                    var groups = JSONObject()
                    for g in net.groups {
                        guard let s = st[n]?[g] else { continue }
                        groups[g] = [
                            "height": s["height"] ?? .null, "view": s["view"] ?? .null, "leader": s["leader"] ?? .null, "isLeader": s["isLeader"] ?? .null,
                            "lastBlockHash": s["lastBlockHash"] ?? .null, "pendingPool": s["pendingPool"] ?? .null,
                        ]
                    }
                    nodes.append(["id": .string(n), "pid": net.pid(n).map { .number(Double($0)) } ?? .null, "running": .bool(net.pid(n) != nil), "groups": .object(groups)])
                }
                let ts = net.brokerPID == nil ? [:] : try await net.tccStatuses()
                let tccs: [JSON] = net.tccs.map { t in
                    ["id": .string(t), "pid": net.pid(t).map { .number(Double($0)) } ?? .null, "running": .bool(net.pid(t) != nil), "status": ts[t] ?? .null]
                }
                let out: JSON = ["broker": .string(net.brokerURL), "brokerRunning": .bool(net.brokerPID != nil), "nodes": .array(nodes), "tccs": .array(tccs)]
                if json {
                    Output.line(out.compactString())
                    return
                }
                Output.line("broker \(net.brokerURL) \(net.brokerPID == nil ? "(stopped)" : "")")
                for n in nodes {
                    let id = n["id"]!.stringValue!
                    let pid = n["pid"]?.intValue.map(String.init) ?? "-"
                    var line = "\(id) pid \(pid)"
                    for g in net.groups {
                        if let s = n["groups"]?[g] {
                            line += "  \(g): height \(s["height"]?.intValue ?? 0) view \(s["view"]?.intValue ?? 0)\(s["isLeader"]?.boolValue == true ? " leader" : "") \(String((s["lastBlockHash"]?.stringValue ?? "").prefix(12)))"
                        } else {
                            line += "  \(g): -"
                        }
                    }
                    Output.line(line)
                }
                for t in tccs {
                    let st = t["status"]
                    Output.line("\(t["id"]!.stringValue!) pid \(t["pid"]?.intValue.map(String.init) ?? "-")  open channels \(st?["openChannels"]?.intValue ?? 0), settlements \(st?["settlements"]?.intValue ?? 0), pending evidence \(st?["pendingEvidence"]?.intValue ?? 0), N factor \(st?["evidenceFactor"]?.intValue ?? 1)")
                }
            }
        }
    }

    struct StopNode: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "stop-node", abstract: "Stop one node or TCC (SIGTERM, or SIGKILL with --kill).")
        @Option(name: .long, help: "Devnet directory.") var dir: String
        @Flag(name: .long, help: "SIGKILL instead of SIGTERM (a crash).") var kill = false
        @Argument(help: "Node or TCC id, e.g. node2 or tcc1.") var node: String

        func run() async throws {
            try await exitOnError(code: 1) {
                let net = try Devnet(dir: dir)
                guard (net.nodes + net.tccs).contains(node) else { throw CLIError("unknown node '\(node)' (nodes: \((net.nodes + net.tccs).joined(separator: ", ")))") }
                guard let p = net.pid(node) else { throw CLIError("\(node) is not running") }
                guard Devnet.stop(p, signal: kill ? SIGKILL : SIGTERM) else { throw CLIError("\(node) did not stop within 10 s") }
                Output.line("\(node) stopped")
            }
        }
    }

    struct StartNode: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "start-node", abstract: "Start one node or TCC again.")
        @Option(name: .long, help: "Devnet directory.") var dir: String
        @Argument(help: "Node or TCC id, e.g. node2 or tcc1.") var node: String

        func run() async throws {
            try await exitOnError(code: 1) {
                let net = try Devnet(dir: dir)
                guard (net.nodes + net.tccs).contains(node) else { throw CLIError("unknown node '\(node)'") }
                let p = try net.startNode(node)
                Output.line("\(node) started (pid \(p))")
            }
        }
    }
}
