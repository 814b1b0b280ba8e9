import EFSCCore

/// A verification method of type `Multikey` (Controlled Identifiers 1.0).
public struct VerificationMethod: Sendable, Equatable {
    public var id: String
    public var type: String
    public var controller: String
    public var publicKeyMultibase: String

    public init(id: String, controller: String, publicKeyMultibase: String, type: String = "Multikey") {
        self.id = id
        self.type = type
        self.controller = controller
        self.publicKeyMultibase = publicKeyMultibase
    }

    public var json: JSON {
        ["id": .string(id), "type": .string(type), "controller": .string(controller), "publicKeyMultibase": .string(publicKeyMultibase)]
    }

    init(json: JSON, did: String) throws(DIDError) {
        guard let o = json.objectValue else { throw .invalidDocument("verification method must be an object") }
        guard let id = o["id"]?.stringValue else { throw .invalidDocument("verification method without 'id'") }
        guard let type = o["type"]?.stringValue else { throw .invalidDocument("verification method '\(id)' has no 'type'") }
        guard type == "Multikey" else { throw .invalidDocument("verification method '\(id)' has type '\(type)'; only Multikey is supported") }
        guard let c = o["controller"]?.stringValue else { throw .invalidDocument("verification method '\(id)' has no 'controller'") }
        guard let pk = o["publicKeyMultibase"]?.stringValue else {
            throw .invalidDocument("verification method '\(id)' has no 'publicKeyMultibase'")
        }
        self.init(id: id.hasPrefix("#") ? did + id : id, controller: c, publicKeyMultibase: pk, type: type)
    }

    /// The Ed25519 key, if this method holds one.
    public var ed25519Key: Ed25519PublicKey? { try? Ed25519PublicKey(multibase: publicKeyMultibase) }
    /// The X25519 key, if this method holds one.
    public var x25519Key: X25519PublicKey? { try? X25519PublicKey(multibase: publicKeyMultibase) }
}

/// The verification relationships of DID Core 1.0 §5.3 EFSC uses.
public enum VerificationRelationship: String, Sendable, CaseIterable {
    case authentication, assertionMethod, keyAgreement, capabilityInvocation, capabilityDelegation
}

/// A DID Core 1.0 document. EFSC documents list their keys as Multikey
/// verification methods and reference them from the relationships.
public struct DIDDocument: Sendable, Equatable {
    public static let contexts: [JSON] = ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"]

    public var id: String
    public var controller: [String]
    public var verificationMethod: [VerificationMethod]
    public var relationships: [VerificationRelationship: [String]]

    public init(
        id: String, controller: [String] = [], verificationMethod: [VerificationMethod],
        relationships: [VerificationRelationship: [String]]
    ) {
        self.id = id
        self.controller = controller
        self.verificationMethod = verificationMethod
        self.relationships = relationships
    }

    /// Parses and validates a document: DID syntax, Multikey methods whose ids
    /// belong to the DID, decodable keys, and relationships that point at
    /// listed methods (embedded methods are accepted and listed).
    public init(json: JSON) throws(DIDError) {
        guard let o = json.objectValue else { throw .invalidDocument("document must be a JSON object") }
        guard let id = o["id"]?.stringValue else { throw .invalidDocument("missing 'id'") }
        guard DIDSyntax.isValid(id) else { throw .invalidDID(id) }
        var controller: [String] = []
        switch o["controller"] {
        case nil: break
        case .string(let s)?: controller = [s]
        case .array(let a)?: controller = a.compactMap { $0.stringValue }
        default: throw .invalidDocument("'controller' must be a DID or a list of DIDs")
        }
        var methods: [VerificationMethod] = []
        if let vms = o["verificationMethod"] {
            guard let arr = vms.arrayValue else { throw .invalidDocument("'verificationMethod' must be a list") }
            for v in arr { methods.append(try VerificationMethod(json: v, did: id)) }
        }
        var rels: [VerificationRelationship: [String]] = [:]
        for r in VerificationRelationship.allCases {
            guard let v = o[r.rawValue] else { continue }
            guard let arr = v.arrayValue else { throw .invalidDocument("'\(r.rawValue)' must be a list") }
            var refs: [String] = []
            for e in arr {
                switch e {
                case .string(let s): refs.append(s.hasPrefix("#") ? id + s : s)
                case .object:
                    let vm = try VerificationMethod(json: e, did: id)
                    if !methods.contains(where: { $0.id == vm.id }) { methods.append(vm) }
                    refs.append(vm.id)
                default: throw .invalidDocument("entries of '\(r.rawValue)' must be ids or verification methods")
                }
            }
            rels[r] = refs
        }
        self.init(id: id, controller: controller, verificationMethod: methods, relationships: rels)
        try validate()
    }

