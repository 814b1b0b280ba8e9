import EFSCBus
import EFSCCore
import Foundation
import Testing
@testable import EFSCLedger

@Suite struct MerkleTests {
    @Test func everyLeafProvesForEverySize() {
        for size in 1...21 {
            let leaves = (0..<size).map { Merkle.leafHash([UInt8($0)]) }
            let root = Merkle.root(leaves)
            for i in 0..<size {
                let p = Merkle.proof(leaves, index: i)
                #expect(Merkle.verify(leaf: leaves[i], index: i, size: size, proof: p, root: root), "size \(size) index \(i)")
                // Wrong leaf, wrong index or a tampered path fail.
                #expect(!Merkle.verify(leaf: Merkle.leafHash([99]), index: i, size: size, proof: p, root: root))
                if size > 1 {
                    #expect(!Merkle.verify(leaf: leaves[i], index: (i + 1) % size, size: size, proof: p, root: root))
                    var bad = p
                    bad[0][0] ^= 1
                    #expect(!Merkle.verify(leaf: leaves[i], index: i, size: size, proof: bad, root: root))
                }
            }
        }
    }

    @Test func rfc6962Shape() {
        // Two leaves: root = H(1 ‖ H(0 ‖ a) ‖ H(0 ‖ b)).
        let a = Merkle.leafHash([1])
        let b = Merkle.leafHash([2])
        #expect(a == Digest.sha256([0, 1]) && Merkle.leafHash([]) == Digest.sha256([0]))
        let big = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        #expect(Merkle.leafHash(big) == Digest.sha256([0] + big))
        #expect(Merkle.root([a, b]) == Digest.sha256([1] + a + b))
        #expect(Merkle.root([]) == Digest.sha256([]))
        #expect(Merkle.root([a]) == a)
    }
}

func makeBlock(_ ledger: Ledger, txs: [[UInt8]], writes: [StateWrite]) -> Block {
    let h = BlockHeader(
        group: ledger.group, height: ledger.height + 1, parentHash: ledger.lastHash, stateRoot: ledger.stateRoot,
        transactionsRoot: Block.transactionsRoot(txs), proposer: 0, view: 0, timestamp: 1_700_000_000_000 + ledger.height)
    var b = Block(header: h, transactions: txs)
    b.certificateView = 3
    b.certificate = [CertificateEntry(replica: 0, signature: [1, 2]), CertificateEntry(replica: 2, signature: [3])]
    return b
}

@Suite struct BlockAndLedgerTests {
    func dir() -> String { FileManager.default.temporaryDirectory.appendingPathComponent("efsc-ledger-\(UUID().uuidString)").path }

