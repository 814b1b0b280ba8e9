import ArgumentParser
import EFSCChannel
import EFSCCore
import EFSCReplay
import Foundation

/// `efsc events`: the chain as a verified event log (topics.md "Event log").
struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events", abstract: "Follow the chain as verified JSON-lines events: history from a height or a cursor, then live.",
        discussion: """
            Fetches committed blocks with the history query (any node, or --node), then takes the live
            blocks topics, in height order per group with no gap and no duplicate (a gap on the live
            stream is filled from history; every node's copy of a block is taken once). Each block is
            checked before anything of it is emitted: hash, transactions root, parent link, and a commit
            certificate of 2f+1 valid signatures of the genesis node keys (--genesis; default the
            --network directory's network.json). The broker and single nodes are not trusted.
            By default each block is re-executed with the nodes' contracts into a replay state (RocksDB,
            --state; default <cursor>.state, or a temporary directory) for receipts and domain events; a
            state root other than the certified one stops the log (exit 1, code divergence). --verify-only
            emits block and transaction events without receipts or domain events.
            With --cursor FILE the position is written after every block (atomically) and a restart
            resumes after it. With --out FILE the events go to that file, which a restart cuts back to the
            cursor's last complete block: exactly once. On standard output, the events of the block in
            flight at a crash may appear twice (dedupe by group, height, index, event, item).
            Ends at --until, or at the committed height when it started; --follow never ends.
            Refused blocks (forged, malformed, not linking) are never emitted: each is counted and logged
            on standard error (at most one line per reason every 10 s).
            Limits: live blocks held above the height due 1,024 heights, 8 copies a height, 64 MiB; pages
            of 1-256 blocks (--page). Schema of every event: topics.md "Event log".
            Exit status: 0 done, 1 divergence or a cursor of another chain, 2 bad usage or no node answering
            for --timeout seconds (without --follow).
            """)

    @OptionGroup var brokerOptions: BrokerOptions
    @Option(name: .long, help: "Genesis (network.json, or a devnet directory) whose node keys certify blocks (default: the --network directory's).")
    var genesis: String?
    @Option(name: .long, help: "Group to emit (identity or transaction; repeatable; default both).") var group: [String] = []
    @Option(name: .long, help: "First height to emit when there is no cursor.") var from: UInt64 = 1
    @Option(name: .long, help: "Last height to emit.") var until: UInt64?
    @Flag(name: .long, help: "Keep following live blocks (no end).") var follow = false
    @Option(name: .long, help: "Cursor file: resume after it, write it after every block.") var cursor: String?
    @Option(name: .long, help: "Replay state directory (default <cursor>.state, or temporary).") var state: String?
    @Option(name: .long, help: "Write events to this file (cut back to the cursor on resume) instead of standard output.") var out: String?
    @Flag(name: .long, help: "Block and transaction events only: no re-execution, no receipts, no domain events.") var verifyOnly = false
    @Option(name: .long, help: "Read history from this node only (default: any node).") var node: String?
    @Option(name: .long, help: "Only transactions of this op (repeatable), and their domain events.") var op: [String] = []
    @Option(name: .long, help: "Only transactions and events of this channel id.") var channel: String?
    @Option(name: .long, help: "Only transactions and events naming this DID.") var did: String?
    @Option(name: .long, help: "Only events of this type (repeatable): block, transaction, or a domain event type.") var event: [String] = []
    @Option(name: .long, help: "Blocks per history page (1-256).") var page = 256
    @Option(name: .long, help: "Seconds without an answer from any node before giving up (not with --follow).") var timeout = 30.0
    @Option(name: .long, help: "Seconds between history probes while nothing arrives live.") var poll = 2.0
    @Flag(name: .long, help: "Print a summary (JSON) on standard error at the end.") var summary = false

    func validate() throws {
        guard (1...256).contains(page) else { throw ValidationError("--page must be 1-256") }
        guard from >= 1 else { throw ValidationError("--from must be ≥ 1") }
        guard timeout > 0, poll > 0 else { throw ValidationError("--timeout and --poll must be > 0") }
        if let u = until, u < from { throw ValidationError("--until must be ≥ --from") }
        if follow && until != nil { throw ValidationError("give --until or --follow, not both") }
        let known = Set(["block", "transaction"] + ChainEvents.domainTypes)
        for e in event where !known.contains(e) { throw ValidationError("--event \(e): not one of \(known.sorted().joined(separator: ", "))") }
        if verifyOnly, let e = event.first(where: { ChainEvents.domainTypes.contains($0) }) {
            throw ValidationError("--event \(e) needs re-execution; drop --verify-only")
        }
    }

    func run() async throws {
        let network = try await exitOnError(code: 2) { try TrustedNetwork(path: try genesisPath()) }
        var o = EventLogOptions()
        if !group.isEmpty { o.groups = group }
        o.from = from
        o.until = until
        o.follow = follow
        o.cursorPath = cursor
        o.stateDir = state
        o.execute = !verifyOnly
        o.node = node
        o.filter = EventFilter(ops: Set(op), channel: channel, did: did, events: Set(event))
        o.pageBlocks = page
        o.timeoutSeconds = timeout
        o.pollSeconds = poll
        let output: EventOutput = try await exitOnError(code: 2) {
            guard let out else { return EventOutput() }
            let c = try cursor.flatMap { try EventLog.loadCursor($0, network: network) }
            // A fresh log starts the file empty; a resumed one cuts it back to its cursor.
            return try EventOutput(path: out, truncateTo: c == nil ? 0 : c?.outputBytes)
        }
        let bus = try await exitOnError(code: 2) { try await brokerOptions.connect(clientPrefix: "efsc-events") }
        defer { Task { await bus.disconnect() } }
        let log = EventLog(chain: ChainClient(bus: bus, timeout: 5), network: network, options: o, output: output) { Output.note($0) }
        do {
            let s = try await log.run()
            if summary { Output.note(s.json.compactString()) }
        } catch let e as ReplayError {
            Output.error("\(e.code.rawValue): \(e.message)")
            throw ExitCode(e.code == .divergence || e.code == .cursor ? 1 : 2)
        }
    }

    func genesisPath() throws -> String {
        if let genesis { return genesis }
        if let n = brokerOptions.network ?? ProcessInfo.processInfo.environment["EFSC_NETWORK"] {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: n, isDirectory: &isDir), isDir.boolValue { return "\(n)/network.json" }
        }
        throw CLIError("name the genesis whose node keys certify blocks: --genesis network.json (or --network with a devnet directory)")
    }
}
