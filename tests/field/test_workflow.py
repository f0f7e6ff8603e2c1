"""The field workflow, end to end: a device's journal with pending events is
exported as a capture, the capture is verified, imported on "another
machine" (another directory) and replayed to ferry-sink from there; later the
device replays its own journal. The sink holds every event exactly once,
because insert_ids travel with the events. Then the same with a capture made
by a 32-bit (i386) build, committed under tests/field/data."""
import json
import os
import shutil
import unittest

from fieldlib import DATA, FieldCase, device, events, header_fields


class Workflow(FieldCase):
    def test_carry_replay_elsewhere_then_on_device(self):
        dev, laptop = self.jdir("device"), self.jdir("laptop")
        recorded_evs = []
        for d in range(3):  # a gateway journal with three devices
            recorded_evs += events(150, devices=1, start=d * 1000, prefix="d%d-" % d)
            for e in recorded_evs[-150:]:
                e["device_id"] = device(10 + d)
        self.record_into(dev, recorded_evs)
        recorded = self.dump_of(dev)
        self.assertEqual(len(recorded), 450)
        # On the device: export, note the hash.
        cap = self.export(dev, "capture", "device-0042.fyc")
        # The file is carried away (SD card, USB, scp): a copy elsewhere.
        carried = os.path.join(self.tmp, "usb", "device-0042.fyc")
        os.makedirs(os.path.dirname(carried))
        shutil.copyfile(cap, carried)
        self.assert_verify_clean(carried)
        res = self.import_capture(carried, laptop)
        self.assertEqual((res["imported"], res["pending"]), (450, 450))
        with self.sink() as sink:
            # From the laptop: everything arrives.
            p = self.replay_journal(laptop, sink, "--json", "--batch-api")
            self.assertEqual(json.loads(p.stdout)["delivered"], 450)
            self.assert_exactly_once(recorded, self.accepted())
            # Later the device itself comes online and replays its own
            # journal: the same events, same insert_ids, counted once.
            p = self.replay_journal(dev, sink, "--json")
            self.assertEqual(json.loads(p.stdout)["delivered"], 450)
            self.assert_exactly_once(recorded, self.accepted())
        self.assertEqual(self.stat_of(dev)["pending"], 0)
        self.assertEqual(self.stat_of(laptop)["pending"], 0)
        # Importing the capture again on the laptop sends nothing more.
        self.assertEqual(self.import_capture(carried, laptop)["imported"], 0)
        self.assertEqual(self.stat_of(laptop)["pending"], 0)

    def test_capture_from_32bit_build(self):
        """tests/field/data/golden32.fyc was made by an i386 build
        (golden32.info, tests/field/golden32/make-golden32.sh): 40 events of
        two devices, 10 delivered, 1 dead, 29 pending."""
        golden = os.path.join(DATA, "golden32.fyc")
        with open(os.path.join(DATA, "golden32.expected.jsonl")) as f:
            expected_text = f.read()
        expected = [json.loads(l) for l in expected_text.split("\n") if l]
        with open(golden, "rb") as f:
            h = header_fields(f.read())
        self.assertEqual((h["version"], h["count"], h["destinations"]), ((1, 0), 40, ["amplitude"]))
        self.assertEqual(len(h["devices"]), 2)
        self.assert_verify_clean(golden)
        laptop = self.jdir("laptop")
        res = self.import_capture(golden, laptop)
        self.assertEqual((res["imported"], res["pending"], res["delivered"], res["dead"]), (40, 29, 10, 1))
        # Byte for byte what the 32-bit build's dump printed.
        self.assertEqual(self.dump_text(laptop), expected_text)
        st = self.stat_of(laptop)
        self.assertEqual((st["pending"], st["dead"], st["stored"]), (29, 1, 40))
        dead = self.tool(laptop, "dead", "--json", check=0).stdout.decode().splitlines()
        self.assertEqual([(json.loads(l)["seq"], json.loads(l)["status"]) for l in dead], [(12, 400)])
        self.assert_verify_clean(laptop)
        with self.sink() as sink:
            p = self.replay_journal(laptop, sink, "--json")
            self.assertEqual(json.loads(p.stdout)["delivered"], 29)
        pending = [r for r in expected if r["seq"] > 10 and r["seq"] != 12]
        accepted = self.accepted()
        ids = [e["insert_id"] for e in accepted]
        self.assertEqual(sorted(ids), sorted(r["insert_id"] for r in pending))
        want = {r["insert_id"]: r["event"] for r in pending}
        for e in accepted:
            self.assertEqual(e, want[e["insert_id"]], "an event arrived changed")
        self.assertEqual(self.import_capture(golden, laptop)["imported"], 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
