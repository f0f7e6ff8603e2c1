"""Event names are data: spaces, commas, the trailing period, parentheses,
quotes, backslashes, tabs, newlines, non-ASCII and very long names round-trip
through ferry-record (flags, --jsonl, --strict with a catalog that spells
them with escapes) to ferry-journal dump and stat --by-type."""
import json

from catalogtest import CATALOG, EX_OK, CatalogTestCase, escape, load_catalog, main

NAMES = [
    "Service start",
    "Device bootstrap failed, retrying",
    "Delta still processing remotely.",
    "GET app (v1)",
    "Restart container (v1)",
    "Not running containers because of contract violations: gpu-worker. sensor",
    "Some releases were rejected due to having unmet requirements:\n  my-fleet: Services with unmet "
    "requirements: gpu-worker, camera",
    "tab\tinside",
    "back\\slash and \"quotes\"",
    "  leading and trailing spaces  ",
    "Ünïcödé — événement ✓",
    "L" * 5000 + " very long",
]


class Names(CatalogTestCase):
    def test_flags_round_trip(self):
        j = self.path("j")
        for n in NAMES:
            self.record_ok(j, "-t", n, "-d", "dev1")
        self.assertEqual([r["event"]["event_type"] for r in self.dump(j)], NAMES)

    def test_jsonl_round_trip_and_counts(self):
        j = self.path("j")
        lines = []
        for i, n in enumerate(NAMES):
            lines += [{"event_type": n, "device_id": "dev1", "time": 1795939200000 + i}] * (i + 1)
        rc, err, _ = self.jsonl(j, lines)
        self.assertEqual(rc, EX_OK, err)
        self.assertEqual([r["event"]["event_type"] for r in self.dump(j)], [l["event_type"] for l in lines])
        rc, out, err = self.journal_tool(j, "stat", "--by-type", "--json", "--catalog", CATALOG)
        self.assertEqual(rc, EX_OK, err)
        s = json.loads(out)
        self.assertEqual(s["by_type"], {n: i + 1 for i, n in enumerate(NAMES)})
        known = {n for n, _, _ in load_catalog()}
        self.assertEqual(set(s["unknown_types"]), set(NAMES) - known)
        # the text form quotes names with control characters, one line each
        rc, out, err = self.journal_tool(j, "stat", "--by-type", "--catalog", CATALOG)
        self.assertEqual(rc, EX_OK, err)
        text = out.decode("utf-8")
        self.assertIn('"tab\\tinside"', text)
        self.assertIn("Delta still processing remotely.\n", text)
        self.assertIn("Device bootstrap failed, retrying\n", text)

    def test_custom_catalog_with_escapes(self):
        rows = "".join("%s\tCustom\n" % escape(n) for n in NAMES)
        cat = self.write("names.tsv", "event_type\tcategory\n" + rows)
        self.assertEqual([n for n, _, _ in load_catalog(cat)], NAMES)
        j = self.path("j")
        lines = [{"event_type": n, "device_id": "dev1"} for n in NAMES]
        rc, err, _ = self.jsonl(j, lines, "--strict", "--catalog", cat)
        self.assertEqual(rc, EX_OK, err)
        for n in NAMES:
            self.record_ok(j, "--strict", "--catalog", cat, "-t", n, "-d", "dev1")
        self.assertEqual([r["event"]["event_type"] for r in self.dump(j)], NAMES + NAMES)
        rc, out, err = self.journal_tool(j, "stat", "--by-category", "--json", "--catalog", cat)
        self.assertEqual(rc, EX_OK, err)
        self.assertEqual(json.loads(out)["by_category"], {"Custom": 2 * len(NAMES), "unknown": 0})
        # a near miss of the long name still gets a suggestion, computed in bounded time
        rc, _, err = self.record(j, "--strict", "--catalog", cat, "-t", "L" * 4999 + " very long", "-d", "d")
        self.assertEqual(rc, 65)
        self.assertIn("did you mean", err)


if __name__ == "__main__":
    main()
