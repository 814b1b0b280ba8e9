import Crypto

// The key structs are immutable wrappers around swift-crypto values, which are
// safe to share across threads but not annotated Sendable; hence @unchecked.
import Foundation

/// Why a key or signature was refused.
public enum KeyError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalidKey(String)
    case signingFailed(String)
    case decryptionFailed

    public var description: String {
        switch self {
        case .invalidKey(let m): return "invalid key: \(m)"
        case .signingFailed(let m): return "signing failed: \(m)"
        case .decryptionFailed: return "decryption failed: wrong key or tampered ciphertext"
        }
    }
}

/// An Ed25519 verification key (Multikey `publicKeyMultibase`, prefix 0xed01).
public struct Ed25519PublicKey: @unchecked Sendable, Hashable {
    public let raw: [UInt8]
    let key: Curve25519.Signing.PublicKey

    public init(raw: [UInt8]) throws(KeyError) {
        guard raw.count == 32, let k = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) else {
            throw .invalidKey("an Ed25519 public key is 32 bytes")
        }
        self.raw = raw
        self.key = k
    }

    public init(multibase: String) throws {
        try self.init(raw: Multibase.decode(multibase, as: .ed25519Pub))
    }

    public var multibase: String { Multibase.encode(.ed25519Pub, raw) }

    public func isValidSignature(_ signature: [UInt8], for message: [UInt8]) -> Bool {
        guard signature.count == 64 else { return false }
        return key.isValidSignature(signature, for: message)
    }

    public static func == (a: Self, b: Self) -> Bool { a.raw == b.raw }
    public func hash(into h: inout Hasher) { h.combine(raw) }
}

/// An Ed25519 signing key held by a party, TCC or node
/// (`secretKeyMultibase`, prefix 0x8026 over the 32-byte seed).
public struct Ed25519SecretKey: @unchecked Sendable {
    let key: Curve25519.Signing.PrivateKey
    public let publicKey: Ed25519PublicKey

    public init() {
        let k = Curve25519.Signing.PrivateKey()
        self.key = k
        self.publicKey = try! Ed25519PublicKey(raw: Array(k.publicKey.rawRepresentation))
    }

    public init(seed: [UInt8]) throws(KeyError) {
        guard seed.count == 32, let k = try? Curve25519.Signing.PrivateKey(rawRepresentation: seed) else {
            throw .invalidKey("an Ed25519 secret key seed is 32 bytes")
        }
        self.key = k
        self.publicKey = try Ed25519PublicKey(raw: Array(k.publicKey.rawRepresentation))
    }

    public init(multibase: String) throws {
        try self.init(seed: Multibase.decode(multibase, as: .ed25519Priv))
    }

    public var seed: [UInt8] { Array(key.rawRepresentation) }
    public var multibase: String { Multibase.encode(.ed25519Priv, seed) }

    public func sign(_ message: [UInt8]) throws(KeyError) -> [UInt8] {
        do {
            return Array(try key.signature(for: message))
        } catch {
            throw .signingFailed("\(error)")
        }
    }

    /// The X25519 key-agreement key that pairs with this signing key
    /// (RFC 7748 birational map), so a party backs up one secret.
    public func derivedKeyAgreementKey() -> X25519SecretKey {
        KeyConversion.x25519SecretKey(fromEd25519: self)
    }
}

/// An X25519 key-agreement public key (`publicKeyMultibase`, prefix 0xec01),
/// used to encrypt channel-access challenges to a DID's holder.
public struct X25519PublicKey: @unchecked Sendable, Hashable {
    public let raw: [UInt8]
    let key: Curve25519.KeyAgreement.PublicKey

