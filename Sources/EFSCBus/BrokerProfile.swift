import EFSCCore
import Foundation

/// Why a connection profile cannot be used.
public struct BrokerProfileError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        /// The file is missing or not a JSON object.
        case unreadable
        /// A field is missing or of the wrong type.
        case invalid
        /// Plain MQTT to a broker that is not on this host's loopback.
        case plainRemote = "plain-remote"
    }
    public let code: Code
    public let message: String
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { "connection profile (\(code.rawValue)): \(message)" }
}

/// How one account reaches the broker: its URL, account and TLS files, as
/// `efsc devnet init` and `add-party` write them (JSON, mode 600):
///
///     {"broker": "mqtts://127.0.0.1:8883", "username": "…", "password": "…",
///      "ca": "ca.crt", "cert": "alice.crt", "key": "alice.key"}
///
/// Relative paths are taken from the profile's own directory. The same
/// object (without `broker`) is the `brokerAuth` of node and TCC
/// configurations. An account's client id is its user name (the broker
/// binds them), so each account has one connection at a time.
///
/// Transport rule: `mqtt://` (plain) is accepted only to a loopback host
/// (127.0.0.0/8, ::1, localhost); a broker elsewhere needs `mqtts://`, unless
/// `insecure` is true (an `--insecure` network).
public struct BrokerProfile: Sendable, Equatable {
    public var url: String
    public var username: String?
    public var password: String?
    public var caFile: String?
    public var certFile: String?
    public var keyFile: String?
    public var insecure = false

    public init(url: String, username: String? = nil, password: String? = nil, caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil) {
        self.url = url
        self.username = username
        self.password = password
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
    }

    /// Reads `url` and the account fields of `json` (`broker` may be given
    /// separately, as node and TCC configurations do).
    public init(json: JSON, url: String? = nil, baseDirectory: String? = nil) throws(BrokerProfileError) {
        guard let u = url ?? json["broker"]?.stringValue, !u.isEmpty else { throw BrokerProfileError(.invalid, "'broker' (the broker URL) is missing") }
        func field(_ k: String) throws(BrokerProfileError) -> String? {
            guard let v = json[k] else { return nil }
            guard let s = v.stringValue, !s.isEmpty, s.utf8.count <= 4096 else { throw BrokerProfileError(.invalid, "'\(k)' must be a non-empty string") }
            return s
        }
        func path(_ k: String) throws(BrokerProfileError) -> String? {
            guard let p = try field(k) else { return nil }
            if p.hasPrefix("/") || baseDirectory == nil { return p }
            return baseDirectory! + "/" + p
        }
        self.init(url: u, username: try field("username"), password: try field("password"), caFile: try path("ca"), certFile: try path("cert"), keyFile: try path("key"))
        insecure = json["insecure"]?.boolValue ?? false
        if (certFile == nil) != (keyFile == nil) { throw BrokerProfileError(.invalid, "'cert' and 'key' go together") }
        if password != nil && username == nil { throw BrokerProfileError(.invalid, "'password' without 'username'") }
    }

    /// Loads a profile file; relative paths are from its directory.
    public static func load(_ path: String) throws(BrokerProfileError) -> BrokerProfile {
        guard let data = FileManager.default.contents(atPath: path), data.count <= 1 << 20 else {
            throw BrokerProfileError(.unreadable, "cannot read \(path)")
        }
        let j: JSON
        do { j = try JSONParser.parse([UInt8](data)) } catch { throw BrokerProfileError(.unreadable, "\(path) is not JSON: \(error)") }
        guard j.objectValue != nil else { throw BrokerProfileError(.unreadable, "\(path) is not a JSON object") }
        do {
            return try BrokerProfile(json: j, baseDirectory: (path as NSString).deletingLastPathComponent)
        } catch {
            throw BrokerProfileError(error.code, "\(path): \(error.message)")
        }
    }

    /// The profile as JSON (absolute paths), for writing.
    public var json: JSON {
        var o: JSONObject = ["broker": .string(url)]
        if let username { o["username"] = .string(username) }
        if let password { o["password"] = .string(password) }
        if let caFile { o["ca"] = .string(caFile) }
        if let certFile { o["cert"] = .string(certFile) }
        if let keyFile { o["key"] = .string(keyFile) }
        if insecure { o["insecure"] = .bool(true) }
        return .object(o)
    }

    /// The account part (`brokerAuth` of a node or TCC configuration).
    public var authJSON: JSON {
        var o = json.objectValue ?? [:]
        o["broker"] = nil
        return .object(o)
    }

    /// Whether `host` is this machine's loopback.
    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host == "[::1]" || host.hasPrefix("127.")
    }

    /// A client configuration: client id = user name when there is one
    /// (the broker requires it), else `fallbackClientID`.
    public func configuration(fallbackClientID: String) throws -> MQTTConfiguration {
        var c = try MQTTConfiguration(url: url, clientID: username ?? fallbackClientID)
        if url.hasPrefix("mqtt://") && !insecure && !Self.isLoopback(c.host) {
            throw BrokerProfileError(
                .plainRemote, "\(url): plain MQTT would leave this host unencrypted; use the broker's mqtts:// listener (or an --insecure network)")
        }
        c.username = username
        c.password = password
        if url.hasPrefix("mqtts://") {
            guard let caFile else { throw BrokerProfileError(.invalid, "\(url) needs 'ca' (the network CA certificate)") }
            c.tls = .init(caFile: caFile, certFile: certFile, keyFile: keyFile)
        }
        return c
    }
}
