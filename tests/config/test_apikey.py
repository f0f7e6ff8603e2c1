"""The API key never leaks. The whole pipeline runs with a distinctive key
(record, the recording service, replay to a real ferry-sink on 127.0.0.1
with the key from a file and from the environment, stat, dump, dead, export
jsonl/csv/capture, verify, copy, tail, config); then every file under the
test directory, every captured stdout/stderr and the /proc/PID/cmdline of
the running replayer and sink are searched: the key appears only in the
files the test itself wrote (the key files). Error paths too: a sink that
refuses the key (400 Invalid API key) and an endpoint that echoes the
request, key included, in its error texts: ferry-replay's messages and the
journal's dead letters never carry it."""
import http.server
import json
import os
import secrets
import socket
import subprocess
import threading
import time

from configlib import JOURNAL, RECORD, REPLAY, ConfigCase, Sink, clean_env, events

WAIT_TRIES = 3000  # x 0.1 s


class EchoHandler(http.server.BaseHTTPRequestHandler):
    """An endpoint that quotes the request body in its error texts."""
    mode = "config"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode(errors="replace")
        if EchoHandler.mode == "config":
            answer = {"code": 400, "error": "Invalid API key: " + body[:200]}
        else:  # every event invalid, the reason quoting the request
            answer = {"code": 400, "error": "Invalid field values on some events " + body[:100],
                      "events_with_invalid_fields": {"event_type": [0], "quote " + body[:60]: [0]}}
        data = json.dumps(answer).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class ApiKey(ConfigCase):

    def setUp(self):
        super().setUp()
        self.key = "FERRYLEAK" + secrets.token_hex(12)
        self.outputs = []  # (what, bytes)
        self.allowed = set()  # files the test wrote the key into
        self.keyfile = self.put_key("api-key")

    def put_key(self, name):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(self.key + "\n")
        os.chmod(path, 0o600)
        self.allowed.add(path)
        return path

    def run_logged(self, args, env=None, input=None, check=0):
        env = env if env is not None else self.env
        p = subprocess.run(list(args), input=input, capture_output=True, timeout=300, env=env)
        self.outputs.append((" ".join(args), p.stdout + p.stderr))
        self.assertNotIn(b"Sanitizer", p.stderr, p.stderr.decode(errors="replace"))
        if check is not None:
            self.assertEqual(p.returncode, check, "%s: %s" % (args, p.stderr.decode(errors="replace")))
        return p

    def cmdline(self, pid):
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read()

    def assert_no_leak(self):
        k = self.key.encode()
        for what, data in self.outputs:
            self.assertNotIn(k, data, "the key is in the output of %s" % what)
        checked = 0
        for root, _, files in os.walk(self.tmp):
            for f in files:
                p = os.path.join(root, f)
                if p in self.allowed or os.path.islink(p):
                    continue
                with open(p, "rb") as fh:
                    self.assertNotIn(k, fh.read(), "the key is in %s" % p)
                checked += 1
        self.assertGreater(checked, 10)

    def test_pipeline(self):
        sink_key = self.put_key("sink-api-key")
        j = self.journal
        conf = self.write_conf("[journal]\ndir = %s\n[replayer]\napi_key_file = %s\ntimeout = 20\n" % (j, self.keyfile))
        self.env = clean_env(FERRY_CONFIG=conf)
        evs = events(30)
        self.run_logged([RECORD, "-v", "--jsonl", "-"], input="".join(json.dumps(e) + "\n" for e in evs[:20]).encode())
        self.run_logged([RECORD, "-v", "-t", "Service start", "-d", evs[0]["device_id"], "-p", "n=1"])

        # the recording service
        sock = os.path.join(self.tmp, "record.sock")
        svc_log = os.path.join(self.tmp, "service.log")
        with open(svc_log, "wb") as log:
            svc = subprocess.Popen([RECORD, "-v", "--listen", sock], env=self.env, stdout=log, stderr=log)
        try:
            for _ in range(WAIT_TRIES):
                if os.path.exists(sock) or svc.poll() is not None:
                    break
                time.sleep(0.1)
            c = socket.socket(socket.AF_UNIX)
            c.connect(sock)
            c.sendall("".join(json.dumps(e) + "\n" for e in evs[20:]).encode())
            got = b""
            while got.count(b"\n") < 10:
                chunk = c.recv(4096)
                if not chunk:
                    break
                got += chunk
            c.close()
            self.outputs.append(("service answers", got))
            self.assertEqual(got.count(b"ok "), 10, got)
        finally:
            svc.terminate()
            svc.wait(timeout=60)

        sink_out = os.path.join(self.tmp, "sink.jsonl")
        os.mkdir(os.path.join(self.tmp, "sinkdir"))
        os.mkdir(os.path.join(self.tmp, "sink2dir"))
        with Sink("--api-key-file", sink_key, "-v", out=sink_out, workdir=os.path.join(self.tmp, "sinkdir")) as sink:
            url = "http://127.0.0.1:%d" % sink.port
            self.assertNotIn(self.key.encode(), self.cmdline(sink.proc.pid))
            # --follow, key from the file named in the configuration
            p = subprocess.Popen([REPLAY, "--follow", "--endpoint", url, "--progress"], env=self.env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                self.assertNotIn(self.key.encode(), self.cmdline(p.pid))
                for _ in range(WAIT_TRIES):
                    if len(self.accepted(sink_out)) >= 31 or p.poll() is not None:
                        break
                    time.sleep(0.1)
                self.assertNotIn(self.key.encode(), self.cmdline(p.pid))
            finally:
                p.terminate()
                out, err = p.communicate(timeout=120)
            self.outputs.append(("replay --follow", out + err))
            self.assertEqual(p.returncode, 0, err)
            self.assertEqual(len(self.accepted(sink_out)), 31)
            # --once with the key from the environment and from --api-key-file
            self.run_logged([RECORD, "-t", "Service start", "-d", evs[1]["device_id"]])
            self.run_logged([REPLAY, "--once", "--json", "--endpoint", url, "--config", os.devnull, "-j", j],
                            env=clean_env(FERRY_API_KEY=self.key))
            self.run_logged([RECORD, "-t", "Service start", "-d", evs[2]["device_id"]])
            self.run_logged([REPLAY, "--once", "--json", "--endpoint", url, "--api-key-file", self.keyfile,
                             "--config", os.devnull, "-j", j])
            self.assertEqual(len(self.accepted(sink_out)), 33)

            # a sink that wants another key: 400 Invalid API key, exit 78
            self.run_logged([RECORD, "-t", "Service start", "-d", evs[3]["device_id"]])
        other = os.path.join(self.tmp, "other-key")
        with open(other, "w") as f:
            f.write("another-key-0000\n")
        with Sink("--api-key-file", other, out=os.path.join(self.tmp, "sink2.jsonl"),
                  workdir=os.path.join(self.tmp, "sink2dir")) as sink2:
            p = self.run_logged([REPLAY, "--once", "--endpoint", "http://127.0.0.1:%d" % sink2.port], check=78)
            self.assertIn(b"Invalid API key", p.stderr)

        # an endpoint that echoes the request, key included, in its errors
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
        t = threading.Thread(target=server.serve_forever, daemon=True)
        t.start()
        try:
            url = "http://127.0.0.1:%d" % server.server_address[1]
            EchoHandler.mode = "config"
            p = self.run_logged([REPLAY, "--once", "--no-gzip", "--endpoint", url], check=78)
            self.assertIn(b"Invalid API key", p.stderr)
            EchoHandler.mode = "fields"
            self.run_logged([REPLAY, "--once", "--no-gzip", "--endpoint", url], check=None)
        finally:
            server.shutdown()
            server.server_close()

        # the tools
        for args in (["stat"], ["stat", "--json"], ["dump"], ["dead"], ["dead", "--json"], ["tail", "-n", "5"],
                     ["verify"], ["config"], ["config", "--json"],
                     ["export", "--format", "jsonl", "--all", "--output", os.path.join(self.tmp, "x.jsonl")],
                     ["export", "--format", "csv", "--all", "--output", os.path.join(self.tmp, "x.csv")],
                     ["export", "--format", "capture", "--all", "--output", os.path.join(self.tmp, "x.cap")],
                     ["copy", os.path.join(self.tmp, "copy")]):
            self.run_logged([JOURNAL] + args)
        self.run_logged([JOURNAL, "verify", os.path.join(self.tmp, "x.cap")])
        self.assert_no_leak()
        with open(os.path.join(self.tmp, "sinkdir", "stderr"), "rb") as f:
            self.assertTrue(f.read(), "ferry-sink -v logged nothing")


if __name__ == "__main__":
    import unittest
    unittest.main(verbosity=2)
