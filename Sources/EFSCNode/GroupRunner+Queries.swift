import Dispatch
import EFSCBus
import EFSCConsensus
import EFSCContracts
import EFSCCore
import EFSCIdentity
import EFSCLedger
import Foundation

/// State transfer (sync requests and replies), status and read-only queries.
extension GroupRunner {
    // MARK: state transfer

    func requestSync(from: UInt64, hint: Int?) {
        let peers = config.members.indices.filter { $0 != config.index }
        let target = hint.flatMap { peers.contains($0) ? $0 : nil } ?? peers.randomElement()!
        let req: JSON = ["from": .number(Double(from)), "max": 64]
        let topic = Topics.sync(group, node: config.members[target].id)
        Task {
            guard let r = try? await client.request(topic, payload: (try? JCS.canonicalize(req)) ?? [], timeout: 5),
                let fetched = Self.parseSyncReply(r.payload)
            else {
                self.refusals.refuse(.badSync, "a sync reply from \(self.config.members[target].id) did not arrive or does not decode")
                return
            }
            q.async {
                for b in fetched {
                    // Null blocks were agreed as an empty payload.
                    let isNull = b.header.proposer == self.config.members.count && b.transactions.isEmpty
                    let payload = isNull ? [] : b.body
                    let digest = Digest.sha256(payload)
                    let cert = b.certificate.map {
                        SignedMessage(sender: $0.replica, message: .commit(view: b.certificateView, seq: b.header.height, digest: digest), signature: $0.signature)
                    }
                    self.apply(self.replica.step(.synced(seq: b.header.height, payload: payload, certificate: cert)))
                }
            }
        }
    }

    /// The encoded blocks from `from` on for one sync reply: at most `max`,
    /// sized by bytes before each block is added, so the reply (a count, then
    /// each block's length and bytes) always fits `WireLimits.replyBytes`.
    static func syncReplyBlocks(ledger: Ledger, from: UInt64, max: Int) -> [[UInt8]] {
        ledger.encodedBlocks(from: from, max: max, byteBudget: WireLimits.replyBytes - 4)
    }

    /// A `SyncReply` (topics.md): nil unless it is exactly a count of at most
    /// `WireLimits.syncBlocks` and that many length-prefixed blocks that decode.
    public static func parseSyncReply(_ payload: [UInt8]) -> [Block]? {
        var blocks: [Block] = []
        var rd = payload[...]
        func u32() -> Int? {
            guard rd.count >= 4 else { return nil }
            defer { rd = rd.dropFirst(4) }
            return rd.prefix(4).reduce(0) { $0 << 8 | Int($1) }
        }
        guard let n = u32(), n <= WireLimits.syncBlocks else { return nil }
        for _ in 0..<n {
            guard let len = u32(), rd.count >= len, let b = try? Block(decoding: Array(rd.prefix(len))) else { return nil }
            rd = rd.dropFirst(len)
            blocks.append(b)
        }
        return rd.isEmpty ? blocks : nil
    }

    func onSyncRequest(_ m: MQTTMessage) {
        onQueue(m) {
            guard let j = try? JSONParser.parse(m.payload), let from = j["from"]?.intValue, from >= 1 else {
                self.refusals.refuse(.badSync, "sync request without a height ≥ 1 in 'from'")
                return
            }
            let max = Swift.max(1, Swift.min(WireLimits.syncBlocks, j["max"]?.intValue ?? WireLimits.syncBlocks))
            var out: [UInt8] = []
            let blocks = Self.syncReplyBlocks(ledger: self.ledger, from: UInt64(from), max: max)
            func u32(_ v: Int) { out += [UInt8(truncatingIfNeeded: v >> 24), UInt8(truncatingIfNeeded: v >> 16), UInt8(truncatingIfNeeded: v >> 8), UInt8(truncatingIfNeeded: v)] }
            u32(blocks.count)
            for b in blocks {
                u32(b.count)
                out += b
            }
            Task { try? await self.client.respond(to: m, payload: out) }
        }
    }

    // MARK: status and queries

