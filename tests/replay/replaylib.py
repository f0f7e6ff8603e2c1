"""Helpers for the ferry-replay tests: real journals, a real ferry-sink on
127.0.0.1 (tests/sink/sinklib.py) and real ferry-replay processes.
Every wait is a bounded loop; nothing asserts on elapsed time."""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sink"))
from sinklib import Sink  # noqa: E402  (re-exported for the tests)

RECORD = os.environ.get("FERRY_RECORD", "ferry-record")
JOURNAL = os.environ.get("FERRY_JOURNAL_TOOL", "ferry-journal")
REPLAY = os.environ.get("FERRY_REPLAY", "ferry-replay")
KEY = "replay-test-key-0123456789"


def device(n):
    return "%032x" % (0x7F3C2A9E41B84D6F9A0C5E1D00000000 + n)


def events(n, devices=5, start=0, prefix="e"):
    """n valid Amplitude events over `devices` devices, each with a marker."""
    return [{"event_type": "Service start", "device_id": device((start + i) % devices),
             "time": 1795939200000 + start + i, "event_properties": {"marker": "%s%06d" % (prefix, start + i),
                                                                      "service": {"serviceName": "api"}}}
            for i in range(n)]


def invalid_events(n):
    """Events the recorder accepts but Amplitude (and ferry-sink) refuse."""
    out = []
    for i in range(n):
        if i % 2:
            out.append({"event_type": "Bad id", "device_id": "unknown", "event_properties": {"marker": "bad%d" % i}})
        else:
            out.append({"event_type": "Short id", "user_id": "ab", "event_properties": {"marker": "bad%d" % i}})
    return out


class ReplayCase(unittest.TestCase):
    """A temporary journal directory per test."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ferry-replay-test-")
        self.journal = os.path.join(self.tmp, "journal")
        self.seed = int(os.environ.get("FERRY_TEST_SEED", random.randrange(1 << 30)))
        self.rng = random.Random(self.seed)
        print("seed %d" % self.seed, file=sys.stderr)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_tool(self, *args, input=None, timeout=120, check=None):
        p = subprocess.run(list(args), input=input, capture_output=True, timeout=timeout)
        for stream in (p.stderr, p.stdout):
            self.assertNotIn(b"Sanitizer", stream, stream.decode(errors="replace"))
        if check is not None:
            self.assertEqual(p.returncode, check, "%s exited %d:\n%s%s" % (
                args[0], p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")))
        return p

    def record(self, evs):
        data = "".join(json.dumps(e) + "\n" for e in evs).encode()
        self.run_tool(RECORD, "-j", self.journal, "--jsonl", "-", input=data, check=0)

    def dump(self):
        out = self.run_tool(JOURNAL, "-j", self.journal, "dump", check=0).stdout.decode()
        return [json.loads(l) for l in out.splitlines()]

    def stat(self):
        return json.loads(self.run_tool(JOURNAL, "-j", self.journal, "stat", "--json", check=0).stdout)

    def dead(self):
        out = self.run_tool(JOURNAL, "-j", self.journal, "dead", "--json", check=0).stdout.decode()
        return [json.loads(l) for l in out.splitlines()]

    def replay_cmd(self, sink_or_url, *args, once=True):
        url = sink_or_url if isinstance(sink_or_url, str) else "http://127.0.0.1:%d" % sink_or_url.port
        return [REPLAY, "-j", self.journal, "--once" if once else "--follow", "--endpoint", url] + list(args)

    def replay(self, sink_or_url, *args, key=KEY, timeout=300, check=None):
        env = dict(os.environ, FERRY_API_KEY=key)
        p = subprocess.run(self.replay_cmd(sink_or_url, *args), capture_output=True, timeout=timeout, env=env)
        self.assertNotIn(b"Sanitizer", p.stderr, p.stderr.decode(errors="replace"))
        if check is not None:
            self.assertEqual(p.returncode, check, p.stderr.decode(errors="replace"))
        return p

    def sink(self, *args, out=None):
        return Sink(*(("--api-key", KEY) + args), out=out or os.path.join(self.tmp, "sink.jsonl"),
                    workdir=self.tmp)

    def accepted(self, path=None):
        """Events ferry-sink accepted (its --out file)."""
        path = path or os.path.join(self.tmp, "sink.jsonl")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [json.loads(l) for l in f if l.strip()]

    def assert_exactly_once(self, recorded, accepted):
        """Every recorded event arrived once, under its own insert_id, and
        nothing else arrived."""
        ids = [e["insert_id"] for e in accepted]
        self.assertEqual(len(ids), len(set(ids)), "an insert_id arrived twice")
        want = {r["insert_id"]: r["event"] for r in recorded}
        self.assertEqual(set(ids), set(want), "arrived events differ from the recorded ones")
        for e in accepted:
            self.assertEqual(e, want[e["insert_id"]], "an event arrived changed")
        markers = [e["event_properties"]["marker"] for e in accepted]
        self.assertEqual(len(markers), len(set(markers)), "an event arrived under two insert_ids")
