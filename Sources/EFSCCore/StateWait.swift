import Foundation

/// A wait for a state, with a deadline: `probe` is polled until it returns a
/// value (the state was reached) or `timeout` seconds pass, in which case the
/// error names the state waited for and what was last seen. Nothing here
/// depends on how fast the machine is beyond the deadline itself, which is a
/// bound on patience, not an expectation.
public struct StateTimeout: Error, Sendable, CustomStringConvertible, Equatable {
    /// Machine-readable: always "timeout".
    public let code = "timeout"
    /// The state that was not reached, in words ("channel 1 closed").
    public let state: String
    public let seconds: Double
    /// What the last probe saw, if it said.
    public let lastSeen: String?

    public var description: String {
        "timed out after \(Self.format(seconds)) s waiting for \(state)" + (lastSeen.map { " (last seen: \($0))" } ?? "")
    }

    static func format(_ s: Double) -> String { s == s.rounded() ? String(Int(s)) : String(format: "%.1f", s) }
}

public enum StateWait {
    /// The outcome of one probe: the state reached (with its value), or not
    /// yet (with what was seen, for the timeout's message).
    public enum Probe<T: Sendable>: Sendable {
        case reached(T)
        case notYet(String?)
    }

    /// Polls `probe` every `every` seconds until it reaches its state; throws
    /// `StateTimeout` after `timeout` seconds. An error thrown by `probe`
    /// counts as "not yet" (its text is kept as what was last seen).
    public static func until<T: Sendable>(
        _ state: String, timeout: Double, every: Double = 0.1, _ probe: () async throws -> Probe<T>
    ) async throws -> T {
        let deadline = Date().addingTimeInterval(timeout)
        var last: String?
        while true {
            do {
                switch try await probe() {
                case .reached(let v): return v
                case .notYet(let seen): last = seen
                }
            } catch {
                last = "\(error)"
            }
            if Date() >= deadline { throw StateTimeout(state: state, seconds: timeout, lastSeen: last) }
            try await Task.sleep(nanoseconds: UInt64(max(0.001, every) * 1e9))
        }
    }

    /// `until` for a condition without a value.
    public static func until(_ state: String, timeout: Double, every: Double = 0.1, _ condition: () async throws -> Bool) async throws {
        let _: Bool = try await until(state, timeout: timeout, every: every) { try await condition() ? .reached(true) : .notYet(nil) }
    }
}
