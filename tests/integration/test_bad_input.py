"""Test 5: bad input to `ferry-record --jsonl`.

Each bad line is reported on stderr as FILE:LINE: reason and skipped, every
valid line is recorded, and the exit code is 65 (0 when nothing was bad).
Blank lines are skipped silently, CRLF line endings accepted. --atomic records
all lines or none."""
import json
import os

from ferrytest import EX_DATAERR, RECORD, FerryTestCase, main

MAX_LINE = 1 << 20


def good(i, crlf=False):
    line = json.dumps({"event_type": "good", "device_id": "dev", "insert_id": "good-%d" % i,
                       "event_properties": {"i": i}}).encode()
    return line + (b"\r" if crlf else b"")


# (line, regex the reason must match); None: a good line; "" blank lines.
def mixed_lines():
    return [
        (good(0), None),
        (b'{"event_type": "x", "device_id": ', r"invalid JSON"),
        (good(1), None),
        (b"not json", r"invalid JSON"),
        (b"", ""),
        (b"  \t  ", ""),
        (b'{"event_type":5,"device_id":"d"}', r"event_type: must be a string"),
        (b'{"event_type":"x","device_id":"d","time":"1795939200000"}', r"field time"),
        (b'{"event_type":"x","device_id":"d","time":1.5}', r"field time"),
        (b'{"event_type":"x","device_id":"d","time":-1}', r"field time"),
        (b'{"event_type":"x","device_id":"d","event_properties":[1,2]}', r"event_properties: must be an object"),
        (b'{"event_type":"x","device_id":"d","user_properties":"s"}', r"user_properties: must be an object"),
        (b'{"event_type":"x"}', r"device_id and user_id"),
        (b'{"event_type":"x","user_id":""}', r"user_id: must not be empty"),
        (b'{"event_type":"x","device_id":7}', r"device_id: must be a string"),
        (b'{"event_type":"","device_id":"d"}', r"event_type: must not be empty"),
        (b'{"device_id":"d"}', r"event_type: missing"),
        (b'{"event_type":"x","device_id":"d","session_id":"1"}', r"session_id: must be an integer"),
        (b'{"event_type":"x","device_id":"d","insert_id":"' + b"i" * 1025 + b'"}', r"insert_id"),
        (b'{"event_type":"x","device_id":"d","insert_id":""}', r"insert_id"),
        (good(2, crlf=True), None),
        (b'{"event_type":"x","device_id":"d","p":"' + b"y" * 100000 + b'"}', r"event too large"),
        (b'{"event_type":"x","device_id":"d","p":"' + b"y" * (2 * MAX_LINE) + b'"}',
         r"line longer than %d bytes" % MAX_LINE),
        (b"[" * 100000, r"invalid JSON.*depth"),
        (b'{"event_type":"x","device_id":"d","e":' + json.dumps(_deep(40)).encode() + b"}", r"nested deeper"),
        (b'{"event_type":"x\xff\xfe","device_id":"d"}', r"invalid JSON"),
        (b'{"event_type":"\xc0\xafx","device_id":"d"}', r"invalid JSON"),
        (b'{"event_type":"x\x00y","device_id":"d"}', r"invalid JSON"),
        (b'{"event_type":"x","device_id":"d","p":"\\u0000"}', r"invalid JSON"),
        (b'{"event_type":"x","device_id":"d","p":"\\ud800"}', r"invalid JSON"),
        (b'{"event_type":"x","device_id":"d","n":18446744073709551616}', r"64-bit"),
        (b'{"event_type":"x","device_id":"d"} trailing', r"invalid JSON"),
        (b'{"event_type":"a","event_type":"b","device_id":"d"}', r"invalid JSON.*duplicate"),
        (b'[{"event_type":"x","device_id":"d"}]', r"must be a JSON object"),
        (b'"just a string"', r"invalid JSON|must be a JSON object"),
        (b"\r", ""),
        (good(3), None),
        (b"", ""),
    ]


def _deep(n):
    v = 1
    for _ in range(n):
        v = [v]
    return v


