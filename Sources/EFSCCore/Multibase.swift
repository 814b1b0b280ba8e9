/// Multicodec key types EFSC reads and writes, with their unsigned-varint prefixes.
public enum Multicodec: Sendable, CaseIterable {
    case ed25519Pub
    case ed25519Priv
    case x25519Pub
    case x25519Priv

    /// The varint-encoded codec prefix (ed25519-pub 0xed, ed25519-priv 0x1300,
    /// x25519-pub 0xec, x25519-priv 0x1302).
    public var prefix: [UInt8] {
        switch self {
        case .ed25519Pub: return [0xED, 0x01]
        case .ed25519Priv: return [0x80, 0x26]
        case .x25519Pub: return [0xEC, 0x01]
        case .x25519Priv: return [0x82, 0x26]
        }
    }

    public var name: String {
        switch self {
        case .ed25519Pub: return "ed25519-pub"
        case .ed25519Priv: return "ed25519-priv"
        case .x25519Pub: return "x25519-pub"
        case .x25519Priv: return "x25519-priv"
        }
    }
}

/// Why a multibase string could not be used as a key.
public enum MultibaseError: Error, Sendable, Equatable, CustomStringConvertible {
    case notBase58btc(String)
    case invalidCharacters
    case wrongCodec(expected: String)
    case wrongLength(expected: Int, got: Int)
    /// Longer than any key or signature (`WireLimits.base58Length`); not decoded.
    case tooLong(Int)

    public var description: String {
        switch self {
        case .notBase58btc(let s): return "multibase value must start with 'z' (base58btc), got '\(s.prefix(1))'"
        case .invalidCharacters: return "multibase value contains characters outside the base58btc alphabet"
        case .wrongCodec(let e): return "multibase value is not a \(e) key (wrong multicodec prefix)"
        case .wrongLength(let e, let g): return "key must be \(e) bytes, got \(g)"
        case .tooLong(let n): return "multibase value of \(n) characters is longer than \(WireLimits.base58Length + 1) (no key or signature is)"
        }
    }
}

/// Multibase (base58btc, prefix `z`) with a multicodec header.
public enum Multibase {
    public static func encode(_ codec: Multicodec, _ raw: [UInt8]) -> String {
        "z" + Base58.encode(codec.prefix + raw)
    }

    public static func encodeRaw(_ bytes: [UInt8]) -> String {
        "z" + Base58.encode(bytes)
    }

    public static func decodeRaw(_ text: String) throws(MultibaseError) -> [UInt8] {
        guard text.first == "z" else { throw .notBase58btc(String(text.prefix(8))) }
        // Checked before decoding: base58 decoding is quadratic in length.
        guard text.utf8.count <= WireLimits.base58Length + 1 else { throw .tooLong(text.utf8.count) }
        guard let b = Base58.decode(String(text.dropFirst())) else { throw .invalidCharacters }
        return b
    }

    public static func decode(_ text: String, as codec: Multicodec, length: Int = 32) throws(MultibaseError) -> [UInt8] {
        let b = try decodeRaw(text)
        guard b.count >= 2, b[0] == codec.prefix[0], b[1] == codec.prefix[1] else { throw .wrongCodec(expected: codec.name) }
        let raw = Array(b[2...])
        guard raw.count == length else { throw .wrongLength(expected: length, got: raw.count) }
        return raw
    }
}
