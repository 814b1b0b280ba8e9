import EFSCAdversary
import EFSCCore
@testable import EFSCConsensus

typealias HashAuthenticator = KeyedHashAuthenticator

extension KeyedHashAuthenticator {
    init(me: Int, seed: UInt64, n: Int) { self.init(me: me, secrets: Self.secrets(seed: seed, n: n)) }
}

/// SplitMix64: small, fast, and the same sequence for the same seed everywhere.
struct SeededRNG: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 &+ 1 }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func chance(_ p: Double) -> Bool { Double(next() % 1_000_000) / 1_000_000 < p }
}

/// What a faulty replica does to its outgoing messages.
struct ByzantineBehaviour: OptionSet, CustomStringConvertible {
    let rawValue: Int
    static let equivocate = ByzantineBehaviour(rawValue: 1)
    static let conflictingVotes = ByzantineBehaviour(rawValue: 2)
    static let badSignatures = ByzantineBehaviour(rawValue: 4)
    static let viewChangeSpam = ByzantineBehaviour(rawValue: 8)
    static let silent = ByzantineBehaviour(rawValue: 16)
    var description: String {
        [(Self.equivocate, "equivocate"), (.conflictingVotes, "conflicting-votes"), (.badSignatures, "bad-signatures"), (.viewChangeSpam, "view-change-spam"), (.silent, "silent")]
            .filter { contains($0.0) }.map(\.1).joined(separator: "+")
    }
}

/// A block of the simulated chain: the parent's digest, the state root it
/// executes on, its anchor (a stand-in for the identity group's height,
/// which grows with time) and some text. Replicas judge proposals by the
/// same rules a node's ledger applies.
struct SimBlock {
    static let header = 72
    let parent: [UInt8]
    let stateRoot: [UInt8]
    let anchor: UInt64
    let text: [UInt8]

    var bytes: [UInt8] { parent + stateRoot + (0..<8).map { UInt8(truncatingIfNeeded: anchor >> (56 - 8 * UInt64($0))) } + text }

    init(parent: [UInt8], stateRoot: [UInt8], anchor: UInt64, text: [UInt8]) {
        self.parent = parent
        self.stateRoot = stateRoot
        self.anchor = anchor
        self.text = text
    }

    init?(_ b: [UInt8]) {
        guard b.count > Self.header, b.count < 1 << 20 else { return nil }
        parent = Array(b[0..<32])
        stateRoot = Array(b[32..<64])
        anchor = b[64..<72].reduce(0) { $0 << 8 | UInt64($1) }
        text = Array(b[72...])
    }
}

/// A deterministic network of PBFT replicas: seeded drops, duplicates,
/// delays (reordering) and partitions, crashes with restart from persisted
/// state, and one Byzantine replica — tampering with what it sends and, as
/// an adversary, crafting well-formed attacks (`PBFTAttack`). Invariants are
/// checked after every event: safety (no two honest replicas commit
/// different blocks at a height, none commits what its ledger would refuse
/// or without a certificate), bounded memory per peer; after the adversary
/// stops, liveness. `run` reports the first violation with the seed.
final class PBFTSimulation: @unchecked Sendable {
    enum Envelope {
        case message(SignedMessage)
        case synced([CommittedBlock])
    }

    struct InFlight {
        let at: Int
        let to: Int
        let order: UInt64
        let envelope: Envelope
    }

    let seed: UInt64
    let n: Int
    let config: PBFTConfig
    var rng: SeededRNG
    let secrets: [[UInt8]]
    var replicas: [PBFTReplica?]
    var persisted: [PBFTDurableState]
    /// Each replica's ledger (survives crashes, like its RocksDB).
    var ledgers: [[UInt64: CommittedBlock]]
    var inflight: [InFlight] = []
    var now = 0
    var byzantine: Int?
    var behaviour: ByzantineBehaviour = []
    /// Attacks the adversary crafts while the network is in chaos.
    var attacks: Set<PBFTAttack> = []
    var adversary: PBFTAdversary?
    var attacking = true
    var dropRate = 0.0
    var dupRate = 0.0
    var maxDelay = 1
    var partition: Set<Int>? = nil
    var crashedUntil: [Int: Int] = [:]
    var chaos = true
    var violation: String?
    /// height → digest committed by any honest replica.
    var decided: [UInt64: [UInt8]] = [:]
    var messagesDelivered = 0
    /// Refusals reported by honest replicas, by reason.
    var rejections: [PBFTRejection: Int] = [:]
    /// Most signature checks one delivered message cost an honest replica.
    var maxChecksPerMessage = 0
    var description: String {
        "seed \(seed) (n=\(n), byzantine=\(byzantine.map(String.init) ?? "none") \(behaviour) attacks=\(attacks.map(\.rawValue).sorted().joined(separator: "+")), drop=\(dropRate), dup=\(dupRate), delay≤\(maxDelay))"
    }

