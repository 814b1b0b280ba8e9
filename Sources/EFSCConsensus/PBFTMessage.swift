import EFSCCore

/// A consensus message body (Castro–Liskov PBFT). Sequence numbers are block
/// heights; digests are SHA-256 of the block payload.
public indirect enum PBFTMessage: Hashable, Sendable {
    case prePrepare(view: UInt64, seq: UInt64, digest: [UInt8], payload: [UInt8])
    case prepare(view: UInt64, seq: UInt64, digest: [UInt8])
    case commit(view: UInt64, seq: UInt64, digest: [UInt8])
    case checkpoint(seq: UInt64, stateDigest: [UInt8])
    /// A replica's move to `newView`: its last stable checkpoint with the 2f+1
    /// checkpoint messages proving it, the commit certificate of the last
    /// block it executed (`executedProof`: 2f+1 commits; empty for none), and
    /// every prepared certificate above both. Blocks up to the executed one
    /// are committed and fetched by state transfer, so a view-change carries
    /// only the few blocks still in flight and fits a packet under load.
    case viewChange(
        newView: UInt64, stableSeq: UInt64, stableDigest: [UInt8], checkpointProof: [SignedMessage], prepared: [PreparedCertificate],
        executedProof: [SignedMessage] = [])
    /// The new primary's proof of 2f+1 view changes and the pre-prepares it re-issues.
    case newView(view: UInt64, viewChanges: [SignedMessage], prePrepares: [SignedMessage])

    public var kind: UInt8 {
        switch self {
        case .prePrepare: return 1
        case .prepare: return 2
        case .commit: return 3
        case .checkpoint: return 4
        case .viewChange: return 5
        case .newView: return 6
        }
    }

    public var kindName: String {
        ["", "pre-prepare", "prepare", "commit", "checkpoint", "view-change", "new-view"][Int(kind)]
    }
}

/// A message with its sender's replica index and signature.
public struct SignedMessage: Hashable, Sendable {
    public let sender: Int
    public let message: PBFTMessage
    public let signature: [UInt8]

    public init(sender: Int, message: PBFTMessage, signature: [UInt8]) {
        self.sender = sender
        self.message = message
        self.signature = signature
    }
}

/// Proof that a block was prepared at (view, seq): the primary's pre-prepare
/// and 2f matching prepares from distinct backups.
public struct PreparedCertificate: Hashable, Sendable {
    public let prePrepare: SignedMessage
    public let prepares: [SignedMessage]

    public init(prePrepare: SignedMessage, prepares: [SignedMessage]) {
        self.prePrepare = prePrepare
        self.prepares = prepares
    }

    public var view: UInt64 {
        if case .prePrepare(let v, _, _, _) = prePrepare.message { return v }
        return 0
    }
    public var seq: UInt64 {
        if case .prePrepare(_, let s, _, _) = prePrepare.message { return s }
        return 0
    }
    public var digest: [UInt8] {
        if case .prePrepare(_, _, let d, _) = prePrepare.message { return d }
        return []
    }
    public var payload: [UInt8] {
        if case .prePrepare(_, _, _, let p) = prePrepare.message { return p }
        return []
    }
}

/// Deterministic binary encoding of consensus messages (the layout of
/// topics.md's `ConsensusMessage`; nested messages carry their signatures).
public enum PBFTCodec {
    struct Writer {
        var b: [UInt8] = []
        /// Whether pre-prepares carry their blocks (on the wire) or not (signed bytes).
        var withBlocks = true
        mutating func u8(_ v: UInt8) { b.append(v) }
        mutating func u16(_ v: Int) { b.append(UInt8(truncatingIfNeeded: v >> 8)); b.append(UInt8(truncatingIfNeeded: v)) }
        mutating func u32(_ v: Int) {
            let x = UInt32(truncatingIfNeeded: v).bigEndian
            withUnsafeBytes(of: x) { b.append(contentsOf: $0) }
        }
        mutating func u64(_ v: UInt64) {
            let x = v.bigEndian
            withUnsafeBytes(of: x) { b.append(contentsOf: $0) }
        }
        mutating func bytes(_ x: [UInt8]) { u32(x.count); b.append(contentsOf: x) }
        mutating func digest(_ x: [UInt8]) {
            // Fixed 32 bytes; shorter or longer digests are padded/truncated so
            // a malformed message still encodes (and then fails verification).
            if x.count == 32 {
                b.append(contentsOf: x)
            } else {
                for k in 0..<32 { b.append(k < x.count ? x[k] : 0) }
            }
        }
    }

    /// Format version of `ConsensusMessage` (2: pre-prepare blocks are
    /// signed through their digest; 3: view-changes carry the commit
    /// certificate of the sender's last executed block).
    static let version: UInt8 = 3

