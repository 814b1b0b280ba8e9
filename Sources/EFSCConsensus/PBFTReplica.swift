import EFSCCore

/// Settings of one PBFT group.
public struct PBFTConfig: Sendable {
    public let group: String
    /// Number of replicas, n = 3f + 1.
    public let n: Int
    public var f: Int { (n - 1) / 3 }
    /// Executed blocks between checkpoints.
    public var checkpointInterval: UInt64 = 16
    /// Ticks without progress (while work is pending) before a view change;
    /// doubled for each consecutive failed view change.
    public var viewChangeTimeout: Int = 20
    /// Ticks between retransmissions of this replica's current votes.
    public var retransmitInterval: Int = 4
    /// Sequence numbers accepted above the last executed one.
    public var window: UInt64 = 32

    public init(group: String, n: Int) {
        precondition(n >= 4 && (n - 1) % 3 == 0, "PBFT needs n = 3f+1 ≥ 4 replicas")
        self.group = group
        self.n = n
    }

    public var quorum: Int { 2 * f + 1 }
    public func primary(of view: UInt64) -> Int { Int(view % UInt64(n)) }

    /// Sequence numbers a replica keeps a log for above its stable
    /// checkpoint; it votes on none beyond (Castro–Liskov's high-water mark
    /// H = h + L). A view-change carries at most this many prepared certificates.
    public var logSize: UInt64 { window + 2 * checkpointInterval }
    /// Most signatures a view-change can carry (2f+1 checkpoints, and per
    /// prepared certificate a pre-prepare and 2f prepares) and a new-view
    /// (2f+1 view-changes with their own, and the re-issued pre-prepares).
    /// Each distinct one is verified once (`MessageVerifier`).
    public var maxViewChangeSignatures: Int { quorum + Int(logSize) * (1 + 2 * f) }
    public var maxNewViewSignatures: Int { quorum * (1 + maxViewChangeSignatures) + Int(logSize) }
}

/// What drives a replica: messages, clock ticks and the application.
public enum PBFTEvent: Sendable {
    case message(SignedMessage)
    case tick
    /// The application proposes the payload of the next block (primary only; see `canPropose`).
    case propose([UInt8])
    /// Whether the application has transactions waiting (arms the view-change timer).
    case pendingWork(Bool)
    /// A committed block fetched by state transfer, with its commit certificate.
    case synced(seq: UInt64, payload: [UInt8], certificate: [SignedMessage])
    /// The application executed block `seq`; `stateDigest` is its state root.
    case executed(seq: UInt64, stateDigest: [UInt8])
}

/// A block the group committed, in order, with 2f+1 commit signatures.
public struct CommittedBlock: Hashable, Sendable {
    public let seq: UInt64
    public let view: UInt64
    public let digest: [UInt8]
    public let payload: [UInt8]
    public let certificate: [SignedMessage]
}

/// What the caller must do, in order. `persist` precedes the messages whose
/// votes it records: persist, then send.
public enum PBFTAction: Sendable {
    case persist(PBFTDurableState)
    case broadcast(SignedMessage)
    case send(to: Int, SignedMessage)
    case commit(CommittedBlock)
    /// Fetch committed blocks from `fromSeq` on (from replica `hint` if given).
    case requestSync(fromSeq: UInt64, hint: Int?)
    /// A stable checkpoint disagrees with this replica's state at `seq`.
    case divergence(seq: UInt64, mine: [UInt8], quorum: [UInt8])
    case viewChanged(view: UInt64)
    /// A message (from replica `sender`, if known) or a proposed block was
    /// refused: no correct replica sends it. Nothing else changed.
    case rejected(sender: Int?, reason: PBFTRejection, detail: String)
}