    /// `adversarial`: the Byzantine replica is always present and crafts a
    /// seeded, non-empty set of attacks.
    init(seed: UInt64, n: Int, adversarial: Bool = false) {
        self.seed = seed
        self.n = n
        var c = PBFTConfig(group: "sim", n: n)
        c.checkpointInterval = 8
        c.viewChangeTimeout = 12
        c.retransmitInterval = 3
        config = c
        rng = SeededRNG(seed: seed)
        secrets = KeyedHashAuthenticator.secrets(seed: seed, n: n)
        replicas = []
        persisted = Array(repeating: PBFTDurableState(), count: n)
        ledgers = Array(repeating: [:], count: n)
        // The fault profile comes from the seed.
        dropRate = [0, 0.05, 0.15, 0.3][Int(rng.next() % 4)]
        dupRate = [0, 0.1][Int(rng.next() % 2)]
        maxDelay = [1, 3, 8][Int(rng.next() % 3)]
        if adversarial || rng.next() % 3 != 0 {
            byzantine = Int(rng.next() % UInt64(n))
            behaviour = ByzantineBehaviour(rawValue: Int(1 + rng.next() % 31))
        }
        if adversarial {
            // Silence would hide the attacks; the adversary speaks.
            behaviour.remove(.silent)
            let all = PBFTAttack.allCases
            attacks = Set(all.filter { _ in rng.next() % 2 == 0 })
            if attacks.isEmpty { attacks = [all[Int(rng.next() % UInt64(all.count))]] }
        }
        for i in 0..<n { replicas.append(makeReplica(i)) }
        if let b = byzantine { adversary = PBFTAdversary(config: config, me: b, authenticator: HashAuthenticator(me: b, secrets: secrets)) }
    }

    /// A run with one named attack by replica `byzantine` and no other
    /// faults: the scripted scenarios of the attack tests.
    static func scenario(_ attack: PBFTAttack, seed: UInt64 = 1, n: Int = 4, byzantine: Int = 3) -> PBFTSimulation {
        let sim = PBFTSimulation(seed: seed, n: n)
        sim.dropRate = 0
        sim.dupRate = 0
        sim.maxDelay = 1
        sim.byzantine = byzantine
        sim.behaviour = []
        sim.attacks = [attack]
        sim.adversary = PBFTAdversary(config: sim.config, me: byzantine, authenticator: HashAuthenticator(me: byzantine, secrets: sim.secrets))
        sim.noCrashes = true
        return sim
    }

    var noCrashes = false
    /// Bytes of filler in each honest proposal (blocks under load).
    var blockPadding = 0
    /// Largest view-change an honest replica sent, in wire bytes.
    var largestViewChange = 0
    /// Called at the start of every tick (scenarios crash or restart replicas here).
    var onTick: ((PBFTSimulation) -> Void)?

    func makeReplica(_ i: Int) -> PBFTReplica {
        PBFTReplica(
            config: config, me: i, authenticator: HashAuthenticator(me: i, secrets: secrets), durable: persisted[i],
            validate: { [unowned self] p in self.judge(i, p) })
    }

    var honest: [Int] { (0..<n).filter { $0 != byzantine } }
    var faultyCount: Int { (byzantine == nil ? 0 : 1) + crashedUntil.count }

    func height(_ i: Int) -> UInt64 { ledgers[i].keys.max() ?? 0 }

    /// The simulated identity height: grows with time.
    var identityHeight: UInt64 { UInt64(now / 4) }

    /// Digest, state root after, and anchor of replica i's block at `seq` (genesis at 0).
    func tip(_ i: Int, _ seq: UInt64) -> (digest: [UInt8], root: [UInt8], anchor: UInt64)? {
        if seq == 0 { return (PBFTReplica.genesisDigest, PBFTReplica.genesisDigest, 0) }
        guard let b = ledgers[i][seq] else { return nil }
        var anchor: UInt64 = 0
        var s = seq
        while s > 0, let x = ledgers[i][s] {
            if let sb = SimBlock(x.payload) {
                anchor = sb.anchor
                break
            }
            s -= 1
        }
        return (b.digest, stateDigest(b), anchor)
    }

