"""ferry-gen: deterministic bytes, realistic shapes (uuids, versions, stack
sizes, property keys per the catalog, crash-loop and retry rates, the
release-update order of data/release-update-3-services.jsonl and its
variants) and every line valid for ferry-record --strict."""
import collections
import json
import os
import re

from catalogtest import CATALOG, DATA, EX_OK, EX_USAGE, GEN, CatalogTestCase, load_catalog, main

UUID32 = re.compile(r"^[0-9a-f]{32}$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")
IMAGE = re.compile(r"^registry2\.balena-cloud\.com/v2/[0-9a-f]{32}@sha256:[0-9a-f]{64}$")
SVC_KEYS = ["appId", "serviceId", "serviceName", "commit", "releaseId"]
IMGF_KEYS = ["name", "appId", "appUuid", "serviceId", "serviceName", "imageId", "releaseId", "commit"]
IMGR_KEYS = ["name", "appId", "serviceId", "serviceName", "imageId", "releaseId", "dependent", "appUuid", "commit"]
START = 1795939200000
HOUR = 3600000


def props_of(catalog_props):
    inner = catalog_props.strip("{}")
    return set(inner.split(",")) if inner else set()


class Gen(CatalogTestCase):
    def test_same_seed_same_bytes(self):
        args = ["--devices", "7", "--hours", "5"]
        a = self.gen("--seed", "5", *args)
        self.assertEqual(a, self.gen("--seed", "5", *args))
        self.assertNotEqual(a, self.gen("--seed", "6", *args))
        self.assertGreater(len(a), 100000)
        # the default seed is 1; --count is a prefix of the same stream
        self.assertEqual(self.gen(*args), self.gen("--seed", "1", *args))
        head = self.gen("--seed", "5", "--count", "100", *args)
        self.assertEqual(head, b"".join(a.splitlines(True)[:100]))
        # the truth file is deterministic too
        self.gen("--seed", "5", *args, truth=self.path("t1"))
        self.gen("--seed", "5", *args, truth=self.path("t2"))
        with open(self.path("t1"), "rb") as f1, open(self.path("t2"), "rb") as f2:
            self.assertEqual(f1.read(), f2.read())

    def test_shapes(self):
        catalog = {n: (c, props_of(p)) for n, c, p in load_catalog()}
        events = self.gen_events("--seed", "3", "--devices", "12", "--hours", "8", truth=self.path("truth"))
        self.assertGreater(len(events), 2000)
        types, stacks, devices = collections.Counter(), [], {}
        last_time = 0
        for e in events:
            t = e["event_type"]
            types[t] += 1
            self.assertIn(t, catalog, "not in the catalog: %r" % t)
            self.assertRegex(e["device_id"], UUID32)
            self.assertEqual(e["os_name"], "balenaOS")
            self.assertRegex(e["app_version"], r"^\d+\.\d+\.\d+$")
            self.assertRegex(e["os_version"], r"^\d+\.\d+\.\d+(\+rev\d+)?$")
            self.assertTrue(e["device_model"])
            self.assertIsInstance(e["time"], int)
            self.assertTrue(START <= e["time"] < START + 8 * HOUR)
            self.assertGreaterEqual(e["time"], last_time, "events are in time order")
            last_time = e["time"]
            devices.setdefault(e["device_id"], (e["app_version"], e["os_version"], e["device_model"]))
            self.assertEqual(devices[e["device_id"]], (e["app_version"], e["os_version"], e["device_model"]))
            p = e["event_properties"]
            self.assertEqual(set(p), catalog[t][1], "%s: properties %s" % (t, list(p)))
            keys = list(p)
            if "error" in keys and len(keys) > 1 and "appId" not in keys:
                self.assertEqual(keys[-1] if "delay" in keys else keys[0], "error", "mask order: %s" % keys)
            if "service" in p:
                want = SVC_KEYS if "commit" in p["service"] else [k for k in SVC_KEYS if k != "commit"]
                self.assertEqual(list(p["service"]), want)
            if "image" in p:
                self.assertIn(list(p["image"]), (IMGF_KEYS, IMGR_KEYS))
                self.assertRegex(p["image"]["name"], IMAGE)
                self.assertRegex(p["image"]["appUuid"], HEX32)
                self.assertRegex(p["image"]["commit"], HEX32)
            if isinstance(p.get("error"), dict):
                self.assertEqual(list(p["error"]), ["message", "stack"])
                stacks.append(len(p["error"]["stack"].encode("utf-8")))
                self.assertTrue(p["error"]["stack"].startswith("Error: " + p["error"]["message"]))
            if t == "Device bootstrap failed, retrying":
                self.assertEqual(p["delay"], 30000)
            if t in ("Take update locks", "Release update locks"):
                self.assertIsInstance(p["appId"], str)
        self.assertEqual(len(devices), 12)
        self.assertGreater(len(stacks), 20)
        for n in stacks:
            self.assertTrue(300 <= n <= 3000, "stack of %d bytes" % n)
        self.assertGreater(max(stacks) - min(stacks), 1000, "stack sizes vary")
        self.assertGreaterEqual(len(types), 30, "the default mix uses most of the catalog: %s" % sorted(types))

    def test_every_line_recordable_strict(self):
        data = self.gen("--seed", "9", "--devices", "5", "--hours", "4")
        j = self.path("j")
        self.record_stream(j, data, "--strict", "--catalog", CATALOG)
        self.assertEqual(self.stat(j)["stored"], len(data.splitlines()))

    def test_crash_loop_rates(self):
        truth = self.path("truth")
        events = self.gen_events("--seed", "4", "--devices", "20", "--hours", "6", "--scenario", "crash-loop",
                                 "--services", "2", truth=truth)
        with open(truth) as f:
            loops = [json.loads(l) for l in f if '"crash_loop"' in l]
        self.assertEqual(len(loops), 20)
        modes = set()
        for lp in loops:
            span = lp["end"] - lp["start"]
            self.assertGreaterEqual(span, 9 * 60000)
            rate = lp["events"] * HOUR / span
            self.assertTrue(120 <= rate <= 480, "%.1f events/h: %s" % (rate, lp))
            modes.add(lp["mode"])
            mine = [e for e in events if e["device_id"] == lp["device_id"]
                    and e["event_properties"]["service"]["serviceName"] == lp["service"]]
            self.assertEqual(len(mine), lp["events"])
            self.assertEqual([e["event_type"] for e in mine[:4]],
                             ["Service exit", "Service restart", "Service exit", "Service restart"])
        self.assertEqual(modes, {"dies-at-once", "runs-then-dies"})

    def test_offline_and_bootstrap_rates(self):
        truth = self.path("truth")
        events = self.gen_events("--seed", "8", "--devices", "10", "--hours", "12", "--scenario",
                                 "offline-report-failures", "--scenario", "bootstrap-retry", truth=truth)
        with open(truth) as f:
            windows = [json.loads(l) for l in f if '"offline"' in l]
        self.assertEqual(len(windows), 10)
        for w in windows:
            reports = [e["time"] for e in events if e["device_id"] == w["device_id"]
                       and e["event_type"] == "Device state report failure"]
            self.assertTrue(all(w["start"] <= t < w["end"] for t in reports))
            if w["end"] - w["start"] >= 2 * HOUR:
                first_hour = [t for t in reports if t < w["start"] + HOUR]
                second_hour = [t for t in reports if w["start"] + HOUR <= t < w["start"] + 2 * HOUR]
                self.assertTrue(8 <= len(first_hour) <= 11, len(first_hour))
                self.assertTrue(3 <= len(second_hour) <= 5, len(second_hour))
        for dev in {e["device_id"] for e in events}:
            boots = [e["time"] for e in events if e["device_id"] == dev and e["event_type"].startswith("Device bootstrap")]
            if len(boots) > 20:
                rate = len(boots) * HOUR / (boots[-1] - boots[0])
                self.assertLessEqual(rate, 241)
            self.assertEqual([e["event_type"] for e in events if e["device_id"] == dev][0], "Supervisor start")

    def phase(self, t):
        return {"Update notification": 0, "Delta image download": 1, "Image downloaded": 1,
                "Take update locks": 2, "Service kill": 3, "Service exit": 3, "Service stop": 3,
                "Image removal": 4, "Image removed": 4, "Service install": 5, "Service installed": 5,
                "Service start": 5, "Service started": 5, "Release update locks": 6}[t]

    def test_release_update_order(self):
        with open(os.path.join(DATA, "release-update-3-services.jsonl")) as f:
            reference = collections.Counter(json.loads(l)["event"] for l in f)
        events = self.gen_events("--seed", "2", "--devices", "16", "--hours", "1", "--scenario", "release-update",
                                 "--variant", "plain", "--services", "3")
        by_dev = collections.defaultdict(list)
        for e in events:
            by_dev[e["device_id"]].append(e)
        with_locks = 0
        for dev, evs in by_dev.items():
            types = collections.Counter(e["event_type"] for e in evs)
            if "Take update locks" in types:
                with_locks += 1
                self.assertEqual(types, reference)
            else:
                self.assertEqual(types + collections.Counter({"Take update locks": 1, "Release update locks": 1}),
                                 reference)
            phases = [self.phase(e["event_type"]) for e in evs]
            self.assertEqual(phases, sorted(phases), "phases out of order on %s" % dev)
            for svc in ("backend", "frontend", "proxy"):
                seq = [e["event_type"] for e in evs
                       if e["event_properties"].get("service", e["event_properties"].get("image", {}))
                       .get("serviceName") == svc]
                self.assertEqual([t for t in seq if self.phase(t) == 5],
                                 ["Service install", "Service installed", "Service start", "Service started"])
                self.assertEqual([t for t in seq if self.phase(t) == 3], ["Service kill", "Service exit", "Service stop"])
                rel = {e["event_properties"]["service"]["releaseId"] for e in evs
                       if e["event_type"] == "Service kill" and e["event_properties"]["service"]["serviceName"] == svc}
                rel_new = {e["event_properties"]["service"]["releaseId"] for e in evs
                           if e["event_type"] == "Service start" and e["event_properties"]["service"]["serviceName"] == svc}
                self.assertEqual(len(rel | rel_new), 2, "kills describe the old release, starts the new one")
        self.assertTrue(0 < with_locks < 16, "both supervisor eras appear")

    def test_variants(self):
        def types_of(*variant):
            args = ["--seed", "12", "--devices", "6", "--hours", "2", "--scenario", "release-update", "--services", "3"]
            for v in variant:
                args += ["--variant", v]
            return collections.Counter(e["event_type"] for e in self.gen_events(*args))
        plain = types_of("plain")
        self.assertEqual(plain["Service kill"], 18)
        unchanged = types_of("unchanged-service")
        self.assertEqual(unchanged["Service kill"], 12)
        self.assertEqual(unchanged["Image removal"], 18)
        self.assertEqual(unchanged["Delta image download"], 18)
        self.assertGreater(types_of("delta-not-ready")["Delta still processing remotely."], 6)
        fail = types_of("download-failure")
        self.assertGreaterEqual(fail["Image download error"], 6)
        self.assertEqual(fail["Service kill"], 18)
        self.assertGreater(types_of("crash-after-update")["Service restart"], 6 * 10)
        cut = types_of("cut-off")
        self.assertEqual(cut["Supervisor start"], 6)
        self.assertEqual(cut["Service started"], 18)
        self.assertEqual(cut["Update notification"], 6)

    def test_first_install_counts(self):
        events = self.gen_events("--seed", "21", "--devices", "5", "--scenario", "first-install", "--services", "3")
        by_dev = collections.defaultdict(collections.Counter)
        for e in events:
            by_dev[e["device_id"]][e["event_type"]] += 1
        for dev, c in by_dev.items():
            vols = c["Volume creation"]
            self.assertLessEqual(vols, 2)
            self.assertEqual(sum(c.values()), 4 + vols + 6 * 3, dict(c))
            self.assertEqual(c["Docker image download"], 3)
            self.assertNotIn("Delta image download", c)

    def test_options(self):
        out = self.gen("--rate", "2000", "--count", "40", "--devices", "3")
        self.assertEqual(len(out.splitlines()), 40)
        for bad in (["--truth", self.path("t"), "--count", "3"], ["--scenario", "nope"], ["--variant", "x"],
                    ["--hours", "0"], ["--hours", "abc"], ["--devices", "0"], ["--services", "13"], ["extra"]):
            rc, _, err = self.run_proc([GEN] + bad)
            self.assertEqual(rc, EX_USAGE, bad)
            self.assertIn("ferry-gen --help", err)
        rc, out, _ = self.run_proc([GEN, "--help"])
        self.assertEqual(rc, EX_OK)
        for word in (b"first-install", b"bootstrap-retry", b"release-update", b"crash-loop",
                     b"offline-report-failures", b"config-change", b"--truth", b"--rate", b"same"):
            self.assertIn(word, out)
        a = self.gen("--hours", "0.5", "--start", "1700000000000")
        self.assertTrue(all(1700000000000 <= json.loads(l)["time"] < 1700000000000 + HOUR // 2 for l in a.splitlines()))


if __name__ == "__main__":
    main()
