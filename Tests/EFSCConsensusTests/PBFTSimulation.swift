import EFSCCore
@testable import EFSCConsensus

/// A fast keyed-hash authenticator for the simulator: replica i signs with
/// secret i; nobody else knows it, so nobody can sign as i.
struct HashAuthenticator: PBFTAuthenticator {
    let me: Int
    let secrets: [[UInt8]]

    func sign(_ bytes: [UInt8]) -> [UInt8] { Array(Digest.sha256(secrets[me] + bytes).prefix(16)) }

    func verify(sender: Int, _ bytes: [UInt8], signature: [UInt8]) -> Bool {
        guard sender >= 0, sender < secrets.count else { return false }
        return Array(Digest.sha256(secrets[sender] + bytes).prefix(16)) == signature
    }
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

/// A deterministic network of PBFT replicas: seeded drops, duplicates,
/// delays (reordering) and partitions, crashes with restart from persisted
/// state, and one Byzantine replica. Safety invariants are checked after
/// every event; `run` reports the first violation with the seed.
final class PBFTSimulation {
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
    var description: String { "seed \(seed) (n=\(n), byzantine=\(byzantine.map(String.init) ?? "none") \(behaviour), drop=\(dropRate), dup=\(dupRate), delay≤\(maxDelay))" }

    init(seed: UInt64, n: Int) {
        self.seed = seed
        self.n = n
        var c = PBFTConfig(group: "sim", n: n)
        c.checkpointInterval = 8
        c.viewChangeTimeout = 12
        c.retransmitInterval = 3
        config = c
        rng = SeededRNG(seed: seed)
        secrets = (0..<n).map { i in Digest.sha256(Array("secret-\(seed)-\(i)".utf8)) }
        replicas = []
        persisted = Array(repeating: PBFTDurableState(), count: n)
        ledgers = Array(repeating: [:], count: n)
        for i in 0..<n { replicas.append(makeReplica(i)) }
        // The fault profile comes from the seed.
        dropRate = [0, 0.05, 0.15, 0.3][Int(rng.next() % 4)]
        dupRate = [0, 0.1][Int(rng.next() % 2)]
        maxDelay = [1, 3, 8][Int(rng.next() % 3)]
        if rng.next() % 3 != 0 {
            byzantine = Int(rng.next() % UInt64(n))
            behaviour = ByzantineBehaviour(rawValue: Int(1 + rng.next() % 31))
        }
    }

    func makeReplica(_ i: Int) -> PBFTReplica {
        PBFTReplica(
            config: config, me: i, authenticator: HashAuthenticator(me: i, secrets: secrets), durable: persisted[i],
            validate: { _, p in !p.isEmpty && p.count < 1024 })
    }

    var honest: [Int] { (0..<n).filter { $0 != byzantine } }
    var faultyCount: Int { (byzantine == nil ? 0 : 1) + crashedUntil.count }

    func height(_ i: Int) -> UInt64 { ledgers[i].keys.max() ?? 0 }

    // MARK: network

    func send(from: Int, to: Int, _ e: Envelope) {
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
        while !queue.isEmpty {
            let a = queue.removeFirst()
            switch a {
            case .persist(let s):
                persisted[i] = s
            case .broadcast(let m):
                for j in 0..<n where j != i { send(from: i, to: j, .message(outgoing(i, m, to: j))) }
            case .send(let to, let m):
                send(from: i, to: to, .message(outgoing(i, m, to: to)))
            case .commit(let b):
                committed(i, b)
                if violation != nil { return }
                // Execute: the state digest is a hash chain over block digests.
                let prev = ledgers[i][b.seq - 1].map { stateDigest($0) } ?? PBFTReplica.genesisDigest
                _ = prev
                if replicas[i] != nil {
                    queue.append(contentsOf: replicas[i]!.step(.executed(seq: b.seq, stateDigest: stateDigest(b))))
                }
            case .requestSync(let fromSeq, let hint):
                let target = hint.flatMap { $0 == i ? nil : $0 } ?? honest.filter { $0 != i }[Int(rng.next() % UInt64(max(1, honest.count - 1)))]
                guard target != byzantine, crashedUntil[target] == nil else { break }
                let blocks = (fromSeq..<(fromSeq + 16)).compactMap { ledgers[target][$0] }
                if !blocks.isEmpty { send(from: target, to: i, .synced(blocks)) }
            case .divergence(let seq, _, _):
                if i != byzantine { violation = "\(description): replica \(i) diverged from the stable checkpoint at \(seq)" }
            case .viewChanged:
                break
            }
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

    /// The Byzantine replica's tampering with what it sends.
    func outgoing(_ i: Int, _ m: SignedMessage, to j: Int) -> SignedMessage {
        guard i == byzantine, chaos || true else { return m }
        let auth = HashAuthenticator(me: i, secrets: secrets)
        func resign(_ msg: PBFTMessage) -> SignedMessage {
            SignedMessage(sender: i, message: msg, signature: auth.sign(PBFTCodec.signingBytes(group: config.group, sender: i, message: msg)))
        }
        if behaviour.contains(.badSignatures) && rng.chance(0.3) {
            return SignedMessage(sender: i, message: m.message, signature: Array(m.signature.reversed()))
        }
        switch m.message {
        case .prePrepare(let v, let s, _, _) where behaviour.contains(.equivocate) && j % 2 == 0:
            let p = Array("evil-\(s)-\(j)".utf8)
            return resign(.prePrepare(view: v, seq: s, digest: Digest.sha256(p), payload: p))
        case .prepare(let v, let s, _) where behaviour.contains(.conflictingVotes) && rng.chance(0.5):
            return resign(.prepare(view: v, seq: s, digest: Digest.sha256(Array("x\(rng.next())".utf8))))
        case .commit(let v, let s, _) where behaviour.contains(.conflictingVotes) && rng.chance(0.5):
            return resign(.commit(view: v, seq: s, digest: Digest.sha256(Array("y\(rng.next())".utf8))))
        default:
            return m
        }
    }

    // MARK: running

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
                messagesDelivered += 1
                apply(d.to, replicas[d.to]!.step(.message(m)))
            case .synced(let blocks):
                for b in blocks where replicas[d.to] != nil {
                    apply(d.to, replicas[d.to]!.step(.synced(seq: b.seq, payload: b.payload, certificate: b.certificate)))
                }
            }
        }
    }

    func stepTick() {
        now += 1
        deliverDue()
        for i in 0..<n {
            guard violation == nil, replicas[i] != nil else { continue }
            if i == byzantine && behaviour.contains(.silent) { continue }
            apply(i, replicas[i]!.step(.pendingWork(true)))
            apply(i, replicas[i]!.step(.tick))
            if replicas[i]!.canPropose {
                let payload = Array("block-\(replicas[i]!.nextSequence)-v\(replicas[i]!.view)-\(rng.next() % 1000)".utf8)
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
        guard chaos else { return }
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

    /// Chaos for `chaosTicks`, then a healed network for `healTicks`; returns
    /// the first violation, or a liveness failure if honest replicas did not
    /// make progress after healing.
    func run(chaosTicks: Int = 150, healTicks: Int = 1500, progressAfterHeal: UInt64 = 3) -> String? {
        for _ in 0..<chaosTicks {
            stepTick()
            if let v = violation { return v }
        }
        chaos = false
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
