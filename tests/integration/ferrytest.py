"""Shared helpers for ferry's integration tests (Python 3 stdlib only).

Binary paths come from the environment (set by CMakeLists.txt):
  FERRY_RECORD        ferry-record
  FERRY_JOURNAL_TOOL  ferry-journal
  FERRY_TESTWRITER    ferry-testwriter (tests/integration/ferry-testwriter.c)
  FERRY_DATA          the project's data/ directory
Every test case works in its own temporary directory, removed afterwards.
"""
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest


def _need(name):
    value = os.environ.get(name)
    if not value:
        sys.stderr.write("%s is not set: run these tests through ctest\n" % name)
        sys.exit(2)
    return value


RECORD = _need("FERRY_RECORD")
JOURNAL_TOOL = _need("FERRY_JOURNAL_TOOL")
TESTWRITER = os.environ.get("FERRY_TESTWRITER", "")
DATA = os.environ.get("FERRY_DATA", "")

EX_OK, EX_USAGE, EX_DATAERR, EX_NOINPUT, EX_CANTCREAT, EX_IOERR, EX_TEMPFAIL = 0, 64, 65, 66, 73, 74, 75

UUID4_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

# Markers of a sanitizer report or a crash in a child's stderr.
_CRASH_MARKERS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer", "runtime error:",
                  "Segmentation fault")


def base_env(**extra):
    """The environment for child processes: no opt-out or default journal
    leaking in from the caller's environment."""
    env = dict(os.environ)
    for k in ("FERRY_OPT_OUT", "FERRY_JOURNAL"):
        env.pop(k, None)
    env.update(extra)
    return env


def strict_diff(a, b, path="$", ordered=True):
    """None when a and b are the same JSON value with the same types (int vs
    float vs bool), the same float bits (so -0.0 != 0.0) and, when ordered, the
    same key order; otherwise a description of the first difference."""
    if type(a) is not type(b):
        return "%s: type %s (%r) != %s (%r)" % (path, type(a).__name__, a, type(b).__name__, b)
    if isinstance(a, float):
        if struct.pack(">d", a) != struct.pack(">d", b):
            return "%s: %r != %r" % (path, a, b)
        return None
    if isinstance(a, dict):
        if ordered and list(a.keys()) != list(b.keys()):
            return "%s: keys %r != %r" % (path, list(a.keys()), list(b.keys()))
        if set(a.keys()) != set(b.keys()):
            return "%s: keys %r != %r" % (path, sorted(a.keys()), sorted(b.keys()))
        for k in a:
            d = strict_diff(a[k], b[k], "%s.%s" % (path, json.dumps(k, ensure_ascii=False)), ordered)
            if d:
                return d
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return "%s: %d elements != %d" % (path, len(a), len(b))
        for i, (x, y) in enumerate(zip(a, b)):
            d = strict_diff(x, y, "%s[%d]" % (path, i), ordered)
            if d:
                return d
        return None
    if a != b:
        return "%s: %r != %r" % (path, a, b)
    return None


