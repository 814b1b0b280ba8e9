/// Why a Data Integrity proof did not verify (or could not be created).
/// Each message is one line a user can act on.
public enum ProofError: Error, Sendable, Equatable, CustomStringConvertible {
    case notAnObject(String)
    case missingField(String)
    case unsupportedType(String)
    case unsupportedCryptosuite(String)
    case malformedProofValue(String)
    case contextMismatch
    case previousProofNotFound(String)
    case invalidDate(field: String, value: String)
    case expired(String)
    case badSignature
    case canonicalization(String)

    public var description: String {
        switch self {
        case .notAnObject(let w): return "\(w) must be a JSON object"
        case .missingField(let f): return "proof is missing required field '\(f)'"
        case .unsupportedType(let t): return "proof type '\(t)' is not supported (expected DataIntegrityProof)"
        case .unsupportedCryptosuite(let c): return "cryptosuite '\(c)' is not supported (expected eddsa-jcs-2022)"
        case .malformedProofValue(let m): return "proofValue is malformed: \(m)"
        case .contextMismatch: return "proof @context does not match the start of the document @context"
        case .previousProofNotFound(let id): return "previousProof '\(id)' does not match any proof in the document"
        case .invalidDate(let f, let v): return "proof field '\(f)' is not an RFC 3339 date-time: '\(v)'"
        case .expired(let e): return "proof expired at \(e)"
        case .badSignature: return "signature does not verify (document or proof was altered, or wrong key)"
        case .canonicalization(let m): return "cannot canonicalize: \(m)"
        }
    }
}

/// The W3C "Data Integrity EdDSA Cryptosuites v1.0" `eddsa-jcs-2022`
/// cryptosuite: JCS canonicalization, SHA-256, Ed25519. Implemented exactly
/// per the spec's create/verify algorithms, including proof sets and proof
/// chains (`previousProof`, Data Integrity 1.0 §4.2–4.5).
public enum EddsaJcs2022 {
    public static let cryptosuite = "eddsa-jcs-2022"
    public static let proofType = "DataIntegrityProof"

    /// Options for a new proof. `created` defaults to now.
    public struct Options: Sendable {
        public var verificationMethod: String
        public var proofPurpose: String
        public var created: String?
        public var id: String?
        public var previousProof: [String]
        public var expires: String?
        public var domain: String?
        public var challenge: String?
        public var nonce: String?

        public init(
            verificationMethod: String, proofPurpose: String = "assertionMethod", created: String? = nil,
            id: String? = nil, previousProof: [String] = [], expires: String? = nil, domain: String? = nil,
            challenge: String? = nil, nonce: String? = nil
        ) {
            self.verificationMethod = verificationMethod
            self.proofPurpose = proofPurpose
            self.created = created
            self.id = id
            self.previousProof = previousProof
            self.expires = expires
            self.domain = domain
            self.challenge = challenge
            self.nonce = nonce
        }
    }

    /// The proofs a document carries: `proof` may be absent, one object, or a set.
    public static func proofs(of document: JSONObject) -> [JSONObject] {
        switch document["proof"] {
        case .object(let o): return [o]
        case .array(let a): return a.compactMap { $0.objectValue }
        default: return []
        }
    }

    /// The document `proof` signs: the document without proofs, plus — for a
    /// chained proof — the proofs it names in `previousProof`, as a list.
    static func inputDocument(_ document: JSONObject, previousProof: [String]) throws(ProofError) -> JSONObject {
        var doc = document
        let all = proofs(of: document)
        doc["proof"] = nil
        if !previousProof.isEmpty {
            var matching: [JSON] = []
            for id in previousProof {
                guard let p = all.first(where: { $0["id"]?.stringValue == id }) else { throw .previousProofNotFound(id) }
                matching.append(.object(p))
            }
            doc["proof"] = .array(matching)
        }
        return doc
    }

    /// proofHash || documentHash, the 64 bytes that are signed.
    public static func hashData(document: JSONObject, proofConfig: JSONObject) throws(ProofError) -> [UInt8] {
        try sha256Canonical(proofConfig) + sha256Canonical(document)
    }

    /// SHA-256 of an object's canonical bytes.
    static func sha256Canonical(_ o: JSONObject) throws(ProofError) -> [UInt8] {
        do { return Digest.sha256(try JCS.canonicalize(.object(o))) } catch { throw .canonicalization(error.description) }
    }

    /// Creates a proof over `document` (which may already hold proofs).
    public static func createProof(document: JSONObject, options: Options, key: Ed25519SecretKey) throws -> JSONObject {
        let config = try proofConfig(options: options, context: document["@context"])
        let input = try inputDocument(document, previousProof: options.previousProof)
        return try signed(config, data: try hashData(document: input, proofConfig: config), key: key)
    }

    /// Creates a proof over a document without `@context` and without
    /// proofs, given SHA-256 of its canonical bytes (a caller that has them
    /// need not canonicalize the document again).
    public static func createProof(documentHash: [UInt8], options: Options, key: Ed25519SecretKey) throws -> JSONObject {
        guard options.previousProof.isEmpty else { throw ProofError.previousProofNotFound(options.previousProof[0]) }
        let config = try proofConfig(options: options, context: nil)
        return try signed(config, data: try sha256Canonical(config) + documentHash, key: key)
    }

