"""Test 9: usage errors exit 64 with a message and create nothing; --help
and --version exit 0; ferry-journal on a missing journal exits 66 naming it."""
import json
import os

from ferrytest import EX_NOINPUT, EX_USAGE, JOURNAL_TOOL, RECORD, FerryTestCase, base_env, main


class Usage(FerryTestCase):

    def setUp(self):
        super().setUp()
        self.j = self.path("journal")
        self.jsonl = self.path("in.jsonl")
        with open(self.jsonl, "w") as f:
            f.write(json.dumps({"event_type": "x", "device_id": "d"}) + "\n")

    def test_record_usage_errors(self):
        cases = [
            (["--bogus", "-t", "x", "-d", "d"], r"unrecognized option|invalid option"),
            (["-Z", "-t", "x", "-d", "d"], r"invalid option"),
            (["-d", "d"], r"--type"),
            ([], r"--type"),
            (["--jsonl", self.jsonl, "--type", "x"], r"--jsonl cannot be combined"),
            (["--type", "x", "--jsonl", self.jsonl], r"--jsonl cannot be combined"),
            (["--jsonl", self.jsonl, "-d", "d"], r"--jsonl cannot be combined"),
            (["--jsonl", self.jsonl, "-p", "k=v"], r"--jsonl cannot be combined"),
            (["--jsonl", self.jsonl, "--time", "1795939200000"], r"--jsonl cannot be combined"),
            (["--atomic", "-t", "x", "-d", "d"], r"--atomic"),
            (["-t", "x", "-d", "d", "stray"], r"unexpected argument 'stray'"),
            (["-t", "x", "-d", "d", "--time", "soon"], r"--time soon"),
            (["-t", "x", "-d", "d", "--time", "-5"], r"--time -5"),
            (["-t", "x", "-d", "d", "--time", "0"], r"--time 0"),
            (["-t", "x", "-d", "d", "--max-size", "12Q"], r"--max-size 12Q"),
            (["-t", "x", "-d", "d", "--max-size", "-1M"], r"--max-size -1M"),
            (["-t", "x", "-d", "d", "--durability", "fast"], r"--durability fast"),
            (["-t", "x", "-d", "d", "--overflow", "drop"], r"--overflow drop"),
            (["-t", "x", "-d", "d", "-p", "novalue"], r"KEY=VALUE"),
            (["-t", "x", "-d", "d", "-p", "=v"], r"KEY=VALUE"),
            (["-t", "x", "-d", "d", "-p", "k:={bad"], r"invalid JSON"),
            (["-t", "x", "-d", "d", "-p", "a=1", "-p", "a=2"], r"given twice"),
            (["-t", "x", "-d", "d", "--field", "novalue"], r"KEY=VALUE"),
            (["-t", "x", "-d", "d", "--user-prop", "k:=[1,"], r"invalid JSON"),
            (["-t"], r"requires an argument|--type"),
            (["--jsonl"], r"requires an argument|--jsonl"),
        ]
        for args, rx in cases:
            rc, out, err = self.record(self.j, *args)
            self.assertEqual(rc, EX_USAGE, "ferry-record %s: rc %d\n%s" % (" ".join(args), rc, err))
            self.assertRegex(err, rx, "ferry-record %s" % " ".join(args))
            self.assertEqual(out, b"")
            self.assertFalse(os.path.exists(self.j), "ferry-record %s created the journal" % " ".join(args))

    def test_help_and_version(self):
        for prog in (RECORD, JOURNAL_TOOL):
            for flag in ("--help", "-h"):
                rc, out, err = self.run_proc([prog, flag])
                self.assertEqual((rc, err), (0, ""), "%s %s" % (prog, flag))
                self.assertTrue(out.startswith(b"Usage: "), out[:200])
                self.assertIn(b"Exit codes", out)
            for flag in ("--version", "-V"):
                rc, out, err = self.run_proc([prog, flag])
                self.assertEqual((rc, err), (0, ""))
                self.assertRegex(out.decode(), r"^ferry-(record|journal) \d+\.\d+\.\d+\n$")
        rc, out, _ = self.run_proc([RECORD, "--help"])
        self.assertIn(b"--jsonl", out)
        self.assertFalse(os.path.exists(self.j))

    def test_journal_tool_usage_errors(self):
        self.record_ok(self.j, "-t", "x", "-d", "d")
        cases = [
            ([], r"Usage"),
            (["--bogus", "stat"], r"unrecognized option|Try"),
            (["frobnicate"], r"unknown command 'frobnicate'"),
            (["stat", "--bogus"], r"unexpected argument '--bogus'"),
            (["dump", "extra"], r"unexpected argument 'extra'"),
        ]
        for args, rx in cases:
            rc, out, err = self.run_proc([JOURNAL_TOOL, "-j", self.j] + args)
            self.assertEqual(rc, EX_USAGE, "ferry-journal %s: rc %d\n%s" % (" ".join(args), rc, err))
            self.assertRegex(err, rx)
        self.assertEqual(len(self.dump(self.j)), 1)

    def test_missing_journal(self):
        missing = self.path("nowhere", "journal")
        for cmd in (["stat"], ["stat", "--json"], ["dump"]):
            rc, out, err = self.journal_tool(missing, *cmd)
            self.assertEqual(rc, EX_NOINPUT, "%s: rc %d\n%s" % (cmd, rc, err))
            self.assertIn(missing, err)
            self.assertIn("no journal", err)
            self.assertEqual(out, b"")
        self.assertFalse(os.path.exists(self.path("nowhere")), "a read-only tool created a directory")

    def test_dump_empty_journal(self):
        """A journal with no events: dump prints nothing and exits 0, stat
        shows zeros."""
        self.record(self.j, "-t", "x")  # refused (no device_id/user_id), journal created
        self.assertTrue(os.path.exists(os.path.join(self.j, "data.mdb")))
        st = self.stat(self.j)
        self.assertEqual((st["recorded"], st["stored"], st["pending"]), (0, 0, 0))
        rc, out, err = self.journal_tool(self.j, "dump")
        self.assertEqual((rc, out, err), (0, b"", ""))

    def test_journal_from_environment(self):
        """Without -j, both programs use $FERRY_JOURNAL."""
        env = base_env(FERRY_JOURNAL=self.j)
        rc, _, err = self.run_proc([RECORD, "-t", "from env", "-d", "d"], env=env)
        self.assertEqual(rc, 0, err)
        rc, out, err = self.run_proc([JOURNAL_TOOL, "dump"], env=env)
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)["event"]["event_type"], "from env")
        # -j wins over the environment.
        other = self.path("other")
        rc, _, err = self.run_proc([RECORD, "-j", other, "-t", "flag", "-d", "d"], env=env)
        self.assertEqual(rc, 0, err)
        self.assertEqual([r["event"]["event_type"] for r in self.dump(other)], ["flag"])
        self.assertEqual(len(self.dump(self.j)), 1)

    def test_max_size_below_minimum(self):
        """--max-size under 1 MiB is refused with the minimum named, before
        anything is created."""
        j = self.path("new", "journal")
        rc, out, err = self.record(j, "--max-size", "512K", "-t", "x", "-d", "d")
        self.assertIn(rc, (EX_USAGE, 65), err)
        self.assertRegex(err, r"minimum of 1048576 bytes")
        self.assertFalse(os.path.exists(self.path("new")), "a refused --max-size left a directory behind")


if __name__ == "__main__":
    main()