    /// The rules of the simulated ledger, as `PBFTReplica.validate`.
    func judge(_ i: Int, _ p: PBFTProposal) -> PBFTValidation {
        guard let b = SimBlock(p.payload) else { return .invalid("malformed block") }
        guard let parent = tip(i, p.seq - 1) else { return .notYet }
        if b.parent != parent.digest { return .invalid("wrong parent") }
        if b.stateRoot != parent.root { return .invalid("wrong state root") }
        if b.anchor < parent.anchor { return .invalid("anchor below the parent's") }
        if b.anchor > identityHeight { return b.anchor - identityHeight > 64 ? .invalid("anchor far ahead") : .notYet }
        return .valid
    }

    func proposal(_ i: Int, seq: UInt64, view: UInt64) -> [UInt8] {
        let parent = tip(i, seq - 1) ?? (PBFTReplica.genesisDigest, PBFTReplica.genesisDigest, 0)
        return SimBlock(
            parent: parent.digest, stateRoot: parent.root, anchor: max(parent.anchor, identityHeight),
            text: Array("block-\(seq)-v\(view)-\(rng.next() % 1000)".utf8) + [UInt8](repeating: 0x2e, count: blockPadding)).bytes
    }

    /// A faulty block for the adversary (from the Byzantine replica's ledger).
    func faultyBlock(_ fault: BlockFault, seq: UInt64, view: UInt64) -> [UInt8]? {
        guard let b = byzantine else { return nil }
        let parent = tip(b, seq - 1) ?? (PBFTReplica.genesisDigest, PBFTReplica.genesisDigest, 0)
        var blk = SimBlock(parent: parent.digest, stateRoot: parent.root, anchor: max(parent.anchor, identityHeight), text: Array("evil-\(seq)".utf8))
        switch fault {
        case .wrongParent: blk = SimBlock(parent: Digest.sha256(Array("x\(seq)".utf8)), stateRoot: blk.stateRoot, anchor: blk.anchor, text: blk.text)
        case .wrongStateRoot: blk = SimBlock(parent: blk.parent, stateRoot: Digest.sha256(Array("r\(seq)".utf8)), anchor: blk.anchor, text: blk.text)
        case .wrongHeight: blk = SimBlock(parent: tip(b, seq)?.digest ?? blk.parent, stateRoot: blk.stateRoot, anchor: blk.anchor, text: blk.text)
        case .farAnchor: blk = SimBlock(parent: blk.parent, stateRoot: blk.stateRoot, anchor: identityHeight + 10_000, text: blk.text)
        case .maxAnchor: blk = SimBlock(parent: blk.parent, stateRoot: blk.stateRoot, anchor: .max, text: blk.text)
        }
        return blk.bytes
    }

    // MARK: network

    /// Consensus messages of this kind are dropped (scenarios hold back commits).
    var dropKind: UInt8?

    func send(from: Int, to: Int, _ e: Envelope) {
        if let k = dropKind, case .message(let m) = e, m.message.kind == k { return }
        if chaos {
            if rng.chance(dropRate) { return }
            if let p = partition, p.contains(from) != p.contains(to) { return }
        }
        let copies = chaos && rng.chance(dupRate) ? 2 : 1
        for _ in 0..<copies {
            inflight.append(InFlight(at: now + 1 + Int(rng.next() % UInt64(chaos ? maxDelay : 1)), to: to, order: rng.next(), envelope: e))
        }
    }

