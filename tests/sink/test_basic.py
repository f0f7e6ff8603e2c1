"""ferry-sink: the 200 path, --out content, gzip, keep-alive, /stats, /health."""
import gzip
import json
import os
import threading

from sinklib import Sink, SinkTest, body, event, main


class Basic(SinkTest):
    def test_accept_and_out(self):
        events = [event(i) for i in range(3)]
        with self.sink() as s:
            status, resp, headers = s.post(events)
            self.assertEqual(status, 200)
            self.assertEqual(resp["code"], 200)
            self.assertEqual(resp["events_ingested"], 3)
            self.assertEqual(resp["payload_size_bytes"], len(body(events)))
            self.assertIsInstance(resp["server_upload_time"], int)
            self.assertGreater(resp["server_upload_time"], 1600000000000)
            self.assertEqual(headers["Content-Type"], "application/json")
            self.assertEqual(s.out_lines(), events)  # written before the answer
        with open(self.out, "rb") as f:
            self.assertEqual(f.read(), b"".join(json.dumps(e, separators=(",", ":")).encode() + b"\n" for e in events))
        self.assertEqual(os.stat(self.out).st_mode & 0o777, 0o600)  # events may be personal data

    def test_out_keeps_the_bytes_as_received(self):
        # Whitespace goes; escapes, number spellings and key order stay.
        raw = (b'{ "api_key" : "k",\n "events" : [ {"event_type" : "a b", "device_id":"dev-00001",'
               b' "event_properties": {"price": 1.50, "big": 1e3, "s": "caf\\u00e9 \\"q\\" \\n"},'
               b' "insert_id": "x1"} ,\n{"user_id":"user-00001","event_type":"\xc3\xa9t\xc3\xa9"} ] }')
        with self.sink() as s:
            status, resp, _ = s.post(raw)
            self.assertEqual(status, 200, resp)
        with open(self.out, "rb") as f:
            self.assertEqual(f.read(),
                             b'{"event_type":"a b","device_id":"dev-00001","event_properties":{"price":1.50,"big":1e3,'
                             b'"s":"caf\\u00e9 \\"q\\" \\n"},"insert_id":"x1"}\n'
                             b'{"user_id":"user-00001","event_type":"\xc3\xa9t\xc3\xa9"}\n')

    def test_batch_endpoint(self):
        with self.sink() as s:
            status, resp, _ = s.post([event(1)], path="/batch")
            self.assertEqual((status, resp["events_ingested"]), (200, 1))
            self.assertEqual(len(s.out_lines()), 1)

    def test_gzip(self):
        events = [event(i) for i in range(50)]
        with self.sink() as s:
            status, resp, _ = s.post(events, gz=True)
            self.assertEqual(status, 200, resp)
            self.assertEqual(resp["payload_size_bytes"], len(body(events)))  # counted decompressed
            status, resp, _ = s.post([event(i) for i in range(50, 60)], path="/batch", gz=True,
                                     headers={"Content-Encoding": "x-gzip"})
            self.assertEqual(status, 200, resp)
            # two gzip members in one body
            data = gzip.compress(b'{"api_key":"k","events":[') + gzip.compress(json.dumps(event(99)).encode() + b"]}")
            status, resp, _ = s.post(data, headers={"Content-Encoding": "gzip"})
            self.assertEqual(status, 200, resp)
            # corrupt and truncated gzip
            good = gzip.compress(body([event(100)]))
            for bad in (good[:-10], b"\x1f\x8b not gzip at all", good + b"trailing"):
                status, resp, _ = s.post(bad, headers={"Content-Encoding": "gzip"})
                self.assertEqual((status, resp), (400, {"code": 400, "error": "Invalid JSON request body"}))
            status, resp, _ = s.post(good, headers={"Content-Encoding": "br"})
            self.assertEqual(status, 415)
            self.assertEqual(resp["code"], 415)
            self.assertEqual(len(s.out_lines()), 61)

    def test_keep_alive_and_stats(self):
        with self.sink() as s:
            c = s.conn()
            for i in range(20):
                status, resp, _ = s.post([event(i), event(i, device="device-0002")], conn=c)
                self.assertEqual(status, 200)
            status, resp, _ = s.post([event(0)], conn=c)  # a duplicate
            self.assertEqual((status, resp["events_ingested"]), (200, 1))
            status, resp, _ = s.post([{"event_type": "x"}], conn=c)  # no id: 400
            self.assertEqual(status, 400)
            status, resp, _ = s.post(b"{", conn=c)
            self.assertEqual(status, 400)
            c.close()
            st = s.stats()
            self.assertEqual(st["requests"], 23)
            self.assertEqual(st["events_received"], 42)
            self.assertEqual(st["events_accepted"], 40)
            self.assertEqual(st["duplicates"], 1)
            self.assertEqual(st["events_rejected"], 1)
            self.assertEqual(st["status"], {"200": 21, "400": 2})
            self.assertEqual(st["faults_injected"], 0)
            self.assertEqual(len(s.out_lines()), 40)

    def test_health_and_paths(self):
        with self.sink() as s:
            status, resp, _ = s.request("GET", "/health")
            self.assertEqual(status, 200)
            self.assertEqual(resp["code"], 200)
            status, resp, _ = s.request("POST", "/2/httpapi/extra", b"{}")
            self.assertEqual((status, resp["code"]), (404, 404))
            status, resp, _ = s.request("GET", "/2/httpapi")
            self.assertEqual((status, resp["code"]), (405, 405))
            self.assertEqual(s.stats()["requests"], 0)  # only ingestion requests count

    def test_concurrent_clients(self):
        n_threads, n_requests = 8, 25
        errors = []
        with self.sink() as s:
            def worker(t):
                c = s.conn()
                try:
                    for r in range(n_requests):
                        evs = [event(r * 10 + k, device="device-t%03d" % t) for k in range(10)]
                        status, resp, _ = s.post(evs, conn=c)
                        if status != 200:
                            errors.append((status, resp))
                    # everything again: all duplicates
                    for r in range(n_requests):
                        evs = [event(r * 10 + k, device="device-t%03d" % t) for k in range(10)]
                        s.post(evs, conn=c)
                finally:
                    c.close()
            threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            self.assertEqual(errors, [])
            st = s.stats()
            total = n_threads * n_requests * 10
            self.assertEqual(st["events_accepted"], total)
            self.assertEqual(st["duplicates"], total)
            lines = s.out_lines()
            self.assertEqual(len(lines), total)
            self.assertEqual(len({(e["device_id"], e["insert_id"]) for e in lines}), total)


if __name__ == "__main__":
    main()