class FerryTestCase(unittest.TestCase):
    """A test case with its own temporary directory and process helpers."""

    maxDiff = 4000

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ferry-integ-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    # ---- processes ---------------------------------------------------------

    def run_proc(self, argv, input=None, env=None, timeout=120, cwd=None):
        """Runs argv; returns (rc, stdout bytes, stderr text). Fails the test
        if the child crashed (signal, sanitizer report)."""
        try:
            p = subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=env if env is not None else base_env(), timeout=timeout, cwd=cwd)
        except subprocess.TimeoutExpired:
            self.fail("timed out after %ss: %s" % (timeout, " ".join(argv)[:300]))
        err = p.stderr.decode("utf-8", "replace")
        if p.returncode < 0 or p.returncode >= 128 or any(m in err for m in _CRASH_MARKERS):
            self.fail("crashed (rc %d): %s\nstderr:\n%s" % (p.returncode, " ".join(argv)[:300], err[-4000:]))
        return p.returncode, p.stdout, err

    def record(self, journal, *args, input=None, env=None, timeout=120):
        """ferry-record -j journal args...; input (bytes or str) goes to stdin."""
        if isinstance(input, str):
            input = input.encode("utf-8")
        return self.run_proc([RECORD, "-j", journal] + list(args), input=input, env=env, timeout=timeout)

    def record_ok(self, journal, *args, input=None, env=None):
        rc, out, err = self.record(journal, *args, input=input, env=env)
        self.assertEqual(rc, EX_OK, "ferry-record %s failed:\n%s" % (" ".join(args)[:300], err))
        return out, err

    def jsonl(self, journal, lines, *args, env=None):
        """Writes lines (dicts, str or bytes) to a file and records it with
        --jsonl. Returns (rc, stderr, path)."""
        fd, p = tempfile.mkstemp(suffix=".jsonl", dir=self.tmp)
        with os.fdopen(fd, "wb") as f:
            for line in lines:
                if isinstance(line, dict):
                    line = json.dumps(line, ensure_ascii=False)
                if isinstance(line, str):
                    line = line.encode("utf-8")
                f.write(line + b"\n")
        rc, _, err = self.record(journal, "--jsonl", p, *args, env=env)
        return rc, err, p

    def journal_tool(self, journal, *args, timeout=120):
        return self.run_proc([JOURNAL_TOOL, "-j", journal] + list(args), timeout=timeout)

    def dump(self, journal):
        """Every record as a dict, in sequence order; dump must succeed cleanly."""
        rc, out, err = self.journal_tool(journal, "dump")
        self.assertEqual(rc, EX_OK, "ferry-journal dump failed:\n%s" % err)
        self.assertEqual(err, "", "ferry-journal dump wrote to stderr")
        recs = [json.loads(line) for line in out.decode("utf-8").split("\n") if line]
        for r in recs:
            self.assertEqual(r["insert_id"], r["event"]["insert_id"])
        return recs

    def stat(self, journal):
        rc, out, err = self.journal_tool(journal, "stat", "--json")
        self.assertEqual(rc, EX_OK, "ferry-journal stat failed:\n%s" % err)
        st = json.loads(out.decode("utf-8"))
        # Ages depend on when stat runs, not on the journal: left out so that
        # two stats of an unchanged journal compare equal.
        if st.get("oldest_pending"):
            st["oldest_pending"].pop("age_ms", None)
        for d in st.get("destinations", []):
            d.pop("lag_ms", None)
        return st

    def writer(self, *args, timeout=300):
        """Runs ferry-testwriter; returns (rc, stdout text, stderr)."""
        if not TESTWRITER:
            self.fail("FERRY_TESTWRITER is not set")
        rc, out, err = self.run_proc([TESTWRITER] + list(args), timeout=timeout)
        return rc, out.decode("utf-8"), err

    # ---- assertions ----------------------------------------------------------

    def assertStrictEqual(self, got, want, msg="", ordered=True):
        d = strict_diff(got, want, ordered=ordered)
        if d:
            self.fail("%s%s\n got: %s\nwant: %s" % (msg + ": " if msg else "", d,
                                                    json.dumps(got, ensure_ascii=False)[:1500],
                                                    json.dumps(want, ensure_ascii=False)[:1500]))

    def assertSeqs(self, recs, first=1):
        """Sequence numbers strictly increasing with no gaps, from first."""
        seqs = [r["seq"] for r in recs]
        self.assertEqual(seqs, list(range(first, first + len(seqs))),
                         "sequence numbers are not contiguous from %d" % first)

    def assertIncreasing(self, recs):
        seqs = [r["seq"] for r in recs]
        for a, b in zip(seqs, seqs[1:]):
            self.assertLess(a, b, "sequence numbers do not strictly increase")


def main():
    unittest.main(verbosity=2)
