import EFSCCore
import EFSCIdentity

/// Why a document is not a usable VC Data Model 2.0 credential.
public enum CredentialError: Error, Sendable, Equatable, CustomStringConvertible {
    case malformed(String)
    case notYetValid(String)
    case expired(String)

    public var description: String {
        switch self {
        case .malformed(let m): return "not a valid VC 2.0 credential: \(m)"
        case .notYetValid(let t): return "credential is not valid before \(t)"
        case .expired(let t): return "credential expired at \(t)"
        }
    }
}

/// A W3C Verifiable Credential (Data Model 2.0), kept as its JSON so the
/// exact signed members survive a round trip through any tool.
public struct VerifiableCredential: Sendable, Equatable {
    public static let v2Context = "https://www.w3.org/ns/credentials/v2"
    public static let schemaType = "EFSCCredentialTemplate"

    public var json: JSONObject

    public init(json: JSONObject) { self.json = json }

    /// A new unsigned credential.
    public init(
        id: String = VerifiableCredential.newID(), types: [String], issuer: String, validFrom: String, validUntil: String? = nil,
        subject: JSON, template: (id: String, version: Int)? = nil
    ) {
        var o = JSONObject()
        o["@context"] = [.string(Self.v2Context)]
        o["id"] = .string(id)
        o["type"] = .array((["VerifiableCredential"] + types).map { .string($0) })
        o["issuer"] = .string(issuer)
        o["validFrom"] = .string(validFrom)
        if let u = validUntil { o["validUntil"] = .string(u) }
        o["credentialSubject"] = subject
        if let t = template {
            o["credentialSchema"] = ["id": .string(t.id), "type": .string(Self.schemaType), "version": .number(Double(t.version))]
        }
        json = o
    }

    /// A fresh `urn:uuid:` (version 4) identifier.
    public static func newID() -> String {
        var b = Digest.randomBytes(16)
        b[6] = (b[6] & 0x0F) | 0x40
        b[8] = (b[8] & 0x3F) | 0x80
        let hex: [UInt8] = Array("0123456789abcdef".utf8)
        var out: [UInt8] = Array("urn:uuid:".utf8)
        out.reserveCapacity(45)
        for (i, x) in b.enumerated() {
            if i == 4 || i == 6 || i == 8 || i == 10 { out.append(UInt8(ascii: "-")) }
            out.append(hex[Int(x >> 4)])
            out.append(hex[Int(x & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public var id: String? { json["id"]?.stringValue }
    public var types: [String] { json["type"]?.arrayValue?.compactMap(\.stringValue) ?? [] }
    /// The issuer's id (`issuer` may be a URL or an object with `id`).
    public var issuer: String? { json["issuer"]?.stringValue ?? json["issuer"]?["id"]?.stringValue }
    public var subject: JSON? { json["credentialSubject"] }
    public var proofs: [JSONObject] { EddsaJcs2022.proofs(of: json) }
    public var template: (id: String, version: Int)? {
        guard let s = json["credentialSchema"]?.objectValue, let id = s["id"]?.stringValue else { return nil }
        return (id, s["version"]?.intValue ?? 1)
    }

    /// Structural checks of VC Data Model 2.0 §4 that a verifier needs.
    public func checkStructure() throws(CredentialError) {
        guard let ctx = json["@context"]?.arrayValue, ctx.first?.stringValue == Self.v2Context else {
            throw .malformed("@context must be a list starting with \(Self.v2Context)")
        }
        guard let t = json["type"] else { throw .malformed("missing 'type'") }
        let types = t.arrayValue?.compactMap(\.stringValue) ?? (t.stringValue.map { [$0] } ?? [])
        guard types.contains("VerifiableCredential") else { throw .malformed("'type' must include VerifiableCredential") }
        guard let iss = issuer, !iss.isEmpty, iss.contains(":") else { throw .malformed("'issuer' must be a URL or an object with an 'id' URL") }
        guard let s = subject else { throw .malformed("missing 'credentialSubject'") }
        switch s {
        case .object: break
        case .array(let a) where !a.isEmpty && a.allSatisfy({ $0.objectValue != nil }): break
        default: throw .malformed("'credentialSubject' must be an object or a non-empty list of objects")
        }
        for f in ["validFrom", "validUntil"] {
            if let v = json[f] {
                guard let str = v.stringValue, DateTime.parse(str) != nil else { throw .malformed("'\(f)' must be an RFC 3339 date-time") }
            }
        }
        if let cs = json["credentialSchema"] {
            let list = cs.arrayValue ?? [cs]
            for c in list {
                guard c["id"]?.stringValue != nil, c["type"]?.stringValue != nil else {
                    throw .malformed("each 'credentialSchema' needs 'id' and 'type'")
                }
            }
        }
    }

    /// validFrom ≤ now ≤ validUntil.
    public func checkValidity(at now: Double) throws(CredentialError) {
        if let f = json["validFrom"]?.stringValue, let t = DateTime.parse(f), now < t { throw .notYetValid(f) }
        if let u = json["validUntil"]?.stringValue, let t = DateTime.parse(u), now > t { throw .expired(u) }
    }

    /// Adds an eddsa-jcs-2022 proof (to a proof set if one exists).
    public func signed(with key: Ed25519SecretKey, options: EddsaJcs2022.Options) throws -> VerifiableCredential {
        VerifiableCredential(json: try EddsaJcs2022.addProof(to: json, options: options, key: key))
    }

    /// SHA-256 of the canonical credential (with its proofs): the hash that
    /// goes on chain as settlement evidence.
    public func hash() throws -> String { Digest.sha256Hex(try JCS.canonicalize(.object(json))) }
}
