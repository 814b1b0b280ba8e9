import EFSCCore

/// The access challenge of the paper's phase 1: fresh random bytes sealed
/// with HPKE (X25519, HKDF-SHA256, ChaCha20-Poly1305) to the party's
/// key-agreement key. The channel id, the party's DID and the challenge id
/// are the associated data, so an answer cannot be replayed elsewhere.
public enum ChannelAuth {
    /// HPKE `info` for every channel challenge.
    public static let info = Array("EFSC v1 channel access challenge".utf8)
    /// Bytes of random data in a challenge.
    public static let secretBytes = 32

    public static func aad(channel: String, did: String, challengeId: String) -> [UInt8] {
        Array("\(channel)|\(did)|\(challengeId)".utf8)
    }

    /// Builds a challenge message and returns the secret it hides.
    public static func challenge(to key: X25519PublicKey, channel: String, did: String, challengeId: String, tcc: String, expires: Double) throws
        -> (message: ChannelMessage, secret: [UInt8])
    {
        let secret = Digest.randomBytes(secretBytes)
        let (enc, ct) = try key.seal(secret, info: info, aad: aad(channel: channel, did: did, challengeId: challengeId))
        let m = ChannelMessage(
            .challenge, channel: channel,
            [
                "did": .string(did), "challengeId": .string(challengeId), "encapsulatedKey": .string(Base64URL.encode(enc)),
                "ciphertext": .string(Base64URL.encode(ct)), "tcc": .string(tcc), "expires": .string(DateTime.format(expires)),
            ])
        return (m, secret)
    }

    /// The party's answer to a challenge, or why it cannot answer.
    public static func answer(_ challenge: ChannelMessage, key: X25519SecretKey, did: String) throws(ChainError) -> ChannelMessage {
        guard let id = challenge["challengeId"]?.stringValue, let e = challenge["encapsulatedKey"]?.stringValue.flatMap(Base64URL.decode),
            let c = challenge["ciphertext"]?.stringValue.flatMap(Base64URL.decode)
        else { throw ChainError("malformed challenge") }
        let plain: [UInt8]
        do {
            plain = try key.open(encapsulatedKey: e, ciphertext: c, info: info, aad: aad(channel: challenge.channelId, did: did, challengeId: id))
        } catch {
            throw ChainError("cannot open the challenge with this key-agreement key")
        }
        return ChannelMessage(.answer, channel: challenge.channelId, ["did": .string(did), "challengeId": .string(id), "plaintext": .string(Base64URL.encode(plain))])
    }

    /// Constant-time comparison of the answer with the secret.
    public static func matches(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var d: UInt8 = 0
        for i in a.indices { d |= a[i] ^ b[i] }
        return d == 0
    }
}
