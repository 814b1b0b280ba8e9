import EFSCBus
import EFSCCore
import EFSCLedger
import EFSCConsensus
import EFSCChannel
import EFSCDevnet
import Foundation
import Testing

/// Four node processes and a broker, driven through the CLI as an operator
/// would: commits, kill -9 of the leader, catch-up by sync, forged
/// consensus traffic ignored, and a clean shutdown with no processes left.
extension NetworkSuites {
@Suite(.serialized) struct DevnetIntegrationTests {
    struct Run {
        let code: Int32
        let out: String
        var json: JSON? { try? JSONParser.parse(out) }
    }

    func efsc(_ args: [String], timeout: Double = 120) throws -> Run {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-run-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let p = try ChildProcess(path: CLITests.binary, arguments: args, outputPath: out)
        if !p.wait(timeout: timeout) {
            p.terminate(grace: 2)
            Issue.record("efsc \(args.joined(separator: " ")) timed out")
        }
        return Run(code: p.exitCode ?? -1, out: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "")
    }

    /// The devnet's client profile (client.json) as a client configuration.
    static func clientConfiguration(_ dir: String, _ fallbackID: String) throws -> MQTTConfiguration {
        let net = try Devnet(dir: dir)
        return try net.profile(net.clientProfilePath).configuration(fallbackClientID: fallbackID)
    }

    func status(_ dir: String) throws -> [String: JSON] {
        let r = try efsc(["devnet", "status", "--dir", dir, "--json"])
        var out: [String: JSON] = [:]
        for n in r.json?["nodes"]?.arrayValue ?? [] { out[n["id"]!.stringValue!] = n }
        return out
    }

    func transaction(_ s: [String: JSON], _ node: String) -> (height: Int, view: Int, hash: String, leader: Bool) {
        let g = s[node]?["groups"]?["transaction"]
        return (g?["height"]?.intValue ?? -1, g?["view"]?.intValue ?? -1, g?["lastBlockHash"]?.stringValue ?? "", g?["isLeader"]?.boolValue ?? false)
    }

    /// Waits until every running node reports the same transaction-group hash at height ≥ `min`.
    func converged(_ dir: String, nodes: [String], min: Int, timeout: Double = 30) throws -> [String: JSON] {
        let deadline = Date().addingTimeInterval(timeout)
        var s: [String: JSON] = [:]
        repeat {
            s = try status(dir)
            let views = nodes.map { transaction(s, $0) }
            if views.allSatisfy({ $0.height >= min }) && Set(views.map(\.hash)).count == 1 && Set(views.map(\.height)).count == 1 { return s }
            usleep(300_000)
        } while Date() < deadline
        Issue.record("nodes did not converge: \(nodes.map { "\($0): \(transaction(s, $0))" })")
        return s
    }

