"""`kill -9` of the service while clients stream, in a loop on one journal:
every event that got `ok SEQ` is in the journal under that SEQ, nothing is
there twice, what a connection got recorded is a prefix of what it sent, the
journal opens after every kill, and the next service replaces the stale
socket the killed one left. Random kill delays come from a seeded RNG (the
seed is printed; FERRY_TEST_SEED=N reproduces)."""
import os
import time

from servicelib import EX_OK, WAIT, ServiceCase, Streamer, event, main, marker, seq_of

ROUNDS = int(os.environ.get("FERRY_SERVICE_KILLS", "12"))
CLIENTS = 6
PER_CLIENT = 20000  # more than a round can send: the kill comes mid-stream


class Kill(ServiceCase):

    def test_kill_while_streaming(self):
        stored = last_seq = 0
        for rnd in range(ROUNDS):
            svc = self.start("--max-size", "1G")
            if rnd:
                self.assertIn("removed a stale socket", svc.log())
            streams = [Streamer(self.sock, PER_CLIENT, make=lambda i, c=rnd * 100 + k: event(c, i),
                                chunk=self.rng.choice((1, 16, 200))) for k in range(CLIENTS)]
            for s in streams:
                s.start()
            # Kill once some answers came back, after a random extra delay.
            deadline = time.monotonic() + WAIT
            while sum(len(s.answers) for s in streams) < 50 and time.monotonic() < deadline:
                time.sleep(0.002)
            time.sleep(self.rng.uniform(0.0, 0.3))
            svc.kill()
            for s in streams:
                s.join(WAIT)
                self.assertFalse(s.is_alive(), "a client hung after the kill")
            acked = {}
            for k, s in enumerate(streams):
                for i, a in enumerate(s.answers):
                    acked[(rnd * 100 + k, i)] = seq_of(a)
            self.assertTrue(acked)

            # The journal opens; this round's records are the newest ones.
            now = self.stat()["stored"]
            recs = self.tail(now - stored)
            if recs:
                self.assertGreater(recs[0]["seq"], last_seq)
                last_seq = recs[-1]["seq"]
            stored = now
            by_marker = {}
            for r in recs:
                m = marker(r)
                self.assertEqual(m[0] // 100, rnd, "an older event reappeared: %r" % (m,))
                self.assertNotIn(m, by_marker, "event %r recorded twice" % (m,))
                by_marker[m] = r["seq"]
            for m, q in acked.items():
                self.assertEqual(by_marker.get(m), q, "event %r got ok %d but the journal has %r" %
                                 (m, q, by_marker.get(m)))
            per_client = {}
            for (c, i) in by_marker:
                per_client.setdefault(c, []).append(i)
            for c, idx in per_client.items():
                self.assertEqual(sorted(idx), list(range(len(idx))), "client %d: a gap in its recorded events" % c)
        svc = self.start()
        self.assertEqual(svc.stop(), EX_OK)
        self.assertEqual(self.stat()["stored"], stored)


if __name__ == "__main__":
    main()
