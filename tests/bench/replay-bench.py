#!/usr/bin/env python3
"""replay-bench: how fast ferry-replay drains a journal to an Amplitude-compatible
endpoint on 127.0.0.1, what it costs the device (peak RSS, CPU seconds) and how
many bytes go out per event, with and without gzip; side by side in the same run
with the official Amplitude Node SDK (@amplitude/analytics-node, serverUrl
pointed at the same kind of receiver) sending the same events.

    tests/bench/replay-bench.py --build BUILD_DIR [options]

Builds nothing: the ferry binaries come from --build (BUILD/replayer/ferry-replay,
...) or from $FERRY_REPLAY, $FERRY_RECORD, $FERRY_SINK. The Node SDK is installed
with `npm ci` (package.json and package-lock.json of tests/bench/node/) into a
work directory under the build directory, only when it is not there yet.
Progress lines go to stderr, the report to stdout. tests/bench/README.md
explains every row. Python 3 standard library only. No figure is asserted on;
the run fails only if an event is not delivered exactly once.
"""
import argparse
import datetime
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
NODE_SRC = os.path.join(HERE, "node")
SDK_PACKAGE = "@amplitude/analytics-node"
API_KEY = "replay-bench-key-0123456789"
CORPUS_FILE = "demo-release-update.jsonl"
DEVICES = 100
SEED = 20261129


def log(msg):
    print("replay-bench: " + msg, file=sys.stderr, flush=True)


def die(msg, code=1):
    log(msg)
    sys.exit(code)


# ---------------------------------------------------------------------------
# The events: data/demo-release-update.jsonl (a 3-service release update, 36
# events of 232-581 bytes) cycled over DEVICES devices, plus the error events
# that make up the heavy tail in practice (crash loops, offline retries: error
# objects with {message, stack} of 0.3-3 KB). Every event gets its own
# insert_id (random UUID v4, seeded) and a marker; sizes stay within 300-3000
# bytes of JSON. Deterministic for a given --events.

FRAMES = [
    "at /usr/src/app/dist/app.js:{a}:{b}",
    "at async /usr/src/app/dist/app.js:{a}:{b}",
    "at Object.apply (/usr/src/app/dist/app.js:{a}:{b})",
    "at Object.applyTarget (/usr/src/app/dist/app.js:{a}:{b})",
    "at ApplicationManager.getRequiredSteps (/usr/src/app/dist/app.js:{a}:{b})",
    "at Service.kill (/usr/src/app/dist/app.js:{a}:{b})",
    "at Images.fetchDelta (/usr/src/app/dist/app.js:{a}:{b})",
    "at DeviceState.applyStep (/usr/src/app/dist/app.js:{a}:{b})",
    "at report (/usr/src/app/dist/app.js:{a}:{b})",
    "at IncomingMessage.<anonymous> (/usr/src/app/dist/app.js:{a}:{b})",
    "at Modem.buildPayload (/usr/src/app/dist/app.js:{a}:{b})",
    "at Modem.<anonymous> (/usr/src/app/dist/app.js:{a}:{b})",
    "at tryCatcher (/usr/src/app/node_modules/bluebird/js/release/util.js:{a}:{b})",
    "at Promise._settlePromiseFromHandler (/usr/src/app/node_modules/bluebird/js/release/promise.js:{a}:{b})",
    "at Promise._settlePromise (/usr/src/app/node_modules/bluebird/js/release/promise.js:{a}:{b})",
    "at Async._drainQueue (/usr/src/app/node_modules/bluebird/js/release/async.js:{a}:{b})",
    "at IncomingMessage.emit (node:events:{a}:{b})",
    "at endReadableNT (node:internal/streams/readable:{a}:{b})",
    "at process.processTicksAndRejections (node:internal/process/task_queues:{a}:{b})",
    "at GetAddrInfoReqWrap.onlookup [as oncomplete] (node:dns:{a}:{b})",
    "at TLSSocket.onConnectSecure (node:_tls_wrap:{a}:{b})",
    "at ClientRequest.<anonymous> (/usr/src/app/dist/app.js:{a}:{b})",
    "at Socket.socketErrorListener (node:_http_client:{a}:{b})",
    "at emitErrorNT (node:internal/streams/destroy:{a}:{b})",
]

