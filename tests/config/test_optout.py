"""Opt-out stops the replayer too: with FERRY_OPT_OUT=1, [recorder] opt_out =
true in the configuration file, or --opt-out, ferry-replay exits 0 saying
so, sends nothing (a real ferry-sink on 127.0.0.1 receives no request) and
touches nothing (the journal's files are byte for byte the same, no lock
file appears). A running --follow stops once the file says opt_out. The
documented procedure (opt out, then ferry-journal purge --all --yes) leaves
no event behind."""
import hashlib
import json
import os
import subprocess
import time

from configlib import JOURNAL, RECORD, REPLAY, ConfigCase, clean_env, events
from replaylib import KEY

WAIT_TRIES = 3000  # x 0.1 s: bounded waits, generous for ASan builds


class OptOut(ConfigCase):

    def setUp(self):
        super().setUp()
        self.env = clean_env(FERRY_API_KEY=KEY, FERRY_CONFIG=os.devnull)
        rc, _, err = self.run_env([RECORD, "-j", self.journal, "--jsonl", "-"], env=self.env,
                                  input="".join(json.dumps(e) + "\n" for e in events(20)).encode())
        self.assertEqual(rc, 0, err)

    def snapshot(self):
        snap = {}
        for root, _, files in os.walk(self.journal):
            for f in files:
                p = os.path.join(root, f)
                st = os.stat(p)
                with open(p, "rb") as fh:
                    snap[p] = (hashlib.sha256(fh.read()).hexdigest(), st.st_mtime_ns, st.st_size)
        return snap

    def replay_args(self, sink, *extra, once=True):
        return [REPLAY, "-j", self.journal, "--once" if once else "--follow", "--endpoint",
                "http://127.0.0.1:%d" % sink.port] + list(extra)

    def test_every_way_sends_nothing(self):
        conf = self.write_conf("[recorder]\nopt_out = true\n")
        ways = [
            ("FERRY_OPT_OUT", dict(self.env, FERRY_OPT_OUT="1"), [], "FERRY_OPT_OUT=1"),
            ("file", dict(self.env, FERRY_CONFIG=conf), [], "%s:2: [recorder] opt_out = true" % conf),
            ("--config", self.env, ["--config", conf], "%s:2:" % conf),
            ("--opt-out", self.env, ["--opt-out"], "--opt-out"),
        ]
        before = self.snapshot()
        with self.sink() as sink:
            for name, env, extra, why in ways:
                for once in (True, False):
                    with self.subTest(way=name, once=once):
                        rc, out, err = self.run_env(self.replay_args(sink, *extra, once=once), env=env, timeout=120)
                        self.assertEqual(rc, 0, err)
                        self.assertIn("opted out (%s" % why.split(":2:")[0], err)
                        self.assertIn(why, err)
                        self.assertIn("nothing sent", err)
            rc, out, err = self.run_env(self.replay_args(sink, "--opt-out", "--json"), env=self.env)
            self.assertEqual(rc, 0, err)
            self.assertEqual(json.loads(out), {"exit_code": 0, "opted_out": True, "delivered": 0})
            self.assertEqual(sink.stats()["requests"], 0)
        self.assertEqual(self.snapshot(), before, "the journal changed")
        self.assertEqual(self.accepted(), [])
        # the control: without opt-out the same command delivers
        with self.sink() as sink:
            rc, out, err = self.run_env(self.replay_args(sink), env=self.env)
            self.assertEqual(rc, 0, err)
            self.assertEqual(len(self.accepted()), 20)

    def test_follow_stops_when_the_file_says_opt_out(self):
        conf = self.write_conf("[recorder]\nopt_out = false\n")
        with self.sink() as sink:
            p = subprocess.Popen(self.replay_args(sink, "--config", conf, once=False), env=self.env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                for _ in range(WAIT_TRIES):
                    if len(self.accepted()) == 20 or p.poll() is not None:
                        break
                    time.sleep(0.1)
                self.assertEqual(len(self.accepted()), 20)
                self.assertIsNone(p.poll(), "the follower stopped early")
                tmp = conf + ".new"
                with open(tmp, "w") as f:
                    f.write("# opted out\n[recorder]\nopt_out = true\n")
                os.rename(tmp, conf)
                out, err = p.communicate(timeout=300)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.communicate()
            self.assertEqual(p.returncode, 0, err)
            self.assertIn(b"opted out (%s:3: [recorder] opt_out = true)" % conf.encode(), err)
            requests = sink.stats()["requests"]
            # later events go nowhere
            rc, _, e2 = self.run_env([RECORD, "-j", self.journal, "--jsonl", "-"], env=self.env,
                                     input="".join(json.dumps(e) + "\n" for e in events(5, start=100)).encode())
            self.assertEqual(rc, 0, e2)
            rc, _, e2 = self.run_env(self.replay_args(sink, "--config", conf), env=self.env)
            self.assertEqual(rc, 0, e2)
            self.assertEqual(sink.stats()["requests"], requests)

    def test_documented_procedure(self):
        """README: opt out, then `ferry-journal purge --all --yes`."""
        conf = self.write_conf("[journal]\ndir = %s\n[recorder]\nopt_out = true\n" % self.journal)
        env = dict(self.env, FERRY_CONFIG=conf)
        rc, out, err = self.run_env([RECORD, "-t", "after", "-d", "device-0001"], env=env)
        self.assertEqual((rc, err), (0, ""))
        rc, out, err = self.run_env([JOURNAL, "purge", "--all"], env=env)
        self.assertEqual(rc, 64, "purge --all without --yes must refuse")
        rc, out, err = self.run_env([JOURNAL, "purge", "--all", "--yes"], env=env)
        self.assertEqual(rc, 0, err)
        self.assertIn("purged 20 event(s)", out)
        rc, out, err = self.run_env([JOURNAL, "dump"], env=env)
        self.assertEqual((rc, out), (0, ""), err)
        rc, out, err = self.run_env([JOURNAL, "stat", "--json"], env=env)
        st = json.loads(out)
        self.assertEqual((st["stored"], st["pending"], st["dead"]), (0, 0, 0))
        with self.sink() as sink:
            rc, out, err = self.run_env([REPLAY, "--once", "--endpoint", "http://127.0.0.1:%d" % sink.port], env=env)
            self.assertEqual(rc, 0, err)
            self.assertEqual(sink.stats()["requests"], 0)


if __name__ == "__main__":
    import unittest
    unittest.main(verbosity=2)
