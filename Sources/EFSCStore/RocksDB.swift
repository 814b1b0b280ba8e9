import CRocksDB

#if canImport(Glibc)
import Glibc
#endif

/// A failure reported by RocksDB, with its own message.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public var description: String { "storage error: \(message)" }
}

/// A column family of an open `RocksDB` (a separate key space with its own files).
public struct ColumnFamily: Sendable, Hashable {
    let index: Int
    public let name: String
}

/// A RocksDB database. The only place the RocksDB C API is touched: callers
/// see byte arrays and Swift errors. Writes made with `sync: true` are on disk
/// (WAL fsync'd) when the call returns, which is what "persist before you
/// acknowledge" relies on.
public final class RocksDB: @unchecked Sendable {
    // RocksDB handles are thread-safe for concurrent reads and writes.
    private let db: OpaquePointer
    private let options: OpaquePointer
    private let appendOptions: OpaquePointer
    private let bulkOptions: OpaquePointer
    private let readOptions: OpaquePointer
    private let syncWrite: OpaquePointer
    private let asyncWrite: OpaquePointer
    private let unloggedWrite: OpaquePointer
    private var handles: [OpaquePointer] = []
    public let path: String
    /// The column families opened, by name (always includes "default").
    public private(set) var families: [String: ColumnFamily] = [:]

    /// Opens (creating if asked) a database with the given column families;
    /// missing families are created. Families in `appendMostly` are indexes
    /// written on every commit and read only by queries: their memtable is a
    /// vector (an insert is an append, sorted once when flushed; the usual
    /// skip list costs ≈ 20 cache-missing comparisons per insert), kept at
    /// 4 MB so a query's lookup in it (which sorts a copy) stays in
    /// milliseconds, and stored uncompressed (hashes do not compress).
    ///
    /// Families in `bulk` hold large values written once and read rarely (a
    /// TCC's TICs and issued TSCs, read back at a restart or when a party is
    /// admitted): a 4 MB memtable, and LZ4 instead of zstd
    /// (zstd's flushes of them took a TCC ≈ 8 % of its CPU at 600
    /// settlements/s; LZ4 still shrinks their JSON).
    public init(path: String, createIfMissing: Bool = true, columnFamilies: [String] = [], appendMostly: Set<String> = [], bulk: Set<String> = []) throws {
        self.path = path
        let opts = rocksdb_options_create()!
        rocksdb_options_set_create_if_missing(opts, createIfMissing ? 1 : 0)
        rocksdb_options_set_create_missing_column_families(opts, 1)
        rocksdb_options_increase_parallelism(opts, 2)
        // Ledgers are mostly hashes, hex and repeated JSON keys: zstd roughly
        // halves them in table files. (The WAL is left uncompressed: it is
        // short-lived, and compressing it cost a node ≈ 6 % of its CPU.)
        rocksdb_options_set_compression(opts, Int32(rocksdb_zstd_compression))
        // Level 1 rather than zstd's default 3: flushing is a fifth of a
        // node's CPU, and the ledgers came out no larger (≈ 91 B per evidence).
        rocksdb_options_set_compression_options(opts, -14, 1, 0, 0)
        // Contracts mostly look up keys that do not exist yet (a channel's
        // first evidence, a fresh nonce): a Bloom filter answers those
        // without reading every table file's index.
        let table = rocksdb_block_based_options_create()
        rocksdb_block_based_options_set_filter_policy(table, rocksdb_filterpolicy_create_bloom_full(10))
        rocksdb_options_set_block_based_table_factory(opts, table)
        rocksdb_block_based_options_destroy(table)
        // A rarely written column family would otherwise pin every old WAL file.
        rocksdb_options_set_max_total_wal_size(opts, Self.maxTotalWALBytes)
        rocksdb_options_set_keep_log_file_num(opts, 2)
        rocksdb_options_set_max_log_file_size(opts, 1 << 20)
        // The same for the memtable, whose miss is otherwise a full skip-list
        // search. (It costs a little more per insert: ≈ 5 % less in the
        // one-replica measurement, ≈ 10 % more evidences/s on a devnet.)
        rocksdb_options_set_memtable_prefix_bloom_size_ratio(opts, 0.05)
        rocksdb_options_set_memtable_whole_key_filtering(opts, 1)
        // Vector memtables take no concurrent inserts. Concurrent writers
        // still work: the leader of each write group inserts for the group.
        rocksdb_options_set_allow_concurrent_memtable_write(opts, 0)
        options = opts
        let append = rocksdb_options_create_copy(opts)!
        rocksdb_options_set_memtable_vector_rep(append)
        rocksdb_options_set_memtable_prefix_bloom_size_ratio(append, 0)
        rocksdb_options_set_write_buffer_size(append, Self.appendMostlyBufferBytes)
        // Sorting the vector at flush chases a pointer per comparison: a
        // node measured ≈ 2.9 µs of flush CPU per entry at 8 MB, 2.3 at 4 MB
        // and 1.7 with no compression either (the keys are hashes: zstd
        // bought ≈ 16 B per evidence for ≈ 0.5 µs). Twice as many files per
        // compaction keeps compaction input the size it was.
        rocksdb_options_set_level0_file_num_compaction_trigger(append, 8)
        rocksdb_options_set_compression(append, Int32(rocksdb_no_compression))
        appendOptions = append
        let bulkOpts = rocksdb_options_create_copy(opts)!
        rocksdb_options_set_compression(bulkOpts, Int32(rocksdb_lz4_compression))
        // Written once, so a large memtable buys nothing: 4 MB bounds the
        // memory a process spends on them (a TCC with 20,000 new channels
        // held ≈ 3 KB of TIC per channel in a 64 MB memtable).
        rocksdb_options_set_write_buffer_size(bulkOpts, Self.appendMostlyBufferBytes)
        bulkOptions = bulkOpts
        var err: UnsafeMutablePointer<CChar>? = nil
        let names = ["default"] + columnFamilies.filter { $0 != "default" }
        let cNames = names.map { strdup($0) }
        defer { for c in cNames { free(c) } }
        var cfOptions = names.map { appendMostly.contains($0) ? Optional(append) : bulk.contains($0) ? Optional(bulkOpts) : Optional(opts) }
        var cfHandles = [OpaquePointer?](repeating: nil, count: names.count)
        let handle = cNames.map { UnsafePointer($0) }.withUnsafeBufferPointer { np in
            cfOptions.withUnsafeMutableBufferPointer { op in
                rocksdb_open_column_families(
                    opts, path, Int32(names.count), np.baseAddress, UnsafePointer(op.baseAddress), &cfHandles, &err)
            }
        }
        if let e = err {
            let msg = String(cString: e)
            rocksdb_free(e)
            rocksdb_options_destroy(options)
            rocksdb_options_destroy(appendOptions)
            rocksdb_options_destroy(bulkOptions)
            throw StoreError(message: "cannot open \(path): \(msg)")
        }
        db = handle!
        handles = cfHandles.map { $0! }
        for (i, n) in names.enumerated() { families[n] = ColumnFamily(index: i, name: n) }
        readOptions = rocksdb_readoptions_create()
        syncWrite = rocksdb_writeoptions_create()
        rocksdb_writeoptions_set_sync(syncWrite, 1)
        asyncWrite = rocksdb_writeoptions_create()
        unloggedWrite = rocksdb_writeoptions_create()
        rocksdb_writeoptions_disable_WAL(unloggedWrite, 1)
    }

