#!/usr/bin/env python3
"""A replay consumer of the EFSC chain, written from topics.md alone.

History from a height (the `history` query, MQTT 5 request/response), then the
live blocks topics, in height order per group with no gap and no duplicate.
Every block is checked against the genesis node keys before it is emitted:
its hash, transactions root (RFC 6962 Merkle tree), parent link, and a commit
certificate of 2f+1 valid Ed25519 signatures over commit(view, height, hash).
Emits the block and transaction events of topics.md "Event log" (what
`efsc events --verify-only` emits) as canonical JSON lines, and writes a
cursor file after every block so a restart resumes after it.
"""

import argparse
import hashlib
import json
import os
import queue
import struct
import sys
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import efsc_crypto as c

ROOT = "efsc/v1"


class Refused(Exception):
    pass


def sha256(b):
    return hashlib.sha256(b).digest()


def merkle_root(txs):
    if not txs:
        return sha256(b"")

    def mth(leaves):
        if len(leaves) == 1:
            return leaves[0]
        k = 1
        while k << 1 < len(leaves):
            k <<= 1
        return sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:]))

    return mth([sha256(b"\x00" + t) for t in txs])


def decode_block(b):
    """topics.md `Block`: header, transactions, then the certificate."""
    i = 0

    def take(n):
        nonlocal i
        if n < 0 or i + n > len(b):
            raise Refused(f"malformed: truncated at byte {i}")
        i += n
        return b[i - n:i]

    def uint(n):
        return int.from_bytes(take(n), "big")

    if take(3) != b"EB\x01":
        raise Refused("malformed: bad magic or version")
    group = take(uint(1)).decode("utf-8", "replace")
    h = {"group": group, "height": uint(8), "parentHash": take(32), "stateRoot": take(32), "transactionsRoot": take(32),
         "proposer": uint(2), "view": uint(8), "timestamp": uint(8), "anchor": uint(8)}
    count = uint(4)
    if count > (len(b) - i) // 4:
        raise Refused("malformed: transaction count exceeds the data")
    txs = [take(uint(4)) for _ in range(count)]
    body_end = i
    cert_view, cert = 0, []
    if i < len(b):
        cert_view = uint(8)
        for _ in range(uint(2)):
            r = uint(2)
            cert.append((r, take(uint(2))))
        if i != len(b):
            raise Refused("malformed: trailing bytes")
    return h, txs, b[:body_end], cert_view, cert


def commit_bytes(group, sender, view, height, digest):
    g = group.encode()[:255]
    return b"EP\x03\x03" + bytes([len(g)]) + g + struct.pack(">HQQ", sender, view, height) + digest


def verify(raw, group, height, parent, keys):
    h, txs, body, cert_view, cert = decode_block(raw)
    if h["group"] != group:
        raise Refused(f"wrong-group: a block of group {h['group'][:40]!r}")
    if h["height"] != height:
        raise Refused(f"wrong-height: block {h['height']} where {height} was due")
    if parent is not None and h["parentHash"] != parent[0]:
        raise Refused(f"bad-parent: block {height} does not link to block {height - 1}")
    if parent is None and height == 1 and h["parentHash"] != bytes(32):
        raise Refused("bad-parent: block 1 names a parent")
    if h["transactionsRoot"] != merkle_root(txs):
        raise Refused(f"bad-transactions-root: block {height}")
    n = len(keys)
    null = not txs and h["proposer"] == n
    if null and (h["timestamp"] != 0 or h["view"] != cert_view or (parent is not None and parent[1] != h["anchor"])):
        raise Refused(f"bad-null-block: null block {height}")
    if not null and h["proposer"] >= n:
        raise Refused(f"malformed: proposer {h['proposer']} of {n}")
    digest = sha256(b"") if null else sha256(body)
    seen, valid = set(), 0
    for r, sig in cert[:n]:
        if 0 <= r < n and r not in seen:
            seen.add(r)
            if c.ed25519_verify(keys[r], commit_bytes(group, r, cert_view, height, digest), sig):
                valid += 1
    f = (n - 1) // 3
    if valid < 2 * f + 1:
        raise Refused(f"bad-certificate: block {height}: {valid} valid commit signatures, not 2f+1 = {2 * f + 1} of {n}")
    return h, txs, sha256(body), valid, null


