"""The other field commands and export's options: filters, atomic output
(never over an existing file without --force, no temporary file left),
tail and tail -f, copy (compacted hot copy), purge (sequence numbers never
reused), verify on journals (clean and damaged), usage errors."""
import json
import os
import select
import signal
import stat
import subprocess
import threading
import time
import unittest

from fieldlib import (EX_CANTCREAT, EX_DATAERR, EX_NOINPUT, EX_USAGE, FIELDWRITER, JOURNAL, FieldCase, device,
                      events, invalid_events, raw_record, sha256_file)


def typed(n):
    out = []
    for i in range(n):
        out.append({"event_type": ["Service start", "Service exit", "Image downloaded"][i % 3],
                    "device_id": device(i % 2), "time": 1795939200000 + i * 60000,  # one a minute from 08:00Z
                    "event_properties": {"marker": "t%04d" % i}})
    return out


class Tools(FieldCase):
    def jsonl(self, journal, *args):
        out = self.tool(journal, "export", "--format", "jsonl", *args, check=0).stdout.decode()
        return [json.loads(l) for l in out.split("\n") if l]

    def markers(self, recs):
        return [r["event"]["event_properties"]["marker"] for r in recs]

    def test_filters(self):
        j = self.journal
        self.record_into(j, typed(30) + invalid_events(2))
        with self.sink() as sink:
            self.replay_journal(j, sink, "--keep-delivered")
        self.record_into(j, typed(6))
        allr = self.jsonl(j)
        self.assertEqual(len(allr), 38)
        self.assertEqual(self.jsonl(j, "--all"), allr)
        self.assertEqual(len(self.jsonl(j, "--pending")), 6)
        self.assertEqual(len(self.jsonl(j, "--delivered")), 30)
        self.assertEqual([r["state"] for r in self.jsonl(j, "--dead")], ["dead", "dead"])
        self.assertEqual(len(self.jsonl(j, "--dead", "--pending")), 8)
        starts = self.jsonl(j, "--type", "Service start")
        self.assertEqual(len(starts), 12)
        self.assertEqual(len(self.jsonl(j, "--type", "Service start", "--type", "Service exit")), 24)
        self.assertEqual(len(self.jsonl(j, "--device-id", device(1))), 18)
        self.assertEqual(len(self.jsonl(j, "--device-id", device(1), "--type", "Service exit", "--pending")), 1)
        # Times: ms, ISO dates and times, offsets; since inclusive, until exclusive.
        self.assertEqual(self.markers(self.jsonl(j, "--since", "2026-11-29T08:10:00Z", "--until",
                                                 "2026-11-29T08:13:00Z", "--delivered")), ["t0010", "t0011", "t0012"])
        self.assertEqual(self.markers(self.jsonl(j, "--since", "1795939800000", "--until", "1795939980000",
                                                 "--delivered")), ["t0010", "t0011", "t0012"])
        self.assertEqual(self.markers(self.jsonl(j, "--since", "2026-11-29T09:10+01:00", "--until",
                                                 "2026-11-29T08:11:00.001", "--delivered")), ["t0010", "t0011"])
        self.assertEqual(len(self.jsonl(j, "--until", "2026-11-29")), 0)
        self.assertEqual(len(self.jsonl(j, "--since", "2026-11-30")), 0)
        p = self.tool(j, "export", "--format", "jsonl", "--since", "yesterday")
        self.assertEqual(p.returncode, EX_USAGE)
        # The filter is recorded in a capture and in --json.
        path = os.path.join(self.tmp, "f.fyc")
        p = self.tool(j, "export", "--format", "capture", "-o", path, "--json", "--pending", "--type", "Service exit",
                      "--since", "1", check=0)
        summary = json.loads(p.stdout)
        self.assertEqual(summary["filter"], {"states": ["pending"], "since": 1, "types": ["Service exit"]})
        self.assertEqual(summary["records"], 2)
        self.assertEqual(summary["sha256"], sha256_file(path))

    def test_atomic_output(self):
        j = self.journal
        self.record_into(j, events(20))
        out = os.path.join(self.tmp, "out", "export.jsonl")
        os.makedirs(os.path.dirname(out))
        with open(out, "w") as f:
            f.write("precious\n")
        for fmt in ("jsonl", "csv", "capture"):
            p = self.tool(j, "export", "--format", fmt, "--output", out)
            self.assertEqual(p.returncode, EX_CANTCREAT, p.stderr)
            self.assertIn(b"--force", p.stderr)
            with open(out) as f:
                self.assertEqual(f.read(), "precious\n")
        p = self.tool(j, "export", "--format", "jsonl", "--output", out, "--force", check=0)
        self.assertEqual(p.stdout.decode(), "%s  %s\n" % (sha256_file(out), out))
        with open(out) as f:
            self.assertEqual(len(f.read().splitlines()), 20)
        self.assertEqual(os.listdir(os.path.dirname(out)), ["export.jsonl"])  # no temporary file left
        self.assertEqual(os.stat(out).st_mode & 0o777, 0o600)
        # A failing export leaves nothing behind: a directory that cannot be written.
        self.assertEqual(self.tool(j, "export", "--format", "csv", "--output", os.path.join(self.tmp, "no", "x.csv"))
                         .returncode, EX_NOINPUT)
        # Standard output: the hash goes to stderr.
        p = self.tool(j, "export", "--format", "csv", check=0)
        self.assertIn(b"  -\n", p.stderr)
        # An interrupted export writes nothing: SIGTERM while it runs.
        self.record_into(j, [dict(e, event_properties={"pad": "x" * 1000}) for e in events(3000, start=100)])
        target = os.path.join(self.tmp, "out", "big.jsonl")
        proc = subprocess.Popen([JOURNAL, "-j", j, "export", "--format", "jsonl", "-o", target],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(4000):  # bounded: until the temporary file exists (or the export is done)
            names = os.listdir(os.path.dirname(out))
            if any(n.startswith(".big.jsonl.tmp-") or n == "big.jsonl" for n in names) or proc.poll() is not None:
                break
            time.sleep(0.005)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        self.assertIn(proc.returncode, (0, 74, -signal.SIGTERM), err)  # (killed before it set its handler)
        left = sorted(os.listdir(os.path.dirname(out)))
        self.assertEqual(left, ["big.jsonl", "export.jsonl"] if proc.returncode == 0 else ["export.jsonl"], err)

    def test_tail(self):
        j = self.journal
        self.record_into(j, events(25))
        dump = self.dump_text(j).splitlines(keepends=True)
        self.assertEqual(self.tool(j, "tail", check=0).stdout.decode(), "".join(dump[-10:]))
        self.assertEqual(self.tool(j, "tail", "-n", "3", check=0).stdout.decode(), "".join(dump[-3:]))
        self.assertEqual(self.tool(j, "tail", "--lines", "100", check=0).stdout.decode(), "".join(dump))
        self.assertEqual(self.tool(j, "tail", "-n", "0", check=0).stdout.decode(), "")
        # -f: follows what recorders write, until stopped.
        proc = subprocess.Popen([JOURNAL, "-j", j, "tail", "-n", "2", "-f"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        try:
            got = []

            def read_lines(n):
                buf = b""
                for _ in range(600):  # bounded: 600 x 0.5 s at most
                    if len(got) >= n:
                        return
                    r, _, _ = select.select([proc.stdout], [], [], 0.5)
                    if r:
                        chunk = os.read(proc.stdout.fileno(), 65536)
                        if not chunk:
                            return
                        buf += chunk
                        *lines, buf = buf.split(b"\n")
                        got.extend(json.loads(l) for l in lines)
            read_lines(2)
            self.assertEqual([g["seq"] for g in got], [24, 25])
            self.record_into(j, events(3, start=200))
            read_lines(5)
            self.record_into(j, events(2000, start=300))  # more than one read at a time
            read_lines(2005)
            self.assertEqual([g["seq"] for g in got], list(range(24, 2029)))
        finally:
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 0, err)

    def test_copy(self):
        j = self.journal
        self.record_into(j, events(500))
        with self.sink() as sink:
            self.replay_journal(j, sink, "--keep-delivered")
        self.record_into(j, events(50, start=1000))
        dest = os.path.join(self.tmp, "backup", "journal")
        os.makedirs(os.path.dirname(dest))
        # A writer keeps recording during the copy.
        stop = threading.Event()

        def writer():
            k = 0
            while not stop.is_set() and k < 200:
                self.record_into(j, events(20, start=5000 + 20 * k))
                k += 1
        t = threading.Thread(target=writer)
        t.start()
        try:
            p = self.tool(j, "copy", dest, "--json", check=0)
        finally:
            stop.set()
            t.join(timeout=300)
        summary = json.loads(p.stdout)
        self.assertEqual(summary["journal_id"], self.stat_of(j)["journal_id"])
        self.assertEqual(stat.S_IMODE(os.stat(dest).st_mode), 0o700)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(dest, "data.mdb")).st_mode), 0o600)
        self.assertEqual(sorted(os.listdir(os.path.dirname(dest))), ["journal"])
        self.assert_verify_clean(dest)
        copied = self.dump_of(dest)
        now = self.dump_of(j)
        self.assertGreaterEqual(len(copied), 550)
        self.assertEqual(copied, now[:len(copied)])  # a consistent prefix of the live journal
        self.assertEqual([r["seq"] for r in copied], list(range(1, len(copied) + 1)))
        self.assertEqual(self.stat_of(dest)["destinations"][0]["sent"], 500)
        # Compacted: not larger than the source file.
        self.assertLessEqual(os.path.getsize(os.path.join(dest, "data.mdb")),
                             os.path.getsize(os.path.join(j, "data.mdb")))
        # Never over an existing directory, even an empty one.
        p = self.tool(j, "copy", dest)
        self.assertEqual(p.returncode, EX_CANTCREAT)
        empty = os.path.join(self.tmp, "empty")
        os.mkdir(empty)
        self.assertEqual(self.tool(j, "copy", empty).returncode, EX_CANTCREAT)
        self.assertEqual(os.listdir(empty), [])

    def test_purge(self):
        j = self.journal
        self.record_into(j, events(40) + invalid_events(3))
        with self.sink() as sink:
            self.replay_journal(j, sink, "--keep-delivered")
        self.record_into(j, events(7, start=100))
        before = self.stat_of(j)
        self.assertEqual((before["stored"], before["pending"], before["dead"], before["recorded"]), (50, 7, 3, 50))
        # --all without --yes: refused, nothing deleted.
        self.assertEqual(self.tool(j, "purge", "--all").returncode, EX_USAGE)
        self.assertEqual(self.tool(j, "purge").returncode, EX_USAGE)
        self.assertEqual(self.stat_of(j)["stored"], 50)
        p = self.tool(j, "purge", "--delivered", "--json", check=0)
        self.assertEqual(json.loads(p.stdout)["events"], 43)  # delivered and dead-lettered
        st = self.stat_of(j)
        self.assertEqual((st["stored"], st["pending"], st["dead"]), (7, 7, 3))
        self.assertEqual(st["pruned"], 43)
        self.assert_verify_clean(j)
        p = self.tool(j, "purge", "--all", "--yes", "--json", check=0)
        self.assertEqual(json.loads(p.stdout), {"purged": "all", "events": 7, "dead": 3, "next_seq": 51})
        st = self.stat_of(j)
        self.assertEqual((st["stored"], st["pending"], st["dead"], st["recorded"]), (0, 0, 0, 50))
        self.assertEqual(self.tool(j, "dead", check=0).stdout.decode(), "0 dead event(s)\n")
        self.assert_verify_clean(j)
        # Numbers are never handed out again.
        self.record_into(j, events(2, start=900))
        self.assertEqual([r["seq"] for r in self.dump_of(j)], [51, 52])
        self.tool(j, "purge", "--all", "--yes", check=0)
        self.record_into(j, events(1, start=950))
        self.assertEqual([r["seq"] for r in self.dump_of(j)], [53])

    def test_verify_journal(self):
        j = self.journal
        self.record_into(j, events(30))
        p = self.verify(j, "--json")
        self.assertEqual(p.returncode, 0)
        self.assertEqual(json.loads(p.stdout)["ok"], True)
        self.assertEqual(self.tool(j, "verify").returncode, 0)  # -j DIR, no argument
        self.assertEqual(self.tool(None, "verify", "-j", j).returncode, 0)
        # A record that does not decode (as a damaged or foreign writer
        # could leave): reported with its sequence number.
        bad = bytearray(raw_record([("event_type", "x"), ("device_id", "dev-12345"), ("insert_id", "i"),
                                    ("time", 1)]))
        bad[-1] ^= 0xFF
        self.run_tool(FIELDWRITER, "append-raw", j, bad.hex(), check=0)
        p = self.verify(j)
        self.assertEqual(p.returncode, EX_DATAERR, p.stdout)
        self.assertIn(b"events seq 31: record invalid", p.stdout)
        js = json.loads(self.verify(j, "--json").stdout)
        self.assertEqual([x["where"] for x in js["problems"]], ["events seq 31"])
        # Cursors beyond the numbers handed out, or with a disordered list.
        self.run_tool(FIELDWRITER, "cursor", j, "eu", "40", check=0)
        self.run_tool(FIELDWRITER, "cursor", j, "us", "5", "9", "7", check=0)
        out = self.verify(j).stdout.decode()
        self.assertIn("cursor eu: delivered through seq 40, above the last seq handed out (31)", out)
        self.assertIn("cursor us: out-of-order list is not ascending", out)

    def test_commands_refuse_damaged_pages(self):
        # LMDB trusts its pages: every command that opens the journal looks
        # at them first, refuses a damaged journal (65) and names salvage.
        j = self.journal
        self.record_into(j, events(300))
        data = os.path.join(j, "data.mdb")
        with open(data, "r+b") as f:
            psize = os.sysconf("SC_PAGE_SIZE")  # LMDB uses the OS page size
            size = os.fstat(f.fileno()).st_size
            f.seek(2 * psize)  # meta pages 0 and 1 kept: every other page zeroed
            f.write(bytes(size - 2 * psize))
        before = open(data, "rb").read()
        out = os.path.join(self.tmp, "x.jsonl")
        for args in (["stat"], ["dump"], ["dead"], ["timeline"], ["tail"], ["requeue", "--all"],
                     ["export", "--format", "jsonl", "-o", out], ["copy", os.path.join(self.tmp, "copy")],
                     ["purge", "--all", "--yes"]):
            p = self.tool(j, *args)
            err = p.stderr.decode()
            self.assertEqual(p.returncode, EX_DATAERR, (args, err))
            self.assertIn("is damaged", err)
            self.assertIn("salvage", err)
            self.assertEqual(p.stdout, b"", args)
        self.assertFalse(os.path.exists(out))
        self.assertEqual(open(data, "rb").read(), before, "a refused command changed the file")

    def test_progress_on_a_terminal(self):
        import pty
        j = self.journal
        self.record_into(j, events(500))
        master, slave = pty.openpty()
        try:
            p = subprocess.run([JOURNAL, "-j", j, "export", "--format", "jsonl", "--progress",
                                "-o", os.path.join(self.tmp, "p.jsonl")], stdout=subprocess.PIPE, stderr=slave,
                               timeout=120)
            os.close(slave)
            slave = None
            seen = b""
            while True:
                r, _, _ = select.select([master], [], [], 1.0)
                if not r:
                    break
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                seen += chunk
        finally:
            if slave is not None:
                os.close(slave)
            os.close(master)
        self.assertEqual(p.returncode, 0)
        self.assertIn(b"export [", seen)
        self.assertIn(b"100%  500/500 records", seen)
        # Not on a terminal: nothing but the summary.
        p = self.tool(j, "export", "--format", "jsonl", "--progress", "-o", os.path.join(self.tmp, "q.jsonl"),
                      check=0)
        self.assertNotIn(b"[", p.stderr)

    def test_usage(self):
        j = self.journal
        self.record_into(j, events(2))
        for args in (["export"], ["export", "--format", "xml"], ["export", "--format", "jsonl", "extra"],
                     ["export", "--format", "jsonl", "--bogus"], ["import"], ["copy"], ["tail", "-n", "x"],
                     ["purge", "--delivered", "--all", "--yes"], ["verify", "a", "b"]):
            p = self.tool(j, *args)
            self.assertEqual(p.returncode, EX_USAGE, "%s: %s" % (args, p.stderr))
        self.assertEqual(self.tool(j, "verify", os.path.join(self.tmp, "nothing")).returncode, EX_NOINPUT)
        self.assertEqual(self.tool(os.path.join(self.tmp, "none"), "export", "--format", "jsonl").returncode,
                         EX_NOINPUT)
        self.assertEqual(self.tool(None, "import", os.path.join(self.tmp, "none.fyc"), "-j", j).returncode,
                         EX_NOINPUT)
        notcap = os.path.join(self.tmp, "notcap")
        with open(notcap, "w") as f:
            f.write("hello")
        self.assertEqual(self.tool(None, "import", notcap, "-j", j).returncode, EX_DATAERR)
        for cmd in ("export", "verify", "import", "copy", "purge", "tail"):
            self.assertEqual(self.tool(j, cmd, "--help").returncode, 0, cmd)


if __name__ == "__main__":
    unittest.main(verbosity=2)
