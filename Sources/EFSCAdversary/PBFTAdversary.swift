import EFSCConsensus
import EFSCCore

/// A Byzantine replica's workshop: it watches what the honest replicas
/// send and crafts well-formed attacks signed with its own key (and forged
/// signatures for everyone else's). Pure and deterministic for a given
/// random generator, so simulator seeds replay.
public struct PBFTAdversary: Sendable {
    public let config: PBFTConfig
    public let me: Int
    let auth: any PBFTAuthenticator
    /// The highest view and sequence seen from honest replicas.
    public private(set) var view: UInt64 = 0
    public private(set) var seq: UInt64 = 0
    private(set) var prePrepares: [SignedMessage] = []
    private(set) var prepares: [SignedMessage] = []
    private(set) var checkpoints: [SignedMessage] = []
    private(set) var viewChanges: [SignedMessage] = []
    static let keep = 64

    public init(config: PBFTConfig, me: Int, authenticator: any PBFTAuthenticator) {
        self.config = config
        self.me = me
        self.auth = authenticator
    }

    /// Takes note of a message an honest replica sent.
    public mutating func observe(_ m: SignedMessage) {
        guard m.sender != me else { return }
        func push(_ list: inout [SignedMessage]) {
            list.append(m)
            if list.count > Self.keep { list.removeFirst(list.count - Self.keep) }
        }
        switch m.message {
        case .prePrepare(let v, let s, _, _):
            view = max(view, min(v, WireLimits.consensusMaxNumber))
            seq = max(seq, min(s, WireLimits.consensusMaxNumber))
            push(&prePrepares)
        case .prepare(let v, let s, _), .commit(let v, let s, _):
            view = max(view, min(v, WireLimits.consensusMaxNumber))
            seq = max(seq, min(s, WireLimits.consensusMaxNumber))
            if case .prepare = m.message { push(&prepares) }
        case .checkpoint: push(&checkpoints)
        case .viewChange: push(&viewChanges)
        case .newView(let v, _, _): view = max(view, min(v, WireLimits.consensusMaxNumber))
        }
    }

    public func sign(_ m: PBFTMessage) -> SignedMessage {
        SignedMessage(sender: me, message: m, signature: auth.sign(PBFTCodec.signingBytes(group: config.group, sender: me, message: m)))
    }

    /// A message claiming to be from `sender` with a signature that is not its.
    func forged<R: RandomNumberGenerator>(_ sender: Int, _ m: PBFTMessage, _ rng: inout R) -> SignedMessage {
        let real = sign(m).signature
        return SignedMessage(sender: sender, message: m, signature: real.isEmpty ? [1] : real.map { $0 ^ UInt8(truncatingIfNeeded: rng.next() | 1) })
    }

    /// The next view after `after` whose primary is this replica (nil past the range).
    public func nextViewLed(after: UInt64) -> UInt64? {
        let n = UInt64(config.n)
        guard after < WireLimits.consensusMaxNumber else { return nil }
        let v = after + 1
        return v + (UInt64(me) + n - v % n) % n
    }

    /// The largest 64-bit view this replica is primary of.
    public var lastViewLed: UInt64 {
        let n = UInt64(config.n)
        return UInt64.max - (UInt64.max % n + n - UInt64(me)) % n
    }

    func others() -> [Int] { (0..<config.n).filter { $0 != me } }

    func digest<R: RandomNumberGenerator>(_ rng: inout R) -> [UInt8] {
        Digest.sha256((0..<4).flatMap { _ in withUnsafeBytes(of: rng.next()) { Array($0) } })
    }

    /// The messages of one attack, for the current state of the honest
    /// replicas as observed. `block` builds a faulty block for (fault,
    /// height, view) — the environment knows the block format — or nil if
    /// it cannot. Messages that need this replica to be primary are made
    /// only when it is (or for a view it leads).
    public func craft<R: RandomNumberGenerator>(
        _ attack: PBFTAttack, rng: inout R, block: (BlockFault, UInt64, UInt64) -> [UInt8]? = { _, _, _ in nil }
    ) -> [SignedMessage] {
        switch attack {
        case .fabricatedViewChanges: return fabricatedViewChanges(&rng)
        case .farViews: return farViews(&rng)
        case .foreignCertificates: return foreignCertificates(&rng)
        case .badBlocks: return badBlocks(&rng, block)
        case .digestFlood: return digestFlood(&rng)
        case .heavyReplay: return heavyReplay(&rng)
        case .omittedPrepared: return omittedPrepared(&rng)
        }
    }

