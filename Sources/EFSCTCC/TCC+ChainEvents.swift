#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import EFSCBus
import EFSCChannel
import EFSCConsensus
import EFSCContracts
import EFSCCore
import EFSCCredentials
import EFSCIdentity
import EFSCLedger
import Foundation
import Logging
import ServiceLifecycle

/// What the TCC takes from the chain: channel-control events (confirmed
/// against chain state before a channel opens), committed blocks (checked
/// by their commit certificate, then the touched channels re-read), and the
/// nodes' pending-pool reports for the adaptive evidence factor.
extension TCC {
    // MARK: chain events

    func onControl(_ m: MQTTMessage) {
        guard let j = try? JSONParser.parse(m.payload), let id = j["channelId"]?.stringValue else {
            log("ignored a malformed channel-control event")
            return
        }
        switch j["event"]?.stringValue {
        case "open":
            guard lock.withLock({ channels[id] }) == nil else { return }
            guard let tic = j["tic"]?.objectValue, let terms = try? SettlementTerms(channelId: id, tic: tic), let ticHash = try? VerifiableCredential(json: tic).hash()
            else {
                refuseEvent("open event for \(id.prefix(140)) carries no usable TIC")
                return
            }
            // The control topic is not trusted: a channel opens only when the
            // chain holds it open, recorded from this very TIC. (The node that
            // answers may be a block behind the proposer that sent the event,
            // hence the short wait.)
            // Confirmations are queued (bounded, one per channel id) and at
            // most `confirmationsInFlight` run at once, so a burst of real
            // opens is confirmed in turn and a flood of forged events costs
            // a bounded number of chain queries.
            let queued = lock.withLock { () -> Bool in
                guard !pendingOpens.contains(id), pendingOpens.count < Self.pendingOpensLimit else { return false }
                pendingOpens.insert(id)
                openQueue.append(OpenRequest(id: id, terms: terms, tic: tic, ticHash: ticHash))
                return true
            }
            guard queued else {
                refuseEvent("open event for \(id.prefix(140)) refused: already awaiting confirmation, or \(Self.pendingOpensLimit) events are")
                return
            }
            startConfirmations()
        default:
            break
        }
    }

    struct OpenRequest {
        let id: String
        let terms: SettlementTerms
        let tic: JSONObject
        let ticHash: String
    }

    /// Starts queued open confirmations while fewer than `confirmationsInFlight` run.
    func startConfirmations() {
        while let r = lock.withLock({ () -> OpenRequest? in
            guard confirming < Self.confirmationsInFlight, openQueueHead < openQueue.count else { return nil }
            confirming += 1
            let next = openQueue[openQueueHead]
            openQueueHead += 1
            // Taken from the front by index; the array is compacted now and then (no O(n) per take).
            if openQueueHead == openQueue.count {
                // Drained: the taken requests (each with its parsed TIC) go now, not at the next compaction.
                openQueue.removeAll()
                openQueueHead = 0
            } else if openQueueHead >= 1024 && openQueueHead * 2 >= openQueue.count {
                openQueue.removeFirst(openQueueHead)
                openQueueHead = 0
            }
            return next
        }) {
            Task {
                defer {
                    self.lock.withLock {
                        self.confirming -= 1
                        _ = self.pendingOpens.remove(r.id)
                    }
                    self.startConfirmations()
                }
                // Reached when the chain holds the channel: true if open from this TIC.
                let confirmed: Bool
                do {
                    confirmed = try await StateWait.until("channel \(r.id.prefix(140)) recorded on chain", timeout: 15, every: 0.2) { () -> StateWait.Probe<Bool> in
                        guard let rec = try? await self.chain.channel(r.id) else { return .notYet("not on chain") }
                        return .reached(rec["ticHash"]?.stringValue == r.ticHash && rec["state"] == "open")
                    }
                } catch {
                    self.refuseEvent("open event refused: \(error)")
                    return
                }
                guard confirmed else {
                    self.refuseEvent("open event refused: the chain's channel \(r.id.prefix(140)) is not open from this TIC")
                    return
                }
                self.openVerified(id: r.id, terms: r.terms, tic: r.tic)
            }
        }
    }

    /// Opens a channel the chain confirmed (at most once).
    func openVerified(id: String, terms: SettlementTerms, tic: JSONObject) {
        let box = ChannelBox(queue: partition(id), machine: ChannelMachine(terms: terms))
        let fresh = lock.withLock { () -> Bool in
            guard channels[id] == nil else { return false }
            channels[id] = box
            return true
        }
        guard fresh else { return }
        do { try store.open(ChannelRecord(channelId: id), tic: tic) } catch {
            lock.withLock { channels[id] = nil }
            log("cannot persist channel \(id): \(error)")
            return
        }
        lock.withLock { openChannels += 1 }
        loadTemplate(box)
        Task {
            do { try await self.subscribe(id) } catch { self.log("cannot subscribe to channel \(id): \(error)") }
        }
        log("channel \(id) opened: provider \(terms.provider), consumer \(terms.consumer), period \(terms.period) s, N = \(terms.evidenceEvery)")
    }

