"""Damaged journals, for tests/field/test_corrupt.py and the reliability
scenario 40-corrupt-journal: a real journal (part delivered to ferry-sink,
part pending), bytes flipped in a chosen kind of LMDB page, then verify,
salvage and a replay to the sink, with an independent oracle of which events
lived on the damaged pages. Python 3 standard library only; every wait is
bounded; nothing asserts on time.

The oracle reads data.mdb itself (LMDB 0.9 layout, 64-bit little-endian:
page header <QHHHH, nodes <HHHH + key + data, meta after the header) and
walks the live trees from the newest meta page, so it knows for each page
what it is and which events only it holds."""
import json
import os
import random
import signal
import struct
import subprocess
import time
import urllib.request

P_BRANCH, P_LEAF, P_OVERFLOW, P_META = 0x01, 0x02, 0x04, 0x08
F_BIGDATA, F_SUBDATA = 0x01, 0x02

KINDS = ["meta", "main", "events-branch", "events-leaf", "overflow", "cursors", "free", "tail"]


class Bins:
    def __init__(self, build):
        self.record = os.path.join(build, "recorder", "ferry-record")
        self.replay = os.path.join(build, "replayer", "ferry-replay")
        self.journal = os.path.join(build, "tools", "ferry-journal")
        self.sink = os.path.join(build, "tools", "ferry-sink")
        self.gen = os.path.join(build, "tools", "ferry-gen")

    @classmethod
    def from_env(cls):
        b = cls.__new__(cls)
        b.record = os.environ.get("FERRY_RECORD", "ferry-record")
        b.replay = os.environ.get("FERRY_REPLAY", "ferry-replay")
        b.journal = os.environ.get("FERRY_JOURNAL_TOOL", "ferry-journal")
        b.sink = os.environ.get("FERRY_SINK", "ferry-sink")
        b.gen = os.environ.get("FERRY_GEN") or os.path.join(os.path.dirname(b.sink), "ferry-gen")
        return b


# ---- the oracle: live pages of data.mdb --------------------------------------