    /// A view-change to `v` claiming the genesis checkpoint and nothing prepared.
    func emptyViewChange(_ v: UInt64) -> PBFTMessage {
        .viewChange(newView: v, stableSeq: 0, stableDigest: PBFTReplica.genesisDigest, checkpointProof: [], prepared: [])
    }

    func fabricatedViewChanges<R: RandomNumberGenerator>(_ rng: inout R) -> [SignedMessage] {
        guard let tv = nextViewLed(after: view) else { return [] }
        var out: [SignedMessage] = []
        // 2f+1 view-changes: its own (signed) and forged ones for others.
        let others = others().prefix(config.quorum - 1)
        let vcs = [sign(emptyViewChange(tv))] + others.map { forged($0, emptyViewChange(tv), &rng) }
        out.append(sign(.newView(view: tv, viewChanges: vcs, prePrepares: [])))
        // The same with the others' view-changes unsigned.
        let unsigned = [sign(emptyViewChange(tv))] + others.map { SignedMessage(sender: $0, message: emptyViewChange(tv), signature: []) }
        out.append(sign(.newView(view: tv, viewChanges: unsigned, prePrepares: [])))
        // Its own view-change repeated as if from 2f+1 replicas.
        let mine = sign(emptyViewChange(tv))
        out.append(sign(.newView(view: tv, viewChanges: Array(repeating: mine, count: config.quorum), prePrepares: [])))
        // A stable checkpoint nobody signed.
        let s = (seq / config.checkpointInterval + 1) * config.checkpointInterval
        let d = digest(&rng)
        let proof = (0..<config.quorum).map { i in forged(i, .checkpoint(seq: s, stateDigest: d), &rng) }
        out.append(sign(.viewChange(newView: tv, stableSeq: s, stableDigest: d, checkpointProof: proof, prepared: [])))
        // A last executed block far ahead that nobody committed (to make the
        // others skip blocks), its commit certificate forged.
        let far = seq + 1_000
        let commits = (0..<config.quorum).map { i in i == me ? sign(.commit(view: view, seq: far, digest: d)) : forged(i, .commit(view: view, seq: far, digest: d), &rng) }
        out.append(sign(.viewChange(newView: tv, stableSeq: 0, stableDigest: PBFTReplica.genesisDigest, checkpointProof: [], prepared: [], executedProof: commits)))
        return out
    }

    func farViews<R: RandomNumberGenerator>(_ rng: inout R) -> [SignedMessage] {
        let top = lastViewLed
        let d = digest(&rng)
        var out: [SignedMessage] = []
        // The message that once overflowed every node: a new-view for the
        // last view it leads, backed by fabricated view-changes.
        let vcs = [sign(emptyViewChange(top))] + others().prefix(config.quorum - 1).map { forged($0, emptyViewChange(top), &rng) }
        out.append(sign(.newView(view: top, viewChanges: vcs, prePrepares: [])))
        out.append(sign(emptyViewChange(.max)))
        out.append(sign(.prepare(view: .max, seq: .max, digest: d)))
        out.append(sign(.commit(view: view, seq: .max, digest: d)))
        out.append(sign(.checkpoint(seq: .max - .max % config.checkpointInterval, stateDigest: d)))
        out.append(sign(.prePrepare(view: view, seq: .max, digest: Digest.sha256([]), payload: [])))
        // In range but far: a signed view-change for the largest view a
        // message may carry (one replica alone cannot move anyone there).
        out.append(sign(emptyViewChange(WireLimits.consensusMaxNumber)))
        if let led = nextViewLed(after: WireLimits.consensusMaxNumber - UInt64(config.n) - 1) {
            let vcs2 = [sign(emptyViewChange(led))] + others().prefix(config.quorum - 1).map { forged($0, emptyViewChange(led), &rng) }
            out.append(sign(.newView(view: led, viewChanges: vcs2, prePrepares: [])))
        }
        return out
    }

