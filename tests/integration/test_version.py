"""Test 8: a journal of another major format version is refused.

ferry-testwriter rewrites meta "format"; ferry-record, ferry-journal and the
library then refuse the journal with a message naming both versions and exit
65, changing nothing. A newer minor version (1.7) is read and written."""
import hashlib
import json
import os

from ferrytest import EX_DATAERR, TESTWRITER, FerryTestCase, main


class Version(FerryTestCase):

    def setUp(self):
        super().setUp()
        self.j = self.path("journal")
        self.record_ok(self.j, "-t", "before", "-d", "d")

    def set_format(self, major, minor):
        rc, _, err = self.writer("set-format", self.j, str(major), str(minor))
        self.assertEqual(rc, 0, err)

    def digest(self):
        with open(os.path.join(self.j, "data.mdb"), "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()

    def check_refused(self, major, minor):
        msg = "journal %s has format version %d.%d; this build reads format 1.x" % (self.j, major, minor)
        before = self.digest()
        jsonl = self.path("in.jsonl")
        with open(jsonl, "w") as f:
            f.write(json.dumps({"event_type": "x", "device_id": "d"}) + "\n")
        runs = [
            ("ferry-record", self.record(self.j, "-t", "x", "-d", "d")),
            ("ferry-record --jsonl", self.record(self.j, "--jsonl", jsonl)),
            ("ferry-journal stat", self.journal_tool(self.j, "stat")),
            ("ferry-journal stat --json", self.journal_tool(self.j, "stat", "--json")),
            ("ferry-journal dump", self.journal_tool(self.j, "dump")),
            ("library", self.run_proc([TESTWRITER, "record", self.j, "w", "1"])),
        ]
        for what, (rc, out, err) in runs:
            self.assertEqual(rc, EX_DATAERR, "%s: rc %d\n%s" % (what, rc, err))
            self.assertIn(msg, err, what)
            self.assertEqual(out, b"", "%s printed something" % what)
        self.assertEqual(self.digest(), before, "a refused journal was written to")

    def test_major_2_refused(self):
        self.set_format(2, 0)
        self.check_refused(2, 0)

    def test_major_2_minor_5_refused(self):
        self.set_format(2, 5)
        self.check_refused(2, 5)

    def test_major_0_refused(self):
        self.set_format(0, 9)
        self.check_refused(0, 9)

    def test_newer_minor_accepted(self):
        """A minor change only adds: a 1.0 build reads and writes a 1.7 journal
        and leaves its version alone."""
        self.set_format(1, 7)
        self.record_ok(self.j, "-t", "after", "-d", "d")
        st = self.stat(self.j)
        self.assertEqual(st["format"], "1.7")
        recs = self.dump(self.j)
        self.assertSeqs(recs)
        self.assertEqual([r["event"]["event_type"] for r in recs], ["before", "after"])


if __name__ == "__main__":
    main()
