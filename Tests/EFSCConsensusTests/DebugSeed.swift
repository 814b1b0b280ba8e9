import Testing
@testable import EFSCConsensus
import Foundation

/// Prints one seed's end state: EFSC_DEBUG_SEED=<seed> [EFSC_SIM_ADVERSARIAL=1] [EFSC_SIM_N=n] swift test --filter DebugSeed
/// (a no-op without the variable).
@Suite struct DebugSeed {
    @Test func debug() {
        let env = ProcessInfo.processInfo.environment
        guard let s = env["EFSC_DEBUG_SEED"].flatMap(UInt64.init) else { return }
        let n = Int(env["EFSC_SIM_N"] ?? "4") ?? 4
        let sim = PBFTSimulation(seed: s, n: n, adversarial: env["EFSC_SIM_ADVERSARIAL"] == "1")
        let r = sim.run()
        print(r ?? "ok")
        print("rejections", sim.rejections)
        for i in 0..<n {
            if let x = sim.replicas[i] {
                print(i, "view", x.view, "changing", x.isChangingView, "lastExec", x.lastExecuted, "stable", x.stableCheckpoint, "highest", x.highestAssigned, "ready", x.ready.keys.sorted(),
                      "held", x.held.keys.sorted(), "invalid", x.invalid.keys.map { "\($0.view)/\($0.seq)" }, "suspect", x.suspectPrimary,
                      "prepared", x.durable.prepared.map { "\($0.key)@v\($0.value.view)" }, "vcs", x.viewChanges.mapValues { $0.view }, "pp", x.prePrepares.keys.map { "\($0.view)/\($0.seq)" }, "votesP", x.durable.prepareVotes.map { "\($0.key.view)/\($0.key.seq)" }, "votesC", x.durable.commitVotes.map { "\($0.key.view)/\($0.key.seq)" }, "myNV", x.myNewView != nil)
            }
        }
    }
}
