import EFSCCore
import EFSCCredentials
import EFSCIdentity

/// The native system contracts of EFSC's two chain groups. Execution is
/// deterministic: it reads only the contract state, the block height and the
/// transaction (no clock, no I/O), so every node reaches the same state.
///
/// State keys: `nonce/<did>`, `did/<did>` (operation log), `template/<id>/<version>`,
/// `offer/<id>`, `channel/<id>`, `evidence/<channel>` (ledgers written before
/// the evidence index also hold `evidence-hash/<tscHash>`).
public struct Contracts {
    public let group: String
    /// Resolves DIDs for signature checks. On the identity group this is the
    /// group's own state; the transaction group reads the identity group.
    public let resolveDID: (String) -> DIDHistory?
    /// DIDs of the network's TCCs (from genesis): only they submit evidence.
    public let tccs: Set<String>
    /// Templates registered on the identity group (built-ins are always known).
    public let resolveTemplate: (String, Int) -> Template?

    public init(
        group: String, tccs: Set<String> = [], resolveDID: @escaping (String) -> DIDHistory?,
        resolveTemplate: @escaping (String, Int) -> Template? = { _, _ in nil }
    ) {
        self.group = group
        self.tccs = tccs
        self.resolveDID = resolveDID
        self.resolveTemplate = resolveTemplate
    }

    /// Executes one transaction against `state` at `height`; `index` is its
    /// position in the block (evidence records point at it). A rejected
    /// transaction leaves no writes and gets a receipt saying why.
    public func execute(_ tx: ChainTransaction, state: ContractState, height: UInt64, index: Int = 0, admitted: SignerKey? = nil) -> Receipt {
        let mark = state.mark()
        do {
            let result = try run(tx, state, height, index, admitted: admitted)
            return Receipt(txHash: Hex.encode(tx.hash), ok: true, error: nil, result: result)
        } catch {
            state.reset(mark)
            return Receipt(txHash: Hex.encode(tx.hash), ok: false, error: "\(error)", result: nil)
        }
    }

    /// About how many state writes `txs` will make (an evidence batch: one
    /// per evidence, plus the sender's nonce), for `ContractState.reserve`.
    /// Read from the arguments' shape only; execution checks them.
    public static func plannedWrites(_ txs: [ChainTransaction]) -> Int {
        txs.reduce(0) { n, tx in
            guard tx.op == "evidence.submit" else { return n + 2 }
            return n + 1 + EvidenceBatch.declaredCount(args: tx.args)
        }
    }

    /// What a node checks before a transaction may enter its pool: the
    /// envelope (group, sender, nonce, op), a canonical form within
    /// `WireLimits.transactionBytes`, and the sender's signature against the
    /// key its DID has now. Unsigned and forged transactions never reach the
    /// pool; a sender whose DID is not (yet) known is told apart, since its
    /// registration may still be on its way to this node.
    public enum Admission: Sendable, Equatable {
        /// Signed by this key of the sender's current DID document.
        case verified(SignerKey)
        case unknownSender(String)
        case rejected(RefusalCode, ContractError)
    }

    /// Why admission refused a transaction, for counters and replies.
    public enum RefusalCode: String, Sendable, Equatable {
        case tooLarge = "too-large"
        case badEnvelope = "bad-envelope"
        case badSignature = "bad-signature"
    }

    /// The key a transaction's proof was checked against at admission; if the
    /// sender's document still names it at execution, the proof is not checked again.
    public struct SignerKey: Sendable, Equatable {
        public let method: String
        public let key: [UInt8]
    }

    public func admit(_ tx: ChainTransaction, state: ContractState) -> Admission {
        guard !tx.bytes.isEmpty else { return .rejected(.badEnvelope, ContractError("transaction has no canonical form")) }
        guard tx.bytes.count <= WireLimits.transactionBytes else {
            return .rejected(.tooLarge, ContractError("transaction of \(tx.bytes.count) canonical bytes exceeds the limit of \(WireLimits.transactionBytes)"))
        }
        let sender: String
        let doc: DIDDocument
        do {
            sender = try envelope(tx).sender
            guard let d = try signerDocument(tx, sender, state) else { return .unknownSender(sender) }
            doc = d
        } catch {
            return .rejected(.badEnvelope, error as? ContractError ?? ContractError("\(error)"))
        }
        do {
            return .verified(try checkProof(tx, doc, admitted: nil))
        } catch {
            return .rejected(.badSignature, error as? ContractError ?? ContractError("\(error)"))
        }
    }

