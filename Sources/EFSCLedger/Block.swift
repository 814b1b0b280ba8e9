import EFSCCore

/// Why bytes are not a block.
public struct BlockDecodingError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { "malformed block: \(message)" }
}

/// A block header (topics.md `Block`).
public struct BlockHeader: Sendable, Hashable {
    public var group: String
    public var height: UInt64
    public var parentHash: [UInt8]
    public var stateRoot: [UInt8]
    public var transactionsRoot: [UInt8]
    public var proposer: Int
    public var view: UInt64
    /// Milliseconds since the Unix epoch, chosen by the proposer.
    public var timestamp: UInt64
    /// Height of the identity group the transactions were executed against
    /// (DIDs and templates are read as of it); 0 on the identity group.
    public var anchor: UInt64

    public init(
        group: String, height: UInt64, parentHash: [UInt8], stateRoot: [UInt8], transactionsRoot: [UInt8], proposer: Int, view: UInt64,
        timestamp: UInt64, anchor: UInt64 = 0
    ) {
        self.group = group
        self.height = height
        self.parentHash = parentHash
        self.stateRoot = stateRoot
        self.transactionsRoot = transactionsRoot
        self.proposer = proposer
        self.view = view
        self.timestamp = timestamp
        self.anchor = anchor
    }
}

/// One replica's signature in a commit certificate.
public struct CertificateEntry: Sendable, Hashable {
    public let replica: Int
    public let signature: [UInt8]
    public init(replica: Int, signature: [UInt8]) {
        self.replica = replica
        self.signature = signature
    }
}

/// A block: header, transactions (canonical JSON bytes) and the commit
/// certificate (2f+1 replicas' signed PBFT commits for the block's hash).
/// The deterministic binary encoding is topics.md's; the block hash covers
/// everything but the certificate, and equals the PBFT digest.
public struct Block: Sendable, Hashable {
    public var header: BlockHeader
    public var transactions: [[UInt8]]
    public var certificateView: UInt64 = 0
    public var certificate: [CertificateEntry] = []

    public init(header: BlockHeader, transactions: [[UInt8]]) {
        self.header = header
        self.transactions = transactions
    }

    public static func transactionsRoot(_ txs: [[UInt8]]) -> [UInt8] { Merkle.root(txs.map(Merkle.leafHash)) }

    /// The bytes that are hashed and agreed on (no certificate).
    public var body: [UInt8] { bodyWithRoom(forCertificate: false) }

    /// The body in one buffer of its final size (blocks are up to 700 KB,
    /// and growing one by doubling copied it several times), with room for
    /// the certificate if asked.
    func bodyWithRoom(forCertificate: Bool) -> [UInt8] {
        let g = Array(header.group.utf8.prefix(255))
        var size = 3 + 1 + g.count + 8 + 96 + 2 + 8 + 8 + 8 + 4 + transactions.reduce(0) { $0 + 4 + $1.count }
        if forCertificate { size += 10 + certificate.reduce(0) { $0 + 4 + $1.signature.count } }
        var w: [UInt8] = [0x45, 0x42, 1]
        w.reserveCapacity(size)
        w.append(UInt8(g.count))
        w += g
        Self.put(&w, header.height, 8)
        w += Self.fixed32(header.parentHash)
        w += Self.fixed32(header.stateRoot)
        w += Self.fixed32(header.transactionsRoot)
        Self.put(&w, UInt64(header.proposer), 2)
        Self.put(&w, header.view, 8)
        Self.put(&w, header.timestamp, 8)
        Self.put(&w, header.anchor, 8)
        Self.put(&w, UInt64(transactions.count), 4)
        for t in transactions {
            Self.put(&w, UInt64(t.count), 4)
            w += t
        }
        return w
    }

    public var hash: [UInt8] { Digest.sha256(body) }

    /// Body plus certificate: view (u64), count (u16), then (replica u16, length u16, signature).
    public var encoded: [UInt8] {
        var w = bodyWithRoom(forCertificate: true)
        appendCertificate(&w)
        return w
    }

