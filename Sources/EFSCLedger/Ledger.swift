import EFSCCore
#if canImport(Glibc)
import Glibc
#endif
import EFSCStore

/// Why a block could not be committed or read.
public enum LedgerError: Error, CustomStringConvertible {
    case notNext(expected: UInt64, got: UInt64)
    case wrongParent(height: UInt64)
    case wrongGroup(expected: String, got: String)
    case wrongTransactionsRoot(height: UInt64)
    case wrongStateRoot(height: UInt64, expected: String, got: String)
    case corrupt(String)

    public var description: String {
        switch self {
        case .notNext(let e, let g): return "block height \(g) is not the next height \(e)"
        case .wrongParent(let h): return "block \(h) does not extend the last committed block"
        case .wrongGroup(let e, let g): return "block of group \(g) offered to the \(e) ledger"
        case .wrongTransactionsRoot(let h): return "block \(h): transactions root does not match its transactions"
        case .wrongStateRoot(let h, let e, let g): return "block \(h): state root \(g) differs from the state it executes on here, \(e) (divergence)"
        case .corrupt(let m): return "ledger corrupt: \(m)"
        }
    }
}

/// One state write of a block's execution (`nil` deletes).
public struct StateWrite: Sendable, Hashable {
    public let key: [UInt8]
    public let value: [UInt8]?
    public init(key: [UInt8], value: [UInt8]?) {
        self.key = key
        self.value = value
    }

    /// Byte order of keys (RocksDB's order), with memcmp: the generic
    /// `lexicographicallyPrecedes` was ≈ 6 % of a node's CPU in sorting a
    /// block's writes.
    public static func keyPrecedes(_ a: StateWrite, _ b: StateWrite) -> Bool {
        a.key.withUnsafeBufferPointer { x in b.key.withUnsafeBufferPointer { y in bytesPrecede(x, y) } }
    }

    /// Byte order of two keys in place (no copies, no reference counting).
    public static func bytesPrecede(_ x: UnsafeBufferPointer<UInt8>, _ y: UnsafeBufferPointer<UInt8>) -> Bool {
        let n = min(x.count, y.count)
        let c = n == 0 ? 0 : memcmp(x.baseAddress!, y.baseAddress!, n)
        return c != 0 ? c < 0 : x.count < y.count
    }
}

/// A chain group's ledger in RocksDB. Column families: `blocks` (height →
/// encoded block), `txindex` (transaction hash → height, index), `evidence`
/// (settlement credential hash → where its evidence is, written by the
/// evidence registry), `state` (contract state), `meta` (height, last hash,
/// state root). Every commit is one atomic write batch with a synced WAL, so
/// a node killed at any instant reopens at a consistent height.
///
/// The two indexes are derived from the blocks (like the transactions root,
/// not part of the state root) and read only by queries, so their memtables
/// take inserts as appends (`RocksDB` `appendMostly`).
///
/// The state root is a commitment chain: root(h) = SHA-256(root(h−1) ‖
/// SHA-256 of the block's sorted state writes), so nodes that executed the
/// same blocks agree on it. Block h+1's header carries root(h), the state it
/// executes on (as CometBFT's app hash does): replicas check it before they
/// vote, and a divergence shows at the block after the first differing one. Inclusion of a transaction is proved by the block's Merkle
/// transactions root.
public final class Ledger: @unchecked Sendable {
    public let group: String
    let db: RocksDB
    let blocks: ColumnFamily
    let txindex: ColumnFamily
    let evidence: ColumnFamily
    let state: ColumnFamily
    let meta: ColumnFamily
    private let lock = Lock()
    // One batch per kind of write, reused (cleared) every time: a block's
    // batch is megabytes, and growing a fresh one by doubling faulted in new
    // pages on every commit. Each lock is held while its batch is filled and written.
    private let commitBatch: WriteBatch
    private let commitBatchLock = Lock()
    private let metaBatch: WriteBatch
    private let metaBatchLock = Lock()
    public private(set) var height: UInt64 = 0
    public private(set) var lastHash: [UInt8] = [UInt8](repeating: 0, count: 32)
    public private(set) var stateRoot: [UInt8] = [UInt8](repeating: 0, count: 32)

    /// How durable each commit is: a node's ledger syncs its WAL (it votes
    /// on what it committed). A replay tool's own state need not even log:
    /// it re-executes from the history what a crash lost.
    public let durability: RocksDB.Durability

