"""The line protocol of `ferry-record --listen`: one answer per line, in order,
`ok SEQ` only once the event is in the journal, `error REASON` naming the
problem; commands (#ferry noack / ack / sync); blank lines; the last line
without a newline; the 1 MiB line limit; opt-out; a full journal under both
overflow policies; --strict with a catalog."""
import json
import os
import socket

from servicelib import (EX_OK, ServiceCase, base_env, event, line, main, seq_of)


class Protocol(ServiceCase):

    def test_ok_seq_is_the_journal_seq(self):
        self.start()
        c = self.client()
        evs = [event(1, i) for i in range(20)]
        evs[3]["insert_id"] = "my-own-id-3"
        del evs[5]["time"]
        c.send_events(evs)
        seqs = [seq_of(a) for a in c.answers(20)]
        self.assertEqual(seqs, list(range(1, 21)))
        recs = self.dump()
        self.assertEqual([r["seq"] for r in recs], seqs)
        for r, e in zip(recs, evs):
            self.assertEqual(r["event"]["event_properties"], e["event_properties"])
            self.assertEqual(r["event"]["event_type"], e["event_type"])
        self.assertEqual(recs[3]["insert_id"], "my-own-id-3")
        self.assertIsInstance(recs[5]["event"]["time"], int)
        self.assertEqual(len({r["insert_id"] for r in recs}), 20)

    def test_errors_in_order(self):
        self.start()
        c = self.client()
        deep = {"event_type": "Deep", "device_id": "d"}
        cur = deep
        for _ in range(40):
            cur["x"] = {}
            cur = cur["x"]
        lines = [
            line(event(1, 0)),
            b"not json\n",
            b'{"device_id":"d"}\n',                        # no event_type
            b"[1,2,3]\n",                                   # not an object
            line(event(1, 1)),
            line({"event_type": "Big", "device_id": "d", "event_properties": {"s": "x" * 70000}}),
            b'{"event_type":"t","device_id":"d","time":"noon"}\n',
            line(deep),
            b'{"event_type":"t","device_id":"d","n":99999999999999999999999}\n',
            b'{"event_type":"t","device_id":"d","a":1,"a":2}\n',
            b'{"event_type":"t","device_id":"d"} trailing\n',
            b'{"event_type":"\xff\xfe","device_id":"d"}\n',
            line(event(1, 2)),
        ]
        c.send(b"".join(lines))
        ans = c.answers(len(lines))
        kinds = ["ok" if a.startswith("ok ") else "error" for a in ans]
        self.assertEqual(kinds, ["ok", "error", "error", "error", "ok", "error", "error", "error", "error", "error",
                                 "error", "error", "ok"], ans)
        self.assertRegex(ans[1], r"^error line 2: invalid JSON")
        self.assertIn("event_type", ans[2])
        self.assertIn("object", ans[3])
        self.assertIn("65536", ans[5])
        self.assertIn("time", ans[6])
        self.assertRegex(ans[9], r"line 10: .*duplicate")
        for a in ans:
            self.assertNotIn("\r", a)
            self.assertLess(len(a), 512)
        recs = self.dump()
        self.assertEqual([r["event"]["event_properties"]["i"] for r in recs], [0, 1, 2])
        self.assertEqual([r["seq"] for r in recs], [seq_of(ans[0]), seq_of(ans[4]), seq_of(ans[12])])

    def test_blank_lines_and_crlf(self):
        self.start()
        c = self.client()
        c.send(b"\n   \n\t\r\n" + line(event(1, 0)).replace(b"\n", b"\r\n") + b"\n" + line(event(1, 1)))
        self.assertEqual([seq_of(a) for a in c.answers(2)], [1, 2])
        c.send(b"not json either\n")
        self.assertRegex(c.answer(), r"^error line 7: ")

    def test_noack_and_sync(self):
        self.start()
        c = self.client()
        c.send(b"#ferry sync\n")
        self.assertEqual(c.answer(), "ok 0")  # nothing recorded yet on this connection
        c.send(b"#ferry noack\n" + b"".join(line(event(1, i)) for i in range(100)) + b"oops\n" +
               line(event(1, 100)) + b"#ferry sync\n")
        a = c.answer()
        self.assertRegex(a, r"^error line 103: invalid JSON")  # errors are still answered
        self.assertEqual(c.answer(), "ok 101")  # sync: the last event recorded here
        self.assertEqual(len(self.dump()), 101)
        c.send(b"#ferry ack  \n" + line(event(1, 101)))
        self.assertEqual(c.answer(), "ok 102")
        c.send(b"#ferry bogus\n#\n")
        self.assertRegex(c.answer(), r"^error line 108: unknown command '#ferry bogus'")
        self.assertRegex(c.answer(), r"^error line 109: unknown command")

    def test_noack_stream_never_acknowledges_early(self):
        # In noack mode nothing is said, but a sync after N events still
        # means all N are durable.
        self.start()
        c = self.client()
        n = 3000
        c.send(b"#ferry noack\n")
        for k in range(0, n, 500):
            c.send(b"".join(line(event(2, i)) for i in range(k, k + 500)))
        c.send(b"#ferry sync\n")
        self.assertEqual(c.answer(), "ok %d" % n)
        self.assertEqual(len(self.dump()), n)

    def test_last_line_without_newline(self):
        self.start()
        c = self.client()
        c.send(line(event(1, 0)) + line(event(1, 1))[:-1])
        self.assertEqual(seq_of(c.answer()), 1)
        c.shut()
        self.assertEqual(seq_of(c.answer()), 2)
        self.assertIsNone(c.answer())  # then the service closes
        # A truncated line at EOF is an error, never a recorded fragment.
        c = self.client()
        c.send(line(event(1, 2))[:40])
        c.shut()
        self.assertRegex(c.answer(), r"^error line 1: invalid JSON")
        self.assertIsNone(c.answer())
        self.assertEqual(len(self.dump()), 2)

    def test_line_limit(self):
        self.start()
        c = self.client()
        # Exactly 1 MiB is a line (here: refused as an event too large, but
        # parsed); one byte more is refused unread.
        pad = 1048576 - len(b'{"event_type":"t","device_id":"d","p":""}')
        exact = b'{"event_type":"t","device_id":"d","p":"' + b" " * pad + b'"}'
        self.assertEqual(len(exact), 1048576)
        over = exact[:-2] + b' "}'
        c.send(exact + b"\n" + over + b"\n" + line(event(1, 0)))
        a1, a2, a3 = c.answers(3)
        self.assertRegex(a1, r"^error line 1: .*65536")
        self.assertEqual(a2, "error line 2: longer than 1048576 bytes")
        self.assertEqual(seq_of(a3), 1)

    def test_opt_out(self):
        self.start(env=base_env(FERRY_OPT_OUT="1"))
        c = self.client()
        c.send_events([event(1, 0), event(1, 1)])
        self.assertEqual(c.answers(2), ["ok 0", "ok 0"])
        self.assertFalse(os.path.exists(self.journal))

    def fill(self, c, n, big):
        """Sends n big events, returns their answers."""
        evs = [event(3, i, event_properties={"client": 3, "i": i, "pad": "p" * big}) for i in range(n)]
        out = []
        for k in range(0, n, 50):
            c.send_events(evs[k:k + 50])
            out += c.answers(len(evs[k:k + 50]))
        return out

    def test_journal_full_reject(self):
        svc = self.start("--max-size", "1M")
        c = self.client()
        ans = self.fill(c, 400, 4000)
        oks = [a for a in ans if a.startswith("ok ")]
        errs = [a for a in ans if not a.startswith("ok ")]
        self.assertTrue(oks and errs, ans[:3] + ans[-3:])
        for e in errs:
            self.assertRegex(e, r"^error journal .* is full: .*policy reject")
        # Events committed together are refused together, so a smaller group
        # may still fit after a refusal. One at a time, the journal takes
        # events until the first refusal; from then on it refuses the same
        # event every time (a refused transaction changes nothing).
        big = "p" * 4000
        single = lambda i: event(3, 1000 + i, event_properties={"client": 3, "i": 1000 + i, "pad": big})
        for i in range(200):
            c.send_events([single(i)])
            a = c.answer()
            ans.append(a)
            if not a.startswith("ok "):
                break
        self.assertTrue(ans[-1].startswith("error"), ans[-3:])
        for i in range(200, 203):
            c.send_events([single(i)])
            a = c.answer()
            self.assertRegex(a, r"^error journal .* is full: .*policy reject")
        # Everything stored is exactly what was acknowledged.
        oks = [a for a in ans if a.startswith("ok ")]
        recs = self.dump()
        self.assertEqual(sorted(r["seq"] for r in recs), sorted(seq_of(a) for a in oks))
        # The service is still serving: a sync is answered.
        c.send(b"#ferry sync\n")
        self.assertEqual(c.answer(), "ok %d" % max(seq_of(a) for a in oks))
        self.assertEqual(svc.stop(), EX_OK)
        self.assertIn("is full", svc.log())

    def test_journal_full_evict_oldest(self):
        # Events under LMDB's overflow-page size (half a page): with 4 KB
        # events a 1 MiB journal fragments and refuses batches even with
        # evict-oldest, in the library as in `ferry-record --jsonl`.
        self.start("--max-size", "1M", "--overflow", "evict-oldest")
        c = self.client()
        ans = self.fill(c, 3000, 1000)
        self.assertTrue(all(a.startswith("ok ") for a in ans), [a for a in ans if not a.startswith("ok")][:3])
        st = self.stat()
        self.assertGreater(st["evicted"], 0)
        self.assertEqual(st["evicted"] + st["stored"], 3000)

    def test_strict_catalog(self):
        cat = self.path("catalog.tsv")
        with open(cat, "w") as f:
            f.write("event_type\tcategory\nService start\tservice\nService stop\tservice\n")
        self.start("--strict", "--catalog", cat)
        c = self.client()
        c.send_events([event(1, 0), event(1, 1, event_type="Servce start"), event(1, 2, event_type="Service stop")])
        a = c.answers(3)
        self.assertEqual(seq_of(a[0]), 1)
        self.assertRegex(a[1], r'^error line 2: unknown event_type "Servce start" \(did you mean "Service start"\?\)')
        self.assertEqual(seq_of(a[2]), 2)


if __name__ == "__main__":
    main()
