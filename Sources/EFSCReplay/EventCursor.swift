import EFSCCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Where an event log stopped (topics.md "Event log"): per group the last
/// block it took (height, hash, anchor), the genesis it trusted, and how
/// many bytes of its output file were complete. Written after every block
/// to a temporary file renamed over the old one, so a reader always finds
/// a whole cursor, the old or the new.
public struct EventCursor: Sendable, Equatable {
    public struct Position: Sendable, Equatable {
        public var height: UInt64
        public var hash: [UInt8]
        public var anchor: UInt64
        public init(height: UInt64, hash: [UInt8], anchor: UInt64) {
            self.height = height
            self.hash = hash
            self.anchor = anchor
        }
    }
    /// SHA-256 of the genesis node keys, so a cursor is not used on another chain.
    public var genesis: String
    public var groups: [String: Position] = [:]
    /// Bytes of the output file up to and including the last block's events.
    public var outputBytes: UInt64? = nil

    public init(genesis: String) { self.genesis = genesis }

    public static func fingerprint(_ n: TrustedNetwork) -> String { Digest.sha256Hex(n.members.flatMap(\.raw)) }

    public var json: JSON {
        var gs: JSONObject = [:]
        for (g, p) in groups {
            gs[g] = ["height": .number(Double(p.height)), "hash": .string(Hex.encode(p.hash)), "anchor": .number(Double(p.anchor))]
        }
        var o: JSONObject = ["version": 1, "genesis": .string(genesis), "groups": .object(gs)]
        if let b = outputBytes { o["outputBytes"] = .number(Double(b)) }
        return .object(o)
    }

    public init(json j: JSON) throws(ReplayError) {
        guard j["version"]?.intValue == 1, let g = j["genesis"]?.stringValue, let gs = j["groups"]?.objectValue else {
            throw ReplayError(.cursor, "not an event cursor of version 1")
        }
        genesis = g
        for (name, p) in gs {
            guard let h = p["height"]?.intValue, h >= 0, let hx = p["hash"]?.stringValue, let hash = Hex.decode(hx), hash.count == 32,
                let a = p["anchor"]?.intValue, a >= 0
            else { throw ReplayError(.cursor, "the cursor's position of \(name) is malformed") }
            groups[name] = Position(height: UInt64(h), hash: hash, anchor: UInt64(a))
        }
        if let b = j["outputBytes"]?.intValue, b >= 0 { outputBytes = UInt64(b) }
    }

    /// The cursor in `path`, or nil when there is none yet.
    public static func load(_ path: String) throws(ReplayError) -> EventCursor? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let d = FileManager.default.contents(atPath: path), d.count <= 1 << 20 else { throw ReplayError(.cursor, "cannot read the cursor \(path)") }
        do { return try EventCursor(json: try JSONParser.parse(Array(d))) } catch let e as ReplayError { throw e } catch {
            throw ReplayError(.cursor, "the cursor \(path) is not JSON: \(error)")
        }
    }

    /// Writes the cursor atomically (temporary file, then rename).
    public func save(_ path: String) throws(ReplayError) {
        let tmp = path + ".tmp"
        let bytes = Array(((try? JCS.canonicalize(json)) ?? []) + [0x0A])
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw ReplayError(.cursor, "cannot write the cursor \(tmp): \(String(cString: strerror(errno)))") }
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
        guard n == bytes.count, rename(tmp, path) == 0 else {
            throw ReplayError(.cursor, "cannot write the cursor \(path): \(String(cString: strerror(errno)))")
        }
    }
}

/// Where events go: standard output, or a file the event log owns. A file
/// is cut back to the cursor's `outputBytes` when a consumer resumes, so
/// events of a block written before a crash but not yet in the cursor are
/// not there twice.
public final class EventOutput: @unchecked Sendable {
    private let fd: Int32
    private let owned: Bool
    public private(set) var bytes: UInt64 = 0
    private var buffer: [UInt8] = []

    /// Standard output.
    public init() {
        fd = 1
        owned = false
    }

    /// `path`, appended to, first cut back to `truncateTo` bytes if given
    /// (0 starts it empty; nil keeps what is there).
    public init(path: String, truncateTo: UInt64?) throws(ReplayError) {
        let f = open(path, O_WRONLY | O_CREAT, 0o644)
        guard f >= 0 else { throw ReplayError(.output, "cannot open \(path): \(String(cString: strerror(errno)))") }
        if let t = truncateTo, ftruncate(f, off_t(t)) != 0 {
            close(f)
            throw ReplayError(.output, "cannot cut \(path) back to \(t) bytes")
        }
        bytes = UInt64(lseek(f, 0, SEEK_END))
        fd = f
        owned = true
    }

    deinit { if owned { close(fd) } }

    /// Whether events go to a file this output owns (its size goes into the cursor).
    public var isFile: Bool { owned }

    /// Buffers one event line.
    public func add(_ event: JSON) {
        buffer.append(contentsOf: (try? JCS.canonicalize(event)) ?? [])
        buffer.append(0x0A)
    }

    /// Writes what is buffered; returns when the kernel has it.
    public func flush() throws(ReplayError) {
        var done = 0
        while done < buffer.count {
            let n = buffer.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
            guard n > 0 else {
                if n < 0 && errno == EINTR { continue }
                throw ReplayError(.output, "cannot write events: \(String(cString: strerror(errno)))")
            }
            done += n
        }
        bytes += UInt64(buffer.count)
        buffer.removeAll(keepingCapacity: true)
    }
}