    /// Whether `did` is known now (registered in `state` or, on the
    /// transaction group, by the identity group): a waiting transaction's
    /// sender becoming known sends it back to admission.
    public func resolveDIDForAdmission(_ did: String, state: ContractState) -> Bool {
        history(did, state) != nil || resolveDID(did) != nil
    }

    func envelope(_ tx: ChainTransaction) throws -> (sender: String, nonce: Int, op: String) {
        guard tx.group == group else { throw ContractError("transaction is for group '\(tx.group.map { String($0.prefix(40)) } ?? "?")', not '\(group)'") }
        guard let sender = tx.sender, DIDSyntax.isValid(sender) else { throw ContractError("sender is missing or not a DID") }
        guard let nonce = tx.nonce, nonce >= 0 else { throw ContractError("nonce is missing or negative") }
        guard let op = tx.op else { throw ContractError("op is missing") }
        return (sender, nonce, op)
    }

    /// The signer's document: a registered DID's current one (nil when the
    /// DID is unknown), or for did.register the one being created.
    func signerDocument(_ tx: ChainTransaction, _ sender: String, _ s: ContractState) throws -> DIDDocument? {
        if tx.op == "did.register" {
            guard let o = tx.args["operation"]?.objectValue else { throw ContractError("did.register needs args.operation") }
            let h: DIDHistory
            do { h = try DIDHistory(create: o) } catch { throw ContractError("\(error)") }
            guard h.did == sender else { throw ContractError("sender \(DIDSyntax.shown(sender)) is not the DID being registered") }
            return h.current.document
        }
        guard let h = history(sender, s) ?? resolveDID(sender) else { return nil }
        guard !h.deactivated else { throw ContractError("DID \(sender) is deactivated") }
        return h.current.document
    }

    func run(_ tx: ChainTransaction, _ s: ContractState, _ height: UInt64, _ index: Int, admitted: SignerKey? = nil) throws -> JSON? {
        let (sender, nonce, op) = try envelope(tx)
        // The signer: a registered (or, for did.register, the new) DID.
        guard let signerDoc = try signerDocument(tx, sender, s) else { throw ContractError("unknown DID \(sender)") }
        _ = try checkProof(tx, signerDoc, admitted: admitted)
        try useNonce(nonce, sender, s)
        switch (group, op) {
        case ("identity", "did.register"): return try didRegister(tx, s, height)
        case ("identity", "did.update"), ("identity", "did.deactivate"): return try didUpdate(tx, s, sender, height)
        case ("identity", "template.register"): return try templateRegister(tx, s, sender, height)
        case ("transaction", "offer.publish"): return try offerPublish(tx, s, sender, height)
        case ("transaction", "evidence.submit"): return try evidenceSubmit(tx, s, sender, height, index)
        case ("transaction", "tic.record"): return try ticRecord(tx, s, sender, height)
        case ("transaction", "channel.close"): return try channelClose(tx, s, sender, height)
        case ("transaction", "channel.challenge"): return try channelChallenge(tx, s, sender, height)
        case ("transaction", "channel.finalize"): return try channelFinalize(tx, s, sender, height)
        default: throw ContractError("unknown operation '\(op)' for group \(group)")
        }
    }

    /// Nonces of the last `nonceWindow` below the highest one used may arrive
    /// late (clients submit concurrently); each is accepted once. Anything
    /// older, or already used, is a replay. State: highest nonce + a bitmap.
    public static let nonceWindow = 1024

