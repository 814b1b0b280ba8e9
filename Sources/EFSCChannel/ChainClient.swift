import EFSCBus
import EFSCContracts
import EFSCCore
import EFSCCredentials
import EFSCIdentity
import EFSCLedger

/// A chain query or submission that did not succeed, with the node's reason.
public struct ChainError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Why a node gave no history page (topics.md `history` query): the node's
/// code, its message, and its height when it said (`not-committed`).
public struct HistoryError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case notCommitted = "not-committed"
        case pruned
        case badQuery = "bad-query"
        case unavailable
        /// The reply was neither a page nor an error.
        case malformed
    }
    public let code: Code
    public let message: String
    public let height: UInt64?
    public init(_ code: Code, _ message: String, height: UInt64? = nil) {
        self.code = code
        self.message = message
        self.height = height
    }
    public var description: String { "\(code.rawValue): \(message)" }
}

/// Talks to the chain nodes over the bus: read-only queries (any node, or
/// one named node) and signed transactions that return once committed.
public final class ChainClient: Sendable {
    public let bus: MQTTClient
    /// Seconds to wait for a query reply or a receipt.
    public let timeout: Double

    public init(bus: MQTTClient, timeout: Double = 20) {
        self.bus = bus
        self.timeout = timeout
    }

    /// The `result` of a query; throws the node's error when it says `ok: false`.
    public func query(_ group: String, _ kind: String, _ params: JSONObject = [:], node: String? = nil) async throws -> JSON {
        let topic = node.map { Topics.query(group, kind, node: $0) } ?? Topics.query(group, kind)
        let r = try await bus.request(topic, payload: try JCS.canonicalize(["kind": .string(kind), "params": .object(params)]), timeout: timeout)
        let j: JSON
        do { j = try JSONParser.parse(r.payload) } catch { throw ChainError("malformed reply to a \(kind) query: \(error)") }
        guard j["ok"]?.boolValue == true else { throw ChainError(j["error"]?.stringValue ?? "the \(kind) query failed") }
        return j["result"] ?? .null
    }

    /// A page of committed blocks of `group` from `from` (the `history`
    /// query): consecutive blocks with their commit certificates, decoded
    /// but not verified — checking certificates and links against the
    /// network's keys is the caller's. Throws the node's reason
    /// (`not-committed`, `pruned`, `bad-query`) as a `ChainError`.
    public func history(_ group: String, from: UInt64, max: Int? = nil, node: String? = nil) async throws -> HistoryPage {
        let kind = Topics.QueryKind.history.rawValue
        let topic = node.map { Topics.query(group, kind, node: $0) } ?? Topics.query(group, kind)
        var params: JSONObject = ["from": .number(Double(from))]
        if let max { params["max"] = .number(Double(max)) }
        let r = try await bus.request(topic, payload: try JCS.canonicalize(["kind": .string(kind), "params": .object(params)]), timeout: timeout)
        if r.payload.starts(with: HistoryPage.magic) {
            do { return try HistoryPage(decoding: r.payload) } catch { throw HistoryError(.malformed, "a history reply that does not decode: \(error)") }
        }
        guard let j = try? JSONParser.parse(r.payload), let message = j["error"]?.stringValue else {
            throw HistoryError(.malformed, "a history reply that is neither a page nor an error")
        }
        let code = j["code"]?.stringValue.flatMap(HistoryError.Code.init(rawValue:)) ?? .unavailable
        throw HistoryError(code, message, height: j["height"]?.intValue.flatMap { $0 >= 0 ? UInt64($0) : nil })
    }

    /// Submits a transaction and returns its receipt (committed or rejected).
    public func submit(_ tx: ChainTransaction) async throws -> JSON {
        guard let g = tx.group else { throw ChainError("the transaction names no group") }
        let r = try await bus.request(Topics.tx(g), payload: tx.bytes, timeout: timeout)
        do { return try JSONParser.parse(r.payload) } catch { throw ChainError("malformed receipt: \(error)") }
    }

    /// Submits and returns the receipt's result; throws the rejection reason.
    @discardableResult
    public func submitCommitted(_ tx: ChainTransaction) async throws -> JSON {
        let r = try await submit(tx)
        guard r["status"]?.stringValue == "committed" else {
            throw ChainError("\(tx.op ?? "transaction") rejected: \(r["error"]?.stringValue ?? r.compactString())")
        }
        return r
    }