    func foreignCertificates<R: RandomNumberGenerator>(_ rng: inout R) -> [SignedMessage] {
        guard let tv = nextViewLed(after: view) else { return [] }
        var out: [SignedMessage] = []
        // A prepared certificate: an honest pre-prepare with honest prepares of other (view, seq, digest).
        if let pp = prePrepares.last, case .prePrepare(let pv, let ps, _, _) = pp.message {
            let foreign = prepares.filter {
                if case .prepare(let v, let s, _) = $0.message { return v != pv || s != ps } else { return false }
            }
            var senders = Set<Int>()
            let chosen = foreign.filter { $0.sender != pp.sender && senders.insert($0.sender).inserted }.prefix(2 * config.f)
            if chosen.count == 2 * config.f {
                let cert = PreparedCertificate(prePrepare: pp, prepares: Array(chosen))
                out.append(sign(.viewChange(newView: tv, stableSeq: 0, stableDigest: PBFTReplica.genesisDigest, checkpointProof: [], prepared: [cert])))
            }
            // The same pre-prepare re-labelled with another sequence (its signature no longer holds).
            let moved = SignedMessage(sender: pp.sender, message: .prePrepare(view: pv, seq: ps + 1, digest: Digest.sha256([]), payload: []), signature: pp.signature)
            let own = prepares.filter { if case .prepare(pv, ps, _) = $0.message { return true } else { return false } }.prefix(2 * config.f)
            out.append(sign(.viewChange(newView: tv, stableSeq: 0, stableDigest: PBFTReplica.genesisDigest, checkpointProof: [], prepared: [PreparedCertificate(prePrepare: moved, prepares: Array(own))])))
        }
        // A checkpoint proof made of honest checkpoints of another sequence.
        if let c = checkpoints.last, case .checkpoint(let s, let d) = c.message {
            let same = checkpoints.filter { $0.message == c.message }
            var senders = Set<Int>()
            let proof = same.filter { senders.insert($0.sender).inserted }
            let claimed = s + config.checkpointInterval
            out.append(sign(.viewChange(newView: tv, stableSeq: claimed, stableDigest: d, checkpointProof: Array(proof.prefix(config.quorum)), prepared: [])))
        }
        // An honest view-change of another view offered in a new-view.
        if let vc = viewChanges.last {
            let vcs = [vc] + [sign(emptyViewChange(tv))] + others().filter { $0 != vc.sender }.prefix(config.quorum - 2).map { forged($0, emptyViewChange(tv), &rng) }
            out.append(sign(.newView(view: tv, viewChanges: vcs, prePrepares: [])))
        }
        return out
    }

    func badBlocks<R: RandomNumberGenerator>(_ rng: inout R, _ block: (BlockFault, UInt64, UInt64) -> [UInt8]?) -> [SignedMessage] {
        guard config.primary(of: view) == me else { return [] }
        let s = seq + 1
        var out: [SignedMessage] = []
        let fault = BlockFault.allCases[Int(rng.next() % UInt64(BlockFault.allCases.count))]
        if let p = block(fault, s, view) { out.append(sign(.prePrepare(view: view, seq: s, digest: Digest.sha256(p), payload: p))) }
        // A block that is not the one its digest names, and an empty one.
        let d = digest(&rng)
        out.append(sign(.prePrepare(view: view, seq: s, digest: d, payload: Array("not the block".utf8))))
        out.append(sign(.prePrepare(view: view, seq: s, digest: Digest.sha256([]), payload: [])))
        return out
    }

    func digestFlood<R: RandomNumberGenerator>(_ rng: inout R) -> [SignedMessage] {
        var out: [SignedMessage] = []
        for s in (seq + 1)...(seq + config.window) {
            out.append(sign(.prepare(view: view, seq: s, digest: digest(&rng))))
            out.append(sign(.commit(view: view, seq: s, digest: digest(&rng))))
        }
        if view > 0 {
            for s in (seq + 1)...(seq + 4) { out.append(sign(.commit(view: view - 1, seq: s, digest: digest(&rng)))) }
        }
        let cs = (seq / config.checkpointInterval + 1) * config.checkpointInterval
        out.append(sign(.checkpoint(seq: cs, stateDigest: digest(&rng))))
        out.append(sign(.checkpoint(seq: cs, stateDigest: digest(&rng))))
        return out
    }

