import EFSCCore
import Testing
@testable import EFSCIdentity

@Suite struct DIDKeyTests {
    /// did:key Ed25519 vectors: the DID, its Multikey, and the X25519
    /// key-agreement key the did:key method derives from it.
    @Test(arguments: [
        (
            "did:key:z6MkmjY8GnV5i9YTDtPETC2uUAW6ejw3nk5mXF5yci5ab7th", "8HH5gYEeNc3z7PYXmd54d4x6qAfCNrqQqEB3nS7Zfu7K",
            "z6LShpNhGwSupbB7zjuivH156vhLJBDDzmQtA4BY9S94pe1K"
        ),
        (
            "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp", nil,
            "z6LShs9GGnqk85isEBzzshkuVWrVKsRp24GnDuHk8QWkARMW"
        ),
    ])
    func vectors(did: String, rawBase58: String?, keyAgreement: String) throws {
        let doc = try DIDKey.resolve(did)
        let mb = String(did.dropFirst("did:key:".count))
        #expect(doc.id == did)
        let vm = try doc.method("\(did)#\(mb)", for: .assertionMethod)
        #expect(vm.type == "Multikey")
        #expect(vm.controller == did)
        #expect(vm.publicKeyMultibase == mb)
        if let raw = rawBase58 { #expect(vm.ed25519Key?.raw == Base58.decode(raw)) }
        for r in [VerificationRelationship.authentication, .capabilityInvocation, .capabilityDelegation] {
            _ = try doc.method("\(did)#\(mb)", for: r)
        }
        let (kaID, ka) = try doc.keyAgreementKey()
        #expect(ka.multibase == keyAgreement)
        #expect(kaID == "\(did)#\(keyAgreement)")
        // The key-agreement key must not be usable for signatures.
        #expect(throws: DIDError.self) { try doc.method(kaID, for: .assertionMethod) }
    }

    @Test func generatedKeysRoundTrip() throws {
        let sk = Ed25519SecretKey()
        let did = DIDKey.did(for: sk.publicKey)
        let doc = try DIDKey.resolve(did)
        #expect(try doc.signingKey(DIDKey.verificationMethod(for: sk.publicKey), for: .assertionMethod) == sk.publicKey)
        #expect(try doc.keyAgreementKey().key == sk.derivedKeyAgreementKey().publicKey)
        // The JSON form parses back to the same document.
        #expect(try DIDDocument(json: doc.json) == doc)
    }

    @Test(arguments: ["did:key:zInvalid0", "did:key:", "did:key:z6LSbysY2xFMRpGMhb7tFTLMpeuPRaqaWM1yECx2AtzE3KCc", "did:web:example.com"])
    func rejectsBadDIDKeys(did: String) {
        #expect(throws: DIDError.self) { try DIDKey.resolve(did) }
    }

    @Test func resolverAnswers() async throws {
        let sk = Ed25519SecretKey()
        let did = DIDKey.did(for: sk.publicKey)
        let r = try await DIDKeyResolver().resolve(did)
        #expect(r.document.id == did)
        await #expect(throws: DIDError.unsupportedMethod("web")) { try await DIDKeyResolver().resolve("did:web:example.com") }
        await #expect(throws: DIDError.invalidDID("nodid")) { try await DIDKeyResolver().resolve("nodid") }
    }

    @Test func syntax() {
        #expect(DIDSyntax.isValid("did:efsc:devnet:abc"))
        #expect(DIDSyntax.isValid("did:example:123%20x"))
        #expect(!DIDSyntax.isValid("did:EFSC:x"))
        #expect(!DIDSyntax.isValid("did::x"))
        #expect(!DIDSyntax.isValid("did:x:"))
        #expect(!DIDSyntax.isValid("did:x:a b"))
        #expect(DIDSyntax.did(ofURL: "did:x:y#k-1") == "did:x:y")
    }
}

@Suite struct EFSCDIDTests {
    @Test func createIsSelfCertifying() throws {
        let sk = Ed25519SecretKey()
        let (did, doc, op) = try EFSCDID.createOperation(network: "devnet", key: sk)
        #expect(did.hasPrefix("did:efsc:devnet:"))
        #expect(try EFSCDID.parse(did).id == EFSCDID.identifier(for: sk.publicKey))
        let h = try DIDHistory(create: op)
        #expect(h.current.document == doc)
        #expect(h.current.version == 1)
        #expect(try doc.keyAgreementKey().key == sk.derivedKeyAgreementKey().publicKey)
        #expect(try doc.signingKey("\(did)#key-1", for: .authentication) == sk.publicKey)
    }

    @Test func createSignedByAnotherKeyIsRejected() throws {
        let owner = Ed25519SecretKey()
        let thief = Ed25519SecretKey()
        let (did, doc, _) = try EFSCDID.createOperation(network: "devnet", key: owner)
        // The thief claims the owner's DID but puts its own key in the document.
        var forged = doc
        forged.verificationMethod[0].publicKeyMultibase = thief.publicKey.multibase
        let op: JSONObject = ["type": "DIDOperation", "operation": "create", "did": .string(did), "version": 1, "document": forged.json]
        let signed = try EddsaJcs2022.addProof(
            to: op, options: .init(verificationMethod: "\(did)#key-1", proofPurpose: "capabilityInvocation"), key: thief)
        #expect(throws: DIDError.invalidOperation("\(did) is not derived from the key that signed its creation")) {
            try DIDHistory(create: signed)
        }
    }

