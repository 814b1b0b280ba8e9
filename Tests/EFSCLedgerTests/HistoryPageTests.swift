import EFSCCore
import Foundation
import Testing
@testable import EFSCLedger

/// The `history` reply: committed blocks with their certificates, paged by
/// bytes, decoded without trusting a byte of it.
@Suite struct HistoryPageTests {
    func ledger(blocks: Int, txBytes: Int) throws -> Ledger {
        let l = try Ledger(path: FileManager.default.temporaryDirectory.appendingPathComponent("efsc-history-\(UUID().uuidString)").path, group: "transaction")
        for k in 0..<blocks {
            try l.commit(makeBlock(l, txs: [[UInt8](repeating: UInt8(k % 251), count: txBytes)], writes: []), writes: [])
        }
        return l
    }

    @Test func pagesRoundTripAndFitTheReplyLimit() throws {
        let l = try ledger(blocks: 12, txBytes: 250_000)
        // From height 3: as many as fit 1 MiB − 16 KiB (four of ~250 KB), consecutive, certificates kept.
        let bytes = HistoryPage.encode(ledger: l, from: 3, max: 100)
        #expect(bytes.count <= WireLimits.replyBytes)
        let page = try HistoryPage(decoding: bytes)
        #expect(page.committedHeight == 12)
        #expect(page.blocks.map(\.header.height) == [3, 4, 5, 6], "\(page.blocks.map(\.header.height))")
        #expect(page.blocks.first == (try l.block(at: 3)))
        #expect(page.blocks.allSatisfy { $0.certificate.count == 2 && $0.certificateView == 3 })
        // Following pages reach the top with nothing missing or repeated.
        var next: UInt64 = 1
        var seen: [UInt64] = []
        while next <= l.height {
            let p = try HistoryPage(decoding: HistoryPage.encode(ledger: l, from: next, max: 5))
            #expect(!p.blocks.isEmpty && p.blocks.count <= 5)
            seen += p.blocks.map(\.header.height)
            next = p.blocks.last!.header.height + 1
        }
        #expect(seen == Array(1...12))
        // Above the top: an empty page with the height.
        let empty = try HistoryPage(decoding: HistoryPage.encode(ledger: l, from: 13, max: 5))
        #expect(empty.blocks.isEmpty && empty.committedHeight == 12)
    }

    @Test func hostileBytesAreRefusedWithAReason() throws {
        let l = try ledger(blocks: 3, txBytes: 10)
        let good = HistoryPage.encode(ledger: l, from: 1, max: 3)
        _ = try HistoryPage(decoding: good)
        func refused(_ b: [UInt8], _ what: String) {
            #expect(throws: HistoryPageError.self, "\(what)") { try HistoryPage(decoding: b) }
        }
        refused([], "empty")
        refused(Array("{\"ok\":false}".utf8), "a JSON error is not a page")
        refused(Array(good.dropLast()), "truncated")
        refused(good + [0], "trailing byte")
        var tooMany = good
        tooMany[11...14] = [0, 0, 0x10, 0]  // 4096 blocks claimed
        refused(tooMany, "count over the limit")
        var longLength = good
        longLength[15...18] = [0x7F, 0xFF, 0xFF, 0xFF]
        refused(longLength, "a length past the data")
        // Blocks that do not follow each other: 1 then 3.
        var gap: [UInt8] = HistoryPage.magic + [0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 2]
        for h in [1, 3] as [UInt64] {
            let e = try #require(try l.block(at: h)).encoded
            gap += [UInt8(e.count >> 24), UInt8(truncatingIfNeeded: e.count >> 16), UInt8(truncatingIfNeeded: e.count >> 8), UInt8(truncatingIfNeeded: e.count)] + e
        }
        refused(gap, "a gap between blocks")
        // Random bytes never trap.
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            var b = good
            for _ in 0..<4 { b[Int.random(in: 0..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
            _ = try? HistoryPage(decoding: b)
        }
    }
}
