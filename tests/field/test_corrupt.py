"""Damaged journals (issue #8): bytes flipped in each kind of LMDB page of a
real journal (meta, main, events branch/leaf, overflow, cursors, free, the
newest leaf), then verify (exit 65, never a crash), ferry-replay (stops with
exit 65 naming salvage, never a crash or a hang), salvage (quarantines the
damaged journal, counts what was lost) and a replay to ferry-sink: every
event that did not live on the damaged page arrives exactly once, and the
lost ones are counted in stat "quarantined" (exactly when LMDB's count of
stored events is readable, else as a lower bound said to be one). Also:
salvage refuses a journal that is open elsewhere, leaves a sound one alone,
and --out keeps the original in place. FERRY_TEST_SEED fixes the seed."""
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corruptlib as cl  # noqa: E402

BINS = cl.Bins.from_env()


class CorruptTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ferry-corrupt-test-")
        # A fixed seed by default; FERRY_TEST_SEED=random explores.
        env_seed = os.environ.get("FERRY_TEST_SEED", "1")
        self.seed = random.randrange(1 << 30) if env_seed == "random" else int(env_seed)
        print("seed %d" % self.seed, file=sys.stderr)
        self.log = []

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def case(self, kind, how, n):
        wd = os.path.join(self.tmp, "%s-%s" % (kind, how))
        try:
            r = cl.one_case(BINS, wd, self.seed + n, kind, how, self.log.append)
        except AssertionError:
            print("\n".join(self.log[-40:]), file=sys.stderr)
            raise
        for line in self.log:
            self.assertNotIn("Sanitizer", line)
        self.log = []
        shutil.rmtree(wd, ignore_errors=True)
        return r

    def test_every_kind_of_page(self):
        n = 0
        for kind in cl.KINDS:
            for how in ("header", "body", "zero"):
                with self.subTest(kind=kind, how=how):
                    r = self.case(kind, how, n)
                    n += 1
                    if r["skipped"]:
                        continue
                    self.assertEqual(r["beyond"], 0)
                    self.assertEqual(r["duplicates"], 0)
                    self.assertEqual(r["delivered"] + r["lost"], r["pending"])
                    # A header flip touches a byte LMDB acts on unless it hit
                    # only the pad (corruptlib.HARMLESS_HEADER): found then,
                    # on every live page; a harmless one changes nothing.
                    live = kind not in ("meta", "free")
                    if live and (how == "zero" or (how == "header" and not r["harmless"])):
                        self.assertEqual(r["verify"], 65)
                        self.assertEqual(r["replay_before"], 65)
                    if r["harmless"]:
                        self.assertEqual((r["verify"], r["replay_before"], r["lost"]), (0, 0, 0))
                    if kind in ("events-branch", "main") and how != "body":
                        self.assertEqual(r["lost"], 0, "a branch page holds no events: all recovered")
                    if kind in ("meta", "free"):
                        self.assertEqual(r["lost"], 0, "no events live there")
                    if r["rebuilt"] and kind in ("events-branch", "events-leaf", "overflow", "tail", "free"):
                        self.assertTrue(r["lost_exact"], "the main database is intact: its count is exact")

    def journal(self, name="j", n=50):
        j = os.path.join(self.tmp, name)
        evs = "".join(json.dumps({"event_type": "e", "device_id": "device-%04d" % i, "time": 1700000000000 + i})
                      + "\n" for i in range(n))
        subprocess.run([BINS.record, "-j", j, "--jsonl", "-"], input=evs.encode(), check=True, capture_output=True)
        return j

    def test_precise_damage(self):
        """What the page check finds is what LMDB acts on: pad bytes of a page
        header are ignored; a stray P_DIRTY/P_LOOSE/P_KEEP flag, a node table
        one node short, a damaged entry count and an undecodable cursor are
        found; the count is then not trusted and salvage says so."""
        # a cursor (one replay to ferry-sink), then 3000 pending events
        j = self.journal(n=20)
        sink = cl.SinkProc(BINS, self.tmp, cl.KEY)
        try:
            p = subprocess.run([BINS.replay, "-j", j, "--once", "--endpoint", sink.url, "--device-rate", "0"],
                               env=dict(os.environ, FERRY_API_KEY=cl.KEY), capture_output=True, timeout=600)
            self.assertEqual(p.returncode, 0, p.stderr)
        finally:
            sink.stop()
        evs = "".join(json.dumps({"event_type": "e", "device_id": "device-%04d" % i}) + "\n" for i in range(3000))
        subprocess.run([BINS.record, "-j", j, "--jsonl", "-"], input=evs.encode(), check=True, capture_output=True)
        before = subprocess.run([BINS.journal, "-j", j, "dump"], capture_output=True, check=True).stdout
        data = os.path.join(j, "data.mdb")
        with open(data, "rb") as f:
            orig = f.read()
        pm = cl.page_map(data)
        ps = pm["psize"]
        leaf = cl.pick_target(pm, "events-leaf", random.Random(self.seed))
        main = [p for p in pm if isinstance(p, int) and pm[p][1] == "main"][0]

        def damaged(edit):
            d = bytearray(orig)
            edit(d)
            with open(data, "wb") as f:
                f.write(d)
            v = subprocess.run([BINS.journal, "-j", j, "verify"], capture_output=True)
            self.assertIn(v.returncode, (0, 65), v.stderr)
            return v.returncode == 65

        def xor(off, val):
            def f(d):
                d[off] ^= val
            return f
        self.assertFalse(damaged(lambda d: None))
        self.assertFalse(damaged(xor(leaf * ps + 8, 0xff)), "the pad is ignored")
        self.assertFalse(damaged(xor(leaf * ps + 9, 0x81)), "the pad is ignored")
        for bit in (0x10, 0x80, 0x4000, 0x8000):
            self.assertTrue(damaged(xor(leaf * ps + 10 + (bit > 0xff), bit & 0xff or bit >> 8)), hex(bit))
        self.assertTrue(damaged(xor(leaf * ps + 12, 0x02)) or damaged(xor(leaf * ps + 12, 0x06)), "lower")
        # the events record's entry count in the main leaf
        node = [n for n in cl._nodes(orig, main * ps) if n[3] == b"events"][0]
        self.assertTrue(damaged(xor(node[4] + 32 + 2, 0x80)))
        # a cursor that does not decode (its msgpack map header)
        cur = [p for p in pm if isinstance(p, int) and pm[p][:2] == ("leaf", "cursors")][0]
        cnode = list(cl._nodes(orig, cur * ps))[0]
        d2 = bytearray(orig)
        d2[node[4] + 32 + 2] ^= 0x80
        d2[cnode[4]] = 0xc1
        with open(data, "wb") as f:
            f.write(d2)
        p = subprocess.run([BINS.journal, "-j", j, "salvage", "--json"], capture_output=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        r = json.loads(p.stdout)
        self.assertEqual((r["bad_cursors"], r["bad_records"], r["salvaged"]), (1, 0, 3000))
        self.assertEqual((r["lost_exact"], r["lost_unknown"], r["lost"]), (False, True, 0))
        self.assertIn(b"0 bad record(s), 1 undecodable cursor(s)", subprocess.run(
            [BINS.journal, "-j", r["quarantine"], "salvage", "--force", "--out", os.path.join(self.tmp, "again")],
            capture_output=True).stdout)
        self.assertEqual(subprocess.run([BINS.journal, "-j", j, "dump"], capture_output=True, check=True).stdout,
                         before)

    def test_failed_meta_write_is_not_damage(self):
        """When writing a meta page fails (EIO, ENOSPC), LMDB writes it back
        with the old transaction and last page but the new roots, which may
        lie past that last page (mdb_env_write_meta). Found by
        40-io-errors: the older meta page is then never read, so it is not
        damage; the same roots in the newest meta page are."""
        j = self.journal(n=200)
        for _ in range(3):  # a few transactions: both meta pages in use
            subprocess.run([BINS.record, "-j", j, "-t", "e", "-d", "device-0001"], check=True, capture_output=True)
        data = os.path.join(j, "data.mdb")
        with open(data, "rb") as f:
            orig = f.read()
        pm = cl.page_map(data)
        ps, newest = pm["psize"], pm["newest_meta"]

        def with_roots_past_last(m):
            d = bytearray(orig)
            last = struct.unpack_from("<Q", d, m * ps + 136)[0]
            struct.pack_into("<Q", d, m * ps + 80, last + 1)  # the free database's root
            struct.pack_into("<Q", d, m * ps + 128, last + 2)  # the main database's root
            with open(data, "wb") as f:
                f.write(d)
            return subprocess.run([BINS.journal, "-j", j, "verify"], capture_output=True)

        v = with_roots_past_last(1 - newest)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertEqual(subprocess.run([BINS.journal, "-j", j, "stat"], capture_output=True).returncode, 0)
        v = with_roots_past_last(newest)
        self.assertEqual(v.returncode, 65, v.stdout + v.stderr)
        self.assertIn(b"meta page %d is damaged" % newest, v.stdout)

    def test_sound_journal_is_left_alone(self):
        j = self.journal()
        before = open(os.path.join(j, "data.mdb"), "rb").read()
        p = subprocess.run([BINS.journal, "-j", j, "salvage", "--json"], capture_output=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertFalse(json.loads(p.stdout)["rebuilt"])
        self.assertEqual(open(os.path.join(j, "data.mdb"), "rb").read(), before)
        self.assertEqual(sorted(os.listdir(self.tmp)), ["j"])

    def test_out_keeps_the_original(self):
        j = self.journal()
        out = os.path.join(self.tmp, "rebuilt")
        p = subprocess.run([BINS.journal, "-j", j, "salvage", "--force", "--out", out, "--json"], capture_output=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        r = json.loads(p.stdout)
        self.assertEqual((r["salvaged"], r["lost"], r["quarantine"]), (50, 0, None))
        dump = lambda d: subprocess.run([BINS.journal, "-j", d, "dump"], capture_output=True, check=True).stdout
        self.assertEqual(dump(j), dump(out))
        st = json.loads(subprocess.run([BINS.journal, "-j", out, "stat", "--json"], capture_output=True).stdout)
        st0 = json.loads(subprocess.run([BINS.journal, "-j", j, "stat", "--json"], capture_output=True).stdout)
        self.assertEqual(st["journal_id"], st0["journal_id"])
        self.assertEqual(st["quarantined"], 0)
        # the new journal has the original's modes (0700, files 0600)
        mode = lambda p: os.stat(p).st_mode & 0o777
        self.assertEqual(mode(out), 0o700)
        self.assertEqual(mode(os.path.join(out, "data.mdb")), 0o600)
        self.assertEqual(mode(os.path.join(out, "lock.mdb")), 0o600)
        # an existing --out is refused
        p = subprocess.run([BINS.journal, "-j", j, "salvage", "--force", "--out", out], capture_output=True)
        self.assertEqual(p.returncode, 73)

    def test_unreported_gaps_survive_salvage(self):
        """Eviction gaps not yet reported as "[ferry] events lost" are kept."""
        j = os.path.join(self.tmp, "small")
        evs = "".join(json.dumps({"event_type": "e", "device_id": "device-%d" % (i % 3),
                                  "event_properties": {"pad": "x" * 300}}) + "\n" for i in range(4000))
        subprocess.run([BINS.record, "-j", j, "--max-size", "1M", "--overflow", "evict-oldest", "--jsonl", "-"],
                       input=evs.encode(), check=True, capture_output=True)
        stat = lambda d: json.loads(subprocess.run([BINS.journal, "-j", d, "stat", "--json"], capture_output=True,
                                                   check=True).stdout)
        st0 = stat(j)
        self.assertGreater(st0["gaps_unsent"], 0)
        out = os.path.join(self.tmp, "rebuilt")
        p = subprocess.run([BINS.journal, "-j", j, "salvage", "--force", "--out", out, "--json"], capture_output=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual((json.loads(p.stdout)["gaps"], json.loads(p.stdout)["gaps_lost"]), (st0["gaps_unsent"], 0))
        st = stat(out)
        self.assertEqual(st["gaps"], st0["gaps"])
        self.assertEqual(st["gaps_unsent_events"], st0["gaps_unsent_events"])

    def test_service_stops_on_damage(self):
        """ferry-record --listen checks the pages before LMDB reads them:
        exit 65 naming salvage, not an LMDB abort and a restart loop."""
        j = self.journal(n=3000)
        data = os.path.join(j, "data.mdb")
        pm = cl.page_map(data)
        pg = cl.pick_target(pm, "tail", random.Random(self.seed))
        cl.damage(data, pm, pg, random.Random(self.seed), "zero")
        p = subprocess.run([BINS.record, "-j", j, "--listen", os.path.join(self.tmp, "s.sock")], capture_output=True,
                           timeout=300)
        self.assertEqual(p.returncode, 65, p.stderr)
        self.assertIn(b"salvage", p.stderr)
        self.assertNotIn(b"Sanitizer", p.stderr)
        p = subprocess.run([BINS.journal, "-j", j, "salvage", "--json"], capture_output=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        r = json.loads(p.stdout)
        self.assertTrue(r["lost_exact"])
        self.assertEqual(r["salvaged"] + r["lost"], 3000)
        self.assertGreater(r["lost"], 0)
        # recording goes on in the salvaged journal, numbers not reused
        subprocess.run([BINS.record, "-j", j, "-t", "after", "-d", "device-after"], check=True, capture_output=True)
        st = json.loads(subprocess.run([BINS.journal, "-j", j, "stat", "--json"], capture_output=True).stdout)
        self.assertGreater(st["recorded"], 3000)
        self.assertEqual(st["quarantined"], r["lost"])

    def test_refused_while_open(self):
        j = self.journal()
        sock = os.path.join(self.tmp, "rec.sock")
        svc = subprocess.Popen([BINS.record, "-j", j, "--listen", sock], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL)
        try:
            for _ in range(3000):
                if os.path.exists(sock):
                    break
                self.assertIsNone(svc.poll())
                import time
                time.sleep(0.01)
            p = subprocess.run([BINS.journal, "-j", j, "salvage", "--force"], capture_output=True)
            self.assertEqual(p.returncode, 75, p.stderr)
            self.assertIn(b"open in another process", p.stderr)
            self.assertEqual(sorted(x for x in os.listdir(self.tmp) if x.startswith("j")), ["j"])
        finally:
            svc.terminate()
            svc.wait(timeout=60)
            svc.stdout.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
