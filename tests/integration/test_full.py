"""Test 4: a journal at its bound (--max-size 1M, the minimum).

reject (default): recording fails with exit 75 and a "journal ... is full"
message, and the refused call changes nothing; delivered events are deleted
(pruned) before anything is refused. evict-oldest: recording never fails, the
oldest events go and are counted as evicted."""
import os

from ferrytest import EX_TEMPFAIL, FerryTestCase, main

BOUND = 1 << 20
PAD = 1400          # bytes of padding per event: ~1.5 KB records
BATCH = 40          # events per --jsonl call
MAX_CALLS = 80      # bound on every fill loop


def event(tag, i):
    return {"event_type": "fill", "device_id": "dev", "insert_id": "%s-%d" % (tag, i),
            "event_properties": {"i": i, "pad": "x" * PAD}}


class Full(FerryTestCase):

    def snapshot(self, j):
        """Everything a reader can see of the journal."""
        rc, out, err = self.journal_tool(j, "dump")
        self.assertEqual(rc, 0, err)
        return out, self.stat(j)

    def ids(self, j):
        return [r["insert_id"] for r in self.dump(j)]

    def fill_jsonl(self, j, tag, *args, expect_full=True):
        """Records batches until one is refused (when expect_full); returns the
        ids recorded. Checks that the refused call changed nothing."""
        recorded = []
        for call in range(MAX_CALLS):
            before = self.snapshot(j) if expect_full and os.path.exists(j) else None
            batch = [event("%s%d" % (tag, call), i) for i in range(BATCH)]
            rc, err, _ = self.jsonl(j, batch, "--max-size", "1M", *args)
            if rc == 0:
                self.assertEqual(err, "")
                recorded += [e["insert_id"] for e in batch]
                continue
            self.assertTrue(expect_full, "recording failed: rc %d\n%s" % (rc, err))
            self.assertEqual(rc, EX_TEMPFAIL, err)
            self.assertRegex(err, r"journal .* is full")
            self.assertIsNotNone(before, "the very first batch was refused")
            after = self.snapshot(j)
            self.assertEqual(after[1], before[1], "a refused batch changed the journal's counters")
            self.assertEqual(after[0], before[0], "a refused batch changed the stored events")
            return recorded
        if expect_full:
            self.fail("the journal never filled up in %d calls" % MAX_CALLS)
        return recorded

    def fill_single(self, j, tag):
        """Single events (flags) until one is refused; returns their ids."""
        recorded = []
        for i in range(MAX_CALLS):
            before = self.snapshot(j)
            iid = "%s-%d" % (tag, i)
            rc, _, err = self.record(j, "--max-size", "1M", "-t", "fill", "-d", "dev", "--insert-id", iid,
                                     "-p", "i:=%d" % i, "-p", "pad=" + "x" * PAD)
            if rc == 0:
                recorded.append(iid)
                continue
            self.assertEqual(rc, EX_TEMPFAIL, err)
            self.assertRegex(err, r"journal .* is full")
            self.assertIn("reject", err)
            after = self.snapshot(j)
            self.assertEqual(after[1], before[1], "a refused event changed the journal's counters")
            self.assertEqual(after[0], before[0], "a refused event changed the stored events")
            return recorded
        self.fail("the journal never refused a single event in %d calls" % MAX_CALLS)

    def test_reject_then_prune_delivered(self):
        j = self.path("journal")
        expected = self.fill_jsonl(j, "a")
        self.assertGreater(len(expected), 0)
        expected += self.fill_single(j, "s")
        recs = self.dump(j)
        self.assertSeqs(recs)
        self.assertEqual([r["insert_id"] for r in recs], expected, "events recorded before the refusal changed")
        st = self.stat(j)
        n = len(expected)
        self.assertEqual((st["recorded"], st["stored"], st["evicted"], st["pruned"]), (n, n, 0, 0))
        self.assertEqual(st["max_bytes"], BOUND)
        self.assertLessEqual(st["file_bytes"], BOUND, "data.mdb grew past the bound")
        # The quota (75 %) is enforced on an estimate of the incoming bytes, so
        # live data may pass it by a page or so; the bound itself is hard.
        self.assertLessEqual(st["bytes_used"], BOUND)
        print("\nfull at %d events: bytes_used %d, quota %d" % (n, st["bytes_used"], st["quota_bytes"]))

        # The destination has the first half: those go first, even with "reject".
        k = n // 2
        rc, _, err = self.writer("cursor", j, "amplitude", str(k))
        self.assertEqual(rc, 0, err)
        st = self.stat(j)
        self.assertEqual([d["delivered_through"] for d in st["destinations"]], [k])
        self.assertEqual(st["pending"], n - k)
        self.record_ok(j, "-t", "after cursor", "-d", "dev", "--insert-id", "after-0", "-p", "pad=" + "x" * PAD)
        st = self.stat(j)
        self.assertGreater(st["pruned"], 0, "no delivered event was deleted to make room")
        self.assertEqual(st["evicted"], 0)
        recs = self.dump(j)
        self.assertSeqs(recs, first=st["pruned"] + 1)  # the oldest delivered ones went, in order
        self.assertEqual(recs[-1]["insert_id"], "after-0")
        self.assertEqual(recs[-1]["seq"], n + 1, "a sequence number was reused after pruning")

        # Fill again: every delivered event goes before anything is refused,
        # and no undelivered one is ever deleted.
        more = self.fill_jsonl(j, "b")
        recs = self.dump(j)
        st = self.stat(j)
        self.assertEqual(st["evicted"], 0)
        self.assertLessEqual(st["pruned"], k)
        self.assertSeqs(recs, first=st["pruned"] + 1)
        self.assertEqual([r["insert_id"] for r in recs],
                         expected[st["pruned"]:] + ["after-0"] + more, "an undelivered event was deleted")
        self.assertEqual(st["recorded"], n + 1 + len(more))
        self.assertLessEqual(st["file_bytes"], BOUND)

    def test_evict_oldest(self):
        j = self.path("journal")
        expected = []
        for call in range(30):  # ~1.8 MB of events into a 1 MiB journal
            batch = [event("e%d" % call, i) for i in range(BATCH)]
            rc, err, _ = self.jsonl(j, batch, "--max-size", "1M", "--overflow", "evict-oldest")
            self.assertEqual(rc, 0, "evict-oldest refused a batch:\n" + err)
            self.assertEqual(err, "")
            expected += [e["insert_id"] for e in batch]
        for i in range(10):
            iid = "single-%d" % i
            self.record_ok(j, "--overflow", "evict-oldest", "-t", "fill", "-d", "dev", "--insert-id", iid,
                           "-p", "pad=" + "x" * PAD)
            expected.append(iid)
        st = self.stat(j)
        recs = self.dump(j)
        n = len(expected)
        self.assertGreater(st["evicted"], 0, "nothing was evicted")
        self.assertEqual(st["pruned"], 0)
        self.assertEqual(st["recorded"], n)
        self.assertEqual(st["stored"], len(recs))
        self.assertEqual(st["stored"] + st["evicted"], n, "evicted count does not match the missing events")
        self.assertLessEqual(st["file_bytes"], BOUND)
        # The newest are there, the oldest gone, the numbers never reused.
        self.assertSeqs(recs, first=n - len(recs) + 1)
        self.assertEqual([r["insert_id"] for r in recs], expected[n - len(recs):])
        self.assertNotIn(expected[0], [r["insert_id"] for r in recs])
        # Default policy on the same journal: the bound is kept (1 MiB) and
        # the journal is full again quickly, without touching anything.
        before = self.snapshot(j)
        rc, err, _ = self.jsonl(j, [event("r", i) for i in range(BATCH)])
        if rc != 0:
            self.assertEqual(rc, EX_TEMPFAIL, err)
            self.assertEqual(self.snapshot(j), before)
        self.assertEqual(self.stat(j)["max_bytes"], BOUND)


if __name__ == "__main__":
    main()
