import EFSCAdversary
import EFSCCore
import Testing
@testable import EFSCConsensus

/// The rules that guard a vote, exercised alone: what may be signed, one
/// vote per (view, sequence), and every vote persisted before it is sent.
@Suite struct SafetyRulesTests {
    let config = PBFTConfig(group: "g", n: 4)
    let secrets = KeyedHashAuthenticator.secrets(seed: 1, n: 4)
    func rules(_ me: Int) -> SafetyRules { SafetyRules(config: config, me: me, auth: KeyedHashAuthenticator(me: me, secrets: secrets)) }
    let d1 = Digest.sha256([1])
    let d2 = Digest.sha256([2])

    /// The actions of one vote: a persist holding it, then its broadcast.
    func persistedThenSent(_ out: [PBFTAction], _ check: (PBFTDurableState) -> Bool) -> Bool {
        guard out.count == 2, case .persist(let d) = out[0], case .broadcast = out[1] else { return false }
        return check(d)
    }

    @Test func aPrepareIsPersistedBeforeItIsSentAndNeverChanges() {
        let r = rules(1)
        var d = PBFTDurableState()
        var out: [PBFTAction] = []
        let p = r.prepare(view: 0, seq: 1, digest: d1, &d, &out)
        #expect(p != nil)
        #expect(persistedThenSent(out) { $0.prepareVotes[VoteKey(view: 0, seq: 1)] == d1 })
        // Another digest for the same (view, seq): refused, nothing emitted.
        out = []
        #expect(r.prepare(view: 0, seq: 1, digest: d2, &d, &out) == nil)
        #expect(out.isEmpty)
        // The same digest again: re-sent from what is durable, no new persist.
        #expect(r.prepare(view: 0, seq: 1, digest: d1, &d, &out) == p)
        #expect(out.count == 1)
        // After a restart (fresh rules over the persisted state) still refused.
        out = []
        #expect(rules(1).prepare(view: 0, seq: 1, digest: d2, &d, &out) == nil)
    }

    @Test func votesOnlyInTheCurrentViewInNormalOperationWithinTheLog() {
        let r = rules(1)
        var d = PBFTDurableState()
        d.view = 4  // primary 0, so replica 1 is a backup
        var out: [PBFTAction] = []
        #expect(r.prepare(view: 3, seq: 1, digest: d1, &d, &out) == nil)
        #expect(r.prepare(view: 5, seq: 1, digest: d1, &d, &out) == nil)
        #expect(r.prepare(view: 4, seq: config.logSize + 1, digest: d1, &d, &out) == nil)
        #expect(r.prepare(view: 4, seq: 0, digest: d1, &d, &out) == nil)
        d.changingView = true
        #expect(r.prepare(view: 4, seq: 1, digest: d1, &d, &out) == nil)
        #expect(out.isEmpty)
        // The primary does not prepare; a backup does not propose.
        var p = PBFTDurableState()
        #expect(rules(0).prepare(view: 0, seq: 1, digest: d1, &p, &out) == nil)
        #expect(rules(1).propose(view: 0, seq: 1, payload: [1], digest: d1, &p, &out) == nil)
        #expect(out.isEmpty)
    }

    @Test func aCommitNeedsThePreparedCertificateOfThatBlock() {
        let r = rules(1)
        var d = PBFTDurableState()
        var out: [PBFTAction] = []
        #expect(r.commit(view: 0, seq: 1, digest: d1, &d, &out) == nil)
        let pp = rules(0).sign(.prePrepare(view: 0, seq: 1, digest: d1, payload: [1]))
        d.prepared[1] = PreparedCertificate(prePrepare: pp, prepares: [])
        #expect(r.commit(view: 0, seq: 1, digest: d2, &d, &out) == nil)
        #expect(out.isEmpty)
        #expect(r.commit(view: 0, seq: 1, digest: d1, &d, &out) != nil)
        #expect(persistedThenSent(out) { $0.commitVotes[VoteKey(view: 0, seq: 1)] == d1 })
    }

