import Testing
@testable import EFSCConsensus
import Foundation

/// Prints one seed's end state: EFSC_DEBUG_SEED=<seed> swift test --filter DebugSeed
/// (a no-op without the variable).
@Suite struct DebugSeed {
    @Test func debug() {
        guard let s = ProcessInfo.processInfo.environment["EFSC_DEBUG_SEED"].flatMap(UInt64.init) else { return }
        let sim = PBFTSimulation(seed: s, n: 4)
        let r = sim.run()
        print(r ?? "ok")
        for i in 0..<4 {
            if let x = sim.replicas[i] {
                print(i, "view", x.view, "changing", x.isChangingView, "lastExec", x.lastExecuted, "highest", x.highestAssigned, "ready", x.ready.keys.sorted(), "prepared", x.durable.prepared.keys.sorted(), "vcs", x.viewChanges.mapValues { $0.view }, "pp", x.prePrepares.keys.map { "\($0.view)/\($0.seq)" }, "votesP", x.durable.prepareVotes.map { "\($0.key.view)/\($0.key.seq)" })
            }
        }
    }
}