    /// Fetches the transaction group's history from height 1 over the
    /// `history` query and checks what a replay tool must: every height once,
    /// in order, parent links, transactions roots, and commit certificates
    /// of 2f+1 of the genesis keys; a height not committed is refused by name.
    static func checkHistory(_ dir: String, upTo top: Int) async throws {
        let net = try Devnet(dir: dir)
        let keys = try net.network["nodes"]!.arrayValue!.map { try Ed25519PublicKey(multibase: $0["publicKeyMultibase"]!.stringValue!) }
        let bus = try await net.connect(profile: net.clientProfilePath)
        defer { Task { await bus.disconnect() } }
        let chain = ChainClient(bus: bus)
        var next: UInt64 = 1
        var previous: [UInt8]? = nil
        var pages = 0
        while next <= UInt64(top) {
            let page = try await chain.history("transaction", from: next, max: 7, node: pages % 2 == 0 ? nil : "node3")
            pages += 1
            try #require(!page.blocks.isEmpty && page.blocks.count <= 7, "an empty page from \(next)")
            for b in page.blocks {
                #expect(b.header.height == next, "height \(b.header.height) where \(next) was due")
                if let previous { #expect(b.header.parentHash == previous, "block \(next) does not link to its parent") }
                #expect(b.header.transactionsRoot == Block.transactionsRoot(b.transactions))
                let isNull = b.transactions.isEmpty && b.header.proposer == keys.count
                let signers = CommitCertificate.validSigners(
                    group: "transaction", view: b.certificateView, seq: b.header.height, digest: Digest.sha256(isNull ? [] : b.body),
                    entries: b.certificate.map { ($0.replica, $0.signature) }, members: keys)
                #expect(CommitCertificate.isQuorum(signers, members: keys.count), "block \(next): \(signers) valid commit signatures")
                previous = b.hash
                next += 1
            }
        }
        #expect(pages >= 2 || top <= 7)
        do {
            _ = try await chain.history("transaction", from: UInt64(top) + 10_000)
            Issue.record("a height not committed gave a page")
        } catch let e as HistoryError {
            #expect(e.code == .notCommitted && e.height.map { $0 >= UInt64(top) } == true, "\(e)")
        }
        do {
            _ = try await chain.history("transaction", from: 0)
            Issue.record("height 0 gave a page")
        } catch let e as HistoryError {
            #expect(e.code == .badQuery, "\(e)")
        }
    }

    @Test func fourNodesCommitSurviveLeaderCrashAndCatchUp() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-devnet-\(UUID().uuidString.prefix(8))").path
        defer {
            _ = try? efsc(["devnet", "down", "--dir", dir])
            try? FileManager.default.removeItem(atPath: dir)
        }
        #expect(try efsc(["devnet", "init", "--dir", dir, "--nodes", "4"]).code == 0)
        let up = try efsc(["devnet", "up", "--dir", dir])
        #expect(up.code == 0, "\(up.out)")
        let nodes = ["node1", "node2", "node3", "node4"]

        // Commits happen, and every node has the same blocks.
        let load = try efsc(["chain", "load", "--network", dir, "--identity", dir + "/tcc1.json", "--rate", "40", "--seconds", "2", "--json"])
        #expect(load.json?["committed"]?.intValue == 80, "\(load.out)")
        // Closed loop: never more than two transactions await receipts, and every one submitted commits.
        let closed = try efsc(["chain", "load", "--network", dir, "--identity", dir + "/tcc1.json", "--rate", "1000", "--seconds", "1", "--in-flight", "2", "--batch", "8", "--json"])
        let sent = closed.json?["submitted"]?.intValue ?? 0
        #expect(sent >= 1 && closed.json?["committed"]?.intValue == sent, "\(closed.out)")
        #expect((1...2).contains(closed.json?["maxInFlight"]?.intValue ?? 0), "\(closed.out)")
        var s = try converged(dir, nodes: nodes, min: 1)
        let before = transaction(s, "node1")
        let block = try efsc(["chain", "block", "--network", dir, "--group", "transaction", "--height", String(before.height), "--node", "node3", "--json"])
        #expect(block.json?["hash"]?.stringValue == before.hash)

        // The TCC's DID (registered by the load generator) resolves from the identity chain on any node.
        let tcc = try JSONParser.parse(try String(contentsOfFile: dir + "/tcc1.json", encoding: .utf8))
        let did = try efsc(["chain", "did", "resolve", "--network", dir, "--node", "node4", tcc["did"]!.stringValue!, "--json"])
        #expect(did.json?["didDocument"]?["id"] == tcc["did"], "\(did.out)")
        let before0 = try efsc(["chain", "did", "resolve", "--network", dir, "--at-height", "0", tcc["did"]!.stringValue!])
        #expect(before0.code == 1)
        let unknown = try efsc(["chain", "did", "resolve", "--network", dir, "did:efsc:devnet:nobody"])
        #expect(unknown.code == 1)

        // History from height 1, page by page, as any client may fetch it:
        // every block once, in order, linked, each with 2f+1 valid commit signatures.
        try await Self.checkHistory(dir, upTo: before.height)

        // Prometheus metrics: height, view, pool, commit latency, messages.
        let cfg = try JSONParser.parse(try String(contentsOfFile: dir + "/node2/config.json", encoding: .utf8))
        let metrics = try Self.httpGet(port: cfg["metricsPort"]!.intValue!, path: "/metrics")
        for name in ["efsc_chain_height{group=\"transaction\"}", "efsc_pbft_view", "efsc_pending_pool", "efsc_commit_latency_seconds_bucket", "efsc_consensus_messages_in_total"] {
            #expect(metrics.contains(name), "metrics lack \(name)")
        }

        // Forged consensus traffic (wrong key, garbage) is ignored.
        var c = try Self.clientConfiguration(dir, "forger")
        c.offlinePolicy = .failFast
        let forger = try MQTTClient(c)
        await Task {
            try? await forger.connect()
            for i in 0..<50 {
                try? await forger.publish(Topics.pbft("transaction", from: "node2"), payload: Digest.randomBytes(40 + i), qos: .atMostOnce)
            }
            await forger.disconnect()
        }.value
        // A malformed transaction, or JSON that is not an object, is refused
        // at once with a reply naming the problem.
        let replies = Guarded<[String]>([])
        var rc = try Self.clientConfiguration(dir, "bad-tx")
        rc.offlinePolicy = .failFast
        let sender = try MQTTClient(rc)
        await Task {
            try? await sender.connect()
            for payload in ["{\"group\":", "[1,2]"] {
                let r = try? await sender.request(Topics.tx("transaction"), payload: Array(payload.utf8), timeout: 10)
                replies.withLock { $0.append(r.map { String(decoding: $0.payload, as: UTF8.self) } ?? "no reply") }
            }
            await sender.disconnect()
        }.value
        let got = replies.withLock { $0 }
        #expect(got.count == 2 && got[0].contains("rejected") && got[0].contains("transaction: malformed JSON at byte"), "\(got)")
        #expect(got.count == 2 && got[1].contains("transaction is not a JSON object"), "\(got)")

        // kill -9 the transaction leader: a view change happens and commits resume.
        let leader = try #require(nodes.first { transaction(s, $0).leader })
        #expect(try efsc(["devnet", "stop-node", "--dir", dir, "--kill", leader]).code == 0)
        let rest = nodes.filter { $0 != leader }
        let after = try efsc(["chain", "load", "--network", dir, "--identity", dir + "/tcc1.json", "--rate", "20", "--seconds", "2", "--drain", "40", "--json"])
        #expect(after.json?["committed"]?.intValue == 40, "\(after.out)")
        s = try converged(dir, nodes: rest, min: before.height + 1)
        #expect(rest.allSatisfy { transaction(s, $0).view >= 1 })

        // The crashed node restarts and catches up by sync to the same chain.
        #expect(try efsc(["devnet", "start-node", "--dir", dir, leader]).code == 0)
        let target = transaction(s, rest[0]).height
        s = try converged(dir, nodes: nodes, min: target, timeout: 40)
        // Nothing committed was lost: every node verifies its ledger offline after shutdown.
        #expect(try efsc(["devnet", "down", "--dir", dir]).code == 0)
        for n in nodes {
            // A clean stop flushed the ledger: no write-ahead log is left to replay.
            let ledgerDir = "\(dir)/\(n)/data/transaction"
            let wal = try FileManager.default.contentsOfDirectory(atPath: ledgerDir).filter { $0.hasSuffix(".log") }
                .map { (try? FileManager.default.attributesOfItem(atPath: ledgerDir + "/" + $0)[.size] as? Int) ?? 0 }.reduce(0, +)
            #expect(wal < 4096, "\(n): \(wal) bytes of WAL after a clean stop")
            let v = try efsc(["ledger", "verify", "--dir", "\(dir)/\(n)/data/transaction", "--json"])
            #expect(v.code == 0, "\(n): \(v.out)")
            #expect((v.json?["height"]?.intValue ?? 0) >= target)
        }
        let st = try status(dir)
        #expect(nodes.allSatisfy { st[$0]?["running"]?.boolValue == false })
    }

