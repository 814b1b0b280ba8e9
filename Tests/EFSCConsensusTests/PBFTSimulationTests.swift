import EFSCCore
import Foundation
import Testing
@testable import EFSCConsensus

/// Thousands of seeded runs of the PBFT state machine (TigerBeetle style).
/// Reproduce a failing seed with: EFSC_SIM_SEED=<seed> EFSC_SIM_N=<n> swift test --filter PBFTSimulationTests
/// A longer run: EFSC_SIM_SEEDS=100000 swift test --filter PBFTSimulationTests (or `make sim`).
@Suite struct PBFTSimulationTests {
    static var env: [String: String] { ProcessInfo.processInfo.environment }

    func runSeeds(n: Int, count: Int, offset: UInt64, adversarial: Bool = false) -> [String] {
        if let s = Self.env["EFSC_SIM_SEED"].flatMap(UInt64.init) {
            guard Int(Self.env["EFSC_SIM_N"] ?? "4") == n, (Self.env["EFSC_SIM_ADVERSARIAL"] == "1") == adversarial else { return [] }
            return PBFTSimulation(seed: s, n: n, adversarial: adversarial).run().map { [$0] } ?? []
        }
        var failures: [String] = []
        for k in 0..<UInt64(count) {
            if let f = PBFTSimulation(seed: offset + k, n: n, adversarial: adversarial).run() {
                failures.append(f)
                if failures.count >= 5 { break }
            }
        }
        return failures
    }

    /// Seeds for n = 4 (n = 7 gets a fifth, n = 10 a twentieth): 2000 runs in all by default.
    static var scale: Int { Int(env["EFSC_SIM_SEEDS"] ?? "") ?? 1600 }

    @Test func fourReplicas() {
        let failures = runSeeds(n: 4, count: Self.scale, offset: 1)
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
    }

    @Test func sevenReplicas() {
        let failures = runSeeds(n: 7, count: max(1, Self.scale / 5), offset: 1_000_000)
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
    }

    @Test func tenReplicas() {
        let failures = runSeeds(n: 10, count: max(1, Self.scale / 20), offset: 2_000_000)
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
    }

    /// Seeds where the Byzantine replica is an adversary crafting
    /// well-formed attacks (a seeded set of `PBFTAttack`s) on top of the
    /// network's faults: n = 4, 7 and 10, 2,000 runs in all by default
    /// (`make sim` runs SEEDS for n = 4 and the same shares of the others).
    /// Reproduce one: EFSC_SIM_ADVERSARIAL=1 EFSC_SIM_SEED=<seed> EFSC_SIM_N=<n>.
    static var adversarialScale: Int { Int(env["EFSC_SIM_SEEDS"] ?? "") ?? 1400 }

    @Test func adversaryFourReplicas() {
        let failures = runSeeds(n: 4, count: Self.adversarialScale, offset: 10_000_000, adversarial: true)
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
    }

    @Test func adversarySevenReplicas() {
        let failures = runSeeds(n: 7, count: max(1, Self.adversarialScale * 9 / 28), offset: 11_000_000, adversarial: true)
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
    }

    @Test func adversaryTenReplicas() {
        let failures = runSeeds(n: 10, count: max(1, Self.adversarialScale * 3 / 28), offset: 12_000_000, adversarial: true)
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
    }

    /// The simulator itself is deterministic: the same seed gives the same run.
    @Test func deterministic() {
        let a = PBFTSimulation(seed: 42, n: 4)
        _ = a.run()
        let b = PBFTSimulation(seed: 42, n: 4)
        _ = b.run()
        #expect(a.decided == b.decided)
        #expect(a.messagesDelivered == b.messagesDelivered)
        #expect(!a.decided.isEmpty)
    }

    /// The checker is not vacuous: a forged second block at a decided height,
    /// or a block without a quorum certificate, is reported with the seed.
    @Test func invariantCheckerCatchesViolations() {
        let sim = PBFTSimulation(seed: 7, n: 4)
        sim.byzantine = nil
        _ = sim.run(chaosTicks: 20, healTicks: 200)
        #expect(sim.violation == nil)
        let h = sim.decided.keys.min()!
        let real = sim.ledgers[0][h] ?? sim.ledgers[1][h]!
        let fake = CommittedBlock(seq: h, view: real.view, digest: Digest.sha256([9]), payload: [9], certificate: real.certificate)
        sim.committed(2, fake)
        #expect(sim.violation?.contains("seed 7") == true)
        let sim2 = PBFTSimulation(seed: 8, n: 4)
        sim2.byzantine = nil
        let unsigned = CommittedBlock(seq: 1, view: 0, digest: Digest.sha256([1]), payload: [1], certificate: [])
        sim2.committed(1, unsigned)
        #expect(sim2.violation?.contains("without a valid certificate") == true)
    }
}
