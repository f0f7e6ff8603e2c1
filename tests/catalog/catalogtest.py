"""Helpers for the catalog, ferry-gen and timeline tests (Python 3 stdlib).

Builds on tests/integration/ferrytest.py; adds FERRY_GEN (ferry-gen) and the
catalog of the source tree (FERRY_DATA/supervisor-events.tsv)."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

from ferrytest import (EX_DATAERR, EX_OK, EX_USAGE, FerryTestCase, base_env,  # noqa: E402,F401
                       main, _need)

GEN = _need("FERRY_GEN")
DATA = _need("FERRY_DATA")
CATALOG = os.path.join(DATA, "supervisor-events.tsv")
EX_CONFIG = 78


def load_catalog(path=CATALOG):
    """[(event_type, category, properties)] of a TSV catalog, unescaped."""
    rows = []
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        ti, ci = header.index("event_type"), header.index("category")
        pi = header.index("properties") if "properties" in header else None
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            cols = line.split("\t")
            rows.append((unescape(cols[ti]), unescape(cols[ci]), cols[pi] if pi is not None else None))
    return rows


def unescape(s):
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\":
            out.append({"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}[s[i + 1]])
            i += 2
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def escape(s):
    return s.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


class CatalogTestCase(FerryTestCase):
    def gen(self, *args, truth=None, timeout=300):
        """ferry-gen args...; returns its stdout bytes (and writes --truth)."""
        argv = [GEN] + list(args)
        if truth:
            argv += ["--truth", truth]
        rc, out, err = self.run_proc(argv, timeout=timeout)
        self.assertEqual(rc, EX_OK, "ferry-gen %s failed:\n%s" % (" ".join(args), err))
        return out

    def gen_events(self, *args, truth=None):
        return [json.loads(l) for l in self.gen(*args, truth=truth).decode("utf-8").splitlines()]

    def write(self, name, data):
        p = self.path(name)
        with open(p, "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode("utf-8"))
        return p

    def record_stream(self, journal, data, *extra):
        p = self.write("stream.jsonl", data)
        rc, _, err = self.record(journal, "--jsonl", p, "--durability", "relaxed", *extra)
        self.assertEqual(rc, EX_OK, err)
        return p

    def timeline(self, journal, *args):
        rc, out, err = self.journal_tool(journal, "timeline", "--json", *args)
        self.assertEqual(rc, EX_OK, err)
        return [json.loads(l) for l in out.decode("utf-8").splitlines()]
