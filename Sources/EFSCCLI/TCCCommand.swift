import ArgumentParser
import EFSCChannel
import EFSCCore
import EFSCTCC
import Foundation

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
            Logs to standard error; SIGTERM or SIGINT stops it cleanly. Exit status 2: bad configuration.
            """)
    @Option(name: .long, help: "TCC configuration file (JSON).") var config: String

    func run() async throws {
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
                let err = FileHandle.standardError
                return try TCC(config: cfg) { line in err.write(Data("\(DateTime.now()) \(cfg.name) \(line)\n".utf8)) }
            } catch let e as ChainError {
                throw CLIError("\(config): \(e.message)")
            }
        }
        try await exitOnError(code: 1) { try await tcc.start() }
        await NodeCommand.waitForTermination()
        await tcc.stop()
    }
}