ERRORS = [  # event_type, message, properties besides the error, stack length aimed at
    ("Service stop error", "(HTTP code 500) server error - cannot stop container: 9f3b2c1d0e4a: "
     "tried to kill container, but did not receive an exit event", "service", 300),
    ("Image download error", "(HTTP code 404) no such image - no such image: registry2.balena-cloud.com/v2/"
     "cfeae49830031214d794fa195c13bbdb:delta-5c1e0a9b7d2f4e31", "image", 700),
    ("Device state report failure", "getaddrinfo EAI_AGAIN api.balena-cloud.com", None, 1100),
    ("Device bootstrap failed, retrying", "getaddrinfo ENOTFOUND api.balena-cloud.com", "delay", 450),
    ("Service exit error", "(HTTP code 409) conflict - container is restarting, wait until the container "
     "is running", "service", 1600),
    ("Image download error", "(HTTP code 500) server error - Get \"https://registry2.balena-cloud.com/v2/\": "
     "net/http: TLS handshake timeout", "image", 1900),
    ("Device state report failure", "certificate is not yet valid", None, 2300),
    ("Apply config change error", "Invalid value for SUPERVISOR_POLL_INTERVAL", None, 2550),
]
ERRORS_PER_CYCLE = 4  # 36 release-update events + 4 error events per cycle: 10% errors


def make_stack(rng, message, target):
    lines = ["Error: " + message]
    while len("\n    ".join(lines)) < target:
        lines.append(rng.choice(FRAMES).format(a=rng.randrange(1, 3000), b=rng.randrange(1, 1300000)))
    return "\n    ".join(lines)


def uuid4(rng):
    v = rng.getrandbits(128)
    h = "%032x" % v
    return "%s-%s-4%s-%x%s-%s" % (h[0:8], h[8:12], h[13:16], 8 + (v & 3), h[17:20], h[20:32])


