import EFSCCore

/// Checks every consensus message a replica relies on, nested ones included,
/// before the replica changes any state for it: numbers in range, lists no
/// longer than the group size allows and free of repeated senders (both
/// checked before any signature), then each signature — each distinct one
/// verified once while remembered, so a message stuffed with copies of one
/// signed checkpoint costs one verification, not thousands. A view-change or
/// new-view refused once is remembered by its exact bytes and refused again
/// without any check. Content checks depend on the message alone, never on
/// the replica's state, so remembering a refusal is sound.
struct MessageVerifier: Sendable {
    let config: PBFTConfig
    let auth: any PBFTAuthenticator
    private var verified = FIFOSet(capacity: WireLimits.consensusVerifiedSignatures)
    private var refused = FIFOSet(capacity: WireLimits.consensusRefusedMessages)
    /// Signature verifications performed so far (tests bound them per message).
    private(set) var signatureChecks = 0

    init(config: PBFTConfig, auth: any PBFTAuthenticator) {
        self.config = config
        self.auth = auth
    }

    /// One message's signature by its sender, a member.
    mutating func signature(_ m: SignedMessage) -> Bool {
        guard m.sender >= 0, m.sender < config.n else { return false }
        let bytes = PBFTCodec.signingBytes(group: config.group, sender: m.sender, message: m.message)
        let key = Digest.sha256(bytes + m.signature)
        if verified.contains(key) { return true }
        signatureChecks += 1
        guard auth.verify(sender: m.sender, bytes, signature: m.signature) else { return false }
        verified.insert(key)
        return true
    }

    /// The first check of a message off the network: every view and
    /// sequence number in it in range, its lists within the group's bounds,
    /// not a refused message again, and its sender's signature. Nested
    /// messages are checked by `viewChange` and `newView`.
    mutating func admit(_ m: SignedMessage) -> PBFTRejection? {
        guard m.sender >= 0, m.sender < config.n else { return .badSignature }
        guard Self.numbersInRange(m.message, depth: 0) else { return .outOfRange }
        guard withinBounds(m.message) else { return .oversized }
        let heavy = m.message.kind >= 5
        if heavy, refused.contains(wireKey(m)) { return .replayed }
        guard signature(m) else {
            if heavy { refuse(m) }
            return .badSignature
        }
        return nil
    }

    /// Remembers a view-change or new-view as refused.
    mutating func refuse(_ m: SignedMessage) { refused.insert(wireKey(m)) }

    func wireKey(_ m: SignedMessage) -> [UInt8] { Digest.sha256(PBFTCodec.encode(group: config.group, m)) }

    static func numbersInRange(_ m: PBFTMessage, depth: Int) -> Bool {
        let max = WireLimits.consensusMaxNumber
        guard depth <= 3 else { return false }
        switch m {
        case .prePrepare(let v, let s, _, _), .prepare(let v, let s, _), .commit(let v, let s, _):
            return v <= max && s <= max
        case .checkpoint(let s, _):
            return s <= max
        case .viewChange(let nv, let le, _, let proof, let prepared, let executed):
            return nv <= max && le <= max && proof.allSatisfy { numbersInRange($0.message, depth: depth + 1) }
                && executed.allSatisfy { numbersInRange($0.message, depth: depth + 1) }
                && prepared.allSatisfy { p in numbersInRange(p.prePrepare.message, depth: depth + 1) && p.prepares.allSatisfy { numbersInRange($0.message, depth: depth + 1) } }
        case .newView(let v, let vcs, let pps):
            return v <= max && vcs.allSatisfy { numbersInRange($0.message, depth: depth + 1) } && pps.allSatisfy { numbersInRange($0.message, depth: depth + 1) }
        }
    }

