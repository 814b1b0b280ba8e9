import Foundation
import Testing
@testable import EFSCStore

/// Proves the RocksDB wrapper links and behaves: write, read, batch, scan,
/// and data surviving a close/reopen.
@Suite struct RocksDBTests {
    func tempDir() -> String {
        let p = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-rocks-\(UUID().uuidString)").path
        return p
    }

    @Test func writeReadReopen() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let db = try RocksDB(path: dir)
            try db.put(Array("k1".utf8), Array("v1".utf8))
            #expect(try db.get(Array("k1".utf8)) == Array("v1".utf8))
            #expect(try db.get(Array("missing".utf8)) == nil)
            let b = WriteBatch()
            b.put(Array("p/a".utf8), [1])
            b.put(Array("p/b".utf8), [2])
            b.put(Array("q/a".utf8), [3])
            b.delete(Array("k1".utf8))
            #expect(b.count == 4)
            try db.write(b)
            #expect(try db.get(Array("k1".utf8)) == nil)
            let scanned = db.scan(prefix: Array("p/".utf8))
            #expect(scanned.map(\.value) == [[1], [2]])
            try db.put([], [])  // empty key and value are legal
        }
        let again = try RocksDB(path: dir, createIfMissing: false)
        #expect(try again.get(Array("p/b".utf8)) == [2])
        #expect(try again.get([]) == [])
    }

    @Test func openFailureIsATypedError() {
        #expect(throws: StoreError.self) { try RocksDB(path: "/proc/efsc-cannot-create-here", createIfMissing: true) }
        #expect(throws: StoreError.self) { try RocksDB(path: tempDir(), createIfMissing: false) }
    }

    @Test func columnFamiliesAreSeparateAndBatchesSpanThem() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let db = try RocksDB(path: dir, columnFamilies: ["blocks", "state"])
            let blocks = db.family("blocks")
            let state = db.family("state")
            let b = WriteBatch()
            b.put([1], [10], in: blocks)
            b.put([1], [20], in: state)
            b.put(Array("meta".utf8), [30])
            try db.write(b)
            #expect(try db.get([1], in: blocks) == [10])
            #expect(try db.get([1], in: state) == [20])
            #expect(try db.get([1]) == nil)
            #expect(db.scan(prefix: [], in: state).count == 1)
        }
        do {
            // A batch made for a database writes its families directly, can be
            // cleared and reused, and is refused by any other database.
            let db = try RocksDB(path: dir, columnFamilies: ["blocks", "state"])
            let state = db.family("state")
            let b = db.makeBatch()
            b.put([2], [21], in: state)
            b.clear()
            #expect(b.count == 0)
            b.put([3], [30], in: state)
            b.delete([1], in: db.family("blocks"))
            #expect(b.count == 2)
            try db.write(b)
            #expect(try db.get([2], in: state) == nil && db.get([3], in: state) == [30] && db.get([1], in: db.family("blocks")) == nil)
            b.clear()
            b.put([4], [40], in: state)
            try db.write(b)
            #expect(try db.get([4], in: state) == [40] && db.get([3], in: state) == [30])
            let otherDir = tempDir()
            defer { try? FileManager.default.removeItem(atPath: otherDir) }
            let other = try RocksDB(path: otherDir, columnFamilies: ["blocks", "state"])
            #expect(throws: StoreError.self) { try other.write(b) }
            #expect(try other.get([4], in: other.family("state")) == nil)
            // Put the first block write back for the reopen checks below.
            try db.put([1], [10], in: db.family("blocks"))
        }
        // Reopening lists the same families with the data in place.
        let again = try RocksDB(path: dir, columnFamilies: ["blocks", "state"])
        #expect(try again.get([1], in: again.family("state")) == [20])
        #expect(try again.get(Array("meta".utf8)) == [30])
    }
}
