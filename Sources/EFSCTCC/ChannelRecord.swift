import EFSCCore

/// A channel's state as the chain records it. It only moves forward
/// (open → closing → closed): a chain read that answers with an earlier
/// state than one already seen is an older answer overtaken by a newer one.
public enum ChannelState: String, Sendable, Comparable, CaseIterable {
    case open, closing, closed

    var rank: Int {
        switch self {
        case .open: 0
        case .closing: 1
        case .closed: 2
        }
    }

    public static func < (a: ChannelState, b: ChannelState) -> Bool { a.rank < b.rank }
}

/// The durable part of one channel: what `ChannelStore` keeps and what a
/// restarted TCC resumes from. It changes only through a persist action
/// that completed (`ChannelMachine`).
public struct ChannelRecord: Sendable, Equatable {
    public let channelId: String
    public var state: ChannelState
    /// The last sequence issued (0: none yet).
    public var lastSequence: Int
    /// The end of the last issued period (the next one starts there).
    public var lastEnd: Double?
    public var lastTscHash: String?
    /// Settlements issued since the last one that made evidence due.
    public var sinceEvidence: Int

    public init(channelId: String, state: ChannelState = .open, lastSequence: Int = 0, lastEnd: Double? = nil, lastTscHash: String? = nil, sinceEvidence: Int = 0) {
        self.channelId = channelId
        self.state = state
        self.lastSequence = lastSequence
        self.lastEnd = lastEnd
        self.lastTscHash = lastTscHash
        self.sinceEvidence = sinceEvidence
    }

    /// A stored record; nil if it is not one (a damaged store entry).
    public init?(json: JSON) {
        guard let id = json["channelId"]?.stringValue, !id.isEmpty else { return nil }
        let state = json["state"]?.stringValue.flatMap(ChannelState.init(rawValue:)) ?? .open
        let last = json["lastSequence"]?.intValue ?? 0
        let since = json["sinceEvidence"]?.intValue ?? 0
        guard last >= 0, since >= 0 else { return nil }
        self.init(
            channelId: id, state: state, lastSequence: last, lastEnd: json["lastEnd"]?.doubleValue, lastTscHash: json["lastTscHash"]?.stringValue,
            sinceEvidence: since)
    }

    public var json: JSON {
        [
            "channelId": .string(channelId), "state": .string(state.rawValue), "lastSequence": .number(Double(lastSequence)),
            "lastEnd": lastEnd.map(JSON.number) ?? .null, "lastTscHash": lastTscHash.map(JSON.string) ?? .null,
            "sinceEvidence": .number(Double(sinceEvidence)),
        ]
    }
}
