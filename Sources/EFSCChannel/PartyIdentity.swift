import EFSCCore
import EFSCIdentity
import Foundation

/// A DID and the secret key that controls it, as an identity file holds
/// them: `did`, `verificationMethod`, `secretKeyMultibase` and (for
/// registration) the signed create `operation`.
public struct PartyIdentity: Sendable {
    public var did: String
    public var verificationMethod: String
    public var key: Ed25519SecretKey
    public var operation: JSONObject?

    public init(did: String, verificationMethod: String? = nil, key: Ed25519SecretKey, operation: JSONObject? = nil) {
        self.did = did
        self.verificationMethod = verificationMethod ?? "\(did)#key-1"
        self.key = key
        self.operation = operation
    }

    /// A fresh did:efsc identity on `network`.
    public static func create(network: String) throws -> PartyIdentity {
        let k = Ed25519SecretKey()
        let (did, _, op) = try EFSCDID.createOperation(network: network, key: k)
        return PartyIdentity(did: did, key: k, operation: op)
    }

    public init(json j: JSON) throws(ChainError) {
        guard let did = j["did"]?.stringValue, let sk = j["secretKeyMultibase"]?.stringValue, let key = try? Ed25519SecretKey(multibase: sk) else {
            throw ChainError("an identity needs did and a valid secretKeyMultibase")
        }
        self.init(did: did, verificationMethod: j["verificationMethod"]?.stringValue, key: key, operation: j["operation"]?.objectValue)
    }

    public var json: JSON {
        var o: JSONObject = ["did": .string(did), "verificationMethod": .string(verificationMethod), "secretKeyMultibase": .string(key.multibase)]
        if let operation { o["operation"] = .object(operation) }
        return .object(o)
    }

    /// The key-agreement key paired with the signing key (what did:efsc documents publish).
    public var keyAgreementKey: X25519SecretKey { key.derivedKeyAgreementKey() }
}

/// Transaction nonces that never repeat within a process and stay dense, so
/// concurrent and restarted submitters stay inside the chain's replay window.
public final class NonceSource: @unchecked Sendable {
    let lock = Lock()
    var last = 0

    public init() {}

    /// Dense after the first: concurrent submissions arrive out of order, and
    /// the chain accepts a nonce up to 1024 below the highest it has seen.
    /// The first is the clock in ms × 1000, so a later process starts higher.
    public func next() -> Int {
        lock.withLock {
            last = last == 0 ? Int(DateTime.currentTime() * 1000) * 1000 : last + 1
            return last
        }
    }
}
