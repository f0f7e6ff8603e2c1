"""Test 3: recorders SIGKILLed while they append, over and over.

After every kill the journal opens (`ferry-journal stat` exits 0); regularly
and at the end `dump` exits 0 (every record decodes: nothing half-written),
every event whose success was printed before the kill is there, at most the
one being recorded at the moment of the kill is there unprinted, and sequence
numbers are contiguous. A writer running the whole time beside the victims
must never be blocked or hurt by them (LMDB's robust mutex).

Random delays come from a seeded RNG: the seed is printed, and
FERRY_TEST_SEED=N reproduces a run."""
import json
import os
import random
import signal
import subprocess
import time

from ferrytest import RECORD, TESTWRITER, FerryTestCase, base_env, main

KILLS = 120          # library writer kills (at least 100)
JSONL_KILLS = 20     # ferry-record --jsonl kills
CREATE_KILLS = 20    # kills while a new journal is being created
WAIT = 120           # seconds: bound on any single wait (a hang fails the test)
DEFAULT_BOUND = 64 << 20


def make_rng(test):
    seed = int(os.environ.get("FERRY_TEST_SEED") or random.SystemRandom().randrange(1 << 32))
    print("\n%s: seed %d (FERRY_TEST_SEED=%d reproduces)" % (test, seed, seed), flush=True)
    return random.Random(seed)


def read_lines(path):
    """Complete lines of a file another process writes."""
    with open(path, encoding="utf-8") as f:
        data = f.read()
    return data.split("\n")[:-1]


