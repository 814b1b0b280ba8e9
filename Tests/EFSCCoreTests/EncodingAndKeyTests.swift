import Testing
@testable import EFSCCore

@Suite struct EncodingAndKeyTests {
    @Test func base58KnownValues() {
        #expect(Base58.encode(Array("Hello World!".utf8)) == "2NEpo7TZRRrLZSi2U")
        #expect(Base58.encode([0, 0, 1]) == "112")
        #expect(Base58.encode([]) == "")
        #expect(Base58.decode("2NEpo7TZRRrLZSi2U") == Array("Hello World!".utf8))
        #expect(Base58.decode("112") == [0, 0, 1])
        #expect(Base58.decode("0OIl") == nil)
        for n in [1, 2, 31, 32, 34, 64, 100] {
            let b = Digest.randomBytes(n)
            #expect(Base58.decode(Base58.encode(b), maxLength: 1000) == b)
        }
        // By default nothing longer than any key or signature is decoded (it is quadratic).
        let long = Base58.encode(Digest.randomBytes(100))
        #expect(long.utf8.count > WireLimits.base58Length && Base58.decode(long) == nil)
        #expect(Base58.decode(Base58.encode(Digest.randomBytes(64)))?.count == 64, "a signature's 88 characters are within the limit")
    }

    /// Traps on numbers from the network: a time computed from hostile
    /// values (a huge period, infinity) formats clamped, never traps.
    @Test func trapsOnNumbersFromTheNetwork_datesClamp() {
        #expect(DateTime.format(1e300) == "9999-12-31T23:59:59Z")
        #expect(DateTime.format(-1e300) == "0000-01-01T00:00:00Z")
        #expect(DateTime.format(.infinity) == "9999-12-31T23:59:59Z")
        #expect(DateTime.format(.nan) == "1970-01-01T00:00:00Z")
        #expect(DateTime.format(0) == "1970-01-01T00:00:00Z")
    }