def make_corpus(data_dir, n, path):
    """Writes n events to path (JSON Lines); returns a description."""
    src = os.path.join(data_dir, CORPUS_FILE)
    with open(src) as f:
        base = [json.loads(line) for line in f if line.strip()]
    if not base:
        die("%s has no events" % src)
    rng = random.Random(SEED)
    devices = ["%032x" % rng.getrandbits(128) for _ in range(DEVICES)]
    template = dict(base[0])
    errors = []
    for etype, message, extra, target in ERRORS:
        props = {"error": {"message": message, "stack": make_stack(rng, message, target)}}
        if extra == "service":
            props["service"] = {"appId": 1873312, "serviceId": 1290441, "serviceName": "backend",
                                "commit": "d2ba03688370c86d2af715c75632cab6", "releaseId": 2411876}
        elif extra == "image":
            props["image"] = base[1]["event_properties"]["image"]
        elif extra == "delay":
            props["delay"] = 30000
        errors.append((etype, props))
    cycle = len(base) + ERRORS_PER_CYCLE
    t0 = base[0]["time"]
    sizes = []
    with open(path, "w") as out:
        for i in range(n):
            c, k = divmod(i, cycle)
            if k < len(base):
                ev = dict(base[k])
                ev["event_properties"] = dict(ev.get("event_properties") or {})
            else:  # the cycle's error events, spread over the variants
                etype, props = errors[(c * ERRORS_PER_CYCLE + k - len(base)) % len(errors)]
                ev = {key: template[key] for key in template if key not in ("event_type", "event_properties")}
                ev["event_type"] = etype
                ev["time"] = t0 + 60000 + (k - len(base)) * 15000
                ev["event_properties"] = dict(props)
            ev["device_id"] = devices[c % DEVICES]
            ev["time"] = ev["time"] + c * 3600000  # one cycle per hour of the device's life
            ev["insert_id"] = uuid4(rng)
            ev["event_properties"]["bench_marker"] = "rb-%07d" % i
            line = json.dumps(ev, separators=(",", ":"))
            sizes.append(len(line))
            out.write(line + "\n")
    return {"path": path, "source": src, "events": n, "base": len(base), "devices": min(DEVICES, -(-n // cycle)),
            "min": min(sizes), "mean": sum(sizes) / n, "max": max(sizes), "bytes": sum(sizes) + n}


# ---------------------------------------------------------------------------
# Processes


class Child:
    """A child process, reaped with os.wait4 for its CPU time (ru_utime +
    ru_stime: every thread, every CPU). Its peak RSS is the kernel's high-water
    mark of the child's own address space, VmHWM in /proc/PID/status, read every
    2 ms by a sampler thread until the process exits (VmHWM only grows, so the
    last value read misses at most the final 2 ms). ru_maxrss is not used for
    it: Linux starts a forked child's maxrss at the parent's RSS at the fork
    (dup_mm) and keeps it across exec, so a child smaller than this Python
    process would be reported at Python's size. The sampler also keeps the
    largest RssAnon and RssFile seen (the anonymous and the file-mapped parts:
    shared libraries, and for ferry-replay the journal it reads through LMDB's
    memory map)."""

    def __init__(self, argv, env=None, stdout=None, stderr=None, cwd=None):
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(argv, env=env, stdout=stdout, stderr=stderr, cwd=cwd)
        self.hwm_kb = self.peak_anon_kb = self.peak_file_kb = 0
        self.samples = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self):
        path = "/proc/%d/status" % self.p.pid
        while not self._stop.is_set():
            try:
                with open(path) as f:
                    text = f.read()
            except OSError:
                return
            fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
            if "VmHWM" not in fields:  # exited (a zombie has no memory map)
                return
            self.hwm_kb = max(self.hwm_kb, int(fields["VmHWM"].split()[0]))
            self.peak_anon_kb = max(self.peak_anon_kb, int(fields.get("RssAnon", "0 kB").split()[0]))
            self.peak_file_kb = max(self.peak_file_kb, int(fields.get("RssFile", "0 kB").split()[0]))
            self.samples += 1
            self._stop.wait(0.002)

    def wait(self, timeout):
        """Returns (exit code, wall seconds, peak RSS in KiB, CPU seconds)."""
        killer = threading.Timer(timeout, self.p.kill)
        killer.start()
        try:
            _, status, ru = os.wait4(self.p.pid, 0)
        except BaseException:  # Ctrl-C: leave no process behind
            self.p.kill()
            os.waitpid(self.p.pid, 0)
            raise
        finally:
            killer.cancel()
        wall = time.monotonic() - self.t0
        self._stop.set()
        self._sampler.join()
        self.p.returncode = os.waitstatus_to_exitcode(status)
        self.ru_maxrss_kb = ru.ru_maxrss
        return self.p.returncode, wall, self.hwm_kb, ru.ru_utime + ru.ru_stime


class Sink:
    """A fresh ferry-sink on 127.0.0.1:0."""

    def __init__(self, binary, workdir):
        os.makedirs(workdir, exist_ok=True)
        self.port_file = os.path.join(workdir, "port")
        self.log = open(os.path.join(workdir, "sink.log"), "wb")
        self.p = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--port-file", self.port_file,
                                   "--api-key", API_KEY], stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(1000):
            if os.path.exists(self.port_file) and open(self.port_file).read().strip():
                break
            if self.p.poll() is not None:
                die("ferry-sink exited with %d (log %s)" % (self.p.returncode, self.log.name))
            time.sleep(0.01)
        else:
            self.stop()
            die("ferry-sink did not write its port file")
        self.port = int(open(self.port_file).read().strip())
        self.url = "http://127.0.0.1:%d" % self.port

    def stats(self):
        with urllib.request.urlopen(self.url + "/stats", timeout=30) as r:
            return json.loads(r.read())

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()
        with open(self.log.name, errors="replace") as f:
            text = f.read()
        check_sanitizer(text)
        if self.p.returncode != 0:
            die("ferry-sink exited with %d:\n%s" % (self.p.returncode, text))
        return self.p.returncode


def check_sanitizer(*texts):
    for t in texts:
        if "Sanitizer" in t or "runtime error:" in t:
            die("sanitizer report:\n" + t)


# ---------------------------------------------------------------------------
# The measured runs


def record_journal(cfg, corpus, journal):
    """Records the corpus into a fresh journal (not timed)."""
    size_mb = max(64, (corpus["bytes"] * 3) >> 20)  # live data may fill 75% of the bound
    p = subprocess.run([cfg.record, "-j", journal, "--jsonl", corpus["path"], "--max-size", "%dM" % size_mb,
                        "--durability", "relaxed"], capture_output=True, timeout=1800)
    check_sanitizer(p.stderr.decode(errors="replace"))
    if p.returncode != 0:
        die("ferry-record exited with %d:\n%s" % (p.returncode, p.stderr.decode(errors="replace")))


