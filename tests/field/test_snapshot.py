"""Exports while recorders write hard and a replayer delivers: each export is
one consistent snapshot. Recorders write atomic batches of BATCH events, so a
snapshot holds every batch whole or not at all; sequence numbers are
contiguous from 1 (nothing is deleted here); a capture verifies and announces
exactly what it holds; the delivery state seen is a prefix-closed cursor."""
import json
import os
import subprocess
import sys
import threading
import unittest

from fieldlib import KEY, RECORD, FieldCase, parse_capture, header_fields, device

WRITERS = 3
BATCHES = 30
BATCH = 200


class Snapshot(FieldCase):
    def writer(self, w, errors):
        for b in range(BATCHES):
            evs = [{"event_type": "Service start", "device_id": device(w), "time": 1795939200000 + i,
                    "event_properties": {"batch": "w%d-b%d" % (w, b), "i": i, "pad": "p" * (i % 200)}}
                   for i in range(BATCH)]
            data = "".join(json.dumps(e) + "\n" for e in evs).encode()
            p = subprocess.run([RECORD, "-j", self.journal, "--jsonl", "-", "--atomic"],
                               input=data, capture_output=True, timeout=300)
            if p.returncode != 0:
                errors.append(p.stderr.decode(errors="replace"))
                return

    def check_events(self, recs, what):
        seqs = [r["seq"] for r in recs]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)), "%s: sequence numbers not contiguous" % what)
        self.assertEqual(recs[0]["event"]["event_properties"]["batch"], "first")
        batches = {}
        for r in recs[1:]:
            b = r["event"]["event_properties"]["batch"]
            batches[b] = batches.get(b, 0) + 1
        torn = {b: n for b, n in batches.items() if n != BATCH}
        self.assertEqual(torn, {}, "%s: a batch was seen in part" % what)
        return len(recs)

    def test_exports_during_recording(self):
        # The journal exists before the writers start (and a first event
        # marks batch "w9-b0" of one event: counted apart).
        self.record_into(self.journal, [{"event_type": "Boot", "device_id": device(9), "time": 1795939200000,
                                         "event_properties": {"batch": "first", "i": 0}}])
        errors = []
        threads = [threading.Thread(target=self.writer, args=(w, errors)) for w in range(WRITERS)]
        env = dict(os.environ, FERRY_API_KEY=KEY)
        sizes = []
        with self.sink() as sink:
            err = open(os.path.join(self.tmp, "replay.err"), "wb")
            replayer = subprocess.Popen(self.replay_cmd(sink, "--keep-delivered", "--device-rate", "0",
                                                        "--max-events", "300", once=False),
                                        stdout=subprocess.DEVNULL, stderr=err, env=env)
            try:
                for t in threads:
                    t.start()
                n = 0
                while any(t.is_alive() for t in threads) or n < 3:
                    n += 1
                    cap = self.export(self.journal, "capture", "snap-%d.fyc" % n)
                    jl = self.tool(self.journal, "export", "--format", "jsonl", check=0).stdout.decode()
                    recs = [json.loads(l) for l in jl.split("\n") if l]
                    self.check_events(recs, "jsonl export %d" % n)
                    # Delivery state: the replayer's cursor is one value in
                    # a snapshot, so delivered events (it sends in order,
                    # here with no failures) form a prefix.
                    states = [r["state"] for r in recs]
                    self.assertEqual(states, sorted(states, key=lambda s: s != "delivered"),
                                     "export %d: delivered events do not form a prefix" % n)
                    # The capture: verifies, and holds what it announces.
                    p = self.verify(cap)
                    self.assertEqual(p.returncode, 0, p.stdout.decode())
                    with open(cap, "rb") as f:
                        data = f.read()
                    layout, h = parse_capture(data), header_fields(data)
                    self.assertEqual(h["count"], len(layout["entries"]))
                    self.assertEqual([e["seq"] for e in layout["entries"]], list(range(1, h["count"] + 1)))
                    sizes.append(h["count"])
                    os.unlink(cap)
                    if n > 400:
                        self.fail("the writers did not finish")
                for t in threads:
                    t.join(timeout=600)
            finally:
                replayer.terminate()
                replayer.wait(timeout=60)
                err.close()
        self.assertEqual(errors, [])
        with open(err.name, "rb") as f:
            log = f.read().decode(errors="replace")
        self.assertNotIn("Sanitizer", log)
        self.assertIn(replayer.returncode, (0, 75), log)
        final = self.dump()
        self.assertEqual(self.check_events(final, "final dump"), 1 + WRITERS * BATCHES * BATCH)
        print("snapshot sizes: %s" % sizes, file=sys.stderr)
        self.assertEqual(sizes, sorted(sizes), "a later snapshot held fewer events")
        cap = self.export(self.journal, "capture", "final.fyc")
        with open(cap, "rb") as f:
            self.assertEqual(header_fields(f.read())["count"], 1 + WRITERS * BATCHES * BATCH)
        self.assert_verify_clean(cap)


if __name__ == "__main__":
    unittest.main(verbosity=2)
