import EFSCCore

/// The rules that guard this replica's signature, in one place (in the
/// manner of aptos-core's `consensus/safety-rules`): what it may sign, at
/// most one vote per (view, sequence) and kind, and every vote recorded in
/// the durable state with a `.persist` action emitted before the signed vote
/// is — the caller carries out actions in order, so no vote leaves before
/// the state that promises it is on disk, and a restarted replica never
/// signs a different vote for the same (view, sequence).
///
/// The rules read and write only `PBFTDurableState`; the replica decides
/// when to ask, the rules decide whether it may. A refusal returns nil and
/// emits nothing. Everything a rule relies on from others (prepared
/// certificates, view-changes) was verified by `MessageVerifier` first.
struct SafetyRules: Sendable {
    let config: PBFTConfig
    let me: Int
    let auth: any PBFTAuthenticator

    func sign(_ m: PBFTMessage) -> SignedMessage {
        SignedMessage(sender: me, message: m, signature: auth.sign(PBFTCodec.signingBytes(group: config.group, sender: me, message: m)))
    }

    /// Highest sequence number the replica may vote on: the stable
    /// checkpoint plus the log size (Castro–Liskov's high-water mark).
    func highWater(_ d: PBFTDurableState) -> UInt64 { d.stableSeq + config.logSize }

    func inNormalView(_ view: UInt64, _ seq: UInt64, _ d: PBFTDurableState) -> Bool {
        view == d.view && !d.changingView && seq > d.stableSeq && seq <= highWater(d)
    }

    /// Records a vote for `digest` at `key` (once), persists, signs and sends.
    /// A second request for the same digest re-signs what is already durable;
    /// one for another digest is refused.
    private func vote(
        _ m: PBFTMessage, _ key: VoteKey, _ digest: [UInt8], _ votes: WritableKeyPath<PBFTDurableState, [VoteKey: [UInt8]]>,
        _ d: inout PBFTDurableState, _ out: inout [PBFTAction]
    ) -> SignedMessage? {
        if let voted = d[keyPath: votes][key] {
            guard voted == digest else { return nil }
        } else {
            d[keyPath: votes][key] = digest
            out.append(.persist(d))
        }
        let s = sign(m)
        out.append(.broadcast(s))
        return s
    }

    /// Whether this replica, as primary, may still propose at (view, seq):
    /// nothing proposed there before (a restarted primary that lost its
    /// proposal waits for a view change rather than propose another block).
    func mayPropose(view: UInt64, seq: UInt64, _ d: PBFTDurableState) -> Bool {
        config.primary(of: view) == me && inNormalView(view, seq, d) && d.prepareVotes[VoteKey(view: view, seq: seq)] == nil
    }

    /// The primary's pre-prepare: primary of the current view, in normal
    /// operation, within the log, one block per (view, seq).
    func propose(view: UInt64, seq: UInt64, payload: [UInt8], digest: [UInt8], _ d: inout PBFTDurableState, _ out: inout [PBFTAction]) -> SignedMessage? {
        guard config.primary(of: view) == me, inNormalView(view, seq, d) else { return nil }
        return vote(.prePrepare(view: view, seq: seq, digest: digest, payload: payload), VoteKey(view: view, seq: seq), digest, \.prepareVotes, &d, &out)
    }

    /// A backup's prepare for the current view's primary's pre-prepare
    /// (which the replica verified and validated): one digest per (view, seq).
    func prepare(view: UInt64, seq: UInt64, digest: [UInt8], _ d: inout PBFTDurableState, _ out: inout [PBFTAction]) -> SignedMessage? {
        guard config.primary(of: view) != me, inNormalView(view, seq, d) else { return nil }
        return vote(.prepare(view: view, seq: seq, digest: digest), VoteKey(view: view, seq: seq), digest, \.prepareVotes, &d, &out)
    }