    /// The DID's resolution from the identity chain (current version).
    public func resolveDID(_ did: String) async throws -> DIDResolution {
        let r = try await query("identity", "did", ["did": .string(did)])
        guard let d = r["didDocument"] else { throw ChainError("the identity chain returned no document for \(did)") }
        let doc = try DIDDocument(json: d)
        let meta = r["didDocumentMetadata"]
        // The operation log gives the earlier versions (each operation is
        // signed, so they are checked as they are replayed). A DID never
        // updated has none: no replay for the common case.
        let ops = r["operations"]?.arrayValue?.compactMap(\.objectValue) ?? []
        let earlier = ops.count > 1 ? ((try? DIDHistory(operations: ops))?.versions.dropLast().map(\.document) ?? []) : []
        return DIDResolution(
            document: doc, versionId: meta?["versionId"]?.stringValue.flatMap { Int($0) }, deactivated: meta?["deactivated"]?.boolValue ?? false,
            earlierDocuments: earlier)
    }

    /// Registers `identity`'s DID on the identity chain unless it is there
    /// already (idempotent: a concurrent registration counts as success).
    public func register(_ identity: PartyIdentity, nonce: Int) async throws {
        if (try? await resolveDID(identity.did)) != nil { return }
        guard let op = identity.operation else { throw ChainError("\(identity.did) is not registered and the identity holds no create operation") }
        let tx = try ChainTransaction.make(
            group: "identity", sender: identity.did, nonce: nonce, op: "did.register", args: ["operation": .object(op)], key: identity.key,
            method: identity.verificationMethod)
        let r = try await submit(tx)
        guard r["status"]?.stringValue == "committed" || (r["error"]?.stringValue ?? "").contains("already registered") else {
            throw ChainError("registering \(identity.did) failed: \(r["error"]?.stringValue ?? r.compactString())")
        }
    }

    /// The channel record the transaction chain holds.
    public func channel(_ id: String) async throws -> JSON { try await query("transaction", "channel", ["channelId": .string(id)]) }

    /// The transaction group's pending-pool length as the answering node reports it.
    public func pendingPool(group: String = "transaction") async throws -> Int {
        try await query(group, "status")["pendingPool"]?.intValue ?? 0
    }
}

/// Resolves did:key locally and did:efsc from the identity chain, caching
/// answers for `ttl` seconds (a rotation is seen at most that late; a party
/// that rotated re-authenticates, which resolves afresh).
public final class ChainDIDResolver: DIDResolver, @unchecked Sendable {
    let chain: ChainClient
    let ttl: Double
    let lock = Lock()
    var cache: [String: (at: Double, value: DIDResolution)] = [:]
    /// Most DIDs cached; past it, expired entries go, then the cache starts over.
    public let capacity: Int

    public init(chain: ChainClient, ttl: Double = 30, capacity: Int = 10_000) {
        self.chain = chain
        self.ttl = ttl
        self.capacity = Swift.max(1, capacity)
    }

    /// Entries cached now (never more than `capacity`).
    public var cachedCount: Int { lock.withLock { cache.count } }

    public func resolve(_ did: String) async throws -> DIDResolution {
        if DIDSyntax.method(did) == "key" { return DIDResolution(document: try DIDKey.resolve(did)) }
        return try await resolve(did, fresh: false)
    }

    public func resolve(_ did: String, fresh: Bool) async throws -> DIDResolution {
        let now = DateTime.currentTime()
        if !fresh, let c = lock.withLock({ cache[did] }), now - c.at < ttl { return c.value }
        let r: DIDResolution
        do { r = try await chain.resolveDID(did) } catch let e as ChainError { throw DIDError.notFound("\(did) (\(e.message))") }
        lock.withLock {
            if cache.count >= capacity, cache[did] == nil {
                cache = cache.filter { now - $0.value.at < ttl }
                if cache.count >= capacity { cache.removeAll(keepingCapacity: true) }
            }
            cache[did] = (now, r)
        }
        return r
    }
}

/// Templates from the identity chain (built-ins answered locally), cached:
/// a registered template version never changes.
public final class ChainTemplateStore: TemplateStore, @unchecked Sendable {
    let chain: ChainClient
    let local = LocalTemplateStore()

    public init(chain: ChainClient) { self.chain = chain }

    public func template(id: String, version: Int) async throws -> Template {
        if let t = local.lookup(id: id, version: version) { return t }
        let j = try await chain.query("identity", "template", ["id": .string(id), "version": .number(Double(version))])
        var base: Template?
        if let ext = j["extends"], let bid = ext["id"]?.stringValue, let bv = ext["version"]?.intValue {
            base = try await template(id: bid, version: bv)
        }
        let t = try Template(json: j) { bid, bv in base.flatMap { $0.id == bid && $0.version == bv ? $0 : nil } ?? self.local.lookup(id: bid, version: bv) }
        local.add(t)
        return t
    }
}
