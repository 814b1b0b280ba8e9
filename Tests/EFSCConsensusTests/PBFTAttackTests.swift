import EFSCAdversary
import EFSCCore
import Testing
@testable import EFSCConsensus

/// One test per attack a Byzantine replica holding only its own key can
/// make (`PBFTAttack`): the attack runs alone on an otherwise healthy
/// network, the honest replicas refuse it for the expected reason, stay
/// safe (the simulator checks after every event), keep their memory per
/// peer bounded, and commit after it stops.
@Suite struct PBFTAttackTests {
    func run(_ sim: PBFTSimulation, ticks: Int = 300) -> String? { sim.run(chaosTicks: ticks, healTicks: 1500, progressAfterHeal: 5) }

    func honestViews(_ sim: PBFTSimulation) -> [UInt64] { sim.honest.compactMap { sim.replicas[$0]?.view } }

    /// The reported attack: a new-view backed by view-changes the primary
    /// fabricated (forged, unsigned, or its own repeated), claiming no
    /// prepared certificates, and a stable checkpoint nobody signed.
    @Test func fabricatedViewChangesMoveNoView() {
        let sim = PBFTSimulation.scenario(.fabricatedViewChanges)
        #expect(run(sim) == nil)
        #expect((sim.rejections[.badNewView] ?? 0) > 0, "\(sim.rejections)")
        #expect((sim.rejections[.badCertificate] ?? 0) > 0, "\(sim.rejections)")
        // Nothing failed, so no view changed: the fabricated new-views moved nobody.
        #expect(honestViews(sim).allSatisfy { $0 == 0 }, "\(honestViews(sim))")
    }

    /// New-views for far views up to 2⁶⁴−1 and votes with view or sequence
    /// 2⁶⁴−1: refused as out of range (no arithmetic on them can overflow);
    /// a signed view-change for the largest in-range view moves nobody alone.
    @Test func farViewsUpToTheLastAreRefused() {
        let sim = PBFTSimulation.scenario(.farViews)
        #expect(run(sim) == nil)
        #expect((sim.rejections[.outOfRange] ?? 0) > 0, "\(sim.rejections)")
        #expect((sim.rejections[.badNewView] ?? 0) > 0, "\(sim.rejections)")
        #expect(honestViews(sim).allSatisfy { $0 == 0 }, "\(honestViews(sim))")
    }

    /// Honest prepares, checkpoints and view-changes of one (view, seq)
    /// offered as certificates for another.
    @Test func certificatesFromOtherViewsAreRefused() {
        let sim = PBFTSimulation.scenario(.foreignCertificates)
        #expect(run(sim) == nil)
        #expect((sim.rejections[.badCertificate] ?? 0) + (sim.rejections[.badNewView] ?? 0) > 0, "\(sim.rejections)")
        #expect(honestViews(sim).allSatisfy { $0 == 0 }, "\(honestViews(sim))")
    }

    /// The Byzantine primary's blocks with a wrong parent, state root or
    /// height, anchors far ahead or of 2⁶⁴−1, blocks not matching their
    /// digest and empty blocks: never prepared, so never committed; the
    /// honest replicas change view and go on.
    @Test func badBlocksAreNeverPrepared() {
        let sim = PBFTSimulation.scenario(.badBlocks, byzantine: 0)
        #expect(run(sim) == nil)
        #expect((sim.rejections[.badProposal] ?? 0) > 0, "\(sim.rejections)")
        #expect(honestViews(sim).allSatisfy { $0 >= 1 }, "\(honestViews(sim))")
    }

    /// Prepares, commits and checkpoints with fresh digests for every
    /// sequence in the window: counted as equivocation, stored once.
    @Test func digestFloodKeepsMemoryBounded() {
        let sim = PBFTSimulation.scenario(.digestFlood)
        var most = 0
        sim.onTick = { s in
            for i in s.honest { most = max(most, s.replicas[i]?.footprint.perSender[3] ?? 0) }
        }
        #expect(run(sim) == nil)
        #expect((sim.rejections[.equivocation] ?? 0) > 0, "\(sim.rejections)")
        // One vote per (sender, view, seq): at most a prepare and a commit
        // per sequence of the window (and two views of commits), whatever it sent.
        #expect(most <= 3 * Int(sim.config.window) + 8, "\(most)")
        #expect(most <= PBFTReplica.footprintBound(sim.config))
    }