    func useNonce(_ nonce: Int, _ sender: String, _ s: ContractState) throws {
        let rec = s.get("nonce/\(sender)")
        let high = rec?["high"]?.intValue ?? -1
        var bits = Hex.decode(rec?["seen"]?.stringValue ?? "") ?? []
        if bits.count != Self.nonceWindow / 8 { bits = [UInt8](repeating: 0, count: Self.nonceWindow / 8) }
        // Bit k = nonce (high - k) was used.
        func isSet(_ k: Int) -> Bool { bits[k / 8] & (1 << UInt8(k % 8)) != 0 }
        func set(_ k: Int) { bits[k / 8] |= 1 << UInt8(k % 8) }
        if nonce > high {
            let shift = high < 0 ? Self.nonceWindow : nonce - high
            if shift >= Self.nonceWindow {
                bits = [UInt8](repeating: 0, count: Self.nonceWindow / 8)
            } else {
                var n = [UInt8](repeating: 0, count: Self.nonceWindow / 8)
                for k in 0..<(Self.nonceWindow - shift) where isSet(k) { n[(k + shift) / 8] |= 1 << UInt8((k + shift) % 8) }
                bits = n
            }
            set(0)
            s.set("nonce/\(sender)", ["high": .number(Double(nonce)), "seen": .string(Hex.encode(bits))])
        } else {
            let k = high - nonce
            guard k < Self.nonceWindow else { throw ContractError("stale nonce \(nonce) (more than \(Self.nonceWindow) below \(high))") }
            guard !isSet(k) else { throw ContractError("replayed nonce \(nonce)") }
            set(k)
            s.set("nonce/\(sender)", ["high": .number(Double(high)), "seen": .string(Hex.encode(bits))])
        }
    }

    /// Checks the transaction's one proof against `doc`; returns the key it
    /// verified with. When `admitted` is that same key (checked when the
    /// transaction entered this node's pool) the signature is not verified twice.
    @discardableResult
    func checkProof(_ tx: ChainTransaction, _ doc: DIDDocument, admitted: SignerKey?) throws -> SignerKey {
        let proofs = EddsaJcs2022.proofs(of: tx.json)
        guard proofs.count == 1, let p = proofs.first else { throw ContractError("a transaction carries exactly one proof") }
        guard p["proofPurpose"]?.stringValue == "capabilityInvocation" else { throw ContractError("proof purpose must be capabilityInvocation") }
        guard let vm = p["verificationMethod"]?.stringValue else { throw ContractError("proof has no verificationMethod") }
        do {
            let key = try doc.signingKey(vm, for: .capabilityInvocation)
            let signer = SignerKey(method: vm, key: key.raw)
            if let a = admitted, a == signer { return signer }
            // The transaction's canonical bytes without the proof are what a
            // lone proof without @context or previousProof signs.
            if p["@context"] == nil, p["previousProof"] == nil, let h = tx.unsignedHash {
                try EddsaJcs2022.verifyProof(inputHash: h, proof: p, key: key)
            } else {
                try EddsaJcs2022.verifyProof(document: tx.json, proof: p, key: key)
            }
            return signer
        } catch {
            throw ContractError("bad signature: \(error)")
        }
    }

    // MARK: identity group

    /// A DID's history as of block `height` (operations committed at or
    /// below it); nil if it was not registered by then.
    public static func history(_ did: String, atHeight height: UInt64, state s: ContractState) -> DIDHistory? {
        guard let ops = s.get("did/\(did)")?.arrayValue?.compactMap(\.objectValue), let first = ops.first else { return nil }
        let heights = s.get("did-heights/\(did)")?.arrayValue?.compactMap(\.intValue) ?? []
        guard heights.count == ops.count, UInt64(heights[0]) <= height, var h = try? DIDHistory(create: first) else { return nil }
        for (o, at) in zip(ops.dropFirst(), heights.dropFirst()) where UInt64(at) <= height { try? h.apply(o) }
        return h
    }

    /// A template registered on the identity group as of block `height`
    /// (built-ins and the templates it extends resolved the same way); what
    /// the transaction group reads at a block's anchor.
    public static func template(_ id: String, version: Int, atHeight height: UInt64, state s: ContractState) -> Template? {
        guard let j = s.get("template/\(id)/\(version)"), let h = s.get("template-height/\(id)/\(version)")?.intValue, h >= 0, UInt64(h) <= height
        else { return nil }
        return try? Template(json: j) { bid, bv in BaseTemplates.lookup(id: bid, version: bv) ?? template(bid, version: bv, atHeight: height, state: s) }
    }

    /// A DID's current history in `s`.
    func history(_ did: String, _ s: ContractState) -> DIDHistory? { Self.history(did, atHeight: .max, state: s) }

