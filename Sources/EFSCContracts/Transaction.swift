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
    /// Where the `proof` member (with its separating comma) is in `bytes`,
    /// when `bytes` were made canonical here; what remains is the canonical
    /// document the proof signs, so checking the proof needs no second
    /// canonicalization of a transaction of kilobytes.
    let proofMember: Range<Int>?

    public init(json: JSONObject) {
        self.json = json
        do {
            (bytes, proofMember) = Self.assemble(try Self.canonicalMembers(json))
        } catch {
            // No canonical form (a non-finite number): no bytes.
            (bytes, proofMember) = ([], nil)
        }
        hash = Digest.sha256(bytes)
    }

    /// A transaction as received (a node's pool): parsed once, and when the
    /// text is canonical already (as every EFSC client sends it) kept as its
    /// bytes rather than serialized again. Throws the parser's error for
    /// malformed JSON; nil for JSON that is not an object.
    public init?(received text: [UInt8], maxBytes: Int = JSONParser.defaultMaxBytes) throws(JSONError) {
        let n = try JSONParser.parseNoting(text, maxBytes: maxBytes)
        guard let o = n.value.objectValue else { return nil }
        guard n.canonical else {
            self.init(json: o)
            return
        }
        let proof = n.members.firstIndex { $0.key == "proof" }.map { Self.withComma(n.members[$0].range, index: $0, of: n.members.count) }
        self.init(json: o, bytes: text, proofMember: proof)
    }

    /// A transaction as a block carries it: `bytes` are what every node
    /// hashes, so they are taken as they are.
    public init(json: JSONObject, blockBytes: [UInt8]) {
        self.json = json
        bytes = blockBytes
        hash = Digest.sha256(blockBytes)
        proofMember = nil
    }

    public var group: String? { json["group"]?.stringValue }
    public var sender: String? { json["sender"]?.stringValue }
    public var nonce: Int? { json["nonce"]?.intValue }
    public var op: String? { json["op"]?.stringValue }
    public var args: JSONObject { json["args"]?.objectValue ?? [:] }

    /// SHA-256 of the canonical transaction without its `proof` member, if
    /// known without canonicalizing again.
    public var unsignedHash: [UInt8]? {
        guard let r = proofMember else { return nil }
        var u = [UInt8]()
        u.reserveCapacity(bytes.count - r.count)
        u.append(contentsOf: bytes[..<r.lowerBound])
        u.append(contentsOf: bytes[r.upperBound...])
        return Digest.sha256(u)
    }

    /// The members of `o` as canonical `"key":value` bytes, in JCS order.
    static func canonicalMembers(_ o: JSONObject) throws -> [(key: String, bytes: [UInt8])] {
        try o.keys.sorted(by: JCS.utf16Less).map { k in try member(k, o[k]!) }
    }

    /// One member as canonical `"key":value` bytes.
    static func member(_ key: String, _ value: JSON) throws -> (key: String, bytes: [UInt8]) {
        (key, try JCS.canonicalize(.string(key)) + [UInt8(ascii: ":")] + JCS.canonicalize(value))
    }

    /// `{` members joined by `,` `}` — the canonical object — and the range
    /// of the `proof` member with one of its commas.
    static func assemble(_ members: [(key: String, bytes: [UInt8])]) -> ([UInt8], Range<Int>?) {
        var out: [UInt8] = [UInt8(ascii: "{")]
        out.reserveCapacity(members.reduce(2) { $0 + $1.bytes.count + 1 })
        var proof: Range<Int>? = nil
        for (i, m) in members.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            let start = out.count
            out.append(contentsOf: m.bytes)
            if m.key == "proof" { proof = withComma(start..<out.count, index: i, of: members.count) }
        }
        out.append(UInt8(ascii: "}"))
        return (out, proof)
    }

    /// The bytes of member `index` (of `count`) of a canonical object with
    /// one of its commas, so that removing them leaves the canonical object
    /// without it: the comma before, or for the first member the one after.
    static func withComma(_ member: Range<Int>, index: Int, of count: Int) -> Range<Int> {
        index > 0 ? member.lowerBound - 1..<member.upperBound : member.lowerBound..<member.upperBound + (count > 1 ? 1 : 0)
    }

    /// Builds and signs a transaction.
    public static func make(
        group: String, sender: String, nonce: Int, op: String, args: JSONObject, key: Ed25519SecretKey, method: String, created: String? = nil
    ) throws -> ChainTransaction {
        var body: JSONObject = [
            "group": .string(group), "sender": .string(sender), "nonce": .number(Double(nonce)), "op": .string(op), "args": .object(args),
        ]
        // Canonicalized once: the unsigned members are what the proof signs,
        // and with the proof member added they are the transaction's bytes.
        var members = try canonicalMembers(body)
        let proof = try EddsaJcs2022.createProof(
            documentHash: Digest.sha256(assemble(members).0),
            options: .init(verificationMethod: method, proofPurpose: "capabilityInvocation", created: created ?? "2026-01-01T00:00:00Z"), key: key)
        body["proof"] = .object(proof)
        members.append(try member("proof", .object(proof)))
        members.sort { JCS.utf16Less($0.key, $1.key) }
        let (bytes, range) = assemble(members)
        return ChainTransaction(json: body, bytes: bytes, proofMember: range)
    }

    init(json: JSONObject, bytes: [UInt8], proofMember: Range<Int>?) {
        self.json = json
        self.bytes = bytes
        self.proofMember = proofMember
        hash = Digest.sha256(bytes)
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
public struct ContractError: Error, Sendable, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ m: String) { message = m }
    public var description: String { message }
}