/// What survives a crash: enough that a restarted replica never votes twice
/// differently, never goes back a view, and keeps its prepared certificates.
public struct PBFTDurableState: Hashable, Sendable {
    public var view: UInt64 = 0
    public var changingView = false
    public var lastExec: UInt64 = 0
    public var lastExecDigest: [UInt8] = [UInt8](repeating: 0, count: 32)
    public var lastExecCert: [SignedMessage] = []
    /// Last stable checkpoint: sequence, state digest and 2f+1 signed checkpoint messages.
    public var stableSeq: UInt64 = 0
    public var stableDigest: [UInt8] = [UInt8](repeating: 0, count: 32)
    public var stableProof: [SignedMessage] = []
    /// Digests of executed blocks above the stable checkpoint.
    public var executed: [UInt64: [UInt8]] = [:]
    public var prepareVotes: [VoteKey: [UInt8]] = [:]
    public var commitVotes: [VoteKey: [UInt8]] = [:]
    public var prepared: [UInt64: PreparedCertificate] = [:]

    public init() {}
}

/// (view, seq) of a vote.
public struct VoteKey: Hashable, Sendable {
    public let view: UInt64
    public let seq: UInt64
    public init(view: UInt64, seq: UInt64) {
        self.view = view
        self.seq = seq
    }
}

/// A PBFT replica as a pure, deterministic state machine: `step` takes an
/// event and returns actions; the caller does all I/O. Same events in the
/// same order give the same actions.
///
/// Every message is checked by `MessageVerifier` (nested ones included)
/// before it changes anything; every signature this replica gives goes
/// through `SafetyRules`. What it stores per peer is bounded between
/// checkpoints (`footprint`, `footprintBound`): one vote per (sender, view,
/// sequence), views within one of the current, sequences within the log.
public struct PBFTReplica: Sendable {
    public let config: PBFTConfig
    public let me: Int
    let rules: SafetyRules
    var verifier: MessageVerifier
    /// Deterministic check of a proposed block against this replica's
    /// ledger (see `PBFTValidation`); null blocks of a new view are not asked about.
    public var validate: @Sendable (PBFTProposal) -> PBFTValidation

    public internal(set) var durable: PBFTDurableState
    public var view: UInt64 { durable.view }
    public var lastExecuted: UInt64 { durable.lastExec }
    public var isChangingView: Bool { durable.changingView }
    public var isPrimary: Bool { config.primary(of: durable.view) == me }
    public var primary: Int { config.primary(of: durable.view) }

    var prePrepares: [VoteKey: SignedMessage] = [:]
    /// Pre-prepares of the current view whose block cannot be judged yet
    /// (`notYet`), by sequence, and whether a new view re-issued them.
    var held: [UInt64: (message: SignedMessage, reissued: Bool)] = [:]
    /// Proposals judged invalid, (view, seq) → digest: never judged again.
    var invalid: [VoteKey: [UInt8]] = [:]
    var prepares = VoteLog()
    var commits = VoteLog()
    var ready: [UInt64: CommittedBlock] = [:]
    var checkpoints: [UInt64: [Int: SignedMessage]] = [:]
    var myCheckpoints: [UInt64: [UInt8]] = [:]
    var myCheckpointMessages: [UInt64: SignedMessage] = [:]
    public var stableCheckpoint: UInt64 { durable.stableSeq }
    var viewChanges: [Int: (view: UInt64, msg: SignedMessage)] = [:]
    var myViewChange: SignedMessage?
    var myNewView: SignedMessage?
    var pendingWork = false
    /// The current primary proposed a block this replica judged invalid:
    /// the view-change timer runs even with nothing else pending.
    var suspectPrimary = false
    var ticksWaiting = 0
    var failedViewChanges = 0
    var ticks = 0
    var lastSyncRequestTick = -1_000
    /// When this replica last forwarded its new-view to a replica behind.
    var lastForward: [Int: Int] = [:]
    /// The last executed sequence number when retransmission was last considered.
    var lastExecAtRetransmit: UInt64 = .max
    var highestAssigned: UInt64 = 0