    func didRegister(_ tx: ChainTransaction, _ s: ContractState, _ height: UInt64) throws -> JSON? {
        let op = tx.args["operation"]!.objectValue!
        let did = tx.sender!
        guard s.get("did/\(did)") == nil else { throw ContractError("DID \(did) is already registered") }
        s.set("did/\(did)", .array([.object(op)]))
        s.set("did-heights/\(did)", [.number(Double(height))])
        return ["did": .string(did), "version": 1]
    }

    func didUpdate(_ tx: ChainTransaction, _ s: ContractState, _ sender: String, _ height: UInt64) throws -> JSON? {
        guard let op = tx.args["operation"]?.objectValue else { throw ContractError("\(tx.op!) needs args.operation") }
        guard op["did"]?.stringValue == sender else { throw ContractError("a DID can only be changed by itself") }
        guard var h = history(sender, s), let ops = s.get("did/\(sender)")?.arrayValue else { throw ContractError("unknown DID \(sender)") }
        let expected = tx.op == "did.update" ? "update" : "deactivate"
        guard op["operation"]?.stringValue == expected else { throw ContractError("\(tx.op!) needs a '\(expected)' operation") }
        do { try h.apply(op) } catch { throw ContractError("\(error)") }
        s.set("did/\(sender)", .array(ops + [.object(op)]))
        s.set("did-heights/\(sender)", .array((s.get("did-heights/\(sender)")?.arrayValue ?? []) + [.number(Double(height))]))
        return ["did": .string(sender), "version": .number(Double(h.current.version)), "deactivated": .bool(h.deactivated)]
    }

    func templateRegister(_ tx: ChainTransaction, _ s: ContractState, _ sender: String, _ height: UInt64) throws -> JSON? {
        guard let tj = tx.args["template"] else { throw ContractError("template.register needs args.template") }
        let t: Template
        do {
            t = try Template(json: tj) { id, v in
                BaseTemplates.lookup(id: id, version: v) ?? s.get("template/\(id)/\(v)").flatMap { try? Template(json: $0) }
            }
        } catch {
            throw ContractError("\(error)")
        }
        guard t.owner == sender else { throw ContractError("only the owner \(t.owner) can register this template") }
        guard BaseTemplates.lookup(id: t.id, version: 1) == nil else { throw ContractError("\(t.id) is a built-in template id") }
        guard s.get("template/\(t.id)/\(t.version)") == nil else { throw ContractError("template \(t.id) version \(t.version) already exists") }
        if t.version > 1 {
            guard let prev = s.get("template/\(t.id)/\(t.version - 1)") else { throw ContractError("template \(t.id) has no version \(t.version - 1)") }
            guard prev["owner"]?.stringValue == sender else { throw ContractError("template \(t.id) belongs to another owner") }
        }
        s.set("template/\(t.id)/\(t.version)", t.json)
        s.set("template-height/\(t.id)/\(t.version)", .number(Double(height)))
        return ["id": .string(t.id), "version": .number(Double(t.version))]
    }

    // MARK: transaction group

    func offerPublish(_ tx: ChainTransaction, _ s: ContractState, _ sender: String, _ height: UInt64) throws -> JSON? {
        let a = tx.args
        guard let id = a["offerId"]?.stringValue, !id.isEmpty, id.utf8.count <= 128 else { throw ContractError("offer.publish needs offerId (1-128 characters)") }
        guard let spec = a["computingPower"]?.objectValue, spec["resourceType"]?.stringValue != nil else {
            throw ContractError("offer.publish needs computingPower.resourceType")
        }
        guard let price = a["unitPrice"]?.doubleValue, price >= 0 else { throw ContractError("unitPrice must be a number ≥ 0") }
        guard let capacity = a["capacity"]?.intValue, capacity > 0 else { throw ContractError("capacity must be a positive integer") }
        if let existing = s.get("offer/\(id)"), existing["provider"]?.stringValue != sender {
            throw ContractError("offer \(id) belongs to another provider")
        }
        let offer: JSON = [
            "offerId": .string(id), "provider": .string(sender), "computingPower": .object(spec), "unitPrice": .number(price),
            "capacity": .number(Double(capacity)), "remaining": .number(Double(capacity)), "templateId": a["templateId"] ?? .null,
            "templateVersion": a["templateVersion"] ?? .null, "height": .number(Double(height)),
        ]
        s.set("offer/\(id)", offer)
        return offer
    }

