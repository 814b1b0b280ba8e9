import EFSCCore
import EFSCIdentity

/// Why a TIC or TSC could not be created.
public enum TradeError: Error, Sendable, Equatable, CustomStringConvertible {
    case claimInvalid([TemplateViolation])
    case wrongTemplateKind(expected: String, got: String)
    case wrongSigner(String)
    case proofInvalid(String)
    case malformed(String)

    public var description: String {
        switch self {
        case .claimInvalid(let v): return "claim does not satisfy its template: " + v.map(\.description).joined(separator: "; ")
        case .wrongTemplateKind(let e, let g): return "template is a \(g), expected a \(e)"
        case .wrongSigner(let m): return "wrong signer: \(m)"
        case .proofInvalid(let m): return "existing proof does not verify: \(m)"
        case .malformed(let m): return "malformed credential: \(m)"
        }
    }
}

/// The result of checking a TIC or TSC step by step, in the paper's order.
public struct TradeVerification: Sendable {
    public struct Step: Sendable, Equatable {
        /// Which of the paper's equations the step belongs to (1 or 2; 0 = structure).
        public let equation: Int
        public let name: String
        public let ok: Bool
        public let detail: String
    }

    public private(set) var steps: [Step] = []

    public var ok: Bool { !steps.isEmpty && steps.allSatisfy(\.ok) }
    public var failedStep: Step? { steps.first { !$0.ok } }

    mutating func pass(_ eq: Int, _ name: String, _ detail: String) { steps.append(Step(equation: eq, name: name, ok: true, detail: detail)) }
    mutating func fail(_ eq: Int, _ name: String, _ detail: String) { steps.append(Step(equation: eq, name: name, ok: false, detail: detail)) }

    /// Step 0: VC 2.0 structure, credential type, validity window.
    mutating func checkStructure(_ vc: VerifiableCredential, type: String, now: Double?) -> Bool {
        do {
            try vc.checkStructure()
            guard vc.types.contains(type) else { throw CredentialError.malformed("type must include \(type)") }
            if let now { try vc.checkValidity(at: now) }
            pass(0, "structure", "VC 2.0 \(type)")
            return true
        } catch {
            fail(0, "structure", "\(error)")
            return false
        }
    }

    /// Eq. (1) template step: the named template exists, is of `kind`, and the claim satisfies it.
    mutating func checkTemplate(_ vc: VerifiableCredential, _ store: any TemplateStore, kind: Template.Kind) async -> Bool {
        switch await TradeSupport.template(of: vc, in: store, kind: kind) {
        case .failure(let m):
            fail(1, "template", m.message)
            return false
        case .success(let t):
            let v = t.validate(vc.subject ?? .null)
            guard v.isEmpty else {
                fail(1, "template", v.map(\.description).joined(separator: "; "))
                return false
            }
            pass(1, "template", "\(t.id) v\(t.version)")
            return true
        }
    }

    /// A step that verifies proof `index` and requires it to be by `signer` (when given).
    mutating func checkProof(
        _ verifier: ProofVerifier, _ vc: VerifiableCredential, index: Int, equation: Int, step: String, signer: String?, role: String
    ) async -> ProofCheck? {
        let c = await verifier.verify(vc.json, proof: vc.proofs[index], index: index)
        guard c.ok else {
            fail(equation, step, "\(c.label): \(c.failure!)")
            return nil
        }
        if let signer, c.signer != signer {
            fail(equation, step, "\(c.label) is by \(c.signer ?? "?"), not the \(role) \(signer)")
            return nil
        }
        pass(equation, step, "\(c.label) by \(c.signer ?? "?")" + (c.earlierKey ? " (with a key of an earlier version of its DID document)" : ""))
        return c
    }

    /// One line: "valid" or "Eq. (1) tcc-proof failed: …".
    public var summary: String {
        if let f = failedStep {
            return (f.equation == 0 ? "structure" : "Eq. (\(f.equation)) \(f.name)") + " failed: \(f.detail)"
        }
        return "valid"
    }
}

/// A verification step's failure message.
struct StepFailure: Error {
    let message: String
    init(_ m: String) { message = m }
}

/// Shared pieces of TIC and TSC handling.
enum TradeSupport {
    static func did(of method: String) -> String { DIDSyntax.did(ofURL: method) }

