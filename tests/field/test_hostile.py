"""Hostile content in exports: CSV injection (cells a spreadsheet would run
as formulas), RFC 4180 quoting, JSON escaping of quotes, newlines and control
characters, and invalid UTF-8 or NUL bytes stored by an older or foreign
writer (records written by hand through ferry-fieldwriter). Every export is
valid CSV/JSON, loses nothing that is valid text, and captures carry the
bytes unchanged."""
import csv
import io
import json
import os
import unittest

from fieldlib import FIELDWRITER, FieldCase, raw_record

HOSTILE = [
    "=1+1", "=HYPERLINK(\"http://evil\",\"x\")", "+1", "+cmd|' /C calc'!A0", "-2+3", "-", "@SUM(A1:A2)",
    "\tTAB first", "\rCR first", "\r\nCRLF first", "a,b,c", "quote\"inside\"", "\"", "\"\"",
    "new\nline", "crlf\r\ninside", "ctl \u0001\u0002\u001b\u001f\u007f", "back\\slash", "</script><b>",
    "ü 日本語 🚀 \u2028\u2029", " =leading space", "'already", "", "x" * 300,
]
FORMULA = tuple("=+-@\t\r")
DEV = "0b5e0d1f9c2a4e6b8d7c3a1f2e4d6c8b"


def neutral(s):
    return "'" + s if s[:1] in FORMULA else s


