"""Test 6: opting out records nothing and creates nothing.

FERRY_OPT_OUT=1 (or true/yes) and --opt-out: exit 0, and the journal
directory does not exist afterwards; other values do not opt out."""
import json
import os

from ferrytest import TESTWRITER, FerryTestCase, base_env, main


class OptOut(FerryTestCase):

    def setUp(self):
        super().setUp()
        self.j = self.path("state", "ferry", "journal")  # no component exists yet
        self.jsonl_file = self.path("in.jsonl")
        with open(self.jsonl_file, "w") as f:
            for i in range(3):
                f.write(json.dumps({"event_type": "e", "device_id": "d", "event_properties": {"i": i}}) + "\n")

    def assertNothingCreated(self, how):
        self.assertFalse(os.path.exists(self.path("state")), "%s: something was created" % how)

    def test_environment_variable(self):
        for value in ("1", "true", "TRUE", "yes", "Yes"):
            env = base_env(FERRY_OPT_OUT=value)
            rc, out, err = self.record(self.j, "-t", "x", "-d", "d", "-p", "k=v", env=env)
            self.assertEqual((rc, err), (0, ""), "FERRY_OPT_OUT=%s" % value)
            self.assertNothingCreated("FERRY_OPT_OUT=%s with flags" % value)
            rc, out, err = self.record(self.j, "--jsonl", self.jsonl_file, env=env)
            self.assertEqual((rc, err), (0, ""))
            rc, out, err = self.record(self.j, "--jsonl", "-", "--atomic", input=b'{"event_type":"x","user_id":"u"}\n',
                                       env=env)
            self.assertEqual((rc, err), (0, ""))
            self.assertNothingCreated("FERRY_OPT_OUT=%s with --jsonl" % value)

    def test_flag(self):
        rc, out, err = self.record(self.j, "--opt-out", "-t", "x", "-d", "d")
        self.assertEqual((rc, err), (0, ""))
        rc, out, err = self.record(self.j, "--opt-out", "--jsonl", self.jsonl_file)
        self.assertEqual((rc, err), (0, ""))
        self.assertNothingCreated("--opt-out")

    def test_library(self):
        """ferry_open() honours FERRY_OPT_OUT too (ferry-testwriter): success,
        seq 0, no directory."""
        rc, out, err = self.run_proc([TESTWRITER, "record", self.j, "w", "5"], env=base_env(FERRY_OPT_OUT="1"))
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.decode().split("\n")[:-1], ["w-%d 0" % i for i in range(5)])
        self.assertNothingCreated("the library with FERRY_OPT_OUT=1")

    def test_existing_journal_untouched(self):
        self.record_ok(self.j, "-t", "before", "-d", "d")
        before = self.dump(self.j)
        self.record_ok(self.j, "--opt-out", "-t", "during", "-d", "d")
        self.record_ok(self.j, "-t", "during", "-d", "d", env=base_env(FERRY_OPT_OUT="yes"))
        self.assertEqual(self.dump(self.j), before)

    def test_other_values_do_not_opt_out(self):
        """The control: values that do not mean yes record normally."""
        for n, value in enumerate(("0", "", "no", "false")):
            self.record_ok(self.j, "-t", "x%d" % n, "-d", "d", env=base_env(FERRY_OPT_OUT=value))
        self.assertEqual([r["event"]["event_type"] for r in self.dump(self.j)], ["x0", "x1", "x2", "x3"])


if __name__ == "__main__":
    main()
