import EFSCBus
import EFSCCore
import Foundation

/// One message on a channel topic (`ChannelMessage` in topics.md): JSON with
/// a `type` and the channel id, plus fields that depend on the type.
public struct ChannelMessage: Sendable {
    /// Every message type of the channel protocol.
    public enum Kind: String, Sendable, CaseIterable {
        case hello, challenge, answer, admitted, propose, countersign, tsc, close, closed, error
    }

    public var kind: Kind
    public var channelId: String
    public var fields: JSONObject

    /// Largest channel message accepted (bytes); larger ones get an error reply.
    public static let maxBytes = 64 * 1024

    public init(_ kind: Kind, channel: String, _ fields: JSONObject = [:]) {
        self.kind = kind
        self.channelId = channel
        self.fields = fields
    }

    public subscript(key: String) -> JSON? { fields[key] }

    public var json: JSON {
        var o = fields
        o["type"] = .string(kind.rawValue)
        o["channelId"] = .string(channelId)
        return .object(o)
    }

    public var bytes: [UInt8] { (try? JCS.canonicalize(json)) ?? [] }

    /// Parses a payload; the error names what is wrong with it.
    public init(bytes: [UInt8]) throws(ChainError) {
        guard bytes.count <= Self.maxBytes else { throw ChainError("channel message of \(bytes.count) bytes exceeds the \(Self.maxBytes)-byte limit") }
        let j: JSON
        do { j = try JSONParser.parse(bytes) } catch { throw ChainError("malformed channel message: \(error)") }
        guard var o = j.objectValue else { throw ChainError("a channel message must be a JSON object") }
        guard let t = o["type"]?.stringValue else { throw ChainError("channel message has no type") }
        guard let k = Kind(rawValue: t) else { throw ChainError("unknown channel message type '\(t)'") }
        guard let c = o["channelId"]?.stringValue, !c.isEmpty else { throw ChainError("channel message has no channelId") }
        o["type"] = nil
        o["channelId"] = nil
        self.init(k, channel: c, o)
    }

    public static func error(_ channel: String, _ message: String, code: String, sequence: Int? = nil) -> ChannelMessage {
        var f: JSONObject = ["error": .string(message), "code": .string(code)]
        if let sequence { f["sequence"] = .number(Double(sequence)) }
        return ChannelMessage(.error, channel: channel, f)
    }
}

/// The broker-level name of a party in channel topics: the last segment of
/// its DID (for did:efsc, the self-certifying id), which is also the broker
/// user name a party gets under `secure.conf`.
public enum PartyName {
    public static func of(_ did: String) -> String {
        // Called for every channel message: no array of components.
        guard let i = did.utf8.lastIndex(of: UInt8(ascii: ":")) else { return did }
        return String(did[did.utf8.index(after: i)...])
    }
}

/// base64url without padding (RFC 4648 §5), as topics.md specifies for binary fields.
public enum Base64URL {
    public static func encode(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    public static func decode(_ text: String) -> [UInt8]? {
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.count % 4 != 0 { s += "=" }
        return Data(base64Encoded: s).map(Array.init)
    }
}