    public init(
        config: PBFTConfig, me: Int, authenticator: any PBFTAuthenticator, durable: PBFTDurableState = PBFTDurableState(),
        validate: @escaping @Sendable (PBFTProposal) -> PBFTValidation = { _ in .valid }
    ) {
        self.config = config
        self.me = me
        self.rules = SafetyRules(config: config, me: me, auth: authenticator)
        self.verifier = MessageVerifier(config: config, auth: authenticator)
        self.validate = validate
        self.durable = durable
        if durable.lastExecDigest.isEmpty { self.durable.lastExecDigest = Self.genesisDigest }
        if durable.stableDigest.isEmpty { self.durable.stableDigest = Self.genesisDigest }
        highestAssigned = self.durable.lastExec
        // Prepared certificates survive; the pre-prepares they hold are known.
        for (_, c) in durable.prepared where c.view == durable.view {
            prePrepares[VoteKey(view: c.view, seq: c.seq)] = c.prePrepare
            highestAssigned = max(highestAssigned, c.seq)
        }
    }

    public static let genesisDigest = [UInt8](repeating: 0, count: 32)
    public static let nullDigest = Digest.sha256([])

    /// Highest sequence number this replica votes on (stable checkpoint + log size).
    var highWater: UInt64 { rules.highWater(durable) }

    /// The primary may propose when in normal operation with nothing
    /// outstanding and nothing proposed at the next sequence before.
    public var canPropose: Bool {
        isPrimary && !durable.changingView && highestAssigned == durable.lastExec
            && rules.mayPropose(view: durable.view, seq: durable.lastExec + 1, durable)
    }

    /// The sequence number the next proposal gets.
    public var nextSequence: UInt64 { durable.lastExec + 1 }

    /// Signatures verified so far (each distinct one once; tests bound the work per message).
    public var signatureChecks: Int { verifier.signatureChecks }

    // MARK: step

    public mutating func step(_ event: PBFTEvent) -> [PBFTAction] {
        var out: [PBFTAction] = []
        switch event {
        case .message(let m):
            // A replica's own messages echoed back are ignored; anything else
            // is verified before it is looked at.
            guard m.sender != me else { return [] }
            if let why = verifier.admit(m) {
                reject(m, why, "\(m.message.kindName) from replica \(m.sender)", &out)
                return out
            }
            handle(m, &out)
        case .tick:
            tick(&out)
        case .propose(let payload):
            propose(payload, &out)
        case .pendingWork(let p):
            pendingWork = p
        case .synced(let seq, let payload, let cert):
            acceptSynced(seq: seq, payload: payload, cert: cert, &out)
        case .executed(let seq, let stateDigest):
            executed(seq: seq, stateDigest: stateDigest, &out)
        }
        return out
    }

    func reject(_ m: SignedMessage?, _ why: PBFTRejection, _ detail: String, _ out: inout [PBFTAction]) {
        out.append(.rejected(sender: m?.sender, reason: why, detail: detail))
    }

    mutating func handle(_ m: SignedMessage, _ out: inout [PBFTAction]) {
        switch m.message {
        case .prePrepare(let v, let s, let d, let p): onPrePrepare(m, v, s, d, p, &out)
        case .prepare(let v, let s, let d): onPrepare(m, v, s, d, &out)
        case .commit(let v, let s, let d): onCommit(m, v, s, d, &out)
        case .checkpoint(let s, _): onCheckpoint(m, s, &out)
        case .viewChange(let nv, _, _, _, _, _): onViewChange(m, nv, &out)
        case .newView(let v, _, let pps): onNewView(m, v, pps, &out)
        }
    }

    // MARK: normal case

    mutating func propose(_ payload: [UInt8], _ out: inout [PBFTAction]) {
        guard canPropose else { return }
        let seq = durable.lastExec + 1
        let digest = Digest.sha256(payload)
        guard let pp = rules.propose(view: durable.view, seq: seq, payload: payload, digest: digest, &durable, &out) else { return }
        prePrepares[VoteKey(view: durable.view, seq: seq)] = pp
        highestAssigned = seq
        tryPrepared(durable.view, seq, digest, &out)
    }

    mutating func onPrePrepare(_ m: SignedMessage, _ v: UInt64, _ s: UInt64, _ d: [UInt8], _ p: [UInt8], _ out: inout [PBFTAction]) {
        guard v == durable.view, !durable.changingView, m.sender == config.primary(of: v) else { return }
        acceptPrePrepare(m, v, s, d, p, reissued: false, &out)
    }

