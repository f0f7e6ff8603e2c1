"""Round trips through captures: journal -> capture -> import -> the same
dump; delivery state (delivered, dead, pending) travels; importing twice adds
nothing; captures of two devices share one journal; a capture never comes
back into its own journal."""
import json
import os
import unittest

from fieldlib import FieldCase, device, events, invalid_events, parse_capture, header_fields


def varied(n, dev):
    """Events with every kind of JSON value, on one device."""
    out = []
    for i in range(n):
        out.append({"event_type": ["Service start", "Image downloaded", "Device bootstrap failed, retrying"][i % 3],
                    "device_id": dev, "time": 1795939200000 + i * 1000,
                    "event_properties": {"marker": "%s-%05d" % (dev[-4:], i), "n": i, "ratio": i / 7.0,
                                         "big": 9223372036854775807 - i, "neg": -i, "ok": i % 2 == 0, "none": None,
                                         "nested": {"list": [1, "two", [3.5, {"d": []}]]},
                                         "text": "ü 日本 🚀 \"q\" \\ \n\t"},
                    "app_version": "14.1.3", "os_name": "balenaOS"})
    return out


class RoundTrip(FieldCase):
    def test_capture_import_dump_equal(self):
        src, dst = self.jdir("device"), self.jdir("laptop")
        self.record_into(src, varied(300, device(1)))
        cap = self.export(src, "capture", "device.fyc")
        self.assert_verify_clean(cap)
        self.assert_verify_clean(src)
        with open(cap, "rb") as f:
            data = f.read()
        layout = parse_capture(data)
        h = header_fields(data)
        self.assertEqual(len(layout["entries"]), 300)
        self.assertEqual(h["count"], 300)
        self.assertEqual((h["first_seq"], h["last_seq"]), (1, 300))
        self.assertEqual(h["devices"], [device(1).encode()])
        self.assertEqual(h["destinations"], ["amplitude"])
        self.assertEqual(h["filter"], {})
        self.assertEqual(h["journal_id"], self.stat_of(src)["journal_id"])

        res = self.import_capture(cap, dst)
        self.assertEqual((res["imported"], res["already_present"], res["pending"]), (300, 0, 300))
        self.assertEqual((res["first_seq"], res["last_seq"]), (1, 300))
        self.assertEqual(self.dump_text(dst), self.dump_text(src))
        self.assert_verify_clean(dst)
        # The same capture again adds nothing.
        res = self.import_capture(cap, dst)
        self.assertEqual((res["imported"], res["already_present"]), (0, 300))
        self.assertEqual(self.dump_text(dst), self.dump_text(src))
        self.assertEqual(self.stat_of(dst)["recorded"], 300)
        # Nor does a capture brought back into the journal it came from.
        res = self.import_capture(cap, src)
        self.assertEqual(res["imported"], 0)
        self.assertEqual(self.stat_of(src)["recorded"], 300)

    def test_delivery_state_travels(self):
        """Delivered (kept), dead and pending events: the imported journal
        exports the same JSON Lines, delivery and dead letters included."""
        src, dst = self.jdir("device"), self.jdir("laptop")
        first = events(40, devices=2)
        bad = invalid_events(4)
        self.record_into(src, first[:20] + bad + first[20:])
        with self.sink() as sink:
            self.replay_journal(src, sink, "--keep-delivered")
        self.record_into(src, events(15, devices=2, start=100))
        st = self.stat_of(src)
        self.assertEqual((st["pending"], st["dead"], st["stored"]), (15, 4, 59))
        cap = self.export(src, "capture", "device.fyc")
        self.assert_verify_clean(cap)
        res = self.import_capture(cap, dst)
        self.assertEqual((res["imported"], res["pending"], res["delivered"], res["dead"]), (59, 15, 40, 4))
        self.assertEqual(self.dump_text(dst), self.dump_text(src))
        a = self.tool(src, "export", "--format", "jsonl", check=0).stdout
        b = self.tool(dst, "export", "--format", "jsonl", check=0).stdout
        self.assertEqual(a, b)
        lines = [json.loads(l) for l in a.decode().splitlines()]
        self.assertEqual(sum(l["state"] == "dead" for l in lines), 4)
        self.assertEqual(sum(l["state"] == "delivered" for l in lines), 40)
        self.assertEqual(sum(l["state"] == "pending" for l in lines), 15)
        for l in lines:
            if l["state"] == "dead":
                self.assertEqual(l["dead"]["amplitude"]["status"], 400)
                self.assertTrue(l["dead"]["amplitude"]["reason"])
        sd, dd = self.stat_of(src), self.stat_of(dst)
        for k in ("pending", "dead", "stored", "recorded"):
            self.assertEqual(sd[k], dd[k], k)
        self.assertEqual(dd["destinations"][0]["sent"], 40)
        self.assertEqual(dd["destinations"][0]["dead"], 4)
        dead_src = self.tool(src, "dead", "--json", check=0).stdout
        dead_dst = self.tool(dst, "dead", "--json", check=0).stdout
        self.assertEqual(dead_src, dead_dst)  # same status, reason and time
        self.assert_verify_clean(dst)

    def test_pruned_source_keeps_numbers(self):
        """Delivered events deleted at the source leave gaps; a new journal
        importing the capture keeps the original sequence numbers, and a
        dead letter whose event is gone keeps its number from reuse."""
        src, dst = self.jdir("device"), self.jdir("laptop")
        self.record_into(src, events(30, devices=3) + invalid_events(2))
        with self.sink() as sink:
            self.replay_journal(src, sink)  # delivered events are deleted
        self.record_into(src, events(10, devices=3, start=50))
        st = self.stat_of(src)
        self.assertEqual((st["stored"], st["dead"], st["recorded"]), (10, 2, 42))
        cap = self.export(src, "capture", "device.fyc")
        res = self.import_capture(cap, dst)
        self.assertEqual((res["imported"], res["first_seq"], res["last_seq"]), (12, 31, 42))
        self.assertEqual(self.dump_text(dst), self.dump_text(src))
        self.assertEqual(self.tool(src, "dead", "--json", check=0).stdout,
                         self.tool(dst, "dead", "--json", check=0).stdout)
        # The next event on the laptop never takes a number already used.
        self.record_into(dst, events(1, start=99))
        self.assertEqual(self.dump_of(dst)[-1]["seq"], 43)
        self.assert_verify_clean(dst)

    def test_destinations(self):
        """A capture of a journal that delivers to "eu" only: a new journal
        takes that destination as it is; a used journal keeps sending its own
        events to its implied "amplitude" and does not send them to "eu"."""
        src, fresh, used = self.jdir("device"), self.jdir("fresh"), self.jdir("used")
        self.record_into(src, events(10, devices=2))
        with self.sink() as sink:
            self.replay_journal(src, sink, "--sink", "eu", "--keep-delivered")
        self.record_into(src, events(4, devices=2, start=100))
        cap = self.export(src, "capture", "eu.fyc")
        self.import_capture(cap, fresh)
        st = self.stat_of(fresh)
        self.assertEqual([(d["name"], d["pending"], d["delivered_through"]) for d in st["destinations"]],
                         [("eu", 4, 10)])
        self.record_into(used, events(3, start=500))
        r = self.import_capture(cap, used)
        self.assertEqual((r["first_seq"], r["last_seq"]), (4, 17))
        st = self.stat_of(used)
        self.assertEqual([(d["name"], d["pending"]) for d in st["destinations"]], [("amplitude", 17), ("eu", 4)])
        self.assert_verify_clean(used)

    def test_two_devices_one_journal(self):
        a, b, lap = self.jdir("a"), self.jdir("b"), self.jdir("laptop")
        self.record_into(a, varied(50, device(1)))
        self.record_into(b, varied(70, device(2)))
        cap_a = self.export(a, "capture", "a.fyc")
        cap_b = self.export(b, "capture", "b.fyc")
        ra = self.import_capture(cap_a, lap)
        rb = self.import_capture(cap_b, lap)
        self.assertEqual((ra["first_seq"], ra["last_seq"]), (1, 50))
        self.assertEqual((rb["first_seq"], rb["last_seq"]), (51, 120))
        got = self.dump_of(lap)
        want = self.dump_of(a) + self.dump_of(b)
        self.assertEqual([r["seq"] for r in got], list(range(1, 121)))
        self.assertEqual([(r["insert_id"], r["recorded_at"], r["event"]) for r in got],
                         [(r["insert_id"], r["recorded_at"], r["event"]) for r in want])
        # Both again, in the other order: nothing added.
        self.assertEqual(self.import_capture(cap_b, lap)["imported"], 0)
        self.assertEqual(self.import_capture(cap_a, lap)["imported"], 0)
        self.assertEqual(len(self.dump_of(lap)), 120)
        # More events on device a: a new capture adds only those.
        self.record_into(a, varied(5, device(1)))
        cap_a2 = self.export(a, "capture", "a2.fyc")
        r = self.import_capture(cap_a2, lap)
        self.assertEqual((r["imported"], r["already_present"], r["first_seq"]), (5, 50, 121))
        self.assert_verify_clean(lap)

    def test_filtered_captures_fill_in(self):
        """A capture of some types, then one of everything: each event once."""
        src, dst = self.jdir("device"), self.jdir("laptop")
        self.record_into(src, varied(60, device(3)))
        part = self.export(src, "capture", "part.fyc", "--type", "Service start")
        with open(part, "rb") as f:
            self.assertEqual(header_fields(f.read())["filter"], {"types": ["Service start"]})
        self.assertEqual(self.import_capture(part, dst)["imported"], 20)
        full = self.export(src, "capture", "full.fyc")
        r = self.import_capture(full, dst)
        self.assertEqual((r["imported"], r["already_present"]), (40, 20))
        got = sorted(r["insert_id"] for r in self.dump_of(dst))
        self.assertEqual(got, sorted(r["insert_id"] for r in self.dump_of(src)))

    def test_import_full_journal_refused_whole(self):
        """A journal too small for the capture takes nothing of it."""
        src, small = self.jdir("device"), self.jdir("small")
        big = [dict(e, event_properties={"pad": "x" * 1500, "i": i}) for i, e in enumerate(events(1200))]
        self.record_into(src, big)
        cap = self.export(src, "capture", "device.fyc")
        self.record_into(small, events(3), "--max-size", "1M")
        p = self.import_capture(cap, small, check=75)
        self.assertIn(b"--max-size", p.stderr)
        self.assertEqual(len(self.dump_of(small)), 3)
        r = self.import_capture(cap, small, "--max-size", "16M")
        self.assertEqual(r["imported"], 1200)


if __name__ == "__main__":
    unittest.main(verbosity=2)
