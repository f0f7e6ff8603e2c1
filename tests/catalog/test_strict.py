"""ferry-record --strict: every catalog name is accepted (flags and --jsonl),
a typo is a bad line naming the closest known name (exit 65), the default
catalog comes from $FERRY_CATALOG; without --strict unknown types are
recorded."""
import json
import os

from catalogtest import (CATALOG, EX_CONFIG, EX_DATAERR, EX_OK, EX_USAGE, CatalogTestCase, base_env,
                         load_catalog, main)


class Strict(CatalogTestCase):
    def test_every_catalog_name_accepted(self):
        names = [n for n, _, _ in load_catalog()]
        self.assertGreaterEqual(len(names), 60)
        lines = [{"event_type": n, "device_id": "dev1", "time": 1795939200000 + i} for i, n in enumerate(names)]
        rc, err, _ = self.jsonl(self.path("j"), lines, "--strict", "--catalog", CATALOG)
        self.assertEqual(rc, EX_OK, err)
        self.assertEqual([r["event"]["event_type"] for r in self.dump(self.path("j"))], names)
        for n in ("Delta still processing remotely.", "Device bootstrap failed, retrying", "GET app (v1)"):
            self.record_ok(self.path("j2"), "--strict", "--catalog", CATALOG, "-t", n, "-d", "dev1")

    def test_typo_rejected_with_closest_name(self):
        j = self.path("j")
        lines = [
            {"event_type": "Service start", "device_id": "d"},
            {"event_type": "Servce start", "device_id": "d"},
            {"event_type": "Delta still processing remotely", "device_id": "d"},
            {"event_type": "device bootstrap failed retrying", "device_id": "d"},
            {"event_type": "Completely unrelated thing", "device_id": "d"},
            "not json at all",
            {"event_type": "Reboot", "device_id": "d"},
        ]
        rc, err, p = self.jsonl(j, lines, "--strict", "--catalog", CATALOG)
        self.assertEqual(rc, EX_DATAERR)
        self.assertIn('%s:2: unknown event_type "Servce start" (did you mean "Service start"?)' % p, err)
        self.assertIn('%s:3: unknown event_type "Delta still processing remotely" '
                      '(did you mean "Delta still processing remotely."?)' % p, err)
        self.assertIn('%s:4: unknown event_type "device bootstrap failed retrying" '
                      '(did you mean "Device bootstrap failed, retrying"?)' % p, err)
        self.assertIn('%s:5: unknown event_type "Completely unrelated thing" (not in catalog %s)' % (p, CATALOG), err)
        self.assertIn("%s:6: invalid JSON" % p, err)
        self.assertEqual([r["event"]["event_type"] for r in self.dump(j)], ["Service start", "Reboot"])
        # --atomic: nothing at all
        rc, err, p = self.jsonl(self.path("j3"), lines, "--strict", "--catalog", CATALOG, "--atomic")
        self.assertEqual(rc, EX_DATAERR)

    def test_flags_typo(self):
        rc, _, err = self.record(self.path("j"), "--strict", "--catalog", CATALOG, "-t", "Servce start", "-d", "d")
        self.assertEqual(rc, EX_DATAERR)
        self.assertIn('ferry-record: --type: unknown event_type "Servce start" (did you mean "Service start"?)', err)
        self.assertFalse(os.path.exists(self.path("j", "data.mdb")), "a refused event created the journal")

    def test_names_in_messages_are_escaped_and_cut(self):
        name = "Servce\nstart\t\"quoted\"" + "x" * 400
        rc, _, err = self.record(self.path("j"), "--strict", "--catalog", CATALOG, "-t", name, "-d", "d")
        self.assertEqual(rc, EX_DATAERR)
        self.assertIn('unknown event_type "Servce\\nstart\\t\\"quoted\\"xxx', err)
        self.assertIn('..." (not in catalog', err)
        self.assertLess(len(err), 700)

    def test_default_catalog_from_environment(self):
        cat = self.write("mine.tsv", "event_type\tcategory\nMy event\tCustom\n")
        env = base_env(FERRY_CATALOG=cat)
        rc, _, err = self.record(self.path("j"), "--strict", "-t", "My event", "-d", "d", env=env)
        self.assertEqual(rc, EX_OK, err)
        rc, _, err = self.record(self.path("j"), "--strict", "-t", "Service start", "-d", "d", env=env)
        self.assertEqual(rc, EX_DATAERR)
        self.assertIn("not in catalog %s" % cat, err)
        rc, _, err = self.record(self.path("j"), "--strict", "-t", "x", "-d", "d",
                                 env=base_env(FERRY_CATALOG=self.path("missing.tsv")))
        self.assertEqual(rc, EX_CONFIG)
        # with no variable, the installed or source-tree catalog knows the supervisor's names
        env = base_env()
        env.pop("FERRY_CATALOG", None)
        rc, _, err = self.record(self.path("j"), "--strict", "-t", "Service start", "-d", "d", env=env)
        self.assertEqual(rc, EX_OK, err)

    def test_without_strict_unknown_types_are_recorded_and_counted(self):
        j = self.path("j")
        self.record_ok(j, "-t", "Servce start", "-d", "d")
        self.record_ok(j, "-t", "Service start", "-d", "d")
        rc, out, err = self.journal_tool(j, "stat", "--by-type", "--by-category", "--json", "--catalog", CATALOG)
        self.assertEqual(rc, EX_OK, err)
        s = json.loads(out)
        self.assertEqual(s["by_type"], {"Servce start": 1, "Service start": 1})
        self.assertEqual(s["unknown_types"], {"Servce start": 1})
        self.assertEqual(s["by_category"]["unknown"], 1)
        self.assertEqual(s["by_category"]["SystemEvent"], 1)

    def test_usage(self):
        rc, _, err = self.record(self.path("j"), "--catalog", CATALOG, "-t", "Reboot", "-d", "d")
        self.assertEqual(rc, EX_USAGE)
        self.assertIn("--catalog applies to --strict", err)
        rc, out, _ = self.run_proc([self._record_bin(), "--help"])
        self.assertEqual(rc, EX_OK)
        self.assertIn(b"--strict", out)
        self.assertIn(b"--catalog FILE", out)

    def _record_bin(self):
        return os.environ["FERRY_RECORD"]


if __name__ == "__main__":
    main()