    public init(path: String, group: String, durability: RocksDB.Durability = .synced) throws {
        self.group = group
        self.durability = durability
        db = try RocksDB(path: path, columnFamilies: ["blocks", "txindex", "evidence", "state", "meta"], appendMostly: ["txindex", "evidence"])
        blocks = db.family("blocks")
        txindex = db.family("txindex")
        evidence = db.family("evidence")
        state = db.family("state")
        meta = db.family("meta")
        commitBatch = db.makeBatch()
        metaBatch = db.makeBatch()
        if let h = try db.get(Array("height".utf8), in: meta) {
            guard h.count == 8, let lh = try db.get(Array("lastHash".utf8), in: meta), let sr = try db.get(Array("stateRoot".utf8), in: meta) else {
                throw LedgerError.corrupt("meta column family incomplete")
            }
            height = Self.u64(h)
            lastHash = lh
            stateRoot = sr
        }
    }

    static func be(_ v: UInt64) -> [UInt8] { (0..<8).reversed().map { UInt8(truncatingIfNeeded: v >> UInt64(8 * $0)) } }
    static func u64(_ b: [UInt8]) -> UInt64 { b.prefix(8).reduce(0) { $0 << 8 | UInt64($1) } }

    /// The state root after applying `writes` to the current root.
    public func nextStateRoot(_ writes: [StateWrite]) -> [UInt8] {
        var w: [UInt8] = []
        w.reserveCapacity(writes.reduce(0) { $0 + $1.key.count + ($1.value?.count ?? 0) + 17 })
        // Appended in place: building each frame from temporary arrays was
        // three allocations per write.
        func be(_ v: Int) { for s in stride(from: 56, through: 0, by: -8) { w.append(UInt8(truncatingIfNeeded: UInt64(v) >> UInt64(s))) } }
        for x in Self.sortedByKey(writes) {
            be(x.key.count)
            w.append(contentsOf: x.key)
            if let v = x.value {
                w.append(1)
                be(v.count)
                w.append(contentsOf: v)
            } else {
                w.append(0)
            }
        }
        return Digest.sha256(lock.withLock { stateRoot } + Digest.sha256(w))
    }

    /// `writes` in key order (contract state hands them over sorted already;
    /// checking costs one pass).
    static func sortedByKey(_ writes: [StateWrite]) -> [StateWrite] {
        let inOrder = zip(writes, writes.dropFirst()).allSatisfy { StateWrite.keyPrecedes($0, $1) }
        return inOrder ? writes : KeyOrder.of(writes.map(\.key)).map { writes[$0] }
    }

    /// Commits the next block with the state writes of its execution and the
    /// evidence index entries it produced (key: credential hash), atomically.
    /// `txHashes`, if given, are SHA-256 of each transaction (the caller
    /// usually has them already; they are the transaction index's keys).
    /// Returns the block's encoding as stored (with its certificate).
    @discardableResult
    public func commit(_ block: Block, writes: [StateWrite], evidenceIndex: [StateWrite] = [], txHashes: [[UInt8]]? = nil) throws -> [UInt8] {
        try lock.withLock {
            let h = block.header
            guard h.group == group else { throw LedgerError.wrongGroup(expected: group, got: h.group) }
            guard h.height == height + 1 else { throw LedgerError.notNext(expected: height + 1, got: h.height) }
            guard h.parentHash == lastHash else { throw LedgerError.wrongParent(height: h.height) }
            guard h.transactionsRoot == Block.transactionsRoot(block.transactions) else { throw LedgerError.wrongTransactionsRoot(height: h.height) }
        }
        // A block names the state it executes on (the root after its
        // parent), so a proposer need not execute before proposing and every
        // replica can check the root before it votes.
        let pre = lock.withLock { stateRoot }
        guard block.header.stateRoot == pre else {
            throw LedgerError.wrongStateRoot(height: block.header.height, expected: Hex.encode(pre), got: Hex.encode(block.header.stateRoot))
        }
        let root = nextStateRoot(writes)
        let (encoded, hash) = block.encodedAndHash
        try commitBatchLock.withLock {
            let b = commitBatch
            b.clear()
            b.put(Self.be(block.header.height), encoded, in: blocks)
            let hashes = txHashes?.count == block.transactions.count ? txHashes! : block.transactions.map { Digest.sha256($0) }
            for (i, h) in hashes.enumerated() {
                b.put(h, Self.be(block.header.height) + Self.be(UInt64(i)), in: txindex)
            }
            for w in Self.sortedByKey(writes) {
                if let v = w.value { b.put(w.key, v, in: state) } else { b.delete(w.key, in: state) }
            }
            // Key order: the index's vector memtable sorts itself before a flush,
            // and sorted runs make that sort about a third cheaper (RocksDB's LOG:
            // flush CPU per entry). Equal hashes keep their order, so the later
            // entry still wins.
            for i in KeyOrder.of(evidenceIndex.map(\.key)) {
                let e = evidenceIndex[i]
                if let v = e.value { b.put(e.key, v, in: evidence) } else { b.delete(e.key, in: evidence) }
            }
            b.put(Array("height".utf8), Self.be(block.header.height), in: meta)
            b.put(Array("lastHash".utf8), hash, in: meta)
            b.put(Array("stateRoot".utf8), root, in: meta)
            try lock.withLock {
                try db.write(b, durability: durability)
                height = block.header.height
                lastHash = hash
                stateRoot = root
            }
        }
        return encoded
    }

