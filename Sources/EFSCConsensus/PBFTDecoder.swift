import EFSCCore

/// Why consensus bytes could not be decoded (input from the network: never traps).
public struct PBFTDecodingError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { "malformed consensus message: \(message)" }
}

extension PBFTCodec {
    /// Wire form of a signed message: the signing bytes, then u16 signature length and the signature.
    public static func encode(group: String, _ m: SignedMessage) -> [UInt8] {
        var w = Writer()
        w.b = header(group: group, sender: m.sender, message: m.message, withBlocks: true)
        w.u16(m.signature.count)
        w.b.append(contentsOf: m.signature)
        return w.b
    }

    /// The smallest nested signed message: kind, sender, the smallest body
    /// (prepare/commit/checkpoint, 48 bytes) and the signature's length. The
    /// signature may be any length here; verification judges it, so a short
    /// one is reported as a bad signature rather than as a decoding error.
    static let minNestedBytes = 55

    struct Reader {
        let b: [UInt8]
        var i = 0
        mutating func take(_ n: Int) throws -> [UInt8] {
            guard n >= 0, i + n <= b.count else { throw PBFTDecodingError(message: "truncated at byte \(i)") }
            defer { i += n }
            return Array(b[i..<(i + n)])
        }
        mutating func uint(_ n: Int) throws -> UInt64 { try take(n).reduce(0) { $0 << 8 | UInt64($1) } }
        /// A list length, at most `limit` (network input) and never more than the bytes left could hold.
        mutating func count(_ minItemBytes: Int, limit: Int = WireLimits.consensusListItems) throws -> Int {
            let c = Int(try uint(4))
            guard c <= limit else { throw PBFTDecodingError(message: "a list of \(c) items at byte \(i) (limit \(WireLimits.consensusListItems))") }
            guard c <= (b.count - i) / max(1, minItemBytes) else {
                throw PBFTDecodingError(message: "a list of \(c) items at byte \(i) cannot fit in the \(b.count - i) bytes left (truncated or corrupt)")
            }
            return c
        }
    }

    /// Decodes the wire form; returns the group and the signed message.
    public static func decode(_ bytes: [UInt8]) throws -> (group: String, message: SignedMessage) {
        var r = Reader(b: bytes)
        guard try r.take(3) == [0x45, 0x50, version] else { throw PBFTDecodingError(message: "bad magic or version (this node speaks version \(version))") }
        let kind = UInt8(try r.uint(1))
        let group = String(decoding: try r.take(Int(try r.uint(1))), as: UTF8.self)
        let sender = Int(try r.uint(2))
        let m = try body(kind, &r, depth: 0)
        let sig = try r.take(Int(try r.uint(2)))
        guard r.i == bytes.count else { throw PBFTDecodingError(message: "\(bytes.count - r.i) trailing bytes") }
        return (group, SignedMessage(sender: sender, message: m, signature: sig))
    }

    static func nested(_ r: inout Reader, depth: Int) throws -> SignedMessage {
        let kind = UInt8(try r.uint(1))
        let sender = Int(try r.uint(2))
        let m = try body(kind, &r, depth: depth + 1)
        let sig = try r.take(Int(try r.uint(4)))
        return SignedMessage(sender: sender, message: m, signature: sig)
    }