    /// A commit: only for the block this replica holds a prepared
    /// certificate of, in the current view; one digest per (view, seq).
    func commit(view: UInt64, seq: UInt64, digest: [UInt8], _ d: inout PBFTDurableState, _ out: inout [PBFTAction]) -> SignedMessage? {
        guard inNormalView(view, seq, d), let c = d.prepared[seq], c.view == view, c.digest == digest else { return nil }
        return vote(.commit(view: view, seq: seq, digest: digest), VoteKey(view: view, seq: seq), digest, \.commitVotes, &d, &out)
    }

    /// Moves to `newView` (never back, never past the largest number a
    /// message may carry) and signs the view-change for it: the stable
    /// checkpoint with its proof and every prepared certificate above it.
    func viewChange(to newView: UInt64, _ d: inout PBFTDurableState, _ out: inout [PBFTAction]) -> SignedMessage? {
        guard newView > d.view, newView <= WireLimits.consensusMaxNumber else { return nil }
        d.view = newView
        d.changingView = true
        out.append(.persist(d))
        let vc = currentViewChange(d)
        out.append(.broadcast(vc))
        return vc
    }

    /// Enters view `v` on a verified new-view (or as its primary): never a
    /// view below the current one. This replica's own votes of earlier views
    /// are dropped — no rule ever signs in a view below the current one.
    func enterView(_ v: UInt64, _ d: inout PBFTDurableState, _ out: inout [PBFTAction]) -> Bool {
        guard v >= d.view, v <= WireLimits.consensusMaxNumber else { return false }
        d.view = v
        d.changingView = false
        d.prepareVotes = d.prepareVotes.filter { $0.key.view >= v }
        d.commitVotes = d.commitVotes.filter { $0.key.view >= v }
        out.append(.persist(d))
        return true
    }

    /// The view-change for the view this replica is changing to, rebuilt
    /// from durable state (the same content after a restart): the stable
    /// checkpoint, the commit certificate of the last executed block it
    /// holds one for, and the prepared certificates above both.
    func currentViewChange(_ d: PBFTDurableState) -> SignedMessage {
        var executed: UInt64 = 0
        if case .commit(_, let s, _)? = d.lastExecCert.first?.message, d.lastExecCert.count >= config.quorum { executed = s }
        let base = max(d.stableSeq, executed)
        let prepared = d.prepared.filter { $0.key > base && $0.key - base <= config.logSize }.sorted { $0.key < $1.key }.map(\.value)
        return sign(
            .viewChange(
                newView: d.view, stableSeq: d.stableSeq, stableDigest: d.stableDigest, checkpointProof: d.stableProof, prepared: prepared,
                executedProof: executed > 0 ? Array(d.lastExecCert.prefix(config.quorum)) : []))
    }

    /// The new-view, as primary of the view being changed to, over exactly
    /// 2f+1 view-changes for it and the pre-prepares they determine. Each
    /// re-issued pre-prepare is a proposal like any other: recorded (one
    /// block per (view, seq), so a primary restarted mid-change cannot issue
    /// a second new-view with other blocks), persisted, then sent.
    func newView(
        viewChanges: [SignedMessage], reissue: [MessageVerifier.Reissue], _ d: inout PBFTDurableState, _ out: inout [PBFTAction]
    ) -> (newView: SignedMessage, prePrepares: [SignedMessage])? {
        let v = d.view
        guard d.changingView, config.primary(of: v) == me, viewChanges.count == config.quorum else { return nil }
        for r in reissue {
            if let voted = d.prepareVotes[VoteKey(view: v, seq: r.seq)], voted != r.digest { return nil }
        }
        for r in reissue { d.prepareVotes[VoteKey(view: v, seq: r.seq)] = r.digest }
        out.append(.persist(d))
        let pps = reissue.map { sign(.prePrepare(view: v, seq: $0.seq, digest: $0.digest, payload: $0.payload)) }
        let nv = sign(.newView(view: v, viewChanges: viewChanges, prePrepares: pps))
        out.append(.broadcast(nv))
        return (nv, pps)
    }

    /// A checkpoint of this replica's own executed state (deterministic from
    /// the blocks it committed, so it needs no record of its own).
    func checkpoint(seq: UInt64, stateDigest: [UInt8]) -> SignedMessage {
        sign(.checkpoint(seq: seq, stateDigest: stateDigest))
    }
}
