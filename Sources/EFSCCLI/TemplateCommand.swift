import ArgumentParser
import EFSCCore
import EFSCCredentials

/// `efsc template`: the paper's CPTs — show built-ins, validate claims.
struct TemplateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "template", abstract: "Show templates and validate claims against them.",
        subcommands: [Validate.self, Show.self, List.self, Example.self, Register.self])

    struct Validate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a claim against a template and print every violation with its field path.",
            discussion: "Exit status: 0 valid, 1 violations found, 2 unusable template or claim.")
        @Option(name: .long, help: "Template JSON file, or a built-in id (urn:efsc:template:tit, urn:efsc:template:tst).") var template: String
        @Option(name: .long, help: "Base template file the template extends (built-ins are known). Repeatable.") var base: [String] = []
        @Flag(name: .long, help: "Print a JSON report.") var json = false
        @Argument(help: "Claim JSON file, or - for standard input.") var claim: String?

        func run() async throws {
            let (t, c) = try await exitOnError(code: 2) { () async throws -> (Template, JSON) in
                let store = LocalTemplateStore()
                for b in base {
                    let j = try Output.readJSON(b)
                    do { store.add(try Template(json: j, resolveBase: { store.lookup(id: $0, version: $1) })) } catch {
                        throw CLIError("\(b): \(error)")
                    }
                }
                let t: Template
                if let builtin = BaseTemplates.all.first(where: { $0.id == template }) {
                    t = builtin
                } else {
                    let j = try Output.readJSON(template)
                    do { t = try Template(json: j, resolveBase: { store.lookup(id: $0, version: $1) }) } catch {
                        throw CLIError("\(template): \(error)")
                    }
                }
                return (t, try Output.readJSON(claim))
            }
            let v = t.validate(c)
            if json {
                let r: JSON = [
                    "valid": .bool(v.isEmpty), "template": .string(t.id), "version": .number(Double(t.version)),
                    "violations": .array(v.map { ["path": .string($0.path), "message": .string($0.message)] }),
                ]
                Output.line(r.compactString())
            } else if v.isEmpty {
                Output.line("valid: claim satisfies \(t.id) v\(t.version)")
            } else {
                for x in v { Output.line("\(x.path): \(x.message)") }
            }
            if !v.isEmpty { throw ExitCode(1) }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a built-in template (TIT or TST) as JSON.")
        @Argument(help: "Template id (urn:efsc:template:tit, urn:efsc:template:tst) or short name tit/tst.") var id: String
        @Option(name: .long, help: "Version (default 1).") var version = 1

        func run() async throws {
            try await exitOnError(code: 1) {
                let full = id.hasPrefix("urn:") ? id : "urn:efsc:template:\(id.lowercased())"
                guard let t = BaseTemplates.lookup(id: full, version: version) else {
                    throw CLIError("unknown template '\(id)' version \(version) (built-ins: tit, tst)")
                }
                Output.line(t.json.prettyString())
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the built-in templates.")
        func run() async throws {
            for t in BaseTemplates.all { Output.line("\(t.id)\tv\(t.version)\t\(t.kind.rawValue)\t\(t.title)") }
        }
    }

    struct Example: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the example provider template (a TIT with a time-of-day price table), or a claim for it.",
            discussion: "With --consumer, prints a TIC claim that satisfies the template instead of the template.")
        @Option(name: .long, help: "Provider DID that owns the template.") var owner: String
        @Option(name: .long, help: "Consumer DID: print a sample claim for this consumer.") var consumer: String?
        @Option(name: .long, help: "Settlement period in seconds (claim only).") var period = 60
        @Option(name: .long, help: "Settlements per on-chain evidence, N (claim only).") var evidenceEvery = 10

        func run() async throws {
            try await exitOnError(code: 2) {
                if let c = consumer {
                    Output.line(JSON.object(ProviderTemplates.sampleTITClaim(provider: owner, consumer: c, period: period, evidenceEvery: evidenceEvery)).prettyString())
                } else {
                    Output.line(try ProviderTemplates.timeOfDayTIT(owner: owner).json.prettyString())
                }
            }
        }
    }
}
