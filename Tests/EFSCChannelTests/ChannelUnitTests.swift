import EFSCChannel
import EFSCCore
import EFSCCredentials
@testable import EFSCTCC
import Testing

/// The pure parts of the channel protocol: settlement terms from a TIC,
/// claim checks, the access challenge, message parsing, adaptive N.
@Suite struct ChannelUnitTests {
    static let provider = "did:efsc:devnet:Prov1"
    static let consumer = "did:efsc:devnet:Cons1"

    static func tic(period: Int = 60, every: Int = 10, everyMax: Int? = 100, table: Bool = true) -> JSONObject {
        var c = ProviderTemplates.sampleTITClaim(provider: provider, consumer: consumer, period: period, evidenceEvery: every)
        if !table {
            c["priceTable"] = nil
            c["incentiveFactor"] = nil
        }
        if everyMax == nil { c["settlementStrategy"] = ["period": .number(Double(period)), "evidenceEvery": .number(Double(every))] }
        return ["credentialSubject": .object(c)]
    }

    @Test func termsFromTICAndTimeOfDayFees() throws {
        let t = try SettlementTerms(channelId: "ch-1", tic: Self.tic())
        #expect(t.units == 2 && t.period == 60 && t.evidenceEvery == 10 && t.evidenceEveryMax == 100)
        // 03:00 UTC falls in the 0–8 band (8/unit-hour), 10:00 in 8–20 (12.5); incentive 0.95.
        let night = DateTime.parse("2026-11-28T03:00:00Z")!
        let day = DateTime.parse("2026-11-28T10:00:00Z")!
        #expect(t.fee(usage: 1, start: night) == 7.6)
        #expect(t.fee(usage: 2, start: day) == 23.75)
        let flat = try SettlementTerms(channelId: "ch-1", tic: Self.tic(table: false))
        #expect(flat.fee(usage: 2, start: night) == 25)
        #expect(try SettlementTerms(channelId: "c", tic: Self.tic(everyMax: nil)).evidenceEveryMax == 10)
        #expect(throws: ChainError.self) { try SettlementTerms(channelId: "c", tic: ["credentialSubject": ["providerDid": "did:key:x"]]) }
    }

    @Test func claimChecks() throws {
        let t = try SettlementTerms(channelId: "ch-1", tic: Self.tic())
        let start = DateTime.parse("2026-11-28T10:00:00Z")!
        let now = start + 3600
        let ok = JSON.object(t.claim(sequence: 1, start: start, usage: 0.02))
        #expect(try t.check(ok, lastSequence: 0, lastEnd: nil, now: now) == start + 60)
        func fails(_ claim: JSONObject, last: Int = 0, lastEnd: Double? = nil, at: Double = now, _ text: String) {
            do {
                try t.check(.object(claim), lastSequence: last, lastEnd: lastEnd, now: at)
                Issue.record("accepted: \(text)")
            } catch {
                #expect(error.message.contains(text), "\(error.message)")
            }
        }
        fails(t.claim(sequence: 1, start: start, usage: 0.02), last: 1, "stale sequence 1")
        fails(t.claim(sequence: 3, start: start, usage: 0.02), last: 1, "skips ahead")
        fails(t.claim(sequence: 2, start: start + 5, usage: 0.02), last: 1, lastEnd: start, "the previous period ended")
        fails(t.claim(sequence: 1, start: start, usage: 0.02), at: start, "in the future")
        // 2 units × 60 s = 1/30 unit-hour per period at most.
        fails(t.claim(sequence: 1, start: start, usage: 0.05), "exceeds")
        var wrongFee = t.claim(sequence: 1, start: start, usage: 0.02)
        wrongFee["fee"] = 0.1
        fails(wrongFee, "does not match usage × price")
        var other = t.claim(sequence: 1, start: start, usage: 0.02)
        other["consumerDid"] = "did:efsc:devnet:Mallory"
        fails(other, "parties")
        var long = t.claim(sequence: 1, start: start, usage: 0.02)
        long["end"] = .string(DateTime.format(start + 120))
        fails(long, "settlement period is 60 s")
    }

