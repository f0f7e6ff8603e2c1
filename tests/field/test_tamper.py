"""Damaged and tampered captures: a flipped byte anywhere, truncation,
a deleted, swapped or duplicated record, appended data. `verify` reports
each with its place (header, record N with its offset, end) and exits 65;
`import` refuses and writes nothing, into a new or an existing journal."""
import json
import os
import struct
import unittest

from fieldlib import EX_DATAERR, FieldCase, events, parse_capture

N = 12


class Tamper(FieldCase):
    def setUp(self):
        super().setUp()
        self.src = self.jdir("device")
        self.record_into(self.src, events(N, devices=2))
        self.cap = self.export(self.src, "capture", "good.fyc")
        with open(self.cap, "rb") as f:
            self.good = f.read()
        self.layout = parse_capture(self.good)
        self.entries = self.layout["entries"]
        self.assertEqual(len(self.entries), N)
        self.existing = self.jdir("existing")
        self.record_into(self.existing, events(3, start=500))
        self.existing_dump = self.dump_text(self.existing)
        self.n = 0

    def check_bad(self, data, *expect, offset=None):
        """verify reports every `expect` text (and the offset, if given);
        import refuses into a new journal and into an existing one."""
        self.n += 1
        path = os.path.join(self.tmp, "bad-%d.fyc" % self.n)
        with open(path, "wb") as f:
            f.write(data)
        p = self.verify(path)
        out = p.stdout.decode()
        self.assertEqual(p.returncode, EX_DATAERR, out)
        for text in expect:
            self.assertIn(text, out)
        if offset is not None:
            self.assertIn("at offset %d:" % offset, out)
        self.assertIn("do not import this capture", out)
        # --json says the same.
        pj = self.verify(path, "--json")
        self.assertEqual(pj.returncode, EX_DATAERR)
        js = json.loads(pj.stdout)
        self.assertFalse(js["ok"])
        self.assertTrue(js["problems"])
        # Import: refused, nothing written anywhere.
        fresh = self.jdir("fresh-%d" % self.n)
        p = self.tool(None, "import", path, "-j", fresh)
        self.assertEqual(p.returncode, EX_DATAERR, p.stderr.decode())
        self.assertIn(b"import refused", p.stderr)
        self.assertFalse(os.path.exists(os.path.join(fresh, "data.mdb")), "a journal was created")
        p = self.tool(None, "import", path, "-j", self.existing)
        self.assertEqual(p.returncode, EX_DATAERR)
        self.assertEqual(self.dump_text(self.existing), self.existing_dump)
        return out

    def flip(self, at):
        b = bytearray(self.good)
        b[at] ^= 0x01
        return bytes(b)

    def rec(self, k):
        """Entry k (1-based)."""
        return self.entries[k - 1]

    def test_clean(self):
        self.assert_verify_clean(self.cap)
        js = json.loads(self.verify(self.cap, "--json").stdout)
        self.assertTrue(js["ok"])
        self.assertEqual((js["records"], js["announced"], js["problems"]), (N, N, []))

    def test_flip_every_region(self):
        # The header (journal id), its digest.
        self.check_bad(self.flip(20), "header", "header digest mismatch")
        self.check_bad(self.flip(self.layout["header_end"] + 3), "header digest mismatch")
        for k in (1, 5, N):
            e = self.rec(k)
            seq = e["seq"]
            where = "record %d (seq %d) at offset %d" % (k, seq, e["offset"])
            # The record's own bytes (last byte of its MessagePack).
            self.check_bad(self.flip(e["body_end"] - 1), where, "hash chain mismatch", "record invalid")
            # Its stored chain value: only this record is blamed.
            out = self.check_bad(self.flip(e["chain"] + 7), where, "hash chain mismatch")
            self.assertEqual(out.count("hash chain mismatch"), 1, out)
            # The delivery state byte.
            self.check_bad(self.flip(e["offset"] + 25), "at offset %d" % e["offset"])
            # The length field.
            self.check_bad(self.flip(e["offset"] + 6), "record %d" % k, offset=e["offset"])
            # The tag.
            self.check_bad(self.flip(e["offset"]), "record %d" % k, offset=e["offset"])
        t = self.layout["trailer"]
        self.check_bad(self.flip(t + 15), "end", "end marker counts")
        self.check_bad(self.flip(t + 20), "end", "final hash chain")
        self.check_bad(self.flip(t + 60), "end", "content SHA-256 mismatch")

    def test_flip_each_byte_of_one_record(self):
        """Every single byte of record 3 (and its chain value): always caught,
        always placed at record 3 or its offset."""
        e = self.rec(3)
        for at in range(e["offset"], e["offset"] + e["length"], 13):
            self.check_bad(self.flip(at), "at offset %d" % e["offset"])

    def test_truncate(self):
        e = self.rec(6)
        out = self.check_bad(self.good[:e["offset"] + 30], "record 6", "truncated", offset=e["offset"])
        self.check_bad(self.good[:e["offset"]], "end", "truncated after 5 of %d records" % N)
        t = self.layout["trailer"]
        self.check_bad(self.good[:t], "end", "truncated after %d of %d records" % (N, N))
        self.check_bad(self.good[:t + 40], "end", "cut short")
        self.check_bad(self.good[:t + 4], "end", "cut short")
        self.check_bad(self.good[:len(self.good) - 1], "end", "cut short")
        self.check_bad(self.good[:10], "header")
        self.check_bad(b"", "header", "not a ferry capture")

    def test_delete_record(self):
        for k in (1, 7, N):
            e = self.rec(k)
            data = self.good[:e["offset"]] + self.good[e["offset"] + e["length"]:]
            if k < N:
                self.check_bad(data, "record %d is missing (deleted)" % k, "records deleted")
            else:
                self.check_bad(data, "records deleted", "final hash chain")

    def test_swap_records(self):
        a, b = self.rec(4), self.rec(5)
        data = (self.good[:a["offset"]] + self.good[b["offset"]:b["offset"] + b["length"]] +
                self.good[a["offset"]:a["offset"] + a["length"]] + self.good[b["offset"] + b["length"]:])
        out = self.check_bad(data, "record 5 (seq %d) at offset %d: found where record 4 was expected" %
                             (b["seq"], a["offset"]), "record 4 (seq %d)" % a["seq"], "out of order")
        # Records 6.. are not blamed.
        self.assertNotIn("record 6", out)

    def test_duplicate_and_renumber(self):
        e = self.rec(2)
        dup = self.good[e["offset"]:e["offset"] + e["length"]]
        data = self.good[:e["offset"] + e["length"]] + dup + self.good[e["offset"] + e["length"]:]
        self.check_bad(data, "out of order", "records added")
        # Renumbering the seq field: the chain catches it.
        b = bytearray(self.good)
        b[e["offset"] + 8 + 8 + 7] ^= 0x40
        self.check_bad(bytes(b), "at offset %d" % e["offset"], "hash chain mismatch")

    def test_append_garbage(self):
        end = len(self.good)
        self.check_bad(self.good + b"\x00", "end", "1 unexpected bytes after the end marker", offset=end)
        self.check_bad(self.good + os.urandom(4096), "appended data", offset=end)
        # A whole second capture appended.
        self.check_bad(self.good + self.good, "appended data", offset=end)

    def test_header_lies(self):
        """A header count changed (and its digest fixed up): still caught."""
        import hashlib
        b = bytearray(self.good)
        count_at = 16 + 16 + 8 + 8 + 8
        struct.pack_into(">Q", b, count_at, N - 1)
        he = self.layout["header_end"]
        b[he:he + 32] = hashlib.sha256(bytes(b[:he])).digest()
        self.check_bad(bytes(b), "records found, the header announces")

    def test_gap_lies(self):
        """Capture 1.1 gaps that cannot be true (digests fixed up): a gap of
        no event, or of a destination the capture does not name."""
        import hashlib
        he = self.layout["header_end"]
        self.assertEqual(self.good[he - 4:he], b"\0\0\0\0")  # no gaps
        for dest, count in ((b"amplitude", 0), (b"nowhere", 1)):
            gap = struct.pack(">H", len(dest)) + dest + bytes(16) + struct.pack(">QQQqqqqqB", 1, 2, count, 5, 6, 5, 6, 7, 0)
            b = bytearray(self.good[:he - 4] + struct.pack(">I", 1) + gap)
            struct.pack_into(">I", b, 12, len(b) - 16)
            b += hashlib.sha256(bytes(b)).digest() + self.good[he + 32:]
            self.check_bad(bytes(b), "gap 1 is inconsistent", offset=he)


if __name__ == "__main__":
    unittest.main(verbosity=2)