def summary(tx):
    a = tx.get("args") if isinstance(tx.get("args"), dict) else {}
    s = {}

    def put(k, v):
        if v is not None:
            s[k] = v

    def sub(d, *path):
        for p in path:
            d = d.get(p) if isinstance(d, dict) else None
        return d

    op = tx.get("op") if isinstance(tx.get("op"), str) else ""
    if op in ("did.register", "did.update", "did.deactivate"):
        put("did", sub(a, "operation", "did") if sub(a, "operation", "did") is not None else tx.get("sender"))
        put("operation", sub(a, "operation", "operation"))
    elif op == "template.register":
        put("id", sub(a, "template", "id"))
        put("version", sub(a, "template", "version"))
    elif op == "offer.publish":
        put("offerId", a.get("offerId"))
        put("resourceType", sub(a, "computingPower", "resourceType"))
        put("unitPrice", a.get("unitPrice"))
        put("capacity", a.get("capacity"))
    elif op == "tic.record":
        put("offerId", a.get("offerId"))
        put("provider", sub(a, "tic", "credentialSubject", "providerDid"))
        put("consumer", sub(a, "tic", "credentialSubject", "consumerDid"))
    elif op == "evidence.submit":
        ids, items = a.get("channelIds"), a.get("items")
        s["evidences"] = len(ids) if isinstance(ids, list) else len(items) if isinstance(items, list) else 1
    elif op == "channel.close":
        put("channelId", a.get("channelId"))
        put("kind", a.get("kind") if a.get("kind") is not None else "unilateral")
    elif op in ("channel.challenge", "channel.finalize"):
        put("channelId", a.get("channelId"))
    else:
        s["keys"] = sorted(a)
    return s


