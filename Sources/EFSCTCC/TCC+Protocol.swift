import Dispatch
import EFSCBus
import EFSCChannel
import EFSCCore
import EFSCCredentials
import EFSCIdentity

/// The TCC service around each channel's `ChannelMachine`: it hands the
/// machine its events on the channel's partition queue and carries out the
/// actions (sends, DID lookups, writes, counters). It makes no protocol
/// decision of its own.
extension TCC {
    /// One channel: its machine, touched only on `queue`.
    final class ChannelBox: @unchecked Sendable {
        let queue: DispatchQueue
        var machine: ChannelMachine
        /// What the service needs off the queue, fixed at creation.
        let id: String
        let template: (id: String, version: Int)
        init(queue: DispatchQueue, machine: ChannelMachine) {
            self.queue = queue
            self.machine = machine
            id = machine.id
            template = (machine.terms.templateId, machine.terms.templateVersion)
        }
    }

    func context() -> ChannelContext {
        ChannelContext(now: DateTime.currentTime(), evidenceFactor: lock.withLock { policy.factor }, challengeSeconds: config.challengeSeconds, crypto: crypto)
    }

    /// Steps the machine and carries out its actions. On `box.queue` only.
    func step(_ box: ChannelBox, _ event: ChannelEvent) {
        let actions = box.machine.step(event, context())
        for a in actions { perform(box, a) }
    }

    /// Schedules `event` for the channel's machine.
    func deliver(_ box: ChannelBox, _ event: ChannelEvent) {
        box.queue.async { self.step(box, event) }
    }

    func perform(_ box: ChannelBox, _ action: ChannelAction) {
        switch action {
        case .send(let did, let payload):
            send(box.id, to: did, payload: payload)
        case .refused(let party, let code, let auth, let message):
            // Counted by code (status topic and metrics); logged at most once per code every 10 s.
            lock.withLock {
                if auth { stats.authFailures += 1 } else { stats.rejected += 1 }
                stats.refusals[code, default: 0] += 1
            }
            metrics.refused(code)
            if let line = refusalLog.line(code, { "channel \(box.id) party \(party.prefix(64)): refused (\(code)): \(message)" }) { log(line) }
        case .resolve(let did, let party):
            Task {
                do {
                    let r = try await self.resolver.resolve(did, fresh: true)
                    guard !r.deactivated else { throw ChainError("\(did) is deactivated") }
                    let (_, ka) = try r.document.keyAgreementKey()
                    var found: [String: Ed25519PublicKey] = [:]
                    for ref in r.document.relationships[.assertionMethod] ?? [] {
                        let url = ref.hasPrefix("#") ? did + ref : ref
                        if let k = try? r.document.signingKey(url, for: .assertionMethod) { found[url] = k }
                    }
                    self.deliver(box, .resolved(did: did, party: party, PartyKeys(keyAgreement: ka, assertion: found)))
                } catch {
                    self.deliver(box, .resolveFailed(did: did, party: party, reason: "\(error)"))
                }
            }
        case .persist(let id, let write):
            enqueueCommit(write) { ok in self.deliver(box, ok == nil ? .persisted(id) : .persistFailed(id, reason: ok!)) }
        case .admitted(let did, var fields, let seq):
            lock.withLock { stats.admitted += 1 }
            if let s = seq, let b = try? store.tsc(box.id, s), let t = try? JSONParser.parse(b) { fields["credential"] = t }
            send(box.id, to: did, payload: ChannelMessage(.admitted, channel: box.id, fields).bytes)
        case .resendTSC(let did, let seq):
            guard let b = try? store.tsc(box.id, seq) else {
                log("channel \(box.id): TSC \(seq) is not in the store; cannot send it again")
                return
            }
            send(box.id, to: did, payload: ChannelMachine.tscMessage(channel: box.id, sequence: seq, tsc: b, hash: Digest.sha256Hex(b)))
        case .issued:
            lock.withLock { stats.settlements += 1 }
            metrics.settlements.increment()
        case .evidence(let e):
            lock.withLock { pendingEvidence[e.channelId] = e }
        case .closeCooperatively(let tsc):
            closeCooperatively(box.id, tsc: tsc)
        case .stateChanged(let from, let to):
            if from != .closed && to == .closed { lock.withLock { openChannels -= 1 } }
        case .log(let line):
            log(line)
        }
    }

    func onParty(_ m: MQTTMessage) {
        let parts = m.topic.split(separator: "/")
        // efsc/v1/channel/{channel}/party/{party}/up
        guard parts.count == 7 else { return }
        let id = String(parts[3])
        let party = String(parts[5])
        guard let box = lock.withLock({ channels[id] }) else { return }
        // Work queued for the channels is bounded: past it a message is dropped and counted.
        guard inbox.enter(m.payload.count) else {
            metrics.refused("overloaded")
            return
        }
        box.queue.async {
            defer { self.inbox.leave(m.payload.count) }
            self.step(box, .message(party: party, payload: m.payload))
        }
    }

    /// QoS 1 without waiting for the acknowledgement (libmosquitto retries).
    func send(_ channel: String, to did: String, payload: [UInt8]) {
        let topic = Topics.channelDown(channel, party: PartyName.of(did))
        do { try bus.publishNow(topic, payload: payload, qos: .atLeastOnce) } catch { log("cannot send on \(topic): \(error)") }
    }
}
