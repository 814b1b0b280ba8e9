import ArgumentParser
import Dispatch
import EFSCCore
import EFSCNode
import Foundation
import Logging
import ServiceLifecycle

/// `efsc node --config FILE`: run a chain node until SIGTERM/SIGINT.
struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node", abstract: "Run a chain node (PBFT over the MQTT bus, ledger in RocksDB).",
        discussion: """
            Logs to standard error through swift-log (level from $EFSC_LOG_LEVEL: trace, debug, info, notice (default),
            warning, error, critical). Runs under swift-service-lifecycle: SIGTERM or SIGINT stops it gracefully —
            ticking stops, then it disconnects from the broker.
            """)
    @Option(name: .long, help: "Node configuration file (JSON, written by `efsc devnet init`).") var config: String

    func run() async throws {
        LogSetup.bootstrap()
        keepFreedMemory()
        let node = try await exitOnError(code: 2) { () async throws -> Node in
            let cfg: NodeConfig
            do { cfg = try NodeConfig(json: try Output.readJSON(config)) } catch let e as CLIError { throw e } catch { throw CLIError("\(config): \(error)") }
            return try Node(config: cfg)
        }
        try await exitOnError(code: 1) {
            let group = ServiceGroup(
                services: [node], gracefulShutdownSignals: [.sigterm, .sigint], logger: Logger(label: "efsc.node.\(node.config.nodeId).lifecycle"))
            try await group.run()
        }
    }
}

/// swift-log set-up for the long-running commands: one line per event on
/// standard error, at the level $EFSC_LOG_LEVEL names (default notice).
enum LogSetup {
    static let once: Void = {
        let level = ProcessInfo.processInfo.environment["EFSC_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .notice
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
    }()

    static func bootstrap() { _ = once }
}

/// Nodes build and drop buffers of hundreds of kilobytes per block
/// (pre-prepares, block bodies, write batches). glibc serves those with fresh
/// mmap'd or trimmed pages that the kernel must zero on every touch, which
/// cost a node ≈ 9 % of its CPU in page faults. Keep freed memory for reuse.
/// (Nodes only: for the TCC and the parties it showed no gain.)
func keepFreedMemory() {
    #if os(Linux)
    // <malloc.h> is not in the Glibc module; these are its stable values.
    let M_TRIM_THRESHOLD: Int32 = -1
    let M_MMAP_THRESHOLD: Int32 = -3
    _ = glibcMallopt(M_MMAP_THRESHOLD, 32 << 20)
    _ = glibcMallopt(M_TRIM_THRESHOLD, 128 << 20)
    #endif
}

#if os(Linux)
@_silgen_name("mallopt") private func glibcMallopt(_ param: Int32, _ value: Int32) -> Int32
#endif