    /// Memtable size of append-mostly families.
    public static let appendMostlyBufferBytes = 4 << 20

    /// WAL files kept before the column families holding them are flushed.
    /// At 64 MB the WAL (which carries every block twice: the consensus
    /// store's copy and the ledger's) forced flushes of the 64 MB state
    /// memtable at a third full: more, smaller table files, each one more
    /// Bloom filter for every lookup. 256 MB lets memtables flush when full
    /// (≈ 6 % more evidences/s on a devnet); a crash replays at most this.
    public static let maxTotalWALBytes: UInt64 = 256 << 20

    /// Writes every column family's memtable to table files and waits, so the
    /// WAL files become obsolete (a clean close leaves no log to replay).
    public func flush() throws {
        let fo = rocksdb_flushoptions_create()
        defer { rocksdb_flushoptions_destroy(fo) }
        rocksdb_flushoptions_set_wait(fo, 1)
        for h in handles {
            var err: UnsafeMutablePointer<CChar>? = nil
            rocksdb_flush_cf(db, fo, h, &err)
            try Self.check(err, "flush")
        }
    }

    deinit {
        try? flush()
        for h in handles { rocksdb_column_family_handle_destroy(h) }
        rocksdb_close(db)
        rocksdb_readoptions_destroy(readOptions)
        rocksdb_writeoptions_destroy(syncWrite)
        rocksdb_writeoptions_destroy(asyncWrite)
        rocksdb_writeoptions_destroy(unloggedWrite)
        rocksdb_options_destroy(options)
        rocksdb_options_destroy(appendOptions)
        rocksdb_options_destroy(bulkOptions)
    }

    private static func check(_ err: UnsafeMutablePointer<CChar>?, _ what: String) throws {
        if let e = err {
            let msg = String(cString: e)
            rocksdb_free(e)
            throw StoreError(message: "\(what): \(msg)")
        }
    }

