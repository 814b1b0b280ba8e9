import EFSCCore

/// Checkpoints (garbage collection of the log) and state transfer.
extension PBFTReplica {
    mutating func executed(seq: UInt64, stateDigest: [UInt8], _ out: inout [PBFTAction]) {
        if seq % config.checkpointInterval == 0, seq > stableCheckpoint {
            myCheckpoints[seq] = stateDigest
            let m = rules.checkpoint(seq: seq, stateDigest: stateDigest)
            myCheckpointMessages[seq] = m
            checkpoints[seq, default: [:]][me] = m
            out.append(.broadcast(m))
            checkStable(seq, &out)
        }
        // The next block may be judged now that its parent executed.
        retryHeld(&out)
    }

    mutating func onCheckpoint(_ m: SignedMessage, _ s: UInt64, _ out: inout [PBFTAction]) {
        guard s > durable.stableSeq, s % config.checkpointInterval == 0, s <= durable.lastExec + 4 * config.window else { return }
        if let prev = checkpoints[s]?[m.sender] {
            if prev.message != m.message { reject(m, .equivocation, "two checkpoints for sequence \(s)", &out) }
            return
        }
        // A sender's checkpoints within reach (a sender far ahead, or
        // sending for every reachable sequence, keeps only its latest).
        let mine = checkpoints.filter { $0.value[m.sender] != nil }.keys.sorted()
        if mine.count >= Self.checkpointsPerSender(config), let oldest = mine.first {
            guard oldest < s else { return }
            checkpoints[oldest]?[m.sender] = nil
            if checkpoints[oldest]?.isEmpty == true { checkpoints[oldest] = nil }
        }
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
        held = held.filter { $0.key > s }
        invalid = invalid.filter { $0.key.seq > s }
        prepares.removeAll { $0.seq <= s }
        commits.removeAll { $0.seq <= s }
        checkpoints = checkpoints.filter { $0.key > s }
        myCheckpoints = myCheckpoints.filter { $0.key >= s }
        myCheckpointMessages = myCheckpointMessages.filter { $0.key >= s }
    }

    mutating func requestSync(hint: Int?, _ out: inout [PBFTAction]) {
        guard ticks - lastSyncRequestTick >= config.retransmitInterval else { return }
        lastSyncRequestTick = ticks
        out.append(.requestSync(fromSeq: durable.lastExec + 1, hint: hint))
    }

    /// How far above the last executed block a synced block may be (a sync
    /// reply starts at the next one and holds at most `WireLimits.syncBlocks`).
    var syncReach: UInt64 { UInt64(WireLimits.syncBlocks) + config.window }

    mutating func acceptSynced(seq: UInt64, payload: [UInt8], cert: [SignedMessage], _ out: inout [PBFTAction]) {
        guard seq > durable.lastExec, seq <= durable.lastExec + syncReach, ready[seq] == nil else { return }
        let d = Digest.sha256(payload)
        guard let v = verifier.commitCertificate(seq: seq, digest: d, cert) else {
            reject(nil, .badCertificate, "synced block \(seq) without 2f+1 valid commit signatures", &out)
            return
        }
        ready[seq] = CommittedBlock(seq: seq, view: v, digest: d, payload: payload, certificate: cert)
        executeReady(&out)
        if ready.keys.contains(where: { $0 > durable.lastExec + 1 }) && ready[durable.lastExec + 1] == nil {
            requestSync(hint: nil, &out)
        }
    }
}