    func apply(_ i: Int, _ actions: [PBFTAction]) {
        var queue = actions
        var persistedHere = persisted[i]
        while !queue.isEmpty {
            let a = queue.removeFirst()
            switch a {
            case .persist(let s):
                persisted[i] = s
                persistedHere = s
            case .broadcast(let m):
                if i != byzantine { checkPersistedBeforeSent(i, m, persistedHere) }
                if i != byzantine, case .viewChange = m.message { largestViewChange = max(largestViewChange, PBFTCodec.encode(group: config.group, m).count) }
                for j in 0..<n where j != i { send(from: i, to: j, .message(outgoing(i, m, to: j))) }
            case .send(let to, let m):
                send(from: i, to: to, .message(outgoing(i, m, to: to)))
            case .commit(let b):
                committed(i, b)
                if violation != nil { return }
                if replicas[i] != nil {
                    queue.append(contentsOf: replicas[i]!.step(.executed(seq: b.seq, stateDigest: stateDigest(b))))
                }
            case .requestSync(let fromSeq, let hint):
                let target = hint.flatMap { $0 == i ? nil : $0 } ?? (0..<n).filter { $0 != i }[Int(rng.next() % UInt64(n - 1))]
                guard crashedUntil[target] == nil else { break }
                if target == byzantine {
                    // A Byzantine replica answers with blocks it made up.
                    if attacking && !attacks.isEmpty { send(from: target, to: i, .synced(forgedSync(fromSeq))) }
                    break
                }
                let blocks = (fromSeq..<(fromSeq + 16)).compactMap { ledgers[target][$0] }
                if !blocks.isEmpty { send(from: target, to: i, .synced(blocks)) }
            case .divergence(let seq, _, _):
                if i != byzantine { violation = "\(description): replica \(i) diverged from the stable checkpoint at \(seq)" }
            case .rejected(_, let reason, _):
                if i != byzantine { rejections[reason, default: 0] += 1 }
            case .viewChanged:
                break
            }
        }
        if let r = replicas[i], i != byzantine { checkFootprint(i, r) }
    }

    /// Every vote an honest replica sends was in its persisted state first.
    func checkPersistedBeforeSent(_ i: Int, _ m: SignedMessage, _ d: PBFTDurableState) {
        guard m.sender == i else { return }
        switch m.message {
        case .prePrepare(let v, let s, let dg, _), .prepare(let v, let s, let dg):
            if d.prepareVotes[VoteKey(view: v, seq: s)] != dg && s > d.stableSeq {
                violation = "\(description): replica \(i) sent a vote for \(v)/\(s) it had not persisted"
            }
        case .commit(let v, let s, let dg):
            if d.commitVotes[VoteKey(view: v, seq: s)] != dg && s > d.stableSeq {
                violation = "\(description): replica \(i) sent a commit for \(v)/\(s) it had not persisted"
            }
        default:
            break
        }
    }

    func checkFootprint(_ i: Int, _ r: PBFTReplica) {
        let bound = PBFTReplica.footprintBound(config)
        let f = r.footprint
        if let (sender, count) = f.perSender.first(where: { $0.value > bound }) {
            violation = "\(description): replica \(i) holds \(count) messages from replica \(sender) (bound \(bound)): \(f)"
        }
        let log = Int(config.logSize)
        if f.ownVotes > 4 * log || f.prepared > log || f.ready > Int(r.syncReach) {
            violation = "\(description): replica \(i) holds more than its log allows: \(f)"
        }
    }

    func stateDigest(_ b: CommittedBlock) -> [UInt8] { Digest.sha256(Array("state".utf8) + b.digest + [UInt8(truncatingIfNeeded: b.seq)]) }

    func committed(_ i: Int, _ b: CommittedBlock) {
        guard i != byzantine else {
            ledgers[i][b.seq] = b
            return
        }
        if let prev = ledgers[i][b.seq], prev.digest != b.digest {
            violation = "\(description): replica \(i) committed two blocks at height \(b.seq)"
            return
        }
        if b.seq > 1 && ledgers[i][b.seq - 1] == nil {
            violation = "\(description): replica \(i) committed height \(b.seq) before \(b.seq - 1)"
            return
        }
        if let d = decided[b.seq], d != b.digest {
            violation = "\(description): two honest replicas committed different blocks at height \(b.seq)"
            return
        }
        if !validCertificate(b) {
            violation = "\(description): replica \(i) committed height \(b.seq) without a valid certificate"
            return
        }
        // What the ledger would refuse: a block on another parent or state.
        if !b.payload.isEmpty {
            guard let sb = SimBlock(b.payload), let parent = tip(i, b.seq - 1), sb.parent == parent.digest, sb.stateRoot == parent.root, sb.anchor >= parent.anchor
            else {
                violation = "\(description): replica \(i) committed at height \(b.seq) a block its ledger refuses"
                return
            }
        }
        decided[b.seq] = b.digest
        ledgers[i][b.seq] = b
    }

    func validCertificate(_ b: CommittedBlock) -> Bool {
        var senders = Set<Int>()
        for c in b.certificate {
            guard case .commit(let v, let s, let d) = c.message, v == b.view, s == b.seq, d == b.digest,
                HashAuthenticator(me: 0, secrets: secrets).verify(
                    sender: c.sender, PBFTCodec.signingBytes(group: config.group, sender: c.sender, message: c.message), signature: c.signature)
            else { return false }
            senders.insert(c.sender)
        }
        return senders.count >= config.quorum && Digest.sha256(b.payload) == b.digest
    }

