"""Helpers for the ferry-sink tests: a real ferry-sink process on 127.0.0.1.

Every wait is a bounded loop; nothing asserts on elapsed time."""
import gzip
import http.client
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

SINK = os.environ.get("FERRY_SINK", "ferry-sink")
START_TRIES = 2000  # x 10 ms: generous for ASan builds


def event(i=0, device="device-0001", insert_id=None, **extra):
    ev = {"event_type": "Service start", "device_id": device, "time": 1700000000000 + i}
    if insert_id is not False:
        ev["insert_id"] = insert_id or "iid-%s-%06d" % (device, i)
    ev.update(extra)
    return ev


def body(events, api_key="test-key", **extra):
    b = {"api_key": api_key, "events": events}
    b.update(extra)
    return json.dumps(b).encode()


class Sink:
    """A ferry-sink process. Use as a context manager."""

    def __init__(self, *args, out=None, workdir=None):
        self.workdir = workdir or tempfile.mkdtemp(prefix="ferry-sink-test-")
        self.out = out
        self.args = list(args)
        self.proc = None
        self.port = None

    def start(self):
        port_file = os.path.join(self.workdir, "port")
        if os.path.exists(port_file):
            os.unlink(port_file)
        cmd = [SINK, "--listen", "127.0.0.1:0", "--port-file", port_file]
        if self.out:
            cmd += ["--out", self.out]
        cmd += self.args
        self.stderr = open(os.path.join(self.workdir, "stderr"), "ab")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.stderr)
        for _ in range(START_TRIES):
            if os.path.exists(port_file):
                break
            if self.proc.poll() is not None:
                raise RuntimeError("ferry-sink exited with %d: %s" % (self.proc.returncode, self.stderr_text()))
            time.sleep(0.01)
        else:
            raise RuntimeError("ferry-sink did not write its port file")
        with open(port_file) as f:
            self.port = int(f.read().strip())
        line = self.proc.stdout.readline().decode()
        assert line == "listening on 127.0.0.1:%d\n" % self.port, line
        return self

    def stderr_text(self):
        with open(os.path.join(self.workdir, "stderr"), "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)  # a guard only; tests check the exit code
        if self.proc:
            self.proc.stdout.close()
            self.stderr.close()
        return self.proc.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        rc = self.stop()
        if exc_type is None and rc != 0:
            raise AssertionError("ferry-sink exited with %s:\n%s" % (rc, self.stderr_text()))

    def conn(self, timeout=30):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, data=None, headers=None, conn=None):
        """(status, parsed JSON body or raw bytes, response headers)."""
        c = conn or self.conn()
        try:
            c.request(method, path, body=data, headers=headers or {})
            r = c.getresponse()
            raw = r.read()
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = raw
            return r.status, parsed, dict(r.getheaders())
        finally:
            if conn is None:
                c.close()

    def post(self, events_or_bytes, path="/2/httpapi", gz=False, conn=None, headers=None, **kw):
        data = events_or_bytes if isinstance(events_or_bytes, bytes) else body(events_or_bytes, **kw)
        h = {"Content-Type": "application/json"}
        if gz:
            data = gzip.compress(data)
            h["Content-Encoding"] = "gzip"
        h.update(headers or {})
        return self.request("POST", path, data, h, conn=conn)

    def stats(self):
        status, st, _ = self.request("GET", "/stats")
        assert status == 200
        return st

    def out_lines(self):
        if not self.out or not os.path.exists(self.out):
            return []
        with open(self.out, "rb") as f:
            return [json.loads(line) for line in f.read().splitlines()]


class SinkTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ferry-sink-test-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.out = os.path.join(self.dir, "events.jsonl")

    def sink(self, *args, out=True):
        return Sink(*args, out=self.out if out else None, workdir=self.dir)


def main():
    unittest.main(verbosity=2)