    /// List lengths a correct replica never exceeds: a checkpoint proof and
    /// an executed block's commit certificate of 2f+1, at most `logSize`
    /// prepared certificates of 2f prepares each, a new-view of 2f+1
    /// view-changes and at most `logSize` pre-prepares.
    func withinBounds(_ m: PBFTMessage) -> Bool {
        switch m {
        case .viewChange(_, _, _, let proof, let prepared, let executed):
            return proof.count <= config.quorum && executed.count <= config.quorum && prepared.count <= Int(config.logSize)
                && prepared.allSatisfy { $0.prepares.count <= 2 * config.f }
        case .newView(_, let vcs, let pps):
            return vcs.count <= config.quorum && pps.count <= Int(config.logSize) && vcs.allSatisfy { withinBounds($0.message) }
        default:
            return true
        }
    }

    // MARK: certificates

    /// A stable checkpoint's proof: exactly 2f+1 distinct members' signed
    /// checkpoints for (`seq`, `digest`).
    mutating func checkpointProof(seq: UInt64, digest: [UInt8], _ proof: [SignedMessage]) -> Bool {
        guard proof.count == config.quorum, Set(proof.map(\.sender)).count == proof.count else { return false }
        for c in proof {
            guard case .checkpoint(let s, let d) = c.message, s == seq, d == digest else { return false }
        }
        return proof.allSatisfy { signature($0) }
    }

    /// A commit certificate: 2f+1 to n distinct members' signed commits for
    /// (view, `seq`, `digest`), one view for all. Returns the view.
    mutating func commitCertificate(seq: UInt64, digest: [UInt8], _ cert: [SignedMessage]) -> UInt64? {
        guard cert.count >= config.quorum, cert.count <= config.n, Set(cert.map(\.sender)).count == cert.count,
            case .commit(let view, _, _)? = cert.first?.message, view <= WireLimits.consensusMaxNumber
        else { return nil }
        for c in cert {
            guard case .commit(let v, let s, let d) = c.message, v == view, s == seq, d == digest else { return nil }
        }
        return cert.allSatisfy { signature($0) } ? view : nil
    }

    /// What a valid view-change claims: its stable checkpoint, the last
    /// block it executed (proved committed), and its prepared certificates.
    struct ViewChangeClaim: Sendable {
        let sender: Int
        let view: UInt64
        let stableSeq: UInt64
        let executed: UInt64
        /// The executed block's digest, and its commit certificate with the view it was committed in.
        let executedDigest: [UInt8]
        let executedProof: [SignedMessage]
        let executedView: UInt64
        let prepared: [PreparedCertificate]
        /// Everything up to here is committed (and fetched by state transfer).
        var base: UInt64 { max(stableSeq, executed) }
    }

    /// A view-change's content: its stable checkpoint (sequence 0 with the
    /// genesis digest, or a checkpoint sequence proved by 2f+1 signed
    /// checkpoints), the commit certificate of its last executed block (none,
    /// or 2f+1 distinct members' commits of one view for one sequence and
    /// digest), and each prepared certificate above both — at most one per
    /// sequence, within `logSize`, from a view before the new one, the
    /// pre-prepare signed by that view's primary with a block matching its
    /// digest, and 2f prepares of that same view, sequence and digest from
    /// distinct backups. Structure first, then signatures. The outer
    /// signature is `admit`'s.
    mutating func viewChange(_ m: SignedMessage) -> ViewChangeClaim? {
        guard case .viewChange(let nv, let le, let ed, let proof, let prepared, let executedProof) = m.message, withinBounds(m.message) else { return nil }
        if le == 0 {
            guard proof.isEmpty, ed == PBFTReplica.genesisDigest else { return nil }
        } else {
            guard le % config.checkpointInterval == 0 else { return nil }
        }
        var executed: UInt64 = 0
        var executedDigest: [UInt8] = []
        var executedView: UInt64 = 0
        if let first = executedProof.first {
            guard case .commit(let v, let s, let d) = first.message, s > 0 else { return nil }
            executed = s
            executedDigest = d
            executedView = v
        }
        let base = max(le, executed)
        var seqs = Set<UInt64>()
        for p in prepared {
            guard case .prePrepare(let pv, let ps, let pd, let payload) = p.prePrepare.message, pv < nv, ps > base, ps - base <= config.logSize,
                seqs.insert(ps).inserted, p.prePrepare.sender == config.primary(of: pv), p.prepares.count == 2 * config.f,
                Set(p.prepares.map(\.sender)).count == p.prepares.count
            else { return nil }
            for x in p.prepares {
                guard case .prepare(let v, let s, let d) = x.message, v == pv, s == ps, d == pd, x.sender != p.prePrepare.sender else { return nil }
            }
            guard Digest.sha256(payload) == pd else { return nil }
        }
        if le > 0 && !checkpointProof(seq: le, digest: ed, proof) { return nil }
        if executed > 0 && commitCertificate(seq: executed, digest: executedDigest, executedProof) == nil { return nil }
        for p in prepared {
            guard signature(p.prePrepare), p.prepares.allSatisfy({ signature($0) }) else { return nil }
        }
        return ViewChangeClaim(
            sender: m.sender, view: nv, stableSeq: le, executed: executed, executedDigest: executedDigest, executedProof: executedProof,
            executedView: executedView, prepared: prepared)
    }

