"""Test 2: 8 processes x 2,000 events recorded at once into one journal.

Every event is present exactly once (by a unique id in each event), and the
sequence numbers are exactly 1..16000. Variants: the library (one durable
transaction per event, ferry-testwriter) and `ferry-record --jsonl`."""
import json
import os
import subprocess
import time

from ferrytest import JOURNAL_TOOL, RECORD, TESTWRITER, FerryTestCase, base_env, main

PROCS = 8
EVENTS = 2000
TIMEOUT = 300  # seconds, per group of processes (a hang fails the test)


class Concurrent(FerryTestCase):

    def setUp(self):
        super().setUp()
        self.j = self.path("journal")

    def wait_all(self, procs):
        deadline = time.monotonic() + TIMEOUT
        results = []
        for p in procs:
            try:
                out, err = p.communicate(timeout=max(1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                for q in procs:
                    q.kill()
                    q.communicate()
                self.fail("concurrent writers did not finish within %ds" % TIMEOUT)
            results.append((p.returncode, out.decode("utf-8"), err.decode("utf-8", "replace")))
        return results

    def concurrent_dumps(self, procs, check, limit=30):
        """Runs `ferry-journal dump` while the writers run (at most `limit`
        times); every dump must succeed and pass check(recs)."""
        # Wait until the writers have created the journal (a reader racing
        # with the creation may find no journal or a half-made one).
        deadline = time.monotonic() + TIMEOUT
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            r = subprocess.run([JOURNAL_TOOL, "-j", self.j, "stat"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=base_env(), timeout=TIMEOUT)
            if r.returncode == 0:
                break
            time.sleep(0.005)
        n = 0
        while n < limit and any(p.poll() is None for p in procs):
            r = subprocess.run([JOURNAL_TOOL, "-j", self.j, "dump"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=base_env(), timeout=TIMEOUT)
            err = r.stderr.decode("utf-8", "replace")
            self.assertEqual(r.returncode, 0, "dump during concurrent writes failed:\n" + err)
            recs = [json.loads(line) for line in r.stdout.decode("utf-8").split("\n") if line]
            check(recs)
            n += 1
        return n

    def test_library_writers(self):
        """ferry_record() in a loop in 8 processes: 16,000 transactions."""
        procs = [subprocess.Popen([TESTWRITER, "record", self.j, "w%d" % k, str(EVENTS)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=base_env()) for k in range(PROCS)]

        def partial(recs):
            self.assertSeqs(recs)  # a reader sees a gap-free prefix at every moment

        dumps = self.concurrent_dumps(procs, partial)
        acked = {}
        for k, (rc, out, err) in enumerate(self.wait_all(procs)):
            self.assertEqual(rc, 0, "writer w%d failed:\n%s" % (k, err))
            lines = out.split("\n")[:-1]
            self.assertEqual(len(lines), EVENTS, "writer w%d acknowledged %d events" % (k, len(lines)))
            prev = 0
            for i, line in enumerate(lines):
                iid, seq = line.split(" ")
                self.assertEqual(iid, "w%d-%d" % (k, i))
                self.assertGreater(int(seq), prev, "a writer's own events must get increasing seqs")
                prev = int(seq)
                acked[iid] = int(seq)
        recs = self.dump(self.j)
        self.assertEqual(len(recs), PROCS * EVENTS)
        self.assertSeqs(recs)
        ids = [r["insert_id"] for r in recs]
        self.assertEqual(len(set(ids)), len(ids), "an event was stored twice")
        self.assertEqual(set(ids), set(acked), "stored events differ from the acknowledged ones")
        for r in recs:
            iid = r["insert_id"]
            self.assertEqual(r["seq"], acked[iid], "seq reported to the writer differs from the stored one")
            w, i = iid.split("-")
            self.assertEqual(r["event"]["event_properties"], {"writer": w, "i": int(i)})
        st = self.stat(self.j)
        self.assertEqual((st["recorded"], st["stored"], st["pending"]), (16000, 16000, 16000))
        # How much the writers interleaved (informative: the scheduler decides).
        switches = sum(1 for a, b in zip(ids, ids[1:]) if a.split("-")[0] != b.split("-")[0])
        print("writer switches in sequence order: %d; concurrent dumps: %d" % (switches, dumps))

    def test_jsonl_writers(self):
        """8 `ferry-record --jsonl` processes (2 batches of 1,000 each)."""
        files = []
        for k in range(PROCS):
            p = self.path("in%d.jsonl" % k)
            with open(p, "w", encoding="utf-8") as f:
                for i in range(EVENTS):
                    f.write(json.dumps({"event_type": "jsonl", "device_id": "dev-%d" % k,
                                        "event_properties": {"uid": "j%d-%d" % (k, i)}}) + "\n")
            files.append(p)
        procs = [subprocess.Popen([RECORD, "-j", self.j, "--jsonl", p], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=base_env()) for p in files]

        def partial(recs):
            self.assertSeqs(recs)
            per = {}
            for r in recs:
                k = r["event"]["device_id"]
                per[k] = per.get(k, 0) + 1
            for k, n in per.items():
                self.assertEqual(n % 1000, 0, "a partial batch of %s is visible (%d events)" % (k, n))

        dumps = self.concurrent_dumps(procs, partial)
        for k, (rc, out, err) in enumerate(self.wait_all(procs)):
            self.assertEqual(rc, 0, "ferry-record --jsonl %d failed:\n%s" % (k, err))
            self.assertEqual(err, "")
        recs = self.dump(self.j)
        self.assertEqual(len(recs), PROCS * EVENTS)
        self.assertSeqs(recs)
        uids = [r["event"]["event_properties"]["uid"] for r in recs]
        self.assertEqual(len(set(uids)), len(uids), "an event was stored twice")
        self.assertEqual(set(uids), {"j%d-%d" % (k, i) for k in range(PROCS) for i in range(EVENTS)})
        ids = [r["insert_id"] for r in recs]
        self.assertEqual(len(set(ids)), len(ids), "generated insert_ids collide")
        # Each process's lines in file order, each batch of 1,000 contiguous.
        for k in range(PROCS):
            mine = [(r["seq"], int(r["event"]["event_properties"]["uid"].split("-")[1]))
                    for r in recs if r["event"]["device_id"] == "dev-%d" % k]
            self.assertEqual([i for _, i in mine], list(range(EVENTS)), "lines of process %d out of order" % k)
            for b in range(0, EVENTS, 1000):
                seqs = [s for s, _ in mine[b:b + 1000]]
                self.assertEqual(seqs, list(range(seqs[0], seqs[0] + 1000)),
                                 "batch %d of process %d is not contiguous" % (b // 1000, k))
        print("concurrent dumps: %d" % dumps)


if __name__ == "__main__":
    main()
