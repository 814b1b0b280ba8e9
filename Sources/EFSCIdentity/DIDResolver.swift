import EFSCCore

/// A resolved DID: its document and the DID Core resolution metadata EFSC uses.
public struct DIDResolution: Sendable, Equatable {
    public var document: DIDDocument
    public var versionId: Int?
    public var deactivated: Bool
    /// Earlier versions of the document, oldest first, when the resolver
    /// knows the DID's history (the identity chain does).
    public var earlierDocuments: [DIDDocument]

    public init(document: DIDDocument, versionId: Int? = nil, deactivated: Bool = false, earlierDocuments: [DIDDocument] = []) {
        self.document = document
        self.versionId = versionId
        self.deactivated = deactivated
        self.earlierDocuments = earlierDocuments
    }

    /// The resolution of a whole history: its current version, and the rest as earlier documents.
    public init(history h: DIDHistory) {
        self.init(
            document: h.current.document, versionId: h.current.version, deactivated: h.deactivated,
            earlierDocuments: h.versions.dropLast().map(\.document))
    }
}

/// Resolves DIDs to documents. did:key resolves locally; did:efsc resolves
/// against the identity chain (over the bus) or a local set of histories.
public protocol DIDResolver: Sendable {
    func resolve(_ did: String) async throws -> DIDResolution
}

extension DIDResolver {
    /// Resolves the DID of `url` and returns the key it names, checked against
    /// `relationship`. Deactivated DIDs authorize nothing.
    public func signingKey(for url: String, relationship: VerificationRelationship) async throws -> (did: String, key: Ed25519PublicKey) {
        let r = try await signingKey(for: url, relationship: relationship, acceptingEarlierVersions: false)
        return (r.did, r.key)
    }

    /// Like `signingKey(for:relationship:)`, but a key that only an earlier
    /// version of the document holds (rotated out since) also counts;
    /// `earlier` says which case it was. Only for signatures something else
    /// vouches were made while that key was current (a TSC's TCC proof).
    public func signingKey(for url: String, relationship: VerificationRelationship, acceptingEarlierVersions: Bool) async throws -> (
        did: String, key: Ed25519PublicKey, earlier: Bool
    ) {
        let did = DIDSyntax.did(ofURL: url)
        guard DIDSyntax.isValid(did) else { throw DIDError.invalidDID(did) }
        let r = try await resolve(did)
        if r.deactivated { throw DIDError.deactivated(did) }
        do {
            return (did, try r.document.signingKey(url, for: relationship), false)
        } catch {
            guard acceptingEarlierVersions else { throw error }
            for d in r.earlierDocuments.reversed() {
                if let k = try? d.signingKey(url, for: relationship) { return (did, k, true) }
            }
            throw error
        }
    }
}

/// Resolves did:key only, with no I/O.
public struct DIDKeyResolver: DIDResolver {
    public init() {}
    public func resolve(_ did: String) async throws -> DIDResolution {
        guard let m = DIDSyntax.method(did) else { throw DIDError.invalidDID(did) }
        guard m == "key" else { throw DIDError.unsupportedMethod(m) }
        return DIDResolution(document: try DIDKey.resolve(did))
    }
}

/// Resolves did:key locally and did:efsc from histories held in memory (from
/// files a user supplies, or from a chain node's state).
public final class LocalDIDResolver: DIDResolver, @unchecked Sendable {
    private let lock = Lock()
    private var histories: [String: DIDHistory] = [:]
    private var documents: [String: DIDDocument] = [:]

    public init() {}

    public func add(_ history: DIDHistory) { lock.withLock { histories[history.did] = history } }
    /// Adds a document as-is (e.g. a DID document file resolved elsewhere).
    public func add(document: DIDDocument) { lock.withLock { documents[document.id] = document } }

    public func resolve(_ did: String) async throws -> DIDResolution {
        guard let m = DIDSyntax.method(did) else { throw DIDError.invalidDID(did) }
        if m == "key" { return DIDResolution(document: try DIDKey.resolve(did)) }
        let (h, d) = lock.withLock { (histories[did], documents[did]) }
        if let h { return DIDResolution(history: h) }
        if let d { return DIDResolution(document: d) }
        if m != "efsc" { throw DIDError.unsupportedMethod(m) }
        throw DIDError.notFound(did)
    }
}