    /// Blocks a Byzantine replica makes up for a sync request: its own
    /// commit and forged ones for the others.
    func forgedSync(_ fromSeq: UInt64) -> [CommittedBlock] {
        guard let b = byzantine else { return [] }
        let payload = faultyBlock(.wrongParent, seq: fromSeq, view: 0) ?? [1]
        let d = Digest.sha256(payload)
        let auth = HashAuthenticator(me: b, secrets: secrets)
        let cert = (0..<config.quorum).map { k -> SignedMessage in
            let m = PBFTMessage.commit(view: 0, seq: fromSeq, digest: d)
            let sig = auth.sign(PBFTCodec.signingBytes(group: config.group, sender: k == 0 ? b : (b + k) % n, message: m))
            return SignedMessage(sender: k == 0 ? b : (b + k) % n, message: m, signature: sig)
        }
        return [CommittedBlock(seq: fromSeq, view: 0, digest: d, payload: payload, certificate: cert)]
    }

    /// The Byzantine replica's tampering with what it sends.
    func outgoing(_ i: Int, _ m: SignedMessage, to j: Int) -> SignedMessage {
        guard i == byzantine else { return m }
        let auth = HashAuthenticator(me: i, secrets: secrets)
        func resign(_ msg: PBFTMessage) -> SignedMessage {
            SignedMessage(sender: i, message: msg, signature: auth.sign(PBFTCodec.signingBytes(group: config.group, sender: i, message: msg)))
        }
        if behaviour.contains(.badSignatures) && rng.chance(0.3) {
            return SignedMessage(sender: i, message: m.message, signature: Array(m.signature.reversed()))
        }
        switch m.message {
        case .prePrepare(let v, let s, _, _) where attacking && attacks.contains(.badBlocks) && rng.chance(0.5):
            let fault = BlockFault.allCases[Int(rng.next() % UInt64(BlockFault.allCases.count))]
            let p = faultyBlock(fault, seq: s, view: v) ?? []
            return resign(.prePrepare(view: v, seq: s, digest: Digest.sha256(p), payload: p))
        case .prePrepare(let v, let s, _, _) where behaviour.contains(.equivocate) && j % 2 == 0:
            let p = faultyBlock(.wrongParent, seq: s, view: v) ?? Array("evil-\(s)-\(j)".utf8)
            let good = SimBlock(m.message.payloadBytes) ?? SimBlock(p)!
            let alt = SimBlock(parent: good.parent, stateRoot: good.stateRoot, anchor: good.anchor, text: Array("evil-\(s)-\(j)".utf8)).bytes
            return resign(.prePrepare(view: v, seq: s, digest: Digest.sha256(alt), payload: alt))
        case .newView(let v, let vcs, let pps) where attacking && attacks.contains(.omittedPrepared):
            // Drop the prepared blocks: null blocks in their place.
            let nulls = pps.map { pp -> SignedMessage in
                guard case .prePrepare(let pv, let s, _, _) = pp.message else { return pp }
                return resign(.prePrepare(view: pv, seq: s, digest: PBFTReplica.nullDigest, payload: []))
            }
            return nulls == pps ? m : resign(.newView(view: v, viewChanges: vcs, prePrepares: nulls))
        case .prepare(let v, let s, _) where behaviour.contains(.conflictingVotes) && rng.chance(0.5):
            return resign(.prepare(view: v, seq: s, digest: Digest.sha256(Array("x\(rng.next())".utf8))))
        case .commit(let v, let s, _) where behaviour.contains(.conflictingVotes) && rng.chance(0.5):
            return resign(.commit(view: v, seq: s, digest: Digest.sha256(Array("y\(rng.next())".utf8))))
        default:
            return m
        }
    }

    // MARK: running

    func deliver(_ to: Int, _ m: SignedMessage) {
        messagesDelivered += 1
        if to == byzantine { adversary?.observe(m) }
        let before = replicas[to]!.signatureChecks
        apply(to, replicas[to]!.step(.message(m)))
        if to != byzantine, let r = replicas[to] { maxChecksPerMessage = max(maxChecksPerMessage, r.signatureChecks - before) }
    }