class Hostile(FieldCase):
    def setUp(self):
        super().setUp()
        self.src = self.jdir("device")
        self.evs = []
        for i, s in enumerate(HOSTILE):
            self.evs.append({"event_type": s or "empty-type-%d" % i, "device_id": DEV, "time": 1795939200000 + i,
                             "insert_id": "hostile-%03d" % i,
                             "event_properties": {"value": s, s or "k": i, "nested": {"list": [s, {"s": s}]}},
                             "user_properties": {"u": s}, "app_version": s})
        self.evs.append({"event_type": "user only", "user_id": "=user-1", "time": 1795939300000,
                         "insert_id": "=iid", "os_name": "@os"})
        self.record_into(self.src, self.evs)
        # Records from an old or foreign writer: invalid UTF-8 and NUL bytes.
        self.raw = [
            [("event_type", b"bad \xff\xfe utf8"), ("device_id", b"dev-\xc3(-1234"), ("insert_id", "raw-1"),
             ("time", 1795939400000), ("event_properties", (("k\xff".encode("latin-1"), b"v\xed\xa0\x80"),
                                                              ("nul", b"a\x00b")))],
            [("event_type", b"=\x80formula"), ("device_id", DEV), ("insert_id", b"raw-\xf5-2"),
             ("time", 1795939400001), ("user_properties", (("x", b"\xc0\xaf"),))],
        ]
        hexes = [raw_record(r).hex() for r in self.raw]
        self.run_tool(FIELDWRITER, "append-raw", self.src, *hexes, check=0)
        self.n = len(self.evs) + len(self.raw)

    def test_jsonl_and_dump_are_valid_json(self):
        out = self.tool(self.src, "export", "--format", "jsonl", check=0).stdout
        self.assertNotIn(b"\xff", out)
        text = out.decode("utf-8")  # strict: the output is valid UTF-8
        lines = text.split("\n")
        self.assertEqual(lines[-1], "")
        lines = lines[:-1]
        self.assertEqual(len(lines), self.n)
        for line in lines:
            for c in line:
                self.assertFalse(ord(c) < 0x20, "raw control character in %r" % line[:80])
        parsed = [json.loads(l) for l in lines]  # json.loads is strict about control characters
        for want, got in zip(self.evs, parsed):
            self.assertEqual(got["event"], want)
            self.assertEqual(got["insert_id"], want["insert_id"])
        raw1, raw2 = parsed[-2]["event"], parsed[-1]["event"]
        self.assertEqual(raw1["event_type"], "bad \ufffd\ufffd utf8")
        self.assertEqual(raw1["device_id"], "dev-\ufffd(-1234")
        self.assertEqual(raw1["event_properties"], {"k\ufffd": "v\ufffd\ufffd\ufffd", "nul": "a\u0000b"})
        self.assertEqual(raw2["insert_id"], "raw-\ufffd-2")
        self.assertEqual(parsed[-1]["insert_id"], "raw-\ufffd-2")
        dump = [json.loads(l) for l in self.dump_text(self.src).split("\n") if l]
        self.assertEqual([d["event"] for d in dump], [p["event"] for p in parsed])

    def test_csv_injection_and_quoting(self):
        path = self.export(self.src, "csv", "events.csv")
        with open(path, "rb") as f:
            raw = f.read()
        self.assertTrue(raw.startswith(b"seq,insert_id,time_ms,time_utc,recorded_at_ms,event_type,device_id,"
                                       b"user_id,state,event_properties,user_properties,other_fields\r\n"))
        self.assertTrue(raw.endswith(b"\r\n"))
        self.assertNotIn(b"\x00", raw)
        rows = list(csv.reader(io.StringIO(raw.decode("utf-8"), newline=""), strict=True))
        header, rows = rows[0], rows[1:]
        self.assertEqual(len(rows), self.n)
        col = {name: i for i, name in enumerate(header)}
        for row in rows:
            self.assertEqual(len(row), len(header))
            for name, cell in zip(header, row):
                if name in ("seq", "time_ms", "recorded_at_ms"):
                    self.assertRegex(cell, r"^-?[0-9]+$")
                else:
                    self.assertFalse(cell[:1] in FORMULA, "%s cell %r would run as a formula" % (name, cell))
        for want, row in zip(self.evs, rows):
            self.assertEqual(row[col["insert_id"]], neutral(want["insert_id"]))
            self.assertEqual(row[col["event_type"]], neutral(want["event_type"]))
            self.assertEqual(row[col["device_id"]], want.get("device_id", ""))
            self.assertEqual(row[col["user_id"]], neutral(want.get("user_id", "")))
            self.assertEqual(row[col["state"]], "pending")
            if "event_properties" in want:
                self.assertEqual(json.loads(row[col["event_properties"]]), want["event_properties"])
                self.assertEqual(json.loads(row[col["user_properties"]]), want["user_properties"])
                other = row[col["other_fields"]]
                self.assertEqual(json.loads(other), {"app_version": want["app_version"]})
        last = rows[len(self.evs) - 1]
        self.assertEqual(last[col["user_id"]], "'=user-1")
        self.assertEqual(last[col["insert_id"]], "'=iid")
        self.assertEqual(json.loads(last[col["other_fields"]]), {"os_name": "@os"})
        raw1, raw2 = rows[-2], rows[-1]
        self.assertEqual(raw1[col["event_type"]], "bad \ufffd\ufffd utf8")
        self.assertEqual(raw1[col["device_id"]], "dev-\ufffd(-1234")
        self.assertEqual(json.loads(raw1[col["event_properties"]]), {"k\ufffd": "v\ufffd\ufffd\ufffd", "nul": "a\u0000b"})
        self.assertEqual(raw2[col["event_type"]], "'=\ufffdformula")

    def test_capture_keeps_bytes(self):
        cap = self.export(self.src, "capture", "hostile.fyc")
        self.assert_verify_clean(cap)
        dst = self.jdir("laptop")
        self.assertEqual(self.import_capture(cap, dst)["imported"], self.n)
        self.assertEqual(self.dump_text(dst), self.dump_text(self.src))
        a = self.tool(self.src, "export", "--format", "csv", check=0).stdout
        b = self.tool(dst, "export", "--format", "csv", check=0).stdout
        self.assertEqual(a, b)
        # Filters match the bytes as stored.
        out = self.tool(self.src, "export", "--format", "jsonl", "--type", "=1+1", "--type", "new\nline",
                        check=0).stdout.decode().split("\n")[:-1]
        self.assertEqual(sorted(json.loads(l)["event"]["event_type"] for l in out), ["=1+1", "new\nline"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
