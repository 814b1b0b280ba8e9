import ArgumentParser
import EFSCCore
import EFSCCredentials
import EFSCIdentity

/// `--did-document FILE` (repeatable): DID documents or did:efsc operation
/// logs to resolve from, besides did:key which always resolves locally.
struct ResolverOptions: ParsableArguments {
    @Option(
        name: .customLong("did-document"),
        help: "A DID document, or a did:efsc operation log (JSON list of signed operations), to resolve DIDs from. Repeatable.")
    var didDocuments: [String] = []

    func makeResolver() throws -> LocalDIDResolver {
        let r = LocalDIDResolver()
        for f in didDocuments {
            let j = try Output.readJSON(f)
            do {
                if let ops = j.arrayValue ?? j["operations"]?.arrayValue {
                    let objs = ops.compactMap(\.objectValue)
                    guard !objs.isEmpty else { throw CLIError("\(f): empty operation log") }
                    r.add(try DIDHistory(operations: objs))
                } else if let doc = j["document"], j["operation"] == nil {
                    r.add(document: try DIDDocument(json: doc))
                } else {
                    r.add(document: try DIDDocument(json: j))
                }
            } catch let e as CLIError {
                throw e
            } catch {
                throw CLIError("\(f): \(error)")
            }
        }
        return r
    }
}

/// `--template FILE` (repeatable): provider templates besides the built-ins.
struct TemplateOptions: ParsableArguments {
    @Option(name: .customLong("template"), help: "A template JSON file (built-in TIT/TST are always known). Repeatable.")
    var templateFiles: [String] = []

    func makeStore() throws -> LocalTemplateStore {
        let s = LocalTemplateStore()
        // Files may extend each other; load until no progress.
        var pending = try templateFiles.map { ($0, try Output.readJSON($0)) }
        while !pending.isEmpty {
            var next: [(String, JSON)] = []
            var lastError = ""
            for (f, j) in pending {
                do {
                    s.add(try Template(json: j, resolveBase: { s.lookup(id: $0, version: $1) }))
                } catch {
                    next.append((f, j))
                    lastError = "\(f): \(error)"
                }
            }
            if next.count == pending.count { throw CLIError(lastError) }
            pending = next
        }
        return s
    }
}

/// `--secret-key` / `--verification-method` for commands that sign.
struct SignerOptions: ParsableArguments {
    @Option(name: .long, help: "secretKeyMultibase of the signer (z3u2…).") var secretKey: String
    @Option(name: .long, help: "Verification method URL of that key (e.g. did:key:z6Mk…#z6Mk…).") var verificationMethod: String
    @Option(name: .long, help: "Proof creation time (RFC 3339); default now.") var created: String?

    func key() throws -> Ed25519SecretKey {
        try Self.loadKey(secretKey: secretKey, verificationMethod: verificationMethod, created: created)
    }

    /// Decodes the key and checks that a did:key method really is this key.
    static func loadKey(secretKey: String, verificationMethod: String, created: String?) throws -> Ed25519SecretKey {
        let k: Ed25519SecretKey
        do { k = try Ed25519SecretKey(multibase: secretKey) } catch { throw CLIError("--secret-key: \(error)") }
        if verificationMethod.hasPrefix("did:key:") {
            let did = DIDSyntax.did(ofURL: verificationMethod)
            guard did == DIDKey.did(for: k.publicKey) else {
                throw CLIError("--verification-method \(verificationMethod) is not the did:key of --secret-key")
            }
        }
        if let c = created, DateTime.parse(c) == nil { throw CLIError("--created '\(c)' is not an RFC 3339 date-time") }
        return k
    }
}
