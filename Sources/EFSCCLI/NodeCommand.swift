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
