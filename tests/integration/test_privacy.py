"""The record-time privacy policy (--allow, --deny, --redact) through the real
ferry-record in each of its modes (one event, --jsonl, --listen): what the
policy removes must never reach the disk (the journal's files are searched
byte by byte for the secrets) and ferry-journal stat counts what it did."""
import json
import os
import secrets
import signal
import socket
import subprocess
import time

from ferrytest import EX_OK, EX_USAGE, RECORD, FerryTestCase, base_env, main

WAIT = 120  # seconds: bound on any wait for the service


class PrivacyTest(FerryTestCase):

    def setUp(self):
        super().setUp()
        tag = secrets.token_hex(6)
        # Distinct secrets, none of which may be found in the journal.
        self.token = "tok-" + tag + "-Zq9"
        self.email = "alice-" + tag + "@example.org"
        self.host = "db-" + tag + ".internal.example"
        self.env_secret = "pw-" + tag

    def assertNotOnDisk(self, journal, *needles):
        """No journal file holds any needle, in any encoding we would write."""
        names = sorted(os.listdir(journal))
        self.assertIn("data.mdb", names)
        for name in names:
            with open(os.path.join(journal, name), "rb") as f:
                data = f.read()
            for n in needles:
                self.assertNotIn(n.encode("utf-8"), data, "%r found in %s" % (n, name))

    def policy_args(self):
        return ["--deny", "event_properties.service.token", "--deny", "user_properties.email",
                "--deny", "event_properties.services.env", "--redact", r"db-[0-9a-f]+\.internal\.example"]

    def secret_event(self, i):
        return {"event_type": "Service install", "device_id": "dev-%03d" % i,
                "event_properties": {"service": {"appId": i, "serviceName": "api", "token": self.token},
                                     "services": [{"name": "a", "env": {"PASSWORD": self.env_secret}},
                                                  {"name": "b"}],
                                     "error": "connect to %s:5432 failed" % self.host},
                "user_properties": {"email": self.email, "plan": "pro"}}

    def check_clean(self, rec, i):
        ev = rec["event"]
        self.assertEqual(ev["device_id"], "dev-%03d" % i)
        self.assertEqual(ev["event_properties"],
                         {"service": {"appId": i, "serviceName": "api"},
                          "services": [{"name": "a"}, {"name": "b"}],
                          "error": "connect to [redacted]:5432 failed"})
        self.assertEqual(ev["user_properties"], {"plan": "pro"})

    # ---- the three modes ----------------------------------------------------

    def test_one_event(self):
        j = self.path("j")
        ev = self.secret_event(1)
        p = ev["event_properties"]
        self.record_ok(j, "-t", ev["event_type"], "-d", ev["device_id"],
                       "--prop", "service:=" + json.dumps(p["service"]),
                       "--prop", "services:=" + json.dumps(p["services"]),
                       "--prop", "error=" + p["error"],
                       "--user-prop", "email=" + self.email, "--user-prop", "plan=pro",
                       *self.policy_args())
        recs = self.dump(j)
        self.assertEqual(len(recs), 1)
        self.check_clean(recs[0], 1)
        st = self.stat(j)
        self.assertEqual((st["props_dropped"], st["values_redacted"]), (3, 1))
        self.assertNotOnDisk(j, self.token, self.email, self.host, self.env_secret)
        rc, out, _ = self.journal_tool(j, "stat")
        self.assertEqual(rc, EX_OK)
        self.assertRegex(out.decode(), r"props dropped +3\b")
        self.assertRegex(out.decode(), r"values redacted +1\b")

    def test_jsonl(self):
        j = self.path("j")
        n = 40
        rc, err, _ = self.jsonl(j, [self.secret_event(i) for i in range(n)], *self.policy_args())
        self.assertEqual(rc, EX_OK, err)
        recs = self.dump(j)
        self.assertEqual(len(recs), n)
        for i, r in enumerate(recs):
            self.check_clean(r, i)
        st = self.stat(j)
        self.assertEqual((st["props_dropped"], st["values_redacted"]), (3 * n, n))
        self.assertNotOnDisk(j, self.token, self.email, self.host, self.env_secret)
        # A second run adds to the counters.
        rc, err, _ = self.jsonl(j, [self.secret_event(n)], "--atomic", *self.policy_args())
        self.assertEqual(rc, EX_OK, err)
        st = self.stat(j)
        self.assertEqual((st["recorded"], st["props_dropped"], st["values_redacted"]),
                         (n + 1, 3 * (n + 1), n + 1))

    def test_allow_list(self):
        # balena's supervisor kept only these keys of event_properties.
        j = self.path("j")
        allow = ["service.appId", "service.serviceName", "image.name", "error"]
        args = []
        for a in allow:
            args += ["--allow", "event_properties." + a]
        ev = {"event_type": "Image download", "device_id": "d",
              "event_properties": {"service": {"appId": 7, "serviceName": "api",
                                               "config": {"environment": {"TOKEN": self.token}}},
                                   "image": {"name": "registry/api", "auth": self.env_secret},
                                   "error": "pull from %s denied" % self.host,
                                   "hostname": self.host},
              "user_properties": {"plan": "pro"}}
        rc, err, _ = self.jsonl(j, [ev], "--redact", r"db-[0-9a-f]+\.internal\.example", *args)
        self.assertEqual(rc, EX_OK, err)
        got = self.dump(j)[0]["event"]
        self.assertEqual(got["event_properties"], {"service": {"appId": 7, "serviceName": "api"},
                                                   "image": {"name": "registry/api"},
                                                   "error": "pull from [redacted] denied"})
        self.assertEqual(got["user_properties"], {"plan": "pro"})  # no allow rule on that side
        st = self.stat(j)
        self.assertEqual((st["props_dropped"], st["values_redacted"]), (3, 1))
        self.assertNotOnDisk(j, self.token, self.host, self.env_secret)

    def test_service(self):
        j, sock, log = self.path("j"), self.path("sock"), self.path("service.log")
        with open(log, "wb") as logf:
            proc = subprocess.Popen([RECORD, "--listen", sock, "-j", j] + self.policy_args(),
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=logf,
                                    env=base_env())
        try:
            c = self.connect(proc, sock, log)
            n = 25
            c.sendall(b"".join((json.dumps(self.secret_event(i)) + "\n").encode() for i in range(n)))
            answers = self.read_answers(c, n)
            self.assertTrue(all(a.startswith("ok ") for a in answers), answers)
            c.close()
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                self.fail("the service did not stop")
        with open(log, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        self.assertEqual(rc, EX_OK, text)
        self.assertNotIn("Sanitizer", text)
        recs = self.dump(j)
        self.assertEqual(len(recs), n)
        for r in recs:
            self.check_clean(r, int(r["event"]["device_id"][4:]))
        st = self.stat(j)
        self.assertEqual((st["props_dropped"], st["values_redacted"]), (3 * n, n))
        self.assertNotOnDisk(j, self.token, self.email, self.host, self.env_secret)

    def connect(self, proc, sock, log):
        deadline = time.monotonic() + WAIT
        while True:
            if proc.poll() is not None:
                with open(log, "rb") as f:
                    self.fail("the service exited with %d:\n%s" % (proc.returncode, f.read().decode()))
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(WAIT)
            try:
                s.connect(sock)
                return s
            except OSError:
                s.close()
            if time.monotonic() > deadline:
                self.fail("the service did not listen")
            time.sleep(0.01)

    def read_answers(self, s, n):
        buf = b""
        while buf.count(b"\n") < n:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        return buf.decode().split("\n")[:n]

    # ---- refusals -----------------------------------------------------------

    def test_bad_rules(self):
        j = self.path("j")
        for args, needle in ((["--redact", "(oops"], "(oops"),
                             (["--redact", "x*"], "matches the empty string"),
                             (["--deny", "email"], "must start with event_properties or user_properties"),
                             (["--allow", "event_properties..x"], "empty key"),
                             (["--deny", "event_properties.a\\b"], "must be followed")):
            rc, _, err = self.record(j, "-t", "T", "-d", "d", *args)
            self.assertEqual(rc, EX_USAGE, err)
            self.assertIn(needle, err)
            self.assertFalse(os.path.exists(j), "a journal was created despite a bad rule")
            rc, _, err = self.record(j, "--listen", self.path("sock"), *args)
            self.assertEqual(rc, EX_USAGE, err)
            self.assertFalse(os.path.exists(self.path("sock")))

    def test_no_policy_keeps_everything(self):
        j = self.path("j")
        rc, err, _ = self.jsonl(j, [self.secret_event(0)])
        self.assertEqual(rc, EX_OK, err)
        self.assertEqual(self.dump(j)[0]["event"]["user_properties"]["email"], self.email)
        # The search assertNotOnDisk relies on does find a stored secret.
        with open(os.path.join(j, "data.mdb"), "rb") as f:
            self.assertIn(self.email.encode(), f.read())
        st = self.stat(j)
        self.assertEqual((st["props_dropped"], st["values_redacted"]), (0, 0))


if __name__ == "__main__":
    main()
