import ArgumentParser
import EFSCBus
import EFSCCore
import Foundation

/// `efsc chain …`: read-only queries to a running network over the bus.
struct ChainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chain", abstract: "Query a running network over the bus (status, blocks, transactions).",
        subcommands: [Status.self, BlockQuery.self, TxQuery.self, DIDQuery.self, TemplateQuery.self, OffersQuery.self, EvidenceQuery.self, ChainSubmit.self, ChainLoad.self])

    struct Common: ParsableArguments {
        @OptionGroup var brokerOptions: BrokerOptions
        @Option(name: .long, help: "Chain group.") var group = "transaction"
        @Option(name: .long, help: "Ask this node (default: any node).") var node: String?
        @Option(name: .long, help: "Seconds to wait for the answer.") var timeout: Double = 5
        @Flag(name: .long, help: "Print JSON.") var json = false

        func query(_ kind: String, _ params: JSONObject) async throws -> JSON {
            let topic = node.map { Topics.query(group, kind, node: $0) } ?? Topics.query(group, kind)
            let body: JSON = ["kind": .string(kind), "params": .object(params)]
            let j = try await brokerOptions.requestJSON(topic, payload: try JCS.canonicalize(body), timeout: timeout, clientPrefix: "efsc-chain")
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

    /// `chain did resolve DID`: the DID document as the identity chain has it.
    struct DIDQuery: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "did", abstract: "DID queries.", subcommands: [Resolve.self])
        struct Resolve: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Resolve a DID on the identity chain (document, metadata, operation log).")
            @OptionGroup var common: Common
            @Option(name: .long, help: "Resolve as of this identity-chain height (default: the latest).") var atHeight: Int?
            @Argument(help: "The DID.") var did: String
            func run() async throws {
                var c = common
                c.group = "identity"
                var p: JSONObject = ["did": .string(did)]
                if let h = atHeight { p["height"] = .number(Double(h)) }
                let params = p
                let r = try await exitOnError(code: 1) { [c] in try await c.query("did", params) }
                Output.line(common.json ? r.compactString() : r.prettyString())
            }
        }
    }

    /// `chain template show ID [--version N]`.
    struct TemplateQuery: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "template", abstract: "Template queries.", subcommands: [Show.self])
        struct Show: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "A template registered on the identity chain.")
            @OptionGroup var common: Common
            @Option(name: .long, help: "Version.") var version = 1
            @Argument(help: "Template id.") var id: String
            func run() async throws {
                var c = common
                c.group = "identity"
                let r = try await exitOnError(code: 1) { [c] in try await c.query("template", ["id": .string(id), "version": .number(Double(version))]) }
                Output.line(common.json ? r.compactString() : r.prettyString())
            }
        }
    }

    /// `chain offers list|match`.
    struct OffersQuery: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "offers", abstract: "Offer book queries.", subcommands: [List.self, Match.self])
        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Every offer on the transaction chain.")
            @OptionGroup var common: Common
            func run() async throws {
                let r = try await exitOnError(code: 1) { try await common.query("offers", [:]) }
                Output.line(common.json ? r.compactString() : r.prettyString())
            }
        }
        struct Match: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Feasible offers for a demand, cheapest total cost first (ties by offer id).")
            @OptionGroup var common: Common
            @Option(name: .long, help: "Resource type, e.g. gpu.") var resourceType: String
            @Option(name: .long, help: "Units wanted.") var quantity: Int
            @Option(name: .long, help: "Highest acceptable unit-hour price.") var maxUnitPrice: Double?
            @Option(name: .long, help: "Hours.") var durationHours: Double = 1
            @Option(name: .long, help: "Minimum memory per unit, GiB.") var minMemoryGiB: Double?
            func run() async throws {
                var d: JSONObject = ["resourceType": .string(resourceType), "quantity": .number(Double(quantity)), "durationHours": .number(durationHours)]
                if let m = maxUnitPrice { d["maxUnitPrice"] = .number(m) }
                if let m = minMemoryGiB { d["minMemoryGiB"] = .number(m) }
                let demand = d
                let r = try await exitOnError(code: 1) { try await common.query("match", demand) }
                Output.line(common.json ? r.compactString() : r.prettyString())
            }
        }
    }

    /// `chain evidence --channel ID | --tsc-hash H`.
    struct EvidenceQuery: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "evidence", abstract: "The latest on-chain evidence of a channel, or of one TSC hash.")
        @OptionGroup var common: Common
        @Option(name: .long, help: "Channel id.") var channel: String?
        @Option(name: .long, help: "TSC hash (hex).") var tscHash: String?
        func run() async throws {
            let p: JSONObject = channel.map { ["channelId": .string($0)] } ?? tscHash.map { ["tscHash": .string($0)] } ?? [:]
            let r = try await exitOnError(code: 1) {
                guard !p.isEmpty else { throw CLIError("give --channel or --tsc-hash") }
                return try await common.query("evidence", p)
            }
            Output.line(common.json ? r.compactString() : r.prettyString())
        }
    }
}
