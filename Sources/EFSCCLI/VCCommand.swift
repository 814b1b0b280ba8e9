import ArgumentParser
import EFSCCore
import EFSCCredentials
import EFSCIdentity

/// `efsc vc sign|verify`: Data Integrity eddsa-jcs-2022 on any JSON document.
struct VCCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vc", abstract: "Sign and verify credentials (Data Integrity, eddsa-jcs-2022).",
        subcommands: [Sign.self, Verify.self])

    struct Sign: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add an eddsa-jcs-2022 proof to a document.",
            discussion: "The first proof is stored as an object; later ones turn 'proof' into a proof set (list).")
        @Option(name: .long, help: "secretKeyMultibase of the signer (z3u2…).") var secretKey: String
        @Option(name: .long, help: "Verification method URL of that key.") var verificationMethod: String
        @Option(name: .long, help: "Proof creation time (RFC 3339); default now.") var created: String?
        @Option(name: .long, help: "proofPurpose (default assertionMethod).") var proofPurpose = "assertionMethod"
        @Option(name: .long, help: "id of an existing proof this proof chains to (previousProof). Repeatable.") var previousProof: [String] = []
        @Option(name: .long, help: "id to give the new proof (needed if a later proof will chain to it).") var proofId: String?
        @Argument(help: "Document file, or - for standard input (default).") var file: String?

        func run() async throws {
            try await exitOnError(code: 2) {
                let key = try SignerOptions.loadKey(secretKey: secretKey, verificationMethod: verificationMethod, created: created)
                let doc = try Output.readObject(file, what: "document")
                let out = try EddsaJcs2022.addProof(
                    to: doc,
                    options: .init(
                        verificationMethod: verificationMethod, proofPurpose: proofPurpose, created: created, id: proofId,
                        previousProof: previousProof),
                    key: key)
                Output.line(JSON.object(out).prettyString())
            }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify every proof of a document.",
            discussion: """
                did:key verification methods resolve locally; others need --public-key or --did-document.
                A VC 2.0 credential is also checked for structure and its validFrom/validUntil window.
                Exit status: 0 valid, 1 invalid (one line naming the failing proof and reason), 2 unusable input.
                """)
        @Option(name: .long, help: "Verify with this Ed25519 publicKeyMultibase instead of resolving verification methods.") var publicKey: String?
        @OptionGroup var resolverOptions: ResolverOptions
        @Option(name: .long, help: "Check validity at this RFC 3339 time instead of now.") var at: String?
        @Flag(name: .long, help: "Print a JSON report.") var json = false
        @Argument(help: "Document file, or - for standard input (default).") var file: String?

        func run() async throws {
            let (doc, verifier) = try await exitOnError(code: 2) { () async throws -> (JSONObject, ProofVerifier) in
                let doc = try Output.readObject(file, what: "document")
                var pk: Ed25519PublicKey? = nil
                if let p = publicKey {
                    do { pk = try Ed25519PublicKey(multibase: p) } catch { throw CLIError("--public-key: \(error)") }
                }
                var now = DateTime.currentTime()
                if let a = at {
                    guard let t = DateTime.parse(a) else { throw CLIError("--at '\(a)' is not an RFC 3339 date-time") }
                    now = t
                }
                return (doc, ProofVerifier(resolver: try resolverOptions.makeResolver(), publicKey: pk, now: now))
            }
            var problems: [String] = []
            let isVC = doc["@context"]?.arrayValue?.first?.stringValue == VerifiableCredential.v2Context
            if isVC {
                let vc = VerifiableCredential(json: doc)
                do {
                    try vc.checkStructure()
                    try vc.checkValidity(at: verifier.now ?? DateTime.currentTime())
                } catch {
                    problems.append("\(error)")
                }
            }
            let checks = await verifier.verifyAll(doc)
            if checks.isEmpty { problems.append("document has no proof") }
            for c in checks where !c.ok { problems.append("\(c.label): \(c.failure!)") }
            if json {
                let report: JSON = [
                    "valid": .bool(problems.isEmpty),
                    "errors": .array(problems.map { .string($0) }),
                    "proofs": .array(
                        checks.map {
                            [
                                "index": .number(Double($0.index)), "id": $0.id.map(JSON.string) ?? .null,
                                "verificationMethod": $0.verificationMethod.map(JSON.string) ?? .null,
                                "signer": $0.signer.map(JSON.string) ?? .null, "valid": .bool($0.ok),
                                "error": $0.failure.map(JSON.string) ?? .null,
                            ]
                        }),
                ]
                Output.line(report.compactString())
            } else if problems.isEmpty {
                let who = checks.map { "\($0.label) by \($0.signer ?? $0.verificationMethod ?? "?")" }.joined(separator: ", ")
                Output.line("valid: \(checks.count) proof\(checks.count == 1 ? "" : "s") verified (\(who))")
            } else {
                Output.line("invalid: \(problems[0])")
            }
            if !problems.isEmpty { throw ExitCode(1) }
        }
    }
}