    /// The proof options as the proof's members, without its value.
    static func proofConfig(options: Options, context: JSON?) throws -> JSONObject {
        var config = JSONObject()
        config["type"] = .string(proofType)
        if let id = options.id { config["id"] = .string(id) }
        config["cryptosuite"] = .string(cryptosuite)
        let created: String
        if let c = options.created {
            guard DateTime.parse(c) != nil else { throw ProofError.invalidDate(field: "created", value: c) }
            created = c
        } else {
            created = DateTime.now()
        }
        config["created"] = .string(created)
        if let e = options.expires {
            guard DateTime.parse(e) != nil else { throw ProofError.invalidDate(field: "expires", value: e) }
            config["expires"] = .string(e)
        }
        config["verificationMethod"] = .string(options.verificationMethod)
        config["proofPurpose"] = .string(options.proofPurpose)
        if let d = options.domain { config["domain"] = .string(d) }
        if let c = options.challenge { config["challenge"] = .string(c) }
        if let n = options.nonce { config["nonce"] = .string(n) }
        if options.previousProof.count == 1 {
            config["previousProof"] = .string(options.previousProof[0])
        } else if options.previousProof.count > 1 {
            config["previousProof"] = .array(options.previousProof.map { .string($0) })
        }
        if let ctx = context { config["@context"] = ctx }
        return config
    }

    static func signed(_ config: JSONObject, data: [UInt8], key: Ed25519SecretKey) throws -> JSONObject {
        var proof = config
        proof["proofValue"] = .string(Multibase.encodeRaw(try key.sign(data)))
        return proof
    }

    /// Returns `document` with a new proof added: the first proof is stored as
    /// an object; further proofs turn `proof` into a proof set (array).
    public static func addProof(to document: JSONObject, options: Options, key: Ed25519SecretKey) throws -> JSONObject {
        let proof = try createProof(document: document, options: options, key: key)
        var doc = document
        switch document["proof"] {
        case nil, .some(.null): doc["proof"] = .object(proof)
        case .some(.object(let o)): doc["proof"] = .array([.object(o), .object(proof)])
        case .some(.array(let a)): doc["proof"] = .array(a + [.object(proof)])
        default: throw ProofError.notAnObject("proof")
        }
        return doc
    }

    /// The ids a proof chains to (`previousProof` may be a string or a list).
    public static func previousProofIDs(_ proof: JSONObject) -> [String] {
        switch proof["previousProof"] {
        case .string(let s): return [s]
        case .array(let a): return a.compactMap { $0.stringValue }
        default: return []
        }
    }

    /// Checks the proof's own shape (type, cryptosuite, dates, value) and
    /// returns the decoded 64-byte signature.
    public static func checkShape(_ proof: JSONObject, now: Double? = nil) throws(ProofError) -> [UInt8] {
        guard let type = proof["type"]?.stringValue else { throw .missingField("type") }
        guard type == proofType else { throw .unsupportedType(type) }
        guard let suite = proof["cryptosuite"]?.stringValue else { throw .missingField("cryptosuite") }
        guard suite == cryptosuite else { throw .unsupportedCryptosuite(suite) }
        guard proof["verificationMethod"]?.stringValue != nil else { throw .missingField("verificationMethod") }
        guard proof["proofPurpose"]?.stringValue != nil else { throw .missingField("proofPurpose") }
        if let c = proof["created"] {
            guard let s = c.stringValue, DateTime.parse(s) != nil else { throw .invalidDate(field: "created", value: c.compactString()) }
        }
        if let e = proof["expires"] {
            guard let s = e.stringValue, let t = DateTime.parse(s) else { throw .invalidDate(field: "expires", value: e.compactString()) }
            if let now, now > t { throw .expired(s) }
        }
        guard let pv = proof["proofValue"]?.stringValue else { throw .missingField("proofValue") }
        let sig: [UInt8]
        do {
            sig = try Multibase.decodeRaw(pv)
        } catch {
            throw .malformedProofValue(error.description)
        }
        guard sig.count == 64 else { throw .malformedProofValue("an Ed25519 signature is 64 bytes, got \(sig.count)") }
        return sig
    }

    /// Verifies one proof of `document` with the verification method's key.
    /// The caller resolves the key and checks the proof purpose.
    public static func verifyProof(document: JSONObject, proof: JSONObject, key: Ed25519PublicKey, now: Double? = nil) throws(ProofError) {
        try verifyProof(inputHash: try inputHash(document: document, proof: proof), proof: proof, key: key, now: now)
    }

    /// SHA-256 of the canonical document `proof` signs (its @context and
    /// previous proofs applied). Proofs of one proof set that share a context
    /// sign the same document, so a verifier can hash it once.
    public static func inputHash(document: JSONObject, proof: JSONObject) throws(ProofError) -> [UInt8] {
        var doc = document
        if let pctx = proof["@context"] {
            // The document's @context must start with the proof's, in order.
            let dctx = document["@context"]
            let p = pctx.arrayValue ?? [pctx]
            let d = dctx.map { $0.arrayValue ?? [$0] } ?? []
            guard d.count >= p.count, Array(d[0..<p.count]) == p else { throw .contextMismatch }
            doc["@context"] = pctx
        }
        let input = try inputDocument(doc, previousProof: previousProofIDs(proof))
        do { return Digest.sha256(try JCS.canonicalize(.object(input))) } catch { throw .canonicalization(error.description) }
    }

    /// Verifies `proof` given the hash of the document it signs (`inputHash`).
    public static func verifyProof(inputHash: [UInt8], proof: JSONObject, key: Ed25519PublicKey, now: Double? = nil) throws(ProofError) {
        let sig = try checkShape(proof, now: now)
        var config = proof
        config["proofValue"] = nil
        guard key.isValidSignature(sig, for: try sha256Canonical(config) + inputHash) else { throw .badSignature }
    }
}
