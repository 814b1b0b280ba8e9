import ArgumentParser
import EFSCBus
import EFSCCore
import Foundation

/// `efsc chain …`: read-only queries to a running network over the bus.
struct ChainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chain", abstract: "Query a running network over the bus (status, blocks, transactions).",
        subcommands: [Status.self, BlockQuery.self, TxQuery.self, ChainSubmit.self, ChainLoad.self])

    struct Common: ParsableArguments {
        @OptionGroup var brokerOptions: BrokerOptions
        @Option(name: .long, help: "Chain group.") var group = "transaction"
        @Option(name: .long, help: "Ask this node (default: any node).") var node: String?
        @Option(name: .long, help: "Seconds to wait for the answer.") var timeout: Double = 5
        @Flag(name: .long, help: "Print JSON.") var json = false

        func query(_ kind: String, _ params: JSONObject) async throws -> JSON {
            let client = try await brokerOptions.connect(clientPrefix: "efsc-chain")
            defer { Task { await client.disconnect() } }
            let topic = node.map { Topics.query(group, kind, node: $0) } ?? Topics.query(group, kind)
            let body: JSON = ["kind": .string(kind), "params": .object(params)]
            let r = try await client.request(topic, payload: try JCS.canonicalize(body), timeout: timeout)
            let j: JSON
            do { j = try JSONParser.parse(r.payload) } catch { throw CLIError("malformed reply from the node: \(error)") }
            guard j["ok"]?.boolValue == true else { throw CLIError(j["error"]?.stringValue ?? "the node refused the query") }
            return j["result"] ?? .null
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A node's view of a group: group, height, view, leader, pendingPool, lastBlockHash.")
        @OptionGroup var common: Common

        func run() async throws {
            let r = try await exitOnError(code: 1) { try await common.query("status", [:]) }
            if common.json {
                Output.line(r.compactString())
            } else {
                Output.line(
                    "\(r["group"]?.stringValue ?? "?") on \(r["node"]?.stringValue ?? "?"): height \(r["height"]?.intValue ?? 0), view \(r["view"]?.intValue ?? 0), leader \(r["leader"]?.stringValue ?? "?"), pending \(r["pendingPool"]?.intValue ?? 0), last block \(r["lastBlockHash"]?.stringValue ?? "")")
            }
        }
    }

    struct BlockQuery: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "block", abstract: "A committed block with its hash and certificate.")
        @OptionGroup var common: Common
        @Option(name: .long, help: "Height (default: the latest).") var height: Int?

        func run() async throws {
            let r = try await exitOnError(code: 1) { try await common.query("block", height.map { ["height": .number(Double($0))] } ?? [:]) }
            Output.line(common.json ? r.compactString() : r.prettyString())
        }
    }

    struct TxQuery: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "tx", abstract: "Where a transaction is: height, index and Merkle inclusion proof.")
        @OptionGroup var common: Common
        @Option(name: .long, help: "Transaction hash (hex SHA-256 of its canonical JSON).") var hash: String

        func run() async throws {
            let r = try await exitOnError(code: 1) { try await common.query("tx", ["hash": .string(hash)]) }
            Output.line(common.json ? r.compactString() : r.prettyString())
        }
    }
}