    /// A node whose key is not the one in genesis (corrupted or foreign) is
    /// ignored: with it and two honest nodes up there is no quorum, so nothing
    /// commits; once a third honest node is back, commits resume.
    /// The Fig. 3 benchmark end to end, small: its own devnet, the load, the
    /// one-replica limit beside it, and nothing left running.
    @Test func benchOnchainReportsThroughputStorageAndItsCeiling() throws {
        let r = try efsc(["bench", "onchain", "--m", "2", "--seconds", "1", "--batch", "16", "--floor-seconds", "0.2", "--json"], timeout: 180)
        #expect(r.code == 0, "\(r.out)")
        let row = try #require(r.json?.arrayValue?.first)
        #expect(row["m"]?.intValue == 2)
        for k in ["evidencesPerSecond", "bytesPerEvidence", "commitP50Millis", "commitP99Millis", "replicaEvidencesPerSecond", "ceilingEvidencesPerSecond", "ratioToCeiling"] {
            #expect((row[k]?.doubleValue ?? 0) > 0, "\(k) in \(row.compactString())")
        }
        let ceiling = try #require(row["ceilingEvidencesPerSecond"]?.doubleValue)
        let replica = try #require(row["replicaEvidencesPerSecond"]?.doubleValue)
        let cores = try #require(row["cores"]?.doubleValue)
        #expect(abs(ceiling - replica * cores / 4) <= 1)
        // Its devnet lived in a directory named efsc-bench-onchain-<pid>-<M>.
        let running = (try FileManager.default.contentsOfDirectory(atPath: "/proc")).filter { pid in
            guard Int(pid) != nil, let cmd = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            return String(decoding: cmd, as: UTF8.self).contains("efsc-bench-onchain-")
        }
        #expect(running.isEmpty, "processes of the benchmark's devnet are still running: \(running)")
    }

