import EFSCBus
import EFSCChannel
import EFSCContracts
import EFSCCore
import EFSCLedger
import Foundation

/// What `efsc events` does (topics.md "Event log"); every default is named here.
public struct EventLogOptions: Sendable {
    /// Groups whose events are emitted, in this order of processing.
    public var groups: [String] = ReplayState.groups
    /// First height emitted (per group) when there is no cursor.
    public var from: UInt64 = 1
    /// Last height emitted; nil: the committed height when the log started
    /// (or, with `follow`, no end).
    public var until: UInt64? = nil
    public var follow = false
    /// Cursor file: read at start (it wins over `from`), written after every block.
    public var cursorPath: String? = nil
    /// Replay state (RocksDB); nil: `<cursor>.state`, or a temporary directory removed at the end.
    public var stateDir: String? = nil
    /// Re-execute blocks for receipts and domain events (false: block and
    /// transaction events only, as checked from the certificate).
    public var execute = true
    /// Ask this node for history (nil: any node, through the shared subscription).
    public var node: String? = nil
    public var filter = EventFilter()
    /// Blocks asked for per history page (1…256).
    public var pageBlocks = WireLimits.historyBlocks
    /// Seconds between history probes while nothing arrives live (a
    /// subscription the broker dropped silently cannot stall the log).
    public var pollSeconds = 2.0
    /// Without `follow`: seconds without progress (no node answering) before giving up.
    public var timeoutSeconds = 30.0
    /// Seconds to wait for one history reply.
    public var requestSeconds = 5.0
    public init() {}
}

/// What an event log did.
public struct EventLogSummary: Sendable {
    /// Blocks whose events were emitted, and the events.
    public var blocks = 0
    public var events = 0
    /// Blocks refused (forged, malformed, not linking), by code.
    public var refused: [String: Int] = [:]
    /// The last height taken per group.
    public var heights: [String: UInt64] = [:]
    public var json: JSON {
        [
            "blocks": .number(Double(blocks)), "events": .number(Double(events)),
            "refused": .object(JSONObject(refused.sorted { $0.key < $1.key }.map { ($0.key, JSON.number(Double($0.value))) })),
            "heights": .object(JSONObject(heights.sorted { $0.key < $1.key }.map { ($0.key, JSON.number(Double($0.value))) })),
        ]
    }
}

/// A verified event log of the chain (topics.md "Event log"): history from
/// a height or a cursor through the `history` query, then the live blocks
/// topics, with no gap and no duplicate. Blocks are taken strictly in
/// height order per group; a live block above the height due waits (a
/// gap is filled from history), one below it is dropped. Every block is
/// checked by `BlockVerifier` against the genesis keys before anything of
/// it is emitted, and (by default) re-executed by `ReplayState` for its
/// receipts and domain events. After each block: its events are written,
/// then the cursor, then the replay state. One task owns all of it; the
/// bus handlers only hand bytes to `LiveBlocks`.
public final class EventLog: @unchecked Sendable {
    struct Progress {
        var next: UInt64
        var parent: (hash: [UInt8], anchor: UInt64)?
        /// Blocks below this are taken without emitting (before `from`, or
        /// replayed into the state up to the cursor).
        var emitFrom: UInt64
        /// The committed height the nodes last reported (unverified; only when to ask).
        var head: UInt64?
        /// The head when the log started (the end without `until`/`follow`).
        var startHead: UInt64?
        /// A verified block waiting for the identity group to reach its anchor.
        var held: VerifiedBlock?
        /// In verify-only mode, where the log was before a null block whose
        /// state root it could not check, so a successor that does not link
        /// to it can undo it.
        var beforeNull: (next: UInt64, parent: (hash: [UInt8], anchor: UInt64)?)?
        var probe = true
        var emitted: Bool
    }