    /// A pre-prepare of the current view (from its primary, or re-issued by
    /// a verified new-view): its block must match its digest and be valid
    /// on this replica's ledger before the replica prepares it.
    mutating func acceptPrePrepare(
        _ m: SignedMessage, _ v: UInt64, _ s: UInt64, _ d: [UInt8], _ p: [UInt8], reissued: Bool, _ out: inout [PBFTAction]
    ) {
        guard s > durable.stableSeq, s <= highWater, reissued || s <= durable.lastExec + config.window else {
            if s > durable.lastExec + config.window { requestSync(hint: m.sender, &out) }
            return
        }
        // Already executed here: take part only for the same block (a new
        // view may re-issue it so that replicas behind can commit it).
        if s <= durable.lastExec && durable.executed[s] != d { return }
        let key = VoteKey(view: v, seq: s)
        if let existing = prePrepares[key] {
            guard existing == m else {
                if existing.message != m.message { reject(m, .equivocation, "two pre-prepares for view \(v), sequence \(s)", &out) }
                return
            }
            // A retransmission of what was accepted: checking its block again
            // (hash, decode, execution) would change nothing.
            tryPrepared(v, s, d, &out)
            return
        }
        if let h = held[s] {
            if h.message.message != m.message { reject(m, .equivocation, "two pre-prepares for view \(v), sequence \(s)", &out) }
            return
        }
        if let bad = invalid[key] {
            if bad != d { reject(m, .equivocation, "two pre-prepares for view \(v), sequence \(s)", &out) }
            return
        }
        // The signature covers the digest, not the block: a block that does
        // not match is not the primary's (nothing is remembered against it).
        guard Digest.sha256(p) == d else {
            reject(m, .badProposal, "pre-prepare \(v)/\(s): the block does not match its digest", &out)
            return
        }
        if d == Self.nullDigest && p.isEmpty {
            guard reissued else {
                reject(m, .badProposal, "pre-prepare \(v)/\(s): an empty block outside a new view", &out)
                return
            }
        } else if s > durable.lastExec {
            switch validate(PBFTProposal(view: v, seq: s, digest: d, payload: p)) {
            case .valid:
                break
            case .notYet:
                held[s] = (m, reissued)
                return
            case .invalid(let why):
                invalid[key] = d
                if m.sender == primary { suspectPrimary = true }
                reject(m, .badProposal, "pre-prepare \(v)/\(s): \(why)", &out)
                return
            }
        }
        if let voted = durable.prepareVotes[key], voted != d { return }
        prePrepares[key] = m
        highestAssigned = max(highestAssigned, s)
        if me != config.primary(of: v), let prep = rules.prepare(view: v, seq: s, digest: d, &durable, &out) {
            _ = prepares.add(key, sender: me, digest: d, prep)
        }
        tryPrepared(v, s, d, &out)
    }

    /// Held pre-prepares, judged again (after a block executed, and each tick).
    mutating func retryHeld(_ out: inout [PBFTAction]) {
        guard !held.isEmpty else { return }
        for s in held.keys.sorted() {
            guard let h = held.removeValue(forKey: s), case .prePrepare(let v, _, let d, let p) = h.message.message,
                v == durable.view, !durable.changingView
            else { continue }
            acceptPrePrepare(h.message, v, s, d, p, reissued: h.reissued, &out)
        }
    }

    mutating func onPrepare(_ m: SignedMessage, _ v: UInt64, _ s: UInt64, _ d: [UInt8], _ out: inout [PBFTAction]) {
        guard m.sender != config.primary(of: v), s > durable.stableSeq else { return }
        if s > durable.lastExec + config.window {
            requestSync(hint: m.sender, &out)
            return
        }
        guard v == durable.view, s <= highWater else { return }
        let key = VoteKey(view: v, seq: s)
        switch prepares.add(key, sender: m.sender, digest: d, m) {
        case .equivocation: reject(m, .equivocation, "two prepares for view \(v), sequence \(s)", &out)
        case .duplicate: return
        case .added: tryPrepared(v, s, d, &out)
        }
    }