    /// Encoded blocks (with certificates) from `from` on, consecutive, at most
    /// `max`, while each with a 4-byte length prefix still fits `byteBudget`;
    /// stops at the first block the store cannot give. What sync replies
    /// and history pages carry.
    public func encodedBlocks(from: UInt64, max: Int, byteBudget: Int) -> [[UInt8]] {
        var blocks: [[UInt8]] = []
        var h = from
        var size = 0
        while blocks.count < max, h <= height, let b = try? block(at: h) {
            let e = b.encoded
            guard size + e.count + 4 <= byteBudget else { break }
            size += e.count + 4
            blocks.append(e)
            h += 1
        }
        return blocks
    }

    public func block(at h: UInt64) throws -> Block? {
        guard let bytes = try db.get(Self.be(h), in: blocks) else { return nil }
        do { return try Block(decoding: bytes) } catch { throw LedgerError.corrupt("block \(h): \(error)") }
    }

    /// Where a transaction is: height, index, the block, and its inclusion proof.
    public func transaction(hash: [UInt8]) throws -> (height: UInt64, index: Int, block: Block, proof: [[UInt8]])? {
        guard let loc = try db.get(hash, in: txindex), loc.count == 16 else { return nil }
        let h = Self.u64(Array(loc[0..<8]))
        let i = Int(Self.u64(Array(loc[8..<16])))
        guard let b = try block(at: h), i < b.transactions.count else { throw LedgerError.corrupt("transaction index points past block \(h)") }
        return (h, i, b, b.inclusionProof(index: i))
    }

    /// The evidence index entry of a settlement credential hash.
    public func evidenceLocation(tscHash: [UInt8]) throws -> [UInt8]? { try db.get(tscHash, in: evidence) }

    /// Moves everything written so far from the WAL into table files.
    public func flush() throws { try db.flush() }

    public func stateValue(_ key: [UInt8]) throws -> [UInt8]? { try db.get(key, in: state) }

    /// Node-private metadata kept with the ledger (e.g. the consensus
    /// replica's durable state); `writeMeta` writes it with a synced WAL.
    public func getMeta(_ key: String) throws -> [UInt8]? { try db.get(Array("x/\(key)".utf8), in: meta) }
    /// Names of the metadata keys that start with `prefix`.
    public func metaKeys(prefix: String) -> [String] {
        db.scan(prefix: Array("x/\(prefix)".utf8), in: meta).map { String(decoding: $0.key.dropFirst(2), as: UTF8.self) }
    }
    /// Several metadata puts and deletes as one atomic, synced write.
    public func writeMeta(puts: [(String, [UInt8])], deletes: [String] = []) throws {
        try metaBatchLock.withLock {
            let b = metaBatch
            b.clear()
            for (k, v) in puts { b.put(Array("x/\(k)".utf8), v, in: meta) }
            for k in deletes { b.delete(Array("x/\(k)".utf8), in: meta) }
            try db.write(b, sync: true)
        }
    }

    public func stateScan(prefix: [UInt8], limit: Int = .max) -> [(key: [UInt8], value: [UInt8])] {
        db.scan(prefix: prefix, in: state, limit: limit)
    }
}
