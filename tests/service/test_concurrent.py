"""32 clients stream FERRY_SERVICE_EVENTS events each (5,000; fewer under the
sanitizers) into one `ferry-record --listen` at the same time, reading their
answers as they come: every event is answered `ok SEQ`, each SEQ names that
very event in the journal, every event is there exactly once, and each
connection's events keep their order. Four of the clients use the noack
handshake and end with a sync, whose SEQ is their last event's."""
from servicelib import EVENTS, WAIT, EX_OK, ServiceCase, Streamer, event, main, marker, seq_of

CLIENTS = 32
NOACK = 4


class Concurrent(ServiceCase):

    def test_32_clients(self):
        svc = self.start()
        streams = []
        for k in range(CLIENTS):
            evs = [event(k, i) for i in range(EVENTS)]
            chunk = self.rng.choice((1, 7, 64, 500))
            streams.append(Streamer(self.sock, evs, chunk=chunk, noack=k < NOACK))
        for s in streams:
            s.start()
        for s in streams:
            s.join(WAIT * 4)
            self.assertFalse(s.is_alive(), "a client did not finish")
            self.assertIsNone(s.error, s.error)
            self.assertIsNone(s.send_error, s.send_error)

        acked = {}  # (client, i) -> seq
        for k, s in enumerate(streams):
            if k < NOACK:
                self.assertEqual(len(s.answers), 1, s.answers[:3])
                continue
            self.assertEqual(len(s.answers), EVENTS, "client %d got %d answers" % (k, len(s.answers)))
            seqs = [seq_of(a) for a in s.answers]
            self.assertEqual(seqs, sorted(set(seqs)), "client %d: answers out of order" % k)
            for i, q in enumerate(seqs):
                acked[(k, i)] = q

        recs = self.dump()
        self.assertEqual(len(recs), CLIENTS * EVENTS)
        by_marker = {}
        for r in recs:
            m = marker(r)
            self.assertNotIn(m, by_marker, "event %r recorded twice" % (m,))
            by_marker[m] = r["seq"]
        self.assertEqual(len({r["insert_id"] for r in recs}), len(recs))
        for m, q in acked.items():
            self.assertEqual(by_marker.get(m), q, "ok %d does not name event %r" % (q, m))
        for k, s in enumerate(streams):
            seqs = [by_marker[(k, i)] for i in range(EVENTS)]
            self.assertEqual(seqs, sorted(seqs), "client %d: events out of order in the journal" % k)
            if k < NOACK:
                self.assertEqual(seq_of(s.answers[0]), seqs[-1], "client %d: sync is not its last event" % k)
        self.assertEqual(svc.stop(), EX_OK)
        log = svc.log()
        self.assertIn("stopped: %d event(s) recorded" % (CLIENTS * EVENTS), log)


if __name__ == "__main__":
    main()