    func statusJSON() -> JSON {
        [
            "group": .string(group), "node": .string(memberID), "height": .number(Double(ledger.height)), "view": .number(Double(replica.view)),
            "leader": .string(config.members[replica.primary].id), "isLeader": .bool(replica.isPrimary), "changingView": .bool(replica.isChangingView),
            "pendingPool": .number(Double(pool.count)), "lastBlockHash": .string(Hex.encode(ledger.lastHash)),
            "stateRoot": .string(Hex.encode(ledger.stateRoot)), "time": .string(DateTime.now()),
        ]
    }

    func publishStatus(force: Bool) {
        metrics.height.set(Double(ledger.height))
        metrics.view.set(Double(replica.view))
        metrics.pool.set(Double(pool.count))
        let now = DateTime.currentTime()
        guard force || now - lastStatus >= 0.25 else { return }
        lastStatus = now
        let payload = (try? JCS.canonicalize(statusJSON())) ?? []
        try? client.publishNow(Topics.status(group, node: memberID), payload: payload, retain: true, properties: .init(contentType: "application/json"))
    }

    func onQuery(_ m: MQTTMessage) {
        onQueue(m) {
            let kind = m.topic.split(separator: "/").dropFirst(4).first.map(String.init) ?? ""
            let body = try? JSONParser.parse(m.payload)
            let params = body?["params"]?.objectValue ?? body?.objectValue ?? [:]
            if kind == Topics.QueryKind.history.rawValue {
                self.answerHistory(m, params)
                return
            }
            var result: JSON
            do {
                result = ["ok": true, "node": .string(self.memberID), "height": .number(Double(self.ledger.height)), "result": try self.query(kind, params)]
            } catch let e as QueryParameterError {
                self.refusals.refuse(.badQuery, e.message)
                result = ["ok": false, "node": .string(self.memberID), "code": "bad-query", "error": .string(e.message)]
            } catch {
                result = ["ok": false, "node": .string(self.memberID), "error": .string("\(error)")]
            }
            self.reply(m, result)
        }
    }

    /// The `history` query: a binary `HistoryPage` of committed blocks from
    /// `params.from` (≥ 1), at most `params.max` (1...historyBlocks, default
    /// all that fit); errors as a JSON `QueryResult` with a code:
    /// `bad-query`, `not-committed` (from is above this node's height),
    /// `pruned` (this node no longer holds that block).
    func answerHistory(_ m: MQTTMessage, _ p: JSONObject) {
        func fail(_ code: String, _ message: String) {
            self.reply(m, ["ok": false, "node": .string(self.memberID), "height": .number(Double(self.ledger.height)), "code": .string(code), "error": .string(message)])
        }
        guard let f = p["from"]?.intValue, f >= 1, UInt64(f) <= WireLimits.consensusMaxNumber else {
            refusals.refuse(.badQuery, "history query without an integer height ≥ 1 in params.from")
            return fail("bad-query", "params.from must be an integer height ≥ 1")
        }
        let max = p["max"]?.intValue ?? WireLimits.historyBlocks
        guard (1...WireLimits.historyBlocks).contains(max) else {
            refusals.refuse(.badQuery, "history query with params.max outside 1...\(WireLimits.historyBlocks)")
            return fail("bad-query", "params.max must be 1...\(WireLimits.historyBlocks)")
        }
        let from = UInt64(f)
        guard from <= ledger.height else { return fail("not-committed", "height \(from) is not committed yet; \(memberID) is at height \(ledger.height)") }
        do {
            guard try ledger.block(at: from) != nil else { return fail("pruned", "\(memberID) no longer holds block \(from)") }
            let page = HistoryPage.encode(ledger: ledger, from: from, max: max)
            Task { try? await self.client.respond(to: m, payload: page, contentType: HistoryPage.contentType) }
        } catch {
            fail("unavailable", "\(error)")
        }
    }

    /// A query parameter that is present but not of its type or range.
    struct QueryParameterError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    /// `params.height`: absent means `default`; otherwise an integer ≥ 0.
    static func height(_ p: JSONObject, default d: UInt64) throws -> UInt64 {
        guard let v = p["height"] else { return d }
        guard let i = v.intValue, i >= 0 else { throw QueryParameterError(message: "params.height must be an integer ≥ 0") }
        return UInt64(i)
    }

