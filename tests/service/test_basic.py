"""The README's ways of talking to `ferry-record --listen` work as printed:
the shell with socat, the Node.js snippet (net.connect) and the Python one,
each recording an event and printing its `ok SEQ`. The snippets below are
the README's, with the socket path replaced; a tool that is not installed
(socat, node) skips its case."""
import shutil
import subprocess
import sys

from servicelib import EX_OK, WAIT, ServiceCase, base_env, main

README_SOCK = "/run/ferry/record.sock"
DEVICE = "7f3c2a9e41b84d6f9a0c5e1d2b3f4a5c"

SHELL = """\
echo '{"event_type":"Service start","device_id":"7f3c2a9e41b84d6f9a0c5e1d2b3f4a5c"}' |
    socat -t 5 - UNIX-CONNECT:/run/ferry/record.sock     # prints: ok 1
"""

NODE = """\
const net = require('net');
const sock = net.connect('/run/ferry/record.sock');
const waiting = []; // callbacks, in the order the events were sent
let buf = '';
sock.on('data', (data) => {
  buf += data;
  for (let i; (i = buf.indexOf('\\n')) >= 0; buf = buf.slice(i + 1)) {
    const answer = buf.slice(0, i);
    waiting.shift()(answer.startsWith('ok ') ? null : new Error(answer), answer);
  }
});
const record = (event, cb) => { waiting.push(cb); sock.write(JSON.stringify(event) + '\\n'); };

record({ event_type: 'Service start', device_id: '7f3c2a9e41b84d6f9a0c5e1d2b3f4a5c' },
       (err, answer) => { console.log(err ? err.message : answer); sock.end(); });
"""

PYTHON = """\
import json, socket

sock = socket.socket(socket.AF_UNIX)
sock.connect("/run/ferry/record.sock")
stream = sock.makefile("rwb")

def record(event):
    stream.write(json.dumps(event).encode() + b"\\n")
    stream.flush()
    answer = stream.readline().decode().rstrip("\\n")
    if not answer.startswith("ok "):
        raise RuntimeError(answer)  # "error REASON"
    return int(answer[3:])  # the event's sequence number: it is durable

print(record({"event_type": "Service start", "device_id": "7f3c2a9e41b84d6f9a0c5e1d2b3f4a5c"}))
"""


class Readme(ServiceCase):

    def run_snippet(self, argv, text, name):
        path = self.path(name)
        with open(path, "w") as f:
            f.write(text.replace(README_SOCK, self.sock))
        p = subprocess.run(argv + [path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=base_env(),
                           timeout=WAIT)
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def test_shell_socat(self):
        if not shutil.which("socat"):
            self.skipTest("socat is not installed")
        self.start()
        rc, out, err = self.run_snippet(["/bin/sh"], SHELL, "send.sh")
        self.assertEqual((rc, out), (0, "ok 1\n"), err)
        self.assertEqual(self.dump()[0]["event"]["device_id"], DEVICE)

    def test_node(self):
        if not shutil.which("node"):
            self.skipTest("node is not installed")
        self.start()
        rc, out, err = self.run_snippet(["node"], NODE, "send.js")
        self.assertEqual((rc, out), (0, "ok 1\n"), err)

    def test_python(self):
        self.start()
        rc, out, err = self.run_snippet([sys.executable], PYTHON, "send.py")
        self.assertEqual((rc, out), (0, "1\n"), err)
        # The error path: a refused event raises with the service's reason.
        rc, out, err = self.run_snippet([sys.executable], PYTHON + 'print(record({"event_type": "x"}))\n', "bad.py")
        self.assertNotEqual(rc, 0)
        self.assertEqual(out, "2\n")
        self.assertIn("RuntimeError: error line 2: fields device_id and user_id: at least one is required", err)

    def test_stop(self):
        svc = self.start()
        self.assertEqual(svc.stop(), EX_OK)


if __name__ == "__main__":
    main()