    @Test func aNodeWithAForeignKeyIsIgnored() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-foreign-\(UUID().uuidString.prefix(8))").path
        defer {
            _ = try? efsc(["devnet", "down", "--dir", dir])
            try? FileManager.default.removeItem(atPath: dir)
        }
        #expect(try efsc(["devnet", "init", "--dir", dir]).code == 0)
        // node4 runs with a key of its own and a genesis edited to match it
        // (a node refuses a key that is not its genesis entry); the others
        // keep the real genesis.
        var cfg = try JSONParser.parse(try String(contentsOfFile: dir + "/node4/config.json", encoding: .utf8)).objectValue!
        let foreign = Ed25519SecretKey()
        cfg["secretKeyMultibase"] = .string(foreign.multibase)
        var members = cfg["members"]!.arrayValue!
        members[3] = ["id": "node4", "publicKeyMultibase": .string(foreign.publicKey.multibase)]
        cfg["members"] = .array(members)
        try JSON.object(cfg).prettyString().write(toFile: dir + "/node4/config.json", atomically: true, encoding: .utf8)
        let up = try efsc(["devnet", "up", "--dir", dir])
        #expect(up.code == 0, "\(up.out)")
        // Three honest nodes are a quorum (2f+1 = 3).
        let load = try efsc(["chain", "load", "--network", dir, "--identity", dir + "/tcc1.json", "--rate", "10", "--seconds", "1", "--json"])
        #expect(load.json?["committed"]?.intValue == 10, "\(load.out)")
        _ = try converged(dir, nodes: ["node1", "node2", "node3"], min: 1)
        // Two honest nodes and the foreign one are not: the foreign votes do not count.
        #expect(try efsc(["devnet", "stop-node", "--dir", dir, "node3"]).code == 0)
        let stuck = try efsc(["chain", "load", "--network", dir, "--identity", dir + "/tcc1.json", "--rate", "5", "--seconds", "1", "--drain", "4", "--json"])
        #expect(stuck.json?["committed"]?.intValue == 0, "\(stuck.out)")
        // The honest node returns: commits resume, and the pending transactions commit too.
        #expect(try efsc(["devnet", "start-node", "--dir", dir, "node3"]).code == 0)
        let resumed = try efsc(["chain", "load", "--network", dir, "--identity", dir + "/tcc1.json", "--rate", "5", "--seconds", "1", "--drain", "60", "--json"])
        #expect(resumed.json?["committed"]?.intValue == 5, "\(resumed.out)")
        _ = try converged(dir, nodes: ["node1", "node2", "node3"], min: 2, timeout: 40)
    }

