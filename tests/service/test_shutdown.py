"""Clean shutdown of `ferry-record --listen`: on SIGTERM while clients stream,
it stops reading, records what it had taken, answers it, closes and exits 0:
afterwards each client's answers are exactly its events in the journal (all
`ok`, same SEQ), the socket file is gone and new clients are refused. A
client that never reads cannot hold the exit up past a bounded drain, and a
second signal cuts the drain short."""
import os
import signal
import socket
import threading
import time

from servicelib import EX_OK, WAIT, Client, ServiceCase, Streamer, event, line, main, marker, seq_of


class Shutdown(ServiceCase):

    def test_sigterm_while_streaming(self):
        svc = self.start()
        streams = [Streamer(self.sock, 50000, make=lambda i, k=k: event(k, i), chunk=self.rng.choice((1, 32, 300)),
                            noack=k == 0) for k in range(8)]
        for s in streams:
            s.start()
        deadline = time.monotonic() + WAIT
        while sum(len(s.answers) for s in streams) < 500 and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(self.rng.uniform(0, 0.2))
        self.assertEqual(svc.stop(signal.SIGTERM), EX_OK, svc.log()[-3000:])
        for s in streams:
            s.join(WAIT)
            self.assertFalse(s.is_alive(), "a client was not closed")
        self.assertFalse(os.path.exists(self.sock))
        with self.assertRaises(OSError):
            Client(self.sock)
        recs = self.dump()
        per = {}
        for r in recs:
            c, i = marker(r)
            per.setdefault(c, []).append((i, r["seq"]))
        for k, s in enumerate(streams):
            got = per.get(k, [])
            self.assertEqual([i for i, _ in got], list(range(len(got))), "client %d: not a prefix" % k)
            if k == 0:
                self.assertEqual(s.answers, [], "noack client got answers")
                continue
            # Everything recorded was acknowledged, and nothing else.
            self.assertEqual([seq_of(a) for a in s.answers], [q for _, q in got], "client %d" % k)
        self.assertIn("stopping (SIGTERM)", svc.log())

    def deaf(self):
        """A client that sends bad lines (each answered by a long error) and
        never reads: its answers fill the socket and wait in the service."""
        c = Client(self.sock)
        c.s.settimeout(None)
        c.sent = 0

        def send():
            bad = b'{"event_type":"t","device_id":"d","time":"not a number"}\n' * 1000
            try:
                for _ in range(200):
                    c.send(bad)
                    c.sent += len(bad)
            except OSError:
                pass
        t = threading.Thread(target=send, daemon=True)
        t.start()
        # Until it is held back: nothing more goes out for a while.
        deadline = time.monotonic() + WAIT
        last, still = -1, 0
        while still < 5 and t.is_alive():
            if time.monotonic() > deadline:
                self.fail("the deaf client was never held back")
            time.sleep(0.05)
            still = still + 1 if c.sent == last and c.sent > 0 else 0
            last = c.sent
        return c, t

    def test_client_that_never_reads(self):
        svc = self.start()
        c, t = self.deaf()
        self.assertEqual(svc.stop(signal.SIGTERM), EX_OK)  # after at most the drain time
        c.s.shutdown(socket.SHUT_RDWR)
        t.join(WAIT)
        c.close()

    def test_second_signal_cuts_the_drain(self):
        svc = self.start()
        c, t = self.deaf()
        svc.send_signal(signal.SIGTERM)
        svc.wait_log("stopping (SIGTERM)")
        svc.send_signal(signal.SIGTERM)
        self.assertEqual(svc.wait(), EX_OK)
        c.s.shutdown(socket.SHUT_RDWR)
        t.join(WAIT)
        c.close()

    def test_signals_during_the_stop_do_not_kill_it(self):
        # systemd may send SIGTERM again (or SIGHUP/SIGINT) while the service
        # is already stopping: each must be taken, never turn the clean exit
        # into a death by signal. Signals as fast as they go until it exits.
        for _ in range(5):
            svc = self.start()
            c = self.client()
            c.send_events([event(0, i) for i in range(50)])
            self.assertEqual(len(c.answers(50)), 50)
            deadline = time.monotonic() + WAIT
            while svc.proc.poll() is None and time.monotonic() < deadline:
                svc.send_signal(signal.SIGTERM)
            self.assertEqual(svc.wait(), EX_OK, svc.log()[-2000:])
            c.close()


if __name__ == "__main__":
    main()