    let chain: ChainClient
    let network: TrustedNetwork
    let verifier: BlockVerifier
    let options: EventLogOptions
    let output: EventOutput
    let log: @Sendable (String) -> Void
    let live = LiveBlocks()
    private var state: ReplayState?
    private var temporaryState: String?
    private var progress: [String: Progress] = [:]
    private var order: [String] = []
    private var cursor: EventCursor
    private var summary = EventLogSummary()
    private let refusalLog = RateLimitedLog(interval: 10)
    private var identityDemand: UInt64 = 0
    /// Set when a block waits for a higher identity height than before.
    private var demandRaised = false
    /// When a node last answered a history request (a page or its height).
    private var lastAnswer = DateTime.currentTime()
    /// A history page asked for ahead, per group.
    private var prefetched: [String: (from: UInt64, task: Task<Result<HistoryPage, any Error>, Never>)] = [:]
    /// Called after every block taken (tests, benchmarks).
    public var onBlock: (@Sendable (String, UInt64) -> Void)?

    public init(chain: ChainClient, network: TrustedNetwork, options: EventLogOptions, output: EventOutput, log: @escaping @Sendable (String) -> Void) {
        self.chain = chain
        self.network = network
        verifier = BlockVerifier(network: network)
        self.options = options
        self.output = output
        self.log = log
        cursor = EventCursor(genesis: EventCursor.fingerprint(network))
    }

    /// The cursor a run would resume from, checked against the genesis.
    public static func loadCursor(_ path: String, network: TrustedNetwork) throws(ReplayError) -> EventCursor? {
        guard let c = try EventCursor.load(path) else { return nil }
        guard c.genesis == EventCursor.fingerprint(network) else {
            throw ReplayError(.cursor, "the cursor \(path) belongs to a network with other node keys than the genesis given")
        }
        return c
    }

    public func run() async throws -> EventLogSummary {
        defer {
            // Closed here, not at exit: RocksDB's background threads must not
            // outlive its static objects.
            state = nil
            if let t = temporaryState { try? FileManager.default.removeItem(atPath: t) }
        }
        try setUp()
        for g in order {
            _ = try await chain.bus.subscribe(Topics.blocksAll(g), qos: .atLeastOnce) { [live] m in live.add(m.payload) }
        }
        while !finished {
            var progressed = false
            for g in order {
                demandRaised = false
                progressed = try await advance(g) || progressed || demandRaised
            }
            if finished { break }
            if !progressed {
                if !options.follow && DateTime.currentTime() - lastAnswer > options.timeoutSeconds {
                    let at = order.map { "\($0) at \(progress[$0]!.next)" }.joined(separator: ", ")
                    throw ReplayError(.unavailable, "no node gave the blocks due (\(at)) for \(options.timeoutSeconds) s; is the network up?")
                }
                await live.wait(seconds: options.pollSeconds)
                for g in order { progress[g]!.probe = true }
            }
        }
        for g in order { summary.heights[g] = progress[g]!.next - 1 }
        for p in prefetched.values { p.task.cancel() }
        try state?.flush()
        return summary
    }

    var finished: Bool {
        order.allSatisfy { g in
            let p = progress[g]!
            guard p.emitted else { return true }
            guard let t = target(p) else { return false }
            return p.next > t && p.held == nil
        }
    }

    func target(_ p: Progress) -> UInt64? {
        if let u = options.until { return u }
        if options.follow { return .max }
        return p.startHead
    }