    /// node1's process — the primary of view 0 — replaced by a Byzantine
    /// program holding node1's real key (`efsc devnet byzantine`), sending
    /// every crafted attack while load runs: bad blocks as primary, the
    /// new-view for 2⁶⁴−1 with fabricated view-changes, foreign
    /// certificates, digest floods, heavy replays. The three honest nodes
    /// refuse its blocks, change view away from it, stay up, commit
    /// everything, agree on the block hashes, and log the refusals by reason.
    /// On the secure default it attacks with node1's own broker account; on
    /// an `--insecure` network the same attacks come over the anonymous broker.
    @Test(arguments: [false, true]) func aByzantinePrimaryWithARealKeyCannotForkCrashOrStallTheOthers(insecure: Bool) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-byz-\(UUID().uuidString.prefix(8))").path
        defer {
            _ = try? efsc(["devnet", "down", "--dir", dir])
            try? FileManager.default.removeItem(atPath: dir)
        }
        #expect(try efsc(["devnet", "init", "--dir", dir] + (insecure ? ["--insecure"] : [])).code == 0)
        let up = try efsc(["devnet", "up", "--dir", dir])
        #expect(up.code == 0, "\(up.out)")
        let honest = ["node2", "node3", "node4"]
        #expect(try efsc(["devnet", "stop-node", "--dir", dir, "node1"]).code == 0)
        // A running node cannot be replaced.
        #expect(try efsc(["devnet", "byzantine", "--dir", dir, "--seconds", "1", "node2"]).code == 1)
        let out = dir + "/byzantine.out"
        let byz = try ChildProcess(path: CLITests.binary, arguments: ["devnet", "byzantine", "--dir", dir, "--seconds", "15", "--json", "node1"], outputPath: out)
        // Load while it attacks: all of it commits on the three honest nodes.
        let load = try efsc(["chain", "load", "--network", dir, "--identity", dir + "/tcc1.json", "--rate", "40", "--seconds", "5", "--drain", "60", "--json"])
        #expect(load.json?["committed"]?.intValue == 200, "\(load.out)")
        if !byz.wait(timeout: 60) {
            byz.terminate(grace: 2)
            Issue.record("the Byzantine program did not finish")
        }
        let report = try JSONParser.parse(try String(contentsOfFile: out, encoding: .utf8))
        #expect((report["observed"]?.intValue ?? 0) > 0, "\(report)")
        for a in ["bad-blocks", "fabricated-view-changes", "far-views", "foreign-certificates", "digest-flood", "heavy-replay"] {
            #expect((report["sent"]?[a]?.intValue ?? 0) > 0, "\(a): \(report)")
        }
        // Still up, still committing after the attack, and in agreement.
        let after = try efsc(["chain", "load", "--network", dir, "--identity", dir + "/tcc1.json", "--rate", "20", "--seconds", "1", "--json"])
        #expect(after.json?["committed"]?.intValue == 20, "\(after.out)")
        let s = try converged(dir, nodes: honest, min: 2)
        for n in honest {
            #expect(s[n]?["running"]?.boolValue == true, "\(n) is not running")
            #expect(transaction(s, n).view >= 1, "\(n) did not leave the Byzantine primary's view")
        }
        // Each honest node refused the attack by reason, and none halted.
        for n in honest {
            let log = (try? String(contentsOfFile: "\(dir)/\(n)/node.log", encoding: .utf8)) ?? ""
            for reason in ["bad-proposal", "out-of-range", "bad-new-view"] {
                #expect(log.contains("refused (\(reason))"), "\(n) logged no \(reason): \(log.suffix(2000))")
            }
            #expect(!log.contains("FATAL") && !log.contains("DIVERGENCE"), "\(n): \(log.suffix(2000))")
        }
    }

    /// A minimal HTTP GET over a loopback socket.
    static func httpGet(port: Int, path: String) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        let ok = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard ok else { return "" }
        let req = Array("GET \(path) HTTP/1.0\r\n\r\n".utf8)
        _ = req.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buf, buf.count)
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }
}
}
