"""ferry-sink: deduplication on (device, insert_id), also across a restart."""
from sinklib import SinkTest, event, main


class Dedup(SinkTest):
    def test_dedup_rules(self):
        with self.sink() as s:
            status, resp, _ = s.post([event(0, insert_id="same"), event(1, insert_id="other")])
            self.assertEqual((status, resp["events_ingested"]), (200, 2))
            # the same pair again: dropped silently, still a 200 counting it
            status, resp, _ = s.post([event(0, insert_id="same")])
            self.assertEqual((status, resp["events_ingested"]), (200, 1))
            # the same insert_id on another device is another event
            status, _, _ = s.post([event(0, insert_id="same", device="device-0002")])
            self.assertEqual(status, 200)
            # without insert_id: always accepted
            s.post([event(5, insert_id=False), event(5, insert_id=False)])
            # a duplicate inside one request: the first copy wins
            s.post([event(6, insert_id="twice", n=1), event(6, insert_id="twice", n=2)])
            # device_id absent: user_id is the device
            s.post([{"event_type": "a", "user_id": "user-00001", "insert_id": "u1"},
                    {"event_type": "a", "user_id": "user-00001", "insert_id": "u1"},
                    {"event_type": "a", "user_id": "user-00002", "insert_id": "u1"}])
            # escapes are decoded before comparing
            s.post(b'{"api_key":"k","events":[{"event_type":"a","device_id":"device-0001","insert_id":"\\u0073ame"}]}')
            st = s.stats()
            self.assertEqual((st["events_received"], st["events_accepted"], st["duplicates"]), (12, 8, 4))
            lines = s.out_lines()
            self.assertEqual(len(lines), 8)
            self.assertEqual([e.get("n") for e in lines if e.get("insert_id") == "twice"], [1])

    def test_restart_reloads_out(self):
        first = [event(i) for i in range(100)]
        with self.sink() as s:
            self.assertEqual(s.post(first)[0], 200)
        self.assertEqual(len(self.sink().out_lines()), 100)
        with self.sink() as s:
            status, resp, _ = s.post(first[50:] + [event(i) for i in range(100, 110)])
            self.assertEqual((status, resp["events_ingested"]), (200, 60))
            st = s.stats()
            self.assertEqual((st["events_accepted"], st["duplicates"]), (10, 50))
            self.assertEqual(st["insert_ids_known"], 110)
            self.assertEqual(len(s.out_lines()), 110)

    def test_torn_last_line_is_cut(self):
        with self.sink() as s:
            s.post([event(0), event(1)])
        with open(self.out, "ab") as f:
            f.write(b'{"event_type":"a","device_id":"device-0001","insert_id":"iid-dev')  # died mid-write
        with self.sink() as s:
            self.assertEqual(len(s.out_lines()), 2)
            status, resp, _ = s.post([event(1), event(2)])
            self.assertEqual(status, 200)
            self.assertEqual(s.stats()["duplicates"], 1)
            self.assertEqual([e["insert_id"] for e in s.out_lines()],
                             ["iid-device-0001-000000", "iid-device-0001-000001", "iid-device-0001-000002"])
            self.assertIn("torn last line", s.stderr_text())


if __name__ == "__main__":
    main()
