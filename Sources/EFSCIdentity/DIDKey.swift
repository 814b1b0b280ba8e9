import EFSCCore

/// The did:key method (W3C CCG did:key v0.7) for Ed25519 keys, resolved
/// locally: the document is a pure function of the key, including the X25519
/// key-agreement key derived by the RFC 7748 birational map.
public enum DIDKey {
    public static func did(for key: Ed25519PublicKey) -> String { "did:key:" + key.multibase }

    /// The verification method URL of a did:key (`did:key:z…#z…`).
    public static func verificationMethod(for key: Ed25519PublicKey) -> String {
        "did:key:\(key.multibase)#\(key.multibase)"
    }

    /// Resolved documents, kept because deriving the X25519 key costs a
    /// modular inversion; bounded so hostile input cannot grow it forever.
    nonisolated(unsafe) private static var cache: [String: DIDDocument] = [:]
    private static let cacheLock = Lock()
    public static let cacheLimit = 4096

    public static func resolve(_ did: String) throws(DIDError) -> DIDDocument {
        if let d = cacheLock.withLock({ cache[did] }) { return d }
        let doc = try resolveUncached(did)
        cacheLock.withLock {
            if cache.count >= cacheLimit { cache.removeAll(keepingCapacity: true) }
            cache[did] = doc
        }
        return doc
    }

    static func resolveUncached(_ did: String) throws(DIDError) -> DIDDocument {
        guard did.hasPrefix("did:key:") else { throw .invalidDID(did) }
        let mb = String(did.dropFirst("did:key:".count))
        let key: Ed25519PublicKey
        do {
            key = try Ed25519PublicKey(multibase: mb)
        } catch {
            throw .invalidDID("\(did) (only Ed25519 did:key identifiers are supported: \(error))")
        }
        let vmID = "\(did)#\(mb)"
        var methods = [VerificationMethod(id: vmID, controller: did, publicKeyMultibase: mb)]
        var rels: [VerificationRelationship: [String]] = [
            .authentication: [vmID], .assertionMethod: [vmID], .capabilityInvocation: [vmID], .capabilityDelegation: [vmID],
        ]
        if let x = try? KeyConversion.x25519PublicKey(fromEd25519: key) {
            let xid = "\(did)#\(x.multibase)"
            methods.append(VerificationMethod(id: xid, controller: did, publicKeyMultibase: x.multibase))
            rels[.keyAgreement] = [xid]
        }
        return DIDDocument(id: did, verificationMethod: methods, relationships: rels)
    }
}