    func setUp() throws {
        for g in options.groups where !ReplayState.groups.contains(g) {
            throw ReplayError(.usage, "unknown group '\(g)' (groups: \(ReplayState.groups.joined(separator: ", ")))")
        }
        guard (1...WireLimits.historyBlocks).contains(options.pageBlocks) else {
            throw ReplayError(.usage, "pages hold 1…\(WireLimits.historyBlocks) blocks")
        }
        guard options.from >= 1 else { throw ReplayError(.usage, "heights start at 1") }
        var groups = ReplayState.groups.filter { options.groups.contains($0) }
        // The transaction group executes against the identity group as of
        // each block's anchor: that is replayed too, without emitting.
        if options.execute && groups.contains("transaction") && !groups.contains("identity") { groups.insert("identity", at: 0) }
        order = groups
        let loaded = try options.cursorPath.flatMap { path throws(ReplayError) in try Self.loadCursor(path, network: network) }
        if let c = loaded { cursor = c }
        if options.execute {
            var dir = options.stateDir ?? options.cursorPath.map { $0 + ".state" }
            if dir == nil {
                let t = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-events-\(UUID().uuidString.prefix(8))").path
                temporaryState = t
                dir = t
            }
            var s = try ReplayState(dir: dir!, network: network)
            // A state ahead of the cursor cannot be rolled back: start it over.
            if order.contains(where: { s.height($0) > (cursor.groups[$0]?.height ?? 0) }) {
                log("the replay state in \(dir!) is ahead of the cursor; rebuilding it")
                s = try Self.rebuild(dir!, network)
            }
            state = s
        }
        for g in order {
            let emitted = options.groups.contains(g)
            let c = cursor.groups[g]
            let emitFrom = c.map { $0.height + 1 } ?? (emitted ? options.from : .max)
            var p: Progress
            if let s = state {
                let l = s.height(g)
                p = Progress(next: l + 1, parent: l > 0 ? (s.lastHash(g), s.lastAnchor(g)) : nil, emitFrom: emitFrom, emitted: emitted)
            } else if let c {
                p = Progress(next: c.height + 1, parent: c.height > 0 ? (c.hash, c.anchor) : nil, emitFrom: emitFrom, emitted: emitted)
            } else {
                p = Progress(next: emitted ? options.from : 1, parent: nil, emitFrom: emitFrom, emitted: emitted)
            }
            live.setDue(g, p.next)
            progress[g] = p
        }
    }

    /// Starts a replay state over: removes its two ledgers (nothing else in `dir`).
    static func rebuild(_ dir: String, _ network: TrustedNetwork) throws(ReplayError) -> ReplayState {
        for g in ReplayState.groups {
            let path = "\(dir)/\(g)"
            guard FileManager.default.fileExists(atPath: path) else { continue }
            do { try FileManager.default.removeItem(atPath: path) } catch { throw ReplayError(.state, "cannot remove \(path): \(error)") }
        }
        return try ReplayState(dir: dir, network: network)
    }

    /// Takes every block of `g` it can now; whether it took any.
    func advance(_ g: String) async throws -> Bool {
        var took = false
        while true {
            var p = progress[g]!
            let want: UInt64? = g == "identity" && !p.emitted ? identityDemand : target(p).map { max($0, g == "identity" ? identityDemand : 0) }
            if let w = want, p.next > w, p.held == nil { return took }
            if let v = p.held {
                progress[g]!.held = nil
                guard try take(v) else { return took }
                took = true
                continue
            }
            // Live copies first; then history when the head is known above,
            // a gap shows on the live stream, or a probe is due.
            var verified: VerifiedBlock?
            for copy in live.take(g, p.next) {
                do {
                    verified = try verifier.verify(copy, group: g, height: p.next, parent: p.parent)
                    break
                } catch {
                    refuse(error, "live")
                }
            }
            if let v = verified {
                guard try take(v) else { return took }
                took = true
                continue
            }
            let known = (p.head.map { $0 >= p.next } ?? true) || live.highestSeen(g) > p.next || p.probe
            guard known else { return took }
            p.probe = false
            progress[g] = p
            guard let page = await fetch(g, from: p.next) else { return took }
            if p.startHead == nil { progress[g]!.startHead = page.committedHeight }
            progress[g]!.head = page.committedHeight
            for b in page.blocks {
                let q = progress[g]!
                guard b.header.height == q.next else { break }
                let v: VerifiedBlock
                do {
                    v = try verifier.verify(b, group: g, height: q.next, parent: q.parent)
                } catch {
                    refuse(error, "history")
                    break
                }
                guard try take(v) else { return took }
                took = true
            }
            if page.blocks.isEmpty { return took }
        }
    }