    /// A string parameter of at most `max` bytes (nil when absent).
    static func string(_ p: JSONObject, _ name: String, max: Int) throws -> String? {
        guard let v = p[name] else { return nil }
        guard let s = v.stringValue, s.utf8.count <= max else { throw QueryParameterError(message: "params.\(name) must be a string of at most \(max) bytes") }
        return s
    }

    func query(_ kind: String, _ p: JSONObject) throws -> JSON {
        let state = ContractState(ledger: ledger)
        switch kind {
        case "status":
            return statusJSON()
        case "block":
            let h = try Self.height(p, default: ledger.height)
            guard let b = try ledger.block(at: h) else { throw ContractError("no block at height \(h)") }
            return b.json
        case "tx":
            guard let hs = try Self.string(p, "hash", max: 64), let h = Hex.decode(hs), let t = try ledger.transaction(hash: h) else { throw ContractError("unknown transaction") }
            return [
                "height": .number(Double(t.height)), "index": .number(Double(t.index)), "transaction": (try? JSONParser.parse(t.block.transactions[t.index])) ?? .null,
                "proof": .array(t.proof.map { .string(Hex.encode($0)) }), "transactionsRoot": .string(Hex.encode(t.block.header.transactionsRoot)),
                "blockHash": .string(Hex.encode(t.block.hash)), "size": .number(Double(t.block.transactions.count)),
            ]
        case "did":
            guard let did = try Self.string(p, "did", max: WireLimits.didLength) else { throw ContractError("params.did is missing") }
            let at = try Self.height(p, default: ledger.height)
            guard let ops = state.get("did/\(did)")?.arrayValue?.compactMap(\.objectValue), !ops.isEmpty else {
                throw ContractError("unknown DID '\(did)'")
            }
            guard let h = Contracts.history(did, atHeight: at, state: state) else { throw ContractError("'\(did)' was not registered at height \(at)") }
            return [
                "didDocument": h.current.document.json,
                "didDocumentMetadata": ["versionId": .string(String(h.current.version)), "deactivated": .bool(h.deactivated)],
                "operations": .array(ops.prefix(h.versions.count).map { .object($0) }), "height": .number(Double(at)),
            ]
        case "template":
            guard let id = try Self.string(p, "id", max: 512) else { throw ContractError("params.id is missing") }
            let v = p["version"]?.intValue ?? 1
            guard let t = state.get("template/\(id)/\(v)") else { throw ContractError("unknown template '\(id)' version \(v)") }
            return t
        case "offers":
            return .array(state.scan(prefix: "offer/").map(\.1))
        case "match":
            return .array(try Contracts.match(p, state: state))
        case "evidence":
            var stored: [UInt8]? = nil
            if let h = try Self.string(p, "tscHash", max: 64) {
                guard let hash = Hex.decode(h), hash.count == 32 else { throw ContractError("params.tscHash must be 64 hex digits") }
                // Ledgers written before the evidence index kept it in the state.
                stored = try ledger.evidenceLocation(tscHash: hash) ?? state.getBytes("evidence-hash/\(h)")
            }
            if stored == nil, let c = try Self.string(p, "channelId", max: 128) { stored = state.getBytes("evidence/\(c)") }
            guard let stored else { throw ContractError("no evidence for that channel or hash") }
            guard let at = EvidenceLocation(decoding: stored) else { throw LedgerError.corrupt("evidence record does not decode") }
            let t = at.tx
            guard let b = try ledger.block(at: at.height), t < b.transactions.count else {
                throw LedgerError.corrupt("evidence points at a missing transaction (height \(at.height), position \(t))")
            }
            return try Contracts.evidenceRecord(at, transaction: b.transactions[t])
        case "channel":
            guard let c = try Self.string(p, "channelId", max: 128), let ch = state.get("channel/\(c)") else { throw ContractError("unknown channel") }
            return ch
        default:
            throw ContractError("unknown query kind '\(kind)'")
        }
    }
}
