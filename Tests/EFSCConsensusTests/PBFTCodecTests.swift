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

    /// A pre-prepare's block is signed through its digest: the signed bytes
    /// leave the block out, the wire carries it, and a replica takes a
    /// pre-prepare only when the block matches the digest.
    @Test func prePrepareBlocksAreSignedThroughTheirDigest() throws {
        let keys = (0..<4).map { _ in Ed25519SecretKey() }
        func replica(_ i: Int) -> PBFTReplica {
            PBFTReplica(
                config: PBFTConfig(group: "g", n: 4), me: i, authenticator: Ed25519Authenticator(secret: keys[i], members: keys.map(\.publicKey)),
                durable: PBFTDurableState(), validate: { p in p.payload.isEmpty ? .invalid("empty") : .valid })
        }
        var primary = replica(0)
        let block = [UInt8](repeating: 7, count: 100_000)
        guard case .broadcast(let pp)? = primary.step(.propose(block)).first(where: { if case .broadcast = $0 { true } else { false } }),
            case .prePrepare(let v, let s, let d, _) = pp.message
        else { Issue.record("no pre-prepare"); return }
        let forged = SignedMessage(sender: 0, message: .prePrepare(view: v, seq: s, digest: d, payload: [1, 2, 3]), signature: pp.signature)
        #expect(PBFTCodec.signingBytes(group: "g", sender: 0, message: pp.message).count < 200)
        #expect(PBFTCodec.signingBytes(group: "g", sender: 0, message: pp.message) == PBFTCodec.signingBytes(group: "g", sender: 0, message: forged.message))
        let wire = PBFTCodec.encode(group: "g", pp)
        #expect(wire.count > block.count)
        #expect(try PBFTCodec.decode(wire).message == pp)
        // The signature checks out for the forged block, but its digest does not.
        var follower = replica(1)
        let votes = { (actions: [PBFTAction]) in actions.filter { if case .broadcast(let m) = $0, case .prepare = m.message { true } else { false } }.count }
        #expect(votes(follower.step(.message(forged))) == 0)
        #expect(votes(follower.step(.message(pp))) == 1)
        // Version 1 (blocks signed in full) is refused by name.
        var old = wire
        old[2] = 1
        #expect(throws: PBFTDecodingError.self) { try PBFTCodec.decode(old) }
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
