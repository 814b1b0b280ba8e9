/// MQTT quality of service levels.
public enum QoS: Int, Sendable, CaseIterable {
    case atMostOnce = 0
    case atLeastOnce = 1
    case exactlyOnce = 2
}

/// A user property (MQTT 5 name/value pair).
public struct UserProperty: Sendable, Equatable, Hashable {
    public var name: String
    public var value: String
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// The MQTT 5 properties EFSC sets or reads on PUBLISH packets.
public struct MQTTProperties: Sendable, Equatable {
    public var responseTopic: String?
    public var correlationData: [UInt8]?
    /// Seconds until the broker discards an undelivered message.
    public var messageExpiry: UInt32?
    public var contentType: String?
    public var payloadIsUTF8: Bool?
    public var userProperties: [UserProperty] = []
    /// Subscription identifiers of the subscriptions a received message matched.
    public var subscriptionIdentifiers: [UInt32] = []

    public init(
        responseTopic: String? = nil, correlationData: [UInt8]? = nil, messageExpiry: UInt32? = nil,
        contentType: String? = nil, payloadIsUTF8: Bool? = nil, userProperties: [UserProperty] = []
    ) {
        self.responseTopic = responseTopic
        self.correlationData = correlationData
        self.messageExpiry = messageExpiry
        self.contentType = contentType
        self.payloadIsUTF8 = payloadIsUTF8
        self.userProperties = userProperties
    }

    public static let none = MQTTProperties()
}

/// A received (or to-be-sent) application message.
public struct MQTTMessage: Sendable, Equatable {
    public var topic: String
    public var payload: [UInt8]
    public var qos: QoS
    public var retain: Bool
    public var properties: MQTTProperties

    public init(topic: String, payload: [UInt8], qos: QoS = .atMostOnce, retain: Bool = false, properties: MQTTProperties = .none) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties
    }

    public var payloadString: String { String(decoding: payload, as: UTF8.self) }
}

/// Why a bus operation failed. Broker reason codes are spelled out.
public enum MQTTError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalidURL(String)
    case connectionFailed(String)
    case connectionRefused(reasonCode: Int, reason: String)
    case notConnected
    case offlineQueueFull(limit: Int)
    case payloadTooLarge(bytes: Int)
    case publishRefused(reasonCode: Int, reason: String)
    case subscribeRefused(filter: String, reasonCode: Int, reason: String)
    case invalidTopic(String)
    case timeout(String)
    case disconnected(String)
    case tls(String)
    case library(String)

    public var description: String {
        switch self {
        case .invalidURL(let u): return "invalid broker URL '\(u)' (expected mqtt://HOST:PORT or mqtts://HOST:PORT)"
        case .connectionFailed(let m): return "cannot connect to the broker: \(m)"
        case .connectionRefused(let c, let r): return "broker refused the connection: \(r) (reason code 0x\(String(c, radix: 16)))"
        case .notConnected: return "not connected to the broker (publish refused: fail-fast mode)"
        case .offlineQueueFull(let l): return "offline publish queue is full (\(l) messages); the broker has been unreachable too long"
        case .payloadTooLarge(let b): return "payload too large: \(b) bytes exceeds the broker's maximum packet size"
        case .publishRefused(let c, let r): return "broker refused the publish: \(r) (reason code 0x\(String(c, radix: 16)))"
        case .subscribeRefused(let f, let c, let r): return "broker refused the subscription to '\(f)': \(r) (reason code 0x\(String(c, radix: 16)))"
        case .invalidTopic(let t): return "invalid topic '\(t)'"
        case .timeout(let w): return "timed out waiting for \(w)"
        case .disconnected(let r): return "disconnected from the broker: \(r)"
        case .tls(let m): return "TLS setup failed: \(m)"
        case .library(let m): return "libmosquitto: \(m)"
        }
    }
}

/// How a client connects. `url` is `mqtt://host:port` (plain) or
/// `mqtts://host:port` (TLS, needs `tls`).
public struct MQTTConfiguration: Sendable {
    public struct TLS: Sendable {
        public var caFile: String
        public var certFile: String?
        public var keyFile: String?
        public init(caFile: String, certFile: String? = nil, keyFile: String? = nil) {
            self.caFile = caFile
            self.certFile = certFile
            self.keyFile = keyFile
        }
    }

