import EFSCCore
import Foundation
import Testing
@testable import EFSCBus

/// topics.md is the contract: every catalogued topic is documented there,
/// every topic the code builds fits the catalogue, and no source file other
/// than Topics.swift spells an `efsc/v1/` topic.
@Suite struct TopicContractTests {
    static let repo = BrokerFixture.repo

    @Test func catalogIsDocumented() throws {
        let doc = try String(contentsOfFile: Self.repo + "/topics.md", encoding: .utf8)
        for pattern in Topics.catalog {
            #expect(doc.contains("`\(pattern)`"), "topics.md does not document \(pattern)")
        }
    }

    @Test func builtTopicsFitTheCatalog() {
        let g = "transaction"
        let built = [
            Topics.tx(g), Topics.pbft(g, from: "node1"), Topics.pbftAll(g), Topics.direct(g, to: "node2"), Topics.sync(g, node: "node3"),
            Topics.blocks(g, node: "node1"), Topics.blocksAll(g), Topics.status(g, node: "node1"), Topics.statusAll(g),
            Topics.query(g, "did"), Topics.query(g, "block", node: "node2"), Topics.queryShared(g), Topics.queryForNode(g, node: "node1"),
            Topics.tccControl(g), Topics.tccControlShared(), Topics.channelUp("c1", party: "alice"), Topics.channelDown("c1", party: "alice"),
            Topics.channelUpAll(), Topics.channelUpAll(shareGroup: "tcc"), Topics.reply(clientID: "x"), Topics.presence("x"),
        ]
        for t in built {
            #expect(Topics.isDocumented(t), "\(t) is not in Topics.catalog")
            #expect(t.hasPrefix("efsc/v1/") || t.hasPrefix("$share/"))
        }
        #expect(!Topics.isDocumented("efsc/v1/chain/identity/secret"))
        #expect(!Topics.isDocumented("efsc/v2/chain/identity/tx"))
    }

    /// Code takes topic names from one place: a literal `efsc/v1` anywhere
    /// else in Sources/ fails this test (and names the file and line).
    @Test func noTopicLiteralsOutsideTopicsSwift() throws {
        let sources = Self.repo + "/Sources"
        let files = FileManager.default.enumerator(atPath: sources)?.compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") } ?? []
        #expect(!files.isEmpty)
        var offenders: [String] = []
        for f in files where !f.hasSuffix("EFSCBus/Topics.swift") {
            let text = try String(contentsOfFile: sources + "/" + f, encoding: .utf8)
            for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where line.contains("\"efsc/v1") || line.contains("efsc/v1/") && line.contains("\"") && !line.trimmingCharacters(in: .whitespaces).hasPrefix("//") {
                offenders.append("\(f):\(n + 1): \(line.trimmingCharacters(in: .whitespaces))")
            }
        }
        #expect(offenders.isEmpty, "topic literals outside Topics.swift:\n\(offenders.joined(separator: "\n"))")
    }

    @Test func binaryPayloadsDecodeBySchema() throws {
        var block: [UInt8] = [0x45, 0x42, 1]
        block += [UInt8(11)] + Array("transaction".utf8)
        block += be(7, 8) + [UInt8](repeating: 1, count: 32) + [UInt8](repeating: 2, count: 32) + [UInt8](repeating: 3, count: 32)
        block += be(2, 2) + be(5, 8) + be(1_700_000_000_000, 8) + be(3, 8)
        let tx = Array(#"{"op":"evidence.submit"}"#.utf8)
        block += be(1, 4) + be(UInt64(tx.count), 4) + tx
        let hashed = block
        block += be(4, 8) + be(1, 2) + be(3, 2) + be(64, 2) + [UInt8](repeating: 9, count: 64)
        let b = PayloadDecoder.decode(topic: Topics.blocks("transaction", node: "node1"), payload: block)
        #expect(b["height"]?.intValue == 7)
        #expect(b["anchor"]?.intValue == 3)
        #expect(b["hash"]?.stringValue == Digest.sha256Hex(hashed))
        #expect(b["transactions"]?.arrayValue?.first?["op"] == "evidence.submit")
        #expect(b["certificate"]?.arrayValue?.count == 1)

        var msg: [UInt8] = [0x45, 0x50, 1, 1, 11] + Array("transaction".utf8) + be(2, 2)
        msg += be(5, 8) + be(7, 8) + [UInt8](repeating: 4, count: 32) + be(UInt64(hashed.count), 4) + hashed + be(64, 2) + [UInt8](repeating: 8, count: 64)
        let m = PayloadDecoder.decode(topic: Topics.pbft("transaction", from: "node3"), payload: msg)
        #expect(m["type"] == "pre-prepare")
        #expect(m["sender"]?.intValue == 2)
        #expect(m["block"]?["height"]?.intValue == 7)
        // Truncated or foreign bytes never crash: they are shown as base64.
        for cut in [0, 1, 5, 40, msg.count - 1] {
            let j = PayloadDecoder.decode(topic: Topics.pbft("transaction", from: "n"), payload: Array(msg[0..<cut]))
            #expect(j["encoding"] == "base64" || j["format"] != nil)
        }
        #expect(PayloadDecoder.decode(topic: Topics.status("identity", node: "n"), payload: Array(#"{"height":3}"#.utf8))["height"]?.intValue == 3)
    }

    func be(_ v: UInt64, _ n: Int) -> [UInt8] { (0..<n).reversed().map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }
}
