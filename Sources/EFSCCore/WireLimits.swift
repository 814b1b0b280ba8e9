/// Every limit on input that comes off the network, in one place. Each is
/// documented in topics.md ("Limits"); a value over a limit is refused with
/// a reason before any work that grows with it is done.
public enum WireLimits {
    // MARK: JSON (JSONParser)

    /// Deepest nesting of arrays and objects in one JSON text.
    public static let jsonDepth = 64
    /// Most members of one JSON object.
    public static let jsonMembers = 65_536
    /// Most elements of one JSON array (a 1 MiB packet holds at most about
    /// half a million; a block of `--m 100000` lists that many transactions).
    public static let jsonElements = 1 << 20

    // MARK: identifiers and encodings

    /// Longest DID (`did:efsc:<network>:<id>` is about 60 characters, `did:key` about 56).
    public static let didLength = 256
    /// Longest DID URL (a DID plus `#fragment`), e.g. a verification method.
    public static let didURLLength = 320
    /// Longest base58btc text decoded at all (a 64-byte signature is 88
    /// characters, a multicodec key 48): decoding is quadratic in length.
    public static let base58Length = 128

    // MARK: templates

    /// Longest `pattern` of a template field.
    public static let patternLength = 256
    /// Longest string a pattern is matched against.
    public static let patternSubjectLength = 4096

    // MARK: transactions and blocks

    /// Largest transaction, in canonical (JCS) bytes. A pre-prepare carries a
    /// block of at most `GroupRunner.maxBlockBytes`, so one transaction must
    /// leave room for the consensus framing within the broker's 1 MiB packet.
    public static let transactionBytes = 256 * 1024
    /// Largest MQTT payload the broker accepts (broker/*.conf `max_packet_size`).
    public static let packetBytes = 1 << 20
    /// Largest reply a node publishes (sync, history, queries): the packet
    /// limit less room for the MQTT header and properties.
    public static let replyBytes = packetBytes - 16 * 1024

    // MARK: queries

    /// Most blocks one sync request asks for.
    public static let syncBlocks = 64
    /// Most blocks in one `history` reply (it is also bounded by `replyBytes`).
    public static let historyBlocks = 256

    // MARK: event log (`efsc events`)

    /// Live blocks a replay tool holds above the height it is at (a gap
    /// is filled from history, not by holding more).
    public static let replayBufferedHeights = 1024
    /// Copies of one height it holds (every node publishes each block;
    /// a forged copy must not push out the honest ones).
    public static let replayCopiesPerHeight = 8
    /// Bytes of live blocks it holds in all.
    public static let replayBufferedBytes = 64 << 20

    // MARK: queues (nodes and TCCs)

    /// Messages (and bytes) queued for one chain group of a node, not yet handled.
    public static let groupQueueMessages = 50_000
    public static let groupQueueBytes = 512 << 20
    /// Transactions waiting for their sender's DID to become known, and for how long.
    public static let unknownSenderWaiting = 4096
    public static let unknownSenderWaitingBytes = 16 << 20
    public static let unknownSenderHoldSeconds = 5.0
    /// Party messages (and bytes) queued for a TCC's channels.
    public static let tccQueueMessages = 100_000
    public static let tccQueueBytes = 256 << 20
    /// Outstanding challenges, DID lookups included, per channel.
    public static let challengesPerChannel = 8
    /// Open events a TCC holds for the chain's confirmation, and how many it confirms at once.
    public static let pendingOpenEvents = 100_000
    public static let openConfirmationsInFlight = 64
    /// Blocks a TCC remembers having acted on.
    public static let recentBlocks = 4096
    /// Node names a TCC keeps pending-pool figures for.
    public static let poolReportNodes = 256

    // MARK: consensus (PBFT messages between nodes)

    /// Largest view or sequence number a consensus message may carry: far
    /// beyond any reachable view or height, and far enough below 2⁶⁴ that
    /// no view or window arithmetic can overflow.
    public static let consensusMaxNumber: UInt64 = 1 << 62
    /// Most items of one list in a consensus message (checkpoint proofs,
    /// prepared certificates, prepares, view-changes, pre-prepares): the
    /// decoder refuses more before building any of them. A replica then
    /// holds each list to what its group size allows (`PBFTConfig`).
    public static let consensusListItems = 1024
    /// Signatures a replica remembers having verified (each nested message
    /// is checked once however often it is repeated), and messages it
    /// remembers having refused (a replayed bad message is not checked again).
    public static let consensusVerifiedSignatures = 16_384
    public static let consensusRefusedMessages = 4096
    /// How far above a node's committed identity height a transaction
    /// block's anchor may be for the node to wait for it; beyond, the block is refused.
    public static let anchorLead: UInt64 = 4096
    /// Largest replica group a node accepts in its configuration.
    public static let maxReplicas = 256
}
