import EFSCBus
import EFSCChannel
import EFSCCore
import EFSCCredentials
import EFSCDevnet
import EFSCIdentity
import EFSCSDK
import Foundation
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A hostile client on a live devnet: while a trade settles and load
/// commits, it sends garbage and mutated copies of captured real messages on
/// every topic family for 30 s. Afterwards every process is alive, the trade
/// completed every settlement, the chain still commits, all nodes agree on
/// the block hashes, and the refusals show in the nodes' metrics.
/// On the secure default the attacker is an authenticated party (an account
/// of its own: the broker drops what its role does not allow, the rest
/// reaches the nodes and the TCC); on an `--insecure` network it is
/// anonymous and can write every topic.
extension NetworkSuites {
@Suite(.serialized) struct HostileClientTests {
    final class Captured: @unchecked Sendable {
        let lock = Lock()
        var messages: [(topic: String, payload: [UInt8])] = []
        func add(_ m: MQTTMessage) {
            lock.withLock { if messages.count < 2000 { messages.append((m.topic, m.payload)) } }
        }
        var all: [(topic: String, payload: [UInt8])] { lock.withLock { messages } }
    }

    /// A deterministic generator, so a failure names a seed that replays it.
    typealias Rng = SplitMix64

    static let hostileValues: [JSON] = [
        -1, 0, 1e300, -1e300, 9_007_199_254_740_992, 1.8446744073709552e19, 0.5, "", .string(String(repeating: "z", count: 20_000)),
        .array([]), .object([:]), .null, true, .string("did:efsc:devnet:" + String(repeating: "1", count: 5000)), .string("^(a|a)*$"),
    ]

    /// A mutated copy: bytes flipped, cut or repeated; or, for JSON, one leaf replaced by a hostile value.
    static func mutate(_ p: [UInt8], _ r: inout Rng) -> [UInt8] {
        var b = p
        switch r.below(5) {
        case 0 where !b.isEmpty:
            for _ in 0..<(1 + r.below(8)) { b[r.below(b.count)] ^= UInt8(1 << r.below(8)) }
        case 1 where !b.isEmpty: b = Array(b.prefix(r.below(b.count)))
        case 2: b += b.prefix(r.below(b.count + 1))
        default:
            guard let j = try? JSONParser.parse(b) else { return b.reversed() }
            var rr = r
            let m = replaceLeaf(j, &rr)
            r = rr
            return (try? JCS.canonicalize(m)) ?? b
        }
        return b
    }

    static func replaceLeaf(_ j: JSON, _ r: inout Rng) -> JSON {
        switch j {
        case .object(var o) where !o.isEmpty:
            let k = o.keys[r.below(o.count)]
            o[k] = r.below(3) == 0 ? hostileValues[r.below(hostileValues.count)] : replaceLeaf(o[k]!, &r)
            return .object(o)
        case .array(var a) where !a.isEmpty:
            let i = r.below(a.count)
            a[i] = replaceLeaf(a[i], &r)
            return .array(a)
        default:
            return hostileValues[r.below(hostileValues.count)]
        }
    }

    static func garbage(_ r: inout Rng) -> [UInt8] {
        if r.below(2) == 0 { return (0..<r.below(3000)).map { _ in UInt8(truncatingIfNeeded: r.next()) } }
        var o = JSONObject()
        for k in ["group", "sender", "nonce", "op", "args", "proof", "from", "max", "params", "type", "channelId", "event", "tic", "did"] where r.below(2) == 0 {
            o[k] = hostileValues[r.below(hostileValues.count)]
        }
        return (try? JCS.canonicalize(.object(o))) ?? []
    }

    func metrics(port: Int) async -> String {
        guard let url = URL(string: "http://127.0.0.1:\(port)/metrics"), let (data, _) = try? await URLSession.shared.data(from: url) else { return "" }
        return String(decoding: data, as: UTF8.self)
    }

