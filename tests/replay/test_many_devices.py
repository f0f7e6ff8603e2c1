"""A journal with more distinct devices than the replayer remembers at once
(4096: idle ones are forgotten, so a --follow replayer's memory does not
grow with every device or user id it ever met): every event still arrives
exactly once, paced per device, with some devices throttled (429) on the
way."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from replaylib import ReplayCase  # noqa: E402


class ManyDevices(ReplayCase):
    def test_more_devices_than_remembered(self):
        evs = [{"event_type": "Service start", "device_id": "many-device-%05d" % (i % 6000),
                "time": 1700000000000 + i, "event_properties": {"marker": "m%d" % i}} for i in range(9000)]
        self.record(evs)
        recorded = self.dump()
        with self.sink("--throttle", "0.05", "--seed", str(self.seed)) as sink:
            self.replay(sink, "--throttle-wait", "1", "--retry-for", "600", check=0)
        self.assert_exactly_once(recorded, self.accepted())


if __name__ == "__main__":
    unittest.main(verbosity=2)