    mutating func tryPrepared(_ v: UInt64, _ s: UInt64, _ d: [UInt8], _ out: inout [PBFTAction]) {
        let key = VoteKey(view: v, seq: s)
        guard let pp = prePrepares[key], case .prePrepare(_, _, let pd, _) = pp.message, pd == d else { return }
        let backups = prepares.voters(key, digest: d).filter { $0.sender != config.primary(of: v) }
        guard backups.count >= 2 * config.f else { return }
        if durable.prepared[s] == nil || durable.prepared[s]!.view < v {
            durable.prepared[s] = PreparedCertificate(prePrepare: pp, prepares: backups.prefix(2 * config.f).map(\.message))
        }
        if durable.commitVotes[key] == nil, let c = rules.commit(view: v, seq: s, digest: d, &durable, &out) {
            _ = commits.add(key, sender: me, digest: d, c)
        }
        tryCommitted(v, s, d, &out)
    }

    mutating func onCommit(_ m: SignedMessage, _ v: UInt64, _ s: UInt64, _ d: [UInt8], _ out: inout [PBFTAction]) {
        guard s > durable.stableSeq else { return }
        if s > durable.lastExec + 1 && ready[durable.lastExec + 1] == nil
            && (s > durable.lastExec + config.window || (v != durable.view && !durable.changingView))
        {
            requestSync(hint: m.sender, &out)
        }
        // Commits of this view and the one before (a view change may
        // overtake a commit in flight); later views are reached by new-view.
        guard s > durable.lastExec, s <= durable.lastExec + config.window, s <= highWater, v <= durable.view, v + 1 >= durable.view else { return }
        switch commits.add(VoteKey(view: v, seq: s), sender: m.sender, digest: d, m) {
        case .equivocation:
            reject(m, .equivocation, "two commits for view \(v), sequence \(s)", &out)
            return
        case .duplicate: break
        case .added: tryCommitted(v, s, d, &out)
        }
        // 2f+1 replicas committed the next block, but this one cannot commit
        // it from its own log (it missed the prepares, and may since have
        // left the view suspecting the primary): fetch it, with its commit
        // certificate, by state transfer. Otherwise, on a chain that goes
        // idle, it would stay a block behind until `window` more commit.
        if s == durable.lastExec + 1, ready[s] == nil, commits.voters(VoteKey(view: v, seq: s), digest: d).count >= config.quorum {
            requestSync(hint: m.sender, &out)
        }
    }

    mutating func tryCommitted(_ v: UInt64, _ s: UInt64, _ d: [UInt8], _ out: inout [PBFTAction]) {
        guard s > durable.lastExec, ready[s] == nil, let cert = durable.prepared[s], cert.view == v, cert.digest == d else { return }
        let cs = commits.voters(VoteKey(view: v, seq: s), digest: d)
        guard cs.count >= config.quorum else { return }
        ready[s] = CommittedBlock(seq: s, view: v, digest: d, payload: cert.payload, certificate: cs.prefix(config.quorum).map(\.message))
        executeReady(&out)
    }

    mutating func executeReady(_ out: inout [PBFTAction]) {
        var progressed = false
        while let b = ready[durable.lastExec + 1] {
            ready.removeValue(forKey: b.seq)
            durable.lastExec = b.seq
            durable.lastExecDigest = b.digest
            durable.lastExecCert = b.certificate
            durable.executed[b.seq] = b.digest
            highestAssigned = max(highestAssigned, b.seq)
            out.append(.commit(b))
            progressed = true
        }
        if progressed {
            ticksWaiting = 0
            failedViewChanges = 0
            out.append(.persist(durable))
        }
    }

    // MARK: timers