    /// View-changes stuffed with 1,000 copies of one signed checkpoint,
    /// with repeated senders, or failing at their last signature, sent
    /// again and again: refused before any signature check or after one
    /// pass, and never checked again.
    @Test func heavyViewChangesAreCheckedOnce() {
        let sim = PBFTSimulation.scenario(.heavyReplay)
        #expect(run(sim) == nil)
        #expect((sim.rejections[.oversized] ?? 0) > 0, "\(sim.rejections)")
        #expect((sim.rejections[.replayed] ?? 0) > 0, "\(sim.rejections)")
        #expect((sim.rejections[.badCertificate] ?? 0) > 0, "\(sim.rejections)")
        #expect(sim.maxChecksPerMessage <= sim.config.quorum + 1, "\(sim.maxChecksPerMessage)")
    }

    /// The Byzantine primary of a new view replaces blocks its view-changes
    /// prove prepared with null blocks: the new-view is refused, the next
    /// view's primary re-issues them, and nothing prepared is lost.
    @Test func newViewDroppingPreparedBlocksIsRefused() {
        // n = 7 (f = 2): replica 0 crashes, so the view passes to replica 1, the adversary.
        let sim = PBFTSimulation.scenario(.omittedPrepared, seed: 3, n: 7, byzantine: 1)
        // Commits are held back while the primary crashes, so blocks are
        // prepared but not committed when the view changes.
        sim.onTick = { s in
            if s.now == 40 { s.dropKind = 3 }
            if s.now == 42 { s.replicas[0] = nil }
            if s.now == 80 { s.dropKind = nil }
            if s.now == 400 { s.replicas[0] = s.makeReplica(0) }
        }
        #expect(run(sim, ticks: 450) == nil)
        #expect((sim.rejections[.badNewView] ?? 0) > 0, "\(sim.rejections)")
        let others = (2..<7).compactMap { sim.replicas[$0]?.view }
        #expect(others.count == 5 && others.allSatisfy { $0 >= 2 }, "\(others)")
    }

    /// A silent primary under load: replicas have executed many large blocks
    /// above their stable checkpoint. Their view-changes carry the commit
    /// certificate of the last executed block and only the blocks above it,
    /// so each fits the broker's packet; the others change view and go on.
    @Test func viewChangesUnderLoadFitAPacket() {
        let sim = PBFTSimulation(seed: 11, n: 4)
        sim.byzantine = nil
        sim.dropRate = 0
        sim.dupRate = 0
        sim.maxDelay = 1
        sim.noCrashes = true
        sim.blockPadding = 300_000
        // The primary stops just before a checkpoint: 7 large blocks executed
        // above the stable one.
        var heightAtCrash: UInt64 = 0
        var preparedAbove = 0
        sim.onTick = { s in
            guard s.replicas[0] != nil, s.height(0) >= 15, s.height(0) % 8 == 7 else { return }
            heightAtCrash = s.height(1)
            let r = s.replicas[1]!
            preparedAbove = r.durable.prepared.filter { $0.key > r.stableCheckpoint }.reduce(0) { $0 + $1.value.payload.count }
            s.replicas[0] = nil
        }
        for _ in 0..<300 { sim.stepTick() }
        #expect(sim.violation == nil, "\(sim.violation ?? "")")
        // What a view-change carrying every prepared block above the stable
        // checkpoint would have been: more than a packet.
        #expect(preparedAbove > WireLimits.packetBytes, "\(preparedAbove)")
        let views = (1..<4).compactMap { sim.replicas[$0]?.view }
        #expect(views.count == 3 && views.allSatisfy { $0 >= 1 }, "\(views)")
        #expect(sim.largestViewChange > 0 && sim.largestViewChange < WireLimits.packetBytes, "\(sim.largestViewChange)")
        // Blocks kept committing in the new view.
        #expect((1..<4).allSatisfy { sim.height($0) > heightAtCrash + 3 }, "\(heightAtCrash) → \((1..<4).map { sim.height($0) })")
    }
}
