@testable import EFSCContracts
import EFSCCore
import EFSCLedger
import Foundation
import Testing

@testable import EFSCReplay

@Suite struct EventCursorTests {
    func tmp() -> String { FileManager.default.temporaryDirectory.appendingPathComponent("efsc-cursor-\(UUID().uuidString.prefix(8))").path }

    @Test func aCursorRoundTripsAndIsReplacedWhole() throws {
        let path = tmp()
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(try EventCursor.load(path) == nil)
        var c = EventCursor(genesis: "abc")
        c.groups["transaction"] = .init(height: 42, hash: Digest.sha256([1]), anchor: 7)
        c.outputBytes = 1234
        try c.save(path)
        #expect(try EventCursor.load(path) == c)
        c.groups["transaction"]!.height = 43
        try c.save(path)
        #expect(try EventCursor.load(path)?.groups["transaction"]?.height == 43)
        #expect(!FileManager.default.fileExists(atPath: path + ".tmp"))
        try Array("{\"version\":2}".utf8).withUnsafeBufferPointer { try Data(buffer: $0).write(to: URL(fileURLWithPath: path)) }
        #expect(throws: ReplayError.self) { try EventCursor.load(path) }
    }

    @Test func anOutputFileIsCutBackToTheCursor() throws {
        let path = tmp()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let o = try EventOutput(path: path, truncateTo: 0)
        o.add(["event": "block", "height": 1])
        try o.flush()
        let complete = o.bytes
        o.add(["event": "block", "height": 2])
        try o.flush()
        // A crash after writing block 2 but before its cursor: the resumed log cuts it off.
        let resumed = try EventOutput(path: path, truncateTo: complete)
        #expect(resumed.bytes == complete)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text == "{\"event\":\"block\",\"height\":1}\n")
    }
}

@Suite struct LiveBlocksTests {
    let t = TestChain()

    @Test func holdsOnlyDueHeightsAFewCopiesEachAndPeeksWithoutDecoding() {
        let c = t.chain(3)
        let live = LiveBlocks()
        #expect(LiveBlocks.peek(c[1].encoded)! == ("transaction", 2))
        #expect(LiveBlocks.peek([0x45, 0x42, 1, 200]) == nil)
        live.add(c[0].encoded)  // no due height yet: dropped
        live.setDue("transaction", 2)
        live.add(c[0].encoded)  // below the height due: dropped
        live.add(c[1].encoded)
        live.add(c[1].encoded)  // the same copy twice is held once
        for k in 0..<20 {  // distinct copies of one height: at most replayCopiesPerHeight
            var x = c[1]
            x.certificateView = UInt64(k + 1)
            live.add(x.encoded)
        }
        #expect(live.take("transaction", 2).count == WireLimits.replayCopiesPerHeight)
        #expect(live.take("transaction", 2).isEmpty)
        var far = c[2]
        far.header.height = 2 + UInt64(WireLimits.replayBufferedHeights)
        live.add(far.encoded)  // beyond the window: dropped (history fills it)
        #expect(live.take("transaction", far.header.height).isEmpty)
        #expect(live.dropped >= 3)
        live.add(c[2].encoded)
        #expect(live.highestSeen("transaction") == 3)
        live.setDue("transaction", 4)
        #expect(live.take("transaction", 3).isEmpty, "setDue forgets what is below it")
    }
}

@Suite struct ChainEventsTests {
    let t = TestChain()

    func verified(_ txs: [[UInt8]]) throws -> VerifiedBlock {
        let b = t.block(1, parent: [UInt8](repeating: 0, count: 32), txs: txs)
        return try BlockVerifier(network: t.network).verify(b.encoded, group: "transaction", height: 1, parent: nil)
    }

    let evidence = Array(
        #"{"args":{"channelIds":["ch-a","ch-b"],"sequences":[3,9],"tscHashes":"\#(String(repeating: "ab", count: 32))\#(String(repeating: "cd", count: 32))"},"nonce":5,"op":"evidence.submit","sender":"did:efsc:t:tcc"}"#.utf8)
    let close = Array(#"{"args":{"channelId":"ch-a","kind":"unilateral"},"nonce":6,"op":"channel.close","sender":"did:efsc:t:p"}"#.utf8)

    @Test func committedTransactionsGetDomainEventsRejectedOnesOnlyTheirReceipt() throws {
        let v = try verified([evidence, close, Array("not json".utf8)])
        let receipts: [Receipt?] = [
            Receipt(txHash: "", ok: true, error: nil, result: ["evidences": 2]),
            Receipt(txHash: "", ok: false, error: "channel ch-a is closing, not open", result: nil), nil,
        ]
        let ev = ChainEvents.events(v, receipts: receipts)
        let types = ev.compactMap { $0["event"]?.stringValue }
        #expect(types == ["block", "transaction", "evidence.anchored", "evidence.anchored", "transaction", "transaction"])
        #expect(ev[0]["signatures"]?.intValue == 3 && ev[0]["transactions"]?.intValue == 3)
        #expect(ev[1]["args"]?["evidences"]?.intValue == 2 && ev[1]["receipt"]?["status"]?.stringValue == "committed")
        #expect(ev[3]["channelId"]?.stringValue == "ch-b" && ev[3]["sequence"]?.intValue == 9 && ev[3]["tcc"]?.stringValue == "did:efsc:t:tcc")
        #expect(ev[3]["tscHash"]?.stringValue == String(repeating: "cd", count: 32) && ev[3]["item"]?.intValue == 1 && ev[3]["index"]?.intValue == 0)
        #expect(ev[4]["receipt"]?["error"]?.stringValue == "channel ch-a is closing, not open")
        #expect(ev[5]["receipt"]?["status"]?.stringValue == "rejected" && ev[5]["op"] == nil)
        // Without re-execution: no receipts and no domain events.
        #expect(ChainEvents.events(v, receipts: nil).compactMap { $0["event"]?.stringValue } == ["block", "transaction", "transaction", "transaction"])
        #expect(ChainEvents.events(v, receipts: nil).allSatisfy { $0["receipt"] == nil })
    }

    @Test func filtersSelectTransactionsAndTheirEvents() throws {
        let v = try verified([evidence, close])
        let receipts: [Receipt?] = [Receipt(txHash: "", ok: true, error: nil, result: nil), Receipt(txHash: "", ok: true, error: nil, result: ["channelId": "ch-a", "state": "closing"])]
        func types(_ f: EventFilter) -> [String] { ChainEvents.events(v, receipts: receipts, filter: f).compactMap { $0["event"]?.stringValue } }
        #expect(types(EventFilter(channel: "ch-b")) == ["block", "transaction", "evidence.anchored"])
        #expect(types(EventFilter(ops: ["channel.close"])) == ["block", "transaction", "channel.closing"])
        #expect(types(EventFilter(did: "did:efsc:t:p")) == ["block", "transaction", "channel.closing"])
        #expect(types(EventFilter(events: ["evidence.anchored"])) == ["evidence.anchored", "evidence.anchored"])
        #expect(types(EventFilter(channel: "ch-none")) == ["block"])
    }
}
