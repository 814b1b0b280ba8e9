import EFSCCore
import EFSCIdentity
import Testing
@testable import EFSCCredentials

/// A provider, a consumer and a TCC with did:efsc identities, resolvable locally.
struct Parties {
    let provider = Ed25519SecretKey()
    let consumer = Ed25519SecretKey()
    let tcc = Ed25519SecretKey()
    let providerDID: String
    let consumerDID: String
    let tccDID: String
    let resolver = LocalDIDResolver()
    let templates = LocalTemplateStore()
    /// Each DID's create operation (to extend its history in tests).
    let creates: [String: JSONObject]

    init() throws {
        var dids: [String] = []
        var ops: [String: JSONObject] = [:]
        for k in [provider, consumer, tcc] {
            let (did, _, op) = try EFSCDID.createOperation(network: "test", key: k)
            resolver.add(try DIDHistory(create: op))
            dids.append(did)
            ops[did] = op
        }
        creates = ops
        providerDID = dids[0]
        consumerDID = dids[1]
        tccDID = dids[2]
    }

    func vm(_ did: String) -> String { "\(did)#key-1" }

    func tstClaim(sequence: Int = 1) -> JSONObject {
        [
            "providerDid": .string(providerDID), "consumerDid": .string(consumerDID), "channelId": "ch-1",
            "sequence": .number(Double(sequence)), "usage": 2, "fee": 25, "start": "2026-01-01T10:00:00Z",
            "end": "2026-01-01T10:01:00Z", "encryptionMethod": "HPKE-X25519-SHA256-ChaCha20Poly1305",
        ]
    }

    func issuedTSC(sequence: Int = 1) async throws -> VerifiableCredential {
        let p = try TSC.propose(
            claim: .object(tstClaim(sequence: sequence)), template: BaseTemplates.tst, tccDID: tccDID, providerKey: provider,
            providerMethod: vm(providerDID))
        let j = try await TSC.countersign(p, consumerKey: consumer, consumerMethod: vm(consumerDID), resolver: resolver, templates: templates)
        return try await TSC.issue(j, tccKey: tcc, tccMethod: vm(tccDID), resolver: resolver, templates: templates)
    }
}

@Suite struct TSCTests {
    /// A TSC signed before its provider rotated keys still verifies (the
    /// TCC's proof vouches for the then-current key), and says so; a TSC
    /// without the TCC's proof gets no such allowance.
    @Test func aTSCSignedBeforeAKeyRotationStillVerifies() async throws {
        let p = try Parties()
        let tsc = try await p.issuedTSC()
        let joint = VerifiableCredential(json: {
            var j = tsc.json
            j["proof"] = .array(tsc.proofs.filter { $0["id"]?.stringValue != TSC.tccProofID }.map { .object($0) })
            return j
        }())
        var h = try DIDHistory(create: p.creates[p.providerDID]!)
        let (_, rot) = try EFSCDID.rotateOperation(
            current: h.current.document, version: 1, currentKey: p.provider, currentMethod: p.vm(p.providerDID), newKey: Ed25519SecretKey())
        try h.apply(rot)
        p.resolver.add(h)
        let r = await TSC.verify(tsc, resolver: p.resolver, templates: p.templates)
        #expect(r.ok, "\(r.summary)")
        #expect(r.steps.first { $0.name == "provider-proof" }?.detail.contains("earlier version") == true)
        let rj = await TSC.verify(joint, resolver: p.resolver, templates: p.templates, stage: .jointlySigned)
        #expect(!rj.ok && rj.failedStep?.name == "provider-proof", "\(rj.summary)")
    }

    @Test func fullSettlementVerifies() async throws {
        let p = try Parties()
        let tsc = try await p.issuedTSC()
        #expect(tsc.proofs.count == 3)
        #expect(tsc.issuer == p.tccDID)
        let r = await TSC.verify(tsc, resolver: p.resolver, templates: p.templates, trustedTCCs: [p.tccDID])
        #expect(r.ok, "\(r.summary)")
        #expect(r.steps.map(\.name) == ["structure", "tcc-proof", "tcc-did", "template", "claim", "provider-proof", "consumer-proof"])
        // Survives a round trip through bytes.
        let back = VerifiableCredential(json: try JSONParser.parse(try JCS.canonicalize(.object(tsc.json))).objectValue!)
        #expect(await TSC.verify(back, resolver: p.resolver, templates: p.templates).ok)
    }

