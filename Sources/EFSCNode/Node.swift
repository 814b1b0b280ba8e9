import EFSCBus
import EFSCContracts
import EFSCCore
import EFSCCredentials
import EFSCIdentity
import Foundation
import Logging
import ServiceLifecycle

/// A chain node: one bus connection and one `GroupRunner` per configured
/// group. The transaction group resolves DIDs from the identity group's state.
public final class Node: @unchecked Sendable {
    public let config: NodeConfig
    let client: MQTTClient
    public private(set) var runners: [String: GroupRunner] = [:]
    let logger: Logger
    public let metrics = NodeMetrics()
    public private(set) var metricsServer: MetricsEndpoint?

    public init(config: NodeConfig, logger: Logger? = nil) throws {
        self.config = config
        let logger = logger ?? Logger(label: "efsc.node.\(config.nodeId)")
        self.logger = logger
        try FileManager.default.createDirectory(atPath: config.dataDir, withIntermediateDirectories: true)
        var mc = try config.brokerProfile.configuration(fallbackClientID: config.nodeId)
        mc.offlinePolicy = .queue(limit: 100_000)
        mc.will = .init(topic: Topics.presence(config.nodeId), payload: Array(#"{"client":"\#(config.nodeId)","state":"offline"}"#.utf8))
        mc.reconnectDelay = (1, 5)
        client = try MQTTClient(mc)
        let log: (String) -> Void = { line in
            // Divergence and halts are what an operator must see first.
            if line.contains("DIVERGENCE") || line.contains("halting") { logger.critical("\(line)") } else { logger.notice("\(line)") }
        }
        for g in config.groups {
            runners[g] = try GroupRunner(
                group: g, config: config, client: client, metrics: metrics,
                resolveDID: { [weak self] did in self?.resolveFromIdentity(did) },
                resolveTemplate: { [weak self] id, v in self?.templateFromIdentity(id, v) }, log: log)
        }
    }

    /// The anchor of the transaction-group block being executed.
    var anchor: UInt64 { runners["transaction"]?.executionAnchor ?? UInt64.max }

    func templateFromIdentity(_ id: String, _ version: Int) -> Template? {
        guard let r = runners["identity"] else { return nil }
        return Contracts.template(id, version: version, atHeight: anchor, state: ContractState(ledger: r.ledger))
    }

    func resolveFromIdentity(_ did: String) -> DIDHistory? {
        guard let id = runners["identity"] else { return nil }
        return id.contractsHistory(did, atHeight: anchor)
    }

    public func start() async throws {
        if let id = runners["identity"] {
            for (g, r) in runners where g != "identity" { r.identityHeight = { [weak id] in id?.ledger.height } }
        }
        if let p = config.metricsPort {
            let m = metrics
            metricsServer = try MetricsEndpoint(port: p) { m.text() }
            logger.notice("metrics on http://127.0.0.1:\(metricsServer!.port)/metrics")
        }
        try await client.connect()
        try await client.publish(Topics.presence(config.nodeId), payload: Array(#"{"client":"\#(config.nodeId)","state":"online"}"#.utf8))
        for g in config.groups { try await runners[g]!.start() }
        logger.notice("started: groups \(config.groups.joined(separator: ",")), broker \(config.broker)")
    }

    /// Stops ticking, then disconnects cleanly (no will message).
    public func stop() async {
        for r in runners.values { r.stop() }
        metricsServer?.stop()
        try? await client.publish(Topics.presence(config.nodeId), payload: Array(#"{"client":"\#(config.nodeId)","state":"offline"}"#.utf8))
        await client.disconnect()
    }
}

extension GroupRunner {
    /// A DID's history as of identity height `at`, cached per (height, DID)
    /// (rebuilding it verifies signatures).
    func contractsHistory(_ did: String, atHeight at: UInt64) -> DIDHistory? {
        let h = min(at, ledger.height)
        if let c = historyCache.withLock({ $0.height == h ? $0.entries[did] : nil }) { return c }
        let value = Contracts.history(did, atHeight: h, state: ContractState(ledger: ledger))
        historyCache.withLock {
            if $0.height != h || $0.entries.count > 10_000 { $0 = (h, [:]) }
            $0.entries[did] = value
        }
        return value
    }
}

/// A node is a service: it starts, runs until the service group asks for a
/// graceful shutdown (SIGTERM/SIGINT), then stops ticking and disconnects.
extension Node: Service {
    public func run() async throws {
        try await start()
        try? await gracefulShutdown()
        await stop()
    }
}