    @Test func tamperedCreateIsRejected() throws {
        let (_, _, op) = try EFSCDID.createOperation(network: "devnet", key: Ed25519SecretKey())
        var t = op
        t["version"] = 2
        #expect(throws: DIDError.self) { try DIDHistory(create: t) }
        var doc = op["document"]!.objectValue!
        doc["controller"] = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
        t = op
        t["document"] = .object(doc)
        #expect(throws: DIDError.self) { try DIDHistory(create: t) }
    }

    @Test func rotateThenDeactivate() throws {
        let k1 = Ed25519SecretKey()
        let k2 = Ed25519SecretKey()
        let (did, doc1, op1) = try EFSCDID.createOperation(network: "devnet", key: k1)
        var h = try DIDHistory(create: op1)
        let (doc2, op2) = try EFSCDID.rotateOperation(current: doc1, version: 1, currentKey: k1, currentMethod: "\(did)#key-1", newKey: k2)
        try h.apply(op2)
        #expect(h.current.version == 2)
        #expect(try h.current.document.signingKey("\(did)#key-2", for: .assertionMethod) == k2.publicKey)
        #expect(throws: DIDError.self) { try h.current.document.signingKey("\(did)#key-1", for: .assertionMethod) }
        #expect(h.document(atVersion: 1) == doc1)
        // Replaying the same update is stale.
        #expect(throws: DIDError.self) { try h.apply(op2) }
        // The old key can no longer update.
        let (_, stale) = try EFSCDID.rotateOperation(current: doc2, version: 2, currentKey: k1, currentMethod: "\(did)#key-1", newKey: k1)
        #expect(throws: DIDError.self) { try h.apply(stale) }
        let deact = try EFSCDID.deactivateOperation(current: doc2, version: 2, signer: k2, signerMethod: "\(did)#key-2")
        try h.apply(deact)
        #expect(h.deactivated)
        let (_, after) = try EFSCDID.rotateOperation(current: doc2, version: 3, currentKey: k2, currentMethod: "\(did)#key-2", newKey: k1)
        #expect(throws: DIDError.deactivated(did)) { try h.apply(after) }
    }

    @Test func updateMustNamePreviousVersion() throws {
        let k1 = Ed25519SecretKey()
        let (did, doc1, op1) = try EFSCDID.createOperation(network: "devnet", key: k1)
        var h = try DIDHistory(create: op1)
        var other = doc1
        other.verificationMethod[1].publicKeyMultibase = X25519SecretKey().publicKey.multibase
        // Signed correctly, but over a document that is not the current version.
        let op = try EFSCDID.updateOperation(current: other, version: 1, next: other, signer: k1, signerMethod: "\(did)#key-1")
        #expect(throws: DIDError.invalidOperation("'previous' does not name the current document version")) { try h.apply(op) }
    }

    @Test func localResolverReportsDeactivation() async throws {
        let k1 = Ed25519SecretKey()
        let (did, doc1, op1) = try EFSCDID.createOperation(network: "devnet", key: k1)
        var h = try DIDHistory(create: op1)
        let r = LocalDIDResolver()
        r.add(h)
        _ = try await r.signingKey(for: "\(did)#key-1", relationship: .assertionMethod)
        try h.apply(try EFSCDID.deactivateOperation(current: doc1, version: 1, signer: k1, signerMethod: "\(did)#key-1"))
        r.add(h)
        await #expect(throws: DIDError.deactivated(did)) { try await r.signingKey(for: "\(did)#key-1", relationship: .assertionMethod) }
        await #expect(throws: DIDError.notFound("did:efsc:devnet:unknown")) { try await r.resolve("did:efsc:devnet:unknown") }
    }

    @Test func documentValidation() throws {
        let sk = Ed25519SecretKey()
        let did = "did:efsc:devnet:\(EFSCDID.identifier(for: sk.publicKey))"
        let good = EFSCDID.document(did: did, signingKey: sk.publicKey, keyAgreementKey: sk.derivedKeyAgreementKey().publicKey)
        _ = try DIDDocument(json: good.json)
        // A relationship pointing at a missing method.
        var j = good.json
        j["assertionMethod"] = [.string("\(did)#nope")]
        #expect(throws: DIDError.self) { try DIDDocument(json: j) }
        // A signing relationship pointing at the X25519 key.
        j = good.json
        j["assertionMethod"] = [.string("\(did)#x25519-1")]
        #expect(throws: DIDError.self) { try DIDDocument(json: j) }
        // A method id from another DID.
        j = good.json
        var vms = j["verificationMethod"]!.arrayValue!
        vms[0]["id"] = "did:efsc:devnet:other#key-1"
        j["verificationMethod"] = .array(vms)
        #expect(throws: DIDError.self) { try DIDDocument(json: j) }
        // Unsupported method type.
        j = good.json
        vms = j["verificationMethod"]!.arrayValue!
        vms[0]["type"] = "JsonWebKey2020"
        j["verificationMethod"] = .array(vms)
        #expect(throws: DIDError.self) { try DIDDocument(json: j) }
        #expect(throws: DIDError.self) { try DIDDocument(json: "not an object") }
        #expect(throws: DIDError.self) { try EFSCDID.did(network: "Bad_Net", initialKey: sk.publicKey) }
    }
}
