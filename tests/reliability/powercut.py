"""Power-cut and I/O-fault machinery for the reliability scenarios.

The shim (powercut.c, built as BUILD/tests/reliability/powercut.so) logs every
write to the tracked file with its pre-image, and every sync, in one global
order; see the comment at its top. This module prepares its shared state,
starts workload processes under it, notices the cut, stops every process, and
then "reboots": apply() merges the per-process logs by number and turns the
file into one disk state a real power cut could leave:

  - a sector (512 bytes) written since its last durable point holds its
    durable version or any later version (newest first, each older version
    taken with probability p: a sector is written whole, so versions never
    mix within it);
  - a successful fsync/fdatasync makes every pending sector of the file
    durable, whichever process wrote it (the page cache is shared); a write
    through an O_DSYNC descriptor makes the 4 KiB pages it touched durable;
  - a failed sync leaves its pending sectors in doubt even after later
    successful syncs (the kernel may mark such pages clean without writing
    them), until a new write dirties the page again;
  - a file that grew since its last sync may lose its new tail.

Everything is seeded: a scenario prints its seed, and rerunning with it makes
the same random choices (cut points, sectors kept); where several processes
run at once their interleaving, and so what a cut point hits, can differ."""
import glob
import json
import os
import signal
import struct
import subprocess
import sys
import time

