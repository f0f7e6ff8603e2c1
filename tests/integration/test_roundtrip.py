"""Test 1: every JSON type and nesting survives record -> journal -> dump.

Values are compared strictly (int vs float vs bool, float bits, key order),
both through `ferry-record --jsonl` and through the single-event flags."""
import json
import os
import time

from ferrytest import DATA, EX_DATAERR, UUID4_RE, FerryTestCase, main

INT64_MIN, INT64_MAX = -2 ** 63, 2 ** 63 - 1

# Every JSON type, with the edge values; key order deliberately not sorted.
ALL_TYPES = {
    "zeta": "first key",
    "null": None,
    "true": True,
    "false": False,
    "zero": 0,
    "minus_one": -1,
    "int64_min": INT64_MIN,
    "int64_max": INT64_MAX,
    "int_edges": [1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, -32, -33, -128, -129,
                  -32768, -32769, -2 ** 31, -2 ** 31 - 1, INT64_MIN + 1, INT64_MAX - 1],
    "d_0_1": 0.1,
    "d_1e300": 1e300,
    "d_neg_tiny": -2.5e-300,
    "d_one": 1.0,
    "d_sum": 0.30000000000000004,
    "d_more": [2.5, -1.5, 100.0, -0.0, 5e-324, 1.7976931348623157e308, 1e16, 1e-7,
               123456789.12345679, 2.0 ** 53, -1e-310],
    "s_empty": "",
    "s_ascii": "hello, world",
    "s_latin": "h\u00e9llo w\u00f6rld \u00f1 \u00df",
    "s_cjk": "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8",
    "s_emoji": "\U0001F600\U0001F680 \U0001F469\u200d\U0001F469\u200d\U0001F467 \u2764\ufe0f",
    "s_escapes": "a\nb\tc\"d\\e\u0001f\u2028g\u2029h\u001fi\rj\bk\fl/m\u007fn",
    "s_looks_numeric": "42",
    "arr_empty": [],
    "obj_empty": {},
    "mixed": [1, "two", 3.0, None, True, False, {"k": [False, {"z": 1, "a": 2}]}, [[], {}]],
    "b_key_order": {"z": 1, "y": 2, "a": 3, "m": {"c": 1, "b": 2, "a": 3}},
    "\u00fcn\u00efcode key \U0001F511": "v",
    "key\nwith\tescapes\"\\\u0001": "w",
    "alpha": "last key",
}

GENERATED = ("insert_id", "time")


def nest(levels, kind="object"):
    """A value made of `levels` nested containers around 1."""
    v = 1
    for i in range(levels):
        if kind == "object":
            v = {"l%d" % (levels - i): v}
        elif kind == "array":
            v = [v]
        else:  # alternating
            v = [v] if i % 2 else {"m": v}
    return v


def depth(v):
    if isinstance(v, dict):
        return 1 + max([depth(x) for x in v.values()] or [0])
    if isinstance(v, list):
        return 1 + max([depth(x) for x in v] or [0])
    return 0