def verify(sink_stats, n, who):
    problems = []
    if sink_stats["events_accepted"] != n:
        problems.append("events_accepted %d, expected %d" % (sink_stats["events_accepted"], n))
    if sink_stats["duplicates"]:
        problems.append("%d duplicates" % sink_stats["duplicates"])
    if sink_stats["events_rejected"]:
        problems.append("%d events rejected" % sink_stats["events_rejected"])
    if problems:
        die("%s: not every event arrived exactly once: %s; sink stats %s" % (who, ", ".join(problems),
                                                                           json.dumps(sink_stats)))


def figures(child, n, wall, rss_kb, cpu, st, plain_bytes):
    return {"wall": wall, "rate": n / wall, "rss_mb": rss_kb / 1024.0, "cpu": cpu * 100000.0 / n,
            "anon_mb": child.peak_anon_kb / 1024.0, "file_mb": child.peak_file_kb / 1024.0,
            "maxrss_mb": child.ru_maxrss_kb / 1024.0, "samples": child.samples,
            "bytes": st["bytes_received"] / n, "plain_bytes": plain_bytes, "requests": st["requests"],
            "statuses": st["status"]}


def run_ferry(cfg, corpus, work, gzip):
    name = "ferry-gzip" if gzip else "ferry-plain"
    d = os.path.join(work, name)
    journal = os.path.join(d, "journal")
    os.makedirs(d)
    record_journal(cfg, corpus, journal)
    os.sync()  # the recording's dirty pages must not be written back during the drain
    sink = Sink(cfg.sink, d)
    try:
        argv = [cfg.replay, "-j", journal, "--once", "--device-rate", "0", "--endpoint", sink.url, "--json"]
        if not gzip:
            argv.append("--no-gzip")
        env = dict(os.environ, FERRY_API_KEY=API_KEY)
        with open(os.path.join(d, "replay.out"), "w+b") as out, open(os.path.join(d, "replay.err"), "w+b") as err:
            child = Child(argv, env=env, stdout=out, stderr=err)
            rc, wall, rss_kb, cpu = child.wait(cfg.timeout)
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        check_sanitizer(stderr)
        if rc != 0:
            die("%s exited with %d:\n%s" % (" ".join(argv), rc, stderr))
        summary = json.loads(stdout.strip().splitlines()[-1])
        st = sink.stats()
    finally:
        sink.stop()
    n = corpus["events"]
    verify(st, n, name)
    if summary.get("bytes_sent") != st["bytes_received"]:
        log("WARNING: %s: ferry-replay sent %s body bytes, ferry-sink counted %d" % (name, summary.get("bytes_sent"),
                                                                                   st["bytes_received"]))
    if summary.get("delivered") != n or summary.get("pending"):
        die("%s: ferry-replay summary says %s" % (name, json.dumps(summary)))
    if not cfg.keep:
        shutil.rmtree(d, ignore_errors=True)
    return figures(child, n, wall, rss_kb, cpu, st, summary.get("bytes_uncompressed", 0) / n)


def run_node(cfg, corpus, work):
    d = os.path.join(work, "node")
    os.makedirs(d)
    sink = Sink(cfg.sink, d)
    try:
        argv = [cfg.node, os.path.join(cfg.node_dir, "send.js"), "--events", corpus["path"],
                "--server-url", sink.url + "/2/httpapi", "--api-key", API_KEY, "--batch", str(cfg.node_batch),
                "--interval", str(cfg.node_interval), "--window", str(cfg.node_window),
                "--instances", str(cfg.node_instances)]
        with open(os.path.join(d, "node.out"), "w+b") as out, open(os.path.join(d, "node.err"), "w+b") as err:
            child = Child(argv, stdout=out, stderr=err, cwd=cfg.node_dir)
            rc, wall, rss_kb, cpu = child.wait(cfg.timeout)
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        st = sink.stats()
    finally:
        sink.stop()
    n = corpus["events"]
    if rc != 0:
        die("node send.js exited with %d:\n%s%s\nsink stats %s" % (rc, stdout, stderr, json.dumps(st)))
    verify(st, n, "Node SDK")
    if not cfg.keep:
        shutil.rmtree(d, ignore_errors=True)
    return figures(child, n, wall, rss_kb, cpu, st, None)


# ---------------------------------------------------------------------------
# The Node SDK: node, npm, and `npm ci` into a work directory under the build


def pinned_sdk_version():
    with open(os.path.join(NODE_SRC, "package.json")) as f:
        return json.load(f)["dependencies"][SDK_PACKAGE]