    /// Matchmaking (read-only): offers that satisfy a demand, cheapest total
    /// cost first, ties by offer id. Demand: resourceType, quantity,
    /// maxUnitPrice, durationHours, optional minMemoryGiB.
    public static func match(_ demand: JSONObject, state: ContractState) throws -> [JSON] {
        guard let type = demand["resourceType"]?.stringValue else { throw ContractError("demand needs resourceType") }
        guard let q = demand["quantity"]?.intValue, q > 0 else { throw ContractError("demand needs a positive integer quantity") }
        let maxPrice = demand["maxUnitPrice"]?.doubleValue ?? .infinity
        let hours = demand["durationHours"]?.doubleValue ?? 1
        guard hours > 0 else { throw ContractError("durationHours must be > 0") }
        let minMem = demand["minMemoryGiB"]?.doubleValue ?? 0
        var out: [(Double, String, JSON)] = []
        for (_, o) in state.scan(prefix: "offer/") {
            guard o["computingPower"]?["resourceType"]?.stringValue == type, let remaining = o["remaining"]?.intValue, remaining >= q,
                let price = o["unitPrice"]?.doubleValue, price <= maxPrice, (o["computingPower"]?["memoryGiB"]?.doubleValue ?? 0) >= minMem
            else { continue }
            let total = price * Double(q) * hours
            var m = o.objectValue!
            m["totalCost"] = .number(total)
            out.append((total, o["offerId"]?.stringValue ?? "", .object(m)))
        }
        return out.sorted { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }.map(\.2)
    }

    /// Evidence of the latest TSC of a channel: `{channelId, sequence, tscHash}`,
    /// or a batch `{items: [...], root}` under the TCC's transaction signature.
    /// Later sequence numbers supersede earlier ones; a stale one is rejected.
    ///
    /// The state keeps only where each channel's latest evidence is
    /// (`EvidenceLocation`): `evidence/<channel>` = height, tx, index and
    /// sequence (block height, transaction position, item). Every evidence is
    /// also indexed by its credential hash (`ContractState.indexEvidence`),
    /// which the ledger keeps beside the state.
    /// Everything else is in the block already; `evidenceRecord` puts it back
    /// together for queries. (Whole records here cost ≈ 600 bytes a evidence.)
    static let evidenceKeyPrefix = Array("evidence/".utf8)

    func evidenceSubmit(_ tx: ChainTransaction, _ s: ContractState, _ sender: String, _ height: UInt64, _ txIndex: Int) throws -> JSON? {
        guard tccs.contains(sender) else { throw ContractError("\(sender) is not a TCC of this network") }
        let batch = try EvidenceBatch(args: tx.args)
        for i in 0..<batch.count {
            guard let ch = batch.channelId(i), !ch.isEmpty else { throw ContractError("item \(i): channelId is missing") }
            guard let seq = batch.sequence(i), seq >= 1 else { throw ContractError("item \(i): sequence must be ≥ 1") }
            guard let hash = batch.tscHash(i) else { throw ContractError("item \(i): tscHash must be 64 hex digits") }
            // The key "evidence/<channelId>" as bytes, built once for the read and the write.
            var channelKey = Self.evidenceKeyPrefix
            channelKey.append(contentsOf: ch.utf8)
            if let ps = s.getBytes(keyBytes: channelKey).flatMap(EvidenceLocation.init(decoding:))?.sequence, seq <= ps {
                throw ContractError("item \(i): stale sequence \(seq) for channel \(ch) (on chain: \(ps))")
            }
            var at = EvidenceLocation(height: height, tx: txIndex, index: i)
            s.indexEvidence(tscHash: hash, at.encoded)
            at.sequence = seq
            s.setBytes(keyBytes: channelKey, at.encoded)
        }
        return ["evidences": .number(Double(batch.count))]
    }

