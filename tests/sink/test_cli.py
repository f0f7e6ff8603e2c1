"""ferry-sink: command line, exit codes, signals."""
import os
import signal
import socket
import subprocess

from sinklib import SINK, SinkTest, event, main


def run(*args):
    p = subprocess.run([SINK, *args], capture_output=True, timeout=60)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


class Cli(SinkTest):
    def test_help_and_version(self):
        rc, out, err = run("--help")
        self.assertEqual((rc, err), (0, ""))
        for opt in ("--listen HOST:PORT", "--out FILE", "--api-key KEY", "--api-key-file FILE", "--port-file FILE",
                    "--seed N", "--fail RATE:STATUS", "--fail-after RATE:STATUS", "--drop-before RATE",
                    "--drop-after RATE", "--slow RATE:MS", "--throttle RATE", "--eps-limit N",
                    "--retry-after SECONDS", "--gzip-unsupported", "GET /stats", "Deduplication"):
            self.assertIn(opt, out)
        rc, out, err = run("--version")
        self.assertEqual(rc, 0)
        self.assertRegex(out, r"^ferry-sink \d+\.\d+\.\d+\n$")

    def test_usage_errors(self):
        bad = [
            [],
            ["--listen"],
            ["--listen", "127.0.0.1"],
            ["--listen", "127.0.0.1:99999"],
            ["--listen", "127.0.0.1:0", "extra"],
            ["--listen", "127.0.0.1:0", "--bogus"],
            ["--listen", "127.0.0.1:0", "--fail", "1.5:500"],
            ["--listen", "127.0.0.1:0", "--fail", "0.5:200"],
            ["--listen", "127.0.0.1:0", "--fail", "0.5"],
            ["--listen", "127.0.0.1:0", "--fail-after", "0.5:abc"],
            ["--listen", "127.0.0.1:0", "--drop-before", "-0.1"],
            ["--listen", "127.0.0.1:0", "--drop-after", "x"],
            ["--listen", "127.0.0.1:0", "--slow", "0.5"],
            ["--listen", "127.0.0.1:0", "--throttle", "2"],
            ["--listen", "127.0.0.1:0", "--eps-limit", "0"],
            ["--listen", "127.0.0.1:0", "--seed", "-1"],
            ["--listen", "127.0.0.1:0", "--retry-after", "soon"],
            ["--listen", "127.0.0.1:0", "--api-key", ""],
            ["--listen", "127.0.0.1:0", "--max-events", "0"],
        ]
        for args in bad:
            rc, out, err = run(*args)
            self.assertEqual(rc, 64, (args, err))
            self.assertTrue(err.startswith("ferry-sink: "), (args, err))
            self.assertEqual(out, "")

    def test_other_exit_codes(self):
        rc, _, err = run("--listen", "127.0.0.1:0", "--api-key-file", self.dir + "/missing")
        self.assertEqual(rc, 66, err)
        rc, _, err = run("--listen", "127.0.0.1:0", "--out", self.dir + "/no/such/dir/events.jsonl")
        self.assertEqual(rc, 73, err)
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        try:
            rc, _, err = run("--listen", "127.0.0.1:%d" % busy.getsockname()[1])
        finally:
            busy.close()
        self.assertEqual(rc, 69, err)
        self.assertIn("cannot listen on", err)

    def test_sigterm_and_sigint(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            s = self.sink().start()
            idle = s.conn()
            self.assertEqual(s.post([event(sig)], conn=idle)[0], 200)  # leaves an idle keep-alive connection
            self.assertEqual(s.stop(sig), 0)
            idle.close()
        self.assertEqual(len(self.sink().out_lines()), 2)
        self.assertEqual([f for f in os.listdir(self.dir) if f.startswith("port.tmp")], [])


if __name__ == "__main__":
    main()
