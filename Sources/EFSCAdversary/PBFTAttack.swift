/// The attacks a Byzantine replica holding only its own key can make on
/// the others with well-formed messages (issue: "one Byzantine replica
/// cannot fork, crash or stall the honest ones"). The simulator, the fuzz
/// target and `efsc node byzantine` craft them with `PBFTAdversary`.
public enum PBFTAttack: String, CaseIterable, Sendable, Hashable {
    /// New-views backed by view-changes it fabricated: unsigned or forged
    /// for other replicas, claiming no prepared certificates (to drop
    /// blocks others may have committed), or a stable checkpoint nobody signed.
    case fabricatedViewChanges = "fabricated-view-changes"
    /// View-changes and new-views for far views up to 2⁶⁴−1, and votes with
    /// view or sequence 2⁶⁴−1 (the overflow that once killed every node).
    case farViews = "far-views"
    /// Certificates taken from other views or sequences: honest prepares
    /// and checkpoints of one (view, seq) offered as proof for another.
    case foreignCertificates = "foreign-certificates"
    /// As primary: pre-prepares whose blocks have a wrong parent, state root,
    /// height or an anchor far ahead or of 2⁶⁴−1; blocks that do not match
    /// the digest; empty blocks outside a new view.
    case badBlocks = "bad-blocks"
    /// Prepares and commits for every sequence in the window, each with a
    /// fresh digest (memory growth on an idle chain).
    case digestFlood = "digest-flood"
    /// Heavy view-changes (thousands of copies of one signed checkpoint, a
    /// certificate that fails late) sent again and again.
    case heavyReplay = "heavy-replay"
    /// As primary of a new view: a new-view whose pre-prepares drop a block
    /// its view-changes prove prepared.
    case omittedPrepared = "omitted-prepared"
}

/// How a crafted block is wrong (`PBFTAttack.badBlocks`).
public enum BlockFault: String, CaseIterable, Sendable {
    case wrongParent = "wrong-parent"
    case wrongStateRoot = "wrong-state-root"
    case wrongHeight = "wrong-height"
    case farAnchor = "far-anchor"
    case maxAnchor = "max-anchor"
}
