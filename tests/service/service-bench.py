#!/usr/bin/env python3
"""service-bench: durable throughput, acknowledgement latency, memory and
device writes of `ferry-record --listen`, beside its references, measured in
one run on one machine (README.md here explains every row).

  service-bench.py --record BIN --load BIN --ferry-bench BIN --data DIR
                   [--dir DIR] [--clients 1,8,32] [--window W] [--repeat K]
                   [--quick]

For 1, 8 and 32 concurrent clients (service-load, a C load generator, so that
the clients cost little CPU beside the service):
  streaming     each client keeps up to W events unacknowledged and reads the
                answers as they come (W=--window, default 32; for the largest
                client count also each W of --sweep, default 16,64);
  one in flight each client sends an event and waits for its answer;
  process per event  each client runs `ferry-record --jsonl -` per event: what
                an application does without the service.
References from the same run: bare LMDB committing prepared batches of 1,000
(ferry-bench: the practical ceiling), ferry's library parsing and committing
JSON batches of 1,000 on one core (ferry-bench). Each service run starts a
fresh service on a fresh journal; figures are medians of --repeat runs.
Progress goes to stderr, the report to stdout. No figure is asserted on."""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

TARGET_EPS = 100000
TARGET_P99_MS = 10.0
TARGET_RSS_KB = 8 * 1024
TARGET_WRITES_X = 2.0


def log(msg):
    print("service-bench: " + msg, file=sys.stderr, flush=True)


def die(msg):
    log(msg)
    sys.exit(1)


def machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for ln in f:
                if ln.startswith("model name"):
                    model = ln.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    u = platform.uname()
    return "%d CPUs, %s, %s %s %s" % (os.cpu_count() or 0, model, u.system, u.release, u.machine)


def filesystem(path):
    """Device, type and options of the mount holding path."""
    best = ("?", "?", "?", "")
    real = os.path.realpath(path)
    try:
        with open("/proc/mounts") as f:
            for ln in f:
                dev, mnt, fstype, opts = ln.split()[:4]
                mnt = mnt.replace("\\040", " ")
                if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best[3]):
                    best = (dev, fstype, opts, mnt)
    except OSError:
        pass
    return best[0], best[1], best[2]


def proc_field(pid, name, key):
    try:
        with open("/proc/%d/%s" % (pid, name)) as f:
            for ln in f:
                if ln.startswith(key + ":"):
                    return int(ln.split()[1])
    except (OSError, ValueError):
        pass
    return None


