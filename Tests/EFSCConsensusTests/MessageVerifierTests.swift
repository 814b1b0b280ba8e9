import EFSCAdversary
import EFSCCore
import Testing
@testable import EFSCConsensus

/// Scripted transcripts (events in, actions out) of single messages to one
/// replica: every nested message is verified, each signature once, and a
/// refused heavy message is not checked again.
@Suite struct MessageVerifierTests {
    let config = PBFTConfig(group: "g", n: 4)
    let secrets = KeyedHashAuthenticator.secrets(seed: 9, n: 4)
    func auth(_ i: Int) -> KeyedHashAuthenticator { KeyedHashAuthenticator(me: i, secrets: secrets) }
    func replica(_ i: Int) -> PBFTReplica { PBFTReplica(config: config, me: i, authenticator: auth(i)) }
    func adversary(_ i: Int) -> PBFTAdversary { PBFTAdversary(config: config, me: i, authenticator: auth(i)) }
    func sign(_ i: Int, _ m: PBFTMessage) -> SignedMessage {
        SignedMessage(sender: i, message: m, signature: auth(i).sign(PBFTCodec.signingBytes(group: "g", sender: i, message: m)))
    }
    func emptyVC(_ v: UInt64) -> PBFTMessage {
        .viewChange(newView: v, stableSeq: 0, stableDigest: PBFTReplica.genesisDigest, checkpointProof: [], prepared: [])
    }

    func rejections(_ out: [PBFTAction]) -> [PBFTRejection] {
        out.compactMap { if case .rejected(_, let r, _) = $0 { r } else { nil } }
    }

    /// The reported attack, step by step: replica 3 alone sends a new-view
    /// for 2⁶⁴−1 (it leads views ≡ 3 mod 4) backed by three fabricated
    /// view-changes. Refused as out of range; nothing changes. The same for
    /// view 3, in range: refused because the nested view-changes are not
    /// signed by their senders. Only 2f+1 genuinely signed view-changes move the view.
    @Test func aFabricatedNewViewMovesNothing() {
        var r = replica(1)
        let top = adversary(3).lastViewLed
        #expect(top % 4 == 3 && top > UInt64.max - 4)
        let forgedVCs = [0, 2].map { SignedMessage(sender: $0, message: emptyVC(top), signature: [7]) } + [sign(3, emptyVC(top))]
        #expect(rejections(r.step(.message(sign(3, .newView(view: top, viewChanges: forgedVCs, prePrepares: [])))))  == [.outOfRange])
        #expect(r.view == 0 && !r.isChangingView)
        let forged3 = [0, 2].map { SignedMessage(sender: $0, message: emptyVC(3), signature: [7]) } + [sign(3, emptyVC(3))]
        #expect(rejections(r.step(.message(sign(3, .newView(view: 3, viewChanges: forged3, prePrepares: []))))) == [.badNewView])
        #expect(r.view == 0 && !r.isChangingView)
        // Replayed: not checked again.
        let checks = r.signatureChecks
        #expect(rejections(r.step(.message(sign(3, .newView(view: 3, viewChanges: forged3, prePrepares: []))))) == [.replayed])
        #expect(r.signatureChecks == checks)
        // Genuinely signed by 0, 2 and 3: replica 1 enters view 3.
        let real = [0, 2, 3].map { sign($0, emptyVC(3)) }
        let out = r.step(.message(sign(3, .newView(view: 3, viewChanges: real, prePrepares: []))))
        #expect(rejections(out).isEmpty)
        #expect(r.view == 3 && !r.isChangingView)
        #expect(out.contains { if case .persist(let d) = $0 { d.view == 3 } else { false } })
    }

    /// A new-view whose pre-prepares leave out a block its view-changes
    /// prove prepared is refused.
    @Test func aNewViewMustReissueWhatWasPrepared() {
        let payload = Array("block one".utf8)
        let d = Digest.sha256(payload)
        let pp = sign(0, .prePrepare(view: 0, seq: 1, digest: d, payload: payload))
        let cert = PreparedCertificate(prePrepare: pp, prepares: [1, 2].map { sign($0, .prepare(view: 0, seq: 1, digest: d)) })
        let vcs = [sign(1, .viewChange(newView: 1, stableSeq: 0, stableDigest: PBFTReplica.genesisDigest, checkpointProof: [], prepared: [cert])),
                   sign(2, emptyVC(1)), sign(3, emptyVC(1))]
        var r = replica(2)
        let dropped = sign(1, .newView(view: 1, viewChanges: vcs, prePrepares: [sign(1, .prePrepare(view: 1, seq: 1, digest: PBFTReplica.nullDigest, payload: []))]))
        #expect(rejections(r.step(.message(dropped))) == [.badNewView])
        #expect(r.view == 0)
        let kept = sign(1, .newView(view: 1, viewChanges: vcs, prePrepares: [sign(1, .prePrepare(view: 1, seq: 1, digest: d, payload: payload))]))
        let out = r.step(.message(kept))
        #expect(rejections(out).isEmpty)
        #expect(r.view == 1)
        // It prepares the re-issued block in the new view.
        #expect(out.contains { if case .broadcast(let m) = $0, case .prepare(1, 1, d) = m.message { true } else { false } })
    }

