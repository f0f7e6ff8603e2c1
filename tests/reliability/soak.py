#!/usr/bin/env python3
"""Soak: ferry running for a while the way a device runs it, with faults.

  soak.py --build BUILD_DIR [--minutes N] [--seed S] [--workdir DIR] [--json]

Runs together, for N minutes (default 10):
  - ferry-record --listen with a few clients, each sending events line by
    line and reading "ok SEQ", reconnecting every few hundred events;
  - one-shot `ferry-record --type ...` processes every few seconds (a second
    writer of the same journal);
  - ferry-replay --follow to ferry-sink with fault injection (5xx before and
    after accepting, dropped connections, slow answers);
  - periodic `ferry-journal export --pending` and `stat`.
Every few seconds it samples the resident memory (VmRSS) and open
descriptors (/proc/PID/fd) of each long-running process, the journal's file
size and the acked and delivered counts, and prints a table. Then it stops the
writers, lets the replayer drain, and checks:
  - every acked event arrived exactly once (by insert_id);
  - after warm-up (the first fifth) memory, descriptors and the journal file
    stay flat: the last third's maximum is within a bound of the first
    third's (ferry-sink is reported, not judged: its deduplication set holds
    every insert_id by design);
  - throughput does not decay: the last third's acked and delivered rates are
    at least half the first third's (the machine may be shared, hence loose).
Exit 0 iff all hold; --json adds one summary line on stdout (the scenario
contract of tests/reliability). Python 3 standard library only."""
import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

KEY = "soak-test-key-0123456789abcdef"
SAMPLE_S = 5.0


def log(msg):
    print("soak: " + msg, file=sys.stderr, flush=True)


def proc_sample(pid):
    """(VmRSS kB, open fds) of a live process, else (None, None)."""
    try:
        rss = None
        with open("/proc/%d/status" % pid) as f:
            for ln in f:
                if ln.startswith("VmRSS:"):
                    rss = int(ln.split()[1])
        return rss, len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None, None


