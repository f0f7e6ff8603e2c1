"""Visible loss: events the evict-oldest policy deleted before they were sent
reach the destination as one "[ferry] events lost" event per gap (per
device), exactly once, even when the replayer is killed between the upload
and its bookkeeping. Real journals (1 MiB bound), real ferry-record,
ferry-replay and ferry-sink on 127.0.0.1."""
import json
import os
import signal
import subprocess
import time
import unittest

from replaylib import JOURNAL, KEY, RECORD, ReplayCase, device, events, invalid_events

LOSS = "[ferry] events lost"
REPLAY_ARGS = ["--device-rate", "0", "--max-retry-delay", "0.2", "--retry-for", "60", "--json"]


class Loss(ReplayCase):
    def record_small(self, evs):
        """Records into a 1 MiB journal that evicts the oldest when full."""
        data = "".join(json.dumps(e) + "\n" for e in evs).encode()
        self.run_tool(RECORD, "-j", self.journal, "--max-size", "1M", "--overflow", "evict-oldest",
                      "--jsonl", "-", input=data, check=0)

    def padded(self, n, devices=3, start=0, prefix="e"):
        evs = events(n, devices=devices, start=start, prefix=prefix)
        for e in evs:
            e["event_properties"]["pad"] = "x" * 300
        return evs

    def split(self, accepted):
        loss = [e for e in accepted if e["event_type"] == LOSS]
        return loss, [e for e in accepted if e["event_type"] != LOSS]

    def assert_loss_events(self, loss, gaps):
        """The loss events are exactly the gaps: one each, same numbers."""
        ids = [e["insert_id"] for e in loss]
        self.assertEqual(len(ids), len(set(ids)), "a loss event arrived twice")
        jid = self.stat()["journal_id"]
        want = {(g["device_id"], g["first_seq"], g["last_seq"], g["count"]) for g in gaps}
        got = {(e["device_id"], e["event_properties"]["first_seq"], e["event_properties"]["last_seq"],
                e["event_properties"]["count"]) for e in loss}
        self.assertEqual(got, want)
        for e in loss:
            p = e["event_properties"]
            self.assertEqual(p["reason"], "evict-oldest")
            self.assertEqual(p["journal_id"], jid)
            self.assertEqual(e["time"], p["first_time"])
            self.assertLessEqual(p["first_time"], p["last_time"])
            self.assertEqual(e["insert_id"], "ferry-lost-%s-%d-%d" % (jid, p["first_seq"], p["last_seq"]))

    def lost_markers_per_device(self, recorded_markers, accepted_regular):
        """Per device, how many recorded events never arrived."""
        arrived = {e["event_properties"]["marker"] for e in accepted_regular}
        out = {}
        for marker, dev in recorded_markers:
            if marker not in arrived:
                out[dev] = out.get(dev, 0) + 1
        return out

    def test_one_loss_event_per_gap_once(self):
        recorded = []
        for k in range(5):  # five recorder runs: each evicts, the gaps coalesce
            evs = self.padded(1000, start=k * 1000)
            recorded += evs
            self.record_small(evs)
        st = self.stat()
        self.assertEqual(st["recorded"], 5000)
        evicted = st["evicted"]
        self.assertGreater(evicted, 1000)
        self.assertEqual(st["gaps_unsent"], 3)  # one per device, however many evictions
        self.assertEqual(st["gaps_unsent_events"], evicted)
        gaps = st["gaps"]
        # Nothing was delivered: the lost events are seqs 1..evicted, device i % 3.
        for g in gaps:
            d = [device(i) for i in range(3)].index(g["device_id"])
            seqs = [s for s in range(1, evicted + 1) if (s - 1) % 3 == d]
            self.assertEqual((g["first_seq"], g["last_seq"], g["count"]), (seqs[0], seqs[-1], len(seqs)))
            self.assertFalse(g["sealed"])

        with self.sink() as sink:
            summary = json.loads(self.replay(sink, *REPLAY_ARGS, check=0).stdout)
            loss, regular = self.split(self.accepted())
            self.assert_loss_events(loss, gaps)
            self.assertEqual((summary["losses_reported"], summary["delivered"], summary["held"]),
                             (len(loss), len(regular), 0))
            self.assertEqual(sum(e["event_properties"]["count"] for e in loss) + len(regular), 5000)
            per_dev = self.lost_markers_per_device(
                [(e["event_properties"]["marker"], e["device_id"]) for e in recorded], regular)
            self.assertEqual(per_dev, {e["device_id"]: e["event_properties"]["count"] for e in loss})
            st = self.stat()
            self.assertEqual((st["gaps_unsent"], st["gaps_unsent_events"], st["gaps"]), (0, 0, []))

            # A second replay sends nothing.
            before = sink.stats()["events_received"]
            self.replay(sink, *REPLAY_ARGS, check=0)
            self.assertEqual(sink.stats()["events_received"], before)
            self.assertEqual(len(self.accepted()), len(loss) + len(regular))

            # New pressure: new gaps, new loss events, never the old ones again.
            more = self.padded(4000, start=5000, prefix="m")
            self.record_small(more)
            st = self.stat()
            self.assertEqual(st["gaps_unsent"], 3)
            for g in st["gaps"]:
                self.assertGreater(g["first_seq"], 5000)
            new_gaps = st["gaps"]
            self.replay(sink, *REPLAY_ARGS, check=0)
            loss2, regular2 = self.split(self.accepted())
            self.assert_loss_events(loss2, gaps + new_gaps)
            self.assertEqual(sum(e["event_properties"]["count"] for e in loss2) + len(regular2), 9000)
            self.assertEqual(self.stat()["evicted"], sum(e["event_properties"]["count"] for e in loss2))

    def test_kill_between_upload_and_commit(self):
        self.record_small(self.padded(4000))
        st = self.stat()
        evicted, gaps = st["evicted"], st["gaps"]
        self.assertEqual(len(gaps), 3)
        out = os.path.join(self.tmp, "sink.jsonl")
        env = dict(os.environ, FERRY_API_KEY=KEY)
        # The sink takes the loss events, then holds its answer: the replayer
        # is killed with the events delivered and nothing written down.
        slow = self.sink("--slow", "1:600000").start()
        try:
            proc = subprocess.Popen(self.replay_cmd(slow, "--timeout", "900", *REPLAY_ARGS),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
            for _ in range(6000):  # bounded wait for the upload to land
                if len(self.split(self.accepted())[0]) == 3 or proc.poll() is not None:
                    break
                time.sleep(0.05)
            proc.kill()
            _, err = proc.communicate()
            self.assertNotIn(b"Sanitizer", err)
        finally:
            slow.stop(signal.SIGKILL)
        self.assertEqual(len(self.split(self.accepted())[0]), 3, "the loss events did not reach the sink")
        st = self.stat()
        self.assertEqual(st["gaps_unsent"], 3)  # not written down as sent...
        self.assertTrue(all(g["sealed"] for g in st["gaps"]))  # ...but fixed: they may have arrived

        # More pressure while they are in doubt: new rows, the sealed ones unchanged.
        self.record_small(self.padded(3000, start=4000, prefix="m"))
        st = self.stat()
        self.assertEqual(st["gaps_unsent"], 6)
        self.assertEqual([g for g in st["gaps"] if g["sealed"]], gaps_sealed(gaps))
        all_gaps = st["gaps"]

        with self.sink(out=out) as sink:  # the same --out: it deduplicates against what it took
            self.replay(sink, *REPLAY_ARGS, check=0)
            self.assertGreaterEqual(sink.stats()["duplicates"], 3)  # the resend, deduplicated
        loss, regular = self.split(self.accepted())
        self.assert_loss_events(loss, all_gaps)
        total_lost = self.stat()["evicted"]
        self.assertGreater(total_lost, evicted)
        self.assertEqual(sum(e["event_properties"]["count"] for e in loss), total_lost)
        self.assertEqual(sum(e["event_properties"]["count"] for e in loss) + len(regular), 7000)
        self.assertEqual(self.stat()["gaps_unsent"], 0)

    def test_refused_loss_report_is_dropped(self):
        """A loss event the destination refuses for good (an id Amplitude
        rejects) is dropped with a message; the others arrive; no loop."""
        self.record_small(invalid_events(10) + self.padded(4000))
        st = self.stat()
        ids = {(g["device_id"], g["user_id"]) for g in st["gaps"]}
        self.assertIn(("unknown", None), ids)
        self.assertIn((None, "ab"), ids)
        with self.sink() as sink:
            p = self.replay(sink, *REPLAY_ARGS, check=0)
        self.assertIn(b"was refused", p.stderr)
        loss, _ = self.split(self.accepted())
        self.assertEqual({e["device_id"] for e in loss}, {device(i) for i in range(3)})
        self.assertEqual(self.stat()["gaps_unsent"], 0)

    def test_recording_while_replaying(self):
        """A replayer in --follow mode drains while recorders overflow the
        journal: every event arrives or is counted lost, never both, never
        twice; the loss events are distinct and per device exact."""
        recorded = []
        env = dict(os.environ, FERRY_API_KEY=KEY)
        with self.sink() as sink:
            self.record_small(self.padded(10))  # the journal exists before the replayer opens it
            recorded += self.padded(10)
            err = open(os.path.join(self.tmp, "follow.err"), "wb")
            proc = subprocess.Popen(self.replay_cmd(sink, *REPLAY_ARGS, once=False), stdout=subprocess.DEVNULL,
                                    stderr=err, env=env)
            try:
                for k in range(8):
                    evs = self.padded(1500, devices=4, start=10 + k * 1500, prefix="c")
                    recorded += evs
                    self.record_small(evs)
                # Stop it idle: a stop while a request's answer is outstanding is the
                # documented in-doubt window (test_in_doubt_when_killed), not this test's.
                for _ in range(2400):  # bounded wait for the drain
                    st = self.stat()
                    if (st["pending"], st["gaps_unsent"]) == (0, 0) or proc.poll() is not None:
                        break
                    time.sleep(0.05)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=120)
                err.close()
            with open(err.name, "rb") as f:
                self.assertNotIn(b"Sanitizer", f.read())
            self.replay(sink, *REPLAY_ARGS, check=0)  # what is left
        loss, regular = self.split(self.accepted())
        ids = [e["insert_id"] for e in self.accepted()]
        self.assertEqual(len(ids), len(set(ids)), "an event arrived twice")
        st = self.stat()
        self.assertEqual(st["recorded"], len(recorded))
        self.assertEqual((st["gaps_unsent"], st["pending"]), (0, 0))
        lost = sum(e["event_properties"]["count"] for e in loss)
        # evicted counts deletions; an event deleted while a request holding it was in
        # flight, and then acknowledged, arrived: it is not reported lost.
        self.assertLessEqual(lost, st["evicted"])
        self.assertEqual(lost + len(regular), len(recorded))
        per_dev = self.lost_markers_per_device(
            [(e["event_properties"]["marker"], e["device_id"]) for e in recorded], regular)
        got = {}
        for e in loss:
            got[e["device_id"]] = got.get(e["device_id"], 0) + e["event_properties"]["count"]
        self.assertEqual(per_dev, got)
        print("seed %d: %d recorded, %d lost in %d loss events" % (self.seed, len(recorded), lost, len(loss)))

    def held_request_evicted(self, hold):
        """Records 600 events, starts a replayer sending 200 per request
        against a sink that holds its answers while `hold` exists, waits for
        the first request (seqs 1..200) to be accepted, then records 3000
        more: the eviction deletes the 200 while their request is in flight.
        Returns (replayer process, recorded events)."""
        recorded = self.padded(600)
        self.record_small(recorded)
        self.assertEqual(self.stat()["evicted"], 0)
        open(hold, "w").close()
        env = dict(os.environ, FERRY_API_KEY=KEY)
        sink = self.sink("--hold-file", hold).start()
        self.addCleanup(sink.stop, signal.SIGKILL)
        proc = subprocess.Popen(self.replay_cmd(sink, "--max-events", "200", "--timeout", "900", *REPLAY_ARGS),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        for _ in range(6000):  # bounded wait for the first request to land
            if len(self.accepted()) >= 200 or proc.poll() is not None:
                break
            time.sleep(0.05)
        self.assertEqual(len(self.accepted()), 200, "the first request did not reach the sink")
        more = self.padded(3000, start=600, prefix="m")
        recorded += more
        self.record_small(more)
        st = self.stat()
        self.assertGreater(st["evicted"], 200)  # seqs 1..200 went while their answer was held
        self.assertEqual(sum(g["count"] for g in st["gaps"]), st["evicted"])
        self.assertTrue(any(g["first_seq"] == 1 for g in st["gaps"]))
        self.assertEqual(len(self.accepted()), 200)  # still held: nothing else sent
        return sink, proc, recorded

    def test_evicted_in_flight_then_acknowledged(self):
        """Events evicted while their request is in flight, then acknowledged,
        arrived: they are taken out of the gaps, never reported lost."""
        hold = os.path.join(self.tmp, "hold")
        sink, proc, recorded = self.held_request_evicted(hold)
        evicted = self.stat()["evicted"]
        os.unlink(hold)  # the answer leaves; the replayer goes on to the end
        _, err = proc.communicate(timeout=300)
        self.assertNotIn(b"Sanitizer", err)
        self.assertEqual(proc.returncode, 0, err.decode(errors="replace"))
        loss, regular = self.split(self.accepted())
        ids = [e["insert_id"] for e in self.accepted()]
        self.assertEqual(len(ids), len(set(ids)), "an event arrived twice")
        lost = sum(e["event_properties"]["count"] for e in loss)
        self.assertEqual(lost, evicted - 200)  # the 200 were taken back
        self.assertEqual(lost + len(regular), len(recorded))
        per_dev = self.lost_markers_per_device(
            [(e["event_properties"]["marker"], e["device_id"]) for e in recorded], regular)
        got = {}
        for e in loss:
            got[e["device_id"]] = got.get(e["device_id"], 0) + e["event_properties"]["count"]
        self.assertEqual(per_dev, got)
        self.assertEqual((self.stat()["gaps_unsent"], self.stat()["pending"]), (0, 0))

    def test_in_doubt_resent_as_is(self):
        """The destination dies holding the answer to a request whose events
        were then evicted: no answer, the request may have arrived. The
        replayer sends it again as it was (the journal no longer has those
        events) until a definite answer: the restarted destination
        deduplicates it and answers 200, and the events are taken back."""
        hold = os.path.join(self.tmp, "hold")
        sink, proc, recorded = self.held_request_evicted(hold)
        evicted = self.stat()["evicted"]
        port = sink.port
        sink.stop(signal.SIGKILL)
        os.unlink(hold)
        again = self.sink("--listen", "127.0.0.1:%d" % port).start()  # the same --out: it deduplicates
        self.addCleanup(again.stop, signal.SIGKILL)
        _, err = proc.communicate(timeout=300)
        self.assertNotIn(b"Sanitizer", err)
        self.assertEqual(proc.returncode, 0, err.decode(errors="replace"))
        self.assertIn(b"resending the unanswered request as it was", err)
        self.assertGreaterEqual(again.stats()["duplicates"], 200)
        loss, regular = self.split(self.accepted())
        ids = [e["insert_id"] for e in self.accepted()]
        self.assertEqual(len(ids), len(set(ids)), "an event arrived twice")
        lost = sum(e["event_properties"]["count"] for e in loss)
        self.assertEqual(lost, evicted - 200)
        self.assertEqual(lost + len(regular), len(recorded))
        self.assertEqual((self.stat()["gaps_unsent"], self.stat()["pending"]), (0, 0))

    def test_in_doubt_when_killed(self):
        """The documented window (FORMAT.md, gaps, "In flight"): the replayer
        dies while the answer to a request whose events were evicted is
        outstanding. The events arrived, but nothing says so: they are
        reported lost too, at most that request's events; nothing is lost
        unreported and no event or loss event arrives twice."""
        hold = os.path.join(self.tmp, "hold")
        sink, proc, recorded = self.held_request_evicted(hold)
        evicted = self.stat()["evicted"]
        proc.kill()
        _, err = proc.communicate()
        self.assertNotIn(b"Sanitizer", err)
        os.unlink(hold)
        self.replay(sink, *REPLAY_ARGS, check=0)
        loss, regular = self.split(self.accepted())
        ids = [e["insert_id"] for e in self.accepted()]
        self.assertEqual(len(ids), len(set(ids)), "an event arrived twice")
        lost = sum(e["event_properties"]["count"] for e in loss)
        self.assertEqual(lost, evicted)
        self.assertEqual(lost + len(regular), len(recorded) + 200)  # the bound: one request's events
        self.assertEqual((self.stat()["gaps_unsent"], self.stat()["pending"]), (0, 0))

    def test_tools_see_gaps(self):
        """stat shows the gaps; verify accepts them; copy keeps them; purge
        --all deletes them (they name devices)."""
        self.record_small(self.padded(4000))
        st = self.stat()
        self.assertEqual(st["gaps_unsent"], 3)
        text = self.run_tool(JOURNAL, "-j", self.journal, "stat", check=0).stdout.decode()
        self.assertIn("gaps unsent    3   (%d lost event(s)" % st["evicted"], text)
        for i in range(3):
            self.assertIn("device %s " % device(i), text)
        self.run_tool(JOURNAL, "-j", self.journal, "verify", check=0)
        copy = os.path.join(self.tmp, "copy")
        self.run_tool(JOURNAL, "-j", self.journal, "copy", copy, check=0)
        cst = json.loads(self.run_tool(JOURNAL, "-j", copy, "stat", "--json", check=0).stdout)
        self.assertEqual(cst["gaps"], st["gaps"])
        self.run_tool(JOURNAL, "-j", self.journal, "purge", "--all", "--yes", check=0)
        st = self.stat()
        self.assertEqual((st["gaps_unsent"], st["gaps"]), (0, []))

    def test_gaps_travel_in_captures(self):
        """export --format capture carries the unreported gaps (capture 1.1);
        import makes them sealed rows of the source journal, so the journal
        a field engineer replays reports the loss with the insert_id the
        device itself would use: whoever reports first, it counts once."""
        self.record_small(self.padded(4000))
        src = self.stat()
        self.assertEqual(src["gaps_unsent"], 3)
        cap = os.path.join(self.tmp, "cap.fyc")

        def export(*filt):
            out = self.run_tool(JOURNAL, "-j", self.journal, "export", "--format", "capture", "--output", cap,
                                "--force", "--json", *filt, check=0).stdout
            return json.loads(out)["gaps"]
        # The filter applies to gaps: its device, its times, pending news.
        self.assertEqual(export("--device-id", device(1)), 1)
        self.assertEqual(export("--delivered"), 0)
        self.assertEqual(export("--type", "nothing"), 0)
        self.assertEqual(export("--type", LOSS), 3)
        self.assertEqual(export("--until", "1"), 0)
        self.assertEqual(export(), 3)
        out = self.run_tool(JOURNAL, "verify", cap, check=0).stdout.decode()
        self.assertIn("capture 1.1", out)
        self.assertIn("3 unreported eviction gap(s)", out)

        source, other = self.journal, os.path.join(self.tmp, "field")
        self.journal = other
        imp = json.loads(self.run_tool(JOURNAL, "import", cap, "-j", other, "--json", check=0).stdout)
        self.assertEqual((imp["gaps"], imp["gaps_already_present"]), (3, 0))
        imp = json.loads(self.run_tool(JOURNAL, "import", cap, "-j", other, "--json", check=0).stdout)
        self.assertEqual((imp["gaps"], imp["gaps_already_present"]), (0, 3))
        st = self.stat()
        self.assertEqual(st["gaps_unsent_events"], src["evicted"])
        self.assertEqual(sorted((g["device_id"], g["first_seq"], g["last_seq"], g["count"]) for g in st["gaps"]),
                         sorted((g["device_id"], g["first_seq"], g["last_seq"], g["count"]) for g in src["gaps"]))
        for g in st["gaps"]:
            self.assertTrue(g["sealed"])
            self.assertEqual(g["journal_id"], src["journal_id"])
        self.run_tool(JOURNAL, "-j", other, "verify", check=0)
        # New evictions in this journal never extend an imported row.
        self.record_small(self.padded(3000, start=4000, prefix="f"))
        st = self.stat()
        self.assertEqual(len([g for g in st["gaps"] if "journal_id" in g]), 3)
        self.assertEqual(len([g for g in st["gaps"] if "journal_id" not in g]), 3)

        with self.sink() as sink:
            self.replay(sink, *REPLAY_ARGS, check=0)
            loss, regular = self.split(self.accepted())
            from_src = [e for e in loss if e["event_properties"]["journal_id"] == src["journal_id"]]
            self.assertEqual(len(loss), 6)
            self.journal = source
            self.assert_loss_events(from_src, src["gaps"])  # the device's own insert_ids
            self.assertEqual(self.stat()["gaps_unsent"], 3)
            # The device reports the same losses later: the sink counts each once.
            self.replay(sink, *REPLAY_ARGS, check=0)
            loss2, _ = self.split(self.accepted())
            self.assertEqual(sorted(e["insert_id"] for e in loss2), sorted(e["insert_id"] for e in loss))
            self.assertEqual(self.stat()["gaps_unsent"], 0)


def gaps_sealed(gaps):
    return [dict(g, sealed=True) for g in gaps]


if __name__ == "__main__":
    unittest.main()
