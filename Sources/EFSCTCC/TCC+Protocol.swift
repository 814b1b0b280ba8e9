import EFSCBus
import EFSCChannel
import EFSCCore
import EFSCCredentials
import EFSCIdentity

/// The channel protocol on the TCC's side (topics.md, "The channel
/// protocol"): authentication, proposals and countersignatures. Everything
/// here runs on the channel's partition queue.
extension TCC {
    // MARK: party messages

    func onParty(_ m: MQTTMessage) {
        let parts = m.topic.split(separator: "/")
        // efsc/v1/channel/{channel}/party/{party}/up
        guard parts.count == 7 else { return }
        let id = String(parts[3])
        let party = String(parts[5])
        guard let ch = lock.withLock({ channels[id] }) else { return }
        // Work queued for the channels is bounded: past it a message is dropped and counted.
        guard inbox.enter(m.payload.count) else {
            metrics.refused("overloaded")
            return
        }
        ch.queue.async {
            defer { self.inbox.leave(m.payload.count) }
            let msg: ChannelMessage
            do {
                msg = try ChannelMessage(bytes: m.payload)
            } catch {
                self.refuse(ch, party: party, "\(error)", code: "malformed")
                return
            }
            guard msg.channelId == id else {
                self.refuse(ch, party: party, "channelId \(msg.channelId) does not match the topic's \(id)", code: "malformed")
                return
            }
            switch msg.kind {
            case .hello: self.hello(ch, party, msg)
            case .answer: self.answer(ch, party, msg)
            case .propose: self.propose(ch, party, msg, raw: m.payload)
            case .countersign: self.countersign(ch, party, msg)
            default: self.refuse(ch, party: party, "a party cannot send '\(msg.kind.rawValue)'", code: "unexpected")
            }
        }
    }

    func didOf(_ ch: Channel, party: String) -> String? {
        if PartyName.of(ch.terms.provider) == party { return ch.terms.provider }
        if PartyName.of(ch.terms.consumer) == party { return ch.terms.consumer }
        return nil
    }

    func send(_ ch: Channel, to did: String, _ m: ChannelMessage) { send(ch, to: did, payload: m.bytes) }

    /// QoS 1 without waiting for the acknowledgement (libmosquitto retries).
    func send(_ ch: Channel, to did: String, payload: [UInt8]) {
        let topic = Topics.channelDown(ch.id, party: PartyName.of(did))
        do { try bus.publishNow(topic, payload: payload, qos: .atLeastOnce) } catch { log("cannot send on \(topic): \(error)") }
    }

    func refuse(_ ch: Channel, party: String, _ message: String, code: String, sequence: Int? = nil, auth: Bool = false) {
        // Counted by code (status topic and metrics); logged at most once per code every 10 s.
        lock.withLock {
            if auth { stats.authFailures += 1 } else { stats.rejected += 1 }
            stats.refusals[code, default: 0] += 1
        }
        metrics.refused(code)
        if let line = refusalLog.line(code, { "channel \(ch.id) party \(party.prefix(64)): refused (\(code)): \(message)" }) { log(line) }
        // Only the channel's two parties have a down topic worth writing to.
        guard let did = didOf(ch, party: party) else { return }
        send(ch, to: did, .error(ch.id, message, code: code, sequence: sequence))
    }

    /// Outstanding challenges (and DID lookups for new ones) per channel.
    static let challengesPerChannel = WireLimits.challengesPerChannel

    func hello(_ ch: Channel, _ party: String, _ m: ChannelMessage) {
        guard let did = m["did"]?.stringValue, did == ch.terms.provider || did == ch.terms.consumer else {
            refuse(ch, party: party, "\(m["did"]?.stringValue ?? "(no DID)") is not a party of channel \(ch.id)", code: "not-a-party", auth: true)
            return
        }
        guard PartyName.of(did) == party else {
            refuse(ch, party: party, "\(did) must use its own topic (party \(PartyName.of(did)))", code: "not-a-party", auth: true)
            return
        }
        let now = DateTime.currentTime()
        ch.challenges = ch.challenges.filter { $0.value.expires > now }
        // Lookups in flight count too: the bound holds before the chain is asked.
        guard ch.challenges.count + ch.lookups < Self.challengesPerChannel else {
            refuse(ch, party: party, "too many outstanding challenges; answer one first", code: "busy", auth: true)
            return
        }
        ch.lookups += 1
        Task {
            defer { ch.queue.async { ch.lookups -= 1 } }
            do {
                let r = try await self.resolver.resolve(did, fresh: true)
                guard !r.deactivated else { throw ChainError("\(did) is deactivated") }
                let (_, ka) = try r.document.keyAgreementKey()
                var found: [String: Ed25519PublicKey] = [:]
                for ref in r.document.relationships[.assertionMethod] ?? [] {
                    let url = ref.hasPrefix("#") ? did + ref : ref
                    if let k = try? r.document.signingKey(url, for: .assertionMethod) { found[url] = k }
                }
                let keys = found
                ch.queue.async {
                    do {
                        let cid = Hex.encode(Digest.randomBytes(12))
                        let expires = DateTime.currentTime() + self.config.challengeSeconds
                        let (msg, secret) = try ChannelAuth.challenge(to: ka, channel: ch.id, did: did, challengeId: cid, tcc: self.did, expires: expires)
                        ch.challenges[cid] = (did, secret, expires, keys)
                        self.send(ch, to: did, msg)
                    } catch {
                        self.refuse(ch, party: party, "cannot build a challenge: \(error)", code: "internal", auth: true)
                    }
                }
            } catch {
                ch.queue.async { self.refuse(ch, party: party, "cannot resolve \(did) on the identity chain: \(error)", code: "unknown-did", auth: true) }
            }
        }
    }

