import ArgumentParser
import EFSCCore
import EFSCIdentity
import EFSCChannel

/// `efsc did`: create and resolve DIDs. (Registration on the identity chain
/// arrives with the chain; here everything is local.)
struct DIDCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "did", abstract: "Create and resolve DIDs (did:key, did:efsc).",
        subcommands: [Create.self, Resolve.self, Register.self, Rotate.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a self-certifying did:efsc and its signed create operation.",
            discussion: """
                Prints JSON: did, document (DID Core 1.0), operation (signed create operation to register),
                verificationMethod, secretKeyMultibase (only when the key was generated here).
                The id is base58btc(SHA-256(0xed01 ‖ key)[0..16]), so it proves who created it.
                """)
        @Option(name: .long, help: "Network name (1-32 of a-z, 0-9, -).") var network = "devnet"
        @Option(name: .long, help: "Use this secretKeyMultibase instead of generating a key.") var secretKey: String?
        @Option(name: .long, help: "Write the operation log (a JSON list) to this file, usable with --did-document.") var log: String?

        func run() async throws {
            try await exitOnError(code: 2) {
                var generated = false
                let key: Ed25519SecretKey
                if let s = secretKey {
                    do { key = try Ed25519SecretKey(multibase: s) } catch { throw CLIError("--secret-key: \(error)") }
                } else {
                    key = Ed25519SecretKey()
                    generated = true
                }
                let (did, doc, op) = try EFSCDID.createOperation(network: network, key: key)
                var out: JSONObject = [
                    "did": .string(did), "verificationMethod": .string("\(did)#key-1"), "document": doc.json, "operation": .object(op),
                ]
                if generated { out["secretKeyMultibase"] = .string(key.multibase) }
                if let l = log { try Output.write(l, JSON.array([.object(op)]).prettyString() + "\n") }
                Output.line(JSON.object(out).prettyString())
            }
        }
    }

    struct Resolve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Resolve a DID to its DID document.",
            discussion: "did:key resolves locally; did:efsc resolves from --did-document files (operation logs are verified), or from the identity chain with --chain.")
        @OptionGroup var resolverOptions: ResolverOptions
        @OptionGroup var brokerOptions: BrokerOptions
        @Flag(name: .long, help: "Resolve from the identity chain over the broker.") var chain = false
        @Flag(name: .long, help: "Print resolution metadata as well.") var json = false
        @Argument(help: "The DID.") var did: String

        func run() async throws {
            try await exitOnError(code: 1) {
                let r: DIDResolution
                if chain {
                    let bus = try await brokerOptions.connect(clientPrefix: "efsc-resolve")
                    defer { Task { await bus.disconnect() } }
                    r = try await ChainClient(bus: bus).resolveDID(did)
                } else {
                    r = try await resolverOptions.makeResolver().resolve(did)
                }
                if json {
                    let meta: JSON = [
                        "didDocument": r.document.json,
                        "didDocumentMetadata": [
                            "versionId": r.versionId.map { .string(String($0)) } ?? .null, "deactivated": .bool(r.deactivated),
                        ],
                    ]
                    Output.line(meta.prettyString())
                } else {
                    Output.line(r.document.json.prettyString())
                }
            }
        }
    }
}
