import Testing

/// Suites that start a broker, four node processes and a TCC run one after
/// another: in parallel on a 2-core machine they would starve each other's
/// timers (view changes, challenge deadlines) and test timing, not behaviour.
@Suite(.serialized) enum NetworkSuites {}