def _nodes(d, base):
    lower = struct.unpack_from("<H", d, base + 12)[0]
    for i in range((lower - 16) // 2):
        off = struct.unpack_from("<H", d, base + 16 + 2 * i)[0]
        lo, hi, fl, ks = struct.unpack_from("<HHHH", d, base + off)
        key = d[base + off + 8:base + off + 8 + ks]
        yield lo, hi, fl, key, base + off + 8 + ks


def page_map(path):
    """{pgno: (kind, db, seqs)} for every live page, plus 'psize', 'pages'."""
    with open(path, "rb") as f:
        d = f.read()
    psize = struct.unpack_from("<I", d, 40)[0]
    metas = []
    for m in (0, 1):
        b = m * psize
        txn = struct.unpack_from("<Q", d, b + 144)[0]
        metas.append((txn, m))
    newest = max(metas)[1]
    mb = newest * psize
    out = {0: ("meta", None, []), 1: ("meta", None, []), "psize": psize, "pages": len(d) // psize,
           "newest_meta": newest}

    def walk(pg, depth, want, db):
        base = pg * psize
        if depth < want:
            out[pg] = ("branch", db, [])
            for lo, hi, fl, key, _ in _nodes(d, base):
                walk(lo | hi << 16 | fl << 32, depth + 1, want, db)
            return
        seqs = []
        out[pg] = ("leaf", db, seqs)
        for lo, hi, fl, key, dpos in _nodes(d, base):
            size = lo | hi << 16
            if db == "main" and fl & F_SUBDATA:
                depth_, = struct.unpack_from("<H", d, dpos + 6)
                root, = struct.unpack_from("<Q", d, dpos + 40)
                if root != (1 << 64) - 1:
                    walk(root, 0, depth_ - 1, key.decode())
                continue
            if db == "events" and len(key) == 8:
                seqs.append(struct.unpack(">Q", key)[0])
            if fl & F_BIGDATA:
                op, = struct.unpack_from("<Q", d, dpos)
                n, = struct.unpack_from("<I", d, op * psize + 12)
                s = [struct.unpack(">Q", key)[0]] if db == "events" else []
                for i in range(n):
                    out[op + i] = ("overflow", db, s)

    depth, = struct.unpack_from("<H", d, mb + 88 + 6)
    root, = struct.unpack_from("<Q", d, mb + 88 + 40)
    walk(root, 0, depth - 1, "main")
    return out


def pick_target(pm, kind, rng):
    """A page number of the kind (None when the journal has none)."""
    pages = [p for p in pm if isinstance(p, int)]
    if kind == "meta":
        return rng.choice([0, 1])
    if kind == "main":
        cands = [p for p in pages if pm[p][1] == "main"]
    elif kind == "events-branch":
        cands = [p for p in pages if pm[p][:2] == ("branch", "events")]
    elif kind == "events-leaf":
        cands = [p for p in pages if pm[p][:2] == ("leaf", "events")]
    elif kind == "overflow":
        cands = [p for p in pages if pm[p][:2] == ("overflow", "events")]
    elif kind == "cursors":
        cands = [p for p in pages if pm[p][1] == "cursors"]
    elif kind == "free":
        cands = [p for p in range(2, pm["pages"]) if p not in pm]
    elif kind == "tail":  # the last live leaf of events: the newest events
        leaves = [p for p in pages if pm[p][:2] == ("leaf", "events") and pm[p][2]]
        cands = [max(leaves, key=lambda p: max(pm[p][2]))] if leaves else []
    else:
        raise ValueError(kind)
    return rng.choice(sorted(cands)) if cands else None


# Bytes of a page header LMDB never acts on (outside a LEAF2 page): mp_pad.
# Every other header byte matters: the page number (LMDB frees a page by the
# number in its header), the flags (a stray P_DIRTY makes a writer change the
# read-only map; P_LOOSE/P_KEEP keep the writer's copy from being written, so
# the next tree points to garbage), lower/upper (which nodes exist) and an
# overflow run's page count (how many pages freeing the value frees).
HARMLESS_HEADER = {8, 9}


def damage(path, pm, pg, rng, how, flipped=None):
    """Flips bytes of page pg: 'header' (page number/flags/bounds), 'body'
    (a few random bytes) or 'zero' (the whole page zeroed, a torn write).
    Returns the seqs that lived only on that page; flipped (a list) gets the
    offsets changed."""
    psize = pm["psize"]
    with open(path, "r+b") as f:
        if how == "zero":
            f.seek(pg * psize)
            f.write(b"\0" * psize)
        else:
            f.seek(pg * psize)
            page = bytearray(f.read(psize))
            if how == "header":
                offs = rng.sample(range(0, 16), 3)
            else:
                offs = rng.sample(range(16, psize), 8)
            for o in offs:
                page[o] ^= 1 << rng.randrange(8) | 0x80
            if flipped is not None:
                flipped.extend(offs)
            f.seek(pg * psize)
            f.write(page)
    kind = pm.get(pg, ("free", None, []))
    return set(kind[2]) if kind[0] in ("leaf", "overflow") and kind[1] == "events" else set()


# ---- processes ---------------------------------------------------------------

def run(cmd, log, input=None, env=None, timeout=600):
    log("$ " + " ".join(cmd))
    p = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout, env=env)
    if p.stderr:
        log(p.stderr.decode(errors="replace").rstrip())
    return p


class SinkProc:
    def __init__(self, bins, workdir, key):
        self.out = os.path.join(workdir, "sink.jsonl")
        portf = os.path.join(workdir, "sink.port")
        self.err = open(os.path.join(workdir, "sink.stderr"), "ab")
        self.proc = subprocess.Popen([bins.sink, "--listen", "127.0.0.1:0", "--port-file", portf, "--out", self.out,
                                      "--api-key", key], stdout=subprocess.DEVNULL, stderr=self.err)
        for _ in range(3000):
            if os.path.exists(portf):
                break
            if self.proc.poll() is not None:
                raise RuntimeError("ferry-sink exited %d" % self.proc.returncode)
            time.sleep(0.01)
        with open(portf) as f:
            self.port = int(f.read())
        self.url = "http://127.0.0.1:%d" % self.port

    def stats(self):
        with urllib.request.urlopen(self.url + "/stats", timeout=30) as r:
            return json.loads(r.read())

    def accepted(self):
        if not os.path.exists(self.out):
            return []
        with open(self.out) as f:
            return [json.loads(l) for l in f if l.strip()]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        self.err.close()


KEY = "corrupt-test-key-0123456789"


