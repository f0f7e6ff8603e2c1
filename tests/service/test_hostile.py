"""Hostile clients while good ones record: partial lines and disconnects
(clean and reset), 10 MB lines, invalid JSON, binary garbage, a connection
flood past --max-clients, a client that never reads its answers, a flood of
bad lines from a client that does not read either, a byte-at-a-time sender.
The good clients keep being served throughout (every one of their events is
answered ok and recorded under that SEQ), every hostile connection gets the
answers it is owed, and the service stops cleanly at the end. The garbage
comes from a seeded RNG (the seed is printed; FERRY_TEST_SEED=N reproduces)."""
import socket
import struct
import threading
import time

from servicelib import (EX_OK, WAIT, Client, ServiceCase, Streamer, event, line, main, marker, seq_of)

MAX_CLIENTS = 64


class Steady(threading.Thread):
    """A good client: one event at a time, until told to stop."""

    def __init__(self, path, k):
        super().__init__(daemon=True)
        self.c = Client(path)
        self.k = k
        self.acked = []  # seqs, event i got acked[i]
        self.bad = []
        self.stop = threading.Event()

    def run(self):
        i = 0
        try:
            while not self.stop.is_set():
                self.c.send(line(event(self.k, i)))
                a = self.c.answer()
                if a is None or not a.startswith("ok "):
                    self.bad.append(a)
                    return
                self.acked.append(seq_of(a))
                i += 1
        except OSError as e:
            self.bad.append(repr(e))
        finally:
            self.c.close()