class Kill(FerryTestCase):

    def setUp(self):
        super().setUp()
        self.j = self.path("journal")
        self.procs = []
        self.addCleanup(self.reap)

    def reap(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()

    def spawn(self, argv, out_path):
        with open(out_path, "wb") as out:
            p = subprocess.Popen(argv, stdout=out, stderr=subprocess.PIPE, env=base_env())
        self.procs.append(p)
        return p

    def wait_for_output(self, p, out_path):
        """Blocks until the process printed a line or exited."""
        deadline = time.monotonic() + WAIT
        while os.path.getsize(out_path) == 0:
            if p.poll() is not None:
                return
            if time.monotonic() > deadline:
                self.fail("writer printed nothing within %ds" % WAIT)
            time.sleep(0.001)

    def kill(self, p):
        p.send_signal(signal.SIGKILL)
        try:
            _, err = p.communicate(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.fail("a SIGKILLed process did not exit")
        return p.returncode, err.decode("utf-8", "replace")

    def check_opens(self):
        rc, out, err = self.journal_tool(self.j, "stat", "--json")
        self.assertEqual(rc, 0, "journal does not open after a kill:\n" + err)
        return json.loads(out.decode("utf-8"))

    def check_writers(self, recs, acked, running=()):
        """acked: prefix -> list of seqs the writer printed. Each writer's
        stored events are exactly its first m, m = printed or printed + 1,
        with the printed seqs (m >= printed for writers still running)."""
        stored = {}
        for r in recs:
            w, i = r["insert_id"].rsplit("-", 1)
            stored.setdefault(w, []).append((int(i), r["seq"]))
        for w, seqs in acked.items():
            got = stored.get(w, [])
            self.assertEqual([i for i, _ in got], list(range(len(got))),
                             "writer %s: stored events are not its first ones, in order" % w)
            if w in running:
                self.assertGreaterEqual(len(got), len(seqs), "writer %s: acknowledged events missing" % w)
            else:
                self.assertIn(len(got), (len(seqs), len(seqs) + 1),
                              "writer %s printed %d successes but %d events are stored" % (w, len(seqs), len(got)))
            self.assertEqual([s for _, s in got[:len(seqs)]], seqs, "writer %s: seqs differ" % w)
        unknown = set(stored) - set(acked)
        self.assertFalse(unknown, "events from unknown writers: %s" % sorted(unknown)[:5])

    # ---- library writers ---------------------------------------------------

    def test_sigkill_library_writer_loop(self):
        rng = make_rng("library writer kills")
        stop = self.path("stop")
        bg_out = self.path("bg.out")
        # A writer beside the victims all along (paced: an event per 5 ms at most).
        bg = self.spawn([TESTWRITER, "record", self.j, "bg", "1000000", stop, "5000"], bg_out)
        self.wait_for_output(bg, bg_out)
        if bg.poll() is not None:
            self.fail("background writer exited early: %s" % bg.stderr.read().decode())
        acked = {}
        early = 0
        for it in range(KILLS):
            name = "k%d" % it
            out = self.path(name + ".out")
            p = self.spawn([TESTWRITER, "record", self.j, name, "1000000"], out)
            if rng.random() < 0.2:
                early += 1  # maybe still opening the journal
                time.sleep(rng.uniform(0, 0.03))
            else:
                self.wait_for_output(p, out)
                time.sleep(rng.uniform(0, 0.02))
            rc, err = self.kill(p)
            self.assertEqual(rc, -signal.SIGKILL, "writer %s ended on its own (rc %d):\n%s" % (name, rc, err))
            lines = read_lines(out)
            ids = [line.split(" ")[0] for line in lines]
            self.assertEqual(ids, ["%s-%d" % (name, i) for i in range(len(lines))])
            acked[name] = [int(line.split(" ")[1]) for line in lines]
            self.check_opens()
            if it % 20 == 19:
                acked["bg"] = [int(x.split(" ")[1]) for x in read_lines(bg_out)]  # before the dump
                recs = self.dump(self.j)
                self.assertSeqs(recs)
                self.check_writers(recs, acked, running=("bg",))
        if bg.poll() is not None:
            self.fail("background writer died during the kills: %s" % bg.stderr.read().decode())
        bg_before_stop = len(read_lines(bg_out))
        open(stop, "w").close()
        try:
            _, err = bg.communicate(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.fail("background writer is blocked")
        self.assertEqual(bg.returncode, 0, "background writer failed:\n" + err.decode("utf-8", "replace"))
        acked["bg"] = [int(x.split(" ")[1]) for x in read_lines(bg_out)]
        recs = self.dump(self.j)
        self.assertSeqs(recs)
        self.check_writers(recs, acked)
        st = self.check_opens()
        self.assertEqual(st["stored"], len(recs))
        self.assertEqual(st["recorded"], len(recs))
        victims = sum(len(v) for k, v in acked.items() if k != "bg")
        print("%d kills (%d early), %d events acknowledged by victims, %d by the background writer "
              "(%d before the stop)" % (KILLS, early, victims, len(acked["bg"]), bg_before_stop))
        self.assertGreater(victims, 0)

    # ---- ferry-record --jsonl ----------------------------------------------

    def test_sigkill_jsonl_recorder(self):
        """A killed `ferry-record --jsonl` leaves whole batches of 1,000 only."""
        rng = make_rng("jsonl kills")
        lines = 3000

        def jsonl_file(tag):
            p = self.path(tag + ".jsonl")
            with open(p, "w") as f:
                for i in range(lines):
                    f.write(json.dumps({"event_type": "k", "device_id": tag, "insert_id": "%s-%d" % (tag, i),
                                        "event_properties": {"pad": "x" * 200}}) + "\n")
            return p

        # How long one uninterrupted run takes here, to aim the kills inside it.
        t0 = time.monotonic()
        self.record_ok(self.j, "--jsonl", jsonl_file("full"))
        span = time.monotonic() - t0
        counts, stored = {"full": lines}, lines
        for it in range(JSONL_KILLS):
            tag = "r%d" % it
            p = self.spawn([RECORD, "-j", self.j, "--jsonl", jsonl_file(tag)], self.path(tag + ".out"))
            time.sleep(rng.uniform(0, span))
            if p.poll() is None:
                self.kill(p)
            else:
                p.communicate()
                self.assertEqual(p.returncode, 0)
            st = self.check_opens()
            self.assertEqual(st["stored"], st["recorded"])
            n = st["stored"] - stored
            self.assertEqual(n % 1000, 0, "run %s left a partial batch: %d events" % (tag, n))
            counts[tag], stored = n, st["stored"]
        recs = self.dump(self.j)
        self.assertSeqs(recs)
        self.assertEqual(len(recs), stored)
        for tag, n in counts.items():
            mine = [r["insert_id"] for r in recs if r["event"]["device_id"] == tag]
            self.assertEqual(mine, ["%s-%d" % (tag, i) for i in range(n)])
        print("events kept per killed run: %s" % sorted(counts.values()))

    # ---- creation --------------------------------------------------------------

    def test_sigkill_during_creation(self):
        """A recorder killed while creating a new journal: the next one
        records normally and the journal has its default bound."""
        rng = make_rng("creation kills")
        t0 = time.monotonic()
        self.record_ok(self.path("timing"), "-t", "x", "-d", "d")
        span = time.monotonic() - t0
        for it in range(CREATE_KILLS):
            j = self.path("new%d" % it, "journal")
            p = self.spawn([RECORD, "-j", j, "-t", "first", "-d", "d"], self.path("new%d.out" % it))
            time.sleep(rng.uniform(0, span))
            if p.poll() is None:
                self.kill(p)
            else:
                p.communicate()
                self.assertEqual(p.returncode, 0)
            self.record_ok(j, "-t", "second", "-d", "d")
            rc, out, err = self.journal_tool(j, "stat", "--json")
            self.assertEqual(rc, 0, err)
            self.assertEqual(json.loads(out.decode())["max_bytes"], DEFAULT_BOUND,
                             "journal %d has the wrong bound after a kill during creation" % it)
            recs = self.dump(j)
            self.assertSeqs(recs)
            self.assertIn([r["event"]["event_type"] for r in recs], (["second"], ["first", "second"]))

    def test_empty_data_mdb_left_by_a_crash(self):
        """The state a kill leaves between LMDB creating data.mdb and writing
        its first pages (or a full disk at that moment): an empty data.mdb.
        The next recorder must make a normal journal, with the default bound
        of 64 MiB, not LMDB's built-in 1 MiB."""
        os.mkdir(self.j, 0o700)
        with open(os.path.join(self.j, "data.mdb"), "wb"):
            pass
        self.record_ok(self.j, "-t", "after crash", "-d", "d")
        st = self.stat(self.j)
        self.assertEqual(st["max_bytes"], DEFAULT_BOUND,
                         "a journal created over an empty data.mdb got a bound of %d bytes" % st["max_bytes"])
        self.assertEqual([r["event"]["event_type"] for r in self.dump(self.j)], ["after crash"])

    def test_unfinished_creation_left_by_a_power_cut(self):
        """LMDB writes both meta pages of a new data.mdb without a sync; a
        power cut before the first commit's fdatasync can leave them zero or
        torn, a file LMDB refuses (MDB_INVALID) although it never held an
        event. The next recorder sets it aside (data.mdb.unfinished) and
        creates the journal; found by tests/reliability."""
        os.mkdir(self.j, 0o700)
        with open(os.path.join(self.j, "data.mdb"), "wb") as f:
            f.write(bytes(8192) + b"torn" * 1024)
        with open(os.path.join(self.j, "lock.mdb"), "wb"):
            pass
        self.record_ok(self.j, "-t", "after cut", "-d", "d")
        self.assertEqual([r["event"]["event_type"] for r in self.dump(self.j)], ["after cut"])
        self.assertEqual(self.stat(self.j)["max_bytes"], DEFAULT_BOUND)
        self.assertTrue(os.path.exists(os.path.join(self.j, "data.mdb.unfinished")))

    def test_damaged_journal_with_commits_is_not_set_aside(self):
        """A data.mdb whose meta page records a commit is a journal with
        events: damaged, it is refused, never replaced."""
        self.record_ok(self.j, "-t", "one", "-d", "d")
        self.record_ok(self.j, "-t", "two", "-d", "d")
        path = os.path.join(self.j, "data.mdb")
        page = os.sysconf("SC_PAGESIZE")
        with open(path, "r+b") as f:
            f.seek(page)
            f.write(bytes(page))  # the second meta page, zeroed
        rc, _, err = self.record(self.j, "-t", "three", "-d", "d")
        self.assertNotEqual(rc, 0)
        self.assertIn(self.j, err)
        self.assertFalse(os.path.exists(path + ".unfinished"))


if __name__ == "__main__":
    main()