    /// A checkpoint proof of one signed checkpoint copied 1,000 times is
    /// refused before any signature is checked; 2f+1 copies of one sender
    /// too; a proof failing at its last entry costs each distinct signature
    /// once, and again nothing when replayed.
    @Test func heavyViewChangesCostAtMostOneCheckPerDistinctSignature() {
        var r = replica(1)
        let c = sign(0, .checkpoint(seq: 16, stateDigest: Digest.sha256([5])))
        let stuffed = sign(3, .viewChange(newView: 1, stableSeq: 16, stableDigest: Digest.sha256([5]), checkpointProof: Array(repeating: c, count: 1000), prepared: []))
        #expect(rejections(r.step(.message(stuffed))) == [.oversized])
        #expect(r.signatureChecks == 0)
        let repeated = sign(3, .viewChange(newView: 1, stableSeq: 16, stableDigest: Digest.sha256([5]), checkpointProof: [c, c, c], prepared: []))
        #expect(rejections(r.step(.message(repeated))) == [.badCertificate])
        #expect(r.signatureChecks == 1)  // the outer signature only
        let late = sign(3, .viewChange(newView: 1, stableSeq: 16, stableDigest: Digest.sha256([5]),
            checkpointProof: [c, sign(2, .checkpoint(seq: 16, stateDigest: Digest.sha256([5]))), SignedMessage(sender: 3, message: c.message, signature: [1])], prepared: []))
        #expect(rejections(r.step(.message(late))) == [.badCertificate])
        #expect(r.signatureChecks == 1 + 4)  // outer, then 0, 2 and the bad one
        for _ in 0..<10 { #expect(rejections(r.step(.message(late))) == [.replayed]) }
        #expect(r.signatureChecks == 5)
        // The signed checkpoints it carried are remembered: the same ones in
        // a genuine message cost nothing more.
        let before = r.signatureChecks
        _ = r.step(.message(c))
        #expect(r.signatureChecks == before)
    }

    /// Prepares of one sender for one (view, seq) with fresh digests: the
    /// first is kept, the others are equivocation and stored nowhere.
    @Test func oneVotePerSenderViewAndSequence() {
        var r = replica(1)
        let first = r.step(.message(sign(2, .prepare(view: 0, seq: 1, digest: Digest.sha256([1])))))
        #expect(rejections(first).isEmpty)
        for k in 2..<50 {
            #expect(rejections(r.step(.message(sign(2, .prepare(view: 0, seq: 1, digest: Digest.sha256([UInt8(k)])))))) == [.equivocation])
        }
        #expect(r.footprint.perSender[2] == 1)
    }

    /// Blocks from state transfer need 2f+1 valid commit signatures of one view.
    @Test func syncedBlocksNeedAGenuineCommitCertificate() {
        var r = replica(1)
        let payload = Array("synced".utf8)
        let d = Digest.sha256(payload)
        let forged = [0, 2, 3].map { i in i == 3 ? sign(3, .commit(view: 0, seq: 1, digest: d)) : SignedMessage(sender: i, message: .commit(view: 0, seq: 1, digest: d), signature: [1]) }
        #expect(rejections(r.step(.synced(seq: 1, payload: payload, certificate: forged))) == [.badCertificate])
        #expect(r.lastExecuted == 0)
        let mixed = [sign(0, .commit(view: 0, seq: 1, digest: d)), sign(2, .commit(view: 1, seq: 1, digest: d)), sign(3, .commit(view: 0, seq: 1, digest: d))]
        #expect(rejections(r.step(.synced(seq: 1, payload: payload, certificate: mixed))) == [.badCertificate])
        let good = [0, 2, 3].map { sign($0, .commit(view: 0, seq: 1, digest: d)) }
        let out = r.step(.synced(seq: 1, payload: payload, certificate: good))
        #expect(out.contains { if case .commit(let b) = $0 { b.seq == 1 } else { false } })
        #expect(r.lastExecuted == 1)
    }

    /// A pre-prepare whose block the application judges invalid is not
    /// prepared (and not judged again); one it cannot judge yet is held and
    /// prepared once its parent executed.
    @Test func proposalsAreJudgedBeforeThePrepare() {
        let verdict = Guarded<PBFTValidation>(.invalid("wrong parent"))
        let judged = Guarded(0)
        var r = PBFTReplica(config: config, me: 1, authenticator: auth(1)) { _ in
            judged.withLock { $0 += 1 }
            return verdict.withLock { $0 }
        }
        func prepares(_ out: [PBFTAction]) -> Int { out.filter { if case .broadcast(let m) = $0, case .prepare = m.message { true } else { false } }.count }
        let bad = sign(0, .prePrepare(view: 0, seq: 1, digest: Digest.sha256([1]), payload: [1]))
        var out = r.step(.message(bad))
        #expect(rejections(out) == [.badProposal] && prepares(out) == 0)
        out = r.step(.message(bad))
        #expect(out.isEmpty && judged.withLock { $0 } == 1)
        // A different block at the same (view, seq) is equivocation.
        #expect(rejections(r.step(.message(sign(0, .prePrepare(view: 0, seq: 1, digest: Digest.sha256([2]), payload: [2]))))) == [.equivocation])
        // At sequence 2 the parent has not executed yet: held, then prepared.
        verdict.withLock { $0 = .notYet }
        let later = sign(0, .prePrepare(view: 0, seq: 2, digest: Digest.sha256([3]), payload: [3]))
        #expect(prepares(r.step(.message(later))) == 0)
        verdict.withLock { $0 = .valid }
        #expect(prepares(r.step(.tick)) == 1)
        // An empty block outside a new view is refused.
        var r2 = replica(1)
        #expect(rejections(r2.step(.message(sign(0, .prePrepare(view: 0, seq: 1, digest: PBFTReplica.nullDigest, payload: []))))) == [.badProposal])
    }

    /// A replica that missed the prepares of the next block sees 2f+1
    /// commits for it (retransmitted while the chain is idle): it cannot
    /// commit from its own log, so it asks for state transfer — also when it
    /// has meanwhile started a view change nobody else joined — and takes
    /// the block with its certificate.
    @Test func aCommitQuorumForABlockNotPreparedHereFetchesIt() {
        var r = replica(3)
        func syncs(_ out: [PBFTAction]) -> [UInt64] { out.compactMap { if case .requestSync(let f, _) = $0 { f } else { nil } } }
        let payload: [UInt8] = [42]
        let d = Digest.sha256(payload)
        // The pre-prepare arrives, the other backups' prepares do not.
        _ = r.step(.message(sign(0, .prePrepare(view: 0, seq: 1, digest: d, payload: payload))))
        #expect(r.lastExecuted == 0)
        // It suspects the primary and starts a view change alone.
        for _ in 0..<(config.viewChangeTimeout + 1) { _ = r.step(.tick) }
        #expect(r.isChangingView)
        let commits = [0, 1, 2].map { sign($0, .commit(view: 0, seq: 1, digest: d)) }
        var asked: [UInt64] = []
        for c in commits { asked += syncs(r.step(.message(c))) }
        #expect(asked == [1], "one state transfer from block 1 once 2f+1 commits are in")
        _ = r.step(.synced(seq: 1, payload: payload, certificate: commits))
        #expect(r.lastExecuted == 1)
        // A quorum short of 2f+1 asks for nothing.
        var r2 = replica(3)
        _ = r2.step(.message(sign(0, .prePrepare(view: 0, seq: 1, digest: d, payload: payload))))
        #expect(syncs(r2.step(.message(commits[0]))) + syncs(r2.step(.message(commits[1]))) == [])
    }

    /// A block this replica prepared but saw no commit quorum for, proved
    /// committed by the commit certificate a view-change carries, is
    /// committed from it: if only a faulty replica executed it, a new view
    /// starting above it would leave no correct replica to fetch it from
    /// (found by `make sim`, adversarial seed 10002603).
    @Test func aViewChangeProvingABlockCommittedLetsItsPreparersCommitIt() {
        var r = replica(1)
        let payload = Array("block one".utf8)
        let d = Digest.sha256(payload)
        _ = r.step(.message(sign(0, .prePrepare(view: 0, seq: 1, digest: d, payload: payload))))
        _ = r.step(.message(sign(2, .prepare(view: 0, seq: 1, digest: d))))
        _ = r.step(.message(sign(3, .prepare(view: 0, seq: 1, digest: d))))
        #expect(r.durable.prepared[1]?.digest == d && r.lastExecuted == 0)
        let cert = [0, 2, 3].map { sign($0, .commit(view: 0, seq: 1, digest: d)) }
        let vc = sign(0, .viewChange(newView: 1, stableSeq: 0, stableDigest: PBFTReplica.genesisDigest, checkpointProof: [], prepared: [], executedProof: cert))
        let out = r.step(.message(vc))
        #expect(rejections(out).isEmpty)
        #expect(out.contains { if case .commit(let b) = $0 { b.seq == 1 && b.payload == payload } else { false } })
        #expect(r.lastExecuted == 1)
        // A certificate for a block it did not prepare commits nothing.
        var other = replica(2)
        _ = other.step(.message(vc))
        #expect(other.lastExecuted == 0)
    }
}