def events(h, txs, block_hash, valid, null):
    out = [{"event": "block", "group": h["group"], "height": h["height"], "hash": block_hash.hex(), "parentHash": h["parentHash"].hex(),
            "stateRoot": h["stateRoot"].hex(), "transactionsRoot": h["transactionsRoot"].hex(), "timestamp": h["timestamp"],
            "proposer": h["proposer"], "view": h["view"], "anchor": h["anchor"], "transactions": len(txs), "signatures": valid, "null": null}]
    for i, t in enumerate(txs):
        try:
            tx = json.loads(t)
        except ValueError:
            tx = None
        tx = tx if isinstance(tx, dict) else {}
        e = {"event": "transaction", "group": h["group"], "height": h["height"], "index": i, "txHash": sha256(t).hex()}
        if isinstance(tx.get("sender"), str):
            e["sender"] = tx["sender"]
        if isinstance(tx.get("op"), str):
            e["op"] = tx["op"]
        if isinstance(tx.get("nonce"), (int, float)) and not isinstance(tx.get("nonce"), bool):
            e["nonce"] = tx["nonce"]
        e["args"] = summary(tx)
        out.append(e)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", required=True, help="connection profile (JSON): a devnet's client.json or parties/NAME.json")
    ap.add_argument("--genesis", required=True, help="network.json: the node keys that certify blocks")
    ap.add_argument("--group", action="append", help="identity or transaction (repeatable; default both)")
    ap.add_argument("--from", dest="start", type=int, default=1)
    ap.add_argument("--until", type=int, default=None, help="last height (default: the committed height at start)")
    ap.add_argument("--follow", action="store_true")
    ap.add_argument("--cursor", default=None)
    ap.add_argument("--timeout", type=float, default=30)
    a = ap.parse_args()

    genesis = json.load(open(a.genesis))
    keys = [c.multibase_decode(n["publicKeyMultibase"], c.ED25519_PUB) for n in genesis["nodes"]]
    groups = [g for g in ("identity", "transaction") if g in (a.group or ["identity", "transaction"])]
    cursor = json.load(open(a.cursor)) if a.cursor and os.path.exists(a.cursor) else {}
    pos = {}
    for g in groups:
        cg = cursor.get(g)
        pos[g] = {"next": cg["height"] + 1, "parent": (bytes.fromhex(cg["hash"]), cg["anchor"])} if cg else {"next": a.start, "parent": None}

    profile = json.load(open(a.profile))
    base = os.path.dirname(os.path.abspath(a.profile))
    path = lambda p: p if p is None or os.path.isabs(p) else os.path.join(base, p)
    client_id = profile.get("username") or "py-replay-" + uuid.uuid4().hex[:8]
    reply_topic = f"{ROOT}/reply/{client_id}"
    scheme, rest = profile["broker"].split("://", 1)
    host, port = rest.split("/", 1)[0].rsplit(":", 1)
    inbox, live = queue.Queue(), queue.Queue()
    cl = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5)

    def on_message(_c, _u, m):
        (inbox if m.topic == reply_topic else live).put(m)

    cl.on_message = on_message
    if profile.get("username"):
        cl.username_pw_set(profile["username"], profile.get("password"))
    if scheme == "mqtts":
        cl.tls_set(ca_certs=path(profile["ca"]), certfile=path(profile.get("cert")), keyfile=path(profile.get("key")))
    cl.connect(host, int(port))
    cl.subscribe([(reply_topic, 1)] + [(f"{ROOT}/chain/{g}/blocks/+", 1) for g in groups])
    cl.loop_start()

    def history(g, start):
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = reply_topic
        corr = uuid.uuid4().bytes
        props.CorrelationData = corr
        cl.publish(f"{ROOT}/query/{g}/history", c.jcs({"kind": "history", "params": {"from": start, "max": 256}}), qos=1, properties=props)
        deadline = time.time() + a.timeout
        while time.time() < deadline:
            try:
                m = inbox.get(timeout=0.5)
            except queue.Empty:
                continue
            if getattr(m.properties, "CorrelationData", None) != corr:
                continue
            p = m.payload
            if p[:3] == b"EH\x01":
                head, count = struct.unpack(">QI", p[3:15])
                i, blocks = 15, []
                for _ in range(count):
                    (n,) = struct.unpack(">I", p[i:i + 4])
                    blocks.append(p[i + 4:i + 4 + n])
                    i += 4 + n
                return head, blocks
            err = json.loads(p)
            if err.get("code") == "not-committed":
                return err.get("height", start - 1), []
            raise SystemExit(f"error: history of {g} from {start}: {err.get('code')}: {err.get('error')}")
        raise SystemExit(f"error: no history reply for {g} from {start} within {a.timeout} s")

    def take(g, raw):
        p = pos[g]
        h, txs, bh, valid, null = verify(raw, g, p["next"], p["parent"], keys)
        for e in events(h, txs, bh, valid, null):
            sys.stdout.write(c.jcs(e).decode() + "\n")
        sys.stdout.flush()
        p["parent"] = (bh, h["anchor"])
        p["next"] += 1
        if a.cursor:
            cursor[g] = {"height": h["height"], "hash": bh.hex(), "anchor": h["anchor"]}
            with open(a.cursor + ".tmp", "w") as f:
                json.dump(cursor, f)
            os.replace(a.cursor + ".tmp", a.cursor)

    end, held = {}, {g: {} for g in groups}
    while True:
        for g in groups:
            p = pos[g]
            while True:
                limit = a.until if a.until is not None else (float("inf") if a.follow else end.get(g))
                if limit is not None and p["next"] > limit:
                    break
                copies = held[g].pop(p["next"], [])
                taken = False
                for raw in copies:
                    try:
                        take(g, raw)
                        taken = True
                        break
                    except Refused as r:
                        print(f"refused a live block: {r}", file=sys.stderr)
                if taken:
                    continue
                head, blocks = history(g, p["next"])
                end.setdefault(g, head)
                if not blocks:
                    break
                for raw in blocks:
                    if a.until is not None and p["next"] > a.until:
                        break
                    try:
                        take(g, raw)
                    except Refused as r:
                        print(f"refused a history block: {r}", file=sys.stderr)
                        break
        done = all(p["next"] > (a.until if a.until is not None else float("inf") if a.follow else end.get(g, 0)) for g, p in pos.items())
        if done:
            break
        try:
            m = live.get(timeout=2)
            b = m.payload
            if b[:3] == b"EB\x01":
                gl = b[3]
                g = b[4:4 + gl].decode("utf-8", "replace")
                (height,) = struct.unpack(">Q", b[4 + gl:12 + gl])
                if g in pos and pos[g]["next"] <= height < pos[g]["next"] + 1024 and len(held[g].get(height, [])) < 8:
                    held[g].setdefault(height, []).append(b)
        except queue.Empty:
            pass
    cl.loop_stop()
    cl.disconnect()


if __name__ == "__main__":
    main()
