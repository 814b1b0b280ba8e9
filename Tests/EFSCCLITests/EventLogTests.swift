import EFSCBus
import EFSCChannel
import EFSCCore
import EFSCDevnet
import EFSCLedger
import EFSCReplay
import EFSCStore
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `efsc events`, `efsc ledger replay` and examples/python/replay.py against a
/// real devnet (broker, four node processes, RocksDB), on the secure default.
extension NetworkSuites {
@Suite(.serialized) struct EventLogTests {
    let run = DevnetIntegrationTests()

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    func height(_ net: Devnet, _ group: String = "transaction") async throws -> UInt64 {
        let bus = try await net.connectOperator()
        defer { Task { await bus.disconnect() } }
        do { return try await ChainClient(bus: bus, timeout: 10).history(group, from: 1, max: 1).committedHeight } catch let e as HistoryError { return e.height ?? 0 }
    }

    func cursorHeight(_ path: String, _ group: String = "transaction") -> UInt64 {
        ((try? EventCursor.load(path)) ?? nil)?.groups[group]?.height ?? 0
    }

    func waitCursor(_ path: String, atLeast h: UInt64, _ what: String, timeout: Double = 90) async throws {
        try await StateWait.until("\(what): the event log's cursor at transaction height ≥ \(h) (it is at \(cursorHeight(path)))", timeout: timeout) {
            cursorHeight(path) >= h
        }
    }

    func load(_ dir: String, _ net: Devnet, seconds: Int) throws -> ChildProcess {
        try ChildProcess(
            path: CLITests.binary,
            arguments: ["chain", "load", "--network", dir, "--broker", net.brokerURL, "--identity", dir + "/tcc1.json", "--rate", "400", "--seconds", String(seconds),
                        "--batch", "8", "--in-flight", "1", "--json"],
            outputPath: dir + "/load-\(UUID().uuidString.prefix(4)).log")
    }

    /// The event log on an account of its own (`devnet add-party`): the
    /// load uses the devnet's client account, and one account has one connection.
    func events(_ dir: String, _ args: [String], log: String) throws -> ChildProcess {
        try ChildProcess(
            path: CLITests.binary, arguments: ["events", "--network", dir + "/parties/Replay1.json", "--genesis", dir, "--poll", "0.5"] + args,
            outputPath: log)
    }

    /// The block events of `group` in an event log file, in order.
    func blockHeights(_ lines: [JSON], _ group: String) -> [Int] {
        lines.filter { $0["event"]?.stringValue == "block" && $0["group"]?.stringValue == group }.compactMap { $0["height"]?.intValue }
    }

    func lines(_ path: String) throws -> [JSON] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map { try JSONParser.parse(Array($0.utf8)) }
    }

    @Test func aConsumerFromHeightOneGetsEveryBlockOnceThroughKillsRestartsStoppedNodesAndForgeries() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-events-\(UUID().uuidString.prefix(8))").path
        var children: [ChildProcess] = []
        defer {
            for c in children { c.terminate(grace: 1) }
            _ = try? run.efsc(["devnet", "down", "--dir", dir])
            try? FileManager.default.removeItem(atPath: dir)
        }
        #expect(try run.efsc(["devnet", "init", "--dir", dir]).code == 0)
        let up = try run.efsc(["devnet", "up", "--dir", dir], timeout: 180)
        try #require(up.code == 0, "\(up.out)")
        let net = try Devnet(dir: dir)
        #expect(try run.efsc(["devnet", "add-party", "--dir", dir, "--did", "did:efsc:devnet:Replay1"]).code == 0)

        // A history of hundreds of blocks before the consumer starts.
        var filled: UInt64 = 0
        for _ in 0..<20 where filled < 200 {
            let l = try load(dir, net, seconds: 4)
            #expect(l.wait(timeout: 120))
            filled = try await height(net)
        }
        try #require(filled >= 200, "the devnet committed only \(filled) blocks")

        let cursor = dir + "/events.cursor", out = dir + "/events.jsonl", log = dir + "/events.log"
        let follow = ["--follow", "--cursor", cursor, "--out", out]
        var ev = try events(dir, follow, log: log)
        children.append(ev)
        // Killed while it replays history, then restarted with its cursor.
        try await waitCursor(cursor, atLeast: 20, "history replay")
        ev.signal(SIGKILL)
        _ = ev.wait(timeout: 10)
        let killedAt = cursorHeight(cursor)
        ev = try events(dir, follow, log: log + ".2")
        children.append(ev)
        try await waitCursor(cursor, atLeast: filled, "history after a SIGKILL")
        #expect(cursorHeight(cursor) > killedAt)

