import EFSCCore
import Prometheus

/// A TCC's Prometheus metrics (`GET /metrics` when `metricsPort` is set):
/// refusals by reason — the code of the error a party was sent, or
/// `unconfirmed-event` for a channel-control event the chain did not
/// confirm — and settlements, open channels and pending evidence.
final class TCCMetrics: @unchecked Sendable {
    let registry = PrometheusCollectorRegistry()
    private let lock = Lock()
    private var refusals: [String: Counter] = [:]
    let settlements: Counter
    let openChannels: Gauge
    let pendingEvidence: Gauge

    init() {
        settlements = registry.makeCounter(name: "efsc_tcc_settlements_total", help: "TSCs issued")
        openChannels = registry.makeGauge(name: "efsc_tcc_open_channels", help: "Channels not closed")
        pendingEvidence = registry.makeGauge(name: "efsc_tcc_pending_evidence", help: "Evidence waiting to be anchored")
    }

    func refused(_ reason: String) {
        let c = lock.withLock { () -> Counter in
            if let c = refusals[reason] { return c }
            let c = registry.makeCounter(name: "efsc_tcc_refusals_total", labels: [("reason", reason)], help: "Input refused, by reason")
            refusals[reason] = c
            return c
        }
        c.increment()
    }

    func text() -> String { registry.emitToString() }
}
