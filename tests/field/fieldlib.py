"""Helpers for the field tests: ferry-journal export/verify/import/copy/purge/
tail on real journals, with real ferry-record, ferry-replay and ferry-sink
processes (tests/replay/replaylib.py, tests/sink/sinklib.py). Python 3
standard library only; every wait is a bounded loop; nothing asserts on
elapsed time."""
import hashlib
import json
import os
import struct
import sys
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "replay"))
from replaylib import JOURNAL, KEY, RECORD, REPLAY, ReplayCase, Sink, device, events, invalid_events  # noqa: E402,F401

FIELDWRITER = os.environ.get("FERRY_FIELDWRITER", "ferry-fieldwriter")
DATA = os.environ.get("FERRY_FIELD_DATA", os.path.join(os.path.dirname(os.path.abspath(__file__)), "data"))

EX_OK, EX_USAGE, EX_DATAERR, EX_NOINPUT, EX_CANTCREAT, EX_IOERR = 0, 64, 65, 66, 73, 74


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# ---- an independent reader of the capture layout (FORMAT.md, "Captures") ----

def parse_capture(data):
    """The byte layout of a capture: header end, entries and trailer offsets.
    Checks nothing beyond what it needs to walk the file."""
    assert data[:8] == b"FERRYCAP", data[:8]
    hlen = struct.unpack(">I", data[12:16])[0]
    header_end = 16 + hlen
    pos = header_end + 32
    entries = []
    while data[pos:pos + 4] == b"RECD":
        blen = struct.unpack(">I", data[pos + 4:pos + 8])[0]
        ordinal, seq = struct.unpack(">QQ", data[pos + 8:pos + 24])
        body_end = pos + 8 + blen
        entries.append({"offset": pos, "length": 8 + blen + 32, "ordinal": ordinal, "seq": seq,
                        "body_end": body_end, "chain": body_end})
        pos = body_end + 32
    assert data[pos:pos + 8] == b"FERRYEND", (pos, data[pos:pos + 8])
    return {"header_end": header_end, "entries": entries, "trailer": pos, "end": pos + 80}


def header_fields(data):
    """The header's fields, decoded."""
    o = 16
    jid = data[o:o + 16].hex()
    o += 16
    jmaj, jmin = struct.unpack(">II", data[o:o + 8])
    o += 8
    created, exported, count, first, last, recorded, evicted, pruned = struct.unpack(">qqQQQQQQ", data[o:o + 64])
    o += 64
    n = struct.unpack(">H", data[o:o + 2])[0]
    producer = data[o + 2:o + 2 + n].decode()
    o += 2 + n
    n = struct.unpack(">I", data[o:o + 4])[0]
    flt = json.loads(data[o + 4:o + 4 + n].decode())
    o += 4 + n
    nd = struct.unpack(">H", data[o:o + 2])[0]
    o += 2
    dests = []
    for _ in range(nd):
        n = struct.unpack(">H", data[o:o + 2])[0]
        dests.append(data[o + 2:o + 2 + n].decode())
        o += 2 + n
    ndev = struct.unpack(">I", data[o:o + 4])[0]
    o += 4
    devs = []
    for _ in range(ndev):
        n = struct.unpack(">H", data[o:o + 2])[0]
        devs.append(data[o + 2:o + 2 + n])
        o += 2 + n
    return {"journal_id": jid, "journal_format": (jmaj, jmin), "created_ms": created, "export_ms": exported,
            "count": count, "first_seq": first, "last_seq": last, "recorded": recorded, "evicted": evicted,
            "pruned": pruned, "producer": producer, "filter": flt, "destinations": dests, "devices": devs,
            "version": struct.unpack(">HH", data[8:12])}


# ---- records written by hand (for content no current recorder produces) ----

def mp(o):
    """MessagePack for the kinds records hold; bytes are written as str
    (so that invalid UTF-8 can be stored, as an old or foreign writer could)."""
    if o is None:
        return b"\xc0"
    if o is True:
        return b"\xc3"
    if o is False:
        return b"\xc2"
    if isinstance(o, int):
        if 0 <= o < 128:
            return bytes([o])
        if o >= 0:
            return b"\xcf" + struct.pack(">Q", o)
        return b"\xd3" + struct.pack(">q", o)
    if isinstance(o, float):
        return b"\xcb" + struct.pack(">d", o)
    if isinstance(o, str):
        o = o.encode("utf-8")
    if isinstance(o, bytes):
        if len(o) < 32:
            return bytes([0xa0 | len(o)]) + o
        return b"\xda" + struct.pack(">H", len(o)) + o
    if isinstance(o, list):
        return b"\xdc" + struct.pack(">H", len(o)) + b"".join(mp(x) for x in o)
    if isinstance(o, (dict, tuple)):
        items = o.items() if isinstance(o, dict) else o
        items = list(items)
        return b"\xde" + struct.pack(">H", len(items)) + b"".join(mp(k) + mp(v) for k, v in items)
    raise TypeError(type(o))


def raw_record(event_items, recorded_at=1795939200000):
    """A version-1 record (FORMAT.md section 4) of an event given as a list
    of (key, value) pairs, with its CRC."""
    tail = mp(recorded_at) + mp(tuple(event_items))
    crc = zlib.crc32(tail) & 0xFFFFFFFF
    return b"\x94\x01\xce" + struct.pack(">I", crc) + tail


class FieldCase(ReplayCase):
    """A temporary directory per test with journal helpers."""

    def jdir(self, name):
        return os.path.join(self.tmp, name)

    def tool(self, journal, *args, check=None, input=None, timeout=300):
        argv = [JOURNAL] + (["-j", journal] if journal else []) + list(args)
        return self.run_tool(*argv, input=input, check=check, timeout=timeout)

    def record_into(self, journal, evs, *extra):
        data = "".join(json.dumps(e) + "\n" for e in evs).encode()
        self.run_tool(RECORD, "-j", journal, "--jsonl", "-", *extra, input=data, check=0)

    def dump_text(self, journal):
        return self.tool(journal, "dump", check=0).stdout.decode()

    def dump_of(self, journal):
        return [json.loads(l) for l in self.dump_text(journal).split("\n") if l]

    def stat_of(self, journal):
        return json.loads(self.tool(journal, "stat", "--json", check=0).stdout)

    def export(self, journal, fmt, name, *args, check=0):
        """Exports to a file in the test directory; checks the printed
        SHA-256 against the file's. Returns the path."""
        path = os.path.join(self.tmp, name)
        p = self.tool(journal, "export", "--format", fmt, "--output", path, *args, check=check)
        if check == 0:
            line = p.stdout.decode().strip()
            self.assertEqual(line, "%s  %s" % (sha256_file(path), path), "printed SHA-256")
            self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        return path

    def import_capture(self, capture, journal, *args, check=0):
        p = self.tool(None, "import", capture, "-j", journal, "--json", *args, check=check)
        return json.loads(p.stdout) if check == 0 else p

    def verify(self, target, *args):
        return self.tool(None, "verify", target, *args)

    def assert_verify_clean(self, target):
        p = self.verify(target)
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())
        self.assertIn(": OK: ", p.stdout.decode())

    def replay_journal(self, journal, sink, *args, check=0):
        saved = self.journal
        self.journal = journal
        try:
            return self.replay(sink, "--device-rate", "0", *args, check=check)
        finally:
            self.journal = saved