    func deliverDue() {
        var due: [InFlight] = []
        var rest: [InFlight] = []
        for x in inflight { if x.at <= now { due.append(x) } else { rest.append(x) } }
        inflight = rest
        due.sort { $0.order < $1.order }
        for d in due {
            guard violation == nil, replicas[d.to] != nil else { continue }
            if d.to == byzantine && behaviour.contains(.silent) { continue }
            switch d.envelope {
            case .message(let m):
                deliver(d.to, m)
            case .synced(let blocks):
                for b in blocks where replicas[d.to] != nil {
                    apply(d.to, replicas[d.to]!.step(.synced(seq: b.seq, payload: b.payload, certificate: b.certificate)))
                }
            }
        }
    }

    /// The adversary's crafted messages of this tick, to every honest replica.
    func attack() {
        guard attacking, let b = byzantine, let adv = adversary, !attacks.isEmpty, rng.chance(0.3) else { return }
        let list = attacks.sorted { $0.rawValue < $1.rawValue }
        let which = list[Int(rng.next() % UInt64(list.count))]
        let msgs = adv.craft(which, rng: &rng) { fault, seq, view in self.faultyBlock(fault, seq: seq, view: view) }
        for m in msgs { for j in 0..<n where j != b { send(from: b, to: j, .message(m)) } }
    }

    func stepTick() {
        now += 1
        onTick?(self)
        deliverDue()
        for i in 0..<n {
            guard violation == nil, replicas[i] != nil else { continue }
            if i == byzantine && behaviour.contains(.silent) { continue }
            apply(i, replicas[i]!.step(.pendingWork(true)))
            apply(i, replicas[i]!.step(.tick))
            if replicas[i]!.canPropose {
                let payload = proposal(i, seq: replicas[i]!.nextSequence, view: replicas[i]!.view)
                apply(i, replicas[i]!.step(.propose(payload)))
            }
            if i == byzantine && behaviour.contains(.viewChangeSpam) && rng.chance(0.2), let r = replicas[i] {
                let auth = HashAuthenticator(me: i, secrets: secrets)
                let msg = PBFTMessage.viewChange(
                    newView: r.view + 1 + rng.next() % 1000, stableSeq: r.durable.stableSeq, stableDigest: r.durable.stableDigest,
                    checkpointProof: r.durable.stableProof, prepared: [])
                let sm = SignedMessage(sender: i, message: msg, signature: auth.sign(PBFTCodec.signingBytes(group: config.group, sender: i, message: msg)))
                for j in 0..<n where j != i { send(from: i, to: j, .message(sm)) }
            }
        }
        if violation == nil { attack() }
        guard chaos, !noCrashes else { return }
        // Crashes and restarts of honest replicas, never more than f faulty at once.
        for (i, until) in crashedUntil where until <= now {
            crashedUntil.removeValue(forKey: i)
            replicas[i] = makeReplica(i)
        }
        if rng.chance(0.02), faultyCount < config.f {
            let candidates = honest.filter { crashedUntil[$0] == nil }
            if let i = candidates.randomElement(using: &rng) {
                replicas[i] = nil
                crashedUntil[i] = now + 5 + Int(rng.next() % 40)
            }
        }
        if partition == nil && rng.chance(0.01) {
            partition = Set((0..<n).filter { _ in rng.next() % 2 == 0 })
        } else if partition != nil && rng.chance(0.05) {
            partition = nil
        }
    }

    /// Chaos (and attacks) for `chaosTicks`, then a healed network without
    /// attacks for `healTicks`; returns the first violation, or a liveness
    /// failure if honest replicas did not make progress after healing.
    func run(chaosTicks: Int = 150, healTicks: Int = 1500, progressAfterHeal: UInt64 = 3) -> String? {
        for _ in 0..<chaosTicks {
            stepTick()
            if let v = violation { return v }
        }
        chaos = false
        attacking = false
        partition = nil
        for i in crashedUntil.keys { replicas[i] = makeReplica(i) }
        crashedUntil = [:]
        let base = honest.map { height($0) }.max() ?? 0
        var t = 0
        while t < healTicks {
            stepTick()
            if let v = violation { return v }
            if honest.allSatisfy({ height($0) >= base + progressAfterHeal }) { return nil }
            t += 1
        }
        let heights = honest.map { "\($0):\(height($0))/v\(replicas[$0]?.view ?? 0)" }.joined(separator: " ")
        return "\(description): no progress after healing (heights at heal \(base), now \(heights))"
    }
}

extension PBFTMessage {
    var payloadBytes: [UInt8] {
        if case .prePrepare(_, _, _, let p) = self { return p }
        return []
    }
}
