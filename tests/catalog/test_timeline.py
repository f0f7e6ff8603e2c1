"""ferry-journal timeline on generated streams: every operation (start, end,
duration, outcome, attempts, cut_by, cut_at) and every per-release summary
equals ferry-gen's --truth; unmatched starts are reported; --device-id,
--since and --until filter; the hand-made demo update gives its known
end-to-end time."""
import json
import os

from catalogtest import DATA, EX_OK, EX_USAGE, CatalogTestCase, main

OP_FIELDS = ["device_id", "op", "service", "release_id", "image", "image_id", "start", "end", "duration_ms",
             "outcome", "attempts", "cut_by", "cut_at"]
REL_FIELDS = ["device_id", "release_id", "start", "notified", "end", "duration_ms", "outcome", "operations",
              "errors", "unmatched", "services_started", "restarts"]


def pick(o, fields):
    return tuple(json.dumps(o.get(f)) for f in fields)


class Timeline(CatalogTestCase):
    def run_case(self, *args):
        j, truth = self.path("j"), self.path("truth")
        self.record_stream(j, self.gen(*args, truth=truth))
        with open(truth) as f:
            want = [json.loads(l) for l in f]
        got = self.timeline(j)
        self.compare(want, got, args)
        return j, want, got

    def compare(self, want, got, what):
        for kind, fields in (("operation", OP_FIELDS), ("release", REL_FIELDS)):
            w = sorted(pick(o, fields) for o in want if o["type"] == kind)
            g = sorted(pick(o, fields) for o in got if o["type"] == kind)
            if w != g:
                self.fail("%s %ss differ (%d vs %d):\nonly in truth: %s\nonly in timeline: %s" % (
                    " ".join(what), kind, len(w), len(g), sorted(set(w) - set(g))[:3], sorted(set(g) - set(w))[:3]))
        summary = got[-1]
        self.assertEqual(summary["type"], "summary")
        self.assertEqual(summary["operations"], sum(o["type"] == "operation" for o in want))
        self.assertEqual(summary["unmatched"], sum(o.get("outcome") == "unmatched" for o in want))
        self.assertEqual(summary["orphan_finishes"], 0)

    def test_default_mix(self):
        for seed in ("1", "2", "3"):
            with self.subTest(seed=seed):
                _, want, got = self.run_case("--seed", seed, "--devices", "6", "--hours", "6")
                rels = [o for o in got if o["type"] == "release"]
                self.assertTrue(any(r["notified"] and r["outcome"] == "complete" and r["duration_ms"] > 0
                                    for r in rels))
                self.setUp()

    def test_variants_and_cut_offs(self):
        _, want, got = self.run_case("--seed", "7", "--devices", "6", "--hours", "2", "--scenario", "release-update",
                                     "--variant", "cut-off", "--variant", "delta-not-ready",
                                     "--variant", "download-failure", "--variant", "crash-after-update")
        cut = [o for o in got if o["type"] == "operation" and o["cut_by"] == "Supervisor start"]
        self.assertGreaterEqual(len(cut), 6)
        self.assertTrue(all(o["outcome"] == "unmatched" and o["end"] is None for o in cut))
        self.assertTrue(any(o["attempts"] > 1 for o in got if o["type"] == "operation"))
        errors = [o for o in got if o["type"] == "operation" and o["outcome"] == "error"]
        self.assertTrue(errors and all(o["error"] for o in errors))
        rels = [o for o in got if o["type"] == "release" and o["notified"]]
        self.assertEqual(len(rels), 6)
        self.assertTrue(all(r["outcome"] == "complete" and r["unmatched"] >= 1 and r["restarts"] > 0 for r in rels))

    def test_cut_by_the_end_of_the_span(self):
        _, want, got = self.run_case("--seed", "3", "--devices", "10", "--hours", "0.04", "--scenario",
                                     "release-update")
        self.assertTrue(any(o["type"] == "operation" and o["outcome"] == "unmatched" and o["cut_by"] is None
                            for o in got))
        self.assertTrue(any(o["type"] == "release" and o["outcome"] == "incomplete" and o["end"] is None
                            for o in got))

    def test_other_scenarios(self):
        self.run_case("--seed", "5", "--devices", "8", "--hours", "3", "--scenario", "bootstrap-retry",
                      "--scenario", "first-install", "--scenario", "config-change", "--scenario", "user-actions",
                      "--variant", "unchanged-service")

    def test_filters(self):
        j, want, _ = self.run_case("--seed", "9", "--devices", "4", "--hours", "4")
        dev = want[1]["device_id"]
        got = self.timeline(j, "--device-id", dev)
        self.compare([o for o in want if o.get("device_id") in (dev, None)], got, ["--device-id"])
        self.assertEqual(got[-1]["devices"], 1)
        # --since at an update's notification: no operation is open then
        rel = [o for o in want if o["type"] == "release" and o["device_id"] == dev and o["notified"]][0]
        got = self.timeline(j, "--device-id", dev, "--since", str(rel["start"]))
        self.compare([o for o in want if o.get("device_id") == dev and o.get("start", 0) >= rel["start"]
                      and o["type"] in ("operation", "release")] + [{"type": "span"}], got, ["--since"])
        # --until in the middle: what finishes later is unmatched, with no cut
        ops = [o for o in want if o["type"] == "operation" and o["device_id"] == dev and o["end"]]
        mid = ops[len(ops) // 2]
        until = mid["start"] + max(1, mid["duration_ms"] // 2)
        got = self.timeline(j, "--device-id", dev, "--until", str(until))
        got_ops = {pick(o, OP_FIELDS[:7]): o for o in got if o["type"] == "operation"}
        for o in want:
            if o["type"] != "operation" or o["device_id"] != dev or o["start"] >= until:
                continue
            g = got_ops.pop(pick(o, OP_FIELDS[:7]) if o["end"] is not None and o["end"] < until else
                            pick(dict(o, end=None), OP_FIELDS[:7]), None)
            self.assertIsNotNone(g, "missing %s" % o)
            if o["end"] is None or o["end"] >= until:
                self.assertEqual((g["outcome"], g["end"]), ("unmatched", None))
                if o["cut_at"] is None or o["cut_at"] >= until:
                    self.assertIsNone(g["cut_by"])
        self.assertEqual(got_ops, {})
        # ISO and relative forms are accepted; garbage is a usage error
        rc, _, err = self.journal_tool(j, "timeline", "--since", "2026-11-29T08:30:00Z")
        self.assertEqual(rc, EX_OK, err)
        rc, _, _ = self.journal_tool(j, "timeline", "--since", "3650d")
        self.assertEqual(rc, EX_OK)
        for bad in (["--since", "yesterday"], ["--bogus"], ["--since"]):
            rc, _, err = self.journal_tool(j, "timeline", *bad)
            self.assertEqual(rc, EX_USAGE, bad)

    def test_demo_update_and_text(self):
        j = self.path("j")
        with open(os.path.join(DATA, "demo-release-update.jsonl"), "rb") as f:
            self.record_stream(j, f.read())
        got = self.timeline(j)
        rels = [o for o in got if o["type"] == "release"]
        self.assertEqual(len(rels), 1)
        r = rels[0]
        self.assertEqual((r["release_id"], r["notified"], r["duration_ms"], r["outcome"], r["services_started"],
                          r["operations"], r["errors"], r["unmatched"]),
                         (2411876, True, 88012, "complete", 3, 15, 0, 0))
        ops = {(o["op"], o["service"]): o for o in got if o["type"] == "operation"}
        self.assertEqual(ops[("download", "backend")]["duration_ms"], 74530 - 1480)
        self.assertEqual(ops[("kill", "backend")]["duration_ms"], 84790 - 74655)
        self.assertEqual(ops[("kill", "backend")]["release_id"], 2410055)
        self.assertEqual(ops[("start", "proxy")]["duration_ms"], 87688 - 87105)
        self.assertEqual(ops[("removal", "frontend")]["finish_event"], "Image removed")
        rc, out, err = self.journal_tool(j, "timeline")
        self.assertEqual(rc, EX_OK, err)
        text = out.decode("utf-8")
        self.assertIn("device 7f3c2a9e41b84d6f9a0c5e1d2b3f4a5c\n", text)
        self.assertIn("1m13.050s  downloaded", text)
        self.assertIn("release 2411876: complete, 2026-11-29T08:00:00.000Z -> 2026-11-29T08:01:28.012Z "
                      "(1m28.012s from the update notification)", text)
        self.assertIn("1 device(s), 15 operation(s), 0 unmatched", text)

    def test_orphans_and_cuts_by_hand(self):
        j = self.path("j")
        dev = "0123456789abcdef0123456789abcdef"
        svc = {"service": {"appId": 1, "serviceId": 2, "serviceName": "api", "releaseId": 3}}
        lines = [
            {"event_type": "Service started", "device_id": dev, "time": 1000, "event_properties": svc},  # orphan
            {"event_type": "Service install", "device_id": dev, "time": 2000, "event_properties": svc},
            {"event_type": "Reboot", "device_id": dev, "time": 2500},
            {"event_type": "Service install", "device_id": dev, "time": 3000, "event_properties": svc},
            {"event_type": "Service install", "device_id": dev, "time": 3500, "event_properties": svc},
            {"event_type": "Service install error", "device_id": dev, "time": 3900,
             "event_properties": {"error": {"message": "no space left", "stack": "Error: no space left"}, **svc}},
            {"event_type": "Device bootstrap", "user_id": "no-device", "time": 4000},  # no device_id: ignored
        ]
        rc, err, _ = self.jsonl(j, lines)
        self.assertEqual(rc, EX_OK, err)
        got = self.timeline(j)
        ops = [o for o in got if o["type"] == "operation"]
        self.assertEqual([(o["start"], o["outcome"], o["cut_by"], o["cut_at"]) for o in ops],
                         [(2000, "unmatched", "Reboot", 2500), (3000, "unmatched", "Service install", 3500),
                          (3500, "error", None, None)])
        self.assertEqual(ops[2]["error"], "no space left")
        self.assertEqual(got[-1]["orphan_finishes"], 1)
        rels = [o for o in got if o["type"] == "release"]
        self.assertEqual([(r["outcome"], r["operations"], r["errors"], r["unmatched"]) for r in rels],
                         [("failed", 3, 1, 2)])


if __name__ == "__main__":
    main()
