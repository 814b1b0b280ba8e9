import EFSCCore

/// The `did:efsc:<network>:<id>` method. The id is self-certifying: the
/// base58btc encoding of the first 16 bytes of SHA-256 over the initial
/// Ed25519 Multikey (0xed01 ‖ key), so nobody can register a DID for a key
/// they do not hold. Documents change only through signed operations
/// (`create`, `update`, `deactivate`), each naming the version it replaces
/// by hash, which `DIDHistory` checks and applies deterministically.
public enum EFSCDID {
    public static let method = "efsc"

    /// Network names: 1–32 characters of `a-z`, `0-9` and `-`.
    public static func isValidNetwork(_ n: String) -> Bool {
        !n.isEmpty && n.utf8.count <= 32
            && n.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == UInt8(ascii: "-") }
    }

    public static func identifier(for key: Ed25519PublicKey) -> String {
        Base58.encode(Array(Digest.sha256(Multicodec.ed25519Pub.prefix + key.raw)[0..<16]))
    }

    public static func did(network: String, initialKey: Ed25519PublicKey) throws(DIDError) -> String {
        guard isValidNetwork(network) else { throw .invalidDID("did:efsc:\(network):… (network must be 1-32 of a-z, 0-9, -)") }
        return "did:efsc:\(network):\(identifier(for: initialKey))"
    }

    /// Splits a did:efsc into (network, id).
    public static func parse(_ did: String) throws(DIDError) -> (network: String, id: String) {
        guard did.utf8.count <= WireLimits.didLength else { throw .invalidDID(did) }
        let p = did.split(separator: ":", omittingEmptySubsequences: false)
        guard p.count == 4, p[0] == "did", p[1] == "efsc", isValidNetwork(String(p[2])), !p[3].isEmpty,
            Base58.decode(String(p[3]))?.count == 16
        else { throw .invalidDID(did) }
        return (String(p[2]), String(p[3]))
    }

    /// A standard document: one Ed25519 key for authentication, assertion and
    /// capability invocation, and one X25519 key for key agreement.
    public static func document(did: String, signingKey: Ed25519PublicKey, keyAgreementKey: X25519PublicKey, keyIndex: Int = 1) -> DIDDocument {
        let k = "\(did)#key-\(keyIndex)"
        let x = "\(did)#x25519-\(keyIndex)"
        return DIDDocument(
            id: did,
            verificationMethod: [
                VerificationMethod(id: k, controller: did, publicKeyMultibase: signingKey.multibase),
                VerificationMethod(id: x, controller: did, publicKeyMultibase: keyAgreementKey.multibase),
            ],
            relationships: [.authentication: [k], .assertionMethod: [k], .capabilityInvocation: [k], .keyAgreement: [x]])
    }

    /// Hash that later operations name as `previous`: SHA-256 of the JCS of the document.
    public static func documentHash(_ doc: DIDDocument) -> String {
        Digest.sha256Hex(try! JCS.canonicalize(doc.json))
    }

    /// A signed `create` operation for a new did:efsc controlled by `key`.
    public static func createOperation(network: String, key: Ed25519SecretKey, created: String? = nil) throws -> (did: String, document: DIDDocument, operation: JSONObject) {
        let did = try did(network: network, initialKey: key.publicKey)
        let doc = document(did: did, signingKey: key.publicKey, keyAgreementKey: key.derivedKeyAgreementKey().publicKey)
        let op: JSONObject = [
            "type": "DIDOperation", "operation": "create", "did": .string(did), "version": 1, "document": doc.json,
        ]
        let signed = try EddsaJcs2022.addProof(
            to: op, options: .init(verificationMethod: "\(did)#key-1", proofPurpose: "capabilityInvocation", created: created), key: key)
        return (did, doc, signed)
    }

    /// A signed `update` replacing `current` (at `version`) with `next`, signed
    /// by a capabilityInvocation key of the current document.
    public static func updateOperation(
        current: DIDDocument, version: Int, next: DIDDocument, signer: Ed25519SecretKey, signerMethod: String, created: String? = nil
    ) throws -> JSONObject {
        let op: JSONObject = [
            "type": "DIDOperation", "operation": "update", "did": .string(current.id), "version": .number(Double(version + 1)),
            "previous": .string(documentHash(current)), "document": next.json,
        ]
        return try EddsaJcs2022.addProof(
            to: op, options: .init(verificationMethod: signerMethod, proofPurpose: "capabilityInvocation", created: created), key: signer)
    }

    /// Key rotation: a new document whose signing and key-agreement keys come
    /// from `newKey`, signed by the current key.
    public static func rotateOperation(
        current: DIDDocument, version: Int, currentKey: Ed25519SecretKey, currentMethod: String, newKey: Ed25519SecretKey, created: String? = nil
    ) throws -> (document: DIDDocument, operation: JSONObject) {
        let next = document(
            did: current.id, signingKey: newKey.publicKey, keyAgreementKey: newKey.derivedKeyAgreementKey().publicKey, keyIndex: version + 1)
        let op = try updateOperation(
            current: current, version: version, next: next, signer: currentKey, signerMethod: currentMethod, created: created)
        return (next, op)
    }

    public static func deactivateOperation(
        current: DIDDocument, version: Int, signer: Ed25519SecretKey, signerMethod: String, created: String? = nil
    ) throws -> JSONObject {
        let op: JSONObject = [
            "type": "DIDOperation", "operation": "deactivate", "did": .string(current.id), "version": .number(Double(version + 1)),
            "previous": .string(documentHash(current)),
        ]
        return try EddsaJcs2022.addProof(
            to: op, options: .init(verificationMethod: signerMethod, proofPurpose: "capabilityInvocation", created: created), key: signer)
    }
}