    /// Alive and not a zombie (`kill(pid, 0)` succeeds for both).
    func alive(_ pid: Int) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return false }
        return !stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }

    @Test(arguments: [false, true]) func hostileTrafficOnEveryTopicFamilyHarmsNothing(insecure: Bool) async throws {
        let e2e = ChannelEndToEndTests()
        let net = try e2e.startNet(insecure: insecure)
        defer {
            _ = try? e2e.run(net, ["devnet", "down", "--dir", net.dir])
            try? FileManager.default.removeItem(atPath: net.dir)
        }
        let nodes = ["node1", "node2", "node3", "node4"]
        // Capture real traffic while the trade starts.
        let captured = Captured()
        // (On the secure network, what the operator account may read.)
        let tap = insecure ? try await e2e.anonymous(net, "tap-\(UUID().uuidString.prefix(6))") : try await Devnet(dir: net.dir).connectOperator()
        let readable = [Topics.blocks("+", node: "+"), Topics.status("+", node: "+"), Topics.tccStatus("+"), Topics.presenceAll]
        for f in insecure ? [Topics.root + "/#"] : readable { _ = try await tap.subscribe(f, qos: .atMostOnce) { captured.add($0) } }
        let (provider, consumers, channels) = try await e2e.openTrades(net, consumers: 1, every: 5)
        let (channel, tic) = channels[0]
        let p = try provider.session(channel: channel, tic: tic)
        let c = try consumers[0].session(channel: channel, tic: tic)
        try await p.open()
        try await c.open()
        let first = DateTime.currentTime() - 1000
        for _ in 1...3 { _ = try await p.settle(usage: 0.0001, firstStart: first, timeout: 60) }
        await tap.disconnect()
        let real = captured.all
        #expect(real.count > (insecure ? 20 : 5), "captured \(real.count) real messages")
        let mallory = try PartyIdentity.create(network: "devnet")

        // The families an attacker writes to (status topics excepted: they
        // are reports, and forged ones would only fool this test's own reading).
        let groups = ["identity", "transaction"]
        var families: [String] = [
            Topics.tccControl("transaction"), Topics.channelUp(channel, party: PartyName.of(consumers[0].me.did)),
            Topics.channelUp(channel, party: PartyName.of(mallory.did)),
        ]
        for g in groups {
            families += [Topics.tx(g), Topics.query(g, "block"), Topics.query(g, "did"), Topics.query(g, "evidence"), Topics.query(g, "match")]
            for n in nodes {
                families += [Topics.sync(g, node: n), Topics.pbft(g, from: n), Topics.direct(g, to: n), Topics.blocks(g, node: n), Topics.query(g, "tx", node: n)]
            }
        }

        // Load that must commit throughout, and the trade that must complete.
        let load = Task { try e2e.run(net, ["chain", "load", "--network", net.dir, "--identity", net.dir + "/tcc1.json", "--rate", "20", "--seconds", "30", "--drain", "60", "--json"]) }
        let trade = Task { () -> Int in
            for _ in 4...30 { _ = try await p.settle(usage: 0.0001, firstStart: first, timeout: 120) }
            return p.lastSequence
        }
        // 30 s of hostile traffic.
        let attacker = insecure ? try await e2e.anonymous(net, "attacker-\(UUID().uuidString.prefix(6))") : try await e2e.party(net, mallory.did)
        var rng = Rng(seed: 20_261_201)
        var sent = 0
        let until = Date().addingTimeInterval(30)
        while Date() < until {
            for _ in 0..<50 {
                let topic: String
                let payload: [UInt8]
                if rng.below(3) == 0 || real.isEmpty {
                    topic = families[rng.below(families.count)]
                    payload = Self.garbage(&rng)
                } else {
                    let m = real[rng.below(real.count)]
                    topic = rng.below(4) == 0 ? families[rng.below(families.count)] : m.topic
                    guard !topic.contains("/status/") else { continue }
                    payload = Self.mutate(m.payload, &rng)
                }
                try? attacker.publishNow(topic, payload: payload)
                sent += 1
            }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        await attacker.disconnect()

        // Every process is alive.
        let st = try e2e.run(net, ["devnet", "status", "--dir", net.dir, "--json"]).json
        let pids = ((st?["nodes"]?.arrayValue ?? []) + (st?["tccs"]?.arrayValue ?? [])).compactMap { ($0["id"]?.stringValue, $0["pid"]?.intValue) }
        #expect(pids.count == 5, "\(st?.compactString() ?? "no status")")
        for case let (id?, pid?) in pids { #expect(alive(pid), "\(id) (pid \(pid)) died under \(sent) hostile messages") }
        // The trade completed every settlement.
        let last = try await trade.value
        #expect(last == 30, "the trade reached sequence \(last) of 30")
        _ = try await c.waitFor(sequence: 30, timeout: 60)
        // The load committed everything it submitted, and the chain still commits.
        let l = try await load.value.json
        #expect((l?["submitted"]?.intValue ?? 0) > 0 && l?["committed"]?.intValue == l?["submitted"]?.intValue, "\(l?.compactString() ?? "no load result")")
        let after = try e2e.run(net, ["chain", "load", "--network", net.dir, "--identity", net.dir + "/tcc1.json", "--rate", "10", "--seconds", "1", "--json"]).json
        #expect(after?["committed"]?.intValue == 10, "\(after?.compactString() ?? "")")
        // All nodes agree.
        let height = DevnetIntegrationTests().transaction(try DevnetIntegrationTests().status(net.dir), "node1").height
        _ = try DevnetIntegrationTests().converged(net.dir, nodes: nodes, min: height, timeout: 60)
        // And the refusals show in the metrics.
        var refusals = 0
        for n in nodes {
            let cfg = try JSONParser.parse(try String(contentsOfFile: "\(net.dir)/\(n)/config.json", encoding: .utf8))
            let text = await metrics(port: cfg["metricsPort"]?.intValue ?? 0)
            for line in text.split(separator: "\n") where line.hasPrefix("efsc_refusals_total{") {
                refusals += Int(Double(line.split(separator: " ").last ?? "0") ?? 0)
            }
        }
        #expect(refusals > 0, "no refusals in the nodes' metrics after \(sent) hostile messages")
        // The TCC's too: garbage on the channel's up topic is refused by reason.
        let tccConfig = try JSONParser.parse(try String(contentsOfFile: "\(net.dir)/tcc1/config.json", encoding: .utf8))
        let tccText = await metrics(port: tccConfig["metricsPort"]?.intValue ?? 0)
        let tccRefusals = tccText.split(separator: "\n").filter { $0.hasPrefix("efsc_tcc_refusals_total{") }
            .map { Int(Double($0.split(separator: " ").last ?? "0") ?? 0) }.reduce(0, +)
        #expect(tccRefusals > 0, "no refusals in the TCC's metrics: \(tccText.prefix(500))")
        await p.detach()
        await c.detach()
    }
}
}
