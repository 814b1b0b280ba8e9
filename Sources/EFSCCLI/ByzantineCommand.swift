import ArgumentParser
import EFSCAdversary
import EFSCCore
import EFSCDevnet
import EFSCNode

extension DevnetCommand {
    /// `efsc devnet byzantine NODE`: a chaos drill — the node replaced by a
    /// Byzantine program with its real key (EFSCAdversary.ByzantineNode).
    struct Byzantine: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Replace a stopped node with a Byzantine program that uses its real key and attacks the others.",
            discussion: """
                Reads NODE's configuration from the devnet directory, listens to both groups' consensus traffic and, every \
                --interval seconds for --seconds, publishes as NODE the crafted messages of each attack: \
                \(PBFTAttack.allCases.map(\.rawValue).joined(separator: ", ")). The honest nodes must refuse them \
                (efsc_refusals_total, their logs), stay up and keep committing. NODE must be stopped first \
                (`efsc devnet stop-node NODE`). Prints what it sent per attack; exit 1 on a bad option or a running NODE.
                """)
        @Option(name: .long, help: "Devnet directory.") var dir: String
        @Option(name: .long, help: "How long to attack (seconds).") var seconds: Double = 10
        @Option(name: .long, help: "Seconds between rounds of attacks.") var interval: Double = 0.25
        @Option(name: .long, help: "Comma-separated attacks (default: all).") var attacks: String?
        @Option(name: .long, help: "Seed of the attacks' random choices.") var seed: UInt64 = 1
        @Flag(name: .long, help: "Print JSON: {node, seconds, observed, sent: {attack: count}}.") var json = false
        @Argument(help: "The node to replace, e.g. node4.") var node: String

        func run() async throws {
            try await exitOnError(code: 1) {
                guard seconds > 0, seconds <= 3600, interval >= 0.01, interval <= 60 else { throw CLIError("--seconds must be in (0, 3600] and --interval in [0.01, 60]") }
                let chosen: [PBFTAttack] = try attacks.map { list in
                    try list.split(separator: ",").map { name in
                        guard let a = PBFTAttack(rawValue: String(name)) else {
                            throw CLIError("unknown attack '\(name)' (attacks: \(PBFTAttack.allCases.map(\.rawValue).joined(separator: ", ")))")
                        }
                        return a
                    }
                } ?? PBFTAttack.allCases
                let net = try Devnet(dir: dir)
                guard net.nodes.contains(node) else { throw CLIError("unknown node '\(node)' (nodes: \(net.nodes.joined(separator: ", ")))") }
                guard net.pid(node) == nil else { throw CLIError("\(node) is running; stop it first (efsc devnet stop-node \(node))") }
                let cfg = try NodeConfig(json: try Output.readJSON("\(dir)/\(node)/config.json"))
                let report = try await ByzantineNode(config: cfg, attacks: chosen, seed: seed).run(seconds: seconds, interval: interval)
                var sent = JSONObject()
                for (a, c) in report.sent.sorted(by: { $0.key.rawValue < $1.key.rawValue }) { sent[a.rawValue] = .number(Double(c)) }
                if json {
                    Output.line(JSON.object(["node": .string(node), "seconds": .number(seconds), "observed": .number(Double(report.observed)), "sent": .object(sent)]).compactString())
                } else {
                    Output.line("\(node) (byzantine) observed \(report.observed) messages; sent " + report.sent.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.rawValue) \($0.value)" }.joined(separator: ", "))
                }
            }
        }
    }
}