    static func checkClaim(_ claim: JSON, _ t: Template, kind: Template.Kind) throws(TradeError) {
        guard t.kind == kind else { throw .wrongTemplateKind(expected: kind.rawValue, got: t.kind.rawValue) }
        let v = t.validate(claim)
        if !v.isEmpty { throw .claimInvalid(v) }
    }

    /// The template a credential names, or a failure message.
    static func template(of vc: VerifiableCredential, in store: any TemplateStore, kind: Template.Kind) async -> Result<Template, StepFailure> {
        guard let ref = vc.template else { return .failure(StepFailure("credentialSchema does not name a template")) }
        do {
            let t = try await store.template(id: ref.id, version: ref.version)
            guard t.kind == kind else { return .failure(StepFailure("template \(ref.id) v\(ref.version) is a \(t.kind.rawValue), not a \(kind.rawValue)")) }
            return .success(t)
        } catch {
            return .failure(StepFailure("\(error)"))
        }
    }

    /// Checks a claim's parties and returns (provider, consumer).
    static func parties(_ claim: JSON) -> Result<(String, String), StepFailure> {
        guard let p = claim["providerDid"]?.stringValue, DIDSyntax.isValid(p) else { return .failure(StepFailure("providerDid is missing or not a DID")) }
        guard let c = claim["consumerDid"]?.stringValue, DIDSyntax.isValid(c) else { return .failure(StepFailure("consumerDid is missing or not a DID")) }
        guard p != c else { return .failure(StepFailure("provider and consumer must be different DIDs")) }
        return .success((p, c))
    }
}

/// Transaction Initiation Credential: the consumer applies against a TIT
/// (and signs the application); the provider issues it with a proof chained
/// to the application proof.
public enum TIC {
    public static let type = "TransactionInitiationCredential"
    public static let applicationProofID = "urn:efsc:proof:consumer-application"
    public static let issuanceProofID = "urn:efsc:proof:provider-issuance"

    public static func apply(
        claim: JSON, template: Template, consumerKey: Ed25519SecretKey, consumerMethod: String,
        validFrom: String = DateTime.now(), validUntil: String? = nil, created: String? = nil
    ) throws -> VerifiableCredential {
        try TradeSupport.checkClaim(claim, template, kind: .tit)
        guard claim["consumerDid"]?.stringValue == TradeSupport.did(of: consumerMethod) else {
            throw TradeError.wrongSigner("the application must be signed by the consumerDid of the claim")
        }
        let provider = claim["providerDid"]!.stringValue!
        let vc = VerifiableCredential(
            types: [type], issuer: provider, validFrom: validFrom, validUntil: validUntil, subject: claim,
            template: (template.id, template.version))
        return try vc.signed(
            with: consumerKey, options: .init(verificationMethod: consumerMethod, created: created, id: applicationProofID))
    }

    public static func issue(
        application: VerifiableCredential, providerKey: Ed25519SecretKey, providerMethod: String,
        resolver: any DIDResolver, templates: any TemplateStore, created: String? = nil
    ) async throws -> VerifiableCredential {
        let check = await verify(application, resolver: resolver, templates: templates, requireIssuance: false)
        if let f = check.failedStep { throw TradeError.proofInvalid(f.detail) }
        guard application.issuer == TradeSupport.did(of: providerMethod) else {
            throw TradeError.wrongSigner("only the provider named as issuer can issue this TIC")
        }
        return try application.signed(
            with: providerKey,
            options: .init(verificationMethod: providerMethod, created: created, id: issuanceProofID, previousProof: [applicationProofID]))
    }

