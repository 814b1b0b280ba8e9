#!/usr/bin/env python3
"""An EFSC consumer in Python: joins a transaction channel, answers the TCC's
DID challenge, and countersigns the provider's settlements — written only
from topics.md, with paho-mqtt and the standard library.

    consumer.py --profile parties/NAME.json --identity consumer.json --tic tic.json \
                --channel ch-… --count 10 [--out DIR] [--timeout 60]

--profile is the connection profile `efsc devnet add-party` wrote for this
party (broker URL, user name = client id, password, CA, client certificate
and key; TLS for mqtts://). Without it, --broker HOST:PORT connects
anonymously (an --insecure network only).

identity.json is what `efsc did create` prints (did, verificationMethod,
secretKeyMultibase); tic.json the issued TIC (its claim holds the terms).
Every TSC received is checked (TCC proof chained to both proofs, by the TCC
that admitted us) and written to DIR/<sequence>.json. Prints one JSON line
at the end: {"channelId", "countersigned", "lastSequence", "refused"}.
Exit status: 0 when --count TSCs arrived, 1 otherwise.
"""

import argparse
import base64
import calendar
import json
import os
import queue
import sys
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import efsc_crypto as c

ROOT = "efsc/v1"
HPKE_INFO = b"EFSC v1 channel access challenge"


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64url_encode(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def parse_time(s):
    return calendar.timegm(time.strptime(s.replace("Z", "")[:19], "%Y-%m-%dT%H:%M:%S"))


class Terms:
    """The TIC's settlement terms (topics.md, "The channel protocol", step 5)."""

    def __init__(self, tic, channel):
        claim = tic["credentialSubject"]
        self.channel, self.provider, self.consumer = channel, claim["providerDid"], claim["consumerDid"]
        self.units = claim["computingPower"].get("units", 1)
        self.unit_price = claim["unitPrice"]
        self.table = claim.get("priceTable", [])
        self.factor = claim.get("incentiveFactor", 1)
        self.period = claim["settlementStrategy"]["period"]
        self.encryption = claim["encryptionMethod"]

    def fee(self, usage, start):
        hour = int(start % 86400 // 3600)
        price = next((b["unitPrice"] for b in self.table if b["fromHour"] <= hour < b["toHour"]), self.unit_price)
        return int(usage * price * self.factor * 1e6 + 0.5) / 1e6

    def check(self, claim, last_seq, last_end):
        if claim["channelId"] != self.channel or claim["providerDid"] != self.provider or claim["consumerDid"] != self.consumer:
            return "claim is for another channel or other parties"
        if claim["sequence"] != last_seq + 1:
            return f"sequence {claim['sequence']} is not {last_seq + 1}"
        start, end = parse_time(claim["start"]), parse_time(claim["end"])
        if abs(end - start - self.period) > 0.001 or (last_end is not None and abs(start - last_end) > 0.001):
            return "period boundaries do not follow the TIC"
        if end > time.time() + 30:
            return "the period ends in the future"
        if claim["usage"] > self.units * self.period / 3600 + 1e-9:
            return "usage exceeds the units bought"
        if abs(claim["fee"] - self.fee(claim["usage"], start)) > 1e-6:
            return f"fee {claim['fee']} is not usage × price ({self.fee(claim['usage'], start)})"
        if claim["encryptionMethod"] != self.encryption:
            return "encryption method differs from the TIC's"
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default=None, help="connection profile (JSON) from `efsc devnet add-party`")
    ap.add_argument("--broker", default="127.0.0.1:1883", help="HOST:PORT of an anonymous broker (without --profile)")
    ap.add_argument("--identity", required=True)
    ap.add_argument("--tic", required=True)
    ap.add_argument("--channel", required=True)
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--out", default=None)
    ap.add_argument("--timeout", type=float, default=60)
    a = ap.parse_args()

    me = json.load(open(a.identity))
    seed = c.multibase_decode(me["secretKeyMultibase"], c.ED25519_PRIV)
    did, vm = me["did"], me.get("verificationMethod", me["did"] + "#key-1")
    ka_secret = c.x25519_secret_from_ed25519(seed)
    terms = Terms(json.load(open(a.tic)), a.channel)
    if terms.consumer != did:
        sys.exit(f"error: {did} is not the consumer of this TIC")
    party = did.split(":")[-1]
    up = f"{ROOT}/channel/{a.channel}/party/{party}/up"
    down = f"{ROOT}/channel/{a.channel}/party/{party}/down"
    profile = json.load(open(a.profile)) if a.profile else None
    # A secured broker binds the client id to the account: one connection per account.
    client_id = profile["username"] if profile and profile.get("username") else "py-" + uuid.uuid4().hex[:10]
    reply_topic = f"{ROOT}/reply/{client_id}"
    if a.out:
        os.makedirs(a.out, exist_ok=True)

    inbox = queue.Queue()
    url = profile["broker"] if profile else "mqtt://" + a.broker
    scheme, rest = url.split("://", 1)
    host, port = rest.split("/", 1)[0].rsplit(":", 1)
    cl = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5)
    cl.on_message = lambda _c, _u, m: inbox.put(m)
    if profile and profile.get("username"):
        cl.username_pw_set(profile["username"], profile.get("password"))
    if scheme == "mqtts":
        cl.tls_set(ca_certs=profile["ca"], certfile=profile.get("cert"), keyfile=profile.get("key"))
    elif host not in ("127.0.0.1", "localhost", "::1") and not (profile or {}).get("insecure"):
        sys.exit(f"error: {url}: plain MQTT would leave this host unencrypted; use the broker's mqtts:// listener")
    cl.connect(host, int(port))
    cl.subscribe([(down, 1), (reply_topic, 1)])
    cl.loop_start()

    def send(kind, **fields):
        cl.publish(up, json.dumps(dict(fields, type=kind, channelId=a.channel)), qos=1)

    keys = {}

    def resolve(d):
        """did query on the identity chain (request/response with correlation data)."""
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = reply_topic
        corr = os.urandom(16)
        props.CorrelationData = corr
        cl.publish(f"{ROOT}/query/identity/did", json.dumps({"kind": "did", "params": {"did": d}}), qos=1, properties=props)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                m = inbox.get(timeout=0.5)
            except queue.Empty:
                continue
            if m.topic != reply_topic:
                inbox.put(m)
                time.sleep(0.01)
                continue
            if getattr(m.properties, "CorrelationData", None) != corr:
                continue
            r = json.loads(m.payload)
            if not r.get("ok"):
                raise RuntimeError(r.get("error"))
            for method in r["result"]["didDocument"]["verificationMethod"]:
                if method["publicKeyMultibase"].startswith("z6Mk"):
                    keys[method["id"]] = c.multibase_decode(method["publicKeyMultibase"], c.ED25519_PUB)
            return
        raise RuntimeError(f"no answer resolving {d}")

    resolve(terms.provider)
    tcc, last_seq, last_end, done, refused, admitted = None, 0, None, 0, [], False
    hello_at = 0
    deadline = time.time() + a.timeout
    while time.time() < deadline and done < a.count:
        if not admitted and time.time() - hello_at > 1:
            send("hello", did=did)
            hello_at = time.time()
        try:
            m = inbox.get(timeout=0.2)
        except queue.Empty:
            continue
        if m.topic != down:
            continue
        msg = json.loads(m.payload)
        kind = msg.get("type")
        if kind == "challenge" and msg.get("did") == did and not admitted:
            aad = f"{a.channel}|{did}|{msg['challengeId']}".encode()
            plain = c.hpke_open(ka_secret, b64url_decode(msg["encapsulatedKey"]), b64url_decode(msg["ciphertext"]), HPKE_INFO, aad)
            send("answer", did=did, challengeId=msg["challengeId"], plaintext=b64url_encode(plain))
        elif kind == "admitted" and msg.get("did") == did:
            admitted, tcc = True, msg["tcc"]
            resolve(tcc)
            if msg.get("sequence", 0) > last_seq:
                last_seq = msg["sequence"]
                last_end = parse_time(msg["lastEnd"]) if msg.get("lastEnd") else None
        elif kind == "propose":
            vc = msg["credential"]
            proofs = c.proofs_of(vc)
            why = terms.check(vc["credentialSubject"], last_seq, last_end)
            if why is None and (vc.get("issuer") != tcc or len(proofs) != 1):
                why = "not a proposal for this channel's TCC"
            if why is None and not c.verify_proof(vc, proofs[0], keys.get(proofs[0]["verificationMethod"], b"")):
                why = "the provider's proof does not verify"
            if why:
                refused.append(why)
                continue
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            signed = c.add_proof(vc, seed, vm, "urn:efsc:proof:consumer", now)
            send("countersign", sequence=vc["credentialSubject"]["sequence"], credential=signed)
        elif kind == "tsc":
            vc = msg["credential"]
            seq = vc["credentialSubject"]["sequence"]
            tp = next((p for p in c.proofs_of(vc) if p.get("id") == "urn:efsc:proof:tcc"), None)
            if seq != last_seq + 1 or tp is None or vc.get("issuer") != tcc or sorted(tp.get("previousProof", [])) != ["urn:efsc:proof:consumer", "urn:efsc:proof:provider"]:
                refused.append(f"TSC {seq} is not the next one from our TCC")
                continue
            if not c.verify_proof(vc, tp, keys.get(tp.get("verificationMethod"), b"")):
                refused.append(f"TSC {seq}: the TCC's proof does not verify")
                continue
            if c.hashlib.sha256(c.jcs(vc)).hexdigest() != msg.get("tscHash"):
                refused.append(f"TSC {seq}: tscHash does not match")
                continue
            if a.out:
                with open(os.path.join(a.out, f"{seq:08d}.json"), "w") as f:
                    json.dump(vc, f)
                    f.flush()
                    os.fsync(f.fileno())
            last_seq, last_end, done = seq, parse_time(vc["credentialSubject"]["end"]), done + 1
        elif kind == "error":
            refused.append(f"{msg.get('code')}: {msg.get('error')}")
            if msg.get("code") == "not-admitted":
                admitted = False
    cl.loop_stop()
    cl.disconnect()
    print(json.dumps({"channelId": a.channel, "countersigned": done, "lastSequence": last_seq, "refused": refused}))
    sys.exit(0 if done >= a.count else 1)


if __name__ == "__main__":
    main()