    func answer(_ ch: Channel, _ party: String, _ m: ChannelMessage) {
        guard let cid = m["challengeId"]?.stringValue, let c = ch.challenges.removeValue(forKey: cid) else {
            refuse(ch, party: party, "unknown or already answered challenge", code: "replayed", auth: true)
            return
        }
        guard PartyName.of(c.did) == party, m["did"]?.stringValue == c.did else {
            refuse(ch, party: party, "the answer is not from the challenged DID", code: "not-a-party", auth: true)
            return
        }
        guard DateTime.currentTime() <= c.expires else {
            refuse(ch, party: party, "the answer came after the challenge expired (\(config.challengeSeconds) s)", code: "late", auth: true)
            return
        }
        guard let p = m["plaintext"]?.stringValue.flatMap(Base64URL.decode), ChannelAuth.matches(p, c.secret) else {
            refuse(ch, party: party, "wrong answer to the challenge", code: "wrong-answer", auth: true)
            return
        }
        ch.admitted[c.did] = c.keys
        lock.withLock { stats.admitted += 1 }
        var f: JSONObject = [
            "did": .string(c.did), "tcc": .string(did), "state": .string(ch.state), "sequence": .number(Double(ch.lastSequence)),
            "lastEnd": ch.lastEnd.map { .string(DateTime.format($0)) } ?? .null,
        ]
        if ch.lastSequence > 0, let b = try? store.tsc(ch.id, ch.lastSequence), let t = try? JSONParser.parse(b) { f["credential"] = t }
        send(ch, to: c.did, ChannelMessage(.admitted, channel: ch.id, f))
        // A consumer that (re)joins gets the proposal waiting for it.
        if c.did == ch.terms.consumer, let p = ch.pending {
            var j = p.unsigned
            j["proof"] = .object(p.providerProof)
            send(ch, to: c.did, ChannelMessage(.propose, channel: ch.id, ["sequence": .number(Double(p.seq)), "credential": .object(j)]))
        }
    }

    /// Verifies `proof` with an admitted party's key, given the hash of the document it signs.
    func verify(_ ch: Channel, _ party: String, inputHash: [UInt8], proof: JSONObject) throws(ChainError) {
        guard let vm = proof["verificationMethod"]?.stringValue, let key = ch.admitted[party]?[vm] else {
            throw ChainError("the proof's verificationMethod is not an assertion key of \(party)")
        }
        do { try EddsaJcs2022.verifyProof(inputHash: inputHash, proof: proof, key: key) } catch { throw ChainError("proof by \(party) does not verify: \(error)") }
    }

    static func inputHash(_ doc: JSONObject, _ proof: JSONObject) throws(ChainError) -> [UInt8] {
        do { return try EddsaJcs2022.inputHash(document: doc, proof: proof) } catch { throw ChainError("\(error)") }
    }

    func propose(_ ch: Channel, _ party: String, _ m: ChannelMessage, raw: [UInt8]) {
        let provider = ch.terms.provider
        guard party == PartyName.of(provider), ch.admitted[provider] != nil else {
            refuse(ch, party: party, "only the admitted provider can propose; authenticate first", code: "not-admitted")
            return
        }
        let seq = m["credential"]?["credentialSubject"]?["sequence"]?.intValue
        guard ch.state == "open" else {
            refuse(ch, party: party, "channel \(ch.id) is \(ch.state)", code: "closed", sequence: seq)
            return
        }
        do {
            guard let doc = m["credential"]?.objectValue else { throw ChainError("propose needs a credential") }
            let vc = VerifiableCredential(json: doc)
            do { try vc.checkStructure() } catch { throw ChainError("\(error)") }
            guard vc.types.contains(TSC.type) else { throw ChainError("the credential is not a \(TSC.type)") }
            guard vc.issuer == did else { throw ChainError("the TSC must name this channel's TCC \(did) as issuer") }
            guard let ref = vc.template, ref.id == ch.terms.templateId, ref.version == ch.terms.templateVersion else {
                throw ChainError("the TSC must use the TIC's settlement template \(ch.terms.templateId) v\(ch.terms.templateVersion)")
            }
            guard let t = ch.template else { throw ChainError("the settlement template is still loading; retry") }
            let claim = vc.subject ?? .null
            let violations = t.validate(claim)
            guard violations.isEmpty else { throw ChainError("claim: " + violations.map(\.description).joined(separator: "; ")) }
            try ch.terms.check(claim, lastSequence: ch.lastSequence, lastEnd: ch.lastEnd, now: DateTime.currentTime())
            let proofs = vc.proofs
            guard proofs.count == 1, let p = proofs.first, p["id"]?.stringValue == TSC.providerProofID else {
                throw ChainError("a proposal carries exactly the provider's proof (\(TSC.providerProofID))")
            }
            var unsigned = doc
            unsigned["proof"] = nil
            let c0 = CPUClock.threadMicros()
            let h = try Self.inputHash(unsigned, p)
            try verify(ch, provider, inputHash: h, proof: p)
            countCrypto(since: c0)
            let s = claim["sequence"]!.intValue!
            ch.pending = (s, unsigned, p, claim["final"]?.boolValue == true, h)
            // Forwarded as received: the consumer checks the same bytes.
            send(ch, to: ch.terms.consumer, payload: raw)
        } catch {
            refuse(ch, party: party, "\(error)", code: "invalid", sequence: seq)
        }
    }