    /// Changing any claim field breaks Eq. (1) first: the TCC proof covers the claim.
    @Test(arguments: ["fee", "usage", "sequence", "channelId", "end"])
    func tamperedClaimFailsTCCProof(field: String) async throws {
        let p = try Parties()
        var tsc = try await p.issuedTSC()
        var claim = tsc.json["credentialSubject"]!.objectValue!
        claim[field] = field == "channelId" || field == "end" ? "2026-01-01T10:02:00Z" : 99
        tsc.json["credentialSubject"] = .object(claim)
        let r = await TSC.verify(tsc, resolver: p.resolver, templates: p.templates)
        #expect(r.failedStep?.name == "tcc-proof")
        #expect(r.failedStep?.equation == 1)
        #expect(r.summary.contains("signature does not verify"))
    }

    @Test func tamperedPartyProofFailsEquationTwo() async throws {
        let p = try Parties()
        var tsc = try await p.issuedTSC()
        // Alter the consumer's proof: the TCC proof does not cover it in the
        // chain's hashed form? It does: previousProof hashes both, so Eq. (1) fails.
        var proofs = tsc.json["proof"]!.arrayValue!
        proofs[1]["created"] = "2020-01-01T00:00:00Z"
        tsc.json["proof"] = .array(proofs)
        let r = await TSC.verify(tsc, resolver: p.resolver, templates: p.templates)
        #expect(r.failedStep?.name == "tcc-proof")
        // A jointly signed (not yet issued) TSC with a bad consumer proof fails Eq. (2).
        var joint = tsc
        joint.json["proof"] = .array(Array(proofs[0..<2]))
        let r2 = await TSC.verify(joint, resolver: p.resolver, templates: p.templates, stage: .jointlySigned)
        #expect(r2.failedStep?.name == "consumer-proof")
        #expect(r2.failedStep?.equation == 2)
    }

