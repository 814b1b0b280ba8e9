import Testing
@testable import EFSCCore

/// The W3C vc-di-eddsa test vectors for eddsa-jcs-2022 (key pair, unsigned
/// Alumni credential, proof options), reproduced byte for byte.
@Suite struct W3CVectorTests {
    static let publicKey = "z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2"
    static let secretKey = "z3u2en7t5LR2WtQH5PfFqMqwVHBeXouLzo6haApm8XHqvjxq"
    static let unsigned = """
        {
          "@context": [
            "https://www.w3.org/ns/credentials/v2",
            "https://www.w3.org/ns/credentials/examples/v2"
          ],
          "id": "urn:uuid:58172aac-d8ba-11ed-83dd-0b3aef56cc33",
          "type": ["VerifiableCredential", "AlumniCredential"],
          "name": "Alumni Credential",
          "description": "A minimum viable example of an Alumni Credential.",
          "issuer": "https://vc.example/issuers/5678",
          "validFrom": "2023-01-01T00:00:00Z",
          "credentialSubject": {
            "id": "did:example:abcdefgh",
            "alumniOf": "The School of Examples"
          }
        }
        """
    static let canonicalDocument =
        #"{"@context":["https://www.w3.org/ns/credentials/v2","https://www.w3.org/ns/credentials/examples/v2"],"credentialSubject":{"alumniOf":"The School of Examples","id":"did:example:abcdefgh"},"description":"A minimum viable example of an Alumni Credential.","id":"urn:uuid:58172aac-d8ba-11ed-83dd-0b3aef56cc33","issuer":"https://vc.example/issuers/5678","name":"Alumni Credential","type":["VerifiableCredential","AlumniCredential"],"validFrom":"2023-01-01T00:00:00Z"}"#
    static let canonicalProofConfig =
        #"{"@context":["https://www.w3.org/ns/credentials/v2","https://www.w3.org/ns/credentials/examples/v2"],"created":"2023-02-24T23:36:38Z","cryptosuite":"eddsa-jcs-2022","proofPurpose":"assertionMethod","type":"DataIntegrityProof","verificationMethod":"did:key:z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2#z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2"}"#

    @Test func keyPairMatches() throws {
        let sk = try Ed25519SecretKey(multibase: Self.secretKey)
        #expect(sk.publicKey.multibase == Self.publicKey)
        #expect(sk.multibase == Self.secretKey)
    }

    @Test func canonicalDocumentMatches() throws {
        let doc = try JSONParser.parse(Self.unsigned)
        #expect(String(decoding: try JCS.canonicalize(doc), as: UTF8.self) == Self.canonicalDocument)
    }

    @Test func didKeyProofValueMatches() throws {
        let sk = try Ed25519SecretKey(multibase: Self.secretKey)
        let doc = try JSONParser.parse(Self.unsigned).objectValue!
        let vm = "did:key:\(Self.publicKey)#\(Self.publicKey)"
        let proof = try EddsaJcs2022.createProof(
            document: doc, options: .init(verificationMethod: vm, created: "2023-02-24T23:36:38Z"), key: sk)
        var config = proof
        config["proofValue"] = nil
        #expect(String(decoding: try JCS.canonicalize(.object(config)), as: UTF8.self) == Self.canonicalProofConfig)
        let hash = try EddsaJcs2022.hashData(document: doc, proofConfig: config)
        #expect(Hex.encode(hash) == "66ab154f5c2890a140cb8388a22a160454f80575f6eae09e5a097cabe539a1db59b7cb6251b8991add1ce0bc83107e3db9dbbab5bd2c28f687db1a03abc92f19")
        try EddsaJcs2022.verifyProof(document: doc, proof: proof, key: sk.publicKey)
    }

    @Test func signedExampleVerifiesAndReproduces() throws {
        let sk = try Ed25519SecretKey(multibase: Self.secretKey)
        let doc = try JSONParser.parse(Self.unsigned).objectValue!
        let vm = "https://vc.example/issuers/5678#\(Self.publicKey)"
        let secured = try EddsaJcs2022.addProof(
            to: doc, options: .init(verificationMethod: vm, created: "2023-02-24T23:36:38Z"), key: sk)
        let proof = secured["proof"]!.objectValue!
        #expect(proof["proofValue"]?.stringValue == "z63t83Y53KfzJ5ZosfKTnqfMcKB2dmTrfjSaQjeNNjAD5srBowQfmWqeRb8rRjmeEuCBEsddF9LsVogtuTsijJKh4")
        try EddsaJcs2022.verifyProof(document: secured, proof: proof, key: sk.publicKey)
        // The vector's signature in hex is the same 64 bytes.
        let sig = try Multibase.decodeRaw(proof["proofValue"]!.stringValue!)
        #expect(Hex.encode(sig) == "fc91dec6565f35fbe185a77352e7fc512f95d1904da305cfef32ab8135469301f5a72d4e7a58368fc6ffc497b44633993bac054e3bc1436e3c846db8f1544503")
    }

    /// The published signed example, as a verifier receives it.
    @Test func publishedSignedExampleVerifies() throws {
        let signed = try JSONParser.parse(Self.signedExample).objectValue!
        let pk = try Ed25519PublicKey(multibase: Self.publicKey)
        let proof = EddsaJcs2022.proofs(of: signed)[0]
        try EddsaJcs2022.verifyProof(document: signed, proof: proof, key: pk)
        var tampered = signed
        tampered["name"] = "Forged Credential"
        #expect(throws: ProofError.badSignature) {
            try EddsaJcs2022.verifyProof(document: tampered, proof: proof, key: pk)
        }
    }

    static let signedExample = """
        {
          "@context": ["https://www.w3.org/ns/credentials/v2", "https://www.w3.org/ns/credentials/examples/v2"],
          "id": "urn:uuid:58172aac-d8ba-11ed-83dd-0b3aef56cc33",
          "type": ["VerifiableCredential", "AlumniCredential"],
          "name": "Alumni Credential",
          "description": "A minimum viable example of an Alumni Credential.",
          "issuer": "https://vc.example/issuers/5678",
          "validFrom": "2023-01-01T00:00:00Z",
          "credentialSubject": {"id": "did:example:abcdefgh", "alumniOf": "The School of Examples"},
          "proof": {
            "type": "DataIntegrityProof",
            "cryptosuite": "eddsa-jcs-2022",
            "created": "2023-02-24T23:36:38Z",
            "verificationMethod": "https://vc.example/issuers/5678#z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2",
            "proofPurpose": "assertionMethod",
            "@context": ["https://www.w3.org/ns/credentials/v2", "https://www.w3.org/ns/credentials/examples/v2"],
            "proofValue": "z63t83Y53KfzJ5ZosfKTnqfMcKB2dmTrfjSaQjeNNjAD5srBowQfmWqeRb8rRjmeEuCBEsddF9LsVogtuTsijJKh4"
          }
        }
        """
}