    /// A block a new view re-issues at `seq` (null: nothing prepared there).
    struct Reissue: Sendable, Equatable {
        let seq: UInt64
        let digest: [UInt8]
        let payload: [UInt8]
    }

    /// Castro–Liskov's new-view rule over 2f+1 valid view-changes: from the
    /// highest sequence among them known committed (`minS`: a stable
    /// checkpoint, or an executed block with its commit certificate; below
    /// it replicas catch up by state transfer) to the highest prepared
    /// sequence, each sequence gets the block prepared in the latest view, or
    /// a null block. Nil if the span exceeds `logSize` (no correct set of
    /// view-changes spans more). Safe: a block committed above `minS` was
    /// prepared by f+1 correct replicas, one of them among any 2f+1, and
    /// that one executed no further than `minS`, so it carries the certificate.
    func reissue(_ claims: [ViewChangeClaim]) -> (minS: UInt64, items: [Reissue])? {
        let minS = claims.map(\.base).max() ?? 0
        var best: [UInt64: PreparedCertificate] = [:]
        for c in claims {
            for p in c.prepared where p.seq > minS {
                if let b = best[p.seq], b.view >= p.view { continue }
                best[p.seq] = p
            }
        }
        let maxS = best.keys.max() ?? minS
        guard maxS - minS <= config.logSize else { return nil }
        var items: [Reissue] = []
        if maxS > minS {
            for s in (minS + 1)...maxS {
                if let p = best[s] {
                    items.append(Reissue(seq: s, digest: p.digest, payload: p.payload))
                } else {
                    items.append(Reissue(seq: s, digest: PBFTReplica.nullDigest, payload: []))
                }
            }
        }
        return (minS, items)
    }

    /// A new-view's content: sent by the new view's primary, exactly 2f+1
    /// view-changes for that view from distinct members, each signed and
    /// valid, and exactly the pre-prepares they determine, signed by the
    /// primary with blocks matching their digests. Nil if any part fails.
    mutating func newView(_ m: SignedMessage) -> (minS: UInt64, items: [Reissue], claims: [ViewChangeClaim])? {
        guard case .newView(let v, let vcs, let pps) = m.message, m.sender == config.primary(of: v), vcs.count == config.quorum,
            Set(vcs.map(\.sender)).count == vcs.count, withinBounds(m.message)
        else { return nil }
        for vc in vcs {
            guard case .viewChange(let nv, _, _, _, _, _) = vc.message, nv == v else { return nil }
        }
        var claims: [ViewChangeClaim] = []
        for vc in vcs {
            guard signature(vc), let c = viewChange(vc) else { return nil }
            claims.append(c)
        }
        guard let (minS, items) = reissue(claims), items.count == pps.count else { return nil }
        for (item, pp) in zip(items, pps) {
            guard pp.sender == m.sender, case .prePrepare(let pv, let s, let d, let p) = pp.message, pv == v, s == item.seq, d == item.digest,
                p == item.payload
            else { return nil }
        }
        guard pps.allSatisfy({ signature($0) }) else { return nil }
        return (minS, items, claims)
    }
}
