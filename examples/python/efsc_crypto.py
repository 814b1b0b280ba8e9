"""The cryptography an EFSC party needs, in plain Python (standard library only).

Written from the specifications, for clarity rather than speed or side-channel
resistance: RFC 8032 Ed25519, RFC 7748 X25519, RFC 8439 ChaCha20-Poly1305,
RFC 5869 HKDF, RFC 9180 HPKE (base mode, DHKEM(X25519, HKDF-SHA256),
HKDF-SHA256, ChaCha20-Poly1305; open only), RFC 8785 JSON canonicalization,
multibase base58btc, and the W3C Data Integrity eddsa-jcs-2022 cryptosuite.
"""

import hashlib
import hmac
import json
import math
import struct

# ---------------------------------------------------------------- base58btc

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = ""
    while n > 0:
        n, r = divmod(n, 58)
        out = _B58[r] + out
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + out


def b58decode(text: str) -> bytes:
    n = 0
    for ch in text:
        i = _B58.find(ch)
        if i < 0:
            raise ValueError(f"not base58btc: {ch!r}")
        n = n * 58 + i
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    zeros = len(text) - len(text.lstrip("1"))
    return b"\0" * zeros + body


def multibase_decode(text: str, prefix: bytes) -> bytes:
    """'z' + base58btc(multicodec prefix || key) -> key."""
    if not text.startswith("z"):
        raise ValueError("only base58btc multibase ('z…') is used by EFSC")
    raw = b58decode(text[1:])
    if not raw.startswith(prefix):
        raise ValueError(f"multicodec prefix {raw[:2].hex()} is not {prefix.hex()}")
    return raw[len(prefix):]


ED25519_PUB = bytes([0xED, 0x01])
ED25519_PRIV = bytes([0x80, 0x26])

# ------------------------------------------------------------------ Ed25519

P = 2**255 - 19
Q = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _add(a, b):
    # Extended twisted Edwards coordinates (X, Y, Z, T), a = -1.
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % P
    bb = (y1 + x1) * (y2 + x2) % P
    cc = 2 * t1 * t2 * D % P
    dd = 2 * z1 * z2 % P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _mul(s, pt):
    acc = (0, 1, 1, 0)
    while s:
        if s & 1:
            acc = _add(acc, pt)
        pt = _add(pt, pt)
        s >>= 1
    return acc


def _x_from_y(y, sign):
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P:
        return None
    if x & 1 != sign:
        x = P - x
    return x


_GY = 4 * pow(5, P - 2, P) % P
_GX = _x_from_y(_GY, 0)
BASE = (_GX, _GY, 1, _GX * _GY % P)


def _encode(pt) -> bytes:
    zi = pow(pt[2], P - 2, P)
    x, y = pt[0] * zi % P, pt[1] * zi % P
    return (y | (x & 1) << 255).to_bytes(32, "little")