    @Test func issuerMustBeTheTCC() async throws {
        let p = try Parties()
        let tsc = try await p.issuedTSC()
        // Another DID re-issues: it signs the chained proof, but is not the issuer.
        let rogue = Ed25519SecretKey()
        let (rdid, _, op) = try EFSCDID.createOperation(network: "test", key: rogue)
        p.resolver.add(try DIDHistory(create: op))
        var stripped = tsc
        stripped.json["proof"] = .array(Array(tsc.json["proof"]!.arrayValue![0..<2]))
        let forged = try TSC.issueVerified(stripped, tccKey: rogue, tccMethod: "\(rdid)#key-1")
        let r = await TSC.verify(forged, resolver: p.resolver, templates: p.templates)
        #expect(r.failedStep?.name == "tcc-did")
        // And a TCC outside the trusted set is refused even when it is the issuer.
        let r2 = await TSC.verify(tsc, resolver: p.resolver, templates: p.templates, trustedTCCs: [rdid])
        #expect(r2.failedStep?.name == "tcc-did")
        await #expect(throws: TradeError.self) {
            try await TSC.issue(stripped, tccKey: rogue, tccMethod: "\(rdid)#key-1", resolver: p.resolver, templates: p.templates)
        }
    }

    @Test func partiesMustSignTheirOwnProofs() async throws {
        let p = try Parties()
        let proposal = try TSC.propose(
            claim: .object(p.tstClaim()), template: BaseTemplates.tst, tccDID: p.tccDID, providerKey: p.provider,
            providerMethod: p.vm(p.providerDID))
        // The provider cannot countersign as the consumer.
        await #expect(throws: TradeError.self) {
            try await TSC.countersign(proposal, consumerKey: p.provider, consumerMethod: p.vm(p.providerDID), resolver: p.resolver, templates: p.templates)
        }
        // A consumer proof made with the wrong key but the consumer's method fails.
        let bad = try proposal.signed(with: p.provider, options: .init(verificationMethod: p.vm(p.consumerDID), id: TSC.consumerProofID))
        let r = await TSC.verify(bad, resolver: p.resolver, templates: p.templates, stage: .jointlySigned)
        #expect(r.failedStep?.name == "consumer-proof")
        // The consumer's own proof under the provider's proof id is caught too.
        let swapped = try VerifiableCredential(json: proposal.json).signed(
            with: p.consumer, options: .init(verificationMethod: p.vm(p.consumerDID), id: "other"))
        let r2 = await TSC.verify(swapped, resolver: p.resolver, templates: p.templates, stage: .jointlySigned)
        #expect(r2.failedStep?.name == "consumer-proof")
        await #expect(throws: TradeError.self) {
            try TSC.propose(
                claim: .object(p.tstClaim()), template: BaseTemplates.tst, tccDID: p.tccDID, providerKey: p.consumer,
                providerMethod: p.vm(p.consumerDID))
        }
    }

    @Test func claimAndTemplateChecks() async throws {
        let p = try Parties()
        var bad = p.tstClaim()
        bad["fee"] = -1
        #expect(throws: TradeError.self) {
            try TSC.propose(claim: .object(bad), template: BaseTemplates.tst, tccDID: p.tccDID, providerKey: p.provider, providerMethod: p.vm(p.providerDID))
        }
        #expect(throws: TradeError.self) {
            try TSC.propose(claim: .object(p.tstClaim()), template: BaseTemplates.tit, tccDID: p.tccDID, providerKey: p.provider, providerMethod: p.vm(p.providerDID))
        }
        // Start after end is a claim (Eq. 2) failure even though each is a valid date-time.
        var backwards = p.tstClaim()
        backwards["start"] = "2026-01-01T11:00:00Z"
        let prop = try TSC.propose(
            claim: .object(backwards), template: BaseTemplates.tst, tccDID: p.tccDID, providerKey: p.provider, providerMethod: p.vm(p.providerDID))
        let r = await TSC.verify(prop, resolver: p.resolver, templates: p.templates, stage: .proposed)
        #expect(r.failedStep?.name == "claim")
        // An unknown template is an Eq. (1) template failure.
        var tsc = try await p.issuedTSC()
        tsc.json["credentialSchema"] = ["id": "urn:nope", "type": "EFSCCredentialTemplate", "version": 1]
        let r2 = await TSC.verify(tsc, resolver: p.resolver, templates: p.templates, stage: .jointlySigned)
        #expect(r2.failedStep?.name == "template")
    }

    @Test func deactivatedTCCCannotBeVerified() async throws {
        let p = try Parties()
        let tsc = try await p.issuedTSC()
        let r = LocalDIDResolver()
        for k in [p.provider, p.consumer] {
            let (_, _, op) = try EFSCDID.createOperation(network: "test", key: k)
            r.add(try DIDHistory(create: op))
        }
        let (_, doc, op) = try EFSCDID.createOperation(network: "test", key: p.tcc)
        var h = try DIDHistory(create: op)
        try h.apply(try EFSCDID.deactivateOperation(current: doc, version: 1, signer: p.tcc, signerMethod: p.vm(p.tccDID)))
        r.add(h)
        let res = await TSC.verify(tsc, resolver: r, templates: p.templates)
        #expect(res.failedStep?.name == "tcc-proof")
        #expect(res.summary.contains("deactivated"))
    }

    @Test func structureIsCheckedFirst() async throws {
        let p = try Parties()
        var tsc = try await p.issuedTSC()
        tsc.json["@context"] = ["https://www.w3.org/2018/credentials/v1"]
        let r = await TSC.verify(tsc, resolver: p.resolver, templates: p.templates)
        #expect(r.failedStep?.name == "structure")
        let expired = try await p.issuedTSC()
        let r2 = await TSC.verify(expired, resolver: p.resolver, templates: p.templates, now: DateTime.parse("2020-01-01T00:00:00Z"))
        #expect(r2.failedStep?.name == "structure")
    }
}

@Suite struct TICTests {
    @Test func applyIssueVerifyWithProviderTemplate() async throws {
        let p = try Parties()
        let tit = try ProviderTemplates.timeOfDayTIT(owner: p.providerDID)
        p.templates.add(tit)
        let claim = ProviderTemplates.sampleTITClaim(provider: p.providerDID, consumer: p.consumerDID)
        let app = try TIC.apply(claim: .object(claim), template: tit, consumerKey: p.consumer, consumerMethod: p.vm(p.consumerDID))
        let tic = try await TIC.issue(
            application: app, providerKey: p.provider, providerMethod: p.vm(p.providerDID), resolver: p.resolver, templates: p.templates)
        let r = await TIC.verify(tic, resolver: p.resolver, templates: p.templates, now: DateTime.currentTime())
        #expect(r.ok, "\(r.summary)")
        #expect(tic.issuer == p.providerDID)
        // Only the provider named in the claim can issue.
        await #expect(throws: TradeError.self) {
            try await TIC.issue(application: app, providerKey: p.tcc, providerMethod: p.vm(p.tccDID), resolver: p.resolver, templates: p.templates)
        }
        // A tampered price breaks the provider's proof.
        var t2 = tic
        var c = t2.json["credentialSubject"]!.objectValue!
        c["unitPrice"] = 0.01
        t2.json["credentialSubject"] = .object(c)
        #expect(await TIC.verify(t2, resolver: p.resolver, templates: p.templates).failedStep?.name == "provider-proof")
        // Without the provider's template the verifier says so.
        #expect(await TIC.verify(tic, resolver: p.resolver, templates: LocalTemplateStore()).failedStep?.name == "template")
    }

    @Test func applicationMustSatisfyTemplate() throws {
        let p = try Parties()
        var claim = ProviderTemplates.sampleTITClaim(provider: p.providerDID, consumer: p.consumerDID)
        claim["settlementStrategy"] = ["period": 0, "evidenceEvery": 10]
        #expect(throws: TradeError.self) {
            try TIC.apply(claim: .object(claim), template: try ProviderTemplates.timeOfDayTIT(owner: p.providerDID), consumerKey: p.consumer, consumerMethod: p.vm(p.consumerDID))
        }
    }
}