def prepare_node(cfg):
    """Returns None when the SDK is ready in cfg.node_dir, else why not."""
    cfg.node = shutil.which("node")
    npm = shutil.which("npm")
    if not cfg.node:
        return "node is not installed (apt-get install nodejs npm)"
    v = subprocess.run([cfg.node, "--version"], capture_output=True, text=True)
    cfg.node_version = v.stdout.strip()
    try:
        if int(cfg.node_version.lstrip("v").split(".")[0]) < 18:
            return "node %s is too old for %s (18 or later)" % (cfg.node_version, SDK_PACKAGE)
    except ValueError:
        return "cannot read node's version (%r)" % cfg.node_version
    os.makedirs(cfg.node_dir, exist_ok=True)
    for f in ("package.json", "package-lock.json", "send.js"):
        shutil.copyfile(os.path.join(NODE_SRC, f), os.path.join(cfg.node_dir, f))
    with open(os.path.join(NODE_SRC, "package-lock.json"), "rb") as f:
        stamp = hashlib.sha256(f.read()).hexdigest()
    stamp_file = os.path.join(cfg.node_dir, ".npm-ci-done")
    installed = os.path.join(cfg.node_dir, "node_modules", *SDK_PACKAGE.split("/"), "package.json")
    if os.path.exists(installed) and os.path.exists(stamp_file) and open(stamp_file).read().strip() == stamp:
        return None
    if not npm:
        return "npm is not installed (apt-get install npm)"
    log("npm ci in %s (%s %s)" % (cfg.node_dir, SDK_PACKAGE, pinned_sdk_version()))
    try:
        p = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=cfg.node_dir,
                           capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return "npm ci did not finish in 600 s (no registry?)"
    if p.returncode != 0:
        return "npm ci failed (%d): %s" % (p.returncode, (p.stderr or p.stdout).strip()[-2000:])
    with open(stamp_file, "w") as f:
        f.write(stamp + "\n")
    return None


def installed_sdk_version(cfg):
    path = os.path.join(cfg.node_dir, "node_modules", *SDK_PACKAGE.split("/"), "package.json")
    with open(path) as f:
        return json.load(f)["version"]


# ---------------------------------------------------------------------------
# The report


def fmt(v, kind="num"):
    if v is None:
        return "-"
    if kind == "ratio":
        return "%.3f" % v
    if kind == "int":
        return "%d" % round(v)
    return "%.0f" % v if abs(v) >= 100000 else "%.1f" % v


def table(head, rows):
    widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
    out = ["| " + " | ".join(h.ljust(widths[i]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(head)) + " |",
           "|" + "|".join(("-" * (w + 2)) if i == 0 else ("-" * (w + 1) + ":") for i, w in enumerate(widths)) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c).ljust(widths[i]) if i == 0 else str(c).rjust(widths[i])
                                     for i, c in enumerate(r)) + " |")
    return "\n".join(out)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fs_info(path):
    real = os.path.realpath(path)
    best, info = -1, ("?", "unknown", "")
    with open("/proc/self/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 4:
                continue
            mnt = parts[1]
            if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) > best:
                best, info = len(mnt), (parts[0], parts[2], parts[3])
    dev, fstype, opts = info
    extra = ""
    if fstype == "ext4" and os.path.isdir("/proc/fs/jbd2"):
        name = os.path.basename(dev)
        extra = " with journal" if any(e.startswith(name + "-") for e in os.listdir("/proc/fs/jbd2")) \
            else " without journal"
    return dev, fstype, extra, opts


def machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for key in ("model name", "Model", "Hardware", "cpu model", "Processor"):
                f.seek(0)
                for line in f:
                    if line.startswith(key) and ":" in line and line.split(":", 1)[1].strip():
                        model = line.split(":", 1)[1].strip()
                        break
                else:
                    continue
                break
    except OSError:
        pass
    u = platform.uname()
    return "%d CPUs, %s, %s %s %s" % (os.cpu_count() or 0, model, u.system, u.release, u.machine)


def build_type(cfg):
    if cfg.build:
        try:
            with open(os.path.join(cfg.build, "CMakeCache.txt")) as f:
                for line in f:
                    if line.startswith("CMAKE_BUILD_TYPE:"):
                        return line.split("=", 1)[1].strip() or "default"
        except OSError:
            pass
    return "unknown"