    /// The full evidence record (topics.md `query evidence`) from a state
    /// record of `evidenceSubmit` and the transaction it points at:
    /// channelId, sequence, tscHash, tcc, height, txHash, index.
    public static func evidenceRecord(_ at: EvidenceLocation, transaction bytes: [UInt8]) throws -> JSON {
        let height = at.height, index = at.index
        guard let tx = try? JSONParser.parse(bytes), let args = tx["args"]?.objectValue, let batch = try? EvidenceBatch(args: args)
        else { throw ContractError("evidence record does not point at an evidence transaction") }
        guard index >= 0, index < batch.count else { throw ContractError("evidence record points past its transaction's items") }
        return [
            "channelId": batch.channelId(index).map { .string($0) } ?? .null, "sequence": batch.sequence(index).map { .number(Double($0)) } ?? .null,
            "tscHash": batch.tscHash(index).map { .string(Hex.encode($0)) } ?? .null, "tcc": tx["sender"] ?? .null, "height": .number(Double(height)),
            "txHash": .string(Digest.sha256Hex(bytes)), "index": .number(Double(index)),
        ]
    }

    // MARK: TIC registry

    /// The signing key of `method` for `relationship`, from registered DIDs.
    /// With `anyVersion`, a key of any earlier version of the DID document
    /// also counts: TSCs signed before a key rotation stay valid. (A TSC also
    /// carries the TCC's proof, made after it checked the then-current keys.)
    func key(_ method: String, _ relationship: VerificationRelationship, _ s: ContractState, anyVersion: Bool = false) throws -> (String, Ed25519PublicKey) {
        let did = DIDSyntax.did(ofURL: method)
        guard let h = history(did, s) ?? resolveDID(did) else { throw ContractError("unknown DID \(did)") }
        guard !h.deactivated else { throw ContractError("DID \(did) is deactivated") }
        do {
            return (did, try h.current.document.signingKey(method, for: relationship))
        } catch {
            if anyVersion {
                for v in h.versions.reversed() {
                    if let k = try? v.document.signingKey(method, for: relationship) { return (did, k) }
                }
            }
            throw ContractError("\(error)")
        }
    }

    /// Records an issued TIC: checks both parties' DIDs and proofs (Eq. 1 and
    /// 2 of the paper, synchronously against chain state), the TIT, and the
    /// offer's capacity; opens the channel. Args: `tic` (the VC), `offerId`.
    func ticRecord(_ tx: ChainTransaction, _ s: ContractState, _ sender: String, _ height: UInt64) throws -> JSON? {
        guard let tj = tx.args["tic"]?.objectValue else { throw ContractError("tic.record needs args.tic") }
        let vc = VerifiableCredential(json: tj)
        do {
            try vc.checkStructure()
        } catch {
            throw ContractError("\(error)")
        }
        guard vc.types.contains(TIC.type) else { throw ContractError("args.tic is not a \(TIC.type)") }
        let claim = vc.subject ?? .null
        guard let provider = claim["providerDid"]?.stringValue, let consumer = claim["consumerDid"]?.stringValue, provider != consumer else {
            throw ContractError("the TIC claim needs distinct providerDid and consumerDid")
        }
        guard vc.issuer == provider else { throw ContractError("the TIC must be issued by its provider") }
        guard sender == provider || sender == consumer else { throw ContractError("only a party of the TIC can record it") }
        // Template (TIT) and claim.
        guard let ref = vc.template else { throw ContractError("the TIC names no template") }
        guard let t = BaseTemplates.lookup(id: ref.id, version: ref.version) ?? resolveTemplate(ref.id, ref.version) else {
            throw ContractError("unknown template \(ref.id) version \(ref.version)")
        }
        guard t.kind == .tit else { throw ContractError("template \(ref.id) is not a TIT") }
        let violations = t.validate(claim)
        guard violations.isEmpty else { throw ContractError("claim: " + violations.map(\.description).joined(separator: "; ")) }
        // Proofs: the consumer's application, and the provider's issuance chained to it.
        let proofs = vc.proofs
        guard let app = proofs.first(where: { $0["id"]?.stringValue == TIC.applicationProofID }),
            let iss = proofs.first(where: { EddsaJcs2022.previousProofIDs($0).contains(TIC.applicationProofID) })
        else { throw ContractError("the TIC needs the consumer's application proof and the provider's chained issuance proof") }
        for (p, who, did) in [(iss, "provider", provider), (app, "consumer", consumer)] {
            guard let vm = p["verificationMethod"]?.stringValue else { throw ContractError("\(who) proof has no verificationMethod") }
            let (signer, k) = try key(vm, .assertionMethod, s)
            guard signer == did else { throw ContractError("\(who) proof is by \(signer), not \(did)") }
            do { try EddsaJcs2022.verifyProof(document: tj, proof: p, key: k) } catch { throw ContractError("\(who) proof: \(error)") }
        }
        let ticHash = try vc.hash()
        guard s.get("tic/\(ticHash)") == nil else { throw ContractError("this TIC is already recorded") }
        // Capacity of the offer.
        guard let offerID = tx.args["offerId"]?.stringValue, var offer = s.get("offer/\(offerID)")?.objectValue else {
            throw ContractError("unknown offer \(tx.args["offerId"]?.stringValue ?? "(none)")")
        }
        guard offer["provider"]?.stringValue == provider else { throw ContractError("offer \(offerID) is not the TIC provider's") }
        let units = claim["computingPower"]?["units"]?.intValue ?? 1
        let remaining = offer["remaining"]?.intValue ?? 0
        guard units <= remaining else { throw ContractError("offer \(offerID) has \(remaining) units left, the TIC needs \(units)") }
        offer["remaining"] = .number(Double(remaining - units))
        s.set("offer/\(offerID)", .object(offer))
        let channelID = "ch-" + String(ticHash.prefix(32))
        let channel: JSON = [
            "channelId": .string(channelID), "providerDid": .string(provider), "consumerDid": .string(consumer), "ticHash": .string(ticHash),
            "offerId": .string(offerID), "units": .number(Double(units)), "state": "open", "openedAt": .number(Double(height)),
            "settlementStrategy": claim["settlementStrategy"] ?? .null,
        ]
        s.set("tic/\(ticHash)", ["channelId": .string(channelID), "height": .number(Double(height))])
        s.set("channel/\(channelID)", channel)
        return channel
    }

