import EFSCAdversary
import EFSCConsensus
import EFSCCore

/// Structure-aware fuzzing of `PBFTReplica.step`: the input is a program
/// whose instructions build messages — votes, checkpoints, and nested trees
/// of view-changes and new-views assembled from messages seen so far (the
/// replica's own and earlier ones, re-labelled or mutated), signed by their
/// sender, forged or unsigned (a keyed-hash test authenticator stands in for
/// the node keys) — and feed them, ticks, proposals, synced blocks, executed
/// blocks and restarts to one replica of a group of 4 or 7. After every
/// step it checks what must hold whatever the other replicas send: no trap,
/// memory per peer within `PBFTReplica.footprintBound`, one own vote per
/// (view, sequence) and kind ever, every own vote persisted before it was
/// sent, and bounded signature checks per message. A violation traps, so
/// libFuzzer reports it as a finding.
struct ReplicaHarness {
    var bytes: [UInt8]
    var i = 0
    let config: PBFTConfig
    let me: Int
    let secrets: [[UInt8]]
    var replica: PBFTReplica
    var persisted = PBFTDurableState()
    /// Messages seen (sent by the replica or fed to it), for nested trees.
    var pool: [SignedMessage] = []
    /// Every (view, seq, kind) this replica voted on, with the digest.
    var votes: [String: [UInt8]] = [:]
    var executedHeight: UInt64 = 0
    static let maxSteps = 400

    init(_ data: [UInt8]) {
        bytes = data
        var c = PBFTConfig(group: "fuzz", n: (data.first ?? 0) & 1 == 0 ? 4 : 7)
        c.checkpointInterval = 4
        c.window = 8
        c.viewChangeTimeout = 6
        c.retransmitInterval = 2
        config = c
        me = Int((data.count > 1 ? data[1] : 0) % UInt8(c.n))
        secrets = KeyedHashAuthenticator.secrets(seed: 1, n: c.n)
        i = 2
        replica = PBFTReplica(config: c, me: me, authenticator: KeyedHashAuthenticator(me: me, secrets: secrets))
        replica.validate = Self.judge
    }

    /// Blocks whose first byte ≡ 0 (mod 3) are valid, ≡ 1 invalid, ≡ 2 not judgeable yet.
    static let judge: @Sendable (PBFTProposal) -> PBFTValidation = { p in
        switch (p.payload.first ?? 1) % 3 {
        case 0: return .valid
        case 1: return .invalid("fuzz: invalid block")
        default: return p.payload.count > 8 ? .valid : .notYet
        }
    }

    mutating func byte() -> UInt8 {
        guard i < bytes.count else { return 0 }
        defer { i += 1 }
        return bytes[i]
    }

    mutating func u64() -> UInt64 { (0..<8).reduce(0) { a, _ in a << 8 | UInt64(byte()) } }

    /// Views and sequence numbers that matter: near the replica's, the
    /// edges of the range, and 2⁶⁴−1.
    mutating func number(near base: UInt64) -> UInt64 {
        switch byte() % 10 {
        case 0: return 0
        case 1: return base
        case 2: return base &+ 1
        case 3: return base &+ UInt64(byte() % 16)
        case 4: return base > 0 ? base - 1 : 0
        case 5: return WireLimits.consensusMaxNumber
        case 6: return WireLimits.consensusMaxNumber + 1
        case 7: return .max
        case 8: return UInt64(byte())
        default: return u64()
        }
    }

    mutating func digest() -> [UInt8] {
        let k = byte()
        if k % 4 == 0 { return PBFTReplica.nullDigest }
        if k % 4 == 1, let pp = pool.last(where: { if case .prePrepare = $0.message { true } else { false } }), case .prePrepare(_, _, let d, _) = pp.message { return d }
        return Digest.sha256([k])
    }

    mutating func sender() -> Int { Int(byte()) % (config.n + 1) }

    /// Signed by `sender`, forged, or unsigned, as the next byte says.
    mutating func signed(_ sender: Int, _ m: PBFTMessage) -> SignedMessage {
        let how = byte() % 8
        let s = min(max(sender, 0), config.n - 1)
        let sig = KeyedHashAuthenticator(me: s, secrets: secrets).sign(PBFTCodec.signingBytes(group: config.group, sender: sender, message: m))
        switch how {
        case 0: return SignedMessage(sender: sender, message: m, signature: [])
        case 1: return SignedMessage(sender: sender, message: m, signature: sig.map { $0 ^ 1 })
        default: return SignedMessage(sender: sender, message: m, signature: sig)
        }
    }

    mutating func fromPool(_ kind: UInt8) -> SignedMessage? {
        let matching = pool.filter { $0.message.kind == kind }
        guard !matching.isEmpty else { return nil }
        return matching[Int(byte()) % matching.count]
    }

    mutating func list(_ kind: UInt8, max: Int) -> [SignedMessage] {
        (0..<Int(byte()) % (max + 1)).compactMap { _ in fromPool(kind) }
    }

    mutating func preparedCertificates(below nv: UInt64) -> [PreparedCertificate] {
        (0..<Int(byte() % 3)).compactMap { _ in
            guard let pp = fromPool(1) else { return nil }
            return PreparedCertificate(prePrepare: pp, prepares: list(2, max: 2 * config.f + 1))
        }
    }

