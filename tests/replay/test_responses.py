"""ferry-replay, one response class at a time, against a real ferry-sink."""
import http.server
import json
import os
import socket
import threading
import unittest

import subprocess

from replaylib import JOURNAL, KEY, ReplayCase, events, invalid_events

FAST = ["--device-rate", "0", "--max-retry-delay", "0.2", "--throttle-wait", "0.3"]


def summary(p):
    return json.loads(p.stdout.decode().strip().splitlines()[-1])


class Responses(ReplayCase):
    def test_200_delivers_everything_once_gzip_and_plain(self):
        self.record(events(300))
        recorded = self.dump()
        with self.sink() as s:
            p = self.replay(s, "--json", *FAST, check=0)
            st = s.stats()
        j = summary(p)
        self.assertEqual((j["delivered"], j["dead"], j["pending"], j["exit_code"]), (300, 0, 0, 0))
        self.assertLess(j["bytes_sent"] * 4, j["bytes_uncompressed"], "gzip should shrink these bodies 4x")
        self.assertEqual(st["events_accepted"], 300)
        self.assert_exactly_once(recorded, self.accepted())
        stat = self.stat()
        self.assertEqual((stat["pending"], stat["stored"], stat["delivered"]), (0, 0, 300))
        # Nothing to do: a second run sends nothing.
        with self.sink() as s:
            j = summary(self.replay(s, "--json", *FAST, check=0))
            self.assertEqual((j["delivered"], j["requests"]), (0, 0))
        # Plain bodies when asked.
        self.record(events(50, start=300))
        with self.sink() as s:
            j = summary(self.replay(s, "--json", "--no-gzip", *FAST, check=0))
        self.assertEqual(j["bytes_sent"], j["bytes_uncompressed"])
        self.assertEqual(len(self.accepted()), 350)

    def test_keep_delivered_keeps_events_for_forensics(self):
        self.record(events(20))
        with self.sink() as s:
            self.replay(s, "--keep-delivered", *FAST, check=0)
        stat = self.stat()
        self.assertEqual((stat["stored"], stat["pending"], stat["delivered"]), (20, 0, 20))

    def test_400_moves_exactly_the_listed_events_to_dead(self):
        good = events(40)
        bad = invalid_events(6)
        mixed = good[:10] + bad[:3] + good[10:30] + bad[3:] + good[30:]
        self.record(mixed)
        recorded = self.dump()
        bad_seqs = sorted(r["seq"] for r in recorded if r["event"]["event_type"] in ("Bad id", "Short id"))
        with self.sink() as s:
            p = self.replay(s, "--json", *FAST, check=0)
        j = summary(p)
        self.assertEqual((j["delivered"], j["dead"], j["pending"]), (40, 6, 0))
        self.assert_exactly_once([r for r in recorded if r["seq"] not in bad_seqs], self.accepted())
        dead = self.dead()
        self.assertEqual(sorted(d["seq"] for d in dead), bad_seqs)
        for d in dead:
            self.assertEqual(d["status"], 400)
            want = "id" if d["event"]["event_type"] == "Short id" else "device_id"
            self.assertIn(want, d["reason"])
            self.assertEqual(d["insert_id"], d["event"]["insert_id"])
        self.assertEqual(self.stat()["dead"], 6)
        # Requeued, they go back in line with their insert_ids, and die again.
        p = self.run_tool(JOURNAL, "-j", self.journal, "requeue", "--all", check=0)
        self.assertIn(b"6 event(s) requeued", p.stdout)
        self.assertEqual(self.stat()["pending"], 6)
        self.assertEqual(sorted(r["insert_id"] for r in self.dump()), sorted(d["insert_id"] for d in dead))
        with self.sink() as s:
            j = summary(self.replay(s, "--json", *FAST, check=0))
        self.assertEqual((j["delivered"], j["dead"]), (0, 6))

    def test_bad_api_key_stops_and_moves_nothing(self):
        self.record(events(25))
        before = self.stat()
        dump_before = self.dump()
        with self.sink() as s:
            p = self.replay(s, *FAST, key="not-the-key", check=78)
            self.assertEqual(s.stats()["events_accepted"], 0)
        self.assertIn(b"API key", p.stderr)
        self.assertIn(b"nothing was moved", p.stderr)
        after = self.stat()
        for k in ("pending", "stored", "delivered", "dead", "recorded"):
            self.assertEqual(before[k], after[k], k)
        self.assertEqual(dump_before, self.dump())
        self.assertNotIn(b"not-the-key", p.stderr + p.stdout)

    def test_413_splits_down_to_one_event_and_dead_letters_it(self):
        evs = events(60)
        huge = {"event_type": "Image download error", "device_id": evs[0]["device_id"],
                "event_properties": {"marker": "huge", "error": {"stack": "x" * 30000}}}
        self.record(evs[:30] + [huge] + evs[30:])
        recorded = self.dump()
        huge_seq = [r["seq"] for r in recorded if r["event"]["event_properties"]["marker"] == "huge"][0]
        with self.sink("--max-body", "20000") as s:
            p = self.replay(s, "--json", *FAST, check=0)
            st = s.stats()
        j = summary(p)
        self.assertEqual((j["delivered"], j["dead"], j["pending"]), (60, 1, 0))
        self.assertGreater(st["status"].get("413", 0), 1)
        self.assertIn(b"splitting", p.stderr)
        self.assert_exactly_once([r for r in recorded if r["seq"] != huge_seq], self.accepted())
        dead = self.dead()
        self.assertEqual([(d["seq"], d["status"]) for d in dead], [(huge_seq, 413)])

    def test_429_pauses_throttled_devices_and_delivers_all(self):
        self.record(events(400, devices=4))
        recorded = self.dump()
        with self.sink("--eps-limit", "60", "--retry-after", "1") as s:
            p = self.replay(s, "--json", "--max-events", "200", *FAST, check=0)
            st = s.stats()
        self.assertGreater(st["status"].get("429", 0), 0, "the test should have been throttled")
        self.assertIn(b"429 throttled: pausing", p.stderr)
        self.assertEqual(summary(p)["delivered"], 400)
        self.assert_exactly_once(recorded, self.accepted())

    def test_per_device_pacing_avoids_429(self):
        self.record(events(120, devices=2))
        with self.sink("--eps-limit", "30") as s:
            self.replay(s, "--device-rate", "20", check=0)
            st = s.stats()
        self.assertEqual(st["status"].get("429", 0), 0)
        self.assertEqual(st["events_accepted"], 120)

    def test_5xx_resets_and_timeouts_are_retried_with_the_same_ids(self):
        self.record(events(300, devices=10))
        recorded = self.dump()
        sink = self.sink("--seed", str(self.seed), "--fail", "0.3:500,502,503,504", "--fail-after", "0.15:500,504",
                         "--drop-before", "0.1", "--drop-after", "0.1", "--slow", "0.1:2500")
        with sink as s:
            p = self.replay(s, "--json", "--max-events", "20", "--timeout", "1", *FAST, check=0)
            st = s.stats()
        self.assertGreater(st["faults_injected"], 3)
        self.assertGreater(st["duplicates"], 0, "accepted-then-failed requests should have been resent")
        j = summary(p)
        self.assertEqual((j["delivered"], j["pending"]), (300, 0))
        self.assertGreater(j["resent"], 0)
        self.assert_exactly_once(recorded, self.accepted())

    def test_415_falls_back_to_plain_bodies(self):
        self.record(events(10))
        with self.sink("--gzip-unsupported") as s:
            p = self.replay(s, *FAST, check=0)
            self.assertEqual(s.stats()["events_accepted"], 10)
        self.assertIn(b"415", p.stderr)

    def test_batch_api_path(self):
        self.record(events(10))
        with self.sink() as s:
            self.replay(s, "--batch-api", *FAST, check=0)
            self.assertEqual(s.stats()["events_accepted"], 10)

    def test_unreachable_exits_75_with_a_summary(self):
        self.record(events(12))
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()  # nothing listens there now
        p = self.replay("http://127.0.0.1:%d" % port, "--json", "--retry-for", "2", *FAST, check=75)
        self.assertIn(b"delivered 0, dead 0, 12 still pending", p.stderr)
        j = summary(p)
        self.assertEqual((j["pending"], j["resent"]), (12, 0))
        self.assertEqual(self.stat()["pending"], 12)

    def test_200_that_is_not_amplitudes_answer_is_not_success(self):
        class Portal(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                page = b"<html>Please log in to the hotel Wi-Fi</html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *a):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Portal)
        t = threading.Thread(target=server.serve_forever, daemon=True)
        t.start()
        try:
            self.record(events(5))
            p = self.replay("http://127.0.0.1:%d" % server.server_address[1], "--retry-for", "2", *FAST, check=75)
        finally:
            server.shutdown()
        self.assertIn(b"captive portal", p.stderr)
        self.assertEqual(self.stat()["pending"], 5)

    def test_configuration_errors(self):
        self.record(events(1))
        env = dict(os.environ)
        env.pop("FERRY_API_KEY", None)
        cmd = self.replay_cmd("http://127.0.0.1:9")
        p = subprocess.run(cmd, capture_output=True, env=env, timeout=60)
        self.assertEqual(p.returncode, 78)
        self.assertIn(b"no API key", p.stderr)
        keyfile = os.path.join(self.tmp, "key")
        with open(keyfile, "w") as f:
            f.write("\n")
        p = subprocess.run(cmd + ["--api-key-file", keyfile], capture_output=True, env=env, timeout=60)
        self.assertEqual(p.returncode, 78)
        for bad in (["--follow"], ["--eu"], ["--sink", "a/b"], ["--max-events", "2001"], ["--timeout", "x"],
                    ["--api-key", KEY]):
            p = self.replay("http://127.0.0.1:9", *bad)
            self.assertEqual(p.returncode, 64, bad)
        p = self.replay("ftp://127.0.0.1:9")
        self.assertEqual(p.returncode, 64)
        self.journal = os.path.join(self.tmp, "missing")
        self.assertEqual(self.replay("http://127.0.0.1:9").returncode, 66)

    def test_api_key_file_and_key_never_written(self):
        self.record(events(30))
        keyfile = os.path.join(self.tmp, "key")
        with open(keyfile, "w") as f:
            f.write(KEY + "\n")
        env = dict(os.environ)
        env.pop("FERRY_API_KEY", None)
        with self.sink() as s:
            p = subprocess.run(self.replay_cmd(s, "--api-key-file", keyfile, "--json", "-j", self.journal, *FAST),
                               capture_output=True, env=env, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn(KEY.encode(), p.stdout + p.stderr)
        for name in os.listdir(self.journal):
            with open(os.path.join(self.journal, name), "rb") as f:
                self.assertNotIn(KEY.encode(), f.read(), name)
        self.assertNotIn(KEY.encode(), self.run_tool(JOURNAL, "-j", self.journal, "stat", "--json").stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