def report(cfg, corpus, runs, node_why, header):
    n = corpus["events"]
    fg, fp, nd = runs["ferry-gzip"], runs["ferry-plain"], runs.get("node", [])
    have_node = bool(nd)

    def med(rs, key):
        return median([r[key] for r in rs])

    def ratio(a, b, key):
        """Median of the per-repeat ratios a/b (the systems run in the same repeat)."""
        if not b:
            return None
        return median([x[key] / y[key] if y[key] else None for x, y in zip(a, b)])

    def yes(v, ok):
        return "-" if v is None else ("yes" if ok(v) else "no")

    rows = []
    r = ratio(fg, nd, "rate")
    rows.append(["drain rate, gzip (ferry's default)", "events/s", fmt(med(fg, "rate")), fmt(med(nd, "rate")),
                 fmt(r, "ratio"), ">= 10", yes(r, lambda v: v >= 10)])
    r = ratio(fp, nd, "rate")
    rows.append(["drain rate, --no-gzip", "events/s", fmt(med(fp, "rate")), fmt(med(nd, "rate")),
                 fmt(r, "ratio"), "-", "-"])
    r = ratio(fg, nd, "rss_mb")
    rows.append(["peak RSS, gzip", "MiB", fmt(med(fg, "rss_mb")), fmt(med(nd, "rss_mb")), fmt(r, "ratio"),
                 "<= 0.10", yes(r, lambda v: v <= 0.10)])
    r = ratio(fp, nd, "rss_mb")
    rows.append(["peak RSS, --no-gzip", "MiB", fmt(med(fp, "rss_mb")), fmt(med(nd, "rss_mb")), fmt(r, "ratio"),
                 "-", "-"])
    r = ratio(fg, nd, "anon_mb")
    rows.append(["  anonymous part (peak RssAnon), gzip", "MiB", fmt(med(fg, "anon_mb")),
                 fmt(med(nd, "anon_mb")), fmt(r, "ratio"), "-", "-"])
    r = ratio(fg, nd, "file_mb")
    rows.append(["  file-mapped part (peak RssFile), gzip", "MiB", fmt(med(fg, "file_mb")),
                 fmt(med(nd, "file_mb")), fmt(r, "ratio"), "-", "-"])
    r = ratio(fg, nd, "cpu")
    rows.append(["CPU (user+sys) per 100,000 events, gzip", "s", "%.3f" % med(fg, "cpu"),
                 "%.3f" % med(nd, "cpu") if have_node else "-", fmt(r, "ratio"), "-", "-"])
    r = ratio(fp, nd, "cpu")
    rows.append(["CPU (user+sys) per 100,000 events, --no-gzip", "s", "%.3f" % med(fp, "cpu"),
                 "%.3f" % med(nd, "cpu") if have_node else "-", fmt(r, "ratio"), "-", "-"])
    r = ratio(fg, nd, "bytes")
    rows.append(["request body bytes per event, gzip", "bytes/event", fmt(med(fg, "bytes")), fmt(med(nd, "bytes")),
                 fmt(r, "ratio"), "-", "-"])
    r = ratio(fp, nd, "bytes")
    rows.append(["request body bytes per event, --no-gzip", "bytes/event", fmt(med(fp, "bytes")),
                 fmt(med(nd, "bytes")), fmt(r, "ratio"), "-", "-"])
    g = median([p["bytes"] / q["bytes"] for p, q in zip(fp, fg)])
    rows.append(["gzip saving: --no-gzip / gzip bytes per event", "x", "%.2f" % g, "-", "-", ">= 4",
                 yes(g, lambda v: v >= 4)])
    rows.append(["requests, gzip / --no-gzip", "requests", "%s / %s" % (fmt(med(fg, "requests"), "int"),
                 fmt(med(fp, "requests"), "int")), fmt(med(nd, "requests"), "int"), "-", "-", "-"])
    rows.append(["delivered exactly once (accepted, duplicates 0)", "events", "%d" % n,
                 "%d" % n if have_node else "-", "-", "-", "-"])

    print("\n".join(header))
    print()
    print(table(["benchmark", "unit", "ferry", "Node SDK", "ferry/Node", "target", "meets target"], rows))
    print()
    print("Medians of %d run(s); ferry/Node is the median of the per-run ratios (the drains of a run go one after "
          "the other, in an order that rotates from run to run). Peak RSS: VmHWM of the process, its anonymous and "
          "file-mapped parts the largest RssAnon and RssFile seen (sampled every 2 ms). CPU: user+system time of the "
          "process (wait4). Body bytes: what ferry-sink received (bytes_received of /stats), HTTP headers not "
          "counted. The Node SDK never compresses: its figures are the same in the gzip and --no-gzip rows. "
          "tests/bench/README.md explains every row." % len(fg))
    if not have_node:
        print("\nNode SDK not measured: %s" % node_why)

    rrows = []
    keys = [("drain rate", "rate", "events/s"), ("wall time", "wall", "s"), ("peak RSS", "rss_mb", "MiB"),
            ("peak RssAnon", "anon_mb", "MiB"), ("peak RssFile", "file_mb", "MiB"), ("ru_maxrss", "maxrss_mb", "MiB"), ("CPU per 100k", "cpu", "s"), ("body bytes", "bytes", "bytes/event"),
            ("requests", "requests", "requests")]
    systems = [("ferry gzip", fg), ("ferry plain", fp)] + ([("Node SDK", nd)] if have_node else [])
    for label, key, unit in keys:
        for sname, rs in systems:
            xs = [r[key] for r in rs]
            k = "ratio" if key in ("cpu", "wall") else ("int" if key == "requests" else "num")
            f = (lambda v: "%.3f" % v) if k == "ratio" else (lambda v, k=k: fmt(v, k))
            rrows.append([label, sname, unit, " ".join(f(x) for x in xs), f(statistics.mean(xs)),
                          f(statistics.median(xs)), f(min(xs)), f(max(xs))])
    print("\nRepeats (every run, then mean and median):\n")
    print(table(["figure", "system", "unit", "runs", "mean", "median", "min", "max"], rrows))
    if have_node:
        print("\nNode SDK answers at the sink (all runs): %s" % json.dumps(
            {k: sum(r["statuses"].get(k, 0) for r in nd) for k in sorted({k for r in nd for k in r["statuses"]})}))