SECTOR = 512
PAGE = 4096
STATE_SIZE = 4096
CUT_BIT = 1 << 63
R_WRITE, R_SYNC, R_SYNCFAIL, R_RSYNC, R_RSYNCFAIL, R_CUT = 1, 2, 3, 4, 5, 6
HDR = struct.Struct("<IIQQQQQ")
REC_MAGIC, END_MAGIC = 0x31524350, 0x31444E45
# Self-test of the checkers: treat every sync as never having happened, so a
# cut may undo acknowledged commits; a scenario must then report losses.
IGNORE_SYNCS = os.environ.get("FERRY_PC_IGNORE_SYNCS") == "1"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Build:
    """Paths of the programs in a build directory, and the preload list."""

    def __init__(self, build):
        self.dir = os.path.abspath(build)
        b = self.dir
        self.record = os.path.join(b, "recorder", "ferry-record")
        self.journal = os.path.join(b, "tools", "ferry-journal")
        self.sink = os.path.join(b, "tools", "ferry-sink")
        self.replay = os.path.join(b, "replayer", "ferry-replay")
        self.writer = os.path.join(b, "tests", "reliability", "pc-writer")
        self.shim = os.path.join(b, "tests", "reliability", "powercut.so")
        for p in (self.record, self.journal, self.sink, self.replay, self.writer, self.shim):
            if not os.path.exists(p):
                raise SystemExit("missing %s: build first (cmake --build %s)" % (p, b))
        self.preload = self.shim
        # A sanitized build: ASan's runtime must come first in LD_PRELOAD.
        out = subprocess.run(["ldd", self.record], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if "libasan" in line and "=>" in line:
                self.preload = line.split("=>")[1].split()[0] + ":" + self.shim
        self.sanitized = self.preload != self.shim


class Shim:
    """One shim session: state dir, tracked file, cut point and faults."""

    def __init__(self, build, pcdir, tracked, cut=None, fault=None):
        self.build, self.dir, self.file = build, pcdir, os.path.abspath(tracked)
        os.makedirs(pcdir, exist_ok=True)
        for f in glob.glob(os.path.join(pcdir, "log.*")):
            os.unlink(f)
        with open(os.path.join(pcdir, "state"), "wb") as f:
            f.write(struct.pack("<Q", 0x3154415453435020) + bytes(STATE_SIZE - 8))
        self.start_size = os.path.getsize(self.file) if os.path.exists(self.file) else 0
        self.cut, self.fault = cut, fault

    def env(self, base=None):
        e = dict(base or os.environ)
        e["LD_PRELOAD"] = self.build.preload
        e["FERRY_PC_DIR"] = self.dir
        e["FERRY_PC_FILE"] = self.file
        e["FERRY_PC_CUT"] = self.cut or ""
        e["FERRY_PC_FAULT"] = self.fault or ""
        if self.build.sanitized:
            e["ASAN_OPTIONS"] = e.get("ASAN_OPTIONS", "detect_leaks=0")
        return e

    def state(self):
        with open(os.path.join(self.dir, "state"), "rb") as f:
            v = struct.unpack("<8Q", f.read(64))
        return {"seq": v[1] & ~CUT_BIT, "cut": bool(v[1] & CUT_BIT), "writes": v[2], "syncs": v[3],
                "cut_seq": v[4], "cut_pid": v[5], "faults": v[6], "fault_off": v[7]}

    def is_cut(self):
        return self.state()["cut"]

    def faults_off(self):
        """Space returns: persistent faults stop."""
        with open(os.path.join(self.dir, "state"), "r+b") as f:
            f.seek(56)
            f.write(struct.pack("<Q", 1))

    def records(self):
        recs = []
        for path in glob.glob(os.path.join(self.dir, "log.*")):
            with open(path, "rb") as f:
                data = f.read()
            pos = 0
            while pos + HDR.size <= len(data):
                magic, typ, seq, off, ln, size, prelen = HDR.unpack_from(data, pos)
                end = pos + HDR.size + prelen
                if magic != REC_MAGIC or end + 4 > len(data) or \
                        struct.unpack_from("<I", data, end)[0] != END_MAGIC:
                    break  # the process died while logging: its write never happened
                recs.append((seq, typ, off, ln, size, data[pos + HDR.size:end]))
                pos = end + 4
        recs.sort(key=lambda r: r[0])
        return recs

    def apply(self, rng, p):
        """Turns the file into a state a power cut at the cut point could
        leave (see the module comment). Call only when every process using
        the shim is gone. Returns a small summary."""
        pend = {}     # sector -> [(file offset, pre-image bytes)], oldest first
        stuck = set()  # sectors whose pending versions a failed sync left in doubt
        cur = durable = self.start_size
        writes = 0

        def pages(off, ln):
            a = off // PAGE * PAGE
            b = -(-(off + max(ln, 1)) // PAGE) * PAGE
            return range(a // SECTOR, b // SECTOR)

        for seq, typ, off, ln, size, pre in self.records():
            if typ == R_CUT:
                break
            if typ == R_WRITE:
                writes += 1
                for s in range(off // SECTOR, -(-(off + ln) // SECTOR)):
                    a, b = max(off, s * SECTOR), min(off + ln, (s + 1) * SECTOR)
                    part = pre[a - off:b - off]
                    part += bytes((b - a) - len(part))  # beyond the old end: zeros
                    pend.setdefault(s, []).append((a, part))
                for s in pages(off, ln):  # the page is dirty again: written whole at the next sync
                    stuck.discard(s)
                cur = max(size, off + ln)
            elif typ == R_SYNC and not IGNORE_SYNCS:
                for s in list(pend):
                    if s not in stuck:
                        del pend[s]
                if not stuck:
                    durable = cur
            elif typ == R_SYNCFAIL:
                stuck.update(pend)
            elif typ == R_RSYNC and not IGNORE_SYNCS:
                for s in pages(off, ln):
                    if s not in stuck:
                        pend.pop(s, None)
                durable = max(durable, min(cur, off + ln))
            elif typ == R_RSYNCFAIL:
                stuck.update(s for s in pages(off, ln) if s in pend)
        restored = 0
        if not os.path.exists(self.file):  # cut before the file was created
            return {"pending_sectors": 0, "restored": 0, "truncated": False, "writes": writes}
        with open(self.file, "r+b") as f:
            for s in sorted(pend):
                for a, part in reversed(pend[s]):
                    if rng.random() >= p:
                        break
                    f.seek(a)
                    f.write(part)
                    restored += 1
            truncated = cur > durable and rng.random() < p
            if truncated:
                f.truncate(durable)
        return {"pending_sectors": len(pend), "restored": restored, "truncated": truncated,
                "writes": writes}


class Group:
    """Workload processes started under one shim; stop() kills them all."""

    def __init__(self, shim, env=None):
        self.shim, self.procs, self.base_env = shim, [], env

    def start(self, args, **kw):
        kw.setdefault("env", self.shim.env(self.base_env))
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        p = subprocess.Popen(args, **kw)
        self.procs.append(p)
        return p

    def kill_all(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            p.wait()


def run_cut_aware(group, args, stdin_data=None, timeout=300):
    """Runs one workload process to its end, or until the power is cut (then
    every process of the group is killed). Returns (rc or None, out, err)."""
    p = group.start(args, stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL)
    try:
        out, err = p.communicate(stdin_data, timeout=timeout)
    except subprocess.TimeoutExpired:
        group.kill_all()
        out, err = p.communicate()
        return None, out, err
    check_sanitizer(args, err)
    if group.shim.is_cut():
        return None, out, err
    return p.returncode, out, err


def check_sanitizer(args, err):
    """A sanitizer report in a workload's stderr ends the scenario (not ok)."""
    if err and (b"Sanitizer" in err or b"runtime error:" in err):
        sys.stderr.write(err.decode(errors="replace")[-4000:])
        raise SystemExit("sanitizer report from %s" % args[0])


def choose_cut(rng, syncs, writes):
    """A cut point over what an uncut run did: at a sync (70 %) or right
    after a write (between syncs, so that a write can be torn)."""
    if rng.random() < 0.7 or not writes:
        return "sync:%d" % rng.randint(1, max(1, syncs))
    return "write:%d" % rng.randint(1, writes)


def run(args, check=True, **kw):
    p = subprocess.run(args, capture_output=True, **kw)
    check_sanitizer(args, p.stderr)
    if check and p.returncode != 0:
        raise RuntimeError("%s exited %d: %s" % (" ".join(args), p.returncode, p.stderr.decode(errors="replace")))
    return p


def verify(build, journal):
    """(ok, message): the journal opens and `ferry-journal verify` finds no problem."""
    p = subprocess.run([build.journal, "verify", "--json", journal], capture_output=True, text=True)
    if p.returncode != 0:
        return False, "verify exited %d: %s %s" % (p.returncode, p.stdout.strip(), p.stderr.strip())
    return True, ""


def dump_ids(build, journal):
    """{insert_id: seq} of the stored events."""
    out = run([build.journal, "-j", journal, "dump"]).stdout.decode()
    ids = {}
    for line in out.splitlines():
        r = json.loads(line)
        ids[r["insert_id"]] = r["seq"]
    return ids


def parse_args(name, argv=None):
    import argparse
    ap = argparse.ArgumentParser(prog=name, description="reliability scenario (tests/reliability/README.md)")
    ap.add_argument("--build", required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--runs", type=int, required=True)
    ap.add_argument("--workdir", required=True)
    return ap.parse_args(argv)


def result(name, runs, faults, acked, lost, duplicated, seed, notes, ok):
    print(json.dumps({"scenario": name, "runs": runs, "faults": faults, "acked": acked, "lost": lost,
                      "duplicated": duplicated, "seed": seed, "notes": notes, "ok": bool(ok)}), flush=True)
    return 0 if ok else 1


def connect_unix(path, proc=None, tries=3000):
    """A connected socket to a service that may not be listening yet (bind
    creates the file before listen). Raises OSError once the service is gone
    or after the bounded wait."""
    import socket
    for _ in range(tries):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(60)
        try:
            s.connect(path)
            return s
        except (ConnectionRefusedError, FileNotFoundError):
            s.close()
            if proc is not None and proc.poll() is not None:
                raise
            time.sleep(0.01)
    raise OSError("cannot connect to %s" % path)


def guard(name, main):
    """Runs a scenario's main; an exception still gives the one JSON line
    (not ok), as the contract asks."""
    try:
        return main()
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001 (SystemExit from a sanitizer report too)
        import traceback
        traceback.print_exc()
        seed = 0
        if "--seed" in sys.argv[:-1]:
            try:
                seed = int(sys.argv[sys.argv.index("--seed") + 1])
            except ValueError:
                pass
        return result(name, 0, 0, 0, 0, 0, seed, "the scenario stopped: %s" % str(e)[:300], False)


def wait_until(pred, tries=3000, step=0.01):
    for _ in range(tries):
        if pred():
            return True
        time.sleep(step)
    return False
