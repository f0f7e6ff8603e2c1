"""Honest timestamps and what ferry-replay sends for time and IP.

Records with a wrong wall clock come from two sources, both real processes:
ferry-record under libfaketime (a wrong CLOCK_REALTIME, the true
CLOCK_BOOTTIME: FAKETIME_DONT_FAKE_MONOTONIC=1), for the replayer's own boot;
and records of other boots, crafted byte for byte here (FORMAT.md section 4)
and appended with ferry-fieldwriter append-raw. They are replayed to
ferry-sink; the times it received are checked against what the monotonic
clock says, and the journal's own view (dump, export) against what was
stored. Nothing asserts on elapsed time."""
import http.server
import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import time
import unittest
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from replaylib import JOURNAL, RECORD, ReplayCase, device  # noqa: E402

FIELDWRITER = os.environ.get("FERRY_FIELDWRITER", "ferry-fieldwriter")
FAKETIME = shutil.which("faketime")
GOOD = 1795939200000   # 2026-11-29T04:00Z
BAD = 1577836800000    # 2020-01-01: before any build of this code
FLOOR = "2026-01-01"   # explicit, so that crafted GOOD times stay trusted whenever this runs
ORIGINAL = "[ferry] original time"
UNCORRECTED = "[ferry] time uncorrected"


def this_boot():
    with open("/proc/sys/kernel/random/boot_id") as f:
        return f.read().strip().replace("-", "")


# ---- a minimal MessagePack encoder for crafted records (FORMAT.md §4) ----