    public struct Will: Sendable {
        public var topic: String
        public var payload: [UInt8]
        public var qos: QoS
        public var retain: Bool
        public init(topic: String, payload: [UInt8], qos: QoS = .atLeastOnce, retain: Bool = false) {
            self.topic = topic
            self.payload = payload
            self.qos = qos
            self.retain = retain
        }
    }

    /// What `publish` does while the broker is unreachable.
    public enum OfflinePolicy: Sendable, Equatable {
        /// Throw `MQTTError.notConnected` at once.
        case failFast
        /// Keep up to `limit` publishes and send them on reconnect;
        /// beyond that, throw `MQTTError.offlineQueueFull`.
        case queue(limit: Int)
    }

    public var host: String
    public var port: Int
    public var clientID: String
    /// MQTT 5 clean start. `false` with `sessionExpiry > 0` resumes a persistent session.
    public var cleanStart: Bool = true
    /// Seconds the broker keeps the session after a disconnect (0: none).
    public var sessionExpiry: UInt32 = 0
    public var keepAlive: Int = 30
    public var username: String?
    public var password: String?
    public var tls: TLS?
    public var will: Will?
    /// Reconnect backoff: first delay, maximum delay (seconds), exponential.
    public var reconnectDelay: (initial: Int, max: Int) = (1, 30)
    public var offlinePolicy: OfflinePolicy = .queue(limit: 10_000)
    /// Messages buffered per subscription before the oldest unread are kept
    /// and new ones are counted as overflow (see `MQTTClient.overflowCount`).
    public var subscriptionBuffer: Int = 1_000_000
    /// Seconds to wait for CONNACK.
    public var connectTimeout: Double = 10

    public init(url: String, clientID: String) throws {
        var rest: Substring
        if url.hasPrefix("mqtt://") {
            rest = url.dropFirst(7)
        } else if url.hasPrefix("mqtts://") {
            rest = url.dropFirst(8)
        } else {
            throw MQTTError.invalidURL(url)
        }
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]), (1...65535).contains(port) else {
            throw MQTTError.invalidURL(url)
        }
        let host = String(rest[..<colon])
        guard !host.isEmpty else { throw MQTTError.invalidURL(url) }
        self.host = host
        self.port = port
        self.clientID = clientID
    }

    public init(host: String, port: Int, clientID: String) {
        self.host = host
        self.port = port
        self.clientID = clientID
    }
}

/// MQTT topic-filter matching (`+`, `#`, and `$share/GROUP/` prefixes).
public enum TopicFilter {
    /// The filter without a `$share/GROUP/` prefix.
    public static func stripShare(_ filter: String) -> String {
        guard filter.hasPrefix("$share/") else { return filter }
        let parts = filter.split(separator: "/", maxSplits: 2, omittingEmptySubsequences: false)
        return parts.count == 3 ? String(parts[2]) : filter
    }

    public static func matches(_ filter: String, _ topic: String) -> Bool {
        let f = stripShare(filter).split(separator: "/", omittingEmptySubsequences: false)
        let t = topic.split(separator: "/", omittingEmptySubsequences: false)
        // Wildcards at the first level do not match topics starting with '$'.
        if topic.hasPrefix("$"), let first = f.first, first == "+" || first == "#" { return false }
        var i = 0
        while i < f.count {
            if f[i] == "#" { return true }
            guard i < t.count else { return false }
            if f[i] != "+" && f[i] != t[i] { return false }
            i += 1
        }
        return i == t.count
    }

    /// A valid filter: `#` only last and alone in its level, `+` alone in its level.
    public static func isValid(_ filter: String) -> Bool {
        guard !filter.isEmpty, filter.utf8.count <= 65535, !filter.contains("\u{0}") else { return false }
        let levels = stripShare(filter).split(separator: "/", omittingEmptySubsequences: false)
        for (i, l) in levels.enumerated() {
            if l.contains("#") && (l != "#" || i != levels.count - 1) { return false }
            if l.contains("+") && l != "+" { return false }
        }
        return true
    }

    /// A valid topic name for publishing: no wildcards.
    public static func isValidTopic(_ topic: String) -> Bool {
        !topic.isEmpty && topic.utf8.count <= 65535 && !topic.contains("+") && !topic.contains("#") && !topic.contains("\u{0}")
    }
}
