"""The socket of `ferry-record --listen`: created 0660 whatever the umask,
--socket-mode / --socket-group / --socket-owner, a live socket is never
replaced (exit 69), a stale one is, a file that is not a socket is left alone
(exit 73), the socket is removed at a clean exit, systemd socket activation
(LISTEN_PID/LISTEN_FDS, descriptor 3) and readiness notification
(NOTIFY_SOCKET), --max-clients, and the usage errors."""
import grp
import os
import pwd
import signal
import socket
import stat
import time

from servicelib import (EX_CANTCREAT, EX_CONFIG, EX_OK, EX_UNAVAILABLE, EX_USAGE, RECORD, WAIT, Client,
                        ServiceCase, base_env, event, main, seq_of)


def umask_of(mask):
    return lambda: os.umask(mask)


class Socket(ServiceCase):

    def mode(self):
        return stat.S_IMODE(os.stat(self.sock).st_mode)

    def test_mode_0660_whatever_the_umask(self):
        for mask in (0o000, 0o077, 0o022):
            svc = self.start(preexec_fn=umask_of(mask))
            self.assertTrue(stat.S_ISSOCK(os.lstat(self.sock).st_mode))
            self.assertEqual(self.mode(), 0o660, "umask %03o" % mask)
            self.assertEqual(svc.stop(), EX_OK)
            self.assertFalse(os.path.exists(self.sock), "the socket was not removed at exit")

    def test_socket_mode_and_group(self):
        gid = os.getgid()
        name = grp.getgrgid(gid).gr_name
        svc = self.start("--socket-mode", "600", "--socket-group", name)
        self.assertEqual(self.mode(), 0o600)
        self.assertEqual(os.stat(self.sock).st_gid, gid)
        svc.stop()
        svc = self.start("--socket-mode", "0666", "--socket-group", str(gid))
        self.assertEqual(self.mode(), 0o666)
        svc.stop()

    def test_socket_owner_and_other_group_as_root(self):
        if os.geteuid() != 0:
            self.skipTest("needs root")
        nobody = pwd.getpwnam("nobody")
        other = next((g for g in grp.getgrall() if g.gr_gid not in (0, os.getgid())), None)
        args = ["--socket-owner", "nobody"] + (["--socket-group", other.gr_name] if other else [])
        svc = self.start(*args)
        st = os.stat(self.sock)
        self.assertEqual(st.st_uid, nobody.pw_uid)
        if other:
            self.assertEqual(st.st_gid, other.gr_gid)
        c = self.client()  # root may still connect
        c.send_events([event(1, 0)])
        self.assertEqual(seq_of(c.answer()), 1)
        svc.stop()

    def test_bad_option_values(self):
        for args, what in ((["--socket-mode", "0999"], "--socket-mode"), (["--socket-mode", "rw"], "--socket-mode"),
                           (["--socket-mode", "1777"], "--socket-mode"),
                           (["--socket-group", "no-such-group-xyz"], "no such group"),
                           (["--socket-owner", "no-such-user-xyz"], "no such user"),
                           (["--max-clients", "0"], "--max-clients"), (["--max-clients", "x"], "--max-clients")):
            rc, _, err = self.run_tool([RECORD, "--listen", self.sock, "-j", self.journal] + args)
            self.assertEqual(rc, EX_USAGE, err)
            self.assertIn(what, err)
            self.assertFalse(os.path.exists(self.sock))
            self.assertFalse(os.path.exists(self.journal), "a usage error created the journal")

    def test_usage_errors(self):
        cases = (
            ["--listen", self.sock, "--jsonl", "-"],
            ["--listen", self.sock, "--type", "x", "--device-id", "d"],
            ["--listen", self.sock, "--atomic"],
            ["--socket-mode", "0600", "--type", "x", "--device-id", "d"],
            ["--max-clients", "5", "--jsonl", "-"],
            ["--listen", "/" + "x" * 200],
            ["--listen", ""],
        )
        for args in cases:
            rc, _, err = self.run_tool([RECORD, "-j", self.journal] + args)
            self.assertEqual(rc, EX_USAGE, "%s: %s" % (args, err))
            self.assertIn("Try 'ferry-record --help'", err)
        rc, out, _ = self.run_tool([RECORD, "--help"])
        self.assertEqual(rc, EX_OK)
        for opt in (b"--listen PATH", b"--socket-mode", b"--socket-group", b"--socket-owner", b"--max-clients"):
            self.assertIn(opt, out)

    def test_live_socket_is_not_replaced(self):
        first = self.start()
        rc, _, err = self.run_tool([RECORD, "--listen", self.sock, "-j", self.path("other")])
        self.assertEqual(rc, EX_UNAVAILABLE, err)
        self.assertIn("another service is listening on", err)
        c = self.client()  # the first one still serves
        c.send_events([event(1, 0)])
        self.assertEqual(seq_of(c.answer()), 1)
        self.assertEqual(first.stop(), EX_OK)

    def test_stale_socket_is_replaced(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(self.sock)
        s.close()  # the file stays, nobody listens: what a crash leaves
        svc = self.start()
        self.assertIn("removed a stale socket", svc.log())
        c = self.client()
        c.send_events([event(1, 0)])
        self.assertEqual(seq_of(c.answer()), 1)

    def test_not_a_socket_is_left_alone(self):
        with open(self.sock, "w") as f:
            f.write("precious")
        rc, _, err = self.run_tool([RECORD, "--listen", self.sock, "-j", self.journal])
        self.assertEqual(rc, EX_CANTCREAT, err)
        self.assertIn("is not a socket", err)
        with open(self.sock) as f:
            self.assertEqual(f.read(), "precious")
        rc, _, err = self.run_tool([RECORD, "--listen", self.path("no", "such", "dir", "s.sock"), "-j", self.journal])
        self.assertEqual(rc, EX_CANTCREAT, err)

    def test_signals_stop_cleanly(self):
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            svc = self.start()
            c = Client(self.sock)
            c.send_events([event(1, 0)])
            c.answer()
            self.assertEqual(svc.stop(sig), EX_OK, svc.log())
            self.assertIsNone(c.answer())  # closed
            c.close()
            self.assertFalse(os.path.exists(self.sock))
            self.assertIn("stopped:", svc.log())

    def activated(self, nfds=1, extra_env=None):
        """Starts the service the way systemd does: the listening socket on
        descriptor 3, LISTEN_PID = its pid, LISTEN_FDS."""
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ls.bind(self.sock)
        ls.listen(16)
        os.chmod(self.sock, 0o640)
        self.addCleanup(ls.close)
        script = 'exec 3<&%d; LISTEN_PID=$$ LISTEN_FDS=%d exec "$0" "$@"' % (ls.fileno(), nfds)
        argv = ["/bin/sh", "-c", script, RECORD, "--listen", self.sock, "-j", self.journal]
        env = base_env(**(extra_env or {}))
        svc = self.start(argv=argv, pass_fds=(ls.fileno(),), env=env, wait=False)
        if nfds == 1:
            svc.wait_log("listening on")
        return svc

    def test_socket_activation(self):
        svc = self.activated()
        self.assertIn("socket from systemd", svc.log())
        c = self.client()
        c.send_events([event(1, 0), event(1, 1)])
        self.assertEqual([seq_of(a) for a in c.answers(2)], [1, 2])
        self.assertEqual(svc.stop(), EX_OK)
        # systemd's socket: neither replaced nor removed, mode untouched.
        self.assertTrue(stat.S_ISSOCK(os.lstat(self.sock).st_mode))
        self.assertEqual(self.mode(), 0o640)

    def test_socket_activation_needs_one_socket(self):
        svc = self.activated(nfds=2)
        self.assertEqual(svc.wait(), EX_CONFIG, svc.log())
        self.assertIn("exactly one socket", svc.log())

    def test_readiness_notification(self):
        ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        ns.bind(self.path("notify"))
        ns.settimeout(WAIT)
        self.addCleanup(ns.close)
        svc = self.start(env=base_env(NOTIFY_SOCKET=self.path("notify")))
        self.assertEqual(ns.recv(100), b"READY=1")
        svc.send_signal(signal.SIGTERM)
        self.assertEqual(ns.recv(100), b"STOPPING=1")
        self.assertEqual(svc.wait(), EX_OK)

    def test_max_clients(self):
        self.start("--max-clients", "3")
        held = [self.served_client(k) for k in range(3)]
        extra = self.client()
        self.assertEqual(extra.answer(), "error too many clients; try again later")
        self.assertIsNone(extra.answer())
        held[0].close()
        self.served_client(9)  # once one has gone, a new client is taken again

    def served_client(self, k):
        """A client the service took. Bounded retries: the service learns
        about connections that closed (its readiness probes too)
        asynchronously."""
        for _ in range(1000):
            c = Client(self.sock)
            self.addCleanup(c.close)
            try:
                c.send_events([event(k, 0)])
            except OSError:
                pass
            a = c.answer()
            if a and a.startswith("ok "):
                return c
            self.assertEqual(a, "error too many clients; try again later")
            c.close()
            time.sleep(0.01)
        self.fail("no client was taken")


if __name__ == "__main__":
    main()
