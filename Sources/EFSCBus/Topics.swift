/// The single source of truth for topic names (the contract is `topics.md`).
/// Every component builds its topics here; a test fails if source code
/// names an `efsc/v1/` topic anywhere else or one topics.md does not document.
public enum Topics {
    public static let root = "efsc/v1"

    /// The chain groups of the standard network.
    public enum Group: String, Sendable, CaseIterable {
        case identity, transaction
    }

    /// Query kinds served by chain nodes.
    public enum QueryKind: String, Sendable, CaseIterable {
        case did, template, offers, match, evidence, channel, block, tx, status, history
    }

    // Chain group topics.
    public static func tx(_ group: String) -> String { "\(root)/chain/\(group)/tx" }
    public static func pbft(_ group: String, from node: String) -> String { "\(root)/chain/\(group)/pbft/\(node)" }
    public static func pbftAll(_ group: String) -> String { "\(root)/chain/\(group)/pbft/+" }
    public static func direct(_ group: String, to node: String) -> String { "\(root)/chain/\(group)/direct/\(node)" }
    public static func sync(_ group: String, node: String) -> String { "\(root)/chain/\(group)/sync/\(node)" }
    public static func blocks(_ group: String, node: String) -> String { "\(root)/chain/\(group)/blocks/\(node)" }
    public static func blocksAll(_ group: String) -> String { "\(root)/chain/\(group)/blocks/+" }
    public static func status(_ group: String, node: String) -> String { "\(root)/chain/\(group)/status/\(node)" }
    public static func statusAll(_ group: String) -> String { "\(root)/chain/\(group)/status/+" }

    // Read-only queries: any node (shared subscription) or one node.
    public static func query(_ group: String, _ kind: String) -> String { "\(root)/query/\(group)/\(kind)" }
    public static func query(_ group: String, _ kind: String, node: String) -> String { "\(root)/query/\(group)/\(kind)/node/\(node)" }
    public static func queryShared(_ group: String) -> String { "$share/nodes-\(group)/\(root)/query/\(group)/+" }
    public static func queryForNode(_ group: String, node: String) -> String { "\(root)/query/\(group)/+/node/\(node)" }

    // Node → TCC channel control, spread over TCCs by a shared subscription.
    public static func tccControl(_ group: String) -> String { "\(root)/tcc/control/\(group)" }
    public static func tccControlShared(shareGroup: String = "tcc") -> String { "$share/\(shareGroup)/\(root)/tcc/control/+" }
    /// A TCC's retained status (channels, settlements, evidence, adaptive N).
    public static func tccStatus(_ name: String) -> String { "\(root)/tcc/status/\(name)" }

    // A channel's topic pair, per party: parties → TCC (`up`), TCC → party (`down`).
    public static func channelUp(_ channel: String, party: String) -> String { "\(root)/channel/\(channel)/party/\(party)/up" }
    public static func channelDown(_ channel: String, party: String) -> String { "\(root)/channel/\(channel)/party/\(party)/down" }
    public static func channelUpAll(shareGroup: String? = nil) -> String {
        let f = "\(root)/channel/+/party/+/up"
        return shareGroup.map { "$share/\($0)/\(f)" } ?? f
    }

    // Replies to requests (MQTT 5 response topic), one per client.
    public static func reply(clientID: String) -> String { "\(root)/reply/\(clientID)" }

    // Liveness (will messages).
    public static func presence(_ clientID: String) -> String { "\(root)/presence/\(clientID)" }

    // Whole families, for access control (`BrokerRoles`).
    public static let chainAll = "\(root)/chain/#"
    public static let queryAll = "\(root)/query/#"
    public static let tccControlAll = "\(root)/tcc/control/+"
    public static let channelDownAll = "\(root)/channel/+/party/+/down"
    public static let replyAll = "\(root)/reply/+"
    public static let presenceAll = "\(root)/presence/+"

    /// Every topic pattern with `{placeholders}`, as topics.md lists them.
    public static let catalog: [String] = [
        "efsc/v1/chain/{group}/tx",
        "efsc/v1/chain/{group}/pbft/{node}",
        "efsc/v1/chain/{group}/direct/{node}",
        "efsc/v1/chain/{group}/sync/{node}",
        "efsc/v1/chain/{group}/blocks/{node}",
        "efsc/v1/chain/{group}/status/{node}",
        "efsc/v1/query/{group}/{kind}",
        "efsc/v1/query/{group}/{kind}/node/{node}",
        "efsc/v1/tcc/control/{group}",
        "efsc/v1/tcc/status/{tcc}",
        "efsc/v1/channel/{channel}/party/{party}/up",
        "efsc/v1/channel/{channel}/party/{party}/down",
        "efsc/v1/reply/{client}",
        "efsc/v1/presence/{client}",
    ]

    /// Whether `topic` (a concrete name or a filter) fits a catalogued pattern.
    public static func isDocumented(_ topic: String) -> Bool {
        let t = TopicFilter.stripShare(topic).split(separator: "/", omittingEmptySubsequences: false)
        return catalog.contains { pattern in
            let p = pattern.split(separator: "/", omittingEmptySubsequences: false)
            if t.last == "#" {
                return t.count - 1 <= p.count && zip(p, t.dropLast()).allSatisfy { $0.0.hasPrefix("{") || $0.1 == "+" || $0.0 == $0.1 }
            }
            guard p.count == t.count else { return false }
            return zip(p, t).allSatisfy { $0.0.hasPrefix("{") || $0.1 == "+" || $0.0 == $0.1 }
        }
    }
}
