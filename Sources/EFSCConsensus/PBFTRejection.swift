/// Why a replica refused a consensus message or a proposed block: a fixed
/// vocabulary (topics.md "Consensus refusals"), so nodes can count and log
/// refusals by reason and tests can match on them. Late and duplicate
/// messages are not refusals (PBFT expects them); these are messages no
/// correct replica sends.
public enum PBFTRejection: String, Sendable, CaseIterable, Hashable {
    /// The sender is not a member, or its signature does not verify.
    case badSignature = "bad-signature"
    /// A view or sequence number beyond `WireLimits.consensusMaxNumber`.
    case outOfRange = "out-of-range"
    /// A nested list over what the group size allows, or repeated senders
    /// or sequence numbers in one list (refused before any signature is checked).
    case oversized
    /// A nested message (checkpoint proof, prepared certificate, view-change,
    /// commit certificate) that is unsigned, signed by someone else, or for
    /// another view or sequence than the message that carries it.
    case badCertificate = "bad-certificate"
    /// A new-view whose pre-prepares are not the ones its view-changes
    /// determine (a dropped prepared block, a wrong digest).
    case badNewView = "bad-new-view"
    /// A pre-prepare whose block this replica's ledger would refuse (parent,
    /// height, state root, anchor, size), or that does not match its digest.
    case badProposal = "bad-proposal"
    /// A second, different vote (or pre-prepare, or checkpoint) from the same
    /// sender for the same view and sequence: proof the sender is faulty.
    case equivocation
    /// A message that was refused before, received again (not checked again).
    case replayed
}

/// A replica's judgement of a proposed block (`PBFTReplica`'s `validate`).
public enum PBFTValidation: Sendable, Equatable {
    /// The ledger would commit it on the block it extends.
    case valid
    /// It can never be committed (the reason is for the log).
    case invalid(String)
    /// Cannot be judged yet: the parent block has not executed here, or the
    /// identity group has not reached the block's anchor. The replica holds
    /// the pre-prepare and asks again after each executed block and tick.
    case notYet
}

/// What `validate` is asked about: the block proposed at `seq` in `view`,
/// whose SHA-256 is `digest` (checked by the replica).
public struct PBFTProposal: Sendable {
    public let view: UInt64
    public let seq: UInt64
    public let digest: [UInt8]
    public let payload: [UInt8]
}