    /// Eq. (1): provider's issuance proof, provider DID, template; Eq. (2): claim and consumer's proof.
    public static func verify(
        _ vc: VerifiableCredential, resolver: any DIDResolver, templates: any TemplateStore, now: Double? = nil,
        requireIssuance: Bool = true
    ) async -> TradeVerification {
        var r = TradeVerification()
        guard r.checkStructure(vc, type: type, now: now) else { return r }
        let verifier = ProofVerifier(resolver: resolver, now: now)
        let proofs = vc.proofs
        let issuer = vc.issuer ?? ""
        if requireIssuance {
            guard let ip = proofs.firstIndex(where: { EddsaJcs2022.previousProofIDs($0).contains(applicationProofID) }) else {
                r.fail(1, "provider-proof", "no issuance proof chained to the application proof")
                return r
            }
            let c = await verifier.verify(vc.json, proof: proofs[ip], index: ip)
            guard c.ok else {
                r.fail(1, "provider-proof", "\(c.label): \(c.failure!)")
                return r
            }
            r.pass(1, "provider-proof", "\(c.label) by \(c.signer ?? "?")")
            guard c.signer == issuer else {
                r.fail(1, "provider-did", "issuance proof is by \(c.signer ?? "?"), but the issuer is \(issuer)")
                return r
            }
            r.pass(1, "provider-did", issuer)
        }
        let claim = vc.subject ?? .null
        guard await r.checkTemplate(vc, templates, kind: .tit) else { return r }
        let consumer: String
        switch TradeSupport.parties(claim) {
        case .failure(let m):
            r.fail(2, "claim", m.message)
            return r
        case .success(let (p, c)):
            guard p == issuer else {
                r.fail(2, "claim", "providerDid \(p) is not the issuer \(issuer)")
                return r
            }
            consumer = c
            r.pass(2, "claim", "provider \(p), consumer \(c)")
        }
        guard let ap = proofs.firstIndex(where: { $0["id"]?.stringValue == applicationProofID }) else {
            r.fail(2, "consumer-proof", "no application proof by the consumer")
            return r
        }
        _ = await r.checkProof(verifier, vc, index: ap, equation: 2, step: "consumer-proof", signer: consumer, role: "consumer")
        return r
    }
}

/// Transaction Settlement Credential: the provider proposes a claim per the
/// TST, the consumer countersigns (a proof set), and the TCC issues it with
/// a proof chained to both (Data Integrity proof chain).
public enum TSC {
    public static let type = "TransactionSettlementCredential"
    public static let providerProofID = "urn:efsc:proof:provider"
    public static let consumerProofID = "urn:efsc:proof:consumer"
    public static let tccProofID = "urn:efsc:proof:tcc"

    public static func propose(
        claim: JSON, template: Template, tccDID: String, providerKey: Ed25519SecretKey, providerMethod: String,
        validFrom: String? = nil, id: String = VerifiableCredential.newID(), created: String? = nil
    ) throws -> VerifiableCredential {
        try TradeSupport.checkClaim(claim, template, kind: .tst)
        guard claim["providerDid"]?.stringValue == TradeSupport.did(of: providerMethod) else {
            throw TradeError.wrongSigner("the proposal must be signed by the providerDid of the claim")
        }
        let vc = VerifiableCredential(
            id: id, types: [type], issuer: tccDID, validFrom: validFrom ?? claim["start"]?.stringValue ?? DateTime.now(),
            subject: claim, template: (template.id, template.version))
        return try vc.signed(with: providerKey, options: .init(verificationMethod: providerMethod, created: created, id: providerProofID))
    }

    /// The consumer checks the provider's proof and the claim, then adds its own proof.
    public static func countersign(
        _ proposal: VerifiableCredential, consumerKey: Ed25519SecretKey, consumerMethod: String,
        resolver: any DIDResolver, templates: any TemplateStore, created: String? = nil
    ) async throws -> VerifiableCredential {
        let claim = proposal.subject ?? .null
        guard claim["consumerDid"]?.stringValue == TradeSupport.did(of: consumerMethod) else {
            throw TradeError.wrongSigner("the countersignature must be by the consumerDid of the claim")
        }
        let r = await verify(proposal, resolver: resolver, templates: templates, stage: .proposed)
        if let f = r.failedStep { throw TradeError.proofInvalid(f.detail) }
        return try proposal.signed(with: consumerKey, options: .init(verificationMethod: consumerMethod, created: created, id: consumerProofID))
    }

    /// The TCC checks both parties' proofs and issues with a proof chained to both.
    public static func issue(
        _ joint: VerifiableCredential, tccKey: Ed25519SecretKey, tccMethod: String,
        resolver: any DIDResolver, templates: any TemplateStore, created: String? = nil
    ) async throws -> VerifiableCredential {
        guard joint.issuer == TradeSupport.did(of: tccMethod) else {
            throw TradeError.wrongSigner("this TSC names \(joint.issuer ?? "?") as issuer, not \(TradeSupport.did(of: tccMethod))")
        }
        let r = await verify(joint, resolver: resolver, templates: templates, stage: .jointlySigned)
        if let f = r.failedStep { throw TradeError.proofInvalid(f.detail) }
        return try issueVerified(joint, tccKey: tccKey, tccMethod: tccMethod, created: created)
    }

