"""ferry-sink: Amplitude's 400 and 413 answers, with their exact bodies."""
import json
import os
import random
import socket

from sinklib import SinkTest, body, event, main

FIELDS_400 = "Invalid field values on some events"


class Validation(SinkTest):
    def setUp(self):
        super().setUp()
        self.s = self.sink().start()

    def tearDown(self):
        self.assertEqual(self.s.stop(), 0)

    def assertRejected(self, data, status, expected, **kw):
        got_status, resp, _ = self.s.post(data, **kw)
        self.assertEqual((got_status, resp), (status, expected))
        self.assertEqual(self.s.out_lines(), [])  # nothing of the request is accepted

    def test_request_level(self):
        self.assertRejected(b"", 400, {"code": 400, "error": "Missing request body"})
        for bad in (b"{", b'{"api_key":"k","events":[]} x', b"[1]", b'{"api_key":"k",}', b'{"a":"\xff"}',
                    b'{"a":"\\x"}', b'{"a":"tab\there"}', b'{"a":01}', b'{"a":1.}', b"\xef\xbb\xbf{}",
                    b'{"a":tru}', b'{"a":' + b"[" * 200 + b"]" * 200 + b"}"):
            self.assertRejected(bad, 400, {"code": 400, "error": "Invalid JSON request body"})
        missing = lambda f: {"code": 400, "error": "Request missing required field", "missing_field": f}
        self.assertRejected(b'{"events":[{"event_type":"a","device_id":"dev-00001"}]}', 400, missing("api_key"))
        self.assertRejected(body([event()], api_key=""), 400, missing("api_key"))
        self.assertRejected(body([event()], api_key=7), 400, missing("api_key"))
        self.assertRejected(b'{"api_key":"k"}', 400, missing("events"))
        self.assertRejected(b'{"api_key":"k","events":null}', 400, missing("events"))
        self.assertRejected(b'{"api_key":"k","events":[]}', 400, missing("events"))
        self.assertRejected(b'{"api_key":"k","events":{"event_type":"a"}}', 400,
                            {"code": 400, "error": "Invalid event JSON"})
        self.assertRejected(body([event(), 5]), 400, {"code": 400, "error": "Invalid event JSON"})

    def test_per_event(self):
        events = [
            event(0),                                               # 0 valid
            {"device_id": "device-0001"},                           # 1 event_type missing
            event(2, event_type=7),                                 # 2 event_type not a string
            event(3, time="2024-01-01T00:00:00Z"),                  # 3 time not an integer
            event(4, time=1.5),                                     # 4 time not an integer
            event(5, event_properties=[1]),                         # 5 not an object
            event(6, user_properties="x"),                          # 6 not an object
            {"event_type": "a"},                                    # 7 no id at all
            event(8, device="null"),                                # 8 invalid device_id
            {"event_type": "a", "user_id": "Unknown"},              # 9 invalid user_id, any case
            event(10, device="00000000-0000-0000-0000-000000000000"),  # 10 invalid device_id
            {"event_type": "a", "user_id": 12345},                  # 11 user_id not a string
            event(12, time=None, event_properties=None),            # 12 valid: null is absent
            {"event_type": "a", "device_id": "dev-1", "user_id": "user-00001"},  # 13 valid: short id ignored
        ]
        self.assertRejected(body(events), 400, {
            "code": 400, "error": FIELDS_400,
            "events_with_invalid_fields": {
                "event_type": [2], "user_id": [9, 11], "device_id": [8, 10], "time": [3, 4],
                "event_properties": [5], "user_properties": [6]},
            "events_with_missing_fields": {"event_type": [1], "user_id": [7], "device_id": [7]},
        })
        st = self.s.stats()
        self.assertEqual((st["events_received"], st["events_rejected"], st["events_accepted"]), (14, 14, 0))

    def test_each_invalid_id_value(self):
        for value in ("anonymous", "nil", "none", "null", "n/a", "na", "undefined", "unknown", "",
                      "00000000-0000-0000-0000-000000000000", "{}", "lmy47d", "0", "-1", "NULL", "Anonymous"):
            self.assertRejected(body([event(0), {"event_type": "a", "device_id": value, "user_id": "user-00001"}]),
                                400, {"code": 400, "error": FIELDS_400,
                                      "events_with_invalid_fields": {"device_id": [1]},
                                      "events_with_missing_fields": {}})

    def test_id_lengths(self):
        short = [event(0), {"event_type": "a", "device_id": "abcd"}, {"event_type": "a", "user_id": "u1", "device_id": "d1"}]
        self.assertRejected(body(short), 400, {
            "code": 400, "error": "Invalid id length for user_id or device_id",
            "events_with_invalid_fields": {}, "events_with_missing_fields": {},
            "events_with_invalid_id_lengths": {"user_id": [2], "device_id": [1, 2]}})
        # options.min_id_length lowers the bar; length counts characters
        status, resp, _ = self.s.post(short, options={"min_id_length": 2})
        self.assertEqual((status, resp["events_ingested"]), (200, 3))
        status, resp, _ = self.s.post([{"event_type": "a", "device_id": "\u00e9\u00e9\u00e9\u00e9\u00e9"}])
        self.assertEqual(status, 200)

    def test_api_key(self):
        self.s.stop()
        key_file = self.dir + "/key"
        with open(key_file, "w") as f:
            f.write("secret-key\n")
        for args in (["--api-key", "secret-key"], ["--api-key-file", key_file]):
            self.s = self.sink(*args).start()
            self.assertRejected(body([event()], api_key="other"), 400, {"code": 400, "error": "Invalid API key"})
            status, _, _ = self.s.post([event()], api_key="secret-key")
            self.assertEqual(status, 200)
            self.s.stop()
            os.unlink(self.out)

    def test_413_events(self):
        too_many = {"code": 413, "error": "Payload too large"}
        self.assertRejected(body([event(i) for i in range(2001)]), 413, too_many)
        self.assertRejected(body([event(i) for i in range(2001)]), 413, too_many, path="/batch")
        status, resp, _ = self.s.post([event(i) for i in range(2000)])
        self.assertEqual((status, resp["events_ingested"]), (200, 2000))

    def test_413_bytes(self):
        too_big = {"code": 413, "error": "Payload too large"}
        pad = "x" * 1000
        big = body([event(i, event_properties={"pad": pad}) for i in range(1100)])  # about 1.2 MB
        self.assertGreater(len(big), 1000000)
        self.assertRejected(big, 413, too_big)
        self.assertRejected(big, 413, too_big, gz=True)  # small compressed, too big inflated
        # Amplitude's Batch API takes up to 20 MB
        status, resp, _ = self.s.post(big, path="/batch")
        self.assertEqual((status, resp["events_ingested"]), (200, 1100))

    def test_413_chunked_and_expect(self):
        # A chunked body over the cap is read and discarded, then refused.
        c = self.s.conn()
        c.putrequest("POST", "/2/httpapi")
        c.putheader("Transfer-Encoding", "chunked")
        c.endheaders()
        chunk = b"x" * 65536
        for _ in range(40):  # 2.6 MB
            c.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        c.send(b"0\r\n\r\n")
        r = c.getresponse()
        self.assertEqual((r.status, json.loads(r.read())), (413, {"code": 413, "error": "Payload too large"}))
        c.close()
        # With Expect: 100-continue an oversized body is refused before it is sent.
        sock = socket.create_connection(("127.0.0.1", self.s.port), timeout=30)
        sock.sendall(b"POST /2/httpapi HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        data = b""
        while b"}" not in data:
            more = sock.recv(4096)
            if not more:
                break
            data += more
        sock.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 413"), data)
        self.assertTrue(data.endswith(b'{"code":413,"error":"Payload too large"}'), data)

    def test_max_options(self):
        self.s.stop()
        self.s = self.sink("--max-events", "3", "--max-body", "2000").start()
        self.assertRejected(body([event(i) for i in range(4)]), 413, {"code": 413, "error": "Payload too large"})
        self.assertRejected(body([event(0, event_properties={"p": "x" * 2000})]), 413,
                            {"code": 413, "error": "Payload too large"}, path="/batch")
        status, _, _ = self.s.post([event(i) for i in range(3)])
        self.assertEqual(status, 200)

    def test_duplicate_keys_last_wins(self):
        data = b'{"api_key":"k","events":[{"event_type":"a","device_id":"null","device_id":"device-0001"}]}'
        status, resp, _ = self.s.post(data)
        self.assertEqual(status, 200, resp)

    def test_json_scanner_against_python(self):
        """Mutated bodies: ferry-sink calls a body invalid JSON exactly when Python's json does."""
        bases = [
            body([event(0)]),
            body([event(1, event_properties={"a": [1, -2.5e-3, True, False, None, {"b": "caf\u00e9 \\ \" \u2028"}],
                                            "emoji": "\U0001f600", "n": 12345678901234567890})]),
            b'{"api_key":"k","events":[{"event_type":"a","device_id":"device-1","time":-0}],"options":{"min_id_length":1}}',
            json.dumps({"api_key": "k", "events": [event(2, event_type="\u00e9t\u00e9 \u4e2d \U0001f600")]},
                       ensure_ascii=False).encode(),
        ]

        def no_constants(name):
            raise ValueError(name)

        rng = random.Random(1234)
        alphabet = b'{}[]",:\\ 0123456789eE.-+tfnulasr\x00\x01\x1f\x7f\xc3\xa9\xed\xa0\x80\xff\n\t'
        c = self.s.conn()
        checked = invalid = 0
        for _ in range(1500):
            data = bytearray(rng.choice(bases))
            for _ in range(rng.randint(1, 3)):
                i = rng.randrange(len(data))
                op = rng.randrange(4)
                if op == 0:
                    data[i] = rng.choice(alphabet)
                elif op == 1:
                    del data[i]
                elif op == 2:
                    data.insert(i, rng.choice(alphabet))
                else:
                    j = rng.randrange(i, min(len(data), i + 8) + 1)
                    data[i:i] = data[i:j]
            data = bytes(data)
            if not data:
                continue
            try:
                ok = isinstance(json.loads(data.decode("utf-8"), parse_constant=no_constants), dict)
            except (ValueError, RecursionError):
                ok = False
            status, resp, _ = self.s.post(data, conn=c)
            said_invalid = status == 400 and resp.get("error") == "Invalid JSON request body"
            self.assertEqual(said_invalid, not ok, data)
            checked += 1
            invalid += not ok
        c.close()
        self.assertGreater(invalid, 300)
        self.assertGreater(checked - invalid, 100)


if __name__ == "__main__":
    main()