    /// The family named `name` (it must have been opened).
    public func family(_ name: String) -> ColumnFamily {
        guard let f = families[name] else { preconditionFailure("column family \(name) was not opened") }
        return f
    }

    func handle(_ f: ColumnFamily?) -> OpaquePointer { handles[f?.index ?? 0] }

    /// Turns RocksDB's per-thread performance counters off for the calling
    /// thread. They are on by default, and every key comparison of a
    /// memtable insert or lookup then updates a thread-local counter, which
    /// in a shared library is a `__tls_get_addr` call or two: ≈ 5 % of a
    /// loaded node. Set per call because the callers' threads vary.
    @inline(__always) static func countersOff() { rocksdb_set_perf_level(1) }

    /// A batch for this database only (`write` refuses it elsewhere), whose
    /// column-family writes go straight into RocksDB's buffer.
    public func makeBatch() -> WriteBatch {
        var names = Array(repeating: "", count: handles.count)
        for (n, f) in families { names[f.index] = n }
        return WriteBatch(owner: self, families: handles, names: names)
    }

    public func put(_ key: [UInt8], _ value: [UInt8], in family: ColumnFamily? = nil, sync: Bool = true) throws {
        Self.countersOff()
        var err: UnsafeMutablePointer<CChar>? = nil
        let cf = handle(family)
        key.withUnsafeBufferPointer { k in
            value.withUnsafeBufferPointer { v in
                k.withMemoryRebound(to: CChar.self) { kc in
                    v.withMemoryRebound(to: CChar.self) { vc in
                        rocksdb_put_cf(db, sync ? syncWrite : asyncWrite, cf, kc.baseAddress, k.count, vc.baseAddress, v.count, &err)
                    }
                }
            }
        }
        try Self.check(err, "put")
    }

    public func get(_ key: [UInt8], in family: ColumnFamily? = nil) throws -> [UInt8]? {
        Self.countersOff()
        var err: UnsafeMutablePointer<CChar>? = nil
        var len = 0
        let cf = handle(family)
        let p = key.withUnsafeBufferPointer { k in
            k.withMemoryRebound(to: CChar.self) { kc in
                rocksdb_get_cf(db, readOptions, cf, kc.baseAddress, k.count, &len, &err)
            }
        }
        try Self.check(err, "get")
        guard let p else { return nil }
        defer { rocksdb_free(p) }
        return p.withMemoryRebound(to: UInt8.self, capacity: len) { Array(UnsafeBufferPointer(start: $0, count: len)) }
    }

    public func delete(_ key: [UInt8], in family: ColumnFamily? = nil, sync: Bool = true) throws {
        Self.countersOff()
        var err: UnsafeMutablePointer<CChar>? = nil
        let cf = handle(family)
        key.withUnsafeBufferPointer { k in
            k.withMemoryRebound(to: CChar.self) { kc in
                rocksdb_delete_cf(db, sync ? syncWrite : asyncWrite, cf, kc.baseAddress, k.count, &err)
            }
        }
        try Self.check(err, "delete")
    }

    /// How durable a write is when `write` returns.
    public enum Durability: Sendable {
        /// In the WAL and synced: survives a power loss.
        case synced
        /// In the WAL, not synced: survives the process being killed.
        case logged
        /// Only in the memtable until a flush: a crash loses it (whole
        /// batches, so the store reopens at an earlier consistent state).
        case unlogged
    }

    /// Applies every put/delete of `batch` atomically.
    public func write(_ batch: WriteBatch, sync: Bool = true) throws { try write(batch, durability: sync ? .synced : .logged) }

    public func write(_ batch: WriteBatch, durability: Durability) throws {
        Self.countersOff()
        var err: UnsafeMutablePointer<CChar>? = nil
        if let owner = batch.owner, owner !== self {
            throw StoreError(message: "write batch: made for the database at \(owner.path), not \(path)")
        }
        for (f, k, v) in batch.familyOps { batch.append(k, v, family: handle(f)) }
        batch.familyOps = []
        let options: OpaquePointer
        switch durability {
        case .synced: options = syncWrite
        case .logged: options = asyncWrite
        case .unlogged: options = unloggedWrite
        }
        rocksdb_write(db, options, batch.handle, &err)
        try Self.check(err, "write batch")
    }

