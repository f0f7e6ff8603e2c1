"""ferry-journal stat --by-type / --by-category on generated streams: the
counts equal those computed here from ferry-gen's output; deleted events are
not counted (only what is stored)."""
import collections
import json

from catalogtest import CATALOG, EX_OK, CatalogTestCase, load_catalog, main


class Stat(CatalogTestCase):
    def test_counts_match_the_stream(self):
        j = self.path("j")
        data = self.gen("--seed", "11", "--devices", "6", "--hours", "6")
        self.record_stream(j, data)
        events = [json.loads(l) for l in data.decode("utf-8").splitlines()]
        by_type = collections.Counter(e["event_type"] for e in events)
        cat = {n: c for n, c, _ in load_catalog()}
        by_cat = collections.Counter(cat.get(e["event_type"], "unknown") for e in events)
        rc, out, err = self.journal_tool(j, "stat", "--by-type", "--by-category", "--json", "--catalog", CATALOG)
        self.assertEqual(rc, EX_OK, err)
        s = json.loads(out)
        self.assertEqual(s["stored"], len(events))
        self.assertEqual(s["by_type"], dict(by_type))
        self.assertEqual(s["unknown_types"], {})
        want = {c: by_cat.get(c, 0) for c in ("EventTracker", "SystemEvent", "SystemMessage", "ConfigChange")}
        want["unknown"] = 0
        self.assertEqual(s["by_category"], want)
        self.assertEqual(list(s["by_category"]), list(want), "categories in catalog order, unknown last")
        self.assertEqual(s["catalog"], CATALOG)
        # the usual keys are still there
        for k in ("journal", "recorded", "pending", "destinations"):
            self.assertIn(k, s)
        # text form
        rc, out, err = self.journal_tool(j, "stat", "--by-category", "--catalog", CATALOG)
        self.assertEqual(rc, EX_OK, err)
        text = out.decode("utf-8")
        self.assertIn("by category (stored events; catalog %s)" % CATALOG, text)
        self.assertRegex(text, r"\n +%d  SystemEvent\n" % by_cat["SystemEvent"])

    def test_plain_stat_unchanged_and_unknown_counted(self):
        j = self.path("j")
        self.record_ok(j, "-t", "Reboot", "-d", "d")
        self.record_ok(j, "-t", "Rebooot", "-d", "d")
        self.record_ok(j, "-t", "Rebooot", "-d", "d")
        s = self.stat(j)
        self.assertNotIn("by_type", s)
        rc, out, err = self.journal_tool(j, "stat", "--by-type", "--catalog", CATALOG)
        self.assertEqual(rc, EX_OK, err)
        text = out.decode("utf-8")
        self.assertRegex(text, r"\n +2  unknown +Rebooot\n")
        self.assertRegex(text, r"\n +1  SystemMessage +Reboot\n")
        self.assertIn("2 type(s), 1 of them not in the catalog (2 event(s))", text)

    def test_empty_journal(self):
        j = self.path("j")
        self.record_ok(j, "--opt-out", "-t", "Reboot", "-d", "d")  # creates nothing
        self.record_ok(j, "-t", "Reboot", "-d", "d")
        rc, out, err = self.journal_tool(j, "stat", "--by-type", "--json", "--catalog", CATALOG)
        self.assertEqual(rc, EX_OK, err)
        self.assertEqual(json.loads(out)["by_type"], {"Reboot": 1})


if __name__ == "__main__":
    main()
