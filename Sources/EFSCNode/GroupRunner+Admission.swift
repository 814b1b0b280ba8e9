import Dispatch
import EFSCBus
import EFSCConsensus
import EFSCContracts
import EFSCCore
import EFSCIdentity
import EFSCLedger
import Foundation

/// Transactions and other requests arriving from the network (on the
/// group's queue): bounded intake, admission into the pool, refusals with
/// their reasons, and replies.
extension GroupRunner {
    func onTransaction(_ m: MQTTMessage) {
        onQueue(m) {
            let parsed: ChainTransaction?
            do { parsed = try ChainTransaction(received: m.payload, maxBytes: WireLimits.packetBytes) } catch {
                self.refuse(m, .malformed, "transaction: \(error)")
                return
            }
            guard let tx = parsed else {
                self.refuse(m, .malformed, "transaction is not a JSON object")
                return
            }
            guard tx.group == self.group else {
                self.refuse(m, .wrongGroup, "transaction is for group '\(tx.group.map { String($0.prefix(40)) } ?? "?")'")
                return
            }
            let h = tx.hash
            if self.poolIndex[h] != nil || self.waiting.contains(where: { $0.hash == h }) { return }
            self.admit(Pending(tx: tx, bytes: tx.bytes, hash: h, arrived: DateTime.currentTime(), signer: nil, request: m.properties.responseTopic != nil ? m : nil))
        }
    }

    /// Admission (on the queue): the pool's bounds, then the envelope and the
    /// signature (`Contracts.admit`); an unknown sender waits outside the pool.
    func admit(_ p: Pending) {
        guard pool.count < config.poolLimit, poolBytes + p.bytes.count <= config.poolByteLimit else {
            refuse(p.request, .poolFull, "pending pool is full (\(pool.count) transactions, \(poolBytes) bytes); retry later")
            return
        }
        if let sender = p.tx.sender, poolBySender[sender, default: 0] >= config.poolPerSender {
            refuse(p.request, .senderQuota, "sender has \(config.poolPerSender) transactions pending already; retry later")
            return
        }
        switch withCurrentAnchor({ contracts.admit(p.tx, state: ContractState(ledger: ledger)) }) {
        case .verified(let key):
            var admitted = p
            admitted.signer = key
            poolIndex[p.hash] = pool.count
            pool.append(admitted)
            poolBytes += p.bytes.count
            if let sender = p.tx.sender { poolBySender[sender, default: 0] += 1 }
            if let r = p.request { replies[p.hash] = r }
        case .unknownSender(let did):
            guard waiting.count < Self.waitingLimit, waitingBytes + p.bytes.count <= Self.waitingByteLimit else {
                refuse(p.request, .unknownSender, "unknown DID \(DIDSyntax.shown(did)) (and too many transactions wait for theirs)")
                return
            }
            waiting.append(p)
            waitingBytes += p.bytes.count
        case .rejected(let code, let e):
            refuse(p.request, Refusals.Reason(rawValue: code.rawValue) ?? .badEnvelope, e.message)
        }
    }

    /// Waiting transactions whose sender became known enter the pool; those
    /// held longer than `unknownSenderHoldSeconds` are refused.
    func reviewWaiting(now: Double) {
        guard !waiting.isEmpty, now - lastWaitingReview >= 0.05 else { return }
        lastWaitingReview = now
        let held = waiting
        waiting = []
        waitingBytes = 0
        for p in held {
            if withCurrentAnchor({ contracts.resolveDIDForAdmission(p.tx.sender ?? "", state: ContractState(ledger: ledger)) }) {
                admit(p)
            } else if now - p.arrived >= Self.unknownSenderHoldSeconds {
                refuse(p.request, .unknownSender, "unknown DID \(DIDSyntax.shown(p.tx.sender ?? "?"))")
            } else {
                waiting.append(p)
                waitingBytes += p.bytes.count
            }
        }
    }

    /// Admission reads DIDs as the identity group has them now (execution
    /// reads them at its block's anchor): the anchor is set for the call and restored.
    func withCurrentAnchor<T>(_ body: () -> T) -> T {
        guard group != "identity" else { return body() }
        let saved = executionAnchor
        executionAnchor = identityHeight() ?? saved
        defer { executionAnchor = saved }
        return body()
    }


    /// Runs `body` on the group's queue unless the queue is at its bound
    /// (`inbox`); then the message is dropped and counted as overloaded.
    func onQueue(_ m: MQTTMessage, _ body: @escaping @Sendable () -> Void) {
        guard inbox.enter(m.payload.count) else {
            overloaded(m)
            return
        }
        q.async {
            defer { self.inbox.leave(m.payload.count) }
            body()
        }
    }

    func overloaded(_ m: MQTTMessage) {
        refusals.refuse(.overloaded, "the group's queue holds \(inbox.limitMessages) messages or \(inbox.limitBytes) bytes; dropped one on \(m.topic)")
        if m.properties.responseTopic != nil {
            reply(m, ["status": "rejected", "ok": false, "code": "overloaded", "error": "the node is overloaded; retry later"])
        }
    }

    /// Counts a refusal and answers the request (if it asked) with the reason.
    func refuse(_ request: MQTTMessage?, _ reason: Refusals.Reason, _ message: String) {
        refusals.refuse(reason, message)
        if let request { reply(request, ["status": "rejected", "code": .string(reason.rawValue), "error": .string(message)]) }
    }

    func reply(_ request: MQTTMessage, _ body: JSON) {
        guard request.properties.responseTopic != nil else { return }
        var payload = (try? JCS.canonicalize(body)) ?? []
        // A reply never exceeds what a packet can carry: a result too large
        // is answered with that fact rather than lost in the publish.
        if payload.count > WireLimits.replyBytes {
            let err: JSON = [
                "ok": false, "status": "rejected", "code": "too-large", "node": .string(memberID),
                "error": .string("the reply of \(payload.count) bytes exceeds the reply limit of \(WireLimits.replyBytes); narrow the query"),
            ]
            payload = (try? JCS.canonicalize(err)) ?? []
        }
        Task { try? await self.client.respond(to: request, payload: payload) }
    }
}
