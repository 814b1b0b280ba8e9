import EFSCBus
import EFSCChannel
import EFSCCore
import EFSCDevnet
import EFSCCredentials
import EFSCIdentity
import EFSCLedger
import EFSCSDK
import Foundation
import Testing

/// Whole trades over a real broker, four node processes and a TCC process:
/// DID authentication (and its rejections), settlements with TSCs checked
/// by both parties, evidence anchored with inclusion proofs, forged and
/// stale settlements refused, a TCC killed with -9 mid-trade losing no
/// acknowledged TSC, adaptive N under a burst, and both kinds of close.
extension NetworkSuites {
@Suite(.serialized) struct ChannelEndToEndTests {
    final class Box: @unchecked Sendable {
        let lock = Lock()
        var items: [ChannelMessage] = []
        func add(_ m: ChannelMessage) { lock.withLock { items.append(m) } }
        func wait(_ kind: ChannelMessage.Kind, timeout: Double = 10) async -> ChannelMessage? {
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                if let m = lock.withLock({ () -> ChannelMessage? in
                    guard let i = items.firstIndex(where: { $0.kind == kind }) else { return nil }
                    return items.remove(at: i)
                }) { return m }
                try? await Task.sleep(nanoseconds: 20_000_000)
            }
            return nil
        }
    }

    struct Net {
        let dir: String
        let broker: String
        let run = DevnetIntegrationTests()
    }

    /// The TCC's challenge deadline here: an answer must arrive within it, so
    /// it is generous (an answer takes milliseconds); the late-answer check waits past it.
    static let challengeSeconds = 5.0

    func startNet(challengeSeconds: Double = Self.challengeSeconds, tccs: Int = 1, insecure: Bool = false) throws -> Net {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-chan-\(UUID().uuidString.prefix(8))").path
        let run = DevnetIntegrationTests()
        #expect(try run.efsc(["devnet", "init", "--dir", dir, "--tcc-count", String(tccs)] + (insecure ? ["--insecure"] : [])).code == 0)
        // Short challenge deadline and low pool watermarks so the test can reach both.
        var cfg = try JSONParser.parse(try String(contentsOfFile: dir + "/tcc1/config.json", encoding: .utf8)).objectValue!
        cfg["challengeSeconds"] = .number(challengeSeconds)
        cfg["poolHigh"] = 40
        cfg["poolLow"] = 5
        cfg["statusIntervalMillis"] = 250
        try JSON.object(cfg).prettyString().write(toFile: dir + "/tcc1/config.json", atomically: true, encoding: .utf8)
        let up = try run.efsc(["devnet", "up", "--dir", dir])
        #expect(up.code == 0, "\(up.out)")
        let net = try JSONParser.parse(try String(contentsOfFile: dir + "/network.json", encoding: .utf8))
        return Net(dir: dir, broker: "mqtt://127.0.0.1:\(net["brokerPort"]!.intValue!)")
    }

    /// A client of the party `did`, on its own broker account (added at runtime).
    func party(_ net: Net, _ did: String) async throws -> MQTTClient {
        try await Devnet(dir: net.dir).connect(party: did)
    }

    /// A trader with a fresh identity and its own broker account.
    func trader(_ net: Net) async throws -> Trader {
        let id = try PartyIdentity.create(network: "devnet")
        return Trader(chain: ChainClient(bus: try await party(net, id.did)), identity: id)
    }

    /// A client on an `--insecure` network: anonymous, any client id.
    func anonymous(_ net: Net, _ id: String) async throws -> MQTTClient {
        var c = try MQTTConfiguration(url: net.broker, clientID: id)
        c.offlinePolicy = .failFast
        let m = try MQTTClient(c)
        try await m.connect()
        return m
    }

