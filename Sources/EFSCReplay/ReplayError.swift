/// Why a replay stopped or could not start: a machine-readable code and a
/// message a user can act on.
public struct ReplayError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// The genesis (network file) does not name n = 3f+1 node keys.
        case genesis
        /// The cursor file cannot be read or written, or belongs to another chain.
        case cursor
        /// The local replay state (RocksDB) cannot be opened or written.
        case state
        /// The output file cannot be written.
        case output
        /// Re-execution reached another state root than the certified one.
        case divergence
        /// A block that should be there does not verify (a stored ledger).
        case badBlock = "bad-block"
        /// No node answered with the blocks needed within the deadline.
        case unavailable
        /// The options contradict each other.
        case usage
    }
    public let code: Code
    public let message: String
    /// The height the error is about, if any (the first divergent one).
    public let height: UInt64?
    public init(_ code: Code, _ message: String, height: UInt64? = nil) {
        self.code = code
        self.message = message
        self.height = height
    }
    public var description: String { message }
}