    @Test func challengeRoundTripAndBinding() throws {
        let party = Ed25519SecretKey()
        let ka = party.derivedKeyAgreementKey()
        let (m, secret) = try ChannelAuth.challenge(to: ka.publicKey, channel: "ch-1", did: Self.consumer, challengeId: "c1", tcc: "did:efsc:devnet:T", expires: 0)
        let a = try ChannelAuth.answer(m, key: ka, did: Self.consumer)
        #expect(ChannelAuth.matches(Base64URL.decode(a["plaintext"]!.stringValue!)!, secret))
        // Another key, another DID or another channel cannot open it.
        #expect(throws: ChainError.self) { try ChannelAuth.answer(m, key: Ed25519SecretKey().derivedKeyAgreementKey(), did: Self.consumer) }
        #expect(throws: ChainError.self) { try ChannelAuth.answer(m, key: ka, did: Self.provider) }
        var moved = m
        moved.channelId = "ch-2"
        #expect(throws: ChainError.self) { try ChannelAuth.answer(moved, key: ka, did: Self.consumer) }
        #expect(!ChannelAuth.matches(secret, Array(secret.reversed())))
    }

    @Test func messageParsing() throws {
        let m = ChannelMessage(.hello, channel: "ch-1", ["did": .string(Self.consumer)])
        let back = try ChannelMessage(bytes: m.bytes)
        #expect(back.kind == .hello && back.channelId == "ch-1" && back["did"]?.stringValue == Self.consumer)
        for (bytes, text) in [
            (Array("{".utf8), "malformed channel message"), (Array("[]".utf8), "must be a JSON object"),
            (Array(#"{"type":"nope","channelId":"c"}"#.utf8), "unknown channel message type 'nope'"),
            (Array(#"{"type":"hello"}"#.utf8), "no channelId"),
            ([UInt8](repeating: 0x20, count: ChannelMessage.maxBytes + 1), "exceeds"),
        ] {
            #expect(throws: ChainError.self) { try ChannelMessage(bytes: bytes) }
            do { _ = try ChannelMessage(bytes: bytes) } catch { #expect(error.message.contains(text), "\(error.message)") }
        }
        #expect(Base64URL.decode(Base64URL.encode([0xFB, 0xFF, 0x01])) == [0xFB, 0xFF, 0x01])
        #expect(PartyName.of("did:efsc:devnet:Abc") == "Abc")
    }

    /// The TCC parses only the block transactions that hold a channel
    /// operation's member; the byte search must find it anywhere.
    @Test func blockFilterFindsChannelOperationsOnly() throws {
        let close = Array(#"{"args":{"channelId":"c"},"group":"transaction","nonce":1,"op":"channel.close","sender":"did:efsc:x"}"#.utf8)
        let evidence = Array(#"{"args":{"items":[{"channelId":"channel.x","sequence":1,"tscHash":"00"}]},"op":"evidence.submit"}"#.utf8)
        #expect(TCC.contains(close, TCC.channelOpMember))
        #expect(!TCC.contains(evidence, TCC.channelOpMember))
        #expect(TCC.contains(TCC.channelOpMember, TCC.channelOpMember))
        #expect(TCC.contains(Array("xx".utf8) + TCC.channelOpMember, TCC.channelOpMember))
        #expect(!TCC.contains(Array(TCC.channelOpMember.dropLast()), TCC.channelOpMember))
        #expect(!TCC.contains([], TCC.channelOpMember) && TCC.contains([1], []))
        // Against a naive search, on small alphabets where the anchor byte
        // recurs, matches overlap, and needles sit at either end.
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let hay = (0..<Int.random(in: 0...40, using: &rng)).map { _ in UInt8.random(in: 0...2, using: &rng) }
            let needle = (0..<Int.random(in: 1...5, using: &rng)).map { _ in UInt8.random(in: 0...2, using: &rng) }
            let naive = hay.count >= needle.count && (0...(hay.count - needle.count)).contains { Array(hay[$0..<$0 + needle.count]) == needle }
            #expect(TCC.contains(hay, needle) == naive, "\(hay) \(needle)")
        }
    }

    @Test func adaptiveNRisesUnderABurstAndFallsAfter() {
        var p = EvidencePolicy(high: 1000, low: 100, maxFactor: 64)
        #expect(p.n(every: 10, maxEvery: 100) == 10)
        for _ in 0..<3 { p.observe(pool: 5000) }
        #expect(p.factor == 8)
        #expect(p.n(every: 10, maxEvery: 100) == 80)
        for _ in 0..<3 { p.observe(pool: 5000) }
        #expect(p.n(every: 10, maxEvery: 100) == 100, "bounded by the TIC's maximum")
        p.observe(pool: 500)
        #expect(p.factor == 64, "between the watermarks nothing changes")
        for _ in 0..<10 { p.observe(pool: 0) }
        #expect(p.factor == 1 && p.n(every: 10, maxEvery: 100) == 10)
    }
}