def one_case(bins, workdir, seed, kind, how, log):
    """One damaged journal, start to finish. Returns a dict of outcomes;
    raises AssertionError on a broken promise."""
    os.makedirs(workdir, exist_ok=True)
    rng = random.Random(seed)
    journal = os.path.join(workdir, "journal")
    env = dict(os.environ, FERRY_API_KEY=KEY)
    gen = run([bins.gen, "--seed", str(seed), "--devices", "4", "--hours", "1.5"], log)
    assert gen.returncode == 0
    lines = gen.stdout.decode().splitlines()
    cut = len(lines) * 2 // 5
    sink = SinkProc(bins, workdir, KEY)
    try:
        r = run([bins.record, "-j", journal, "--jsonl", "-"], log, input=("\n".join(lines[:cut]) + "\n").encode())
        assert r.returncode == 0, r.returncode
        r = run([bins.replay, "-j", journal, "--once", "--endpoint", sink.url, "--device-rate", "0"], log, env=env)
        assert r.returncode == 0, r.returncode
        r = run([bins.record, "-j", journal, "--jsonl", "-"], log, input=("\n".join(lines[cut:]) + "\n").encode())
        assert r.returncode == 0, r.returncode
        dump = run([bins.journal, "-j", journal, "dump"], log)
        assert dump.returncode == 0
        pending = {json.loads(l)["seq"]: json.loads(l)["insert_id"] for l in dump.stdout.decode().splitlines()}
        delivered_before = {e["insert_id"] for e in sink.accepted()}
        data = os.path.join(journal, "data.mdb")
        pm = page_map(data)
        pg = pick_target(pm, kind, rng)
        if pg is None:
            return {"skipped": True, "kind": kind}
        flipped = []
        only_there = damage(data, pm, pg, rng, how, flipped)
        log("damaged page %d (%s, %s): %d event(s) lived there" % (pg, pm.get(pg, ("free",))[0], how,
                                                                  len(only_there)))

        v = run([bins.journal, "-j", journal, "verify", "--json"], log)
        assert v.returncode in (0, 65), "verify exited %d (a crash is negative)" % v.returncode
        # The replayer on a damaged journal: a clear exit, never a hang or a crash.
        rp = run([bins.replay, "-j", journal, "--once", "--endpoint", sink.url, "--device-rate", "0",
                  "--retry-for", "5"], log, env=env, timeout=600)
        assert rp.returncode >= 0, "ferry-replay died of signal %d" % -rp.returncode
        assert rp.returncode in (0, 65, 74), "ferry-replay exited %d" % rp.returncode
        if rp.returncode:
            assert b"salvage" in rp.stderr, rp.stderr
        s = run([bins.journal, "-j", journal, "salvage", "--json"], log)
        assert s.returncode == 0, "salvage exited %d" % s.returncode
        sv = json.loads(s.stdout)
        v2 = run([bins.journal, "-j", journal, "verify"], log)
        assert v2.returncode == 0, "verify after salvage exited %d: %s" % (v2.returncode, v2.stdout)
        r = run([bins.replay, "-j", journal, "--once", "--endpoint", sink.url, "--device-rate", "0"], log, env=env)
        assert r.returncode == 0, "replay after salvage exited %d" % r.returncode
        st = json.loads(run([bins.journal, "-j", journal, "stat", "--json"], log).stdout)
        accepted = sink.accepted()
        stats = sink.stats()
    finally:
        sink.stop()
    ids = [e["insert_id"] for e in accepted]
    got = set(ids)
    assert len(ids) == len(got), "an insert_id arrived twice"
    want = set(pending.values())
    lost = {s for s, i in pending.items() if i not in got}
    unexpected = got - want - delivered_before
    assert not unexpected, "%d event(s) arrived that were never pending" % len(unexpected)
    beyond = lost - only_there
    assert not beyond, "lost %d event(s) that were not on the damaged page: %s" % (len(beyond), sorted(beyond)[:10])
    if sv.get("rebuilt"):
        # Exact when LMDB's count of stored events was readable; else a
        # lower bound (only what can be known is counted), never more than
        # was lost, and said to be one.
        if sv["lost_exact"]:
            assert not sv["lost_unknown"]
            assert sv["lost"] == len(lost), "salvage counted %d lost, %d are" % (sv["lost"], len(lost))
        else:
            assert sv["lost_unknown"], sv
            assert sv["lost"] <= len(lost), "salvage counted at least %d lost, %d are" % (sv["lost"], len(lost))
        assert st.get("quarantined") == sv["lost"], (st.get("quarantined"), sv["lost"])
    return {"skipped": False, "kind": kind, "how": how, "page": pg, "pending": len(want),
            "recorded": len(want) + len(delivered_before), "lost": len(lost),
            "on_damaged_page": len(only_there), "beyond": len(beyond), "duplicates": stats.get("duplicates", 0),
            "delivered": len(got - delivered_before), "verify": v.returncode, "replay_before": rp.returncode,
            "salvaged": sv.get("salvaged"), "recovered_unreachable": sv.get("recovered_unreachable", 0),
            "rebuilt": bool(sv.get("rebuilt")), "lost_exact": bool(sv.get("lost_exact")),
            "harmless": how == "header" and set(flipped) <= HARMLESS_HEADER}
