import ArgumentParser
import EFSCBus
import EFSCCore
import EFSCDevnet
import EFSCIdentity
import Foundation

/// `efsc devnet`: a local network of chain nodes and a broker.
struct DevnetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devnet", abstract: "Create, start, inspect and stop a local network (broker + chain nodes).",
        subcommands: [Init.self, Up.self, Down.self, Status.self, StopNode.self, StartNode.self, AddParty.self, RemoveParty.self, Rotate.self, Byzantine.self])

    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Generate node keys, genesis, configurations and the network's broker security in a directory.",
            discussion: """
                Secure by default: creates a development CA (broker/ca.crt, ca.key) and the broker's server certificate, \
                one broker account per node and TCC (dynamic security plugin; roles of topics.md), the admin, operator and \
                client accounts, and each one's password and client certificate (files of mode 600). `devnet up` then \
                starts a broker that refuses anonymous clients, with a loopback listener and a TLS listener that requires a \
                client certificate of this CA. client.json is the connection profile of client commands (--network DIR). \
                --insecure makes an anonymous loopback broker instead (tests of that case only).
                """)
        @Option(name: .long, help: "Devnet directory (created).") var dir: String
        @Option(name: .long, help: "Number of nodes, n = 3f+1 (4, 7, 10, …).") var nodes = 4
        @Option(name: .long, help: "Chain groups, comma-separated.") var groups = "identity,transaction"
        @Option(name: .long, help: "Network name (used in did:efsc).") var network = "devnet"
        @Option(name: .long, help: "Transactions per block, M.") var m = 256
        @Option(name: .long, help: "Minimum milliseconds between blocks.") var minBlockInterval = 0
        @Option(name: .long, help: "Broker port, plain loopback listener (default: a free loopback port).") var brokerPort: Int?
        @Option(name: .long, help: "Broker port, TLS listener (default: a free loopback port).") var brokerTlsPort: Int?
        @Option(name: .long, help: "Further TCC DIDs allowed to submit evidence (comma-separated).") var tccs = ""
        @Option(name: .long, help: "TCCs to generate (tccK.json identity + tccK/config.json each), 1...16; they share channels.") var tccCount = 1
        @Option(name: .long, help: "Broker URL written into the node and TCC configurations (default mqtt://127.0.0.1:<broker port>; not on loopback it must be mqtts://, e.g. Compose's mqtts://broker:8883).")
        var brokerUrl: String?
        @Option(name: .long, help: "Further names the broker's certificate is valid for, comma-separated (Compose: broker).") var brokerHosts = ""
        @Flag(name: .long, help: "An anonymous broker with no accounts and no TLS: anyone who reaches it can write every topic.") var insecure = false

        func run() async throws {
            try await exitOnError(code: 1) {
                var o = Devnet.Options()
                o.nodes = nodes
                o.groups = groups.split(separator: ",").map(String.init)
                o.network = network
                o.maxTransactionsPerBlock = m
                o.minBlockIntervalMillis = minBlockInterval
                o.brokerPort = brokerPort
                o.brokerTLSPort = brokerTlsPort
                o.extraTCCs = tccs.split(separator: ",").map(String.init)
                o.tccCount = tccCount
                o.brokerURL = brokerUrl
                o.brokerHosts = brokerHosts.split(separator: ",").map(String.init)
                o.insecure = insecure
                if insecure { DevnetCommand.warnInsecure() }
                let net = try await Devnet.create(dir: dir, options: o)
                let security = net.isSecure ? "accounts + TLS \(net.brokerTLSURL ?? "")" : "INSECURE (anonymous)"
                Output.line("devnet in \(dir): \(net.nodes.count) nodes, groups \(net.groups.joined(separator: ",")), broker \(net.brokerURL), \(security)")
            }
        }
    }

    static func warnInsecure() {
        Output.note("WARNING: insecure devnet — its broker accepts anonymous clients; anyone who reaches it can publish consensus messages, blocks, channel-control events and other parties' channel traffic. For tests of that case only.")
    }

    struct Up: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start the devnet's broker (broker/devnet.conf; --insecure devnets: broker/dev.conf) and nodes, and wait until every node reports its status.")
        @Option(name: .long, help: "Devnet directory.") var dir: String
        @Option(name: .long, help: "Broker configuration template to render the broker from (default broker/devnet.conf or broker/dev.conf).") var brokerConfig: String?
        @Option(name: .long, help: "Seconds to wait for the nodes.") var timeout: Double = 30

        func run() async throws {
            try await exitOnError(code: 1) {
                let net = try Devnet(dir: dir)
                if !net.isSecure { DevnetCommand.warnInsecure() }
                Output.line(try await net.up(timeout: timeout, brokerTemplate: brokerConfig))
            }
        }
    }

    struct Down: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop the devnet's nodes (SIGTERM) and broker.")
        @Option(name: .long, help: "Devnet directory.") var dir: String

        func run() async throws {
            try await exitOnError(code: 1) {
                // SIGTERM to all at once (each stops gracefully), then wait for each.
                try Devnet(dir: dir).down()
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
                let out: JSON = ["broker": .string(net.brokerURL), "brokerTLS": net.brokerTLSURL.map(JSON.string) ?? .null, "secure": .bool(net.isSecure), "brokerRunning": .bool(net.brokerPID != nil), "nodes": .array(nodes), "tccs": .array(tccs)]
                if json {
                    Output.line(out.compactString())
                    return
                }
                Output.line("broker \(net.brokerURL)\(net.brokerTLSURL.map { " and \($0) (TLS)" } ?? " (INSECURE: anonymous)") \(net.brokerPID == nil ? "(stopped)" : "")")
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