    /// A primary proposes one block per (view, seq), even across a restart.
    @Test func aPrimaryProposesOncePerSequence() {
        let r = rules(0)
        var d = PBFTDurableState()
        var out: [PBFTAction] = []
        #expect(r.mayPropose(view: 0, seq: 1, d))
        #expect(r.propose(view: 0, seq: 1, payload: [1], digest: d1, &d, &out) != nil)
        #expect(persistedThenSent(out) { $0.prepareVotes[VoteKey(view: 0, seq: 1)] == d1 })
        #expect(!rules(0).mayPropose(view: 0, seq: 1, d))
        out = []
        #expect(rules(0).propose(view: 0, seq: 1, payload: [2], digest: d2, &d, &out) == nil)
        #expect(out.isEmpty)
        // The replica built over it does not offer to propose either.
        var replica = PBFTReplica(config: config, me: 0, authenticator: KeyedHashAuthenticator(me: 0, secrets: secrets), durable: d)
        #expect(!replica.canPropose)
        #expect(replica.step(.propose([2])).isEmpty)
    }

    /// Views move forward only, never past the largest number a message may
    /// carry; entering a view drops the votes of earlier ones.
    @Test func viewsOnlyMoveForwardAndStayInRange() {
        let r = rules(1)
        var d = PBFTDurableState()
        d.view = 5
        var out: [PBFTAction] = []
        #expect(r.viewChange(to: 5, &d, &out) == nil)
        #expect(r.viewChange(to: 4, &d, &out) == nil)
        #expect(r.viewChange(to: WireLimits.consensusMaxNumber + 1, &d, &out) == nil)
        #expect(r.viewChange(to: .max, &d, &out) == nil)
        #expect(out.isEmpty)
        d.prepareVotes[VoteKey(view: 5, seq: 1)] = d1
        #expect(r.viewChange(to: 6, &d, &out) != nil)
        #expect(d.view == 6 && d.changingView)
        #expect(persistedThenSent(out) { $0.view == 6 && $0.changingView })
        out = []
        #expect(!r.enterView(5, &d, &out))
        #expect(r.enterView(6, &d, &out))
        #expect(!d.changingView && d.prepareVotes.isEmpty)
        #expect(out.count == 1)
    }

    /// A replica whose persisted view is 2⁶⁴−1 (written by a version that
    /// could be pushed there) ticks through its timeouts without trapping.
    @Test func aPersistedViewAtTheTopDoesNotTrap() {
        var d = PBFTDurableState()
        d.view = .max
        var r = PBFTReplica(config: config, me: 1, authenticator: KeyedHashAuthenticator(me: 1, secrets: secrets), durable: d)
        _ = r.step(.pendingWork(true))
        for _ in 0..<(config.viewChangeTimeout * 20) { _ = r.step(.tick) }
        #expect(r.view == .max)
    }

    /// A new primary restarted mid-change cannot issue a second new-view with other blocks.
    @Test func aNewViewIsIssuedWithOneSetOfBlocks() {
        let r = rules(1)
        var d = PBFTDurableState()
        d.view = 1
        d.changingView = true
        let vcs = (0..<3).map { rules($0).sign(.viewChange(newView: 1, stableSeq: 0, stableDigest: PBFTReplica.genesisDigest, checkpointProof: [], prepared: [])) }
        var out: [PBFTAction] = []
        let block = MessageVerifier.Reissue(seq: 1, digest: d1, payload: [1])
        #expect(r.newView(viewChanges: vcs, reissue: [block], &d, &out) != nil)
        #expect(persistedThenSent(out) { $0.prepareVotes[VoteKey(view: 1, seq: 1)] == d1 })
        out = []
        let null = MessageVerifier.Reissue(seq: 1, digest: PBFTReplica.nullDigest, payload: [])
        #expect(r.newView(viewChanges: vcs, reissue: [null], &d, &out) == nil)
        #expect(out.isEmpty)
    }
}