/// The version history of one did:efsc, built only from valid signed
/// operations. Deterministic (no clock, no I/O) so every chain node that
/// applies the same operations reaches the same state.
public struct DIDHistory: Sendable, Equatable {
    public struct Version: Sendable, Equatable {
        public let version: Int
        public let document: DIDDocument
        public let hash: String
    }

    public let did: String
    public private(set) var versions: [Version]
    public private(set) var deactivated: Bool = false

    public var current: Version { versions[versions.count - 1] }

    /// Starts a history from a `create` operation.
    public init(create op: JSONObject) throws(DIDError) {
        guard op["operation"]?.stringValue == "create" else { throw .invalidOperation("expected a 'create' operation") }
        guard let did = op["did"]?.stringValue else { throw .invalidOperation("missing 'did'") }
        guard op["version"]?.intValue == 1 else { throw .invalidOperation("a create operation has version 1") }
        _ = try EFSCDID.parse(did)
        guard let dj = op["document"] else { throw .invalidOperation("missing 'document'") }
        let doc = try DIDDocument(json: dj)
        guard doc.id == did else { throw .invalidOperation("document id '\(doc.id)' does not match '\(did)'") }
        let key = try Self.checkSignature(op, by: doc)
        guard EFSCDID.identifier(for: key) == (try EFSCDID.parse(did)).id else {
            throw .invalidOperation("\(did) is not derived from the key that signed its creation")
        }
        self.did = did
        self.versions = [Version(version: 1, document: doc, hash: EFSCDID.documentHash(doc))]
    }

    /// Replays a whole operation log (create, then updates), verifying each.
    public init(operations ops: [JSONObject]) throws(DIDError) {
        guard let first = ops.first else { throw .invalidOperation("empty operation log") }
        try self.init(create: first)
        for op in ops.dropFirst() { try apply(op) }
    }

    /// Applies an `update` or `deactivate` operation.
    public mutating func apply(_ op: JSONObject) throws(DIDError) {
        guard !deactivated else { throw .deactivated(did) }
        guard op["did"]?.stringValue == did else { throw .invalidOperation("operation is for another DID") }
        guard let v = op["version"]?.intValue else { throw .invalidOperation("missing 'version'") }
        guard v == current.version + 1 else {
            throw .invalidOperation("stale or out-of-order version \(v); current version is \(current.version)")
        }
        guard op["previous"]?.stringValue == current.hash else {
            throw .invalidOperation("'previous' does not name the current document version")
        }
        _ = try Self.checkSignature(op, by: current.document)
        switch op["operation"]?.stringValue {
        case "update":
            guard let dj = op["document"] else { throw .invalidOperation("missing 'document'") }
            let doc = try DIDDocument(json: dj)
            guard doc.id == did else { throw .invalidOperation("document id '\(doc.id)' does not match '\(did)'") }
            guard !(doc.relationships[.capabilityInvocation] ?? []).isEmpty else {
                throw .invalidOperation("the new document must keep a capabilityInvocation key, or nobody could update it")
            }
            versions.append(Version(version: v, document: doc, hash: EFSCDID.documentHash(doc)))
        case "deactivate":
            deactivated = true
            versions.append(Version(version: v, document: current.document, hash: current.hash))
        case let other:
            throw .invalidOperation("unknown operation '\(other ?? "none")'")
        }
    }

    /// Document as of `version` (1-based); `nil` if that version does not exist.
    public func document(atVersion version: Int) -> DIDDocument? {
        versions.first(where: { $0.version == version })?.document
    }

    /// Checks the single capabilityInvocation proof of an operation against `doc`.
    static func checkSignature(_ op: JSONObject, by doc: DIDDocument) throws(DIDError) -> Ed25519PublicKey {
        let proofs = EddsaJcs2022.proofs(of: op)
        guard proofs.count == 1, let proof = proofs.first else { throw .invalidOperation("an operation carries exactly one proof") }
        guard proof["proofPurpose"]?.stringValue == "capabilityInvocation" else {
            throw .invalidOperation("operation proof must have proofPurpose capabilityInvocation")
        }
        guard let vm = proof["verificationMethod"]?.stringValue else { throw .invalidOperation("proof has no verificationMethod") }
        let key = try doc.signingKey(vm, for: .capabilityInvocation)
        do {
            try EddsaJcs2022.verifyProof(document: op, proof: proof, key: key)
        } catch {
            throw .invalidOperation("operation signature: \(error.description)")
        }
        return key
    }
}