    /// Provider, consumer(s), an offer and recorded TICs: returns the traders and channel ids.
    func openTrades(_ net: Net, consumers: Int, period: Int = 1, every: Int = 3) async throws -> (Trader, [Trader], [(String, VerifiableCredential)]) {
        let provider = try await trader(net)
        try await provider.registerDID()
        let tit = try ProviderTemplates.timeOfDayTIT(owner: provider.me.did)
        try await provider.registerTemplate(tit)
        _ = try await provider.publishOffer(["offerId": "gpu-e2e", "computingPower": ["resourceType": "gpu", "memoryGiB": 80], "unitPrice": 12.5, "capacity": 8])
        var traders: [Trader] = []
        var channels: [(String, VerifiableCredential)] = []
        for _ in 0..<consumers {
            let c = try await trader(net)
            try await c.registerDID()
            let best = try await c.match(["resourceType": "gpu", "quantity": 2, "durationHours": 1])
            #expect(best.first?["offerId"] == "gpu-e2e")
            let claim = ProviderTemplates.sampleTITClaim(provider: provider.me.did, consumer: c.me.did, period: period, evidenceEvery: every)
            let tic = try await provider.issue(try c.apply(claim: claim, template: tit))
            let ch = try await c.record(tic: tic, offerId: "gpu-e2e")
            channels.append((ch["channelId"]!.stringValue!, tic))
            traders.append(c)
        }
        return (provider, traders, channels)
    }

    func tccStatus(_ net: Net) throws -> JSON? {
        try run(net, ["devnet", "status", "--dir", net.dir, "--json"]).json?["tccs"]?.arrayValue?.first?["status"]
    }

    func run(_ net: Net, _ args: [String]) throws -> DevnetIntegrationTests.Run { try net.run.efsc(args) }