class BadInput(FerryTestCase):

    def setUp(self):
        super().setUp()
        self.j = self.path("journal")

    def write(self, lines, name="in.jsonl"):
        p = self.path(name)
        with open(p, "wb") as f:
            for line in lines:
                f.write(line + b"\n")
        return p

    def stored_ids(self):
        if not os.path.exists(self.j) or self.stat(self.j)["stored"] == 0:
            return []
        recs = self.dump(self.j)
        self.assertSeqs(recs)
        return [r["insert_id"] for r in recs]

    def check_report(self, err, name, bad):
        """bad: {line number: regex}. stderr holds exactly one
        "NAME:LINE: reason" line per bad line, in order, and nothing else."""
        got = err.split("\n")
        if got and got[-1] == "":
            got.pop()
        self.assertEqual(len(got), len(bad), "expected %d error lines, got:\n%s" % (len(bad), err[:3000]))
        for line, (no, rx) in zip(got, sorted(bad.items())):
            prefix = "%s:%d: " % (name, no)
            self.assertTrue(line.startswith(prefix), "expected %r..., got %r" % (prefix, line[:300]))
            self.assertRegex(line[len(prefix):], rx, "line %d: unexpected reason" % no)
            self.assertLess(len(line), 1000, "an error message echoes the input")

    def test_mixed_file(self):
        lines = mixed_lines()
        p = self.write([line for line, _ in lines])
        rc, _, err = self.record(self.j, "--jsonl", p)
        self.assertEqual(rc, EX_DATAERR, err)
        bad = {i + 1: rx for i, (_, rx) in enumerate(lines) if rx}
        self.check_report(err, p, bad)
        self.assertEqual(self.stored_ids(), ["good-0", "good-1", "good-2", "good-3"])

    def test_stdin(self):
        lines = [good(0), b"{oops", good(1)]
        rc, _, err = self.record(self.j, "--jsonl", "-", input=b"\n".join(lines) + b"\n")
        self.assertEqual(rc, EX_DATAERR, err)
        self.check_report(err, "<stdin>", {2: r"invalid JSON"})
        self.assertEqual(self.stored_ids(), ["good-0", "good-1"])

    def test_no_bad_lines_exit_0(self):
        lines = [good(0), b"", good(1, crlf=True), b"   ", good(2, crlf=True), b"\r", good(3)]
        p = self.write(lines)
        rc, _, err = self.record(self.j, "--jsonl", p)
        self.assertEqual((rc, err), (0, ""))
        self.assertEqual(self.stored_ids(), ["good-%d" % i for i in range(4)])
        # No final newline, CRLF everywhere.
        p2 = self.path("crlf.jsonl")
        with open(p2, "wb") as f:
            f.write(b"\r\n".join(good(i) for i in range(4, 8)))
        rc, _, err = self.record(self.j, "--jsonl", p2)
        self.assertEqual((rc, err), (0, ""))
        self.assertEqual(self.stored_ids(), ["good-%d" % i for i in range(8)])
        # An empty file and a file of blank lines: nothing to do, success.
        for content in (b"", b"\n\n  \n\r\n"):
            p3 = self.path("empty.jsonl")
            with open(p3, "wb") as f:
                f.write(content)
            rc, _, err = self.record(self.j, "--jsonl", p3)
            self.assertEqual((rc, err), (0, ""))
        self.assertEqual(len(self.stored_ids()), 8)

    def test_bad_last_line(self):
        """A bad line at the very end (or followed only by blank lines) must not
        cost the valid lines before it."""
        for k, tail in enumerate(([b"not json"], [b"not json", b"", b"  "], [b'{"event_type":1,"device_id":"d"}'])):
            lines = [good(10 * k + i) for i in range(3)] + tail
            p = self.write(lines, "tail%d.jsonl" % k)
            rc, _, err = self.record(self.j, "--jsonl", p)
            self.assertEqual(self.stored_ids()[-3:], ["good-%d" % (10 * k + i) for i in range(3)],
                             "valid lines before a bad last line were not recorded (case %d); stderr:\n%s" % (k, err))
            self.assertEqual(rc, EX_DATAERR, err)
            self.check_report(err, p, {4: r"."})

    def test_many_lines_with_bad_ones(self):
        """Bad lines spread over several batches of 1,000."""
        lines, want, bad = [], [], {}
        for i in range(2600):
            if i % 250 == 7:
                lines.append(b'{"event_type":"x"}')
                bad[i + 1] = r"device_id and user_id"
            else:
                lines.append(good(i))
                want.append("good-%d" % i)
        lines.append(good(99999))
        want.append("good-99999")
        p = self.write(lines)
        rc, _, err = self.record(self.j, "--jsonl", p)
        self.assertEqual(rc, EX_DATAERR, err)
        self.check_report(err, p, bad)
        self.assertEqual(self.stored_ids(), want)

    def test_atomic(self):
        lines = [good(i) for i in range(1500)]
        bad_lines = lines[:700] + [b'{"event_type":"x","device_id":"d","time":"soon"}'] + lines[700:]
        p = self.write(bad_lines, "bad.jsonl")
        rc, _, err = self.record(self.j, "--jsonl", p, "--atomic")
        self.assertEqual(rc, EX_DATAERR, err)
        self.assertIn("%s:701: field time" % p, err)
        if os.path.exists(self.j):
            st = self.stat(self.j)
            self.assertEqual((st["recorded"], st["stored"]), (0, 0), "--atomic recorded events despite a bad line")
        p = self.write(lines, "good.jsonl")
        rc, _, err = self.record(self.j, "--jsonl", p, "--atomic")
        self.assertEqual((rc, err), (0, ""))
        recs = self.dump(self.j)
        self.assertEqual([r["insert_id"] for r in recs], ["good-%d" % i for i in range(1500)])
        self.assertSeqs(recs)

    def test_long_line_memory(self):
        """A 10 MB line is refused without buffering it (maximum RSS grows by
        far less than the line)."""
        small = self.write([good(0)], "small.jsonl")
        p = self.path("huge.jsonl")
        with open(p, "wb") as f:
            f.write(good(1) + b"\n")
            f.write(b'{"event_type":"x","device_id":"d","p":"' + b"z" * (10 << 20) + b'"}\n')
            f.write(good(2) + b"\n")

        def run(path):
            # Measured by ferry-testwriter: a child of Python would inherit
            # Python's own high-water mark.
            out = self.path("rss.txt")
            rc, _, err = self.writer("maxrss", out, RECORD, "-j", self.j, "--jsonl", path)
            with open(out) as f:
                return rc, err, int(f.read()) * 1024

        rc, text, base_rss = run(small)
        self.assertEqual(rc, 0, text)
        rc, text, rss = run(p)
        self.assertEqual(rc, EX_DATAERR, text)
        self.assertEqual(text.strip(), "%s:2: line longer than %d bytes, skipped" % (p, MAX_LINE))
        self.assertEqual(self.stored_ids(), ["good-0", "good-1", "good-2"])
        print("\nmax RSS: %.1f MiB (small input %.1f MiB)" % (rss / 1048576, base_rss / 1048576))
        self.assertLess(rss - base_rss, 6 << 20, "reading a 10 MB line used %d more bytes" % (rss - base_rss))


if __name__ == "__main__":
    main()
