"""Helpers for the `ferry-record --listen` tests (Python 3 stdlib only).

Binary paths come from the environment (set by CMakeLists.txt):
  FERRY_RECORD          ferry-record
  FERRY_JOURNAL_TOOL    ferry-journal
  FERRY_SERVICE_EVENTS  events per client in the 32-client test (5000; fewer
                        under the sanitizers)
Every test case works in its own temporary directory (under TMPDIR, the build
tree), removed afterwards. Every wait is a bounded loop; nothing asserts on
elapsed time. FERRY_TEST_SEED=N reproduces a run's random choices."""
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
import unittest


def _need(name):
    value = os.environ.get(name)
    if not value:
        sys.stderr.write("%s is not set: run these tests through ctest\n" % name)
        sys.exit(2)
    return value


RECORD = _need("FERRY_RECORD")
JOURNAL_TOOL = _need("FERRY_JOURNAL_TOOL")
EVENTS = int(os.environ.get("FERRY_SERVICE_EVENTS", "5000"))
WAIT = 120  # seconds: bound on any single wait (a hang fails the test)

EX_OK, EX_USAGE, EX_UNAVAILABLE, EX_CANTCREAT, EX_TEMPFAIL, EX_CONFIG = 0, 64, 69, 73, 75, 78

_CRASH_MARKERS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer", "runtime error:",
                  "Segmentation fault")


def base_env(**extra):
    env = dict(os.environ)
    for k in ("FERRY_OPT_OUT", "FERRY_JOURNAL", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "NOTIFY_SOCKET"):
        env.pop(k, None)
    env.update(extra)
    return env


def event(client, i, **extra):
    """A valid event with a marker naming its client and index."""
    e = {"event_type": "Service start", "device_id": "dev-%05d" % client, "time": 1795939200000 + i,
         "event_properties": {"client": client, "i": i, "service": {"serviceName": "api", "appId": 1873312}}}
    e.update(extra)
    return e


def line(obj):
    return (json.dumps(obj, separators=(",", ":")) + "\n").encode()


def marker(rec):
    p = rec["event"].get("event_properties", {})
    return (p.get("client"), p.get("i"))


class Service:
    """A `ferry-record --listen` process."""

    def __init__(self, sock, journal, args=(), env=None, log=None, wait=True, pass_fds=(), argv=None,
                 preexec_fn=None):
        self.sock = sock
        self.journal = journal
        self.log_path = log
        self.logf = open(log, "ab")
        cmd = argv or [RECORD, "--listen", sock, "-j", journal] + list(args)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.logf,
                                     env=env if env is not None else base_env(), pass_fds=pass_fds,
                                     preexec_fn=preexec_fn)
        self.logf.close()
        if wait:
            self.wait_ready()

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_ready(self):
        """Until a client can connect (or the process exits)."""
        deadline = time.monotonic() + WAIT
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("the service exited with %d before listening:\n%s" % (self.proc.returncode,
                                                                                          self.log()))
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(self.sock)
                s.close()
                return
            except OSError:
                s.close()
            if time.monotonic() > deadline:
                raise AssertionError("the service did not listen within %ds:\n%s" % (WAIT, self.log()))
            time.sleep(0.01)

    def wait_log(self, text):
        """Until `text` appears in the log (or the process exits)."""
        deadline = time.monotonic() + WAIT
        while text not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("%r never appeared in the log:\n%s" % (text, self.log()))
            time.sleep(0.01)

    def send_signal(self, sig):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout=WAIT):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the service did not exit within %ds:\n%s" % (timeout, self.log()[-3000:]))

    def stop(self, sig=signal.SIGTERM):
        self.send_signal(sig)
        return self.wait()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def status(self, key):
        """A field of /proc/PID/status, e.g. VmHWM, in kB (None if unknown)."""
        try:
            with open("/proc/%d/status" % self.pid) as f:
                for ln in f:
                    if ln.startswith(key + ":"):
                        return int(ln.split()[1])
        except OSError:
            pass
        return None


class Client:
    """One connection; answers are read as lines."""

    def __init__(self, path, timeout=WAIT):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.s.sendall(data)

    def send_events(self, events):
        self.send(b"".join(line(e) for e in events))

    def answer(self):
        """The next answer line (str, without newline), or None at EOF."""
        while b"\n" not in self.buf:
            try:
                chunk = self.s.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return None
            self.buf += chunk
        ln, self.buf = self.buf.split(b"\n", 1)
        return ln.decode("utf-8", "replace")

    def answers(self, n):
        out = []
        for _ in range(n):
            a = self.answer()
            if a is None:
                raise AssertionError("connection closed after %d of %d answers: %r" % (len(out), n, out[-3:]))
            out.append(a)
        return out

    def shut(self):
        self.s.shutdown(socket.SHUT_WR)

    def close(self):
        self.s.close()