    mutating func tick(_ out: inout [PBFTAction]) {
        ticks += 1
        retryHeld(&out)
        let outstanding = highestAssigned > durable.lastExec || !ready.isEmpty || !held.isEmpty || suspectPrimary
        // During a view change the timer runs only once 2f+1 replicas are at
        // this view or beyond (Castro–Liskov): a replica alone cannot race ahead.
        let quorumMoving = viewChanges.values.filter { $0.view >= durable.view }.count >= config.quorum
        if durable.changingView && !quorumMoving {
            ticksWaiting = 0
        } else if durable.changingView || pendingWork || outstanding {
            ticksWaiting += 1
            let limit = config.viewChangeTimeout << min(failedViewChanges, 3)
            if ticksWaiting >= limit {
                ticksWaiting = 0
                failedViewChanges += 1
                if durable.view < WireLimits.consensusMaxNumber { startViewChange(durable.view + 1, &out) }
                return
            }
        } else {
            ticksWaiting = 0
        }
        if ticks % config.retransmitInterval == 0 {
            // While blocks execute, nobody waits for a lost vote: a replica
            // that missed one catches up from later messages by state
            // transfer. Re-sending every open vote (and, from the primary, up
            // to 700 KB per pre-prepare) each interval only took CPU from
            // replicas busy executing. So re-send only when this replica
            // executed nothing during the last interval.
            if durable.changingView || durable.lastExec == lastExecAtRetransmit { retransmit(&out) }
            lastExecAtRetransmit = durable.lastExec
        }
    }

    /// Re-sends this replica's current votes, so a lossy network only delays.
    mutating func retransmit(_ out: inout [PBFTAction]) {
        if durable.changingView {
            // After a restart the view-change message is rebuilt from durable state.
            let vc = myViewChange ?? makeViewChange()
            out.append(.broadcast(vc))
            return
        }
        if isPrimary, let nv = myNewView, case .newView(let v, _, _) = nv.message, v == durable.view { out.append(.broadcast(nv)) }
        let v = durable.view
        // Votes for what is still open, plus the last few executed blocks a
        // new view may have re-issued; replicas further behind use state transfer.
        let from = max(durable.stableSeq, durable.lastExec > 2 ? durable.lastExec - 2 : 0) + 1
        for s in from...max(from, min(highestAssigned, from + config.logSize)) {
            let key = VoteKey(view: v, seq: s)
            guard let pp = prePrepares[key] else { continue }
            if isPrimary { out.append(.broadcast(pp)) }
            if let p = prepares.vote(key, from: me) { out.append(.broadcast(p.message)) }
            if let c = commits.vote(key, from: me) { out.append(.broadcast(c.message)) }
        }
        // A recent checkpoint tells lagging replicas they are behind.
        if let s = myCheckpointMessages.keys.max(), let m = myCheckpointMessages[s] { out.append(.broadcast(m)) }
    }

    // MARK: footprint

    /// What the replica holds: messages stored per sender (votes,
    /// pre-prepares held or refused, checkpoints, view-changes) and its own
    /// durable vote records.
    public struct Footprint: Sendable, CustomStringConvertible {
        public let perSender: [Int: Int]
        public let ready: Int
        public let prepared: Int
        public let ownVotes: Int
        public var description: String { "per sender \(perSender.sorted { $0.key < $1.key }), ready \(ready), prepared \(prepared), own votes \(ownVotes)" }
    }

    public var footprint: Footprint {
        var counts: [Int: Int] = [:]
        prepares.countBySender(into: &counts)
        commits.countBySender(into: &counts)
        for (_, m) in prePrepares { counts[m.sender, default: 0] += 1 }
        for (_, h) in held { counts[h.message.sender, default: 0] += 1 }
        counts[primary, default: 0] += invalid.count
        for (_, byS) in checkpoints { for s in byS.keys { counts[s, default: 0] += 1 } }
        for s in viewChanges.keys { counts[s, default: 0] += 1 }
        return Footprint(perSender: counts, ready: ready.count, prepared: durable.prepared.count, ownVotes: durable.prepareVotes.count + durable.commitVotes.count)
    }

    /// Most messages a replica stores from one sender between checkpoints,
    /// whatever that sender sends: prepares and commits of two views over
    /// the log, pre-prepares of two views, held and refused proposals, its
    /// checkpoints in reach, one view-change.
    public static func footprintBound(_ c: PBFTConfig) -> Int {
        let log = Int(c.logSize)
        return 2 * log + 2 * log + 2 * log + log + log + checkpointsPerSender(c) + 1
    }

    /// Checkpoints kept per sender: those within reach above the stable one.
    static func checkpointsPerSender(_ c: PBFTConfig) -> Int { Int((4 * c.window) / c.checkpointInterval) + 2 }
}
