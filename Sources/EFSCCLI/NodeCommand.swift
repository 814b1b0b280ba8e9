import ArgumentParser
import Dispatch
import EFSCCore
import EFSCNode
import Foundation

/// `efsc node --config FILE`: run a chain node until SIGTERM/SIGINT.
struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node", abstract: "Run a chain node (PBFT over the MQTT bus, ledger in RocksDB).",
        discussion: "Logs to standard error. SIGTERM or SIGINT stops it cleanly: ticking stops, then it disconnects from the broker.")
    @Option(name: .long, help: "Node configuration file (JSON, written by `efsc devnet init`).") var config: String

    func run() async throws {
        let node = try await exitOnError(code: 2) { () async throws -> Node in
            let cfg: NodeConfig
            do { cfg = try NodeConfig(json: try Output.readJSON(config)) } catch let e as CLIError { throw e } catch { throw CLIError("\(config): \(error)") }
            return try Node(config: cfg)
        }
        try await exitOnError(code: 1) { try await node.start() }
        await Self.waitForTermination()
        await node.stop()
    }

    /// Suspends until SIGTERM or SIGINT.
    static func waitForTermination() async {
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let once = Once()
            for sig in [SIGTERM, SIGINT] {
                let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
                s.setEventHandler { if once.fire() { c.resume() } }
                s.resume()
                Sources.keep.append(s)
            }
        }
    }

    final class Once: @unchecked Sendable {
        let lock = Lock()
        var fired = false
        func fire() -> Bool { lock.withLock { defer { fired = true }; return !fired } }
    }

    enum Sources { nonisolated(unsafe) static var keep: [any DispatchSourceSignal] = [] }
}
