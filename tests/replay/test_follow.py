"""ferry-replay --follow: a daemon that notices new events, never blocks the
recorder while waiting on the network, and stops cleanly on a signal."""
import os
import signal
import subprocess
import time
import unittest

from replaylib import KEY, RECORD, ReplayCase, events

WAIT_TRIES = 600  # x 50 ms: bounded waits, generous for sanitizer builds


class Follow(ReplayCase):
    def start(self, target, *args):
        env = dict(os.environ, FERRY_API_KEY=KEY)
        self.stderr_path = os.path.join(self.tmp, "replay.err")
        self.err = open(self.stderr_path, "wb")
        proc = subprocess.Popen(self.replay_cmd(target, "--device-rate", "0", "--max-retry-delay", "0.2", *args,
                                                once=False), stdout=subprocess.PIPE, stderr=self.err, env=env)
        self.addCleanup(self.reap, proc)  # even when an assertion fails first
        return proc

    def reap(self, proc):
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    def wait_until(self, cond, what):
        for _ in range(WAIT_TRIES):
            if cond():
                return
            time.sleep(0.05)
        self.fail("gave up waiting for " + what)

    def stop(self, proc):
        proc.send_signal(signal.SIGTERM)
        for _ in range(WAIT_TRIES):  # a bounded wait, not a timing assertion
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        else:
            proc.kill()
            self.fail("ferry-replay did not stop on SIGTERM")
        proc.stdout.close()
        self.err.close()
        with open(self.stderr_path, "rb") as f:
            self.assertNotIn(b"Sanitizer", f.read())
        return proc.returncode

    def test_new_events_are_sent_and_sigterm_stops_cleanly(self):
        self.record(events(5))
        with self.sink() as s:
            proc = self.start(s)
            self.wait_until(lambda: s.stats()["events_accepted"] == 5, "the first 5 events")
            self.record(events(7, start=5))
            self.wait_until(lambda: s.stats()["events_accepted"] == 12, "events recorded while following")
            self.assertEqual(self.stop(proc), 0)
        self.assertEqual(self.stat()["pending"], 0)

    def test_survives_the_endpoint_going_away_and_coming_back(self):
        self.record(events(10))
        with self.sink() as s:
            port = s.port
        proc = self.start("http://127.0.0.1:%d" % port)
        time.sleep(1.0)  # let it fail a few times against the closed port
        self.assertIsNone(proc.poll(), "a follower must not give up while offline")
        sink = self.sink("--listen", "127.0.0.1:%d" % port)
        sink.args = [a for a in sink.args]  # --listen given twice: the last one wins in getopt
        with sink as s:
            self.wait_until(lambda: s.stats()["events_accepted"] == 10, "delivery after the sink came back")
            self.assertEqual(self.stop(proc), 0)

    def test_recording_is_never_blocked_by_a_stalled_upload(self):
        self.record(events(3))
        with self.sink("--slow", "1.0:60000") as s:
            proc = self.start(s, "--timeout", "120")
            self.wait_until(lambda: s.stats()["events_accepted"] >= 1, "the stalled request to be in flight")
            # The replayer now waits on the network. Recorders must not wait on it.
            for i in range(20):
                p = subprocess.run([RECORD, "-j", self.journal, "-t", "During stall", "-d", "dev-%05d" % i],
                                   capture_output=True, timeout=30)
                self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIsNone(proc.poll())
            self.assertEqual(self.stat()["pending"], 23)
            # SIGTERM aborts the transfer in flight; the events stay pending.
            self.assertEqual(self.stop(proc), 0)
        self.assertEqual(self.stat()["pending"], 23)

    def test_stops_while_offline(self):
        self.record(events(2))
        proc = self.start("http://127.0.0.1:9")

        def retrying():
            with open(self.stderr_path, "rb") as f:
                return b"will retry" in f.read()
        # Stop it once it retries: a fixed sleep raced its start on a slow
        # build (under valgrind, SIGTERM came before its handler was set).
        self.wait_until(retrying, "a failed attempt")
        self.assertEqual(self.stop(proc), 0)
        self.assertEqual(self.stat()["pending"], 2)

    def test_one_replayer_per_destination(self):
        self.record(events(2))
        with self.sink("--slow", "1.0:60000") as s:
            proc = self.start(s, "--timeout", "120")
            self.wait_until(lambda: s.stats()["events_accepted"] >= 1, "the first replayer to be busy")
            p = self.replay(s, check=75)
            self.assertIn(b"another ferry-replay is draining", p.stderr)
            self.assertEqual(self.stop(proc), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