# ---------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(
        description="Drain rate, bytes per event, peak RSS and CPU of ferry-replay (gzip and --no-gzip) against "
                    "ferry-sink on 127.0.0.1, side by side with the Amplitude Node SDK sending the same events.")
    ap.add_argument("--build", default=os.environ.get("FERRY_BUILD"),
                    help="build directory holding replayer/ferry-replay, recorder/ferry-record, tools/ferry-sink "
                         "(else $FERRY_BUILD, or $FERRY_REPLAY, $FERRY_RECORD, $FERRY_SINK)")
    ap.add_argument("--data", default=os.path.join(ROOT, "data"), help="directory holding " + CORPUS_FILE)
    ap.add_argument("--dir", default="/var/tmp",
                    help="where the journals go, in a fresh replay-bench.XXXXXX directory (default /var/tmp)")
    ap.add_argument("--events", type=int, default=100000, help="events per drain (default 100000)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of every measurement; medians shown (default 3)")
    ap.add_argument("--quick", action="store_true", help="2000 events, 1 repeat (the ctest smoke test)")
    ap.add_argument("--no-node", action="store_true", help="skip the Node SDK")
    ap.add_argument("--node-dir", help="where npm ci installs the SDK (default BUILD/tests/bench/replay-bench-node)")
    ap.add_argument("--node-batch", type=int, default=2000, help="the SDK's flushQueueSize (default 2000)")
    ap.add_argument("--node-interval", type=int, default=100, help="the SDK's flushIntervalMillis (default 100)")
    ap.add_argument("--node-window", type=int, default=4000,
                    help="events tracked but not yet answered at most (default 4000, two batches; 0: no limit)")
    ap.add_argument("--node-instances", type=int, default=1,
                    help="SDK clients (createInstance) side by side, events dealt out by device (default 1)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds one drain may take (default 1800)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (journals, logs, corpus)")
    cfg = ap.parse_args()
    for attr in ("build", "data", "dir", "node_dir"):
        if getattr(cfg, attr):
            setattr(cfg, attr, os.path.abspath(getattr(cfg, attr)))
    if cfg.quick:
        cfg.events = min(cfg.events, 2000) if "--events" in sys.argv else 2000
        cfg.repeat = 1
    if cfg.events < 1 or cfg.repeat < 1:
        die("--events and --repeat must be at least 1", 64)

    def binary(env, rel):
        if os.environ.get(env):
            return os.environ[env]
        if cfg.build:
            return os.path.join(cfg.build, rel)
        die("give --build BUILD_DIR (or $%s)" % env, 64)

    cfg.replay = binary("FERRY_REPLAY", "replayer/ferry-replay")
    cfg.record = binary("FERRY_RECORD", "recorder/ferry-record")
    cfg.sink = binary("FERRY_SINK", "tools/ferry-sink")
    for b in (cfg.replay, cfg.record, cfg.sink):
        if not os.access(b, os.X_OK):
            die("%s is not there: build first (cmake --build BUILD_DIR)" % b, 66)
    if not cfg.node_dir:
        base = cfg.build or os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(cfg.replay))))
        cfg.node_dir = os.path.join(base, "tests", "bench", "replay-bench-node")

    node_why = "--no-node" if cfg.no_node else prepare_node(cfg)
    if node_why:
        log("Node SDK skipped: " + node_why)
    else:
        cfg.sdk_version = installed_sdk_version(cfg)

    work = tempfile.mkdtemp(prefix="replay-bench.", dir=cfg.dir)
    try:
        dev, fstype, jr, opts = fs_info(work)
        if fstype in ("tmpfs", "ramfs"):
            log("WARNING: %s is on %s: the cursor commits' fsync costs nothing there. Use --dir on a disk." %
                (work, fstype))
        corpus = make_corpus(cfg.data, cfg.events, os.path.join(work, "events.jsonl"))
        version = subprocess.run([cfg.replay, "--version"], capture_output=True, text=True).stdout.strip()
        bt = build_type(cfg)
        header = ["replay-bench: %s (%s build), %s" % (version or "ferry-replay", bt,
                  ("%s %s on node %s" % (SDK_PACKAGE, cfg.sdk_version, cfg.node_version)) if not node_why
                  else "Node SDK not measured"),
                  "machine: " + machine(),
                  "journals: %s on %s (%s%s, %s)%s" % (work, dev, fstype, jr, opts,
                                                       "  WARNING: RAM filesystem" if fstype in ("tmpfs", "ramfs")
                                                       else ""),
                  "date: " + datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "command: " + " ".join([os.path.relpath(sys.argv[0]) if not os.path.isabs(sys.argv[0])
                                          else sys.argv[0]] + sys.argv[1:]),
                  "events: %d over %d devices: %s (%d events) cycled + %d error events per cycle, every event with "
                  "its own insert_id and a marker; JSON %d-%d bytes, mean %.1f" % (
                      corpus["events"], corpus["devices"], os.path.relpath(corpus["source"], ROOT)
                      if corpus["source"].startswith(ROOT) else corpus["source"], corpus["base"], ERRORS_PER_CYCLE,
                      corpus["min"], corpus["max"], corpus["mean"]),
                  "ferry: ferry-replay --once --device-rate 0 --endpoint http://127.0.0.1:PORT [--no-gzip], "
                  "journal recorded (untimed) just before each drain",
                  "Node SDK: " + ("node send.js: %sinit(key, {serverUrl: http://127.0.0.1:PORT/2/httpapi, "
                                  "flushQueueSize: %d, flushIntervalMillis: %d}), track() per event%s, "
                                  "flush() at the end" % ("%d clients, " % cfg.node_instances
                                                          if cfg.node_instances > 1 else "",
                                                          cfg.node_batch, cfg.node_interval,
                                                          ", at most %d unanswered" % cfg.node_window
                                                          if cfg.node_window else "")
                                  if not node_why else "not measured (%s)" % node_why),
                  "receiver: a fresh ferry-sink on 127.0.0.1:0 per drain; %d repeat(s)" % cfg.repeat]
        if bt not in ("Release", "RelWithDebInfo"):
            header.append("WARNING: not a Release build; rates are not representative.")

        systems = ["ferry-gzip", "ferry-plain"] + ([] if node_why else ["node"])
        runs = {s: [] for s in systems}
        for rep in range(cfg.repeat):
            rep_work = os.path.join(work, "run%d" % (rep + 1))
            order = systems[rep % len(systems):] + systems[:rep % len(systems)]  # who goes first rotates
            for s in order:
                if s == "node":
                    res = run_node(cfg, corpus, rep_work)
                else:
                    res = run_ferry(cfg, corpus, rep_work, s == "ferry-gzip")
                runs[s].append(res)
                log("run %d/%d %-11s %10.1f events/s %8.1f MiB peak RSS %7.3f s CPU/100k %8.1f bytes/event "
                    "%4d requests" % (rep + 1, cfg.repeat, s, res["rate"], res["rss_mb"], res["cpu"], res["bytes"],
                                      res["requests"]))
        report(cfg, corpus, runs, node_why, header)
        if cfg.keep:
            print("\nwork directory kept: %s" % work)
    finally:
        if not cfg.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
