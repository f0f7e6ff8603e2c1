"""The heart of ferry: thousands of events reach the destination exactly
once, whatever happens in between: 5xx after accepting, dropped connections
after accepting, 503s, partial 429s, answers slower than the timeout, the
replayer SIGKILLed at random moments and restarted, the sink taken down and
brought back. Seeded: FERRY_TEST_SEED=N reproduces a run."""
import os
import signal
import subprocess
import time
import unittest

from replaylib import KEY, ReplayCase, events, invalid_events

KILLS = int(os.environ.get("FERRY_TEST_KILLS", "50"))
SINK_RESTART_EVERY = 12


class ExactlyOnce(ReplayCase):
    def sink_with_faults(self, round_no):
        return self.sink("--seed", str(self.seed + round_no), "--fail", "0.1:500,502,503,504",
                         "--fail-after", "0.1:500,502,504", "--drop-before", "0.05", "--drop-after", "0.1",
                         "--slow", "0.05:1500", "--throttle", "0.05")

    def replay_args(self):
        return ["--device-rate", "0", "--max-events", "40", "--timeout", "1", "--max-retry-delay", "0.2",
                "--throttle-wait", "0.2", "--retry-for", "60", "--json"]

    def test_faults_kills_and_restarts(self):
        good = events(3000, devices=25)
        bad = invalid_events(20)
        mixed = []
        for i, e in enumerate(good):
            mixed.append(e)
            if i % 150 == 75:
                mixed.append(bad[(i // 150) % 20])
        self.record(mixed)
        recorded = self.dump()
        self.assertEqual(len(recorded), 3020)
        bad_seqs = sorted(r["seq"] for r in recorded if r["event"]["event_type"] in ("Bad id", "Short id"))
        good_recorded = [r for r in recorded if r["seq"] not in bad_seqs]

        env = dict(os.environ, FERRY_API_KEY=KEY)
        kills = rounds = 0
        sink = self.sink_with_faults(0).start()
        try:
            while kills < KILLS and rounds < KILLS * 4:
                rounds += 1
                if rounds % SINK_RESTART_EVERY == 0:  # the sink goes away and comes back
                    sink.stop(signal.SIGKILL)
                    sink = self.sink_with_faults(rounds).start()
                err = open(os.path.join(self.tmp, "replay-%d.err" % rounds), "wb")
                proc = subprocess.Popen(self.replay_cmd(sink, *self.replay_args()), stdout=subprocess.DEVNULL,
                                        stderr=err, env=env)
                time.sleep(self.rng.uniform(0.02, 0.5))
                if proc.poll() is None:
                    proc.kill()
                    kills += 1
                proc.wait()
                err.close()
                with open(err.name, "rb") as f:
                    self.assertNotIn(b"Sanitizer", f.read())
                if proc.returncode == 0:  # drained before we could kill it: record more
                    self.record(events(100, devices=25, start=10000 + rounds * 100, prefix="r%d-" % rounds))
            self.assertGreaterEqual(kills, KILLS)
            # Whatever is left is drained by an uninterrupted run.
            p = self.replay(sink, *self.replay_args(), timeout=600)
            self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace")[-3000:])
            stats = sink.stats()
        finally:
            sink.stop()
        print("seed %d: %d kills in %d rounds, sink stats %s" % (self.seed, kills, rounds, stats))

        # Events recorded during the rounds were pruned once delivered: collect them from the sink's view.
        extra = [e for e in self.accepted() if e["event_properties"]["marker"].startswith("r")]
        want = good_recorded + [{"insert_id": e["insert_id"], "event": e} for e in extra]
        self.assert_exactly_once(want, self.accepted())
        self.assertEqual(sorted(d["seq"] for d in self.dead()), bad_seqs)
        for d in self.dead():
            self.assertEqual(d["status"], 400)
        st = self.stat()
        self.assertEqual(st["pending"], 0)
        self.assertEqual(st["destinations"][0]["dead"], len(bad_seqs))


if __name__ == "__main__":
    unittest.main(verbosity=2)