    func heavyReplay<R: RandomNumberGenerator>(_ rng: inout R) -> [SignedMessage] {
        guard let tv = nextViewLed(after: view) else { return [] }
        var out: [SignedMessage] = []
        let d = digest(&rng)
        let c = checkpoints.last ?? sign(.checkpoint(seq: config.checkpointInterval, stateDigest: d))
        guard case .checkpoint(let s, let cd) = c.message else { return [] }
        // Thousands of copies of one signed checkpoint.
        let stuffed = sign(.viewChange(newView: tv, stableSeq: s, stableDigest: cd, checkpointProof: Array(repeating: c, count: 1000), prepared: []))
        // Exactly 2f+1 entries, but one sender three times.
        let repeated = sign(.viewChange(newView: tv, stableSeq: s, stableDigest: cd, checkpointProof: Array(repeating: c, count: config.quorum), prepared: []))
        // A certificate that fails at its last signature, after the others verified.
        var proof = checkpoints.filter { $0.message == c.message }
        var seen = Set<Int>()
        proof = proof.filter { seen.insert($0.sender).inserted }
        let missing = (0..<config.n).filter { !seen.contains($0) }
        while proof.count < config.quorum, let i = missing.dropFirst(proof.count - seen.count).first {
            proof.append(forged(i, c.message, &rng))
        }
        let late = sign(.viewChange(newView: tv, stableSeq: s, stableDigest: cd, checkpointProof: Array(proof.prefix(config.quorum)), prepared: []))
        for _ in 0..<3 { out += [stuffed, repeated, late] }
        return out
    }

    func omittedPrepared<R: RandomNumberGenerator>(_ rng: inout R) -> [SignedMessage] {
        // The honest view-changes it saw for a view it leads.
        let byView = Dictionary(grouping: viewChanges) { m -> UInt64 in
            if case .viewChange(let nv, _, _, _, _, _) = m.message { return nv } else { return 0 }
        }
        guard let (tv, vcs) = byView.filter({ config.primary(of: $0.key) == me }).max(by: { $0.key < $1.key }) else { return [] }
        var seen = Set<Int>()
        var chosen = vcs.filter { seen.insert($0.sender).inserted }
        if chosen.count < config.quorum { chosen.append(sign(emptyViewChange(tv))) }
        chosen = Array(chosen.prefix(config.quorum))
        var prepared: [UInt64: PreparedCertificate] = [:]
        var minS: UInt64 = 0
        for vc in chosen {
            guard case .viewChange(_, let le, _, _, let ps, let executed) = vc.message else { continue }
            var ex: UInt64 = 0
            if case .commit(_, let s, _)? = executed.first?.message { ex = s }
            minS = max(minS, le, ex)
            for p in ps where prepared[p.seq].map({ $0.view < p.view }) ?? true { prepared[p.seq] = p }
        }
        // Every prepared block above the checkpoint becomes a null block.
        let top = prepared.keys.max() ?? minS
        guard top > minS, top - minS <= config.logSize else { return [] }
        let pps = ((minS + 1)...top).map { s in sign(.prePrepare(view: tv, seq: s, digest: PBFTReplica.nullDigest, payload: [])) }
        return [sign(.newView(view: tv, viewChanges: chosen, prePrepares: pps))]
    }
}

/// A keyed-hash authenticator for simulations and fuzzing: replica i signs
/// with secret i, so nobody else can sign as i, at the cost of one SHA-256.
public struct KeyedHashAuthenticator: PBFTAuthenticator {
    public let me: Int
    let secrets: [[UInt8]]

    public init(me: Int, secrets: [[UInt8]]) {
        self.me = me
        self.secrets = secrets
    }

    /// Secrets for n replicas derived from a seed.
    public static func secrets(seed: UInt64, n: Int) -> [[UInt8]] {
        (0..<n).map { i in Digest.sha256(Array("secret-\(seed)-\(i)".utf8)) }
    }

    public func sign(_ bytes: [UInt8]) -> [UInt8] { Array(Digest.sha256(secrets[me] + bytes).prefix(16)) }

    public func verify(sender: Int, _ bytes: [UInt8], signature: [UInt8]) -> Bool {
        guard sender >= 0, sender < secrets.count else { return false }
        return Array(Digest.sha256(secrets[sender] + bytes).prefix(16)) == signature
    }
}
