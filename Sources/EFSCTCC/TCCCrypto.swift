import EFSCChannel
import EFSCCore
import EFSCCredentials

/// The TCC's `ChannelCrypto`: real HPKE challenges, eddsa-jcs-2022 proofs
/// and the TCC's signature, with the thread CPU time spent in proof hashes
/// (JCS included), verifications and signing added up, so the overhead
/// around the cryptography can be measured under load.
final class TCCCrypto: ChannelCrypto, @unchecked Sendable {
    let tcc: String
    let key: Ed25519SecretKey
    let method: String
    private let lock = Lock()
    private var micros = 0.0

    init(identity: PartyIdentity) {
        tcc = identity.did
        key = identity.key
        method = identity.verificationMethod
    }

    var cryptoMicros: Double { lock.withLock { micros } }

    func timed<T>(_ body: () throws -> T) rethrows -> T {
        let c0 = CPUClock.threadMicros()
        defer {
            let d = CPUClock.threadMicros() - c0
            lock.withLock { micros += d }
        }
        return try body()
    }

    func challenge(to key: X25519PublicKey, channel: String, did: String, expires: Double) throws -> (message: ChannelMessage, id: String, secret: [UInt8]) {
        let cid = Hex.encode(Digest.randomBytes(12))
        let (m, secret) = try ChannelAuth.challenge(to: key, channel: channel, did: did, challengeId: cid, tcc: tcc, expires: expires)
        return (m, cid, secret)
    }

    func inputHash(_ document: JSONObject, _ proof: JSONObject) throws -> [UInt8] {
        try timed { try EddsaJcs2022.inputHash(document: document, proof: proof) }
    }

    func verify(inputHash: [UInt8], proof: JSONObject, key: Ed25519PublicKey) throws {
        try timed { try EddsaJcs2022.verifyProof(inputHash: inputHash, proof: proof, key: key) }
    }

    func issue(_ joint: VerifiableCredential, created: String) throws -> (json: JSONObject, bytes: [UInt8]) {
        try timed {
            let vc = try TSC.issueVerified(joint, tccKey: key, tccMethod: method, created: created)
            return (vc.json, try JCS.canonicalize(.object(vc.json)))
        }
    }
}