    public func validate() throws(DIDError) {
        var seen = Set<String>()
        for m in verificationMethod {
            guard DIDSyntax.did(ofURL: m.id) == id, m.id.contains("#") else {
                throw .invalidDocument("verification method id '\(m.id)' must be a fragment of \(id)")
            }
            guard seen.insert(m.id).inserted else { throw .invalidDocument("duplicate verification method id '\(m.id)'") }
            guard DIDSyntax.isValid(m.controller) else { throw .invalidDocument("controller '\(m.controller)' of '\(m.id)' is not a DID") }
            guard m.ed25519Key != nil || m.x25519Key != nil else {
                throw .invalidDocument("publicKeyMultibase of '\(m.id)' is not an Ed25519 or X25519 Multikey")
            }
        }
        for (r, refs) in relationships {
            for ref in refs {
                guard let m = verificationMethod.first(where: { $0.id == ref }) else {
                    throw .invalidDocument("'\(r.rawValue)' references unknown method '\(ref)'")
                }
                if r == .keyAgreement {
                    guard m.x25519Key != nil else { throw .invalidDocument("keyAgreement method '\(ref)' must be an X25519 key") }
                } else {
                    guard m.ed25519Key != nil else { throw .invalidDocument("\(r.rawValue) method '\(ref)' must be an Ed25519 key") }
                }
            }
        }
    }

    public var json: JSON {
        var o = JSONObject()
        o["@context"] = .array(Self.contexts)
        o["id"] = .string(id)
        if !controller.isEmpty { o["controller"] = controller.count == 1 ? .string(controller[0]) : .array(controller.map { .string($0) }) }
        o["verificationMethod"] = .array(verificationMethod.map(\.json))
        for r in VerificationRelationship.allCases {
            if let refs = relationships[r] { o[r.rawValue] = .array(refs.map { .string($0) }) }
        }
        return .object(o)
    }

    /// The method `url` refers to, provided the document authorizes it for `relationship`.
    public func method(_ url: String, for relationship: VerificationRelationship) throws(DIDError) -> VerificationMethod {
        let full = url.hasPrefix("#") ? id + url : url
        guard let m = verificationMethod.first(where: { $0.id == full }) else { throw .unknownVerificationMethod(url) }
        guard relationships[relationship]?.contains(full) == true else {
            throw .relationshipNotAllowed(method: url, relationship: relationship.rawValue)
        }
        return m
    }

    /// The Ed25519 key of `url`, checked against `relationship`.
    public func signingKey(_ url: String, for relationship: VerificationRelationship) throws(DIDError) -> Ed25519PublicKey {
        let m = try method(url, for: relationship)
        guard let k = m.ed25519Key else { throw .invalidDocument("'\(url)' is not an Ed25519 key") }
        return k
    }

    /// The first key-agreement key (where channel challenges are encrypted to).
    public func keyAgreementKey() throws(DIDError) -> (id: String, key: X25519PublicKey) {
        for ref in relationships[.keyAgreement] ?? [] {
            if let m = verificationMethod.first(where: { $0.id == ref }), let k = m.x25519Key { return (m.id, k) }
        }
        throw .invalidDocument("\(id) has no keyAgreement key")
    }
}
