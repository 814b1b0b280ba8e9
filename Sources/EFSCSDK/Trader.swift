import EFSCBus
import EFSCChannel
import EFSCContracts
import EFSCCore
import EFSCCredentials
import EFSCIdentity
import EFSCLedger

/// The paper's DApp for one party (provider or consumer): DID, template and
/// credential services plus the transaction flow — publish and match
/// offers, apply for and issue a TIC, record it (which opens the channel),
/// open a `ChannelSession`, verify TSCs against the chain, and close.
public final class Trader: @unchecked Sendable {
    public let chain: ChainClient
    public private(set) var me: PartyIdentity
    let nonces = NonceSource()

    public init(chain: ChainClient, identity: PartyIdentity) {
        self.chain = chain
        self.me = identity
    }

    public func transaction(_ group: String, _ op: String, _ args: JSONObject) throws -> ChainTransaction {
        try ChainTransaction.make(group: group, sender: me.did, nonce: nonces.next(), op: op, args: args, key: me.key, method: me.verificationMethod)
    }

    /// Submits and returns the receipt's `result`; throws the rejection reason.
    @discardableResult
    public func submit(_ group: String, _ op: String, _ args: JSONObject) async throws -> JSON {
        try await chain.submitCommitted(try transaction(group, op, args))["result"] ?? .null
    }

    // MARK: DID and template services

    /// Registers this identity's DID (idempotent: an already registered DID is fine).
    public func registerDID() async throws { try await chain.register(me, nonce: nonces.next()) }

    /// Rotates to `newKey` (signed by the current key) and returns the new identity.
    public func rotate(to newKey: Ed25519SecretKey) async throws -> PartyIdentity {
        let r = try await chain.query("identity", "did", ["did": .string(me.did)])
        guard let ops = r["operations"]?.arrayValue?.compactMap(\.objectValue), !ops.isEmpty else { throw ChainError("no operation log for \(me.did)") }
        let h = try DIDHistory(operations: ops)
        let (_, op) = try EFSCDID.rotateOperation(
            current: h.current.document, version: h.current.version, currentKey: me.key, currentMethod: me.verificationMethod, newKey: newKey)
        try await submit("identity", "did.update", ["operation": .object(op)])
        var n = PartyIdentity(did: me.did, key: newKey, operation: me.operation)
        n.verificationMethod = "\(me.did)#key-\(h.current.version + 1)"
        me = n
        return n
    }

    public func registerTemplate(_ t: Template) async throws { try await submit("identity", "template.register", ["template": t.json]) }

    // MARK: offers

    public func publishOffer(_ offer: JSONObject) async throws -> JSON { try await submit("transaction", "offer.publish", offer) }

    public func offers() async throws -> [JSON] { try await chain.query("transaction", "offers").arrayValue ?? [] }

    public func match(_ demand: JSONObject) async throws -> [JSON] { try await chain.query("transaction", "match", demand).arrayValue ?? [] }

    // MARK: TIC

    /// Consumer: applies for a TIC against `template` with `claim`.
    public func apply(claim: JSONObject, template: Template) throws -> VerifiableCredential {
        try TIC.apply(claim: .object(claim), template: template, consumerKey: me.key, consumerMethod: me.verificationMethod)
    }

    /// Provider: checks an application against the chain and issues the TIC.
    public func issue(_ application: VerifiableCredential) async throws -> VerifiableCredential {
        try await TIC.issue(
            application: application, providerKey: me.key, providerMethod: me.verificationMethod, resolver: ChainDIDResolver(chain: chain),
            templates: ChainTemplateStore(chain: chain))
    }

    /// Either party: records the issued TIC against `offerId`; returns the opened channel record.
    public func record(tic: VerifiableCredential, offerId: String) async throws -> JSON {
        try await submit("transaction", "tic.record", ["tic": .object(tic.json), "offerId": .string(offerId)])
    }

    /// A session on a recorded channel (not yet authenticated: call `open`).
    public func session(channel: String, tic: VerifiableCredential, store: TSCStore? = nil) throws -> ChannelSession {
        try ChannelSession(chain: chain, me: me, terms: try SettlementTerms(channelId: channel, tic: tic.json), store: store)
    }

    // MARK: closing

    /// Unilateral close with the latest TSC this party holds; opens the challenge window.
    public func closeUnilaterally(channel: String, tsc: VerifiableCredential) async throws -> JSON {
        try await submit("transaction", "channel.close", ["channelId": .string(channel), "kind": "unilateral", "tsc": .object(tsc.json)])
    }