        // Live blocks: killed again while following, then the broker restarts, then a node stops.
        var live = try load(dir, net, seconds: 900)
        children.append(live)
        try await waitCursor(cursor, atLeast: filled + 20, "live blocks")
        ev.signal(SIGKILL)
        _ = ev.wait(timeout: 10)
        ev = try events(dir, follow, log: log + ".3")
        children.append(ev)
        try await waitCursor(cursor, atLeast: cursorHeight(cursor) + 20, "live blocks after a SIGKILL")
        // The broker killed and restarted: the log's TLS connection comes back.
        let brokerPID = try #require(net.brokerPID)
        kill(brokerPID, SIGKILL)
        try await StateWait.until("the broker stopped", timeout: 10) { kill(brokerPID, 0) != 0 }
        let broker = try net.brokerProcess(dieWithParent: false)
        try broker.start()
        broker.detach()
        // The load gives up when its broker goes (fail-fast); a new one, once
        // the nodes answer again, keeps blocks coming.
        live.terminate(grace: 1)
        try await StateWait.until("the nodes answering after the broker restart", timeout: 60, every: 0.5) { try await height(net) > 0 }
        live = try load(dir, net, seconds: 900)
        children.append(live)
        try await waitCursor(cursor, atLeast: cursorHeight(cursor) + 20, "live blocks after a broker restart")
        #expect(try run.efsc(["devnet", "stop-node", "--dir", dir, "node1"]).code == 0)
        try await waitCursor(cursor, atLeast: cursorHeight(cursor) + 20, "live blocks with node1 stopped")
        #expect(try run.efsc(["devnet", "start-node", "--dir", dir, "node1"]).code == 0)

