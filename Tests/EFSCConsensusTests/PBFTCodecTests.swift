import EFSCCore
import Testing
@testable import EFSCConsensus

@Suite struct PBFTCodecTests {
    /// Every durable state a simulated run persisted survives encode/decode,
    /// and so do the messages inside it (view changes need them).
    @Test func durableStatesAndMessagesRoundTrip() throws {
        for seed in [UInt64(3), 11, 42] {
            let sim = PBFTSimulation(seed: seed, n: 4)
            _ = sim.run(chaosTicks: 120, healTicks: 300)
            for d in sim.persisted {
                let back = try PBFTCodec.decodeDurable(PBFTCodec.encode(durable: d))
                #expect(back == d)
                for c in d.prepared.values {
                    let (g, m) = try PBFTCodec.decode(PBFTCodec.encode(group: "sim", c.prePrepare))
                    #expect(g == "sim")
                    #expect(m == c.prePrepare)
                }
            }
        }
    }

    @Test func viewChangeRoundTripsAndTruncationNeverTraps() throws {
        let sim = PBFTSimulation(seed: 5, n: 4)
        _ = sim.run(chaosTicks: 100, healTicks: 200)
        var r = sim.replicas.compactMap { $0 }.first!
        let vc = r.makeViewChange()
        let wire = PBFTCodec.encode(group: "sim", vc)
        #expect(try PBFTCodec.decode(wire).message == vc)
        for cut in stride(from: 0, to: wire.count, by: max(1, wire.count / 50)) {
            #expect(throws: PBFTDecodingError.self) { try PBFTCodec.decode(Array(wire.prefix(cut))) }
        }
        #expect(throws: PBFTDecodingError.self) { try PBFTCodec.decode(wire + [1]) }
        var huge = Array(wire.prefix(60))
        huge += [0xFF, 0xFF, 0xFF, 0xFF]
        #expect(throws: PBFTDecodingError.self) { try PBFTCodec.decode(huge) }
    }

    /// A short signature is the verifier's business: the codec keeps it, so
    /// the replica reports it as a bad signature, not as a corrupt encoding.
    @Test func shortSignaturesDecodeAndFailOnlyVerification() throws {
        let short = SignedMessage(sender: 1, message: .prepare(view: 0, seq: 1, digest: Array(repeating: 3, count: 32)), signature: [9])
        var d = PBFTDurableState()
        d.lastExecCert = [short, short, short]
        let pp = SignedMessage(sender: 0, message: .prePrepare(view: 0, seq: 1, digest: Array(repeating: 3, count: 32), payload: []), signature: [])
        d.prepared[1] = PreparedCertificate(prePrepare: pp, prepares: [short, short])
        #expect(try PBFTCodec.decodeDurable(PBFTCodec.encode(durable: d)) == d)
        let wire = PBFTCodec.encode(group: "g", short)
        #expect(try PBFTCodec.decode(wire).message == short)
        do {
            _ = try PBFTCodec.decodeDurable(Array(PBFTCodec.encode(durable: d).dropLast(5)))
            Issue.record("a truncated state decoded")
        } catch let e as PBFTDecodingError {
            #expect(e.message.contains("truncated") || e.message.contains("cannot fit"), "\(e.message)")
        }
    }
}