def seq_of(answer):
    """The SEQ of 'ok SEQ', else fails."""
    if not answer.startswith("ok "):
        raise AssertionError("expected 'ok SEQ', got %r" % answer)
    return int(answer[3:])


class ServiceCase(unittest.TestCase):
    """A test case with its own directory, journal and socket path."""

    maxDiff = 4000

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ferry-svc-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.journal = os.path.join(self.tmp, "journal")
        self.sock = os.path.join(self.tmp, "s.sock")
        self.services = []
        self.addCleanup(self._reap)
        self.seed = int(os.environ.get("FERRY_TEST_SEED") or random.SystemRandom().randrange(1 << 32))
        self.rng = random.Random(self.seed)
        print("\n%s: seed %d (FERRY_TEST_SEED=%d reproduces)" % (self.id(), self.seed, self.seed), flush=True)

    def _reap(self):
        for s in self.services:
            s.kill()
        for s in self.services:  # a crash or a sanitizer report fails the test
            log = s.log()
            bad = [m for m in _CRASH_MARKERS if m in log]
            if bad:
                raise AssertionError("the service reported %s:\n%s" % (bad, log[-6000:]))

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def start(self, *args, sock=None, journal=None, env=None, wait=True, **kw):
        s = Service(sock or self.sock, journal or self.journal, args, env=env,
                    log=self.path("service-%d.log" % len(self.services)), wait=wait, **kw)
        self.services.append(s)
        return s

    def client(self, sock=None):
        c = Client(sock or self.sock)
        self.addCleanup(c.close)
        return c

    def run_tool(self, argv, env=None, timeout=WAIT, input=None):
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, input=input,
                           env=env if env is not None else base_env(), timeout=timeout)
        err = p.stderr.decode("utf-8", "replace")
        if any(m in err for m in _CRASH_MARKERS) or p.returncode < 0:
            self.fail("crashed (rc %d): %s\n%s" % (p.returncode, " ".join(argv)[:300], err[-4000:]))
        return p.returncode, p.stdout, err

    def dump(self, journal=None):
        rc, out, err = self.run_tool([JOURNAL_TOOL, "-j", journal or self.journal, "dump"])
        self.assertEqual(rc, EX_OK, "ferry-journal dump failed:\n%s" % err)
        recs = [json.loads(ln) for ln in out.decode("utf-8").split("\n") if ln]
        seqs = [r["seq"] for r in recs]
        self.assertEqual(seqs, sorted(set(seqs)), "sequence numbers do not strictly increase")
        return recs

    def tail(self, n, journal=None):
        """The last n records."""
        if n <= 0:
            return []
        rc, out, err = self.run_tool([JOURNAL_TOOL, "-j", journal or self.journal, "tail", "-n", str(n)])
        self.assertEqual(rc, EX_OK, "ferry-journal tail failed:\n%s" % err)
        return [json.loads(ln) for ln in out.decode("utf-8").split("\n") if ln]

    def stat(self, journal=None):
        rc, out, err = self.run_tool([JOURNAL_TOOL, "-j", journal or self.journal, "stat", "--json"])
        self.assertEqual(rc, EX_OK, "ferry-journal stat failed:\n%s" % err)
        return json.loads(out.decode("utf-8"))


class Streamer(threading.Thread):
    """A client that streams `events` and reads the answers as they come, on
    two threads (a sender and this reader). Records (event index, answer)."""

    def __init__(self, path, events, chunk=64, noack=False, make=None):
        """events: a list of events, or a count with make(i) building event i
        as it is sent."""
        super().__init__(daemon=True)
        self.c = Client(path)
        self.n = events if make else len(events)
        self.make = make or events.__getitem__
        self.chunk = chunk
        self.noack = noack
        self.answers = []
        self.error = None
        self.send_error = None
        self.sent = 0

    def _send(self):
        try:
            if self.noack:
                self.c.send(b"#ferry noack\n")
            for k in range(0, self.n, self.chunk):
                part = [line(self.make(i)) for i in range(k, min(k + self.chunk, self.n))]
                self.c.send(b"".join(part))
                self.sent += len(part)
            if self.noack:
                self.c.send(b"#ferry sync\n")
        except OSError as e:
            self.send_error = e

    def run(self):
        sender = threading.Thread(target=self._send, daemon=True)
        sender.start()
        try:
            want = 1 if self.noack else self.n
            while len(self.answers) < want:
                a = self.c.answer()
                if a is None:
                    break
                self.answers.append(a)
        except OSError as e:
            self.error = e
        sender.join(WAIT)
        self.c.close()


def main():
    unittest.main(verbosity=2)