    /// The encoding and the hash (of its body, a prefix of it) from one
    /// encoding of the block.
    public var encodedAndHash: (encoded: [UInt8], hash: [UInt8]) {
        var w = bodyWithRoom(forCertificate: true)
        let hash = Digest.sha256(w)
        appendCertificate(&w)
        return (w, hash)
    }

    func appendCertificate(_ w: inout [UInt8]) {
        Self.put(&w, certificateView, 8)
        Self.put(&w, UInt64(certificate.count), 2)
        for c in certificate {
            Self.put(&w, UInt64(c.replica), 2)
            Self.put(&w, UInt64(c.signature.count), 2)
            w += c.signature
        }
    }

    static func put(_ w: inout [UInt8], _ v: UInt64, _ n: Int) {
        for k in (0..<n).reversed() { w.append(UInt8(truncatingIfNeeded: v >> UInt64(8 * k))) }
    }

    static func fixed32(_ x: [UInt8]) -> [UInt8] {
        x.count == 32 ? x : Array((x + [UInt8](repeating: 0, count: 32)).prefix(32))
    }

    /// Decodes a block (with or without a certificate); never traps on bad input.
    public init(decoding b: [UInt8]) throws {
        var i = 0
        func take(_ n: Int) throws -> ArraySlice<UInt8> {
            guard n >= 0, i + n <= b.count else { throw BlockDecodingError(message: "truncated at byte \(i)") }
            defer { i += n }
            return b[i..<(i + n)]
        }
        func uint(_ n: Int) throws -> UInt64 { try take(n).reduce(0) { $0 << 8 | UInt64($1) } }
        guard Array(try take(3)) == [0x45, 0x42, 1] else { throw BlockDecodingError(message: "bad magic or version") }
        let gl = Int(try uint(1))
        let group = String(decoding: try take(gl), as: UTF8.self)
        let height = try uint(8)
        let parent = Array(try take(32))
        let state = Array(try take(32))
        let txRoot = Array(try take(32))
        let proposer = Int(try uint(2))
        let view = try uint(8)
        let ts = try uint(8)
        let anchor = try uint(8)
        let count = Int(try uint(4))
        guard count <= (b.count - i) / 4 else { throw BlockDecodingError(message: "transaction count \(count) exceeds the data") }
        var txs: [[UInt8]] = []
        txs.reserveCapacity(count)
        for _ in 0..<count { txs.append(Array(try take(Int(try uint(4))))) }
        self.init(
            header: BlockHeader(
                group: group, height: height, parentHash: parent, stateRoot: state, transactionsRoot: txRoot, proposer: proposer, view: view,
                timestamp: ts, anchor: anchor),
            transactions: txs)
        if i < b.count {
            certificateView = try uint(8)
            let c = Int(try uint(2))
            for _ in 0..<c {
                let r = Int(try uint(2))
                let sig = Array(try take(Int(try uint(2))))
                certificate.append(CertificateEntry(replica: r, signature: sig))
            }
            guard i == b.count else { throw BlockDecodingError(message: "\(b.count - i) trailing bytes") }
        }
    }

    /// Inclusion proof of transaction `index` against the header's transactions root.
    public func inclusionProof(index: Int) -> [[UInt8]] { Merkle.proof(transactions.map(Merkle.leafHash), index: index) }
}

extension Block {
    /// The block as users see it (JSON), with its hash and certificate.
    public var json: JSON {
        let b = self
        let o: JSONObject = [
            "group": .string(b.header.group), "height": .number(Double(b.header.height)), "hash": .string(Hex.encode(b.hash)),
            "parentHash": .string(Hex.encode(b.header.parentHash)), "stateRoot": .string(Hex.encode(b.header.stateRoot)),
            "transactionsRoot": .string(Hex.encode(b.header.transactionsRoot)), "proposer": .number(Double(b.header.proposer)),
            "view": .number(Double(b.header.view)), "timestamp": .number(Double(b.header.timestamp)),
            "transactions": .array(b.transactions.map { (try? JSONParser.parse($0)) ?? .null }),
            "certificate": .array(b.certificate.map { ["replica": .number(Double($0.replica)), "signature": .string(Hex.encode($0.signature))] }),
            "anchor": .number(Double(b.header.anchor)),
        ]
        return .object(o)
    }
}
