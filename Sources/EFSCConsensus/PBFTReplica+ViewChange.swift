import EFSCCore

/// View change and new-view (Castro–Liskov §4.4): leaving a stalled or
/// faulty primary's view without losing any request prepared in it.
extension PBFTReplica {
    mutating func startViewChange(_ newView: UInt64, _ out: inout [PBFTAction]) {
        guard newView > durable.view else { return }
        durable.view = newView
        durable.changingView = true
        ticksWaiting = 0
        myNewView = nil
        let vc = makeViewChange()
        out.append(.persist(durable))
        out.append(.broadcast(vc))
        out.append(.viewChanged(view: newView))
        maybeSendNewView(&out)
    }

    /// This replica's view-change message for its current (target) view.
    mutating func makeViewChange() -> SignedMessage {
        let newView = durable.view
        let prepared = durable.prepared.filter { $0.key > durable.stableSeq }.sorted { $0.key < $1.key }.map(\.value)
        let vc = sign(
            .viewChange(
                newView: newView, stableSeq: durable.stableSeq, stableDigest: durable.stableDigest, checkpointProof: durable.stableProof,
                prepared: prepared))
        myViewChange = vc
        viewChanges[me] = (newView, vc)
        return vc
    }

    /// Checks a view-change message's certificates.
    func validViewChange(_ m: SignedMessage) -> (view: UInt64, lastExec: UInt64, prepared: [PreparedCertificate])? {
        guard case .viewChange(let nv, let le, let ed, let cert, let prepared) = m.message else { return nil }
        if le == 0 {
            guard cert.isEmpty, ed == Self.genesisDigest else { return nil }
        } else {
            guard validCheckpointProof(seq: le, digest: ed, cert) else { return nil }
        }
        for p in prepared {
            guard p.view < nv, p.seq > le, p.prePrepare.sender == config.primary(of: p.view), valid(p.prePrepare),
                Digest.sha256(p.payload) == p.digest
            else { return nil }
            var senders = Set<Int>()
            for x in p.prepares {
                guard case .prepare(let v, let s, let d) = x.message, v == p.view, s == p.seq, d == p.digest,
                    x.sender != config.primary(of: v), valid(x)
                else { return nil }
                senders.insert(x.sender)
            }
            guard senders.count >= 2 * config.f else { return nil }
        }
        return (nv, le, prepared)
    }

    mutating func onViewChange(_ m: SignedMessage, _ nv: UInt64, _ out: inout [PBFTAction]) {
        // 2f+1 replicas proved a later stable checkpoint: catch up by state transfer.
        if case .viewChange(_, let le, _, _, _) = m.message, le > durable.lastExec { requestSync(hint: m.sender, &out) }
        if nv <= durable.view && !(nv == durable.view && durable.changingView) {
            // The sender is behind: forward the new-view of our view (signed by its primary).
            if let mine = myNewView, case .newView(let v, _, _) = mine.message, v == durable.view { out.append(.send(to: m.sender, mine)) }
            return
        }
        guard viewChanges[m.sender] == nil || viewChanges[m.sender]!.view < nv else { return }
        guard validViewChange(m) != nil else { return }
        viewChanges[m.sender] = (nv, m)
        // f+1 replicas want a later view: join the smallest of them (not
        // moved by one faulty replica's view-change spam).
        let later = viewChanges.values.filter { $0.view > durable.view }
        if later.count >= config.f + 1, let target = later.map(\.view).min(), target > durable.view {
            startViewChange(target, &out)
            return
        }
        maybeSendNewView(&out)
    }

    /// The pre-prepares a new primary re-issues for view `v`, from 2f+1 view changes.
    func newViewPrePrepares(_ v: UInt64, _ vcs: [SignedMessage]) -> (minS: UInt64, items: [(UInt64, [UInt8], [UInt8])])? {
        var minS: UInt64 = 0
        var best: [UInt64: PreparedCertificate] = [:]
        for m in vcs {
            guard let (nv, le, prepared) = validViewChange(m), nv == v else { return nil }
            minS = max(minS, le)
            for p in prepared where (best[p.seq]?.view ?? 0) <= p.view {
                if best[p.seq] == nil || best[p.seq]!.view < p.view { best[p.seq] = p }
            }
        }
        let maxS = best.keys.max().map { max($0, minS) } ?? minS
        var items: [(UInt64, [UInt8], [UInt8])] = []
        if maxS > minS {
            for s in (minS + 1)...maxS {
                if let p = best[s] {
                    items.append((s, p.digest, p.payload))
                } else {
                    items.append((s, Self.nullDigest, []))
                }
            }
        }
        return (minS, items)
    }

    mutating func maybeSendNewView(_ out: inout [PBFTAction]) {
        let v = durable.view
        guard durable.changingView, config.primary(of: v) == me else { return }
        let vcs = viewChanges.values.filter { $0.view == v }.map(\.msg).sorted { $0.sender < $1.sender }
        guard vcs.count >= config.quorum else { return }
        let chosen = Array(vcs.prefix(config.quorum))
        guard let (minS, items) = newViewPrePrepares(v, chosen) else { return }
        let pps = items.map { sign(.prePrepare(view: v, seq: $0.0, digest: $0.1, payload: $0.2)) }
        let nv = sign(.newView(view: v, viewChanges: chosen, prePrepares: pps))
        myNewView = nv
        out.append(.broadcast(nv))
        enterView(v, minS: minS, pps, &out)
    }

    mutating func onNewView(_ m: SignedMessage, _ v: UInt64, _ vcs: [SignedMessage], _ pps: [SignedMessage], _ out: inout [PBFTAction]) {
        guard v >= durable.view, !(v == durable.view && !durable.changingView), m.sender == config.primary(of: v) else { return }
        guard Set(vcs.map(\.sender)).count == vcs.count, vcs.count >= config.quorum else { return }
        guard let (minS, items) = newViewPrePrepares(v, vcs), items.count == pps.count else { return }
        for (item, pp) in zip(items, pps) {
            guard pp.sender == m.sender, valid(pp), case .prePrepare(let pv, let s, let d, _) = pp.message, pv == v, s == item.0, d == item.1
            else { return }
        }
        if durable.view < v {
            durable.view = v
        }
        myNewView = m
        enterView(v, minS: minS, pps, &out)
    }

    mutating func enterView(_ v: UInt64, minS: UInt64, _ pps: [SignedMessage], _ out: inout [PBFTAction]) {
        durable.changingView = false
        ticksWaiting = 0
        myViewChange = nil
        viewChanges = viewChanges.filter { $0.value.view > v }
        prePrepares = prePrepares.filter { $0.key.view >= v }
        highestAssigned = max(durable.lastExec, minS)
        out.append(.persist(durable))
        out.append(.viewChanged(view: v))
        if minS > durable.lastExec { requestSync(hint: nil, &out) }
        for pp in pps {
            if case .prePrepare(let pv, let s, let d, let p) = pp.message, s > durable.stableSeq {
                acceptPrePrepare(pp, pv, s, d, p, checkWindow: false, &out)
            }
        }
    }
}