class Soak:
    def __init__(self, a):
        self.a = a
        b = os.path.abspath(a.build)
        self.bin = {"record": os.path.join(b, "recorder", "ferry-record"),
                    "replay": os.path.join(b, "replayer", "ferry-replay"),
                    "journal": os.path.join(b, "tools", "ferry-journal"),
                    "sink": os.path.join(b, "tools", "ferry-sink")}
        self.wd = a.workdir or tempfile.mkdtemp(prefix="ferry-soak-")
        os.makedirs(self.wd, exist_ok=True)
        self.journal = os.path.join(self.wd, "journal")
        self.sock = os.path.join(self.wd, "record.sock")
        self.sink_out = os.path.join(self.wd, "sink.jsonl")
        self.rng = random.Random(a.seed)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acked = set()   # insert_ids answered "ok"
        self.errors = []
        self.procs = {}
        self.samples = []
        self.oneshots = self.exports = 0

    # ---- processes ----
    def start(self):
        env = dict(os.environ, FERRY_API_KEY=KEY)
        self.logs = {n: open(os.path.join(self.wd, n + ".log"), "ab") for n in ("record", "replay", "sink")}
        portf = os.path.join(self.wd, "sink.port")
        self.procs["sink"] = subprocess.Popen(
            [self.bin["sink"], "--listen", "127.0.0.1:0", "--port-file", portf, "--out", self.sink_out,
             "--api-key", KEY, "--seed", str(self.a.seed), "--fail", "0.04:500,502,503",
             "--fail-after", "0.02:500", "--drop-after", "0.02", "--drop-before", "0.02", "--slow", "0.05:300"],
            stdout=subprocess.DEVNULL, stderr=self.logs["sink"])
        self.procs["record"] = subprocess.Popen(
            [self.bin["record"], "--listen", self.sock, "-j", self.journal], stdout=subprocess.DEVNULL,
            stderr=self.logs["record"], env=env)
        for _ in range(6000):
            if os.path.exists(portf) and os.path.exists(self.sock):
                break
            for n, p in self.procs.items():
                if p.poll() is not None:
                    raise RuntimeError("%s exited with %d" % (n, p.returncode))
            time.sleep(0.01)
        with open(portf) as f:
            self.sink_url = "http://127.0.0.1:%d" % int(f.read())
        self.procs["replay"] = subprocess.Popen(
            [self.bin["replay"], "-j", self.journal, "--follow", "--endpoint", self.sink_url, "--device-rate", "0",
             "--max-retry-delay", "2", "--max-events", "500"], stdout=subprocess.DEVNULL, stderr=self.logs["replay"],
            env=env)

    def sink_stats(self):
        try:
            with urllib.request.urlopen(self.sink_url + "/stats", timeout=30) as r:
                return json.loads(r.read())
        except OSError:
            return {}

    def stat(self):
        p = subprocess.run([self.bin["journal"], "-j", self.journal, "stat", "--json"], capture_output=True,
                           timeout=300)
        return json.loads(p.stdout) if p.returncode == 0 else {}

    # ---- load ----
    def client(self, cid):
        n = 0
        rng = random.Random(self.a.seed * 1000 + cid)
        while not self.stop.is_set():
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(120)
                s.connect(self.sock)
                f = s.makefile("rb")
                for _ in range(rng.randrange(100, 400)):  # then a new connection
                    if self.stop.is_set():
                        break
                    batch = []
                    for _ in range(10):
                        iid = "soak-%d-%d" % (cid, n)
                        n += 1
                        batch.append((iid, {"event_type": "Service start", "device_id": "soak-device-%02d" % cid,
                                            "insert_id": iid, "time": 1795939200000 + n,
                                            "event_properties": {"client": cid, "n": n, "pad": "x" * rng.randrange(300)}}))
                    s.sendall("".join(json.dumps(e) + "\n" for _, e in batch).encode())
                    for iid, _ in batch:
                        ans = f.readline().decode()
                        if ans.startswith("ok "):
                            with self.lock:
                                self.acked.add(iid)
                        elif ans:
                            self.errors.append("client %d: %s" % (cid, ans.strip()))
                        else:
                            raise OSError("connection closed")
                    time.sleep(0.03)
                f.close()
                s.close()
            except OSError as e:
                if not self.stop.is_set():
                    self.errors.append("client %d: %s" % (cid, e))
                    time.sleep(0.5)

    def oneshot(self):
        i = 0
        while not self.stop.wait(3.0):
            iid = "soak-oneshot-%d" % i
            i += 1
            p = subprocess.run([self.bin["record"], "-j", self.journal, "--type", "Device reboot", "--device-id",
                                "soak-oneshot-device", "--insert-id", iid], capture_output=True, timeout=300)
            if p.returncode == 0:
                with self.lock:
                    self.acked.add(iid)
                self.oneshots += 1
            else:
                self.errors.append("one-shot record exited %d: %s" % (p.returncode, p.stderr[-300:]))

    def exporter(self):
        out = os.path.join(self.wd, "export.jsonl")
        while not self.stop.wait(30.0):
            p = subprocess.run([self.bin["journal"], "-j", self.journal, "export", "--format", "jsonl", "--pending",
                                "--output", out, "--force"], capture_output=True, timeout=600)
            if p.returncode != 0:
                self.errors.append("export exited %d: %s" % (p.returncode, p.stderr[-300:]))
            else:
                self.exports += 1

    def sample(self, t0):
        row = {"t": time.monotonic() - t0}
        for n in ("record", "replay", "sink"):
            row[n + "_rss"], row[n + "_fds"] = proc_sample(self.procs[n].pid)
        try:
            row["journal_bytes"] = os.path.getsize(os.path.join(self.journal, "data.mdb"))
        except OSError:
            row["journal_bytes"] = None
        with self.lock:
            row["acked"] = len(self.acked)
        row["delivered"] = self.sink_stats().get("events_accepted")
        self.samples.append(row)
        return row

    # ---- run ----
    def run(self):
        self.start()
        threads = [threading.Thread(target=self.client, args=(c,), daemon=True) for c in range(self.a.clients)]
        threads += [threading.Thread(target=self.oneshot, daemon=True), threading.Thread(target=self.exporter,
                                                                                          daemon=True)]
        for t in threads:
            t.start()
        t0 = time.monotonic()
        end = t0 + self.a.minutes * 60
        hdr = "%7s %9s %5s %9s %5s %9s %5s %11s %9s %9s" % ("t(s)", "rec_kB", "fds", "replay_kB", "fds", "sink_kB",
                                                           "fds", "journal_B", "acked", "delivered")
        print(hdr, file=sys.stderr)
        while time.monotonic() < end:
            time.sleep(min(SAMPLE_S, max(0.0, end - time.monotonic())))
            r = self.sample(t0)
            print(self.fmt(r), file=sys.stderr, flush=True)
            for n, p in self.procs.items():
                if p.poll() is not None:
                    self.errors.append("%s exited with %d during the soak" % (n, p.returncode))
                    end = 0
        self.stop.set()
        for t in threads:
            t.join(timeout=300)
        # drain: the replayer keeps going until nothing is pending (bounded)
        drained = False
        for _ in range(600):
            st = self.stat()
            if st and st.get("pending") == 0:
                drained = True
                break
            time.sleep(1)
        stats = self.sink_stats()
        for n in ("replay", "record", "sink"):
            p = self.procs[n]
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
                    self.errors.append("%s did not stop on SIGTERM" % n)
        for f in self.logs.values():
            f.close()
        return self.verdict(drained, stats)

    @staticmethod
    def fmt(r):
        def v(x):
            return "-" if x is None else str(x)
        return "%7.0f %9s %5s %9s %5s %9s %5s %11s %9s %9s" % (
            r["t"], v(r["record_rss"]), v(r["record_fds"]), v(r["replay_rss"]), v(r["replay_fds"]),
            v(r["sink_rss"]), v(r["sink_fds"]), v(r["journal_bytes"]), v(r["acked"]), v(r["delivered"]))

    def verdict(self, drained, stats):
        fails = []
        ids = []
        if os.path.exists(self.sink_out):
            with open(self.sink_out) as f:
                ids = [json.loads(l).get("insert_id") for l in f if l.strip()]
        got = set(ids)
        dup = len(ids) - len(got)
        lost = len(self.acked - got)
        if not drained:
            fails.append("the replayer did not drain the journal")
        if lost:
            fails.append("%d acked event(s) never arrived" % lost)
        if dup:
            fails.append("%d event(s) arrived twice" % dup)
        s = [r for r in self.samples if None not in (r["record_rss"], r["replay_rss"])]
        if len(s) >= 6:
            warm = s[len(s) // 5:]
            third = max(1, len(warm) // 3)
            first, last = warm[:third], warm[-third:]
            for n in ("record", "replay"):
                f_rss = max(r[n + "_rss"] for r in first)
                l_rss = max(r[n + "_rss"] for r in last)
                if l_rss > f_rss * 1.25 + 2048:
                    fails.append("%s memory grew: %d kB -> %d kB" % (n, f_rss, l_rss))
                f_fd = max(r[n + "_fds"] for r in first)
                l_fd = max(r[n + "_fds"] for r in last)
                if l_fd > f_fd + 2:
                    fails.append("%s descriptors grew: %d -> %d" % (n, f_fd, l_fd))
            jb = [r["journal_bytes"] for r in warm if r["journal_bytes"]]
            if jb:
                f_j, l_j = max(jb[:third]), max(jb[-third:])
                if l_j > f_j * 1.5 + (1 << 20):
                    fails.append("journal file grew: %d -> %d bytes" % (f_j, l_j))

            def rate(rows, key):
                rows = [r for r in rows if r[key] is not None]
                if len(rows) < 2 or rows[-1]["t"] <= rows[0]["t"]:
                    return None
                return (rows[-1][key] - rows[0][key]) / (rows[-1]["t"] - rows[0]["t"])
            rates = {}
            for key in ("acked", "delivered"):
                rf, rl = rate(first, key), rate(last, key)
                rates[key] = (rf, rl)
                if rf and rl is not None and rl < 0.5 * rf:
                    fails.append("%s rate decayed: %.0f/s -> %.0f/s" % (key, rf, rl))
            self.rates = rates
        else:
            self.rates = {}
        fails += self.errors[:20]
        self.result = {"acked": len(self.acked), "delivered": len(got), "lost": lost, "duplicated": dup,
                       "faults": stats.get("faults_injected", 0), "resends_deduplicated": stats.get("duplicates", 0),
                       "oneshots": self.oneshots, "exports": self.exports, "fails": fails}
        return not fails


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--clients", type=int, default=3)
    ap.add_argument("--workdir")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args(argv)
    s = Soak(a)
    ok = False
    try:
        ok = s.run()
    finally:
        for p in s.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
    r = s.result
    print("soak: %.1f min: acked %d, delivered %d, lost %d, duplicated %d, sink faults %d, resends deduplicated "
          "by the sink %d, one-shot records %d, exports %d" % (a.minutes, r["acked"], r["delivered"], r["lost"],
                                                               r["duplicated"], r["faults"],
                                                               r["resends_deduplicated"], r["oneshots"],
                                                               r["exports"]), file=sys.stderr)
    for k, (rf, rl) in s.rates.items():
        print("soak: %s rate first third %s/s, last third %s/s" % (
            k, "-" if rf is None else "%.0f" % rf, "-" if rl is None else "%.0f" % rl), file=sys.stderr)
    for f in r["fails"]:
        print("soak: FAIL: " + f, file=sys.stderr)
    if not a.keep and not a.workdir:
        shutil.rmtree(s.wd, ignore_errors=True)
    s.ok = ok
    return s


if __name__ == "__main__":
    s = main()
    sys.exit(0 if s.ok else 1)