def mp(v):
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if v is None:
        return b"\xc0"
    if isinstance(v, int):
        return b"\xd3" + struct.pack(">q", v) if v < 0 else b"\xcf" + struct.pack(">Q", v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode()
        return (b"\xd9" + bytes([len(b)]) if len(b) < 256 else b"\xda" + struct.pack(">H", len(b))) + b
    if isinstance(v, dict):
        return b"\xde" + struct.pack(">H", len(v)) + b"".join(mp(k) + mp(x) for k, x in v.items())
    if isinstance(v, list):
        return b"\xdc" + struct.pack(">H", len(v)) + b"".join(mp(x) for x in v)
    raise TypeError(v)


def record_bytes(wall, event, mono=None, boot=None):
    """Record version 1: [1, crc, recorded_at, event(, mono, boot)]."""
    tail = mp(wall) + mp(event)
    if boot is not None:
        tail += mp(mono) + mp(boot)
    head = bytes([0x96 if boot is not None else 0x94, 1])
    return head + b"\xce" + struct.pack(">I", zlib.crc32(tail)) + tail


class TimeCase(ReplayCase):
    n = 0

    def ev(self, marker, time_ms, **extra):
        TimeCase.n += 1
        e = {"event_type": "Service start", "device_id": device(1), "time": time_ms,
             "insert_id": "time-%s-%d" % (marker, TimeCase.n), "event_properties": {"marker": marker}}
        e.update(extra)
        return e

    def append_raw(self, records):
        self.run_tool(FIELDWRITER, "append-raw", self.journal, *[r.hex() for r in records], check=0)

    def faked_record(self, evs, fake="2020-01-01 00:00:00"):
        self.assertIsNotNone(FAKETIME, "faketime (Debian package faketime) is needed: ./run installs it")
        env = dict(os.environ, FAKETIME_DONT_FAKE_MONOTONIC="1",
                   ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0")
        data = "".join(json.dumps(e) + "\n" for e in evs).encode()
        p = subprocess.run([FAKETIME, fake, RECORD, "-j", self.journal, "--jsonl", "-"], input=data,
                           capture_output=True, timeout=120, env=env)
        self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace"))

    def by_marker(self, accepted):
        out = {}
        for e in accepted:
            m = e["event_properties"]["marker"]
            self.assertNotIn(m, out, "an event arrived twice")
            out[m] = e
        return out

    def export_lines(self):
        p = self.run_tool(JOURNAL, "-j", self.journal, "export", "--format", "jsonl", check=0)
        return [json.loads(l) for l in p.stdout.decode().splitlines()]


class TestTime(TimeCase):

    def test_wrong_clock_in_this_boot_is_corrected_from_boottime(self):
        """ferry-record with the wall clock at 2020 (no RTC, before NTP); the
        replayer, in the same boot with a good clock, anchors on itself."""
        before = int(time.time() * 1000)
        self.faked_record([{"event_type": "Service start", "device_id": device(1),
                            "event_properties": {"marker": "faked-%d" % i}} for i in range(3)])
        after = int(time.time() * 1000)
        self.record([{"event_type": "Service start", "device_id": device(1),
                      "event_properties": {"marker": "real"}}])
        stored = {d["event"]["event_properties"]["marker"]: d for d in self.dump()}
        boot = this_boot()
        for m, d in stored.items():
            self.assertEqual(d["boot_id"], boot)
            self.assertIsInstance(d["mono_ms"], int)
        for i in range(3):
            self.assertLess(stored["faked-%d" % i]["recorded_at"], before - 86400000)  # the fake clock
        with self.sink() as sink:
            self.replay(sink, "--keep-delivered", check=0)
        got = self.by_marker(self.accepted())
        self.assertEqual(set(got), {"faked-0", "faked-1", "faked-2", "real"})
        for i in range(3):
            e, d = got["faked-%d" % i], stored["faked-%d" % i]
            # the true time of recording, from CLOCK_BOOTTIME (ms rounding allowed)
            self.assertGreaterEqual(e["time"], before - 1000, e)
            self.assertLessEqual(e["time"], after + 1000, e)
            self.assertEqual(e["event_properties"][ORIGINAL], d["event"]["time"])
            self.assertNotIn(UNCORRECTED, e["event_properties"])
        self.assertEqual(got["real"], stored["real"]["event"])  # trustworthy: untouched
        # the journal keeps what was recorded
        again = {d["event"]["event_properties"]["marker"]: d for d in self.dump()}
        self.assertEqual(again, stored)
        exported = {x["event"]["event_properties"]["marker"]: x for x in self.export_lines()}
        for m, d in stored.items():
            self.assertEqual(exported[m]["event"], d["event"])
            self.assertEqual(exported[m]["recorded_at"], d["recorded_at"])
            self.assertEqual(exported[m]["mono_ms"], d["mono_ms"])
            self.assertEqual(exported[m]["boot_id"], d["boot_id"])

    def test_other_boots_step_and_uncorrectable(self):
        """Records of boots that are not the replayer's: a boot where NTP
        stepped the clock (corrected from the first good record after the
        step), a boot with no good reading (flagged), format-1.0 records
        (judged by the floor only)."""
        boot_x, boot_y = "11" * 16, "22" * 16
        recs, want = [], {}

        def add(marker, wall, mono=None, boot=None, t=None, **extra):
            recs.append(record_bytes(wall, self.ev(marker, t if t is not None else wall, **extra), mono, boot))

        add("x-early-0", BAD + 5000, 5000, boot_x)
        add("y-only", BAD + 100, 900, boot_y)                        # boot Y never had a good clock
        add("x-early-1", BAD + 65000, 65000, boot_x, t=BAD + 60000)  # caller's time 5 s before recording
        add("x-good-0", GOOD, 70000, boot_x)                         # NTP stepped: the anchor
        add("x-good-1", GOOD + 10000, 80000, boot_x)
        add("old-bad", BAD)                                          # 4 elements, before the floor
        add("old-good", GOOD)                                        # 4 elements, after it
        want["x-early-0"] = GOOD - 65000
        want["x-early-1"] = GOOD - 5000 - 5000
        self.append_raw(recs)
        stored = {d["event"]["event_properties"]["marker"]: d for d in self.dump()}
        self.assertEqual(len(stored), 7)
        self.assertNotIn("mono_ms", stored["old-bad"])
        self.assertEqual(stored["x-good-0"]["boot_id"], boot_x)
        with self.sink() as sink:
            self.replay(sink, "--time-floor", FLOOR, "--keep-delivered", check=0)
        got = self.by_marker(self.accepted())
        self.assertEqual(set(got), set(stored))
        for m, t in want.items():
            self.assertEqual(got[m]["time"], t, m)
            self.assertEqual(got[m]["event_properties"][ORIGINAL], stored[m]["event"]["time"], m)
        for m in ("x-good-0", "x-good-1", "old-good"):
            self.assertEqual(got[m], stored[m]["event"], m)  # trusted: exactly as recorded
        for m in ("y-only", "old-bad"):
            self.assertEqual(got[m]["time"], stored[m]["event"]["time"], m)  # never guessed
            self.assertIs(got[m]["event_properties"][UNCORRECTED], True, m)
            self.assertNotIn(ORIGINAL, got[m]["event_properties"])
        self.assertEqual({d["event"]["event_properties"]["marker"]: d for d in self.dump()}, stored)

    def test_held_while_this_boot_has_no_trustworthy_clock(self):
        """Seen from a replayer whose own clock is before the floor, events of
        its boot wait (exit 75 with --once); other boots go out, flagged."""
        self.faked_record([{"event_type": "Service start", "device_id": device(2),
                            "event_properties": {"marker": "mine-%d" % i}} for i in range(2)])
        self.append_raw([record_bytes(BAD, self.ev("other-boot", BAD), 1000, "33" * 16)])
        with self.sink() as sink:
            p = self.replay(sink, "--time-floor", "2100-01-01", "--retry-for", "1", "--keep-delivered", "--json",
                            check=75)
            self.assertIn(b"holding 2 event(s) of this boot", p.stderr)
            summary = json.loads(p.stdout)
            self.assertEqual((summary["held"], summary["delivered"], summary["pending"]), (2, 1, 2))
            got = self.by_marker(self.accepted())
            self.assertEqual(set(got), {"other-boot"})
            self.assertIs(got["other-boot"]["event_properties"][UNCORRECTED], True)
            # once the clock is trustworthy they go out, corrected
            self.replay(sink, "--keep-delivered", check=0)
        got = self.by_marker(self.accepted())
        self.assertEqual(set(got), {"other-boot", "mine-0", "mine-1"})
        for m in ("mine-0", "mine-1"):
            self.assertGreater(got[m]["time"], GOOD - 366 * 86400000)
            self.assertLess(got[m]["event_properties"][ORIGINAL], GOOD - 366 * 86400000)

    def test_ip_modes(self):
        """--ip none (default) sends no ip and no location; remote sends
        $remote; pass sends what was recorded."""
        loc = {"ip": "203.0.113.7", "city": "Oslo", "country": "Norway", "region": "Oslo", "dma": "n/a",
               "location_lat": 59.91, "location_lng": 10.75}
        ev = {"event_type": "Service start", "device_id": device(3), "os_name": "balenaOS",
              "event_properties": {"marker": "located"}}
        ev.update(loc)
        self.record([ev])
        stored = self.dump()[0]["event"]
        for k, v in loc.items():
            self.assertEqual(stored[k], v)
        results = {}
        for mode in ("default", "none", "remote", "pass"):
            out = os.path.join(self.tmp, "sink-%s.jsonl" % mode)
            args = ["--sink", mode, "--keep-delivered"] + ([] if mode == "default" else ["--ip", mode])
            with self.sink(out=out) as sink:
                self.replay(sink, *args, check=0)
            results[mode] = self.accepted(out)
            self.assertEqual(len(results[mode]), 1, mode)
        for mode in ("default", "none"):
            e = results[mode][0]
            for k in loc:
                self.assertNotIn(k, e, mode)
            self.assertEqual(e["os_name"], "balenaOS")
        e = results["remote"][0]
        self.assertEqual(e["ip"], "$remote")
        for k in loc:
            if k != "ip":
                self.assertNotIn(k, e)
        self.assertEqual(results["pass"][0], stored)
        self.assertEqual(self.dump()[0]["event"], stored)  # the journal keeps the recorded fields

    def test_no_client_upload_time(self):
        """The request body never carries client_upload_time (Amplitude would
        shift every event by its difference to the receive time)."""
        self.record([{"event_type": "Service start", "device_id": device(4),
                      "event_properties": {"marker": "m"}}])
        bodies = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                answer = json.dumps({"code": 200, "events_ingested": len(bodies[-1]["events"]),
                                     "payload_size_bytes": 1, "server_upload_time": 1}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            self.replay("http://127.0.0.1:%d" % server.server_port, "--no-gzip", check=0)
        finally:
            server.shutdown()
            server.server_close()
        self.assertEqual(len(bodies), 1)
        self.assertEqual(sorted(bodies[0]), ["api_key", "events"])
        self.assertEqual(bodies[0]["events"][0]["event_properties"]["marker"], "m")

    def test_usage_errors(self):
        self.record([{"event_type": "Service start", "device_id": device(5)}])
        for args in (["--ip", "gateway"], ["--time-floor", "yesterday-ish"], ["--clock-jump", "0"],
                     ["--clock-jump", "x"]):
            p = self.replay("http://127.0.0.1:9", *args, check=64)
            self.assertIn(args[0].encode(), p.stderr)
        self.assertEqual(self.stat()["pending"], 1)

    def test_old_format_journal_still_replays(self):
        """A format 1.0 journal of 4-element records: decoded, replayed as
        recorded; the first writable open marks the journal 1.1."""
        self.append_raw([record_bytes(GOOD + i, self.ev("v10-%d" % i, GOOD + i)) for i in range(3)])
        self.assertEqual(self.stat()["format"], "1.1")
        with self.sink() as sink:
            self.replay(sink, "--time-floor", FLOOR, check=0)
        got = self.by_marker(self.accepted())
        self.assertEqual(sorted(got), ["v10-0", "v10-1", "v10-2"])
        for m, e in got.items():
            self.assertNotIn(ORIGINAL, e["event_properties"])
            self.assertNotIn(UNCORRECTED, e["event_properties"])


if __name__ == "__main__":
    unittest.main()