class Service:
    def __init__(self, record, root, tag):
        self.dir = tempfile.mkdtemp(prefix=tag + ".", dir=root)
        self.sock = os.path.join(self.dir, "s.sock")
        self.journal = os.path.join(self.dir, "journal")
        self.logf = open(os.path.join(self.dir, "service.log"), "wb")
        self.p = subprocess.Popen([record, "--listen", self.sock, "-j", self.journal, "--max-size", "2G"],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.logf)
        deadline = time.monotonic() + 60
        while True:
            if self.p.poll() is not None:
                die("the service exited with %d:\n%s" % (self.p.returncode, self.log()))
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.sock)
                break
            except OSError:
                if time.monotonic() > deadline:
                    die("the service did not listen")
                time.sleep(0.01)
            finally:
                s.close()

    def log(self):
        with open(os.path.join(self.dir, "service.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def write_bytes(self):
        return proc_field(self.p.pid, "io", "write_bytes")

    def peak_rss_kb(self):
        return proc_field(self.p.pid, "status", "VmHWM")

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.p.kill()
            die("the service did not stop")
        self.logf.close()
        if rc != 0:
            die("the service exited with %d:\n%s" % (rc, self.log()))
        shutil.rmtree(self.dir, ignore_errors=True)


def run_load(args, extra):
    cmd = [args.load, "--corpus", args.corpus] + extra
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=3600)
    try:
        res = json.loads(p.stdout.decode())
    except ValueError:
        die("service-load failed (%d): %s" % (p.returncode, p.stderr.decode()[-2000:]))
    if p.returncode != 0 or res["errors"]:
        die("service-load: %d of %d events not acknowledged: %s" % (res["events"] - res["ok"], res["events"],
                                                                    res["first_error"]))
    return res


def service_run(args, clients, per_client, window):
    """One fresh service, one measured load. Returns the load's figures plus
    write_bytes per event and the service's peak RSS."""
    svc = Service(args.record, args.root, "svc")
    try:
        warm = max(1, min(200, per_client // 20))  # the journal's first pages, untimed
        run_load(args, ["--socket", svc.sock, "--clients", str(clients), "--events", str(warm),
                        "--window", str(window)])
        w0 = svc.write_bytes()
        res = run_load(args, ["--socket", svc.sock, "--clients", str(clients), "--events", str(per_client),
                              "--window", str(window)])
        w1 = svc.write_bytes()
        res["rss_kb"] = svc.peak_rss_kb()
        res["writes_per_event"] = (w1 - w0) / res["ok"] if w0 is not None and w1 is not None else None
    finally:
        svc.stop()
    return res


def spawn_run(args, clients, per_client):
    d = tempfile.mkdtemp(prefix="spawn.", dir=args.root)
    try:
        j = os.path.join(d, "journal")
        subprocess.run([args.record, "-j", j, "--max-size", "2G", "--type", "warm-up", "--device-id", "d"],
                       check=True)
        return run_load(args, ["--spawn", args.record, "--journal", j, "--clients", str(clients), "--events",
                               str(per_client)])
    finally:
        shutil.rmtree(d, ignore_errors=True)


def ferry_bench(args):
    """Bare LMDB's batched commit rate and ferry's JSON batch rate, from
    ferry-bench in this run."""
    cmd = [args.ferry_bench, "--data", args.data, "--dir", args.root, "--only", "batch,batch-json",
           "--systems", "ferry,lmdb"]
    cmd += ["--batched", "4000", "--repeat", "1"] if args.quick else ["--batched", "200000", "--repeat",
                                                                      str(args.repeat)]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=3600)
    out = p.stdout.decode()
    if p.returncode != 0:
        die("ferry-bench failed (%d): %s" % (p.returncode, p.stderr.decode()[-2000:]))

    def row(label):
        for ln in out.splitlines():
            cells = [c.strip() for c in ln.strip().strip("|").split("|")]
            if cells and cells[0].startswith(label):
                return cells
        die("ferry-bench printed no row %r:\n%s" % (label, out))

    def num(s):
        try:
            return float(s)
        except ValueError:
            return None

    m = re.search(r"mean encoded record ([0-9.]+) bytes", out)
    commit = row("batch of 1000, commit of prepared batches")
    withjson = row("batch of 1000, incl. JSON parse+encode")
    writes = row("device writes, batch of 1000")
    return {"lmdb_eps": num(commit[3]), "ferry_json_eps": num(withjson[2]), "record_bytes": float(m.group(1)) if m
            else None, "lmdb_writes": num(writes[3]), "command": " ".join(cmd)}


def median_of(runs, key):
    vals = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def fmt(v, digits=0):
    if v is None:
        return "n/a"
    if digits == 0:
        return "{:,}".format(int(round(v)))
    return "%.*f" % (digits, v)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--record", required=True, help="ferry-record")
    ap.add_argument("--load", required=True, help="service-load (tests/service/service-load.c)")
    ap.add_argument("--ferry-bench", required=True, help="ferry-bench (tests/bench)")
    ap.add_argument("--data", required=True, help="the repository's data/ directory")
    ap.add_argument("--dir", default="/var/tmp", help="where the journals go (not tmpfs)")
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--window", type=int, default=32, help="streaming: events unacknowledged per client")
    ap.add_argument("--events", type=int, default=160000, help="streaming: events per measurement")
    ap.add_argument("--sweep", default="16,64", help="more streaming windows, for the largest client count")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one repeat (the ctest smoke test)")
    args = ap.parse_args()
    args.corpus = os.path.join(args.data, "demo-release-update.jsonl")
    clients = [int(c) for c in args.clients.split(",")]
    if args.quick:
        args.repeat, args.events, args.sweep = 1, 3200, ""
    for b in (args.record, args.load, args.ferry_bench):
        if not os.access(b, os.X_OK):
            die("not an executable: %s" % b)
    args.root = tempfile.mkdtemp(prefix="service-bench.", dir=args.dir)
    dev, fstype, opts = filesystem(args.root)
    if fstype in ("tmpfs", "ramfs"):
        log("warning: %s is on %s: fsync costs nothing there; use --dir on a disk" % (args.dir, fstype))
    version = subprocess.run([args.record, "--version"], stdout=subprocess.PIPE).stdout.decode().strip()

    try:
        log("ferry-bench: bare LMDB and library references")
        ref = ferry_bench(args)
        rows = []
        for n in clients:
            per = max(1, args.events // n)
            one = max(1, (200 if args.quick else 4000 if n == 1 else 16000) // n)
            spawn = max(1, (24 if args.quick else 800) // n)
            runs = {"stream": [], "one": [], "spawn": []}
            for k in range(args.repeat):
                log("%d client(s), run %d/%d: streaming (window %d), %d events" % (n, k + 1, args.repeat,
                                                                                    args.window, per * n))
                runs["stream"].append(service_run(args, n, per, args.window))
                log("%d client(s), run %d/%d: one in flight, %d events" % (n, k + 1, args.repeat, one * n))
                runs["one"].append(service_run(args, n, one, 1))
                log("%d client(s), run %d/%d: a ferry-record process per event, %d events" % (n, k + 1,
                                                                                               args.repeat, spawn * n))
                runs["spawn"].append(spawn_run(args, n, spawn))
            if n == max(clients):
                for w in [int(x) for x in args.sweep.split(",") if x and int(x) != args.window]:
                    runs["stream%d" % w] = []
                    for k in range(args.repeat):
                        log("%d client(s), run %d/%d: streaming (window %d), %d events" % (n, k + 1, args.repeat, w,
                                                                                            per * n))
                        runs["stream%d" % w].append(service_run(args, n, per, w))
            rows.append((n, runs))
    finally:
        shutil.rmtree(args.root, ignore_errors=True)

    # ---- the report -----------------------------------------------------
    print("service-bench: %s, service-load window %d" % (version, args.window))
    print("machine: %s" % machine())
    print("journals: %s on %s (%s, %s)" % (args.dir, dev, fstype, opts))
    print("date: %s" % datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    print("command: %s" % " ".join([os.path.basename(sys.executable)] + sys.argv))
    print("references: %s" % ref["command"])
    print("corpus: %s, mean encoded record %s bytes; %d repeat(s), medians" % (args.corpus, fmt(ref["record_bytes"], 1),
                                                                            args.repeat))
    print()
    lmdb = ref["lmdb_eps"]
    rec = ref["record_bytes"]
    hdr = ("benchmark", "clients", "events/s", "x bare LMDB", "p50 ack ms", "p99 ack ms", "peak RSS kB",
           "writes B/event", "target", "meets target")
    table = []
    for n, runs in rows:
        modes = [("stream", "service, streaming (window %d)" % args.window), ("one", "service, one event in flight"),
                 ("spawn", "ferry-record process per event")]
        modes += [(m, "service, streaming (window %s)" % m[6:]) for m in sorted(runs, key=lambda m: (len(m), m))
                  if m.startswith("stream") and m != "stream"]
        for mode, label in modes:
            r = runs[mode]
            eps = median_of(r, "events_per_s")
            ratio = eps / lmdb if eps and lmdb else None
            rss = median_of(r, "rss_kb") if mode != "spawn" else None
            wpe = median_of(r, "writes_per_event") if mode != "spawn" else None
            target, meets = "-", "-"
            if mode.startswith("stream") and n == 32:
                p99 = median_of(r, "p99_ms")
                checks = [eps is not None and eps >= TARGET_EPS, ratio is not None and ratio >= 0.5,
                          p99 is not None and p99 < TARGET_P99_MS, rss is not None and rss < TARGET_RSS_KB,
                          wpe is not None and rec is not None and wpe <= TARGET_WRITES_X * rec]
                target = ">= 100k/s, >= 0.5x LMDB, p99 < 10, RSS < 8 MiB, writes <= %s" % fmt(
                    TARGET_WRITES_X * rec if rec else None)
                meets = " ".join("yes" if c else "NO" for c in checks)
            table.append((label, str(n), fmt(eps), fmt(ratio, 3), fmt(median_of(r, "p50_ms"), 2),
                          fmt(median_of(r, "p99_ms"), 2), fmt(rss), fmt(wpe, 1), target, meets))
    table.append(("bare LMDB, prepared batches of 1000 (ferry-bench)", "1", fmt(lmdb), "1.000", "-", "-", "-",
                  fmt(ref["lmdb_writes"], 1), "-", "-"))
    table.append(("ferry library, JSON batches of 1000, one core (ferry-bench)", "1", fmt(ref["ferry_json_eps"]),
                  fmt(ref["ferry_json_eps"] / lmdb if ref["ferry_json_eps"] and lmdb else None, 3), "-", "-", "-",
                  "-", "-", "-"))
    widths = [max(len(hdr[i]), *(len(t[i]) for t in table)) for i in range(len(hdr))]
    right = [False] + [True] * 7 + [False, False]

    def fmt_row(cells):
        return "| " + " | ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)) + " |"
    print(fmt_row(hdr))
    print("|" + "|".join((("-" * (w + 1)) + ":") if r else ("-" * (w + 2)) for w, r in zip(widths, right)) + "|")
    for t in table:
        print(fmt_row(t))
    print()
    print("events/s: acknowledged (durable, fsync'd) events per second of wall time, all clients together. "
          "Latency: from the write() carrying an event to the read() bringing its `ok`. Peak RSS: the service's "
          "VmHWM. Writes: write_bytes of /proc/PID/io of the service per event (the device's own amplification "
          "not counted); the target is twice the mean encoded record. meets target lists, in order: events/s, "
          "x LMDB, p99, RSS, writes. tests/service/README.md explains every row.")


if __name__ == "__main__":
    main()
