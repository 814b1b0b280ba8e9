import EFSCCore

/// Why a DID, DID document or DID operation was refused.
public enum DIDError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalidDID(String)
    case unsupportedMethod(String)
    case notFound(String)
    case deactivated(String)
    case invalidDocument(String)
    case unknownVerificationMethod(String)
    case relationshipNotAllowed(method: String, relationship: String)
    case invalidOperation(String)
    case resolverUnavailable(String)

    public var description: String {
        switch self {
        case .invalidDID(let d): return "invalid DID '\(DIDSyntax.shown(d))'"
        case .unsupportedMethod(let m): return "DID method '\(m)' is not supported (supported: did:key, did:efsc)"
        case .notFound(let d): return "unknown DID '\(DIDSyntax.shown(d))'"
        case .deactivated(let d): return "DID '\(d)' is deactivated"
        case .invalidDocument(let m): return "invalid DID document: \(m)"
        case .unknownVerificationMethod(let v): return "verification method '\(v)' is not in the DID document"
        case .relationshipNotAllowed(let v, let r): return "verification method '\(v)' is not authorized for \(r)"
        case .invalidOperation(let m): return "invalid DID operation: \(m)"
        case .resolverUnavailable(let m): return "cannot resolve DID: \(m)"
        }
    }
}

/// DID syntax per DID Core 1.0 §3.1 (`did:` method-name `:` method-specific-id).
public enum DIDSyntax {
    /// A DID as it may appear in a message: at most 80 characters of it,
    /// with its length when cut (a hostile one can be a megabyte).
    public static func shown(_ did: String) -> String {
        did.utf8.count <= 80 ? did : "\(did.prefix(80))… (\(did.utf8.count) bytes)"
    }

    /// DID Core syntax, and at most `WireLimits.didLength` bytes.
    public static func isValid(_ did: String) -> Bool {
        guard did.utf8.count <= WireLimits.didLength else { return false }
        let parts = did.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "did", !parts[1].isEmpty, !parts[2].isEmpty else { return false }
        guard parts[1].utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) }) else { return false }
        let idChars = parts[2].utf8
        guard idChars.last != UInt8(ascii: ":") else { return false }
        return idChars.allSatisfy {
            ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39)
                || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_")
                || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: "%")
        }
    }

    /// The method name of a syntactically valid DID.
    public static func method(_ did: String) -> String? {
        guard isValid(did) else { return nil }
        return String(did.split(separator: ":")[1])
    }

    /// The DID part of a DID URL (`did:x:y#frag` → `did:x:y`).
    public static func did(ofURL url: String) -> String {
        var s = Substring(url)
        if let i = s.firstIndex(of: "#") { s = s[..<i] }
        if let i = s.firstIndex(of: "?") { s = s[..<i] }
        return String(s)
    }
}
