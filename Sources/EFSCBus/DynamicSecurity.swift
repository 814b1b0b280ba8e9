import EFSCCore
import Foundation

/// Why a dynamic-security command failed: the plugin's own error text,
/// the command it answered, or no answer in time.
public struct DynamicSecurityError: Error, CustomStringConvertible {
    public enum Code: String, Sendable { case refused, timeout, setup }
    public let code: Code
    public let message: String
    public var description: String { "dynamic security (\(code.rawValue)): \(message)" }
}

/// An ACL entry of a dynamic-security role.
public struct BrokerACL: Sendable, Hashable {
    public enum Kind: String, Sendable {
        case publishClientSend, publishClientReceive, subscribeLiteral, subscribePattern, unsubscribeLiteral, unsubscribePattern
    }
    public let kind: Kind
    public let topic: String
    public let allow: Bool
    public init(_ kind: Kind, _ topic: String, allow: Bool = true) {
        self.kind = kind
        self.topic = topic
        self.allow = allow
    }
    var json: JSON { ["acltype": .string(kind.rawValue), "topic": .string(topic), "priority": 0, "allow": .bool(allow)] }

    /// Publish and subscribe (receive follows the subscription) on `topic`.
    public static func readWrite(_ topic: String) -> [BrokerACL] { [.init(.publishClientSend, topic), .init(.subscribePattern, topic)] }
    public static func read(_ topic: String) -> [BrokerACL] { [.init(.subscribePattern, topic)] }
    public static func write(_ topic: String) -> [BrokerACL] { [.init(.publishClientSend, topic)] }
}

/// Mosquitto's dynamic security plugin, administered while the broker runs:
/// an admin client sends commands on `$CONTROL/dynamic-security/v1` and
/// reads the answers on `…/response`, one batch at a time. Accounts and
/// roles change without a restart; deleting an account disconnects its
/// clients at once. (Mosquitto 2.0's plugin has no `%u`/`%c` topic
/// patterns, so whatever names an account — its channel halves, its reply
/// topic — is a role of its own.)
public final class DynamicSecurity: @unchecked Sendable {
    public static let controlTopic = "$CONTROL/dynamic-security/v1"
    public static let responseTopic = "$CONTROL/dynamic-security/v1/response"

    /// The plugin's shared object, where Debian and other distributions put it.
    public static func pluginPath() -> String? {
        let dirs = ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib/mosquitto", "/usr/lib", "/usr/local/lib", "/opt/homebrew/lib"]
        return dirs.map { "\($0)/mosquitto_dynamic_security.so" }.first { FileManager.default.fileExists(atPath: $0) }
    }

    /// Writes a fresh plugin configuration holding only the admin account
    /// (`mosquitto_ctrl dynsec init`; the file is mode 600).
    public static func initialize(file: String, admin: String, password: String) throws {
        guard let ctrl = BrokerProcess.which("mosquitto_ctrl") else {
            throw DynamicSecurityError(code: .setup, message: "mosquitto_ctrl not found (apt-get install mosquitto-clients)")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: ctrl)
        p.arguments = ["dynsec", "init", file, admin, password]
        p.standardOutput = FileHandle.nullDevice
        let err = Pipe()
        p.standardError = err
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw DynamicSecurityError(code: .setup, message: "mosquitto_ctrl dynsec init \(file): \(e.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        chmod(file, 0o600)
    }

    let client: MQTTClient
    let timeout: Double
    private let lock = Lock()
    /// Answers received and not yet taken (the plugin answers batches in order).
    private var answers: [[UInt8]] = []
    private var subscribed = false

    /// `client` is connected with the admin account. Batches run one at a time.
    public init(admin client: MQTTClient, timeout: Double = 10) {
        self.client = client
        self.timeout = timeout
    }

    /// Runs commands (the plugin's JSON objects) as one batch; throws on the
    /// first that failed, naming it and the plugin's reason.
    @discardableResult
    public func execute(_ commands: [JSON]) async throws -> [JSON] {
        if !lock.withLock({ subscribed }) {
            _ = try await client.subscribe(Self.responseTopic, qos: .atLeastOnce) { [weak self] m in
                guard let self else { return }
                self.lock.withLock { self.answers.append(m.payload) }
            }
            lock.withLock { subscribed = true }
        }
        try await client.publish(Self.controlTopic, payload: try JCS.canonicalize(["commands": .array(commands)]), qos: .atLeastOnce)
        let answer: [UInt8]
        do {
            answer = try await StateWait.until("an answer on \(Self.responseTopic)", timeout: timeout, every: 0.01) { () -> StateWait.Probe<[UInt8]> in
                lock.withLock { answers.isEmpty ? .notYet(nil) : .reached(answers.removeFirst()) }
            }
        } catch let e as StateTimeout {
            throw DynamicSecurityError(code: .timeout, message: "\(e) (is the admin account's role intact?)")
        }
        guard let j = try? JSONParser.parse(answer), let rs = j["responses"]?.arrayValue else {
            throw DynamicSecurityError(code: .refused, message: "an answer that is not the plugin's JSON")
        }
        for (c, r) in zip(commands, rs) {
            if let e = r["error"]?.stringValue {
                throw DynamicSecurityError(code: .refused, message: "\(c["command"]?.stringValue ?? "?") \(c["username"]?.stringValue ?? c["rolename"]?.stringValue ?? ""): \(e)")
            }
        }
        return rs
    }

    // MARK: accounts and roles

    public func createRole(_ name: String, _ acls: [BrokerACL]) async throws {
        try await execute([["command": "createRole", "rolename": .string(name), "acls": .array(acls.map(\.json))]])
    }

    public func deleteRole(_ name: String) async throws {
        try await execute([["command": "deleteRole", "rolename": .string(name)]])
    }

    /// An account whose client id must equal its user name, with `roles`.
    public func createClient(_ username: String, password: String, roles: [String]) async throws {
        try await execute([[
            "command": "createClient", "username": .string(username), "password": .string(password), "clientid": .string(username),
            "roles": .array(roles.map { ["rolename": .string($0), "priority": 0] }),
        ]])
    }

    /// Deletes an account: the broker disconnects its clients at once and refuses it from then on.
    public func deleteClient(_ username: String) async throws {
        try await execute([["command": "deleteClient", "username": .string(username)]])
    }

    public func listClients() async throws -> [String] {
        let r = try await execute([["command": "listClients", "verbose": false]])
        return r.first?["data"]?["clients"]?.arrayValue?.compactMap { $0.stringValue ?? $0["username"]?.stringValue } ?? []
    }
}