    @Test func hexRoundTripsAndRefusesWhatIsNotHex() {
        let bytes = (0..<256).map { UInt8($0) }
        let text = Hex.encode(bytes)
        #expect(text.count == 512 && text == text.lowercased())
        #expect(Hex.decode(text) == bytes)
        #expect(Hex.decode(text.uppercased()) == bytes)
        #expect(Hex.decode("") == [])
        #expect(Hex.decode("0aF9") == [0x0A, 0xF9])
        for bad in ["0", "abc", "0g", "g0", "zz", "0 ", "é0", "0/", "0:", "0@", "0G", "`0"] { #expect(Hex.decode(bad) == nil, "\(bad)") }
        #expect(Hex.encode([UInt8]()) == "")
        // Every byte value as a digit: exactly 0-9, a-f and A-F are hex.
        let valid = Set("0123456789abcdefABCDEF".utf8)
        for c in 0...255 {
            let pair = [UInt8(c), UInt8(ascii: "0")]
            let got = pair.withUnsafeBufferPointer { Hex.decode(bytes: $0) }
            #expect((got != nil) == valid.contains(UInt8(c)), "byte \(c)")
        }
        // Raw bytes, a hash and a non-contiguous sequence encode alike.
        #expect(bytes.withUnsafeBytes { Hex.encode(raw: $0) } == text)
        #expect(Digest.sha256Hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Hex.encode(bytes.lazy.map { $0 }) == text)
    }

    @Test func multibaseErrors() {
        #expect(throws: MultibaseError.notBase58btc("u123")) { try Multibase.decodeRaw("u123") }
        #expect(throws: MultibaseError.invalidCharacters) { try Multibase.decodeRaw("z0OIl") }
        let sk = Ed25519SecretKey()
        // A secret key is not a public key: the codec prefix tells them apart.
        #expect(throws: MultibaseError.wrongCodec(expected: "ed25519-pub")) { try Multibase.decode(sk.multibase, as: .ed25519Pub) }
        let short = Multibase.encode(.ed25519Pub, [1, 2, 3])
        #expect(throws: MultibaseError.wrongLength(expected: 32, got: 3)) { try Multibase.decode(short, as: .ed25519Pub) }
    }

    @Test func multikeyPrefixes() throws {
        let sk = Ed25519SecretKey()
        #expect(sk.publicKey.multibase.hasPrefix("z6Mk"))
        #expect(sk.multibase.hasPrefix("z3u2"))
        let x = sk.derivedKeyAgreementKey()
        #expect(x.publicKey.multibase.hasPrefix("z6LS"))
        #expect(try Ed25519SecretKey(multibase: sk.multibase).publicKey == sk.publicKey)
        #expect(try X25519SecretKey(multibase: x.multibase).publicKey == x.publicKey)
    }

    @Test func signAndVerify() throws {
        let sk = Ed25519SecretKey()
        let msg = Array("settle".utf8)
        let sig = try sk.sign(msg)
        #expect(sig.count == 64)
        #expect(sk.publicKey.isValidSignature(sig, for: msg))
        #expect(!sk.publicKey.isValidSignature(sig, for: Array("settlE".utf8)))
        #expect(!Ed25519SecretKey().publicKey.isValidSignature(sig, for: msg))
        #expect(!sk.publicKey.isValidSignature(Array(sig.dropLast()), for: msg))
    }

    /// The X25519 secret derived from an Ed25519 seed matches the X25519 public
    /// key computed from the Ed25519 public key alone (RFC 7748 map).
    @Test func edwardsToMontgomeryIsConsistent() throws {
        for _ in 0..<8 {
            let sk = Ed25519SecretKey()
            let fromSecret = sk.derivedKeyAgreementKey().publicKey
            let fromPublic = try KeyConversion.x25519PublicKey(fromEd25519: sk.publicKey)
            #expect(fromSecret == fromPublic)
        }
    }

    @Test func hpkeChallengeRoundTrip() throws {
        let recipient = Ed25519SecretKey().derivedKeyAgreementKey()
        let info = Array("efsc-channel-challenge".utf8)
        let aad = Array("channel-1".utf8)
        let secret = Digest.randomBytes(32)
        let (enc, ct) = try recipient.publicKey.seal(secret, info: info, aad: aad)
        #expect(try recipient.open(encapsulatedKey: enc, ciphertext: ct, info: info, aad: aad) == secret)
        // Bound to the channel id: another aad fails, and so does another key.
        #expect(throws: KeyError.decryptionFailed) {
            try recipient.open(encapsulatedKey: enc, ciphertext: ct, info: info, aad: Array("channel-2".utf8))
        }
        #expect(throws: KeyError.decryptionFailed) {
            try X25519SecretKey().open(encapsulatedKey: enc, ciphertext: ct, info: info, aad: aad)
        }
    }

    @Test func invalidKeysAreRejected() {
        #expect(throws: KeyError.self) { try Ed25519SecretKey(seed: [1, 2, 3]) }
        #expect(throws: KeyError.self) { try Ed25519PublicKey(raw: Array(repeating: 0, count: 31)) }
        #expect(throws: (any Error).self) { try Ed25519PublicKey(multibase: "not-a-key") }
    }

    @Test func dateTimes() {
        #expect(DateTime.parse("1970-01-01T00:00:00Z") == 0)
        #expect(DateTime.parse("2023-02-24T23:36:38Z") == 1_677_281_798)
        #expect(DateTime.parse("2023-02-24T23:36:38.5Z") == 1_677_281_798.5)
        #expect(DateTime.parse("2023-02-25T01:36:38+02:00") == 1_677_281_798)
        #expect(DateTime.parse("2024-02-29T00:00:00Z") != nil)
        for bad in ["2023-02-29T00:00:00Z", "2023-13-01T00:00:00Z", "2023-01-01 00:00:00Z", "2023-01-01T00:00:00", "2023-01-01T24:00:00Z", "yesterday"] {
            #expect(DateTime.parse(bad) == nil, "\(bad)")
        }
        #expect(DateTime.format(1_677_281_798) == "2023-02-24T23:36:38Z")
        #expect(DateTime.parse(DateTime.now()) != nil)
    }
}

@Suite struct AsyncSlotsTests {
    /// At most `count` holders at once, and every waiter gets its turn.
    @Test func boundsConcurrencyAndServesEveryWaiter() async {
        let slots = AsyncSlots(3)
        let seen = Guarded((now: 0, most: 0, done: 0))
        await withTaskGroup(of: Void.self) { g in
            for _ in 0..<40 {
                g.addTask {
                    await slots.acquire()
                    seen.withLock { $0.now += 1; $0.most = max($0.most, $0.now) }
                    try? await Task.sleep(nanoseconds: 200_000)
                    seen.withLock { $0.now -= 1; $0.done += 1 }
                    slots.release()
                }
            }
        }
        let s = seen.withLock { $0 }
        #expect(s.done == 40)
        #expect((2...3).contains(s.most), "\(s.most) holders at once")
        #expect(s.now == 0)
    }
}