    /// During the window: presents a TSC with a higher sequence than the close holds.
    public func challenge(channel: String, tsc: VerifiableCredential) async throws -> JSON {
        try await submit("transaction", "channel.challenge", ["channelId": .string(channel), "tsc": .object(tsc.json)])
    }

    /// Waits out the challenge window and finalizes. The window is counted in
    /// blocks; on an idle chain each refused attempt is itself a block, so
    /// retrying also moves the window along. Gives up after `timeout` seconds.
    public func finalize(channel: String, timeout: Double = 60) async throws -> JSON {
        let deadline = DateTime.currentTime() + timeout
        var last = ""
        while DateTime.currentTime() < deadline {
            let ch = try await chain.channel(channel)
            if ch["state"]?.stringValue == "closed" { return ch }
            guard ch["state"]?.stringValue == "closing" else { throw ChainError("channel \(channel) is \(ch["state"]?.stringValue ?? "?"), not closing") }
            let r = try await chain.submit(try transaction("transaction", "channel.finalize", ["channelId": .string(channel)]))
            if r["status"]?.stringValue == "committed" { return r["result"] ?? .null }
            last = r["error"]?.stringValue ?? ""
            guard last.contains("runs until height") else { throw ChainError("finalize rejected: \(last)") }
            try await Task.sleep(nanoseconds: 200_000_000)
        }
        throw ChainError("channel \(channel) not final within \(timeout) s (\(last))")
    }

    // MARK: verification against the chain

    /// Where a TSC stands on chain.
    public struct OnChainStatus: Sendable {
        /// "anchored" (this TSC's evidence is on chain, with a verified
        /// inclusion proof), "superseded" (evidence of a later sequence is,
        /// or the channel closed at a later one), "final" (the channel's close
        /// record holds this TSC), or "pending" (nothing on chain covers it yet).
        public var state: String
        public var evidence: JSON?
        public var detail: String
    }

    /// Looks up the evidence for a TSC and checks the Merkle inclusion proof
    /// of the transaction that carried it against its block's transactions root.
    public func onChainStatus(of tsc: VerifiableCredential) async throws -> OnChainStatus {
        let hash = try tsc.hash()
        guard let channel = tsc.subject?["channelId"]?.stringValue, let seq = tsc.subject?["sequence"]?.intValue else {
            throw ChainError("the TSC has no channelId or sequence")
        }
        if let e = try? await chain.query("transaction", "evidence", ["tscHash": .string(hash)]) {
            guard let txh = e["txHash"]?.stringValue else { throw ChainError("evidence record without txHash") }
            let t = try await chain.query("transaction", "tx", ["hash": .string(txh)])
            guard let txj = t["transaction"], let idx = t["index"]?.intValue, let root = t["transactionsRoot"]?.stringValue.flatMap(Hex.decode),
                let proof = t["proof"]?.arrayValue?.compactMap({ $0.stringValue.flatMap(Hex.decode) })
            else { throw ChainError("the tx query returned no inclusion proof") }
            let leaf = try JCS.canonicalize(txj)
            guard Digest.sha256Hex(leaf) == txh else { throw ChainError("the node returned another transaction than \(txh)") }
            guard let size = t["size"]?.intValue, Merkle.verify(leaf: Merkle.leafHash(leaf), index: idx, size: size, proof: proof, root: root) else {
                throw ChainError("the inclusion proof of transaction \(txh) does not verify")
            }
            guard let args = txj["args"]?.objectValue, let batch = try? EvidenceBatch(args: args), let want = Hex.decode(hash),
                (0..<batch.count).contains(where: { batch.tscHash($0) == want })
            else { throw ChainError("the evidence transaction does not carry this TSC's hash") }
            return OnChainStatus(state: "anchored", evidence: e, detail: "evidence at height \(e["height"]?.intValue ?? 0), inclusion proof verified")
        }
        if let e = try? await chain.query("transaction", "evidence", ["channelId": .string(channel)]), let s = e["sequence"]?.intValue, s > seq {
            return OnChainStatus(state: "superseded", evidence: e, detail: "evidence of sequence \(s) supersedes \(seq)")
        }
        // A closed (or closing) channel's record names the TSC it settled on.
        if let c = try? await chain.channel(channel), let fs = c["finalSequence"]?.intValue {
            if c["finalTscHash"]?.stringValue == hash {
                return OnChainStatus(state: "final", evidence: c, detail: "the channel's close record (\(c["state"]?.stringValue ?? "?")) holds this TSC")
            }
            if fs > seq { return OnChainStatus(state: "superseded", evidence: c, detail: "the channel closed at sequence \(fs)") }
        }
        return OnChainStatus(state: "pending", evidence: nil, detail: "no evidence of sequence ≥ \(seq) on chain yet")
    }
}