    // MARK: channel closing

    /// Blocks a unilateral close stays open for a TSC with a higher sequence.
    public static let challengeWindow: UInt64 = 10

    /// Checks a TSC for `channel` against chain state (all three proofs, the
    /// TCC among the network's TCCs) and returns its sequence number.
    func verifyTSC(_ tj: JSONObject, channel: JSON, _ s: ContractState) throws -> Int {
        let vc = VerifiableCredential(json: tj)
        do { try vc.checkStructure() } catch { throw ContractError("\(error)") }
        guard vc.types.contains(TSC.type) else { throw ContractError("not a \(TSC.type)") }
        let claim = vc.subject ?? .null
        guard claim["channelId"] == channel["channelId"], claim["providerDid"] == channel["providerDid"], claim["consumerDid"] == channel["consumerDid"]
        else { throw ContractError("the TSC is for another channel or other parties") }
        guard let seq = claim["sequence"]?.intValue, seq >= 1 else { throw ContractError("the TSC has no sequence number") }
        guard let issuer = vc.issuer, tccs.contains(issuer) else { throw ContractError("the TSC was not issued by a TCC of this network") }
        let proofs = vc.proofs
        func proof(_ id: String) throws -> JSONObject {
            guard let p = proofs.first(where: { $0["id"]?.stringValue == id }) else { throw ContractError("the TSC lacks proof \(id)") }
            return p
        }
        for (p, did) in [
            (try proof(TSC.tccProofID), issuer), (try proof(TSC.providerProofID), channel["providerDid"]!.stringValue!),
            (try proof(TSC.consumerProofID), channel["consumerDid"]!.stringValue!),
        ] {
            guard let vm = p["verificationMethod"]?.stringValue else { throw ContractError("a TSC proof has no verificationMethod") }
            let (signer, k) = try key(vm, .assertionMethod, s, anyVersion: true)
            guard signer == did else { throw ContractError("a TSC proof is by \(signer), not \(did)") }
            do { try EddsaJcs2022.verifyProof(document: tj, proof: p, key: k) } catch { throw ContractError("TSC proof by \(did): \(error)") }
        }
        guard Set(EddsaJcs2022.previousProofIDs(try proof(TSC.tccProofID))) == [TSC.providerProofID, TSC.consumerProofID] else {
            throw ContractError("the TCC proof must chain to both parties' proofs")
        }
        return seq
    }

