import EFSCConsensus
import EFSCCore
import EFSCLedger

/// Why a block was not accepted (topics.md "Event log"): a code for
/// counters and tests, and the reason shown to the user.
public struct BlockRefusal: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case malformed
        case wrongGroup = "wrong-group"
        case wrongHeight = "wrong-height"
        case badParent = "bad-parent"
        case badTransactionsRoot = "bad-transactions-root"
        case badCertificate = "bad-certificate"
        case badNullBlock = "bad-null-block"
        case tooLarge = "too-large"
    }
    public let code: Code
    public let height: UInt64?
    public let message: String
    public init(_ code: Code, _ message: String, height: UInt64? = nil) {
        self.code = code
        self.height = height
        self.message = message
    }
    public var description: String { "\(code.rawValue): \(message)" }
}

/// A block that passed every check, with its hash and how many of the
/// genesis keys signed its certificate.
public struct VerifiedBlock: Sendable {
    public let block: Block
    public let hash: [UInt8]
    public let signers: Int
    /// A null block: what a view change commits when it finds nothing to
    /// re-issue at a height (no transactions, proposer n, certified over
    /// SHA-256 of nothing).
    public let isNull: Bool
    public var height: UInt64 { block.header.height }
    public var group: String { block.header.group }
}

/// The checks a replay tool makes before it trusts a block, against the
/// genesis keys only: it decodes within the packet limit, is of the group
/// and the height due, links to the verified block before it, its
/// transactions root is the Merkle root of its transactions, and its commit
/// certificate holds 2f+1 distinct genesis keys' valid signatures over
/// commit(certificate view, height, block hash) — for a null block over
/// SHA-256 of nothing, so its header must be what every node derives
/// (timestamp 0, its certificate's view, the parent's anchor). At most n
/// certificate entries are checked. Pure: no I/O, no state.
public struct BlockVerifier: Sendable {
    public let network: TrustedNetwork
    public init(network: TrustedNetwork) { self.network = network }

    /// The group and height a block's bytes claim (topics.md `Block`), read
    /// without decoding it; nil if the bytes do not start like a block.
    public static func peek(_ b: [UInt8]) -> (group: String, height: UInt64)? {
        guard b.count > 4, b[0] == 0x45, b[1] == 0x42, b[2] == 1 else { return nil }
        let gl = Int(b[3])
        guard b.count >= 4 + gl + 8 else { return nil }
        let group = String(decoding: b[4..<(4 + gl)], as: UTF8.self)
        let height = b[(4 + gl)..<(12 + gl)].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return (group, height)
    }

    /// `parent`: the hash and anchor of the verified block at height − 1
    /// (nil when the replay starts at `height` without it: the link is then
    /// checked from the next block on).
    public func verify(
        _ encoded: [UInt8], group: String, height: UInt64, parent: (hash: [UInt8], anchor: UInt64)?
    ) throws(BlockRefusal) -> VerifiedBlock {
        guard encoded.count <= WireLimits.packetBytes else {
            throw BlockRefusal(.tooLarge, "\(encoded.count) bytes, over the packet limit of \(WireLimits.packetBytes)", height: height)
        }
        let b: Block
        do { b = try Block(decoding: encoded) } catch { throw BlockRefusal(.malformed, "\(error)", height: height) }
        return try verify(b, group: group, height: height, parent: parent)
    }

    public func verify(_ b: Block, group: String, height: UInt64, parent: (hash: [UInt8], anchor: UInt64)?) throws(BlockRefusal) -> VerifiedBlock {
        let h = b.header
        guard h.group == group else { throw BlockRefusal(.wrongGroup, "a block of group '\(h.group.prefix(40))' where \(group) was due", height: height) }
        guard h.height == height else { throw BlockRefusal(.wrongHeight, "block \(h.height) where \(height) was due", height: height) }
        if let p = parent {
            guard h.parentHash == p.hash else {
                throw BlockRefusal(.badParent, "block \(height) does not link to the verified block \(height - 1) (parent \(Hex.encode(h.parentHash).prefix(16))…)", height: height)
            }
        } else if height == 1, h.parentHash != [UInt8](repeating: 0, count: 32) {
            throw BlockRefusal(.badParent, "block 1 names a parent", height: height)
        }
        guard h.transactionsRoot == Block.transactionsRoot(b.transactions) else {
            throw BlockRefusal(.badTransactionsRoot, "block \(height): the transactions root is not the Merkle root of its transactions", height: height)
        }
        let n = network.members.count
        let isNull = b.transactions.isEmpty && h.proposer == n
        if isNull {
            guard h.timestamp == 0, h.view == b.certificateView, parent.map({ $0.anchor == h.anchor }) ?? true else {
                throw BlockRefusal(.badNullBlock, "null block \(height): its header is not the one every node derives (timestamp 0, view of its certificate, parent's anchor)", height: height)
            }
        } else if h.proposer >= n {
            throw BlockRefusal(.malformed, "block \(height): proposer \(h.proposer) is not a replica of \(n)", height: height)
        }
        let hash = b.hash
        let signers = CommitCertificate.validSigners(
            group: group, view: b.certificateView, seq: height, digest: isNull ? Digest.sha256([]) : hash,
            entries: b.certificate.map { ($0.replica, $0.signature) }, members: network.members)
        guard CommitCertificate.isQuorum(signers, members: n) else {
            throw BlockRefusal(.badCertificate, "block \(height): \(signers) valid commit signatures of the genesis keys, not 2f+1 = \(network.quorum) of \(n)", height: height)
        }
        return VerifiedBlock(block: b, hash: hash, signers: signers, isNull: isNull)
    }
}