    /// Adds the TCC proof to a jointly signed TSC the caller has already verified.
    public static func issueVerified(_ joint: VerifiableCredential, tccKey: Ed25519SecretKey, tccMethod: String, created: String? = nil) throws -> VerifiableCredential {
        try joint.signed(
            with: tccKey,
            options: .init(verificationMethod: tccMethod, created: created, id: tccProofID, previousProof: [providerProofID, consumerProofID]))
    }

    /// How far a TSC has come; earlier stages skip the later proofs.
    public enum Stage: Sendable { case proposed, jointlySigned, issued }

    /// Eq. (1) — TCC proof, TCC DID, template — then Eq. (2) — claim data and
    /// the joint proofs of provider and consumer. Stops at the first failure.
    /// `trustedTCCs`, when given, is the set of TCC DIDs allowed to issue.
    public static func verify(
        _ vc: VerifiableCredential, resolver: any DIDResolver, templates: any TemplateStore, now: Double? = nil,
        trustedTCCs: Set<String>? = nil, stage: Stage = .issued
    ) async -> TradeVerification {
        var r = TradeVerification()
        guard r.checkStructure(vc, type: type, now: now) else { return r }
        let verifier = ProofVerifier(resolver: resolver, now: now)
        let proofs = vc.proofs
        let issuer = vc.issuer ?? ""
        if stage == .issued {
            let chained = proofs.indices.filter {
                let prev = Set(EddsaJcs2022.previousProofIDs(proofs[$0]))
                return prev.contains(providerProofID) && prev.contains(consumerProofID)
            }
            guard chained.count == 1, let ti = chained.first else {
                r.fail(1, "tcc-proof", chained.isEmpty ? "no TCC proof chained to both parties' proofs" : "more than one TCC proof")
                return r
            }
            let c = await verifier.verify(vc.json, proof: proofs[ti], index: ti)
            guard c.ok else {
                r.fail(1, "tcc-proof", "\(c.label): \(c.failure!)")
                return r
            }
            r.pass(1, "tcc-proof", "\(c.label) verified")
            guard c.signer == issuer else {
                r.fail(1, "tcc-did", "TCC proof is by \(c.signer ?? "?"), but the issuer is \(issuer)")
                return r
            }
            if let t = trustedTCCs, !t.contains(issuer) {
                r.fail(1, "tcc-did", "\(issuer) is not a TCC of this network")
                return r
            }
            r.pass(1, "tcc-did", issuer)
        }
        let claim = vc.subject ?? .null
        guard await r.checkTemplate(vc, templates, kind: .tst) else { return r }
        let provider: String
        let consumer: String
        switch TradeSupport.parties(claim) {
        case .failure(let m):
            r.fail(2, "claim", m.message)
            return r
        case .success(let (p, c)):
            provider = p
            consumer = c
        }
        if let s = claim["start"]?.stringValue, let e = claim["end"]?.stringValue, let ts = DateTime.parse(s), let te = DateTime.parse(e), ts >= te {
            r.fail(2, "claim", "start \(s) is not before end \(e)")
            return r
        }
        guard issuer != provider && issuer != consumer else {
            r.fail(2, "claim", "a party cannot issue its own settlement")
            return r
        }
        r.pass(2, "claim", "channel \(claim["channelId"]?.stringValue ?? "?") sequence \(claim["sequence"]?.intValue ?? 0)")
        // An issued TSC's TCC proof was made after the TCC checked both
        // parties' proofs with their then-current keys: a party key rotated
        // out since still counts (as on chain). Without that proof, it does not.
        var partyVerifier = verifier
        partyVerifier.acceptEarlierKeys = stage == .issued
        for (pid, who, did) in [(providerProofID, "provider", provider), (consumerProofID, "consumer", consumer)] {
            if stage == .proposed && who == "consumer" { break }
            guard let i = proofs.firstIndex(where: { $0["id"]?.stringValue == pid }) else {
                r.fail(2, "\(who)-proof", "no proof by the \(who)")
                return r
            }
            guard await r.checkProof(partyVerifier, vc, index: i, equation: 2, step: "\(who)-proof", signer: did, role: who) != nil else { return r }
        }
        return r
    }
}
