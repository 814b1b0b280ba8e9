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
}

/// A PBFT replica as a pure, deterministic state machine: `step` takes an
/// event and returns actions; the caller does all I/O. Same events in the
/// same order give the same actions.
public struct PBFTReplica: Sendable {
    public let config: PBFTConfig
    public let me: Int
    let auth: any PBFTAuthenticator
    /// Deterministic check of a proposed payload for a sequence number.
    let validate: @Sendable (UInt64, [UInt8]) -> Bool

    public internal(set) var durable: PBFTDurableState
    public var view: UInt64 { durable.view }
    public var lastExecuted: UInt64 { durable.lastExec }
    public var isChangingView: Bool { durable.changingView }
    public var isPrimary: Bool { config.primary(of: durable.view) == me }
    public var primary: Int { config.primary(of: durable.view) }

    struct Key: Hashable {
        let view: UInt64
        let seq: UInt64
        let digest: [UInt8]
    }

    var prePrepares: [VoteKey: SignedMessage] = [:]
    var prepares: [Key: [Int: SignedMessage]] = [:]
    var commits: [Key: [Int: SignedMessage]] = [:]
    var ready: [UInt64: CommittedBlock] = [:]
    var checkpoints: [UInt64: [Int: SignedMessage]] = [:]
    var myCheckpoints: [UInt64: [UInt8]] = [:]
    var myCheckpointMessages: [UInt64: SignedMessage] = [:]
    public var stableCheckpoint: UInt64 { durable.stableSeq }
    var viewChanges: [Int: (view: UInt64, msg: SignedMessage)] = [:]
    var myViewChange: SignedMessage?
    var myNewView: SignedMessage?
    var pendingWork = false
    var ticksWaiting = 0
    var failedViewChanges = 0
    var ticks = 0
    var lastSyncRequestTick = -1_000
    /// The last executed sequence number when retransmission was last considered.
    var lastExecAtRetransmit: UInt64 = .max
    var highestAssigned: UInt64 = 0

