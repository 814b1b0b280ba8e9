import EFSCChannel
import EFSCConsensus
import EFSCCore
import EFSCLedger
import Foundation

/// The measurements of `efsc bench replay`: what `EventLog` fetches,
/// verifies, executes and emits per second, against the raw cost of
/// checking the same blocks on one core — SHA-256 over each block's bytes
/// and 2f+1 Ed25519 verifications — measured in the same process.
public enum ReplayBenchmark {
    public struct Run: Sendable {
        public let blocks: Int
        public let events: Int
        public let seconds: Double
        public var blocksPerSecond: Double { seconds > 0 ? Double(blocks) / seconds : 0 }
        public var eventsPerSecond: Double { seconds > 0 ? Double(events) / seconds : 0 }
    }

    /// One event log over heights 1…`until` of the transaction group (and
    /// the identity group it executes against), events to /dev/null.
    public static func eventLog(chain: ChainClient, network: TrustedNetwork, until: UInt64, execute: Bool) async throws -> Run {
        var o = EventLogOptions()
        o.groups = ["transaction"]
        o.until = until
        o.execute = execute
        let out = try EventOutput(path: "/dev/null", truncateTo: nil)
        let log = EventLog(chain: chain, network: network, options: o, output: out) { _ in }
        let start = DateTime.currentTime()
        let s = try await log.run()
        return Run(blocks: s.blocks, events: s.events, seconds: DateTime.currentTime() - start)
    }

    /// The blocks 1…`until` of `group` as the history query gives them.
    public static func fetch(chain: ChainClient, group: String, until: UInt64) async throws -> [Block] {
        var out: [Block] = []
        var next: UInt64 = 1
        while next <= until {
            let p = try await chain.history(group, from: next)
            guard !p.blocks.isEmpty else { break }
            for b in p.blocks where b.header.height <= until { out.append(b) }
            next = (p.blocks.last?.header.height ?? next) + 1
        }
        return out
    }

    /// Seconds to check `blocks` at the raw limit: SHA-256 over each
    /// block's encoded bytes plus 2f+1 Ed25519 signature verifications (the
    /// certificate's first 2f+1 entries), on this one thread.
    public static func raw(_ blocks: [Block], network: TrustedNetwork) -> (seconds: Double, signatures: Int) {
        let prepared: [(bytes: [UInt8], sigs: [(Int, [UInt8], [UInt8])])] = blocks.map { b in
            let isNull = b.transactions.isEmpty && b.header.proposer == network.members.count
            let digest = isNull ? Digest.sha256([]) : b.hash
            let sigs = b.certificate.prefix(network.quorum).map { e in
                (e.replica, e.signature, PBFTCodec.signingBytes(group: b.header.group, sender: e.replica, message: .commit(view: b.certificateView, seq: b.header.height, digest: digest)))
            }
            return (b.encoded, sigs)
        }
        var ok = 0
        var signatures = 0
        let start = CPUClock.threadMicros()
        for p in prepared {
            if Digest.sha256(p.bytes).first == 0x00 { ok &+= 1 }
            for (r, sig, msg) in p.sigs where r >= 0 && r < network.members.count {
                if network.members[r].isValidSignature(sig, for: msg) { ok &+= 1 }
                signatures += 1
            }
        }
        let seconds = (CPUClock.threadMicros() - start) / 1e6
        precondition(ok >= 0)
        return (seconds, signatures)
    }
}