    @Test func settlementsEvidenceAuthRejectionsAndCrashRecovery() async throws {
        let net = try startNet()
        defer {
            _ = try? run(net, ["devnet", "down", "--dir", net.dir])
            try? FileManager.default.removeItem(atPath: net.dir)
        }
        let (provider, consumers, channels) = try await openTrades(net, consumers: 1)
        let consumer = consumers[0]
        let (channel, tic) = channels[0]
        let pStore = try TSCStore(directory: net.dir + "/provider-tscs")
        let cStore = try TSCStore(directory: net.dir + "/consumer-tscs")
        let p = try provider.session(channel: channel, tic: tic, store: pStore)
        let c = try consumer.session(channel: channel, tic: tic, store: cStore)
        try await p.open()
        try await c.open()
        // Settlements: the first period started 200 s ago so periods of 1 s stay in the past.
        let first = DateTime.currentTime() - 200
        for _ in 1...6 { _ = try await p.settle(usage: 0.0005, firstStart: first) }
        let t6 = try await c.waitFor(sequence: 6)
        #expect(cStore.sequences(channel: channel) == Array(1...6))
        #expect(pStore.sequences(channel: channel) == Array(1...6))
        // Any standard verifier: proofs against the chain's DID documents.
        let check = await TSC.verify(t6, resolver: ChainDIDResolver(chain: provider.chain), templates: ChainTemplateStore(chain: provider.chain))
        #expect(check.ok, "\(check.summary)")
        // Evidence every 3: TSC 6 gets anchored (with a verified inclusion proof); 5 is covered by 6.
        let status = try await StateWait.until("TSC 6 anchored on chain", timeout: 60) { () -> StateWait.Probe<Trader.OnChainStatus> in
            let st = try await provider.onChainStatus(of: t6)
            return st.state == "anchored" ? .reached(st) : .notYet(st.detail)
        }
        #expect(status.state == "anchored", "\(status.detail)")
        // TSC 3's evidence went on chain unless 6's replaced it in the queue first (the latest wins).
        #expect(["anchored", "superseded"].contains(try await provider.onChainStatus(of: try #require(try cStore.get(channel: channel, sequence: 3))).state))
        #expect(try await provider.onChainStatus(of: try #require(try cStore.get(channel: channel, sequence: 5))).state == "superseded")

        // Authentication rejections, spoken raw on the consumer's topics
        // (its own account: the broker lets no one else write them).
        let raw = consumer.chain.bus
        let box = Box()
        let me = consumer.me
        let party = PartyName.of(me.did)
        _ = try await raw.subscribe(Topics.channelDown(channel, party: party), qos: .atLeastOnce) { m in
            if let cm = try? ChannelMessage(bytes: m.payload) { box.add(cm) }
        }
        func say(_ m: ChannelMessage, on bus: MQTTClient? = nil, as who: String = party) async throws {
            try await (bus ?? raw).publish(Topics.channelUp(channel, party: who), payload: m.bytes, qos: .atLeastOnce)
        }
        // Wrong DID on the consumer's topic.
        try await say(ChannelMessage(.hello, channel: channel, ["did": .string(provider.me.did)]))
        #expect(await box.wait(.error)?["code"] == "not-a-party")
        // Wrong key: the challenge cannot be opened without the DID's key-agreement key.
        try await say(ChannelMessage(.hello, channel: channel, ["did": .string(me.did)]))
        let ch1 = try #require(await box.wait(.challenge))
        #expect(throws: ChainError.self) { try ChannelAuth.answer(ch1, key: Ed25519SecretKey().derivedKeyAgreementKey(), did: me.did) }
        var wrong = try ChannelAuth.answer(ch1, key: me.keyAgreementKey, did: me.did)
        wrong.fields["plaintext"] = .string(Base64URL.encode(Digest.randomBytes(32)))
        try await say(wrong)
        #expect(await box.wait(.error)?["code"] == "wrong-answer")
        // A correct answer admits once; replaying it is refused.
        try await say(ChannelMessage(.hello, channel: channel, ["did": .string(me.did)]))
        let ch2 = try #require(await box.wait(.challenge))
        let good = try ChannelAuth.answer(ch2, key: me.keyAgreementKey, did: me.did)
        try await say(good)
        #expect(await box.wait(.admitted)?["sequence"]?.intValue == 6)
        try await say(good)
        #expect(await box.wait(.error)?["code"] == "replayed")
        // A late answer (past the TCC's deadline).
        try await say(ChannelMessage(.hello, channel: channel, ["did": .string(me.did)]))
        let ch3 = try #require(await box.wait(.challenge))
        try await Task.sleep(nanoseconds: UInt64((Self.challengeSeconds + 0.5) * 1e9))
        try await say(try ChannelAuth.answer(ch3, key: me.keyAgreementKey, did: me.did))
        #expect(await box.wait(.error)?["code"] == "late")
        // A stranger (an account of its own, but not a party of this channel): nothing it sends is processed.
        let stranger = try PartyIdentity.create(network: "devnet")
        let strangerBus = try await self.party(net, stranger.did)
        try await say(ChannelMessage(.hello, channel: channel, ["did": .string(stranger.did)]), on: strangerBus, as: PartyName.of(stranger.did))
        // Nor may it write the consumer's half: the broker refuses.
        await #expect(throws: MQTTError.self) { try await say(ChannelMessage(.hello, channel: channel, ["did": .string(me.did)]), on: strangerBus) }
        await strangerBus.disconnect()
        // Five refusals so far (stranger included), once the TCC's status shows them.
        let failures = try? await StateWait.until("the TCC's status to count 5 authentication failures", timeout: 30) { () -> StateWait.Probe<Int> in
            let n = try tccStatus(net)?["authFailures"]?.intValue ?? 0
            return n >= 5 ? .reached(n) : .notYet("\(n)")
        }
        #expect(failures != nil, "the TCC's status never counted 5 authentication failures")

        // Forged and stale settlements from the provider are refused; nothing advances.
        let terms = p.terms
        let tccDID = try #require(t6.issuer)
        let last = try #require(DateTime.parse(t6.subject!["end"]!.stringValue!))
        var forgedClaim = terms.claim(sequence: 7, start: last, usage: 0.0005)
        forgedClaim["fee"] = 100
        let provBox = Box()
        let praw = provider.chain.bus
        let pparty = PartyName.of(provider.me.did)
        _ = try await praw.subscribe(Topics.channelDown(channel, party: pparty), qos: .atLeastOnce) { m in
            if let cm = try? ChannelMessage(bytes: m.payload) { provBox.add(cm) }
        }
        func propose(_ claim: JSONObject) async throws {
            var t = BaseTemplates.tst
            t = try await ChainTemplateStore(chain: provider.chain).template(id: t.id, version: t.version)
            // Signed properly: only the terms make it wrong.
            let vc = VerifiableCredential(
                types: [TSC.type], issuer: tccDID, validFrom: claim["start"]!.stringValue!, subject: .object(claim), template: (t.id, t.version))
            let signed = try vc.signed(with: provider.me.key, options: .init(verificationMethod: provider.me.verificationMethod, id: TSC.providerProofID))
            try await praw.publish(
                Topics.channelUp(channel, party: pparty), payload: ChannelMessage(.propose, channel: channel, ["credential": .object(signed.json)]).bytes)
        }
        try await propose(forgedClaim)
        #expect(await provBox.wait(.error)?["error"]?.stringValue?.contains("does not match usage") == true)
        // A proposal of the sequence already issued (a provider that missed
        // the TSC) gets that TSC again; it is not issued twice.
        try await propose(terms.claim(sequence: 6, start: last - 1, usage: 0.0005))
        let again = await provBox.wait(.tsc)
        #expect(again?["sequence"]?.intValue == 6 && again?["tscHash"]?.stringValue == (try? t6.hash()))
        // So does a replayed countersignature of TSC 6; one of an older sequence is stale.
        var replay = t6.json
        replay["proof"] = .array(Array(EddsaJcs2022.proofs(of: t6.json).prefix(2)).map(JSON.object))
        try await say(ChannelMessage(.countersign, channel: channel, ["credential": .object(replay)]))
        #expect(await box.wait(.tsc)?["sequence"]?.intValue == 6)
        var old = replay
        if case .object(var subject)? = old["credentialSubject"] {
            subject["sequence"] = 5
            old["credentialSubject"] = .object(subject)
        }
        try await say(ChannelMessage(.countersign, channel: channel, ["credential": .object(old)]))
        #expect(await box.wait(.error)?["code"] == "stale")

        // kill -9 of the TCC while settlements run; restart; nothing acknowledged is lost.
        let acknowledged = Box()
        let settler = Task {
            var done = 6
            // Bounded, so a stuck channel fails the test instead of hanging the suite.
            let deadline = Date().addingTimeInterval(90)
            while done < 16 && Date() < deadline {
                do {
                    let t = try await p.settle(usage: 0.0005, firstStart: first, timeout: 4)
                    done = t.subject!["sequence"]!.intValue!
                    acknowledged.add(ChannelMessage(.tsc, channel: channel, ["sequence": .number(Double(done))]))
                } catch {
                    try? await Task.sleep(nanoseconds: 300_000_000)
                    try? await p.open(timeout: 5)
                }
            }
        }
        let ackDeadline = Date().addingTimeInterval(60)
        while acknowledged.lock.withLock({ acknowledged.items.count }) < 3 && Date() < ackDeadline { try await Task.sleep(nanoseconds: 20_000_000) }
        #expect(try run(net, ["devnet", "stop-node", "--dir", net.dir, "--kill", "tcc1"]).code == 0)
        try await Task.sleep(nanoseconds: 500_000_000)
        #expect(try run(net, ["devnet", "start-node", "--dir", net.dir, "tcc1"]).code == 0)
        _ = await settler.result
        let t16 = try await c.waitFor(sequence: 16, timeout: 30)
        #expect(pStore.sequences(channel: channel) == Array(1...16), "no gap, nothing lost")
        #expect(cStore.sequences(channel: channel) == Array(1...16))
        #expect(t16.subject?["sequence"]?.intValue == 16)
        // The recovered TCC still anchors evidence (N = 3 → sequence 15 at least).
        let ev = try? await StateWait.until("evidence of sequence 15 or later on chain", timeout: 60) { () -> StateWait.Probe<JSON> in
            let e = try await provider.chain.query("transaction", "evidence", ["channelId": .string(channel)])
            return (e["sequence"]?.intValue ?? 0) >= 15 ? .reached(e) : .notYet(e.compactString())
        }
        #expect((ev?["sequence"]?.intValue ?? 0) >= 15, "\(ev?.compactString() ?? "no evidence")")

        // Adaptive N: a long pending pool raises the TCC's factor; it falls once the pool drains.
        // The pool is made long by the protocol, not by outpacing the nodes:
        // with two of the four nodes stopped there is no quorum, so nothing
        // commits and every submitted transaction waits in the pool (the
        // TCC's high watermark is 40 here; 120 are submitted).
        for n in ["node3", "node4"] { #expect(try run(net, ["devnet", "stop-node", "--dir", net.dir, n]).code == 0) }
        let load = Task { try run(net, ["chain", "load", "--network", net.dir, "--identity", net.dir + "/tcc1.json", "--rate", "200", "--seconds", "0.6", "--drain", "2", "--json"]) }
        let peak = try? await StateWait.until("the TCC's evidence factor to rise above 1 while the pool is long", timeout: 60) { () -> StateWait.Probe<Int> in
            let f = try tccStatus(net)?["evidenceFactor"]?.intValue ?? 1
            return f > 1 ? .reached(f) : .notYet("factor \(f)")
        }
        _ = try await load.value
        #expect(peak != nil, "the evidence factor should rise while the pool is long")
        for n in ["node3", "node4"] { #expect(try run(net, ["devnet", "start-node", "--dir", net.dir, n]).code == 0) }
        let after = try? await StateWait.until("the TCC's evidence factor to fall back to 1 once the pool drains", timeout: 120, every: 0.25) { () -> StateWait.Probe<Int> in
            let f = try tccStatus(net)?["evidenceFactor"]?.intValue ?? 0
            return f == 1 ? .reached(f) : .notYet("factor \(f)")
        }
        #expect(after == 1, "and fall back once the pool drains")

        // Unilateral close with an old TSC; the provider challenges with the latest; then final.
        // (Evidence of 15 is on chain, so 15 is the oldest TSC a close can still use.)
        let t15 = try #require(try cStore.get(channel: channel, sequence: 15))
        let closing = try await consumer.closeUnilaterally(channel: channel, tsc: t15)
        #expect(closing["state"] == "closing" && closing["finalSequence"]?.intValue == 15)
        let challenged = try await provider.challenge(channel: channel, tsc: t16)
        #expect(challenged["finalSequence"]?.intValue == 16)
        let final = try await provider.finalize(channel: channel)
        #expect(final["state"] == "closed" && final["finalSequence"]?.intValue == 16)
        // The TCC follows the chain: further settlements are refused.
        try? await StateWait.until("the provider's session to see the channel closed", timeout: 60) { p.closedState?["state"]?.stringValue == "closed" }
        #expect(p.closedState?["state"] == "closed")
        await #expect(throws: ChannelRefusal.self) { _ = try await p.settle(usage: 0.0005, timeout: 3) }
    }

    @Test func cooperativeCloseWithTheFinalTSC() async throws {
        let net = try startNet()
        defer {
            _ = try? run(net, ["devnet", "down", "--dir", net.dir])
            try? FileManager.default.removeItem(atPath: net.dir)
        }
        let (provider, consumers, channels) = try await openTrades(net, consumers: 1, every: 100)
        let (channel, tic) = channels[0]
        let p = try provider.session(channel: channel, tic: tic)
        let c = try consumers[0].session(channel: channel, tic: tic)
        try await p.open()
        try await c.open()
        let first = DateTime.currentTime() - 100
        for _ in 1...3 { _ = try await p.settle(usage: 0.0001, firstStart: first) }
        let last = try await p.settle(usage: 0.0001, final: true)
        #expect(last.subject?["final"] == true)
        let rec = try await StateWait.until("the channel closed on chain", timeout: 60) { () -> StateWait.Probe<JSON> in
            let r = try await provider.chain.channel(channel)
            return r["state"] == "closed" ? .reached(r) : .notYet(r.compactString())
        }
        #expect(rec["state"] == "closed" && rec["closeKind"] == "cooperative" && rec["finalSequence"]?.intValue == 4)
        // The final TSC is always anchored, whatever N is.
        let st = try await StateWait.until("the final TSC anchored on chain", timeout: 60) { () -> StateWait.Probe<Trader.OnChainStatus> in
            let s = try await provider.onChainStatus(of: last)
            return s.state == "anchored" ? .reached(s) : .notYet(s.detail)
        }
        #expect(st.state == "anchored")
    }

    /// The TCC trusts topics no more than any client: an open event the chain
    /// does not confirm opens nothing, and a forged block of height 2⁶⁴−1 on
    /// the blocks topic does not make it ignore the real blocks after it.
    /// On an `--insecure` network, where the attacker can write those topics
    /// (on the secure default the broker refuses them: DevnetSecurityTests).
    @Test func theTCCTrustsTopics_forgedEventsAndBlocksAreIgnored() async throws {
        let net = try startNet(insecure: true)
        defer {
            _ = try? run(net, ["devnet", "down", "--dir", net.dir])
            try? FileManager.default.removeItem(atPath: net.dir)
        }
        let (provider, consumers, channels) = try await openTrades(net, consumers: 1, every: 100)
        let (channel, tic) = channels[0]
        _ = try await StateWait.until("the TCC to open the recorded channel", timeout: 60) { (try tccStatus(net)?["openChannels"]?.intValue ?? 0) == 1 }
        let attacker = try await anonymous(net, "attacker-\(UUID().uuidString.prefix(6))")
        // A TIC issued but never recorded, announced as opened.
        let c2 = Trader(chain: provider.chain, identity: try PartyIdentity.create(network: "devnet"))
        try await c2.registerDID()
        let tit = try ProviderTemplates.timeOfDayTIT(owner: provider.me.did)
        let unrecorded = try await provider.issue(try c2.apply(claim: ProviderTemplates.sampleTITClaim(provider: provider.me.did, consumer: c2.me.did, period: 1), template: tit))
        let forgedID = "ch-" + String(try unrecorded.hash().prefix(32))
        let event: JSON = ["event": "open", "channelId": .string(forgedID), "group": "transaction", "height": 1, "tic": .object(unrecorded.json)]
        try await attacker.publish(Topics.tccControl("transaction"), payload: try JCS.canonicalize(event), qos: .atLeastOnce)
        // And an open event for the real channel carrying another TIC.
        let wrong: JSON = ["event": "open", "channelId": "ch-0000", "group": "transaction", "height": 1, "tic": .object(unrecorded.json)]
        try await attacker.publish(Topics.tccControl("transaction"), payload: try JCS.canonicalize(wrong), qos: .atLeastOnce)
        let refused = try? await StateWait.until("the TCC to refuse both forged open events", timeout: 60, every: 0.3) { () -> StateWait.Probe<Int> in
            let n = try tccStatus(net)?["refusedEvents"]?.intValue ?? 0
            return n >= 2 ? .reached(n) : .notYet("\(n) refused")
        }
        #expect(refused != nil, "the forged open events were not refused")
        #expect((try tccStatus(net)?["openChannels"]?.intValue ?? 0) == 1, "a forged open event opened a channel")
        // A forged block at the top of the height range.
        let header = BlockHeader(
            group: "transaction", height: UInt64.max, parentHash: Digest.sha256([1]), stateRoot: Digest.sha256([2]),
            transactionsRoot: Block.transactionsRoot([]), proposer: 0, view: 0, timestamp: 1)
        try await attacker.publish(Topics.blocks("transaction", node: "node1"), payload: Block(header: header, transactions: []).encoded, qos: .atLeastOnce)
        await attacker.disconnect()
        // The real channel still settles and its cooperative close is seen by the TCC and the parties.
        let p = try provider.session(channel: channel, tic: tic)
        let c = try consumers[0].session(channel: channel, tic: tic)
        try await p.open()
        try await c.open()
        let first = DateTime.currentTime() - 100
        _ = try await p.settle(usage: 0.0001, firstStart: first)
        _ = try await p.settle(usage: 0.0001, final: true, firstStart: first)
        let closed = try? await StateWait.until("the provider's session to see the channel closed", timeout: 60) { p.closedState?["state"]?.stringValue == "closed" ? .reached(true) : .notYet(nil) }
        #expect(closed == true, "the TCC missed the close after the forged block")
    }

    /// The protocol from another language: examples/python's consumer (paho-mqtt
    /// and the standard library only) authenticates and countersigns against
    /// a Swift provider and the TCC.
    @Test func pythonConsumerAuthenticatesAndCountersigns() async throws {
        let net = try startNet()
        defer {
            _ = try? run(net, ["devnet", "down", "--dir", net.dir])
            try? FileManager.default.removeItem(atPath: net.dir)
        }
        let (provider, consumers, channels) = try await openTrades(net, consumers: 1, every: 2)
        let (channel, tic) = channels[0]
        try consumers[0].me.json.prettyString().write(toFile: net.dir + "/py-consumer.json", atomically: true, encoding: .utf8)
        try JSON.object(tic.json).prettyString().write(toFile: net.dir + "/py-tic.json", atomically: true, encoding: .utf8)
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        // Python logs in with the consumer's profile; the Swift consumer steps aside (one connection per account).
        let profile = try Devnet(dir: net.dir).partyProfilePath(PartyName.of(consumers[0].me.did))
        await consumers[0].chain.bus.disconnect()
        let log = net.dir + "/py.out"
        let py = try ChildProcess(
            path: "/usr/bin/python3",
            arguments: [
                root + "/examples/python/consumer.py", "--profile", profile, "--identity", net.dir + "/py-consumer.json", "--tic",
                net.dir + "/py-tic.json", "--channel", channel, "--count", "4", "--out", net.dir + "/py-tscs", "--timeout", "90",
            ], outputPath: log)
        let p = try provider.session(channel: channel, tic: tic)
        try await p.open()
        let first = DateTime.currentTime() - 100
        for _ in 1...4 { _ = try await p.settle(usage: 0.0002, firstStart: first, timeout: 60) }
        #expect(py.wait(timeout: 90))
        let out = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(py.exitCode == 0, "\(out)")
        let j = try JSONParser.parse(out.split(separator: "\n").last.map(String.init) ?? "")
        #expect(j["countersigned"]?.intValue == 4 && j["refused"]?.arrayValue?.isEmpty == true, "\(out)")
        // What Python kept verifies with the Swift verifier against the chain.
        for s in 1...4 {
            let f = net.dir + "/py-tscs/" + String(format: "%08d", s) + ".json"
            let vc = VerifiableCredential(json: try JSONParser.parse(try String(contentsOfFile: f, encoding: .utf8)).objectValue!)
            let v = await TSC.verify(vc, resolver: ChainDIDResolver(chain: provider.chain), templates: ChainTemplateStore(chain: provider.chain))
            #expect(v.ok, "\(v.summary)")
        }
    }

    /// Two TCCs share the channels (shared subscription): each channel is
    /// owned and served by exactly one of them.
    @Test func twoTCCsShareTheChannels() async throws {
        let net = try startNet(tccs: 2)
        defer {
            _ = try? run(net, ["devnet", "down", "--dir", net.dir])
            try? FileManager.default.removeItem(atPath: net.dir)
        }
        let (provider, consumers, channels) = try await openTrades(net, consumers: 4, every: 100)
        let first = DateTime.currentTime() - 100
        var issuers: [String: Set<String>] = [:]
        for (c, (channel, tic)) in zip(consumers, channels) {
            let p = try provider.session(channel: channel, tic: tic)
            let cs = try c.session(channel: channel, tic: tic)
            try await p.open()
            try await cs.open()
            for _ in 1...2 { issuers[channel, default: []].insert(try await p.settle(usage: 0.0001, firstStart: first).issuer ?? "?") }
            await p.detach()
            await cs.detach()
        }
        let dids = try (1...2).map { try JSONParser.parse(try String(contentsOfFile: net.dir + "/tcc\($0).json", encoding: .utf8))["did"]!.stringValue! }
        #expect(issuers.values.allSatisfy { $0.count == 1 && dids.contains($0.first!) }, "\(issuers)")
        // Statuses are republished every second: wait until they show all 8 settlements.
        var st: [JSON] = []
        for _ in 0..<20 {
            st = try run(net, ["devnet", "status", "--dir", net.dir, "--json"]).json?["tccs"]?.arrayValue ?? []
            if st.map({ $0["status"]?["settlements"]?.intValue ?? 0 }).reduce(0, +) == 8 { break }
            try await Task.sleep(nanoseconds: 300_000_000)
        }
        let open = st.map { $0["status"]?["openChannels"]?.intValue ?? 0 }
        #expect(open.count == 2 && open.reduce(0, +) == 4 && open.allSatisfy { $0 >= 1 }, "\(open)")
        let settled = st.map { $0["status"]?["settlements"]?.intValue ?? 0 }
        #expect(settled.reduce(0, +) == 8, "\(settled)")
    }
}
}
