"""ferry-replay to an HTTPS ferry-sink with a self-signed certificate made
here with `openssl req -x509` (Debian package openssl): refused without its
CA (exit 78, configuration: retrying cannot help; nothing moves, events stay
pending), delivered exactly once with --cacert, refused when the certificate
names another host even though its CA is given, and refused when the CA file
is missing. Verification is never turned off: there is no option for it."""
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from replaylib import REPLAY, ReplayCase, events  # noqa: E402

EX_CONFIG = 78


def make_cert(d, name, san):
    key, cert = os.path.join(d, name + ".key"), os.path.join(d, name + ".pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=" + san.split(",")[0].split(":")[1],
                    "-addext", "subjectAltName=" + san], check=True, capture_output=True, timeout=120)
    return cert, key


class TlsTest(ReplayCase):
    def https(self, sink):
        return "https://127.0.0.1:%d" % sink.port

    def test_verification(self):
        cert, key = make_cert(self.tmp, "good", "IP:127.0.0.1,DNS:localhost")
        evs = events(30, prefix="tls")
        self.record(evs)
        recorded = self.dump()
        with self.sink("--tls-cert", cert, "--tls-key", key) as sink:
            # Not trusted: the system's CAs do not know this certificate.
            p = self.replay(self.https(sink), "--retry-for", "30", "--json")
            self.assertEqual(p.returncode, EX_CONFIG, p.stderr.decode(errors="replace"))
            self.assertIn(b"certificate", p.stderr)
            self.assertIn(b"--cacert", p.stderr)
            self.assertEqual(self.stat()["pending"], 30)
            self.assertEqual(self.accepted(), [])
            # A missing CA file is a configuration error too.
            p = self.replay(self.https(sink), "--cacert", os.path.join(self.tmp, "nope.pem"))
            self.assertEqual(p.returncode, EX_CONFIG, p.stderr.decode(errors="replace"))
            self.assertEqual(self.stat()["pending"], 30)
            # Trusted: everything arrives once.
            p = self.replay(self.https(sink), "--cacert", cert, check=0)
            self.assert_exactly_once(recorded, self.accepted())
            self.assertEqual(self.stat()["pending"], 0)
            # localhost is in the certificate too
            self.record(events(5, prefix="tls2"))
            self.replay("https://localhost:%d" % sink.port, "--cacert", cert, check=0)
            self.assertEqual(len(self.accepted()), 35)

    def test_host_name_mismatch(self):
        cert, key = make_cert(self.tmp, "other", "DNS:other.example")
        self.record(events(10, prefix="mismatch"))
        with self.sink("--tls-cert", cert, "--tls-key", key) as sink:
            p = self.replay(self.https(sink), "--cacert", cert)
            self.assertEqual(p.returncode, EX_CONFIG, p.stderr.decode(errors="replace"))
            self.assertEqual(self.stat()["pending"], 10)
            self.assertEqual(self.accepted(), [])

    def test_cleartext_warning(self):
        self.record(events(3, prefix="clear"))
        with self.sink() as sink:  # loopback: no warning
            p = self.replay(sink, check=0)
            self.assertNotIn(b"unencrypted", p.stderr)
        # Anything else over http:// is said loudly (0.0.0.0:1 refuses at once).
        self.record(events(1, prefix="clear2"))
        p = self.replay("http://0.0.0.0:1", "--retry-for", "1", "--max-retry-delay", "1")
        self.assertEqual(p.returncode, 75)
        self.assertIn(b"WARNING: http://0.0.0.0:1 is plain HTTP", p.stderr)

    def test_no_option_disables_verification(self):
        out = subprocess.run([REPLAY, "--help"], capture_output=True).stdout.decode()
        for word in ("insecure", "no-verify", "skip-verify"):
            self.assertNotIn(word, out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