class RoundTrip(FerryTestCase):

    def setUp(self):
        super().setUp()
        self.j = self.path("journal")

    def check_event(self, rec, sent, before_ms, after_ms):
        """rec (from dump) holds exactly the event sent, plus what the
        recorder owes it: a UUID v4 insert_id and time = recording time when
        the caller gave none."""
        ev = rec["event"]
        if "insert_id" in sent:
            self.assertEqual(ev["insert_id"], sent["insert_id"], "caller's insert_id not kept")
        else:
            self.assertRegex(ev["insert_id"], UUID4_RE, "generated insert_id is not a UUID v4")
        self.assertEqual(rec["insert_id"], ev["insert_id"])
        self.assertIsInstance(rec["recorded_at"], int)
        self.assertTrue(before_ms <= rec["recorded_at"] <= after_ms,
                        "recorded_at %d not within the recording [%d, %d]" % (rec["recorded_at"], before_ms, after_ms))
        if "time" in sent:
            self.assertStrictEqual(ev["time"], sent["time"], "caller's time not kept")
        else:
            self.assertIsInstance(ev["time"], int)
            self.assertTrue(before_ms <= ev["time"] <= after_ms,
                            "default time %d is not the recording time [%d, %d]" % (ev["time"], before_ms, after_ms))
        # The caller's fields, values and key order, unchanged.
        rest = {k: v for k, v in ev.items() if k in sent or k not in GENERATED}
        self.assertStrictEqual(rest, sent, "event changed on its way through the journal")

    def record_lines(self, events, *args):
        before = int(time.time() * 1000)
        rc, err, _ = self.jsonl(self.j, events, *args)
        after = int(time.time() * 1000) + 1
        self.assertEqual(rc, 0, err)
        self.assertEqual(err, "")
        return before, after

    # ---- --jsonl ---------------------------------------------------------------

    def test_jsonl_every_type(self):
        events = [
            # raw UTF-8 input, no insert_id / time: both generated
            {"event_type": "Round trip \u2713", "device_id": "dev-1", "event_properties": ALL_TYPES},
            # the same, with the caller's insert_id and time, extra top-level fields first
            {"zz_custom": {"n": [1, 2.0, None]}, "event_type": "Round trip 2", "user_id": "user-\u00e9",
             "insert_id": "caller-id-\U0001F600", "time": 1795939200000, "app_version": "14.1.3",
             "session_id": 1700000000000, "event_id": -5, "os_name": "balenaOS", "ip": "$remote",
             "groups": {"org": "a"}, "group_properties": {}, "user_properties": ALL_TYPES,
             "event_properties": {"nested": ALL_TYPES, "list": [ALL_TYPES, ALL_TYPES]}},
            # time 0 and the top-level scalar types
            {"event_type": "t", "device_id": "d", "user_id": "u", "time": 0, "price": 0.1, "quantity": -1,
             "revenue": 1.0, "flag": None, "yes": True, "no": False, "big": INT64_MAX, "small": INT64_MIN},
        ]
        before, after = self.record_lines(events)
        recs = self.dump(self.j)
        self.assertEqual(len(recs), len(events))
        self.assertSeqs(recs)
        for rec, sent in zip(recs, events):
            self.check_event(rec, sent, before, after)

    def test_jsonl_ascii_escaped_input(self):
        """The same values given as \\u escapes (surrogate pairs for emoji)."""
        ev = {"event_type": "Escaped \u2713 \U0001F680", "device_id": "d\u00e9v", "event_properties": ALL_TYPES}
        line = json.dumps(ev, ensure_ascii=True)
        self.assertIn("\\ud83d", line)
        before, after = self.record_lines([line])
        recs = self.dump(self.j)
        self.assertEqual(len(recs), 1)
        self.check_event(recs[0], ev, before, after)

    def test_jsonl_many_events_keep_order_and_unique_ids(self):
        events = [{"event_type": "e%d" % i, "device_id": "d", "event_properties": {"i": i, "f": i / 7.0}}
                  for i in range(2500)]  # more than one batch of 1000
        before, after = self.record_lines(events)
        recs = self.dump(self.j)
        self.assertEqual(len(recs), len(events))
        self.assertSeqs(recs)
        for rec, sent in zip(recs, events):
            self.check_event(rec, sent, before, after)
        ids = [r["insert_id"] for r in recs]
        self.assertEqual(len(set(ids)), len(ids), "generated insert_ids are not unique")

    def test_jsonl_reference_data(self):
        """The project's realistic release-update events, unchanged."""
        if not DATA:
            self.fail("FERRY_DATA is not set")
        src = os.path.join(DATA, "demo-release-update.jsonl")
        with open(src, encoding="utf-8") as f:
            events = [json.loads(line) for line in f if line.strip()]
        self.assertEqual(len(events), 36)
        before = int(time.time() * 1000)
        self.record_ok(self.j, "--jsonl", src)
        after = int(time.time() * 1000) + 1
        recs = self.dump(self.j)
        self.assertEqual(len(recs), len(events))
        self.assertSeqs(recs)
        for rec, sent in zip(recs, events):
            self.check_event(rec, sent, before, after)

    def test_nesting_below_the_limit(self):
        """30 levels counting the event object: recorded and read back."""
        events = [{"event_type": "deep30", "device_id": "d", "x": nest(29, kind)}
                  for kind in ("object", "array", "mixed")]
        self.assertEqual(depth(events[0]), 30)
        before, after = self.record_lines(events)
        recs = self.dump(self.j)
        self.assertEqual(len(recs), 3)
        for rec, sent in zip(recs, events):
            self.check_event(rec, sent, before, after)

    def test_nesting_at_the_limit(self):
        """31 levels counting the event object (FORMAT.md: "an event object may
        nest 31 levels"): accepted by the recorder, so every reader must
        decode it too."""
        events = [{"event_type": "deep31", "device_id": "d", "x": nest(30, kind)}
                  for kind in ("object", "array", "mixed")]
        events.append({"event_type": "deep31p", "device_id": "d", "event_properties": nest(30)})
        for e in events:
            self.assertEqual(depth(e), 31)
        before, after = self.record_lines(events)
        recs = self.dump(self.j)  # dump must decode every record it was given
        self.assertEqual(len(recs), len(events))
        for rec, sent in zip(recs, events):
            self.check_event(rec, sent, before, after)

    def test_nesting_over_the_limit_is_refused(self):
        for kind in ("object", "array", "mixed"):
            ev = {"event_type": "deep32", "device_id": "d", "x": nest(31, kind)}
            self.assertEqual(depth(ev), 32)
            rc, err, p = self.jsonl(self.j, [ev])
            self.assertEqual(rc, EX_DATAERR, err)
            self.assertIn("%s:1: " % p, err)
            self.assertRegex(err, r"nested deeper than 31 levels")
        rc, _, err = self.record(self.j, "-t", "deep32", "-d", "d", "-p", "x:=" + json.dumps(nest(31)))
        self.assertEqual(rc, EX_DATAERR, err)
        self.assertIn("nested deeper than 31 levels", err)
        if os.path.exists(self.j):
            st = self.stat(self.j)
            self.assertEqual((st["recorded"], st["stored"]), (0, 0), "a refused event was stored")

    # ---- single-event flags ----------------------------------------------------

    def test_flags_every_type(self):
        props = [
            ("s", "hello"), ("num_as_string", "42"), ("eq", "a=b=c"), ("empty", ""),
            ("uni", "h\u00e9llo \U0001F600 \u65e5\u672c"),
            ("n", 42), ("z", 0), ("m1", -1), ("min", INT64_MIN), ("max", INT64_MAX),
            ("d_one", 1.0), ("d_0_1", 0.1), ("big", 1e300), ("tiny", -2.5e-300), ("sum", 0.30000000000000004),
            ("nul", None), ("t", True), ("f", False), ("arr", []), ("obj", {}),
            ("esc", "a\nb\tc\"d\\e\u0001f\u2028g"),
            ("all", ALL_TYPES), ("deep_ok", nest(28)),
        ]
        args = ["-t", "Flag event \u2713", "-d", "dev-flags", "-u", "user-flags"]
        for k, v in props:
            if isinstance(v, str) and k not in ("esc",):
                args += ["--prop", "%s=%s" % (k, v)]
            else:
                args += ["--prop", "%s:=%s" % (k, json.dumps(v, ensure_ascii=(k == "all")))]
        args += ["--user-prop", "plan=pro", "--user-prop", "seats:=3", "--user-prop", "ratio:=1.0",
                 "--field", "app_version=14.1.3", "--field", "session_id:=1700000000000",
                 "--field", "os_name=balenaOS", "--field", "extra:={\"b\":[1,null],\"a\":2.5}",
                 "--time", "1795939200000", "--insert-id", "5b0e6a0c-8a53-4c1e-9d4f-2f1e0c9b7a61"]
        before = int(time.time() * 1000)
        self.record_ok(self.j, *args)
        after = int(time.time() * 1000) + 1
        recs = self.dump(self.j)
        self.assertEqual(len(recs), 1)
        self.assertSeqs(recs)
        rec, ev = recs[0], recs[0]["event"]
        want = {
            "event_type": "Flag event \u2713", "device_id": "dev-flags", "user_id": "user-flags",
            "insert_id": "5b0e6a0c-8a53-4c1e-9d4f-2f1e0c9b7a61", "time": 1795939200000,
            "event_properties": dict(props), "user_properties": {"plan": "pro", "seats": 3, "ratio": 1.0},
            "app_version": "14.1.3", "session_id": 1700000000000, "os_name": "balenaOS",
            "extra": {"b": [1, None], "a": 2.5},
        }
        # Property order is the command line's; top-level order is the recorder's.
        self.assertStrictEqual(ev["event_properties"], want["event_properties"], "event_properties")
        self.assertStrictEqual(ev, want, "event", ordered=False)
        fields = [k for k in ev if k in ("app_version", "session_id", "os_name", "extra")]
        self.assertEqual(fields, ["app_version", "session_id", "os_name", "extra"], "--field order lost")
        self.assertTrue(before <= rec["recorded_at"] <= after)

    def test_flags_defaults(self):
        """No --insert-id: a UUID v4 made at recording; no --time: the
        recording time. Each call makes a new id."""
        ids = []
        for i in range(3):
            before = int(time.time() * 1000)
            self.record_ok(self.j, "-t", "Defaults", "-u", "user-%d" % i)
            after = int(time.time() * 1000) + 1
            rec = self.dump(self.j)[-1]
            self.check_event(rec, {"event_type": "Defaults", "user_id": "user-%d" % i}, before, after)
            ids.append(rec["insert_id"])
        self.assertEqual(len(set(ids)), 3)
        recs = self.dump(self.j)
        self.assertSeqs(recs)
        self.assertEqual([r["insert_id"] for r in recs], ids, "an insert_id changed after recording")

    def test_flags_nesting_limit(self):
        """--prop k:=JSON: event_properties is level 2, so the value may add 29
        levels (31 in all) and not 30."""
        self.record_ok(self.j, "-t", "deep31", "-d", "d", "-p", "x:=" + json.dumps(nest(29)))
        rc, _, err = self.record(self.j, "-t", "deep32", "-d", "d", "-p", "x:=" + json.dumps(nest(30)))
        self.assertEqual(rc, EX_DATAERR, err)
        self.assertIn("nested deeper than 31 levels", err)
        recs = self.dump(self.j)
        self.assertEqual([r["event"]["event_type"] for r in recs], ["deep31"])
        self.assertStrictEqual(recs[0]["event"]["event_properties"], {"x": nest(29)})


if __name__ == "__main__":
    main()