    mutating func message() -> SignedMessage {
        let v = number(near: replica.view)
        let s = number(near: replica.lastExecuted + 1)
        let from = sender()
        switch byte() % 8 {
        case 0:
            let payload: [UInt8] = byte() % 4 == 0 ? [] : [byte(), byte(), byte()] + (byte() % 2 == 0 ? [] : Array(repeating: 7, count: 9))
            let d = byte() % 5 == 0 ? digest() : Digest.sha256(payload)
            return signed(from, .prePrepare(view: v, seq: s, digest: d, payload: payload))
        case 1: return signed(from, .prepare(view: v, seq: s, digest: digest()))
        case 2: return signed(from, .commit(view: v, seq: s, digest: digest()))
        case 3: return signed(from, .checkpoint(seq: s - s % config.checkpointInterval, stateDigest: digest()))
        case 4:
            let le = byte() % 2 == 0 ? 0 : s - s % config.checkpointInterval
            return signed(from, .viewChange(newView: v, stableSeq: le, stableDigest: le == 0 ? PBFTReplica.genesisDigest : digest(),
                checkpointProof: list(4, max: config.quorum + 1), prepared: preparedCertificates(below: v)))
        case 5:
            var vcs = list(5, max: config.quorum + 1)
            if byte() % 2 == 0 {
                // Fresh view-changes for exactly this view, signed (or not) by distinct members.
                vcs = (0..<config.quorum).map { k in signed(k, .viewChange(newView: v, stableSeq: 0, stableDigest: PBFTReplica.genesisDigest, checkpointProof: [], prepared: [])) }
            }
            return signed(from, .newView(view: v, viewChanges: vcs, prePrepares: list(1, max: 3)))
        case 6:
            // A seen message replayed as is, or with its sender changed.
            guard let m = fromPool(UInt8(1 + byte() % 6)) else { return signed(from, .prepare(view: v, seq: s, digest: digest())) }
            return byte() % 2 == 0 ? m : SignedMessage(sender: from, message: m.message, signature: m.signature)
        default:
            return signed(from, .commit(view: replica.view, seq: replica.lastExecuted + 1, digest: digest()))
        }
    }

    mutating func run() {
        var steps = 0
        while i < bytes.count, steps < Self.maxSteps {
            steps += 1
            let before = replica.signatureChecks
            var isMessage = false
            let actions: [PBFTAction]
            switch byte() % 12 {
            case 0, 1, 2, 3, 4:
                let m = message()
                pool.append(m)
                if pool.count > 256 { pool.removeFirst(64) }
                isMessage = true
                actions = replica.step(.message(m))
            case 5: actions = replica.step(.tick)
            case 6: actions = replica.step(.propose([0, byte(), byte()]))
            case 7: actions = replica.step(.pendingWork(byte() % 2 == 0))
            case 8:
                let s = replica.lastExecuted
                actions = s > executedHeight ? replica.step(.executed(seq: s, stateDigest: Digest.sha256(Array("state-\(s)".utf8)))) : []
                executedHeight = max(executedHeight, s)
            case 9:
                let payload = [0, byte()]
                let d = Digest.sha256(payload)
                let seq = replica.lastExecuted + 1
                let cert = (0..<config.quorum).map { k in signed(k, .commit(view: replica.view, seq: seq, digest: d)) }
                actions = replica.step(.synced(seq: byte() % 4 == 0 ? number(near: seq) : seq, payload: payload, certificate: cert))
            case 10:
                // A crash and restart from what was persisted.
                replica = PBFTReplica(config: config, me: me, authenticator: KeyedHashAuthenticator(me: me, secrets: secrets), durable: persisted)
                replica.validate = Self.judge
                actions = []
            default:
                for _ in 0..<Int(byte() % 8) { _ = replica.step(.tick) }
                actions = replica.step(.tick)
            }
            check(actions, checks: replica.signatureChecks - before, isMessage: isMessage)
        }
    }

    mutating func check(_ actions: [PBFTAction], checks: Int, isMessage: Bool) {
        for a in actions {
            switch a {
            case .persist(let d):
                precondition(d.view >= persisted.view, "replica fuzz: the persisted view went back from \(persisted.view) to \(d.view)")
                persisted = d
            case .send(_, let m) where m.sender != me:
                // A new-view forwarded to a replica behind: its primary's, verified.
                guard case .newView = m.message else { preconditionFailure("replica fuzz: forwarded a \(m.message.kindName) of replica \(m.sender)") }
            case .broadcast(let m), .send(_, let m):
                pool.append(m)
                guard m.sender == me else { preconditionFailure("replica fuzz: sent a message as replica \(m.sender)") }
                let kind: String
                let key: (UInt64, UInt64, [UInt8])
                switch m.message {
                case .prePrepare(let v, let s, let d, _): (kind, key) = ("p", (v, s, d))
                case .prepare(let v, let s, let d): (kind, key) = ("p", (v, s, d))
                case .commit(let v, let s, let d): (kind, key) = ("c", (v, s, d))
                default: continue
                }
                let id = "\(kind)/\(key.0)/\(key.1)"
                if let earlier = votes[id] { precondition(earlier == key.2, "replica fuzz: two different votes for \(id)") }
                votes[id] = key.2
                let durable = kind == "p" ? persisted.prepareVotes : persisted.commitVotes
                precondition(key.1 <= persisted.stableSeq || durable[VoteKey(view: key.0, seq: key.1)] == key.2, "replica fuzz: vote \(id) sent before it was persisted")
            default:
                break
            }
        }
        let bound = PBFTReplica.footprintBound(config)
        let f = replica.footprint
        for (s, count) in f.perSender { precondition(count <= bound, "replica fuzz: \(count) messages held from replica \(s) (bound \(bound))") }
        precondition(f.prepared <= Int(config.logSize) && f.ownVotes <= 4 * Int(config.logSize), "replica fuzz: log over its bounds: \(f)")
        if isMessage { precondition(checks <= config.maxNewViewSignatures + 1, "replica fuzz: \(checks) signature checks for one message") }
        if pool.count > 256 { pool.removeFirst(pool.count - 256) }
    }
}
