import ArgumentParser
import EFSCCore
import EFSCIdentity

/// `efsc key generate`: a fresh Ed25519 key pair as Multikey values.
struct KeyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key", abstract: "Generate and inspect Ed25519 keys.",
        subcommands: [Generate.self, Inspect.self])

    struct Generate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Generate an Ed25519 key pair.",
            discussion: """
                Prints JSON with publicKeyMultibase (0xed01 prefix), secretKeyMultibase (0x8026 prefix),
                did (did:key), verificationMethod, and the X25519 keyAgreement pair derived from the same seed.
                Keep secretKeyMultibase secret.
                """)

        func run() async throws {
            Output.line(KeyCommand.describe(Ed25519SecretKey(), includeSecret: true).prettyString())
        }
    }

    struct Inspect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the public values of a secret key.")
        @Option(name: .long, help: "secretKeyMultibase (z3u2…).") var secretKey: String

        func run() async throws {
            try await exitOnError(code: 2) {
                let sk: Ed25519SecretKey
                do { sk = try Ed25519SecretKey(multibase: secretKey) } catch { throw CLIError("--secret-key: \(error)") }
                Output.line(KeyCommand.describe(sk, includeSecret: false).prettyString())
            }
        }
    }

    static func describe(_ sk: Ed25519SecretKey, includeSecret: Bool) -> JSON {
        let x = sk.derivedKeyAgreementKey()
        var o: JSONObject = [
            "publicKeyMultibase": .string(sk.publicKey.multibase),
            "did": .string(DIDKey.did(for: sk.publicKey)),
            "verificationMethod": .string(DIDKey.verificationMethod(for: sk.publicKey)),
        ]
        if includeSecret { o["secretKeyMultibase"] = .string(sk.multibase) }
        var ka: JSONObject = ["publicKeyMultibase": .string(x.publicKey.multibase)]
        if includeSecret { ka["secretKeyMultibase"] = .string(x.multibase) }
        o["keyAgreement"] = .object(ka)
        return .object(o)
    }
}

/// `efsc json canonicalize`: RFC 8785 bytes of a JSON document.
struct JSONCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "json", abstract: "JSON tools.", subcommands: [Canonicalize.self])

    struct Canonicalize: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the RFC 8785 (JCS) canonical form of a JSON document, without a trailing newline.",
            discussion: "Rejects duplicate keys, lone surrogates, NaN/Infinity, nesting deeper than 128 and inputs over 64 MiB.")
        @Argument(help: "JSON file, or - for standard input (default).") var file: String?

        func run() async throws {
            try await exitOnError(code: 2) {
                let v = try Output.readJSON(file)
                Output.raw(try JCS.canonicalize(v))
            }
        }
    }
}