@Suite struct ProofSetAndChainTests {
    @Test func proofSetAndChainVerifyIndependently() async throws {
        let a = Ed25519SecretKey()
        let b = Ed25519SecretKey()
        let c = Ed25519SecretKey()
        let doc: JSONObject = ["@context": [.string(VerifiableCredential.v2Context)], "type": ["VerifiableCredential"], "issuer": .string(DIDKey.did(for: c.publicKey)), "credentialSubject": ["x": 1]]
        var d = try EddsaJcs2022.addProof(to: doc, options: .init(verificationMethod: DIDKey.verificationMethod(for: a.publicKey), id: "urn:p:a"), key: a)
        d = try EddsaJcs2022.addProof(to: d, options: .init(verificationMethod: DIDKey.verificationMethod(for: b.publicKey), id: "urn:p:b"), key: b)
        d = try EddsaJcs2022.addProof(
            to: d, options: .init(verificationMethod: DIDKey.verificationMethod(for: c.publicKey), previousProof: ["urn:p:a", "urn:p:b"]), key: c)
        let checks = await ProofVerifier().verifyAll(d)
        #expect(checks.count == 3)
        #expect(checks.allSatisfy { $0.ok })
        // Removing a proof the chain depends on breaks only the chained proof.
        var missing = d
        missing["proof"] = .array([d["proof"]!.arrayValue![0], d["proof"]!.arrayValue![2]])
        let c2 = await ProofVerifier().verifyAll(missing)
        #expect(c2[0].ok)
        #expect(c2[1].failure == ProofError.previousProofNotFound("urn:p:b").description)
        // A proof value from another key fails with the signature reason.
        var wrong = d
        var ps = d["proof"]!.arrayValue!
        ps[0]["proofValue"] = ps[1]["proofValue"]
        wrong["proof"] = .array(ps)
        let c3 = await ProofVerifier().verifyAll(wrong)
        #expect(c3[0].failure == ProofError.badSignature.description)
        #expect(!c3[2].ok)
    }

    @Test func proofFieldTamperingIsCaught() async throws {
        let k = Ed25519SecretKey()
        let doc: JSONObject = ["a": 1]
        let signed = try EddsaJcs2022.addProof(to: doc, options: .init(verificationMethod: DIDKey.verificationMethod(for: k.publicKey)), key: k)
        for (field, value, expected) in [
            ("cryptosuite", JSON.string("eddsa-rdfc-2022"), ProofError.unsupportedCryptosuite("eddsa-rdfc-2022").description),
            ("type", "Ed25519Signature2020", ProofError.unsupportedType("Ed25519Signature2020").description),
            ("created", "2020-01-01T00:00:00Z", ProofError.badSignature.description),
            ("created", "last week", ProofError.invalidDate(field: "created", value: "\"last week\"").description),
            ("proofValue", "zzz", "proofValue is malformed: an Ed25519 signature is 64 bytes, got 2"),
            ("proofPurpose", "authentication", ProofError.badSignature.description),
        ] {
            var p = signed["proof"]!.objectValue!
            p[field] = value
            var t = signed
            t["proof"] = .object(p)
            let c = await ProofVerifier().verifyAll(t)
            #expect(c[0].failure == expected, "\(field)")
        }
        // A purpose the key is not authorized for (did:key has no keyAgreement signing).
        var p = signed["proof"]!.objectValue!
        p["proofPurpose"] = "keyAgreement"
        var t = signed
        t["proof"] = .object(p)
        #expect(await ProofVerifier().verifyAll(t)[0].failure?.contains("not authorized for keyAgreement") == true)
        // Verification with an explicit wrong key.
        let c = await ProofVerifier(publicKey: Ed25519SecretKey().publicKey).verifyAll(signed)
        #expect(c[0].failure == ProofError.badSignature.description)
    }
}