    public init(raw: [UInt8]) throws(KeyError) {
        guard raw.count == 32, let k = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: raw) else {
            throw .invalidKey("an X25519 public key is 32 bytes")
        }
        self.raw = raw
        self.key = k
    }

    public init(multibase: String) throws {
        try self.init(raw: Multibase.decode(multibase, as: .x25519Pub))
    }

    public var multibase: String { Multibase.encode(.x25519Pub, raw) }

    /// HPKE (RFC 9180) base-mode seal: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
    /// ChaCha20-Poly1305. Returns the encapsulated key and the ciphertext.
    public func seal(_ plaintext: [UInt8], info: [UInt8], aad: [UInt8]) throws -> (encapsulatedKey: [UInt8], ciphertext: [UInt8]) {
        var sender = try HPKE.Sender(recipientKey: key, ciphersuite: .Curve25519_SHA256_ChachaPoly, info: Data(info))
        let ct = try sender.seal(plaintext, authenticating: aad)
        return (Array(sender.encapsulatedKey), Array(ct))
    }

    public static func == (a: Self, b: Self) -> Bool { a.raw == b.raw }
    public func hash(into h: inout Hasher) { h.combine(raw) }
}

/// An X25519 key-agreement secret key (`secretKeyMultibase`, prefix 0x8226).
public struct X25519SecretKey: @unchecked Sendable {
    let key: Curve25519.KeyAgreement.PrivateKey
    public let publicKey: X25519PublicKey

    public init() {
        let k = Curve25519.KeyAgreement.PrivateKey()
        self.key = k
        self.publicKey = try! X25519PublicKey(raw: Array(k.publicKey.rawRepresentation))
    }

    public init(raw: [UInt8]) throws(KeyError) {
        guard raw.count == 32, let k = try? Curve25519.KeyAgreement.PrivateKey(rawRepresentation: raw) else {
            throw .invalidKey("an X25519 secret key is 32 bytes")
        }
        self.key = k
        self.publicKey = try X25519PublicKey(raw: Array(k.publicKey.rawRepresentation))
    }

    public init(multibase: String) throws {
        try self.init(raw: Multibase.decode(multibase, as: .x25519Priv))
    }

    public var raw: [UInt8] { Array(key.rawRepresentation) }
    public var multibase: String { Multibase.encode(.x25519Priv, raw) }

    /// Opens what `X25519PublicKey.seal` produced for this key.
    public func open(encapsulatedKey: [UInt8], ciphertext: [UInt8], info: [UInt8], aad: [UInt8]) throws(KeyError) -> [UInt8] {
        do {
            var r = try HPKE.Recipient(
                privateKey: key, ciphersuite: .Curve25519_SHA256_ChachaPoly, info: Data(info),
                encapsulatedKey: Data(encapsulatedKey))
            return Array(try r.open(ciphertext, authenticating: aad))
        } catch {
            throw .decryptionFailed
        }
    }
}

/// SHA-256 helpers (hashes of canonical JSON are the credential hashes that go on chain).
public enum Digest {
    public static func sha256(_ bytes: [UInt8]) -> [UInt8] {
        Array(SHA256.hash(data: bytes))
    }

    /// SHA-256 of one byte followed by `bytes`, without copying them.
    public static func sha256(prefix: UInt8, _ bytes: [UInt8]) -> [UInt8] {
        var h = SHA256()
        withUnsafeBytes(of: prefix) { h.update(bufferPointer: $0) }
        bytes.withUnsafeBytes { h.update(bufferPointer: $0) }
        return Array(h.finalize())
    }

    public static func sha256Hex(_ bytes: [UInt8]) -> String {
        SHA256.hash(data: bytes).withUnsafeBytes { Hex.encode(raw: $0) }
    }

    /// Cryptographically secure random bytes.
    public static func randomBytes(_ n: Int) -> [UInt8] {
        // Eight bytes per draw: each draw of the system generator is a syscall.
        var g = SystemRandomNumberGenerator()
        var out: [UInt8] = []
        out.reserveCapacity(n + 8)
        while out.count < n {
            withUnsafeBytes(of: g.next()) { out.append(contentsOf: $0) }
        }
        out.removeLast(out.count - n)
        return out
    }
}
