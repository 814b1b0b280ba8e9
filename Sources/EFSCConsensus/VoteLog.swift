/// Votes of one kind (prepares or commits, this replica's own included),
/// at most one per (sender, view, sequence). A second vote from a sender for
/// the same (view, sequence) with another digest is equivocation: it is
/// reported and never stored, so a faulty replica flooding fresh digests
/// adds nothing. What the log holds per sender is bounded by the views and
/// sequence numbers the replica accepts (`PBFTReplica.footprint`).
struct VoteLog: Sendable {
    struct Vote: Sendable, Hashable {
        let digest: [UInt8]
        let message: SignedMessage
    }

    enum Outcome: Equatable {
        case added
        case duplicate
        case equivocation
    }

    private(set) var votes: [VoteKey: [Int: Vote]] = [:]

    mutating func add(_ key: VoteKey, sender: Int, digest: [UInt8], _ m: SignedMessage) -> Outcome {
        if let existing = votes[key]?[sender] { return existing.digest == digest ? .duplicate : .equivocation }
        votes[key, default: [:]][sender] = Vote(digest: digest, message: m)
        return .added
    }

    func vote(_ key: VoteKey, from sender: Int) -> Vote? { votes[key]?[sender] }

    /// The senders of votes for `digest` at `key`, with their messages, in sender order.
    func voters(_ key: VoteKey, digest: [UInt8]) -> [(sender: Int, message: SignedMessage)] {
        guard let byKey = votes[key] else { return [] }
        return byKey.filter { $0.value.digest == digest }.sorted { $0.key < $1.key }.map { ($0.key, $0.value.message) }
    }

    mutating func removeAll(where drop: (VoteKey) -> Bool) {
        votes = votes.filter { !drop($0.key) }
    }

    /// Stored votes per sender.
    func countBySender(into counts: inout [Int: Int]) {
        for (_, byKey) in votes { for s in byKey.keys { counts[s, default: 0] += 1 } }
    }
}

/// A set of 32-byte keys that forgets its oldest member past `capacity`
/// (deterministic: insertion order), for the verifier's caches.
struct FIFOSet: Sendable {
    let capacity: Int
    private var members: Set<[UInt8]> = []
    private var order: [[UInt8]] = []
    private var head = 0

    init(capacity: Int) { self.capacity = max(1, capacity) }

    func contains(_ k: [UInt8]) -> Bool { members.contains(k) }

    mutating func insert(_ k: [UInt8]) {
        guard members.insert(k).inserted else { return }
        if order.count < capacity {
            order.append(k)
        } else {
            members.remove(order[head])
            order[head] = k
            head = (head + 1) % capacity
        }
    }

    var count: Int { members.count }
}