    func openChannel(_ tx: ChainTransaction, _ s: ContractState, _ sender: String, tccMayAct: Bool = false) throws -> (String, JSONObject) {
        guard let id = tx.args["channelId"]?.stringValue, let ch = s.get("channel/\(id)")?.objectValue else {
            throw ContractError("unknown channel \(tx.args["channelId"]?.stringValue ?? "(none)")")
        }
        guard ch["providerDid"]?.stringValue == sender || ch["consumerDid"]?.stringValue == sender || (tccMayAct && tccs.contains(sender)) else {
            throw ContractError("only a party of channel \(id) can do this")
        }
        return (id, ch)
    }

    /// Cooperative close (the final TSC, signed by both and the TCC) closes at
    /// once; a unilateral close with the latest TSC a party holds opens a
    /// challenge window of `challengeWindow` blocks.
    func channelClose(_ tx: ChainTransaction, _ s: ContractState, _ sender: String, _ height: UInt64) throws -> JSON? {
        let kind = tx.args["kind"]?.stringValue ?? "unilateral"
        // The channel's TCC may record a cooperative close (it holds the final TSC both signed).
        var (id, ch) = try openChannel(tx, s, sender, tccMayAct: kind == "cooperative")
        guard ch["state"]?.stringValue == "open" else { throw ContractError("channel \(id) is \(ch["state"]?.stringValue ?? "?"), not open") }
        guard let tj = tx.args["tsc"]?.objectValue else { throw ContractError("channel.close needs args.tsc (the latest TSC)") }
        let seq = try verifyTSC(tj, channel: .object(ch), s)
        if let es = s.getBytes("evidence/\(id)").flatMap(EvidenceLocation.init(decoding:))?.sequence, seq < es {
            throw ContractError("stale TSC \(seq): evidence of \(es) is already on chain")
        }
        if kind == "cooperative" && tj["credentialSubject"]?["final"]?.boolValue != true {
            throw ContractError("a cooperative close needs the final TSC (claim final: true, signed by both parties)")
        }
        ch["finalSequence"] = .number(Double(seq))
        ch["finalTscHash"] = .string(try VerifiableCredential(json: tj).hash())
        ch["closeKind"] = .string(kind)
        ch["closedBy"] = .string(sender)
        switch kind {
        case "cooperative":
            ch["state"] = "closed"
            ch["closedAt"] = .number(Double(height))
        case "unilateral":
            ch["state"] = "closing"
            ch["challengeUntil"] = .number(Double(height + Self.challengeWindow))
        default:
            throw ContractError("kind must be cooperative or unilateral")
        }
        s.set("channel/\(id)", .object(ch))
        return .object(ch)
    }

    /// During the challenge window, the other party presents a TSC with a higher sequence.
    func channelChallenge(_ tx: ChainTransaction, _ s: ContractState, _ sender: String, _ height: UInt64) throws -> JSON? {
        var (id, ch) = try openChannel(tx, s, sender)
        guard ch["state"]?.stringValue == "closing", let until = ch["challengeUntil"]?.intValue else { throw ContractError("channel \(id) is not closing") }
        guard height <= UInt64(until) else { throw ContractError("the challenge window of channel \(id) ended at height \(until)") }
        guard let tj = tx.args["tsc"]?.objectValue else { throw ContractError("channel.challenge needs args.tsc") }
        let seq = try verifyTSC(tj, channel: .object(ch), s)
        let current = ch["finalSequence"]?.intValue ?? 0
        guard seq > current else { throw ContractError("stale TSC \(seq): the close already holds \(current)") }
        ch["finalSequence"] = .number(Double(seq))
        ch["finalTscHash"] = .string(try VerifiableCredential(json: tj).hash())
        ch["challengedBy"] = .string(sender)
        s.set("channel/\(id)", .object(ch))
        return .object(ch)
    }

    /// After the window, the unilateral close becomes final.
    func channelFinalize(_ tx: ChainTransaction, _ s: ContractState, _ sender: String, _ height: UInt64) throws -> JSON? {
        var (id, ch) = try openChannel(tx, s, sender)
        guard ch["state"]?.stringValue == "closing", let until = ch["challengeUntil"]?.intValue else { throw ContractError("channel \(id) is not closing") }
        guard height > UInt64(until) else { throw ContractError("the challenge window of channel \(id) runs until height \(until)") }
        ch["state"] = "closed"
        ch["closedAt"] = .number(Double(height))
        s.set("channel/\(id)", .object(ch))
        return .object(ch)
    }
}
