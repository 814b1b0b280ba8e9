import ArgumentParser
import EFSCBus
import EFSCChannel
import EFSCCore
import EFSCDevnet
import EFSCCredentials
import EFSCIdentity
import EFSCLedger
import EFSCReplay
import EFSCSDK
import Foundation

/// `efsc demo`: the whole system on one machine — a broker, a 4-node devnet
/// and a TCC — and a scripted market: one provider, two consumers, from DIDs
/// to closed channels, with every check counted and every artifact kept.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo", abstract: "Run the end-to-end trading scenario on a fresh local devnet and keep its artifacts.",
        discussion: """
            Starts a broker, 4 chain nodes and a TCC (`efsc devnet init/up` in a temporary directory), then: registers
            the DIDs of a provider, two consumers and the four nodes; registers the provider's time-of-day TIT;
            publishes an offer; matches each consumer's demand; issues and records two TICs (opening two channels);
            authenticates all parties to the TCC; settles --settlements times per channel; closes channel 1
            cooperatively and channel 2 unilaterally (consumer 2 closes with an older TSC, the provider challenges
            with the latest, then it is finalized); and re-verifies every TSC offline from the DID documents the
            identity chain returned, plus its on-chain evidence. Everything it started is stopped at the end.
            Artifacts in --out: dids/ (resolutions with operation logs), templates/, tics/, tscs/<party>/<channel>/,
            blocks.jsonl (committed-block events of node1), summary.json.
            Exit status: 0 only if every check passed.
            """)
    @Option(name: .long, help: "Artifact directory (replaced).") var out = "demo-out"
    @Option(name: .long, help: "Settlements per channel.") var settlements = 24
    @Option(name: .long, help: "N: settlements per on-chain evidence.") var evidenceEvery = 5
    @Option(name: .long, help: "Use (and keep) this devnet directory instead of a temporary one.") var dir: String?
    @Flag(name: .long, help: "Print the summary as JSON.") var json = false

    final class Report: @unchecked Sendable {
        let lock = Lock()
        var passed = 0
        var failed: [String] = []
        let tty = isatty(2) != 0

        func ok(_ what: String) {
            lock.withLock { passed += 1 }
            line("  ok    \(what)")
        }

        func fail(_ what: String) {
            lock.withLock { failed.append(what) }
            line("  FAIL  \(what)")
        }

        func check(_ what: String, _ cond: Bool, _ detail: @autoclosure () -> String = "") {
            cond ? ok(what) : fail(detail().isEmpty ? what : "\(what): \(detail())")
        }

        func step(_ s: String) { line("-- \(s)") }

        func line(_ s: String) {
            lock.withLock { FileHandle.standardError.write(Data(((tty ? "\r\u{1B}[K" : "") + s + "\n").utf8)) }
        }

        func progress(_ s: String) {
            guard tty else { return }
            lock.withLock { FileHandle.standardError.write(Data("\r\u{1B}[K\(s)".utf8)) }
        }
    }

    /// Writes the chain's event log (both groups, from height 1 to the
    /// committed height, re-executed) to `path` with `EventLog`, the code of
    /// `efsc events`, and checks it: every block verified, every state root
    /// reproduced. Returns the blocks written.
    func eventLog(_ r: Report, chain: ChainClient, genesis: String, path: String) async -> Int {
        r.step("8. the event log (blocks.jsonl, as efsc events writes it)")
        do {
            let network = try TrustedNetwork(path: genesis)
            let log = EventLog(chain: chain, network: network, options: EventLogOptions(), output: try EventOutput(path: path, truncateTo: 0)) { r.line("  info  \($0)") }
            let s = try await log.run()
            let refused = s.refused.values.reduce(0, +)
            if refused == 0 && s.blocks > 0 {
                r.ok("\(s.blocks) blocks verified (2f+1 genesis-key signatures, links, roots) and re-executed with every certified state root reproduced; \(s.events) events")
            } else {
                r.fail("the event log took \(s.blocks) blocks and refused \(refused)")
            }
            return s.blocks
        } catch {
            r.fail("the event log stopped: \(error)")
            return 0
        }
    }

    /// Re-executes a stopped node's ledger (`efsc ledger replay`) and checks
    /// that every certified state root is reproduced.
    func ledgerReplay(_ r: Report, genesis: String, source: String) async {
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-demo-replay-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: state) }
        do {
            let rep = try await LedgerReplay.run(source: try LedgerSource(dataDir: source), network: try TrustedNetwork(path: genesis), stateDir: state)
            if let f = rep.failure {
                r.fail("ledger replay of node1's chain: \(f.error.code.rawValue) at height \(f.height) of \(f.group): \(f.error.message)")
            } else {
                let hs = rep.heights.keys.sorted().map { "\($0) \(rep.heights[$0]!)" }.joined(separator: ", ")
                r.ok("ledger replay of node1's stored chain (\(hs) blocks): every block verified, \(rep.rootsChecked) certified state roots reproduced")
            }
        } catch {
            r.fail("ledger replay of node1's chain stopped: \(error)")
        }
    }

    /// The TCC's latest retained status (settlements, pending evidence, …).
    final class LatestStatus: @unchecked Sendable {
        let lock = Lock()
        var value: JSON?
        func set(_ j: JSON) { lock.withLock { value = j } }
        var current: JSON? { lock.withLock { value } }
    }

    /// Copies `DIR/<component>/*.log` (broker, nodes, TCCs; not the ledgers'
    /// RocksDB files) to `dest/<component>.log`; returns what it copied.
    static func keepLogs(from dir: String, to dest: String) -> [String] {
        let fm = FileManager.default
        guard let parts = try? fm.contentsOfDirectory(atPath: dir) else { return [] }
        try? fm.createDirectory(atPath: dest, withIntermediateDirectories: true)
        var kept: [String] = []
        for part in parts.sorted() {
            guard let files = try? fm.contentsOfDirectory(atPath: "\(dir)/\(part)") else { continue }
            let logs = files.filter { $0.hasSuffix(".log") }.sorted()
            for f in logs {
                let name = logs.count == 1 ? "\(part).log" : "\(part)-\(f)"
                try? fm.removeItem(atPath: "\(dest)/\(name)")
                if (try? fm.copyItem(atPath: "\(dir)/\(part)/\(f)", toPath: "\(dest)/\(name)")) != nil { kept.append(name) }
            }
        }
        return kept
    }

    func efsc(_ args: [String]) throws -> (Int32, String) {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-demo-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        let p = try ChildProcess(path: Devnet.executable, arguments: args, outputPath: log)
        if !p.wait(timeout: 120) { p.terminate(grace: 2) }
        return (p.exitCode ?? -1, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
    }

    func run() async throws {
        guard (2...10_000).contains(settlements), evidenceEvery >= 1 else { throw ValidationError("--settlements must be 2...10000 and --evidence-every ≥ 1") }
        let r = Report()
        let started = DateTime.currentTime()
        try? FileManager.default.removeItem(atPath: out)
        for d in ["dids", "templates", "tics", "tscs"] { try FileManager.default.createDirectory(atPath: "\(out)/\(d)", withIntermediateDirectories: true) }
        let devDir = dir ?? FileManager.default.temporaryDirectory.appendingPathComponent("efsc-demo-net-\(UUID().uuidString.prefix(8))").path
        r.line("== EFSC demo: broker + 4 PBFT nodes + TCC, 1 provider, 2 consumers, \(settlements) settlements per channel")
        r.step("1. network")
        if dir == nil || !FileManager.default.fileExists(atPath: devDir + "/network.json") {
            let (c, o) = try efsc(["devnet", "init", "--dir", devDir, "--network", "devnet"])
            guard c == 0 else { throw CLIError("devnet init failed: \(o)") }
        }
        let (uc, uo) = try efsc(["devnet", "up", "--dir", devDir])
        defer {
            _ = try? efsc(["devnet", "down", "--dir", devDir])
            // The logs of the broker, the nodes and the TCCs stay with the artifacts.
            let kept = Self.keepLogs(from: devDir, to: "\(out)/logs")
            if !r.failed.isEmpty || uc != 0 {
                r.line("== logs of the broker, nodes and TCC: \(out)/logs/ (\(kept.joined(separator: ", ")))")
            }
            if dir == nil { try? FileManager.default.removeItem(atPath: devDir) }
        }
        guard uc == 0 else { throw CLIError("devnet up failed: \(uo)") }
        r.ok(uo.trimmingCharacters(in: .whitespacesAndNewlines))
        let net = try Devnet(dir: devDir)
        // The demo watches blocks and the TCC as the network's operator;
        // each party trades on its own broker account (step 2).
        let bus = try await net.connectOperator()
        let tccStatus = LatestStatus()
        _ = try await bus.subscribe(Topics.tccStatus("tcc1"), qos: .atLeastOnce) { m in
            if let j = try? JSONParser.parse(m.payload) { tccStatus.set(j) }
        }
        let chain = ChainClient(bus: bus)
        do {
            try await scenario(r, chain: chain, net: net, tccStatus: tccStatus)
        } catch {
            r.fail("scenario stopped: \(error)")
        }
        // blocks.jsonl is the chain's event log, as `efsc events` writes it.
        let blocks = await eventLog(r, chain: chain, genesis: devDir, path: "\(out)/blocks.jsonl")
        await bus.disconnect()
        // An auditor's check without consensus: node1's stored chain, re-executed.
        _ = try? efsc(["devnet", "down", "--dir", devDir])
        await ledgerReplay(r, genesis: devDir, source: "\(devDir)/node1/data")
        let seconds = ((DateTime.currentTime() - started) * 10).rounded() / 10
        let summary: JSON = [
            "passed": .number(Double(r.passed)), "failed": .array(r.failed.map(JSON.string)), "seconds": .number(seconds),
            "blocks": .number(Double(blocks)), "artifacts": .string(out),
        ]
        try Output.write("\(out)/summary.json", summary.prettyString() + "\n")
        if json {
            Output.line(summary.compactString())
        } else {
            Output.line("== \(r.passed) passed, \(r.failed.count) failed in \(seconds) s; artifacts in \(out)/ (dids, templates, tics, tscs, blocks.jsonl: the event log of \(blocks) verified blocks)")
        }
        if !r.failed.isEmpty { throw ExitCode(1) }
    }

    func scenario(_ r: Report, chain: ChainClient, net: Devnet, tccStatus: LatestStatus) async throws {
        r.step("2. identities on the identity chain")
        // Each party joins the network at runtime: a broker account of its
        // own (`devnet add-party`), confined to its own channel halves, over TLS.
        var partyBuses: [MQTTClient] = []
        defer { let b = partyBuses; Task { for c in b { await c.disconnect() } } }
        func party() async throws -> Trader {
            let id = try PartyIdentity.create(network: "devnet")
            let b = try await net.connect(party: id.did)
            partyBuses.append(b)
            return Trader(chain: ChainClient(bus: b), identity: id)
        }
        let provider = try await party()
        let consumers = [try await party(), try await party()]
        if net.isSecure {
            r.ok("3 party accounts added at runtime (no broker restart); each connected over TLS with a certificate of the network CA")
            var anon = try MQTTConfiguration(url: net.brokerURL, clientID: "efsc-demo-anonymous")
            anon.offlinePolicy = .failFast
            anon.connectTimeout = 5
            let refused: Bool
            do {
                try await MQTTClient(anon).connect()
                refused = false
            } catch { refused = true }
            r.check("an anonymous client is refused by the broker", refused)
        }
        var names: [(String, String)] = [("provider", provider.me.did), ("consumer1", consumers[0].me.did), ("consumer2", consumers[1].me.did)]
        for (n, t) in zip(["provider", "consumer1", "consumer2"], [provider] + consumers) {
            try await t.registerDID()
            r.ok("\(n) \(t.me.did) registered")
        }
        // Chain nodes get self-certifying DIDs from their consensus keys too.
        for n in net.nodes {
            let cfg = try Output.readJSON("\(net.dir)/\(n)/config.json")
            guard let sk = cfg["secretKeyMultibase"]?.stringValue else { continue }
            let key = try Ed25519SecretKey(multibase: sk)
            let (did, _, op) = try EFSCDID.createOperation(network: "devnet", key: key)
            try await Trader(chain: chain, identity: PartyIdentity(did: did, key: key, operation: op)).registerDID()
            names.append((n, did))
        }
        r.ok("\(net.nodes.count) node DIDs registered (from their consensus keys)")
        let tccIdentity = try PartyIdentity(json: try Output.readJSON("\(net.dir)/tcc1.json"))
        names.append(("tcc1", tccIdentity.did))

        r.step("3. templates and offers")
        let tit = try ProviderTemplates.timeOfDayTIT(owner: provider.me.did)
        try await provider.registerTemplate(tit)
        let onChainTIT = try await ChainTemplateStore(chain: chain).template(id: tit.id, version: tit.version)
        r.check("provider's time-of-day TIT (extends the base TIT) registered and read back", onChainTIT == tit)
        try Output.write("\(out)/templates/\(PartyName.of(tit.id)).json", tit.json.prettyString() + "\n")
        try Output.write("\(out)/templates/tst.json", BaseTemplates.tst.json.prettyString() + "\n")
        _ = try await provider.publishOffer([
            "offerId": "gpu-a100", "computingPower": ["resourceType": "gpu", "model": "A100-80G", "memoryGiB": 80], "unitPrice": 12.5, "capacity": 8,
            "templateId": .string(tit.id), "templateVersion": 1,
        ])
        _ = try await provider.publishOffer(["offerId": "cpu-small", "computingPower": ["resourceType": "cpu"], "unitPrice": 0.4, "capacity": 64])
        for (i, c) in consumers.enumerated() {
            let m = try await c.match(["resourceType": "gpu", "quantity": 2, "maxUnitPrice": 20, "durationHours": 1])
            r.check("consumer\(i + 1)'s demand matched to gpu-a100", m.first?["offerId"] == "gpu-a100", "\(m)")
        }

        r.step("4. trades start: TIC applied, issued, recorded → channels open")
        var sessions: [(ChannelSession, ChannelSession, String)] = []
        let startAt = DateTime.currentTime() - Double(settlements + 10)
        for (i, c) in consumers.enumerated() {
            let claim = ProviderTemplates.sampleTITClaim(provider: provider.me.did, consumer: c.me.did, period: 1, evidenceEvery: evidenceEvery)
            let tic = try await provider.issue(try c.apply(claim: claim, template: tit))
            let ch = try await c.record(tic: tic, offerId: "gpu-a100")
            let id = ch["channelId"]!.stringValue!
            try Output.write("\(out)/tics/consumer\(i + 1).json", JSON.object(tic.json).prettyString() + "\n")
            let ps = try provider.session(channel: id, tic: tic, store: try TSCStore(directory: "\(out)/tscs/provider"))
            let cs = try c.session(channel: id, tic: tic, store: try TSCStore(directory: "\(out)/tscs/consumer\(i + 1)"))
            try await ps.open()
            try await cs.open()
            r.ok("channel \(id): both parties passed the TCC's DID challenge")
            sessions.append((ps, cs, id))
        }
        if net.isSecure, sessions.count == 2 {
            // Consumer 2 tries to speak for consumer 1 on channel 1: the broker refuses.
            let forged: Bool
            do {
                try await consumers[1].chain.bus.publish(
                    Topics.channelUp(sessions[0].2, party: PartyName.of(consumers[0].me.did)), payload: Array("{}".utf8), qos: .atLeastOnce)
                forged = true
            } catch { forged = false }
            r.check("consumer2's publish on consumer1's channel half is refused by the broker", !forged)
        }

        r.step("5. settlements through the TCC (provider proposes, consumer countersigns, TCC issues)")
        let done = Report()
        let t0 = DateTime.currentTime()
        let n = settlements
        let total = settlements * sessions.count
        let providers = sessions.map(\.0)
        try await withThrowingTaskGroup(of: Void.self) { g in
            for (k, ps) in providers.enumerated() {
                g.addTask {
                    let settlements = n
                    for i in 1...settlements {
                        // Channel 1 ends with the final settlement (cooperative close).
                        _ = try await ps.settle(usage: 0.0001 * Double(1 + i % 5), final: k == 0 && i == settlements, firstStart: startAt)
                        done.lock.withLock { done.passed += 1 }
                        r.progress("   settled \(done.lock.withLock { done.passed }) / \(total)")
                    }
                }
            }
            try await g.waitForAll()
        }
        let rate = Double(settlements * sessions.count) / (DateTime.currentTime() - t0)
        r.ok("\(settlements * sessions.count) TSCs issued (\(Int(rate)) settlements/s end to end)")
        for (i, (_, cs, id)) in sessions.enumerated() {
            _ = try await cs.waitFor(sequence: settlements)
            r.check("consumer\(i + 1) holds TSCs 1…\(settlements) of \(id)", cs.store!.sequences(channel: id) == Array(1...settlements))
        }

        r.step("6. closing")
        let (_, _, ch1) = sessions[0]
        do {
            let rec = try await StateWait.until("channel 1 (\(ch1)) closed on chain", timeout: 60) { () -> StateWait.Probe<JSON> in
                let rec = try await chain.channel(ch1)
                return rec["state"] == "closed" ? .reached(rec) : .notYet("state \(rec["state"]?.stringValue ?? "?")")
            }
            r.check(
                "channel 1 closed cooperatively with the final TSC \(settlements)",
                rec["closeKind"] == "cooperative" && rec["finalSequence"]?.intValue == settlements, rec.compactString())
        } catch let e as StateTimeout {
            r.fail(e.description)
        }
        // Every settlement's evidence the TCC will submit is on chain once its
        // status shows all settlements issued and no evidence pending: only
        // then is "the latest evidence" of channel 2 settled, so a close with
        // that TSC cannot be overtaken by a later evidence.
        let drained = try await StateWait.until("the TCC to report \(total) settlements and no pending evidence", timeout: 60) { () -> StateWait.Probe<JSON> in
            guard let st = tccStatus.current else { return .notYet("no status yet") }
            let s = st["settlements"]?.intValue ?? 0, pe = st["pendingEvidence"]?.intValue ?? -1
            return s >= total && pe == 0 ? .reached(st) : .notYet("settlements \(s), pending evidence \(pe)")
        }
        let evidences = drained["evidences"]?.intValue ?? 0
        let evidenceTxs = drained["evidenceTransactions"]?.intValue ?? 0
        let (_, cs2, ch2) = sessions[1]
        // Consumer 2 closes with the TSC of the latest evidence (older than its latest); the provider answers.
        let ev = try await StateWait.until("evidence of channel 2 (\(ch2)) on chain", timeout: 60) { () -> StateWait.Probe<JSON> in
            let e = try await chain.query("transaction", "evidence", ["channelId": .string(ch2)])
            return (e["sequence"]?.intValue ?? 0) >= 1 ? .reached(e) : .notYet(e.compactString())
        }
        let anchored = ev["sequence"]?.intValue ?? 1
        let older = try cs2.store!.get(channel: ch2, sequence: anchored)!
        let closing = try await consumers[1].closeUnilaterally(channel: ch2, tsc: older)
        r.check("consumer2 closes channel 2 unilaterally with TSC \(anchored); challenge window until height \(closing["challengeUntil"]?.intValue ?? 0)", closing["state"] == "closing", closing.compactString())
        if anchored < settlements {
            let latest = try cs2.store!.get(channel: ch2, sequence: settlements)!
            let ch = try await provider.challenge(channel: ch2, tsc: latest)
            r.check("provider challenges with TSC \(settlements)", ch["finalSequence"]?.intValue == settlements, ch.compactString())
        }
        let fin = try await provider.finalize(channel: ch2)
        r.check("channel 2 final after the window, at sequence \(settlements)", fin["state"] == "closed" && fin["finalSequence"]?.intValue == settlements, fin.compactString())

        r.step("7. independent re-verification")
        let resolver = LocalDIDResolver()
        for (n, did) in names {
            let res = try await chain.query("identity", "did", ["did": .string(did)])
            try Output.write("\(out)/dids/\(n).json", res.prettyString() + "\n")
            if let ops = res["operations"]?.arrayValue?.compactMap(\.objectValue), !ops.isEmpty { resolver.add(try DIDHistory(operations: ops)) }
        }
        r.ok("DID documents of \(names.count) parties, nodes and the TCC written from the identity chain (operation logs verified)")
        let templates = LocalTemplateStore([tit])
        var verified = 0
        var states: [String: Int] = [:]
        var anchoredPerChannel: [String: Int] = [:]
        for (who, (_, _, id)) in zip(["consumer1", "consumer2"], sessions) {
            for party in ["provider", who] {
                let store = try TSCStore(directory: "\(out)/tscs/\(party)")
                for s in store.sequences(channel: id) {
                    let vc = try store.get(channel: id, sequence: s)!
                    let v = await TSC.verify(vc, resolver: resolver, templates: templates, trustedTCCs: [tccIdentity.did])
                    if v.ok { verified += 1 } else { r.fail("\(party) TSC \(s) of \(id): \(v.summary)") }
                    guard party == who else { continue }
                    // "anchored" means the evidence's Merkle inclusion proof verified (Trader.onChainStatus).
                    let state = try await provider.onChainStatus(of: vc).state
                    states[state, default: 0] += 1
                    if state == "anchored" { anchoredPerChannel[id, default: 0] += 1 }
                }
            }
        }
        r.check("\(verified) TSC files verify offline (eddsa-jcs-2022 proofs of provider, consumer and TCC)", verified == 4 * settlements)
        let accounted = (states["anchored"] ?? 0) + (states["superseded"] ?? 0) + (states["final"] ?? 0)
        r.check(
            "on chain: every TSC accounted for: \(states["anchored"] ?? 0) anchored with inclusion proofs, \(states["superseded"] ?? 0) covered by later evidence or the close, \(states["final"] ?? 0) held by a close record, \(states["pending"] ?? 0) pending",
            accounted == 2 * settlements && (states["pending"] ?? 0) == 0, "\(states)")
        for (i, (_, _, id)) in sessions.enumerated() {
            let n = anchoredPerChannel[id] ?? 0
            r.check("channel \(i + 1): \(n) TSC(s) anchored with a verified inclusion proof", n >= 1)
        }
        // How much the TCC coalesced is a figure of the machine's speed, not a check.
        r.line("  info  the TCC anchored \(evidences) evidences in \(evidenceTxs) transactions for \(total) settlements (every \(evidenceEvery)th due; later ones in the same window replace earlier ones)")
        // A forged TSC (fee lowered) is caught.
        var forged = try TSCStore(directory: "\(out)/tscs/consumer1").get(channel: ch1, sequence: 1)!.json
        var sub = forged["credentialSubject"]!.objectValue!
        sub["fee"] = 0
        forged["credentialSubject"] = .object(sub)
        let fv = await TSC.verify(VerifiableCredential(json: forged), resolver: resolver, templates: templates)
        r.check("a TSC with its fee changed is rejected (\(fv.summary))", !fv.ok)
    }
}
