import EFSCCore
import EFSCIdentity

/// A signed chain transaction (topics.md `Transaction`): the sender's DID,
/// a per-sender nonce, the operation and its arguments, and the sender's
/// eddsa-jcs-2022 proof (purpose `capabilityInvocation`).
public struct ChainTransaction: Sendable {
    public let json: JSONObject
    /// Canonical bytes: what blocks carry and what the hash is over
    /// (computed once: a batch transaction is kilobytes of JSON).
    public let bytes: [UInt8]
    public let hash: [UInt8]

    public init(json: JSONObject) {
        self.json = json
        bytes = (try? JCS.canonicalize(.object(json))) ?? []
        hash = Digest.sha256(bytes)
    }

    /// A transaction as a block carries it: `bytes` are what every node
    /// hashes, so they are taken as they are.
    public init(json: JSONObject, blockBytes: [UInt8]) {
        self.json = json
        bytes = blockBytes
        hash = Digest.sha256(blockBytes)
    }

    public var group: String? { json["group"]?.stringValue }
    public var sender: String? { json["sender"]?.stringValue }
    public var nonce: Int? { json["nonce"]?.intValue }
    public var op: String? { json["op"]?.stringValue }
    public var args: JSONObject { json["args"]?.objectValue ?? [:] }


    /// Builds and signs a transaction.
    public static func make(
        group: String, sender: String, nonce: Int, op: String, args: JSONObject, key: Ed25519SecretKey, method: String, created: String? = nil
    ) throws -> ChainTransaction {
        let body: JSONObject = [
            "group": .string(group), "sender": .string(sender), "nonce": .number(Double(nonce)), "op": .string(op), "args": .object(args),
        ]
        return ChainTransaction(
            json: try EddsaJcs2022.addProof(
                to: body, options: .init(verificationMethod: method, proofPurpose: "capabilityInvocation", created: created ?? "2026-01-01T00:00:00Z"),
                key: key))
    }
}

/// The outcome of one transaction (topics.md `Receipt`).
public struct Receipt: Sendable, Equatable {
    public let txHash: String
    public let ok: Bool
    public let error: String?
    public let result: JSON?

    public var json: JSON {
        var o: JSONObject = ["txHash": .string(txHash), "status": .string(ok ? "committed" : "rejected")]
        if let e = error { o["error"] = .string(e) }
        if let r = result { o["result"] = r }
        return .object(o)
    }
}

/// Why a transaction was rejected; the message goes into its receipt.
public struct ContractError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ m: String) { message = m }
    public var description: String { message }
}