    static func body(_ kind: UInt8, _ r: inout Reader, depth: Int) throws -> PBFTMessage {
        guard depth <= 3 else { throw PBFTDecodingError(message: "nested too deeply") }
        switch kind {
        case 1:
            let v = try r.uint(8), s = try r.uint(8), d = try r.take(32)
            let p = try r.take(Int(try r.uint(4)))
            return .prePrepare(view: v, seq: s, digest: d, payload: p)
        case 2, 3:
            let v = try r.uint(8), s = try r.uint(8), d = try r.take(32)
            return kind == 2 ? .prepare(view: v, seq: s, digest: d) : .commit(view: v, seq: s, digest: d)
        case 4:
            _ = try r.uint(8)
            let s = try r.uint(8), d = try r.take(32)
            return .checkpoint(seq: s, stateDigest: d)
        case 5:
            let nv = try r.uint(8), ss = try r.uint(8), sd = try r.take(32)
            var proof: [SignedMessage] = []
            for _ in 0..<(try r.count(minNestedBytes)) { proof.append(try nested(&r, depth: depth)) }
            var prepared: [PreparedCertificate] = []
            for _ in 0..<(try r.count(minNestedBytes)) {
                let pp = try nested(&r, depth: depth)
                var ps: [SignedMessage] = []
                for _ in 0..<(try r.count(minNestedBytes)) { ps.append(try nested(&r, depth: depth)) }
                prepared.append(PreparedCertificate(prePrepare: pp, prepares: ps))
            }
            var executed: [SignedMessage] = []
            for _ in 0..<(try r.count(minNestedBytes)) { executed.append(try nested(&r, depth: depth)) }
            return .viewChange(newView: nv, stableSeq: ss, stableDigest: sd, checkpointProof: proof, prepared: prepared, executedProof: executed)
        case 6:
            let v = try r.uint(8)
            _ = try r.uint(8)
            var vcs: [SignedMessage] = []
            for _ in 0..<(try r.count(minNestedBytes)) { vcs.append(try nested(&r, depth: depth)) }
            var pps: [SignedMessage] = []
            for _ in 0..<(try r.count(minNestedBytes)) { pps.append(try nested(&r, depth: depth)) }
            return .newView(view: v, viewChanges: vcs, prePrepares: pps)
        default:
            throw PBFTDecodingError(message: "unknown message type \(kind)")
        }
    }

    // MARK: durable state

    /// Bytes of a replica's durable state (stored before its votes are sent).
    public static func encode(durable d: PBFTDurableState) -> [UInt8] {
        var w = Writer()
        w.b = [0x45, 0x44, 1]
        w.u64(d.view); w.u8(d.changingView ? 1 : 0); w.u64(d.lastExec); w.digest(d.lastExecDigest)
        w.u32(d.lastExecCert.count); for c in d.lastExecCert { signed(c, into: &w) }
        w.u64(d.stableSeq); w.digest(d.stableDigest)
        w.u32(d.stableProof.count); for c in d.stableProof { signed(c, into: &w) }
        w.u32(d.executed.count); for (s, x) in d.executed.sorted(by: { $0.key < $1.key }) { w.u64(s); w.digest(x) }
        for votes in [d.prepareVotes, d.commitVotes] {
            w.u32(votes.count)
            for (k, x) in votes.sorted(by: { ($0.key.view, $0.key.seq) < ($1.key.view, $1.key.seq) }) { w.u64(k.view); w.u64(k.seq); w.digest(x) }
        }
        w.u32(d.prepared.count)
        for (_, p) in d.prepared.sorted(by: { $0.key < $1.key }) {
            signed(p.prePrepare, into: &w)
            w.u32(p.prepares.count)
            for x in p.prepares { signed(x, into: &w) }
        }
        return w.b
    }

    public static func decodeDurable(_ bytes: [UInt8]) throws -> PBFTDurableState {
        var r = Reader(b: bytes)
        guard try r.take(3) == [0x45, 0x44, 1] else { throw PBFTDecodingError(message: "bad durable-state header") }
        var d = PBFTDurableState()
        d.view = try r.uint(8)
        d.changingView = try r.uint(1) == 1
        d.lastExec = try r.uint(8)
        d.lastExecDigest = try r.take(32)
        for _ in 0..<(try r.count(minNestedBytes, limit: .max)) { d.lastExecCert.append(try nested(&r, depth: 0)) }
        d.stableSeq = try r.uint(8)
        d.stableDigest = try r.take(32)
        for _ in 0..<(try r.count(minNestedBytes, limit: .max)) { d.stableProof.append(try nested(&r, depth: 0)) }
        for _ in 0..<(try r.count(40, limit: .max)) { d.executed[try r.uint(8)] = try r.take(32) }
        for k in 0..<2 {
            for _ in 0..<(try r.count(48, limit: .max)) {
                let key = VoteKey(view: try r.uint(8), seq: try r.uint(8))
                let x = try r.take(32)
                if k == 0 { d.prepareVotes[key] = x } else { d.commitVotes[key] = x }
            }
        }
        for _ in 0..<(try r.count(minNestedBytes, limit: .max)) {
            let pp = try nested(&r, depth: 0)
            var ps: [SignedMessage] = []
            for _ in 0..<(try r.count(minNestedBytes, limit: .max)) { ps.append(try nested(&r, depth: 0)) }
            let c = PreparedCertificate(prePrepare: pp, prepares: ps)
            d.prepared[c.seq] = c
        }
        return d
    }
}