def _decode(b: bytes):
    y = int.from_bytes(b, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    x = _x_from_y(y, sign)
    return None if x is None else (x, y, 1, x * y % P)


def _expand(seed: bytes):
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a = (a & ((1 << 254) - 8)) | (1 << 254)
    return a, h[32:]


def ed25519_public(seed: bytes) -> bytes:
    return _encode(_mul(_expand(seed)[0], BASE))


def ed25519_sign(seed: bytes, msg: bytes) -> bytes:
    a, prefix = _expand(seed)
    pub = _encode(_mul(a, BASE))
    r = int.from_bytes(hashlib.sha512(prefix + msg).digest(), "little") % Q
    big_r = _encode(_mul(r, BASE))
    k = int.from_bytes(hashlib.sha512(big_r + pub + msg).digest(), "little") % Q
    return big_r + ((r + k * a) % Q).to_bytes(32, "little")


def ed25519_verify(pub: bytes, msg: bytes, sig: bytes) -> bool:
    if len(sig) != 64 or len(pub) != 32:
        return False
    a, r = _decode(pub), _decode(sig[:32])
    s = int.from_bytes(sig[32:], "little")
    if a is None or r is None or s >= Q:
        return False
    k = int.from_bytes(hashlib.sha512(sig[:32] + pub + msg).digest(), "little") % Q
    lhs, rhs = _mul(s, BASE), _add(r, _mul(k, a))
    return (lhs[0] * rhs[2] - rhs[0] * lhs[2]) % P == 0 and (lhs[1] * rhs[2] - rhs[1] * lhs[2]) % P == 0


# ------------------------------------------------------------------- X25519


def x25519(scalar: bytes, u: bytes) -> bytes:
    k = bytearray(scalar)
    k[0] &= 248
    k[31] = (k[31] & 127) | 64
    k = int.from_bytes(k, "little")
    x1 = int.from_bytes(u, "little") & ((1 << 255) - 1)
    x2, z2, x3, z3, swap = 1, 0, x1, 1, 0
    for t in range(254, -1, -1):
        bit = (k >> t) & 1
        swap ^= bit
        if swap:
            x2, x3, z2, z3 = x3, x2, z3, z2
        swap = bit
        a, b = (x2 + z2) % P, (x2 - z2) % P
        aa, bb = a * a % P, b * b % P
        e = (aa - bb) % P
        c, d = (x3 + z3) % P, (x3 - z3) % P
        da, cb = d * a % P, c * b % P
        x3, z3 = (da + cb) ** 2 % P, x1 * (da - cb) ** 2 % P
        x2, z2 = aa * bb % P, e * (aa + 121665 * e) % P
    if swap:
        x2, z2 = x3, z3
    return (x2 * pow(z2, P - 2, P) % P).to_bytes(32, "little")


def x25519_secret_from_ed25519(seed: bytes) -> bytes:
    """The key-agreement secret paired with an Ed25519 seed (what did:efsc documents publish)."""
    return hashlib.sha512(seed).digest()[:32]


# -------------------------------------------------------- ChaCha20-Poly1305


def _rotl(v, c):
    return ((v << c) & 0xFFFFFFFF) | (v >> (32 - c))


def _qr(s, a, b, c, d):
    s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = _rotl(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = _rotl(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = _rotl(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = _rotl(s[b] ^ s[c], 7)


def _block(key, counter, nonce):
    init = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574, *struct.unpack("<8I", key), counter, *struct.unpack("<3I", nonce)]
    s = list(init)
    for _ in range(10):
        _qr(s, 0, 4, 8, 12); _qr(s, 1, 5, 9, 13); _qr(s, 2, 6, 10, 14); _qr(s, 3, 7, 11, 15)
        _qr(s, 0, 5, 10, 15); _qr(s, 1, 6, 11, 12); _qr(s, 2, 7, 8, 13); _qr(s, 3, 4, 9, 14)
    return struct.pack("<16I", *[(x + y) & 0xFFFFFFFF for x, y in zip(s, init)])


def _chacha20(key, counter, nonce, data):
    out = bytearray()
    for i in range(0, len(data), 64):
        ks = _block(key, counter + i // 64, nonce)
        out += bytes(x ^ y for x, y in zip(data[i:i + 64], ks))
    return bytes(out)


def _poly1305(key, msg):
    r = int.from_bytes(key[:16], "little") & 0x0FFFFFFC0FFFFFFC0FFFFFFC0FFFFFFF
    s = int.from_bytes(key[16:], "little")
    acc, p = 0, (1 << 130) - 5
    for i in range(0, len(msg), 16):
        acc = (acc + int.from_bytes(msg[i:i + 16] + b"\x01", "little")) * r % p
    return ((acc + s) & ((1 << 128) - 1)).to_bytes(16, "little")


def _pad16(b):
    return b"\0" * (-len(b) % 16)


def chacha20poly1305_open(key, nonce, aad, sealed):
    if len(sealed) < 16:
        raise ValueError("ciphertext too short")
    ct, tag = sealed[:-16], sealed[-16:]
    otk = _block(key, 0, nonce)[:32]
    mac = _poly1305(otk, aad + _pad16(aad) + ct + _pad16(ct) + struct.pack("<QQ", len(aad), len(ct)))
    if not hmac.compare_digest(mac, tag):
        raise ValueError("authentication failed")
    return _chacha20(key, 1, nonce, ct)


# --------------------------------------------------------------------- HPKE


def _extract(salt, ikm):
    return hmac.new(salt or b"\0" * 32, ikm, hashlib.sha256).digest()


def _expand_hkdf(prk, info, length):
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:length]


def _labeled_extract(suite, salt, label, ikm):
    return _extract(salt, b"HPKE-v1" + suite + label + ikm)


def _labeled_expand(suite, prk, label, info, length):
    return _expand_hkdf(prk, struct.pack(">H", length) + b"HPKE-v1" + suite + label + info, length)


def hpke_open(secret_key: bytes, enc: bytes, ciphertext: bytes, info: bytes, aad: bytes) -> bytes:
    """RFC 9180 base mode, suite (0x0020, 0x0001, 0x0003), first message."""
    kem = b"KEM" + struct.pack(">H", 0x0020)
    dh = x25519(secret_key, enc)
    pk_r = x25519(secret_key, (9).to_bytes(32, "little"))
    prk = _labeled_extract(kem, b"", b"eae_prk", dh)
    shared = _labeled_expand(kem, prk, b"shared_secret", enc + pk_r, 32)
    suite = b"HPKE" + struct.pack(">HHH", 0x0020, 0x0001, 0x0003)
    ctx = b"\0" + _labeled_extract(suite, b"", b"psk_id_hash", b"") + _labeled_extract(suite, b"", b"info_hash", info)
    secret = _labeled_extract(suite, shared, b"secret", b"")
    key = _labeled_expand(suite, secret, b"key", ctx, 32)
    nonce = _labeled_expand(suite, secret, b"base_nonce", ctx, 12)
    return chacha20poly1305_open(key, nonce, aad, ciphertext)


# ---------------------------------------------------------------------- JCS


def _es_number(x) -> str:
    """ECMAScript Number::toString, as RFC 8785 requires."""
    if isinstance(x, int):
        x = float(x) if abs(x) >= 2**53 else x
        if isinstance(x, int):
            return str(x)
    if math.isnan(x) or math.isinf(x):
        raise ValueError("NaN and Infinity have no JSON form")
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    r = repr(abs(x))
    mant, _, exp = r.partition("e")
    ip, _, fp = mant.partition(".")
    digits = ip + fp
    point = len(ip) + (int(exp) if exp else 0)
    lead = len(digits) - len(digits.lstrip("0"))
    digits = digits.strip("0")
    n, k = point - lead, len(digits)
    if k <= n <= 21:
        s = digits + "0" * (n - k)
    elif 0 < n <= 21:
        s = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        s = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        s = digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + ("+" if e > 0 else "-") + str(abs(e))
    return sign + s


def jcs(value) -> bytes:
    return _jcs(value).encode("utf-8")


def _jcs(v) -> str:
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return _es_number(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ",".join(_jcs(x) for x in v) + "]"
    if isinstance(v, dict):
        keys = sorted(v, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + _jcs(v[k]) for k in keys) + "}"
    raise TypeError(f"not JSON: {type(v).__name__}")


# ------------------------------------------------------------ eddsa-jcs-2022


def proofs_of(doc):
    p = doc.get("proof")
    return [p] if isinstance(p, dict) else list(p or [])


def _input_document(doc, proof):
    """The document a proof signs: without proofs, plus the proofs a chained proof names."""
    unsigned = {k: v for k, v in doc.items() if k != "proof"}
    prev = proof.get("previousProof")
    if prev:
        ids = [prev] if isinstance(prev, str) else prev
        unsigned["proof"] = [p for i in ids for p in proofs_of(doc) if p.get("id") == i]
        if len(unsigned["proof"]) != len(ids):
            raise ValueError("a previous proof is missing")
    return unsigned


def _signed_bytes(input_doc, config):
    return hashlib.sha256(jcs(config)).digest() + hashlib.sha256(jcs(input_doc)).digest()


def verify_proof(doc, proof, public_key: bytes) -> bool:
    """Verifies one proof of a proof set or chain."""
    if proof.get("type") != "DataIntegrityProof" or proof.get("cryptosuite") != "eddsa-jcs-2022":
        return False
    config = {k: v for k, v in proof.items() if k != "proofValue"}
    try:
        sig = b58decode(proof["proofValue"][1:])
        return ed25519_verify(public_key, _signed_bytes(_input_document(doc, proof), config), sig)
    except (KeyError, ValueError):
        return False


def add_proof(doc, seed: bytes, verification_method: str, proof_id: str, created: str):
    """Adds an eddsa-jcs-2022 proof to the document's proof set."""
    config = {
        "type": "DataIntegrityProof", "id": proof_id, "cryptosuite": "eddsa-jcs-2022", "created": created,
        "verificationMethod": verification_method, "proofPurpose": "assertionMethod", "@context": doc["@context"],
    }
    proof = dict(config, proofValue="z" + b58encode(ed25519_sign(seed, _signed_bytes(_input_document(doc, config), config))))
    out = dict(doc)
    out["proof"] = proofs_of(doc) + [proof]
    return out