    func countersign(_ ch: Channel, _ party: String, _ m: ChannelMessage) {
        let consumer = ch.terms.consumer
        guard party == PartyName.of(consumer), ch.admitted[consumer] != nil else {
            refuse(ch, party: party, "only the admitted consumer can countersign; authenticate first", code: "not-admitted")
            return
        }
        let seq = m["credential"]?["credentialSubject"]?["sequence"]?.intValue
        guard let p = ch.pending, seq == p.seq else {
            refuse(ch, party: party, "no proposal with sequence \(seq.map(String.init) ?? "?") is waiting (stale or replayed)", code: "stale", sequence: seq)
            return
        }
        do {
            guard var doc = m["credential"]?.objectValue else { throw ChainError("countersign needs a credential") }
            let proofs = EddsaJcs2022.proofs(of: doc)
            guard proofs.count == 2, proofs[0] == p.providerProof, proofs[1]["id"]?.stringValue == TSC.consumerProofID else {
                throw ChainError("a countersigned TSC carries the provider's proof as proposed, then the consumer's (\(TSC.consumerProofID))")
            }
            doc["proof"] = nil
            guard doc == p.unsigned else { throw ChainError("the countersigned credential differs from the proposal") }
            // Both proofs of the set sign the same document when their contexts agree.
            let c0 = CPUClock.threadMicros()
            let h = proofs[1]["@context"] == p.providerProof["@context"] ? p.inputHash : try Self.inputHash(doc, proofs[1])
            try verify(ch, consumer, inputHash: h, proof: proofs[1])
            doc["proof"] = .array([.object(proofs[0]), .object(proofs[1])])
            let tsc = try TSC.issueVerified(VerifiableCredential(json: doc), tccKey: config.identity.key, tccMethod: config.identity.verificationMethod)
            countCrypto(since: c0)
            let bytes = try JCS.canonicalize(.object(tsc.json))
            let hash = Digest.sha256Hex(bytes)
            ch.pending = nil
            ch.lastSequence = p.seq
            ch.lastEnd = (p.unsigned["credentialSubject"]?["end"]?.stringValue).flatMap(DateTime.parse)
            ch.lastTscHash = hash
            ch.sinceEvidence += 1
            let n = lock.withLock { policy.n(every: ch.terms.evidenceEvery, maxEvery: ch.terms.evidenceEveryMax) }
            var evidence: JSON?
            if p.final || ch.sinceEvidence >= n {
                evidence = ["channelId": .string(ch.id), "sequence": .number(Double(p.seq)), "tscHash": .string(hash)]
                ch.sinceEvidence = 0
            }
            if p.final { ch.state = "closing" }
            let issued = ChannelStore.Issued(channel: ch.id, sequence: p.seq, tsc: bytes, record: ch.record, evidence: evidence)
            // The message in JCS form, around the TSC bytes already canonical
            // (keys in order: channelId, credential, sequence, tscHash, type).
            let msg = try JCS.canonicalize(.string(ch.id)).withUnsafeBufferPointer { id in
                Array(#"{"channelId":"#.utf8) + id + Array(#","credential":"#.utf8) + bytes
                    + Array(#","sequence":\#(p.seq),"tscHash":"\#(hash)","type":"tsc"}"#.utf8)
            }
            enqueueCommit(issued) {
                if let e = evidence { self.lock.withLock { self.pendingEvidence[ch.id] = e } }
                self.send(ch, to: ch.terms.provider, payload: msg)
                self.send(ch, to: consumer, payload: msg)
                if p.final { self.closeCooperatively(ch, tsc: tsc.json) }
            }
        } catch {
            refuse(ch, party: party, "\(error)", code: "invalid", sequence: seq)
        }
    }

    func countCrypto(since start: Double) {
        let d = CPUClock.threadMicros() - start
        lock.withLock { stats.cryptoMicros += d }
    }
}
