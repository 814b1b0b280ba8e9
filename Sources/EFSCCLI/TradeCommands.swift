import ArgumentParser
import EFSCCore
import EFSCCredentials
import EFSCIdentity
import EFSCBus
import EFSCChannel
import EFSCSDK
import Foundation

/// Printing a step-by-step TIC/TSC verification.
enum TradeReport {
    static func json(_ r: TradeVerification) -> JSON {
        let steps: [JSON] = r.steps.map {
            ["equation": .number(Double($0.equation)), "step": .string($0.name), "ok": .bool($0.ok), "detail": .string($0.detail)]
        }
        let f = r.failedStep
        return [
            "valid": .bool(r.ok), "failedStep": f.map { .string($0.name) } ?? .null,
            "failedEquation": f.map { .number(Double($0.equation)) } ?? .null, "steps": .array(steps),
        ]
    }

    static func print(_ r: TradeVerification, json: Bool) {
        if json {
            Output.line(Self.json(r).compactString())
            return
        }
        for s in r.steps {
            let eq = s.equation == 0 ? "structure" : "Eq. (\(s.equation)) \(s.name)"
            Output.line("\(s.ok ? "ok  " : "FAIL") \(eq): \(s.detail)")
        }
        Output.line(r.ok ? "valid" : "invalid: \(r.summary)")
    }
}

/// `efsc tic`: Transaction Initiation Credentials, offline.
struct TICCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tic", abstract: "Apply for, issue and verify Transaction Initiation Credentials (TIC).",
        subcommands: [Apply.self, Issue.self, Verify.self, Record.self])

    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Consumer: build and sign a TIC application from a claim.")
        @OptionGroup var signer: SignerOptions
        @OptionGroup var templates: TemplateOptions
        @Option(name: .long, help: "TIT id to apply against (default the built-in TIT).") var tit = BaseTemplates.titID
        @Option(name: .long, help: "TIT version.") var titVersion = 1
        @Option(name: .long, help: "validUntil of the credential (RFC 3339).") var validUntil: String?
        @Argument(help: "Claim JSON file, or - for standard input.") var claim: String?

        func run() async throws {
            try await exitOnError(code: 1) {
                let key = try signer.key()
                let t = try await templates.makeStore().template(id: tit, version: titVersion)
                let app = try TIC.apply(
                    claim: try Output.readJSON(claim), template: t, consumerKey: key, consumerMethod: signer.verificationMethod,
                    validFrom: signer.created ?? DateTime.now(), validUntil: validUntil, created: signer.created)
                Output.line(JSON.object(app.json).prettyString())
            }
        }
    }

    struct Issue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Provider: verify an application and issue the TIC.")
        @OptionGroup var signer: SignerOptions
        @OptionGroup var templates: TemplateOptions
        @OptionGroup var resolverOptions: ResolverOptions
        @Argument(help: "Application JSON file, or - for standard input.") var application: String?

        func run() async throws {
            try await exitOnError(code: 1) {
                let key = try signer.key()
                let app = VerifiableCredential(json: try Output.readObject(application, what: "application"))
                let tic = try await TIC.issue(
                    application: app, providerKey: key, providerMethod: signer.verificationMethod,
                    resolver: try resolverOptions.makeResolver(), templates: try templates.makeStore(), created: signer.created)
                Output.line(JSON.object(tic.json).prettyString())
            }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify a TIC: Eq. (1) provider proof, DID, template; Eq. (2) claim and consumer proof.",
            discussion: "Exit status: 0 valid, 1 invalid (names the failing step), 2 unusable input.")
        @OptionGroup var templates: TemplateOptions
        @OptionGroup var resolverOptions: ResolverOptions
        @Flag(name: .long, help: "Print a JSON report.") var json = false
        @Argument(help: "TIC JSON file, or - for standard input.") var file: String?

        func run() async throws {
            let (vc, resolver, store) = try await exitOnError(code: 2) {
                (VerifiableCredential(json: try Output.readObject(file, what: "TIC")), try resolverOptions.makeResolver(), try templates.makeStore())
            }
            let r = await TIC.verify(vc, resolver: resolver, templates: store, now: DateTime.currentTime())
            TradeReport.print(r, json: json)
            if !r.ok { throw ExitCode(1) }
        }
    }
}