class Hostile(ServiceCase):

    def setUp(self):
        super().setUp()
        self.svc = self.start("--max-clients", str(MAX_CLIENTS), "--max-size", "256M")
        self.steady = [Steady(self.sock, 1000 + k) for k in range(3)]
        for s in self.steady:
            s.start()
        self.streams = [Streamer(self.sock, 3000, make=lambda i, k=k: event(2000 + k, i), chunk=100)
                        for k in range(2)]
        for s in self.streams:
            s.start()

    def progress(self, n=20):
        """Waits until every steady client got n more answers: the service
        still serves good clients."""
        want = [len(s.acked) + n for s in self.steady]
        deadline = time.monotonic() + WAIT
        while any(len(s.acked) < w for s, w in zip(self.steady, want)):
            for s in self.steady:
                self.assertFalse(s.bad, "a good client was refused: %r" % s.bad)
                self.assertTrue(s.is_alive(), "a good client stopped")
            if time.monotonic() > deadline:
                self.fail("good clients got no answers within %ds" % WAIT)
            time.sleep(0.005)

    def check_good_clients(self):
        for s in self.steady:
            s.stop.set()
        for s in self.steady + self.streams:
            s.join(WAIT)
            self.assertFalse(s.is_alive())
        for s in self.steady:
            self.assertEqual(s.bad, [])
        for s in self.streams:
            self.assertIsNone(s.error)
            self.assertEqual(len(s.answers), 3000)
        recs = {marker(r): r["seq"] for r in self.dump()}
        for s in self.steady:
            for i, q in enumerate(s.acked):
                self.assertEqual(recs.get((s.k, i)), q)
        for k, s in enumerate(self.streams):
            for i, a in enumerate(s.answers):
                self.assertEqual(recs.get((2000 + k, i)), seq_of(a))
        # A fresh client is served; then a clean stop.
        c = self.client()
        c.send_events([event(9999, 0)])
        self.assertTrue(c.answer().startswith("ok "))
        c.close()
        print("service peak RSS: %s kB" % self.svc.status("VmHWM"), flush=True)
        self.assertEqual(self.svc.stop(), EX_OK, self.svc.log()[-3000:])

    def test_everything_at_once(self):
        rng = self.rng

        # Partial lines, then a clean close or a reset.
        for k in range(20):
            c = Client(self.sock)
            c.send(line(event(5000, k))[:rng.randrange(1, 60)])
            if k % 2:
                c.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
        self.progress()

        # 10 MB lines: refused unbuffered, and the connection goes on.
        c = self.client()
        head = b'{"event_type":"t","device_id":"d","p":"'
        chunk = b"a" * 65536
        c.send(head)
        for _ in range(160):
            c.send(chunk)
        c.send(b'"}\n' + b"z" * (10 << 20) + b"\n" + line(event(5001, 0)))
        self.assertEqual(c.answer(), "error line 1: longer than 1048576 bytes")
        self.assertEqual(c.answer(), "error line 2: longer than 1048576 bytes")
        self.assertTrue(c.answer().startswith("ok "))
        self.progress()

        # Invalid JSON, then a valid line on the same connection.
        c = self.client()
        bad = [b"{", b"}", b"nul", b'{"a":}', b"[" * 5000, b'"str"', b"12", b'{"event_type":1,"device_id":"d"}',
               b'{"event_type":"t","device_id":"d","time":1.5}', b"\x00\x01\x02", b"{\"e\":\"\\ud800\"}"]
        lines = [rng.choice(bad) for _ in range(300)]
        c.send(b"\n".join(lines) + b"\n" + line(event(5002, 0)))
        ans = c.answers(301)
        self.assertTrue(all(a.startswith("error line ") for a in ans[:300]), [a for a in ans if "error" not in a][:3])
        self.assertTrue(ans[300].startswith("ok "))
        self.progress()

        # Binary garbage: each non-blank line gets one error, then a valid line.
        c = self.client()
        garbage = bytes(rng.randrange(256) for _ in range(1 << 18)) + b"\n"
        expect = 0
        for ln in garbage.split(b"\n")[:-1]:
            if ln.endswith(b"\r"):
                ln = ln[:-1]
            if ln.strip(b" \t"):
                expect += 1
        c.send(garbage + line(event(5003, 0)))
        ans = c.answers(expect + 1)
        self.assertTrue(all(a.startswith("error ") for a in ans[:-1]))
        self.assertTrue(ans[-1].startswith("ok "), ans[-1])
        self.progress()

        # A connection flood past --max-clients: the extra ones are told so.
        flood, refused = [], 0
        for _ in range(3 * MAX_CLIENTS):
            try:
                flood.append(Client(self.sock, timeout=WAIT))
            except OSError:
                pass  # the listen backlog may overflow: refused by the kernel
        for f in flood:
            try:
                f.send(line(event(5004, 0)))
            except OSError:
                pass  # already turned away and closed
        for f in flood:
            try:
                a = f.answer()
            except OSError:
                a = None
            if a == "error too many clients; try again later":
                refused += 1
            else:
                self.assertTrue(a is None or a.startswith("ok "), a)
        self.assertGreater(refused, 0)
        for f in flood:
            f.close()
        self.progress()

        # A client that never reads its answers, streaming until blocked.
        deaf = Client(self.sock)
        deaf.s.settimeout(None)
        blocked = threading.Event()

        def deaf_sender():
            try:
                for k in range(0, 200000, 500):
                    deaf.send(b"".join(line(event(6000, i)) for i in range(k, k + 500)))
            except OSError:
                pass
            blocked.set()
        t = threading.Thread(target=deaf_sender, daemon=True)
        t.start()
        self.progress(100)  # served while the deaf client is stuck on backpressure
        self.assertFalse(blocked.is_set(), "the deaf client was never held back")

        # A flood of bad lines from a client that does not read either, then
        # a reset.
        noisy = Client(self.sock)
        noisy.s.settimeout(2)
        try:
            for _ in range(200):
                noisy.send(b"x\n" * 50000)
        except OSError:
            pass  # held back: the service stopped reading it
        self.progress(100)
        noisy.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        noisy.close()

        # Byte at a time.
        c = self.client()
        for b in line(event(5005, 0)):
            c.send(bytes([b]))
            time.sleep(0.0005)
        self.assertTrue(c.answer().startswith("ok "))

        deaf.s.shutdown(socket.SHUT_RDWR)
        t.join(WAIT)
        deaf.close()
        self.progress()
        self.check_good_clients()


class OutOfDescriptors(ServiceCase):

    def test_fd_limit(self):
        """Connections past the process's descriptor limit are turned away
        (with the spare descriptor), not left to spin; the service goes on."""
        import resource

        def low_limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))
        svc = self.start("--max-clients", "1000", preexec_fn=low_limit)
        good = self.client()
        conns, told = [], 0
        for _ in range(80):
            try:
                conns.append(Client(self.sock))
            except OSError:
                pass
        for c in conns:
            try:
                c.send(line(event(1, 0)))
            except OSError:
                pass  # turned away and closed already: its answer is still there to read
            try:
                a = c.answer()
            except OSError:
                a = None
            if a == "error out of file descriptors; try again later":
                told += 1
            else:
                self.assertTrue(a is None or a.startswith("ok "), a)
            c.close()
        self.assertGreater(told, 0, svc.log())
        self.assertIn("out of file descriptors", svc.log())
        good.send(line(event(2, 0)))
        self.assertTrue(good.answer().startswith("ok "))
        self.assertEqual(svc.stop(), EX_OK)


if __name__ == "__main__":
    main()
