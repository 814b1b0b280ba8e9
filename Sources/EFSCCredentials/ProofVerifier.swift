import EFSCCore
import EFSCIdentity

/// The outcome for one proof of a document.
public struct ProofCheck: Sendable, Equatable {
    /// Position in the proof set (0-based).
    public let index: Int
    public let id: String?
    public let verificationMethod: String?
    /// The DID whose key made the proof (when resolved).
    public let signer: String?
    /// `nil` when the proof verified; otherwise why not.
    public let failure: String?
    /// The key came from an earlier version of the signer's DID document.
    public var earlierKey = false

    public var ok: Bool { failure == nil }

    /// "proof[1] (urn:…)" — how messages name a proof.
    public var label: String { "proof[\(index)]" + (id.map { " (\($0))" } ?? "") }
}

/// Verifies every eddsa-jcs-2022 proof of a document, resolving each
/// verification method through a `DIDResolver` (or using a given key) and
/// checking that the method is authorized for the proof's purpose.
public struct ProofVerifier: Sendable {
    public let resolver: any DIDResolver
    public let publicKey: Ed25519PublicKey?
    public let now: Double?
    /// Whether a key only an earlier version of the signer's document holds
    /// counts (see `DIDResolver.signingKey(for:relationship:acceptingEarlierVersions:)`).
    public var acceptEarlierKeys = false

    public init(resolver: any DIDResolver = DIDKeyResolver(), publicKey: Ed25519PublicKey? = nil, now: Double? = nil) {
        self.resolver = resolver
        self.publicKey = publicKey
        self.now = now
    }

    public func verifyAll(_ document: JSONObject) async -> [ProofCheck] {
        let proofs = EddsaJcs2022.proofs(of: document)
        var out: [ProofCheck] = []
        for (i, p) in proofs.enumerated() {
            out.append(await verify(document, proof: p, index: i))
        }
        return out
    }

    public func verify(_ document: JSONObject, proof: JSONObject, index: Int) async -> ProofCheck {
        let vm = proof["verificationMethod"]?.stringValue
        let id = proof["id"]?.stringValue
        func fail(_ m: String, signer: String? = nil) -> ProofCheck {
            ProofCheck(index: index, id: id, verificationMethod: vm, signer: signer, failure: m)
        }
        do {
            _ = try EddsaJcs2022.checkShape(proof, now: now)
        } catch {
            return fail(error.description)
        }
        guard let vm else { return fail("proof has no verificationMethod") }
        let purpose = proof["proofPurpose"]?.stringValue ?? ""
        let key: Ed25519PublicKey
        var signer: String? = nil
        var earlier = false
        if let pk = publicKey {
            key = pk
            signer = DIDSyntax.isValid(DIDSyntax.did(ofURL: vm)) ? DIDSyntax.did(ofURL: vm) : nil
        } else {
            guard let rel = VerificationRelationship(rawValue: purpose) else {
                return fail("proofPurpose '\(purpose)' is not a verification relationship")
            }
            do {
                let r = try await resolver.signingKey(for: vm, relationship: rel, acceptingEarlierVersions: acceptEarlierKeys)
                key = r.key
                signer = r.did
                earlier = r.earlier
            } catch {
                return fail("cannot use verification method \(vm): \(error)")
            }
        }
        do {
            try EddsaJcs2022.verifyProof(document: document, proof: proof, key: key, now: now)
        } catch {
            return fail(error.description, signer: signer)
        }
        var ok = ProofCheck(index: index, id: id, verificationMethod: vm, signer: signer, failure: nil)
        ok.earlierKey = earlier
        return ok
    }
}