    /// The bytes a sender signs: group, sender and the message, with every
    /// pre-prepare's block (its length and bytes) left out. The digest stands
    /// for the block (receivers check SHA-256 of the block against it), so a
    /// leader signs, and each replica verifies, 100 bytes rather than up to
    /// 700 KB — Ed25519 hashes what it signs, twice to sign and once to verify.
    public static func signingBytes(group: String, sender: Int, message: PBFTMessage) -> [UInt8] {
        header(group: group, sender: sender, message: message, withBlocks: false)
    }

    /// The message as sent, up to its signature.
    static func header(group: String, sender: Int, message: PBFTMessage, withBlocks: Bool) -> [UInt8] {
        var w = Writer()
        w.withBlocks = withBlocks
        w.b.append(contentsOf: [0x45, 0x50, version, message.kind])
        let g = Array(group.utf8.prefix(255))
        w.u8(UInt8(g.count))
        w.b.append(contentsOf: g)
        w.u16(sender)
        body(message, into: &w)
        return w.b
    }

    static func body(_ m: PBFTMessage, into w: inout Writer) {
        switch m {
        case .prePrepare(let v, let s, let d, let p):
            w.u64(v); w.u64(s); w.digest(d)
            if w.withBlocks { w.bytes(p) }
        case .prepare(let v, let s, let d), .commit(let v, let s, let d):
            w.u64(v); w.u64(s); w.digest(d)
        case .checkpoint(let s, let d):
            w.u64(0); w.u64(s); w.digest(d)
        case .viewChange(let nv, let le, let ed, let cert, let prepared, let executed):
            w.u64(nv); w.u64(le); w.digest(ed)
            w.u32(cert.count)
            for c in cert { signed(c, into: &w) }
            w.u32(prepared.count)
            for p in prepared {
                signed(p.prePrepare, into: &w)
                w.u32(p.prepares.count)
                for x in p.prepares { signed(x, into: &w) }
            }
            w.u32(executed.count)
            for c in executed { signed(c, into: &w) }
        case .newView(let v, let vcs, let pps):
            w.u64(v); w.u64(0)
            w.u32(vcs.count)
            for x in vcs { signed(x, into: &w) }
            w.u32(pps.count)
            for x in pps { signed(x, into: &w) }
        }
    }

    static func signed(_ s: SignedMessage, into w: inout Writer) {
        w.u8(s.message.kind)
        w.u16(s.sender)
        body(s.message, into: &w)
        w.bytes(s.signature)
    }
}

/// Signs and checks consensus messages. Production nodes use Ed25519 node
/// keys; the simulator uses a cheap keyed hash with the same properties
/// (nobody can sign for another replica).
public protocol PBFTAuthenticator: Sendable {
    func sign(_ bytes: [UInt8]) -> [UInt8]
    func verify(sender: Int, _ bytes: [UInt8], signature: [UInt8]) -> Bool
}

/// Ed25519 node keys: this replica's secret key and every member's public key.
public struct Ed25519Authenticator: PBFTAuthenticator {
    let secret: Ed25519SecretKey
    let members: [Ed25519PublicKey]

    public init(secret: Ed25519SecretKey, members: [Ed25519PublicKey]) {
        self.secret = secret
        self.members = members
    }

    public func sign(_ bytes: [UInt8]) -> [UInt8] { (try? secret.sign(bytes)) ?? [] }

    public func verify(sender: Int, _ bytes: [UInt8], signature: [UInt8]) -> Bool {
        guard sender >= 0, sender < members.count else { return false }
        return members[sender].isValidSignature(signature, for: bytes)
    }
}

/// A commit certificate as blocks carry it (topics.md `Block`): signatures
/// of replicas over `commit(view, seq, digest)`. Anyone holding the
/// network's node keys can check it without running consensus.
public enum CommitCertificate {
    /// How many distinct members' commit signatures over (view, seq, digest)
    /// verify, checking each member at most once and at most `n` entries
    /// in all (a certificate padded with junk costs no more than `n` checks).
    public static func validSigners(
        group: String, view: UInt64, seq: UInt64, digest: [UInt8], entries: [(replica: Int, signature: [UInt8])], members: [Ed25519PublicKey]
    ) -> Int {
        var seen = Set<Int>()
        var valid = 0
        let message = PBFTMessage.commit(view: view, seq: seq, digest: digest)
        for e in entries.prefix(members.count) where e.replica >= 0 && e.replica < members.count && seen.insert(e.replica).inserted {
            if members[e.replica].isValidSignature(e.signature, for: PBFTCodec.signingBytes(group: group, sender: e.replica, message: message)) { valid += 1 }
        }
        return valid
    }

    /// Whether 2f+1 of n = 3f+1 members signed.
    public static func isQuorum(_ signers: Int, members n: Int) -> Bool { n >= 4 && signers >= 2 * ((n - 1) / 3) + 1 }
}