    public init(
        config: PBFTConfig, me: Int, authenticator: any PBFTAuthenticator, durable: PBFTDurableState = PBFTDurableState(),
        validate: @escaping @Sendable (UInt64, [UInt8]) -> Bool = { _, _ in true }
    ) {
        self.config = config
        self.me = me
        self.auth = authenticator
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

    /// The primary may propose when in normal operation with nothing outstanding.
    public var canPropose: Bool {
        isPrimary && !durable.changingView && highestAssigned == durable.lastExec
    }

    /// The sequence number the next proposal gets.
    public var nextSequence: UInt64 { durable.lastExec + 1 }

    // MARK: signing

    func sign(_ m: PBFTMessage) -> SignedMessage {
        SignedMessage(sender: me, message: m, signature: auth.sign(PBFTCodec.signingBytes(group: config.group, sender: me, message: m)))
    }

    func valid(_ s: SignedMessage) -> Bool {
        s.sender >= 0 && s.sender < config.n
            && auth.verify(sender: s.sender, PBFTCodec.signingBytes(group: config.group, sender: s.sender, message: s.message), signature: s.signature)
    }

    // MARK: step

    public mutating func step(_ event: PBFTEvent) -> [PBFTAction] {
        var out: [PBFTAction] = []
        switch event {
        case .message(let m):
            // Messages from outside the group or with bad signatures are ignored.
            guard m.sender != me, valid(m) else { return [] }
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

    mutating func handle(_ m: SignedMessage, _ out: inout [PBFTAction]) {
        switch m.message {
        case .prePrepare(let v, let s, let d, let p): onPrePrepare(m, v, s, d, p, &out)
        case .prepare(let v, let s, let d): onPrepare(m, v, s, d, &out)
        case .commit(let v, let s, let d): onCommit(m, v, s, d, &out)
        case .checkpoint(let s, _): onCheckpoint(m, s, &out)
        case .viewChange(let nv, _, _, _, _): onViewChange(m, nv, &out)
        case .newView(let v, let vcs, let pps): onNewView(m, v, vcs, pps, &out)
        }
    }

    // MARK: normal case

    mutating func propose(_ payload: [UInt8], _ out: inout [PBFTAction]) {
        guard canPropose else { return }
        let seq = durable.lastExec + 1
        let digest = Digest.sha256(payload)
        let pp = sign(.prePrepare(view: durable.view, seq: seq, digest: digest, payload: payload))
        prePrepares[VoteKey(view: durable.view, seq: seq)] = pp
        highestAssigned = seq
        out.append(.broadcast(pp))
        tryPrepared(durable.view, seq, digest, &out)
    }

    mutating func onPrePrepare(_ m: SignedMessage, _ v: UInt64, _ s: UInt64, _ d: [UInt8], _ p: [UInt8], _ out: inout [PBFTAction]) {
        guard v == durable.view, !durable.changingView, m.sender == config.primary(of: v) else { return }
        acceptPrePrepare(m, v, s, d, p, checkWindow: true, &out)
    }

    mutating func acceptPrePrepare(
        _ m: SignedMessage, _ v: UInt64, _ s: UInt64, _ d: [UInt8], _ p: [UInt8], checkWindow: Bool, _ out: inout [PBFTAction]
    ) {
        guard s > durable.stableSeq, !checkWindow || s <= durable.lastExec + config.window else {
            if s > durable.lastExec + config.window { requestSync(hint: m.sender, &out) }
            return
        }
        // Already executed here: take part only for the same block (a new
        // view may re-issue it so that replicas behind can commit it).
        if s <= durable.lastExec && durable.executed[s] != d { return }
        let key = VoteKey(view: v, seq: s)
        if let existing = prePrepares[key] {
            // An equivocating primary: keep the first.
            guard existing == m else { return }
            // A retransmission of what was accepted: checking its block again
            // (hash, decode, transactions root) would change nothing.
            tryPrepared(v, s, d, &out)
            return
        }
        guard Digest.sha256(p) == d, d == Self.nullDigest && p.isEmpty || validate(s, p) else { return }
        if let voted = durable.prepareVotes[key], voted != d { return }
        prePrepares[key] = m
        highestAssigned = max(highestAssigned, s)
        if me != config.primary(of: v) && durable.prepareVotes[key] == nil {
            durable.prepareVotes[key] = d
            out.append(.persist(durable))
            let prep = sign(.prepare(view: v, seq: s, digest: d))
            prepares[Key(view: v, seq: s, digest: d), default: [:]][me] = prep
            out.append(.broadcast(prep))
        }
        tryPrepared(v, s, d, &out)
    }

    mutating func onPrepare(_ m: SignedMessage, _ v: UInt64, _ s: UInt64, _ d: [UInt8], _ out: inout [PBFTAction]) {
        guard m.sender != config.primary(of: v), s > durable.stableSeq else { return }
        if s > durable.lastExec + config.window {
            requestSync(hint: m.sender, &out)
            return
        }
        guard v == durable.view else { return }
        prepares[Key(view: v, seq: s, digest: d), default: [:]][m.sender] = m
        tryPrepared(v, s, d, &out)
    }

    mutating func tryPrepared(_ v: UInt64, _ s: UInt64, _ d: [UInt8], _ out: inout [PBFTAction]) {
        guard let pp = prePrepares[VoteKey(view: v, seq: s)], case .prePrepare(_, _, let pd, _) = pp.message, pd == d else { return }
        let backups = (prepares[Key(view: v, seq: s, digest: d)] ?? [:]).filter { $0.key != config.primary(of: v) }
        guard backups.count >= 2 * config.f else { return }
        let key = VoteKey(view: v, seq: s)
        if (durable.prepared[s]?.view ?? 0) < v || durable.prepared[s] == nil {
            let chosen = backups.keys.sorted().prefix(2 * config.f).map { backups[$0]! }
            durable.prepared[s] = PreparedCertificate(prePrepare: pp, prepares: chosen)
        }
        if durable.commitVotes[key] == nil {
            durable.commitVotes[key] = d
            out.append(.persist(durable))
            let c = sign(.commit(view: v, seq: s, digest: d))
            commits[Key(view: v, seq: s, digest: d), default: [:]][me] = c
            out.append(.broadcast(c))
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
        guard s <= durable.lastExec + config.window else { return }
        commits[Key(view: v, seq: s, digest: d), default: [:]][m.sender] = m
        tryCommitted(v, s, d, &out)
    }

    mutating func tryCommitted(_ v: UInt64, _ s: UInt64, _ d: [UInt8], _ out: inout [PBFTAction]) {
        guard s > durable.lastExec, ready[s] == nil, let cert = durable.prepared[s], cert.view == v, cert.digest == d else { return }
        let cs = commits[Key(view: v, seq: s, digest: d)] ?? [:]
        guard cs.count >= config.quorum else { return }
        let chosen = cs.keys.sorted().prefix(config.quorum).map { cs[$0]! }
        ready[s] = CommittedBlock(seq: s, view: v, digest: d, payload: cert.payload, certificate: chosen)
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

    // MARK: checkpoints and state transfer

    mutating func executed(seq: UInt64, stateDigest: [UInt8], _ out: inout [PBFTAction]) {
        guard seq % config.checkpointInterval == 0, seq > stableCheckpoint else { return }
        myCheckpoints[seq] = stateDigest
        let m = sign(.checkpoint(seq: seq, stateDigest: stateDigest))
        myCheckpointMessages[seq] = m
        checkpoints[seq, default: [:]][me] = m
        out.append(.broadcast(m))
        checkStable(seq, &out)
    }

    mutating func onCheckpoint(_ m: SignedMessage, _ s: UInt64, _ out: inout [PBFTAction]) {
        guard s > durable.stableSeq, s % config.checkpointInterval == 0, s <= durable.lastExec + 4 * config.window else { return }
        checkpoints[s, default: [:]][m.sender] = m
        checkStable(s, &out)
    }

    mutating func checkStable(_ s: UInt64, _ out: inout [PBFTAction]) {
        guard let votes = checkpoints[s], s > durable.stableSeq else { return }
        var tally: [[UInt8]: [SignedMessage]] = [:]
        for m in votes.values {
            if case .checkpoint(_, let d) = m.message { tally[d, default: []].append(m) }
        }
        guard let (digest, proofs) = tally.first(where: { $0.value.count >= config.quorum }) else { return }
        if let mine = myCheckpoints[s], mine != digest {
            out.append(.divergence(seq: s, mine: mine, quorum: digest))
        }
        if s > durable.lastExec { requestSync(hint: nil, &out) }
        durable.stableSeq = s
        durable.stableDigest = digest
        durable.stableProof = Array(proofs.sorted { $0.sender < $1.sender }.prefix(config.quorum))
        durable.prepared = durable.prepared.filter { $0.key > s }
        durable.prepareVotes = durable.prepareVotes.filter { $0.key.seq > s }
        durable.commitVotes = durable.commitVotes.filter { $0.key.seq > s }
        durable.executed = durable.executed.filter { $0.key > s }
        out.append(.persist(durable))
        // Garbage-collect the message log at and below the stable checkpoint.
        prePrepares = prePrepares.filter { $0.key.seq > s }
        prepares = prepares.filter { $0.key.seq > s }
        commits = commits.filter { $0.key.seq > s }
        checkpoints = checkpoints.filter { $0.key > s }
        myCheckpoints = myCheckpoints.filter { $0.key >= s }
        myCheckpointMessages = myCheckpointMessages.filter { $0.key >= s }
    }

    mutating func requestSync(hint: Int?, _ out: inout [PBFTAction]) {
        guard ticks - lastSyncRequestTick >= config.retransmitInterval else { return }
        lastSyncRequestTick = ticks
        out.append(.requestSync(fromSeq: durable.lastExec + 1, hint: hint))
    }

    /// A valid commit certificate: 2f+1 distinct members' commits for the
    /// same (view, seq, digest).
    func validCommitCertificate(seq: UInt64, digest: [UInt8], _ cert: [SignedMessage]) -> Bool {
        var senders = Set<Int>()
        var view: UInt64? = nil
        for c in cert {
            guard case .commit(let v, let s, let d) = c.message, s == seq, d == digest, view == nil || view == v, valid(c) else { return false }
            view = v
            senders.insert(c.sender)
        }
        return senders.count >= config.quorum
    }

    /// 2f+1 distinct members' checkpoint messages for (seq, state digest).
    func validCheckpointProof(seq: UInt64, digest: [UInt8], _ proof: [SignedMessage]) -> Bool {
        var senders = Set<Int>()
        for c in proof {
            guard case .checkpoint(let s, let d) = c.message, s == seq, d == digest, valid(c) else { return false }
            senders.insert(c.sender)
        }
        return senders.count >= config.quorum
    }

    mutating func acceptSynced(seq: UInt64, payload: [UInt8], cert: [SignedMessage], _ out: inout [PBFTAction]) {
        guard seq > durable.lastExec, ready[seq] == nil else { return }
        let d = Digest.sha256(payload)
        guard validCommitCertificate(seq: seq, digest: d, cert), case .commit(let v, _, _) = cert[0].message else { return }
        ready[seq] = CommittedBlock(seq: seq, view: v, digest: d, payload: payload, certificate: cert)
        executeReady(&out)
        if ready.keys.contains(where: { $0 > durable.lastExec + 1 }) && ready[durable.lastExec + 1] == nil {
            requestSync(hint: nil, &out)
        }
    }

    // MARK: timers

    mutating func tick(_ out: inout [PBFTAction]) {
        ticks += 1
        let outstanding = highestAssigned > durable.lastExec || !ready.isEmpty
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
                startViewChange(durable.view + 1, &out)
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
        for s in from...max(from, highestAssigned) {
            if let pp = prePrepares[VoteKey(view: v, seq: s)], case .prePrepare(_, _, let d, _) = pp.message {
                if isPrimary { out.append(.broadcast(pp)) }
                if let p = prepares[Key(view: v, seq: s, digest: d)]?[me] { out.append(.broadcast(p)) }
                if let c = commits[Key(view: v, seq: s, digest: d)]?[me] { out.append(.broadcast(c)) }
            }
        }
        // A recent checkpoint tells lagging replicas they are behind.
        if let s = myCheckpointMessages.keys.max(), let m = myCheckpointMessages[s] { out.append(.broadcast(m)) }
    }
}