    /// A refused channel-control event: counted, logged at most once every 10 s.
    func refuseEvent(_ why: String) {
        metrics.refused("unconfirmed-event")
        let n = lock.withLock { () -> Int in
            stats.refusedEvents += 1
            return stats.refusedEvents
        }
        if let line = refusalLog.line("unconfirmed-event", { "\(why) (\(n) refused so far)" }) { log(line) }
    }

    func onChainStatus(_ m: MQTTMessage) {
        guard let j = try? JSONParser.parse(m.payload), let node = j["node"]?.stringValue ?? m.topic.split(separator: "/").last.map(String.init),
            let p = j["pendingPool"]?.intValue
        else { return }
        // Bounded: a status topic can carry any node name (until the ACL
        // confines it); past 256 names the map starts over.
        lock.withLock {
            if poolByNode[node] == nil, poolByNode.count >= WireLimits.poolReportNodes { poolByNode.removeAll(keepingCapacity: true) }
            poolByNode[node] = p
        }
    }

    /// Committed transaction blocks: closes, challenges and finalizations of
    /// our channels are read back from chain state.
    func onBlock(_ m: MQTTMessage) {
        guard let b = try? Block(decoding: m.payload) else {
            refuseEvent("a message on \(m.topic) is not a block")
            return
        }
        // Acted on only when 2f+1 of the network's nodes committed it.
        if !config.members.isEmpty {
            let digest = b.transactions.isEmpty && b.header.proposer == config.members.count ? Digest.sha256([]) : Digest.sha256(b.body)
            let signers = CommitCertificate.validSigners(
                group: b.header.group, view: b.certificateView, seq: b.header.height, digest: digest,
                entries: b.certificate.map { ($0.replica, $0.signature) }, members: config.members)
            guard CommitCertificate.isQuorum(signers, members: config.members.count) else {
                refuseEvent("block \(b.header.height) on \(m.topic) has \(signers) valid commit signatures, not 2f+1 of \(config.members.count)")
                return
            }
        }
        // Identified by its header's height, parent and transactions root (no hash of a 700 KB body).
        var h = b.header.parentHash + b.header.transactionsRoot
        withUnsafeBytes(of: b.header.height.bigEndian) { h.append(contentsOf: $0) }
        let fresh = lock.withLock { () -> Bool in
            guard recentBlockSet.insert(h).inserted else { return false }
            recentBlocks.append(h)
            if recentBlocks.count > Self.recentBlocksKept { recentBlockSet.remove(recentBlocks.removeFirst()) }
            return true
        }
        guard fresh else { return }
        var touched = Set<String>()
        for t in b.transactions {
            // Block transactions are canonical, so a channel operation's text
            // has this member; the rest (mostly evidence batches of tens of
            // kilobytes) are not parsed at all.
            guard Self.contains(t, Self.channelOpMember) else { continue }
            guard let j = try? JSONParser.parse(t), let op = j["op"]?.stringValue, op.hasPrefix("channel."),
                let id = j["args"]?["channelId"]?.stringValue, lock.withLock({ channels[id] }) != nil
            else { continue }
            touched.insert(id)
        }
        for id in touched { refreshFromChain(id) }
    }

    static let channelOpMember = Array(#""op":"channel."#.utf8)

    /// Whether `needle` occurs in `haystack`. Foundation's generic
    /// `firstRange(of:)` over byte arrays took about a third of a core for the
    /// TCC of a loaded devnet (blocks of ≈ 700 KB), and Swift's Glibc module
    /// leaves out `memmem` (a GNU extension). So this is `memchr` for the
    /// needle's last byte, then `memcmp`, both vectorized by the C library.
    /// The last byte of `channelOpMember` is the dot, rare in transaction
    /// text (a first-byte quote would stop at every JSON string).
    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard let anchor = needle.last else { return true }
        return haystack.withUnsafeBytes { h in
            needle.withUnsafeBytes { n in
                guard h.count >= n.count else { return false }
                let base = h.baseAddress!
                // Candidate positions of the needle's last byte.
                var at = n.count - 1
                while at < h.count, let p = memchr(base + at, Int32(anchor), h.count - at) {
                    at = base.distance(to: UnsafeRawPointer(p))
                    if memcmp(base + at - (n.count - 1), n.baseAddress!, n.count) == 0 { return true }
                    at += 1
                }
                return false
            }
        }
    }

    /// Reads the channel back from chain state and hands it to its machine.
    /// Reads may complete out of order; the machine only moves forward.
    func refreshFromChain(_ id: String) {
        Task {
            guard let rec = try? await chain.channel(id), let box = lock.withLock({ channels[id] }) else { return }
            guard let s = rec["state"]?.stringValue.flatMap(ChannelState.init(rawValue:)) else {
                log("channel \(id): the chain reports an unknown state \(rec["state"]?.compactString() ?? "(none)")")
                return
            }
            var f: JSONObject = [:]
            for k in ["finalSequence", "finalTscHash", "closeKind", "closedBy", "challengeUntil", "closedAt", "challengedBy"] { f[k] = rec[k] }
            deliver(box, .chain(s, fields: f))
        }
    }
}