    @Test func blockRoundTripAndHash() throws {
        let l = try Ledger(path: dir(), group: "transaction")
        let b = makeBlock(l, txs: [Array(#"{"op":"a"}"#.utf8), []], writes: [])
        let back = try Block(decoding: b.encoded)
        #expect(back == b)
        // The certificate is not part of the hash (it is made after agreeing on it).
        var other = b
        other.certificate = []
        #expect(other.hash == b.hash)
        #expect(try Block(decoding: b.body).certificate.isEmpty)
        // One encoding gives both: the body is its prefix, the hash the body's.
        let (enc, h) = b.encodedAndHash
        #expect(enc == b.encoded && h == b.hash && h == Digest.sha256(b.body) && Array(enc.prefix(b.body.count)) == b.body)
        #expect(!b.certificate.isEmpty && enc.count > b.body.count)
        // Truncations and garbage never trap.
        for cut in 0..<b.encoded.count where cut != b.body.count {
            #expect(throws: BlockDecodingError.self) { try Block(decoding: Array(b.encoded.prefix(cut))) }
        }
        #expect(throws: BlockDecodingError.self) { try Block(decoding: b.encoded + [0]) }
        // The bus decoder (efsc bus tap) reads the same layout.
        let j = PayloadDecoder.decode(topic: Topics.blocks("transaction", node: "node1"), payload: b.encoded)
        #expect(j["hash"]?.stringValue == Hex.encode(b.hash))
        #expect(j["certificate"]?.arrayValue?.count == 2)
        #expect(j["certificateView"]?.intValue == 3)
        #expect(j["transactions"]?.arrayValue?.first?["op"] == "a")
    }

    @Test func commitReopenAndLookups() throws {
        let path = dir()
        defer { try? FileManager.default.removeItem(atPath: path) }
        var hashes: [[UInt8]] = []
        do {
            let l = try Ledger(path: path, group: "transaction")
            for i in 0..<5 {
                let tx = Array("{\"n\":\(i)}".utf8)
                let w = [StateWrite(key: Array("k\(i)".utf8), value: [UInt8(i)]), StateWrite(key: Array("k0".utf8), value: i == 4 ? nil : [0])]
                let b = makeBlock(l, txs: [tx, Array("{\"m\":\(i)}".utf8)], writes: w)
                // Evidence index entries; block 4 re-indexes the hash of block 1 (a later entry wins).
                let e = [StateWrite(key: Digest.sha256([UInt8(i)]), value: [UInt8(i), 9])] + (i == 4 ? [StateWrite(key: Digest.sha256([1]), value: [4])] : [])
                try l.commit(b, writes: w, evidenceIndex: e)
                hashes.append(b.hash)
            }
            #expect(l.height == 5)
            // Read back from the append-only memtable, before any flush.
            #expect(try l.evidenceLocation(tscHash: Digest.sha256([2])) == [2, 9])
            #expect(try l.evidenceLocation(tscHash: Digest.sha256([1])) == [4])
        }
        let l = try Ledger(path: path, group: "transaction")
        #expect(l.height == 5)
        #expect(l.lastHash == hashes[4])
        #expect(try l.block(at: 3)?.hash == hashes[2])
        #expect(try l.stateValue(Array("k3".utf8)) == [3])
        #expect(try l.stateValue(Array("k0".utf8)) == nil)
        let found = try #require(try l.transaction(hash: Digest.sha256(Array("{\"m\":2}".utf8))))
        #expect(found.height == 3)
        #expect(found.index == 1)
        #expect(
            Merkle.verify(
                leaf: Merkle.leafHash(found.block.transactions[1]), index: 1, size: found.block.transactions.count, proof: found.proof,
                root: found.block.header.transactionsRoot))
        #expect(try l.transaction(hash: Digest.sha256([7])) == nil)
        #expect(try l.evidenceLocation(tscHash: Digest.sha256([3])) == [3, 9])
        #expect(try l.evidenceLocation(tscHash: Digest.sha256([1])) == [4])
        #expect(try l.evidenceLocation(tscHash: Digest.sha256([99])) == nil)
    }

    @Test func rejectsBlocksThatDoNotFit() throws {
        let path = dir()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let l = try Ledger(path: path, group: "identity")
        let good = makeBlock(l, txs: [[1]], writes: [])
        var skip = good
        skip.header.height = 2
        #expect(throws: LedgerError.self) { try l.commit(skip, writes: []) }
        var orphan = good
        orphan.header.parentHash = Digest.sha256([1])
        #expect(throws: LedgerError.self) { try l.commit(orphan, writes: []) }
        var badRoot = good
        badRoot.transactions = [[2]]
        #expect(throws: LedgerError.self) { try l.commit(badRoot, writes: []) }
        // A block naming another state than the one it executes on is a divergence.
        var otherState = good
        otherState.header.stateRoot = Digest.sha256([9])
        #expect(throws: LedgerError.self) { try l.commit(otherState, writes: []) }
        var wrongGroup = good
        wrongGroup.header.group = "transaction"
        #expect(throws: LedgerError.self) { try l.commit(wrongGroup, writes: []) }
        let before = l.stateRoot
        try l.commit(good, writes: [StateWrite(key: [1], value: [1])])
        #expect(l.height == 1)
        #expect(l.stateRoot != before)
        #expect(throws: LedgerError.self) { try l.commit(good, writes: []) }
        // The next block names the state after block 1, not the one before.
        var stale = makeBlock(l, txs: [[3]], writes: [])
        stale.header.stateRoot = before
        #expect(throws: LedgerError.self) { try l.commit(stale, writes: []) }
        try l.commit(makeBlock(l, txs: [[3]], writes: []), writes: [])
        #expect(l.height == 2)
    }

    @Test func stateWritesOrderByBytesAndTheRootIgnoresArrivalOrder() throws {
        func w(_ k: [UInt8]) -> StateWrite { StateWrite(key: k, value: [1]) }
        let keys: [[UInt8]] = [[0x61, 0x62], [0x61], [], [0xff], [0x61, 0x00], [0x7f, 0xff]]
        let sorted = keys.map(w).sorted(by: StateWrite.keyPrecedes).map(\.key)
        #expect(sorted == [[], [0x61], [0x61, 0x00], [0x61, 0x62], [0x7f, 0xff], [0xff]])
        #expect(!StateWrite.keyPrecedes(w([0x61]), w([0x61])))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-order-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let l = try Ledger(path: dir, group: "g")
        #expect(l.nextStateRoot(keys.map(w)) == l.nextStateRoot(keys.reversed().map(w)))
        #expect(KeyOrder.of(keys).map { keys[$0] } == sorted)
    }

    /// `KeyOrder` against the plain comparison sort, stable on equal keys:
    /// long shared prefixes (state keys), keys that end inside or just after
    /// the 8-byte tag, zero bytes beside padding, duplicates, and hashes.
    @Test func keyOrderMatchesByteOrderAndIsStable() {
        var rng = SystemRandomNumberGenerator()
        for round in 0..<600 {
            let prefix = Array("evidence/load-".utf8.prefix(Int.random(in: 0...14, using: &rng)))
            // Small ranges and radix-sorted ones, several windows deep.
            let n = round % 2 == 0 ? Int.random(in: 0...60, using: &rng) : Int.random(in: 100...400, using: &rng)
            let keys: [[UInt8]] = (0..<n).map { _ in
                switch round % 4 {
                case 0: return (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
                case 1:
                    // Two key families, as state writes are (evidence records and a nonce).
                    let p = Bool.random(using: &rng) ? prefix : Array("nonce/".utf8)
                    return p + (0..<Int.random(in: 0...30, using: &rng)).map { _ in [0, 1, 0x61, 0xff].randomElement(using: &rng)! }
                default:
                    return prefix + (0..<Int.random(in: 0...12, using: &rng)).map { _ in [0, 1, 0x61, 0xff].randomElement(using: &rng)! }
                }
            }
            let expected = keys.indices.sorted { a, b in
                StateWrite.keyPrecedes(StateWrite(key: keys[a], value: nil), StateWrite(key: keys[b], value: nil))
                    || (keys[a] == keys[b] && a < b)
            }
            #expect(KeyOrder.of(keys) == expected, "round \(round)")
        }
        #expect(KeyOrder.of([]) == [] && KeyOrder.of([[7]]) == [0])
    }
}
