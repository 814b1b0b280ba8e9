import EFSCCore

/// View change and new-view (Castro–Liskov §4.4): leaving a stalled or
/// faulty primary's view without losing any request prepared in it. A view
/// moves by this replica's own timeout (one view at a time), by joining the
/// smallest view f+1 verified view-changes ask for (at least one of them
/// from a correct replica), or by a new-view carrying 2f+1 verified
/// view-changes for exactly that view.
extension PBFTReplica {
    mutating func startViewChange(_ newView: UInt64, _ out: inout [PBFTAction]) {
        guard let vc = rules.viewChange(to: newView, &durable, &out) else { return }
        ticksWaiting = 0
        suspectPrimary = false
        myNewView = nil
        myViewChange = vc
        viewChanges[me] = (newView, vc)
        held = [:]
        // Votes of views this replica can no longer use.
        prepares.removeAll { $0.view + 1 < newView }
        commits.removeAll { $0.view + 1 < newView }
        out.append(.viewChanged(view: newView))
        maybeSendNewView(&out)
    }

    /// This replica's view-change message for its current (target) view.
    mutating func makeViewChange() -> SignedMessage {
        let vc = rules.currentViewChange(durable)
        myViewChange = vc
        viewChanges[me] = (durable.view, vc)
        return vc
    }

    mutating func onViewChange(_ m: SignedMessage, _ nv: UInt64, _ out: inout [PBFTAction]) {
        if nv <= durable.view && !(nv == durable.view && durable.changingView) {
            // The sender is behind: forward the new-view of our view (signed
            // by its primary), at most once per retransmit interval each.
            if let mine = myNewView, case .newView(let v, _, _) = mine.message, v == durable.view,
                ticks - (lastForward[m.sender] ?? -1_000) >= config.retransmitInterval
            {
                lastForward[m.sender] = ticks
                out.append(.send(to: m.sender, mine))
            }
            return
        }
        if let known = viewChanges[m.sender], known.view >= nv { return }
        guard let claim = verifier.viewChange(m) else {
            verifier.refuse(m)
            reject(m, .badCertificate, "view-change to view \(nv) from replica \(m.sender) with an invalid checkpoint proof or prepared certificate", &out)
            return
        }
        viewChanges[m.sender] = (nv, m)
        adoptCommitted([claim], &out)
        // A later stable checkpoint or committed block is proved: catch up by state transfer.
        if claim.base > durable.lastExec { requestSync(hint: m.sender, &out) }
        // f+1 replicas want a later view: join the smallest of them (not
        // moved by one faulty replica's view-change spam).
        let later = viewChanges.values.filter { $0.view > durable.view }
        if later.count >= config.f + 1, let target = later.map(\.view).min(), target > durable.view {
            startViewChange(target, &out)
            return
        }
        maybeSendNewView(&out)
    }

    mutating func maybeSendNewView(_ out: inout [PBFTAction]) {
        let v = durable.view
        guard durable.changingView, config.primary(of: v) == me else { return }
        let vcs = viewChanges.values.filter { $0.view == v }.map(\.msg).sorted { $0.sender < $1.sender }
        guard vcs.count >= config.quorum else { return }
        let chosen = Array(vcs.prefix(config.quorum))
        // Verified when they arrived; their signatures are remembered, so
        // this costs hashing, not verification.
        var claims: [MessageVerifier.ViewChangeClaim] = []
        for vc in chosen {
            guard let c = verifier.viewChange(vc) else { return }
            claims.append(c)
        }
        guard let (minS, items) = verifier.reissue(claims),
            let (nv, pps) = rules.newView(viewChanges: chosen, reissue: items, &durable, &out)
        else { return }
        myNewView = nv
        adoptCommitted(claims, &out)
        enterView(v, minS: minS, pps, &out)
    }

    mutating func onNewView(_ m: SignedMessage, _ v: UInt64, _ pps: [SignedMessage], _ out: inout [PBFTAction]) {
        guard v >= durable.view, !(v == durable.view && !durable.changingView) else { return }
        guard m.sender == config.primary(of: v) else {
            reject(m, .badNewView, "new-view for view \(v) from replica \(m.sender), not its primary", &out)
            return
        }
        guard let (minS, _, claims) = verifier.newView(m) else {
            verifier.refuse(m)
            reject(m, .badNewView, "new-view for view \(v) without 2f+1 valid view-changes for it, or with pre-prepares they do not determine", &out)
            return
        }
        myNewView = m
        adoptCommitted(claims, &out)
        enterView(v, minS: minS, pps, &out)
    }

    /// A view-change proves a block committed (its sender's last executed
    /// block, with 2f+1 commits): if this replica prepared that very block,
    /// it commits it from that certificate. Blocks up to a new view's start
    /// are fetched by state transfer, and the f+1 correct replicas among the
    /// certificate's signers, which prepared the block (and so executed its
    /// parent), may have no one else to fetch it from.
    mutating func adoptCommitted(_ claims: [MessageVerifier.ViewChangeClaim], _ out: inout [PBFTAction]) {
        var adopted = false
        for c in claims where c.executed > durable.lastExec && c.executed <= durable.lastExec + syncReach && ready[c.executed] == nil {
            guard let p = durable.prepared[c.executed], p.digest == c.executedDigest else { continue }
            ready[c.executed] = CommittedBlock(seq: c.executed, view: c.executedView, digest: p.digest, payload: p.payload, certificate: c.executedProof)
            adopted = true
        }
        guard adopted else { return }
        executeReady(&out)
        if ready.keys.contains(where: { $0 > durable.lastExec + 1 }) && ready[durable.lastExec + 1] == nil { requestSync(hint: nil, &out) }
    }

    mutating func enterView(_ v: UInt64, minS: UInt64, _ pps: [SignedMessage], _ out: inout [PBFTAction]) {
        guard rules.enterView(v, &durable, &out) else { return }
        ticksWaiting = 0
        suspectPrimary = false
        myViewChange = nil
        held = [:]
        viewChanges = viewChanges.filter { $0.value.view > v }
        prePrepares = prePrepares.filter { $0.key.view >= v }
        invalid = invalid.filter { $0.key.view >= v }
        prepares.removeAll { $0.view < v }
        commits.removeAll { $0.view + 1 < v }
        highestAssigned = max(durable.lastExec, minS)
        out.append(.viewChanged(view: v))
        if minS > durable.lastExec { requestSync(hint: nil, &out) }
        for pp in pps {
            if case .prePrepare(let pv, let s, let d, let p) = pp.message, s > durable.stableSeq {
                acceptPrePrepare(pp, pv, s, d, p, reissued: true, &out)
            }
        }
    }
}