    /// All pairs whose key starts with `prefix`, in key order.
    public func scan(prefix: [UInt8], in family: ColumnFamily? = nil, limit: Int = .max) -> [(key: [UInt8], value: [UInt8])] {
        Self.countersOff()
        let it = rocksdb_create_iterator_cf(db, readOptions, handle(family))!
        defer { rocksdb_iter_destroy(it) }
        prefix.withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { pc in rocksdb_iter_seek(it, pc.baseAddress, p.count) }
        }
        var out: [(key: [UInt8], value: [UInt8])] = []
        while rocksdb_iter_valid(it) != 0 && out.count < limit {
            var kl = 0
            var vl = 0
            let kp = rocksdb_iter_key(it, &kl)!
            let vp = rocksdb_iter_value(it, &vl)
            let key = kp.withMemoryRebound(to: UInt8.self, capacity: kl) { Array(UnsafeBufferPointer(start: $0, count: kl)) }
            guard key.starts(with: prefix) else { break }
            let value = vp.map { v in v.withMemoryRebound(to: UInt8.self, capacity: vl) { Array(UnsafeBufferPointer(start: $0, count: vl)) } } ?? []
            out.append((key, value))
            rocksdb_iter_next(it)
        }
        return out
    }
}

/// A set of writes applied atomically by `RocksDB.write`.
///
/// One made with `RocksDB.makeBatch()` puts column-family writes straight
/// into RocksDB's buffer, and `clear()` keeps that buffer's memory: a
/// ledger that reuses one batch per block does not grow a fresh
/// multi-megabyte buffer by doubling each time (those copies into new pages
/// were most of a loaded node's page faults).
public final class WriteBatch {
    fileprivate let handle: OpaquePointer
    /// The database whose column-family handles `families` are, if any.
    fileprivate let owner: RocksDB?
    private let families: [OpaquePointer]
    private let familyNames: [String]

    /// A batch usable with any database; column families are resolved at `write`.
    public init() {
        handle = rocksdb_writebatch_create()
        owner = nil
        families = []
        familyNames = []
    }

    fileprivate init(owner: RocksDB, families: [OpaquePointer], names: [String]) {
        handle = rocksdb_writebatch_create()
        self.owner = owner
        self.families = families
        familyNames = names
    }

    /// The handle of `family`, which must be one of the owner's (a family of
    /// another database is a programming error, like a wrong index).
    private func familyHandle(_ family: ColumnFamily) -> OpaquePointer {
        precondition(family.index < families.count && familyNames[family.index] == family.name, "column family \(family.name) is not of this batch's database")
        return families[family.index]
    }

    deinit { rocksdb_writebatch_destroy(handle) }

    /// Empties the batch and keeps its memory for the next one.
    public func clear() {
        rocksdb_writebatch_clear(handle)
        familyOps = []
    }

    public func put(_ key: [UInt8], _ value: [UInt8]) {
        key.withUnsafeBufferPointer { k in
            value.withUnsafeBufferPointer { v in
                k.withMemoryRebound(to: CChar.self) { kc in
                    v.withMemoryRebound(to: CChar.self) { vc in
                        rocksdb_writebatch_put(handle, kc.baseAddress, k.count, vc.baseAddress, v.count)
                    }
                }
            }
        }
    }

    public func delete(_ key: [UInt8]) {
        key.withUnsafeBufferPointer { k in
            k.withMemoryRebound(to: CChar.self) { kc in rocksdb_writebatch_delete(handle, kc.baseAddress, k.count) }
        }
    }

    /// Writes to named column families, resolved against the database at `write`.
    var familyOps: [(ColumnFamily, [UInt8], [UInt8]?)] = []

    public func put(_ key: [UInt8], _ value: [UInt8], in family: ColumnFamily) {
        guard owner != nil else { return familyOps.append((family, key, value)) }
        append(key, value, family: familyHandle(family))
    }

    public func delete(_ key: [UInt8], in family: ColumnFamily) {
        guard owner != nil else { return familyOps.append((family, key, nil)) }
        append(key, nil, family: familyHandle(family))
    }

    /// A put (or, with no value, a delete) into RocksDB's buffer for the family handle `cf`.
    fileprivate func append(_ key: [UInt8], _ value: [UInt8]?, family cf: OpaquePointer) {
        key.withUnsafeBufferPointer { k in
            k.withMemoryRebound(to: CChar.self) { kc in
                guard let value else { return rocksdb_writebatch_delete_cf(handle, cf, kc.baseAddress, k.count) }
                value.withUnsafeBufferPointer { v in
                    v.withMemoryRebound(to: CChar.self) { vc in
                        rocksdb_writebatch_put_cf(handle, cf, kc.baseAddress, k.count, vc.baseAddress, v.count)
                    }
                }
            }
        }
    }

    public var count: Int { Int(rocksdb_writebatch_count(handle)) + familyOps.count }
}