    func refuse(_ error: BlockRefusal, _ source: String) {
        summary.refused[error.code.rawValue, default: 0] += 1
        let n = summary.refused.values.reduce(0, +)
        if let line = refusalLog.line(error.code.rawValue, { "refused a block from \(source): \(error) (\(n) refused so far)" }) { log(line) }
        // A successor that does not link to a null block this mode could
        // not check: the null block was the forgery; take its height again.
        if error.code == .badParent, let h = error.height {
            for (g, p) in progress where p.next == h {
                if let b = p.beforeNull {
                    progress[g]!.next = b.next
                    progress[g]!.parent = b.parent
                    progress[g]!.beforeNull = nil
                    live.setDue(g, b.next)
                    log("\(g): block \(h) does not link to null block \(h - 1); taking height \(h - 1) again")
                }
            }
        }
    }

    /// Emits (when due), saves the cursor and commits the replay state of a
    /// verified block. False when it must wait for the identity group.
    func take(_ v: VerifiedBlock) throws -> Bool {
        let g = v.group
        var p = progress[g]!
        var receipts: [Receipt?]? = nil
        var execution: Execution? = nil
        if let s = state {
            if let need = s.identityNeeded(v.block) {
                if need > identityDemand { demandRaised = true }
                identityDemand = max(identityDemand, need)
                progress[g]!.held = v
                return false
            }
            execution = try s.execute(v)
            receipts = execution!.receipts
        }
        if p.emitted && v.height >= p.emitFrom && options.until.map({ v.height <= $0 }) ?? true {
            let events = ChainEvents.events(v, receipts: receipts, filter: options.filter)
            for e in events { output.add(e) }
            try output.flush()
            summary.blocks += 1
            summary.events += events.count
        }
        p.beforeNull = v.isNull && state == nil ? (p.next, p.parent) : nil
        p.parent = (v.hash, v.block.header.anchor)
        p.next = v.height + 1
        progress[g] = p
        live.setDue(g, p.next)
        if let path = options.cursorPath {
            if let c = cursor.groups[g], v.height == c.height, c.hash != v.hash {
                throw ReplayError(.cursor, "the cursor names block \(c.height) of \(g) with hash \(Hex.encode(c.hash)); the certified block has \(Hex.encode(v.hash))")
            }
            if v.height > (cursor.groups[g]?.height ?? 0) {
                cursor.groups[g] = .init(height: v.height, hash: v.hash, anchor: v.block.header.anchor)
                cursor.outputBytes = output.isFile ? output.bytes : nil
                try cursor.save(path)
            }
        }
        if let s = state, let e = execution { try s.commit(v, e) }
        onBlock?(g, v.height)
        return true
    }

    /// One history page of `g` from `from`, or nil (the node's head is
    /// noted, a failure logged at most every 10 s).
    func fetch(_ g: String, from: UInt64) async -> HistoryPage? {
        let result: Result<HistoryPage, any Error>
        if let p = prefetched.removeValue(forKey: g), p.from == from {
            result = await p.task.value
        } else {
            result = await request(g, from)
        }
        do {
            let page = try result.get()
            lastAnswer = DateTime.currentTime()
            // The next page is asked for while this one is verified and executed.
            if let last = page.blocks.last?.header.height, last < page.committedHeight {
                let next = last + 1
                prefetched[g] = (next, Task { [self] in await self.request(g, next) })
            }
            return page
        } catch let e as HistoryError {
            if e.code != .malformed { lastAnswer = DateTime.currentTime() }
            if e.code == .notCommitted {
                let h = e.height ?? (from - 1)
                if progress[g]!.startHead == nil { progress[g]!.startHead = h }
                progress[g]!.head = h
            } else if let line = refusalLog.line("history-\(e.code.rawValue)", { "history of \(g) from \(from): \(e)" }) {
                log(line)
            }
            return nil
        } catch {
            if let line = refusalLog.line("history-request", { "history of \(g) from \(from): no reply (\(error)); retrying" }) { log(line) }
            return nil
        }
    }

    func request(_ g: String, _ from: UInt64) async -> Result<HistoryPage, any Error> {
        do { return .success(try await chain.history(g, from: from, max: options.pageBlocks, node: options.node)) } catch { return .failure(error) }
    }
}