        // Forged blocks on a blocks topic, with node4's own account (node4 stopped):
        // each is refused with its reason and never emitted.
        live.terminate(grace: 2)
        #expect(try run.efsc(["devnet", "stop-node", "--dir", dir, "node4"]).code == 0)
        try await waitCursor(cursor, atLeast: try await height(net), "caught up before the forgeries")
        let node4 = try BrokerProfile(json: try #require(try JSONParser.parse(try String(contentsOfFile: "\(dir)/node4/config.json", encoding: .utf8))["brokerAuth"]), url: net.brokerURL)
        let forger = try MQTTClient(try node4.configuration(fallbackClientID: "node4"))
        try await forger.connect()
        let opBus = try await net.connectOperator()
        // Forged at the height the log is due to take next, again each round
        // (the chain may still move: a view change after node4 stopped commits a null block).
        var forged: [[UInt8]] = []
        try await StateWait.until("the event log's refusal lines for the forged blocks", timeout: 60, every: 0.5) {
            let at = cursorHeight(cursor)
            guard let real = try await ChainClient(bus: opBus).history("transaction", from: at, max: 1).blocks.first else { return false }
            var next = real
            next.header.height = at + 1
            next.header.parentHash = real.hash
            var round: [[UInt8]] = [next.encoded]  // a certificate over another block: bad-certificate
            var stranger = next
            let key = Ed25519SecretKey()
            stranger.certificate = (0..<3).map { CertificateEntry(replica: $0, signature: (try? key.sign(Array("commit".utf8))) ?? []) }
            round.append(stranger.encoded)  // signed by no genesis key: bad-certificate
            var orphan = next
            orphan.header.parentHash = Digest.sha256(Array("elsewhere".utf8))
            round.append(orphan.encoded)  // bad-parent
            var tampered = next
            tampered.transactions = tampered.transactions.isEmpty ? [Array("{}".utf8)] : [Array(tampered.transactions[0].reversed())] + tampered.transactions.dropFirst()
            round.append(tampered.encoded)  // bad-transactions-root
            for f in round { try await forger.publish(Topics.blocks("transaction", node: "node4"), payload: f, qos: .atLeastOnce) }
            forged += round
            let t = (try? String(contentsOfFile: log + ".3", encoding: .utf8)) ?? ""
            return ["bad-certificate", "bad-parent", "bad-transactions-root"].allSatisfy { t.contains("refused a block from live: \($0)") }
        }
        await opBus.disconnect()
        await forger.disconnect()
        #expect(try run.efsc(["devnet", "start-node", "--dir", dir, "node4"]).code == 0)
        // The real next block is taken after the forgeries.
        let more = try load(dir, net, seconds: 3)
        #expect(more.wait(timeout: 120))
        let end = try await height(net)
        try await waitCursor(cursor, atLeast: end, "the real blocks after the forgeries")
        ev.signal(SIGTERM)
        _ = ev.wait(timeout: 10)

        // Every block exactly once, in order, from height 1; none of the forgeries.
        let all = try lines(out)
        let tx = blockHeights(all, "transaction")
        #expect(tx == Array(1...Int(cursorHeight(cursor))), "transaction heights: \(tx.count) events, first gap or duplicate near \(zip(tx, 1...).first { $0 != $1 }.map { "\($0)" } ?? "-")")
        let id = blockHeights(all, "identity")
        #expect(!id.isEmpty && id == Array(1...id.count))
        let forgedHashes = Set(forged.compactMap { try? Block(decoding: $0) }.map { Hex.encode($0.hash) })
        #expect(!all.contains { $0["event"]?.stringValue == "block" && forgedHashes.contains($0["hash"]?.stringValue ?? "") })
        let txEvents = all.filter { $0["event"]?.stringValue == "transaction" }
        #expect(!txEvents.isEmpty && txEvents.allSatisfy { $0["receipt"]?["status"]?.stringValue != nil })
        #expect(all.contains { $0["event"]?.stringValue == "evidence.anchored" && $0["sequence"] != nil && $0["channelId"] != nil })

        // The Python replay example emits what efsc events --verify-only emits.
        _ = try run.efsc(["devnet", "add-party", "--dir", dir, "--did", "did:efsc:devnet:PyReplay1"])
        let py = dir + "/py.jsonl", sw = dir + "/sw.jsonl"
        let pyRun = try ChildProcess(
            path: "/usr/bin/python3",
            arguments: [Self.root + "/examples/python/replay.py", "--profile", dir + "/parties/PyReplay1.json", "--genesis", dir + "/network.json",
                        "--group", "transaction", "--until", "40"],
            outputPath: py)
        #expect(pyRun.wait(timeout: 180) && pyRun.exitCode == 0, "\((try? String(contentsOfFile: py, encoding: .utf8))?.suffix(1500) ?? "")")
        let swRun = try ChildProcess(
            path: CLITests.binary, arguments: ["events", "--network", dir, "--verify-only", "--group", "transaction", "--until", "40", "--out", sw],
            outputPath: dir + "/sw.log")
        #expect(swRun.wait(timeout: 60) && swRun.exitCode == 0)
        let pyText = try String(contentsOfFile: py, encoding: .utf8), swText = try String(contentsOfFile: sw, encoding: .utf8)
        #expect(!swText.isEmpty && pyText == swText, "python \(pyText.count) bytes, efsc \(swText.count) bytes")

        // ledger replay of a stopped node's chain reproduces every state root;
        // a tampered stored block is reported at its height.
        #expect(try run.efsc(["devnet", "down", "--dir", dir]).code == 0)
        let good = try run.efsc(["ledger", "replay", "--genesis", dir, "--source", dir + "/node2/data", "--json"], timeout: 300)
        #expect(good.code == 0 && good.json?["consistent"] == .bool(true), "\(good.out.suffix(500))")
        #expect((good.json?["rootsChecked"]?.intValue ?? 0) >= Int(end) - 1)
        let copy = dir + "/node2-copy"
        try FileManager.default.copyItem(atPath: dir + "/node2/data", toPath: copy)
        do {
            let db = try RocksDB(path: copy + "/transaction", columnFamilies: ["blocks", "txindex", "evidence", "state", "meta"])
            let key: [UInt8] = (0..<8).reversed().map { UInt8(truncatingIfNeeded: UInt64(7) >> UInt64(8 * $0)) }
            var b = try Block(decoding: try #require(try db.get(key, in: db.family("blocks"))))
            b.header.timestamp += 1
            let batch = db.makeBatch()
            batch.put(key, b.encoded, in: db.family("blocks"))
            try db.write(batch, sync: true)
        }
        let bad = try run.efsc(["ledger", "replay", "--genesis", dir, "--source", copy, "--json"], timeout: 300)
        #expect(bad.code == 1, "\(bad.out.suffix(500))")
        #expect(bad.json?["failure"]?["height"]?.intValue == 7 && bad.json?["failure"]?["group"]?.stringValue == "transaction", "\(bad.out.suffix(500))")
    }
}
}
