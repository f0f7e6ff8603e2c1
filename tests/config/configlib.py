"""Helpers for the configuration tests: a temporary directory with a
configuration file, and the programs run with a clean environment (no
FERRY_* variable leaks in from the caller). Reuses tests/replay/replaylib.py
for the journal and ferry-sink helpers."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "replay"))
from replaylib import JOURNAL, RECORD, REPLAY, ReplayCase, Sink, events  # noqa: E402,F401


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    env.update(extra)
    return env


class ConfigCase(ReplayCase):

    def write_conf(self, text, name="ferry.conf"):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def run_env(self, args, env=None, input=None, timeout=300):
        p = subprocess.run(list(args), input=input, capture_output=True, timeout=timeout,
                           env=env if env is not None else clean_env())
        for stream in (p.stdout, p.stderr):
            self.assertNotIn(b"Sanitizer", stream, stream.decode(errors="replace"))
        return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
