import BigInt
import Foundation
import Crypto

/// Ed25519 → X25519 conversion (RFC 7748 §4.1 birational map), so that a
/// did:key (which carries only an Ed25519 key) still offers a key-agreement
/// key, exactly as the did:key method specifies.
public enum KeyConversion {
    static let p: BigUInt = (BigUInt(1) << 255) - 19

    /// The Montgomery u-coordinate of an Edwards public key: u = (1 + y) / (1 − y) mod p.
    public static func x25519PublicKey(fromEd25519 pub: Ed25519PublicKey) throws -> X25519PublicKey {
        var yBytes = pub.raw
        yBytes[31] &= 0x7F  // drop the sign bit of x
        let y = BigUInt(Data(yBytes.reversed())) % p
        let one = BigUInt(1)
        let num = (one + y) % p
        let den = (one + p - y) % p
        guard den != 0 else { throw KeyError.invalidKey("Ed25519 key has no X25519 equivalent") }
        let u = (num * den.power(p - 2, modulus: p)) % p
        var le = Array(u.serialize().reversed())
        while le.count < 32 { le.append(0) }
        return try X25519PublicKey(raw: le)
    }

    /// The X25519 secret matching `x25519PublicKey(fromEd25519:)`: the first
    /// half of SHA-512(seed), which X25519 clamps itself.
    public static func x25519SecretKey(fromEd25519 secret: Ed25519SecretKey) -> X25519SecretKey {
        let h = Array(SHA512.hash(data: secret.seed))
        return try! X25519SecretKey(raw: Array(h[0..<32]))
    }
}
