import ArgumentParser
import EFSCChannel
import EFSCCore
import EFSCTCC
import Foundation
import Logging
import ServiceLifecycle

/// `efsc tcc --config FILE`: run a transaction channel controller until SIGTERM/SIGINT.
struct TCCCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tcc", abstract: "Run a transaction channel controller (TCC) attached to the chain over the bus.",
        discussion: """
            Config (JSON): broker, dataDir, and identity (path to an identity file: did, secretKeyMultibase,
            verificationMethod, operation — `efsc devnet init` writes tcc1.json) or those fields inline.
            Optional: name (client id and status topic; default tcc-<DID id>), node (the chain node whose committed
            blocks it follows; default any), shareGroup ("tcc"), workers (2), challengeSeconds (10),
            evidenceIntervalMillis (200), evidenceBatchMax (1024), poolHigh (2000), poolLow (200),
            statusIntervalMillis (1000). The TCC's DID must be listed in the network's genesis `tccs` for its
            evidence to be accepted; it registers the DID on the identity chain if needed.
            Logs to standard error through swift-log ($EFSC_LOG_LEVEL, default notice); runs under
            swift-service-lifecycle, so SIGTERM or SIGINT stops it gracefully (queues drain, TSCs being persisted are
            persisted). Exit status 2: bad configuration, 1: cannot start (e.g. broker unreachable).
            """)
    @Option(name: .long, help: "TCC configuration file (JSON).") var config: String

    func run() async throws {
        LogSetup.bootstrap()
        let tcc = try await exitOnError(code: 2) { () async throws -> TCC in
            let j = try Output.readJSON(config)
            let idJSON: JSON
            if let path = j["identity"]?.stringValue {
                let base = URL(fileURLWithPath: config).deletingLastPathComponent().path
                idJSON = try Output.readJSON(path.hasPrefix("/") ? path : "\(base)/\(path)")
            } else {
                idJSON = j
            }
            do {
                let cfg = try TCCConfig(json: j, identity: try PartyIdentity(json: idJSON))
                return try TCC(config: cfg, logger: Logger(label: "efsc.\(cfg.name)"))
            } catch let e as ChainError {
                throw CLIError("\(config): \(e.message)")
            }
        }
        try await exitOnError(code: 1) {
            let group = ServiceGroup(services: [tcc], gracefulShutdownSignals: [.sigterm, .sigint], logger: Logger(label: "efsc.\(tcc.config.name).lifecycle"))
            try await group.run()
        }
    }
}