/// `efsc tsc`: Transaction Settlement Credentials, offline.
struct TSCCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tsc", abstract: "Propose, countersign, issue and verify Transaction Settlement Credentials (TSC).",
        subcommands: [Propose.self, Countersign.self, Issue.self, Verify.self])

    struct Propose: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Provider: sign a settlement claim for the channel's TCC.")
        @OptionGroup var signer: SignerOptions
        @OptionGroup var templates: TemplateOptions
        @Option(name: .long, help: "DID of the TCC that will issue the TSC.") var tcc: String
        @Option(name: .long, help: "TST id (default the built-in TST).") var tst = BaseTemplates.tstID
        @Option(name: .long, help: "TST version.") var tstVersion = 1
        @Argument(help: "Claim JSON file, or - for standard input.") var claim: String?

        func run() async throws {
            try await exitOnError(code: 1) {
                let key = try signer.key()
                guard DIDSyntax.isValid(tcc) else { throw CLIError("--tcc '\(tcc)' is not a DID") }
                let t = try await templates.makeStore().template(id: tst, version: tstVersion)
                let vc = try TSC.propose(
                    claim: try Output.readJSON(claim), template: t, tccDID: tcc, providerKey: key,
                    providerMethod: signer.verificationMethod, created: signer.created)
                Output.line(JSON.object(vc.json).prettyString())
            }
        }
    }

    struct Countersign: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Consumer: check the provider's proposal and add the consumer's proof.")
        @OptionGroup var signer: SignerOptions
        @OptionGroup var templates: TemplateOptions
        @OptionGroup var resolverOptions: ResolverOptions
        @Argument(help: "Proposal JSON file, or - for standard input.") var proposal: String?

        func run() async throws {
            try await exitOnError(code: 1) {
                let key = try signer.key()
                let vc = VerifiableCredential(json: try Output.readObject(proposal, what: "proposal"))
                let out = try await TSC.countersign(
                    vc, consumerKey: key, consumerMethod: signer.verificationMethod, resolver: try resolverOptions.makeResolver(),
                    templates: try templates.makeStore(), created: signer.created)
                Output.line(JSON.object(out.json).prettyString())
            }
        }
    }

    struct Issue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "TCC: check both parties' proofs and issue the TSC.")
        @OptionGroup var signer: SignerOptions
        @OptionGroup var templates: TemplateOptions
        @OptionGroup var resolverOptions: ResolverOptions
        @Argument(help: "Jointly signed TSC JSON file, or - for standard input.") var file: String?

        func run() async throws {
            try await exitOnError(code: 1) {
                let key = try signer.key()
                let vc = VerifiableCredential(json: try Output.readObject(file, what: "TSC"))
                let out = try await TSC.issue(
                    vc, tccKey: key, tccMethod: signer.verificationMethod, resolver: try resolverOptions.makeResolver(),
                    templates: try templates.makeStore(), created: signer.created)
                Output.line(JSON.object(out.json).prettyString())
            }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify a TSC: Eq. (1) TCC proof, TCC DID, template; then Eq. (2) claim data and both parties' proofs.",
            discussion: """
                Offline, DIDs resolve from --did-document files and templates from --template files. With --network or --broker, DIDs
                and templates resolve from the chain, and the TSC's evidence is looked up: "anchored" (its own evidence
                is on chain; the inclusion proof of the evidence transaction is verified), "superseded" (evidence of a
                later sequence is), or "pending". JSON adds key onChain {state, detail, evidence}.
                Exit status: 0 valid, 1 invalid (names the failing step), 2 unusable input or chain unreachable.
                """)
        @OptionGroup var templates: TemplateOptions
        @OptionGroup var resolverOptions: ResolverOptions
        @Option(name: .long, help: "Accept only TSCs issued by this TCC DID. Repeatable.") var trustedTcc: [String] = []
        @OptionGroup(title: "Chain (optional: resolve from the chain and check the on-chain evidence)") var brokerOptions: BrokerOptions
        @Flag(name: .long, help: "Print a JSON report.") var json = false
        @Argument(help: "TSC JSON file, or - for standard input.") var file: String

        func run() async throws {
            let vc = try await exitOnError(code: 2) { VerifiableCredential(json: try Output.readObject(file, what: "TSC")) }
            var trader: Trader?
            let (resolver, store): (any DIDResolver, any TemplateStore) = try await exitOnError(code: 2) {
                if brokerOptions.broker != nil || brokerOptions.network != nil || ProcessInfo.processInfo.environment["EFSC_NETWORK"] != nil {
                    let bus = try await brokerOptions.connect(clientPrefix: "efsc-tsc")
                    let chain = ChainClient(bus: bus)
                    trader = Trader(chain: chain, identity: PartyIdentity(did: "did:key:verifier", key: Ed25519SecretKey()))
                    return (ChainDIDResolver(chain: chain), ChainTemplateStore(chain: chain))
                }
                return (try resolverOptions.makeResolver(), try templates.makeStore())
            }
            let r = await TSC.verify(
                vc, resolver: resolver, templates: store, now: DateTime.currentTime(),
                trustedTCCs: trustedTcc.isEmpty ? nil : Set(trustedTcc))
            var onChain: Trader.OnChainStatus?
            if let trader {
                onChain = try await exitOnError(code: 2) { try await trader.onChainStatus(of: vc) }
                await trader.chain.bus.disconnect()
            }
            if json, let o = onChain {
                var rep = TradeReport.json(r).objectValue!
                rep["onChain"] = ["state": .string(o.state), "detail": .string(o.detail), "evidence": o.evidence ?? .null]
                Output.line(JSON.object(rep).compactString())
            } else {
                TradeReport.print(r, json: json)
                if let o = onChain { Output.line("on chain: \(o.state) (\(o.detail))") }
            }
            if !r.ok { throw ExitCode(1) }
        }
    }
}
