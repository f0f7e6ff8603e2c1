"""Every program has a man page that `cmake --install` installs, and every
long option its --help prints appears in its man page (and the other way
round), so the two cannot drift apart."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

MAN_DIR = os.environ.get("FERRY_MAN_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                                        "docs", "man"))
BUILD = os.environ.get("FERRY_BUILD_DIR", "")
PROGRAMS = {
    "ferry-record": os.environ.get("FERRY_RECORD", "ferry-record"),
    "ferry-replay": os.environ.get("FERRY_REPLAY", "ferry-replay"),
    "ferry-journal": os.environ.get("FERRY_JOURNAL_TOOL", "ferry-journal"),
    "ferry-sink": os.environ.get("FERRY_SINK", "ferry-sink"),
}
LONG = re.compile(r"(?<![\w-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*")


def man_text(name):
    with open(os.path.join(MAN_DIR, name + ".1"), encoding="utf-8") as f:
        src = f.read()
    # roff to plain text, enough for option names: \- is a hyphen, \f? fonts.
    text = re.sub(r"\\f[BIRP]|\\f\(..|\\&|\\e", "", src).replace("\\-", "-")
    return src, text


def help_text(prog):
    p = subprocess.run([prog, "--help"], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.decode()


class ManPages(unittest.TestCase):
    def test_help_options_are_documented(self):
        for name, prog in PROGRAMS.items():
            with self.subTest(program=name):
                src, text = man_text(name)
                self.assertIn(".TH %s 1" % name.upper(), src)
                for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "SEE ALSO"):
                    self.assertRegex(src, r"(?m)^\.SH \"?%s\"?$" % section)
                in_help = set(LONG.findall(help_text(prog)))
                in_man = set(LONG.findall(re.split(r"(?m)^\.SH \"?(?:EXAMPLES|SEE ALSO)", text)[0]))
                in_man_all = set(LONG.findall(text))
                self.assertTrue(in_help, "no long option in %s --help" % name)
                self.assertEqual(sorted(in_help - in_man_all), [], "%s: in --help, not in the man page" % name)
                self.assertEqual(sorted(in_man - in_help), [], "%s: in the man page, not in --help" % name)

    def test_journal_commands_are_documented(self):
        _, text = man_text("ferry-journal")
        usage = help_text(PROGRAMS["ferry-journal"])
        commands = re.findall(r"(?m)^  ([a-z]+)(?: |$)", usage.split("Commands:")[1].split("Options:")[0])
        self.assertGreaterEqual(len(commands), 10, commands)
        for c in commands:
            self.assertTrue(re.search(r"(?m)^\.SS \"?%s\b" % c, text), "command %s has no section" % c)

    @unittest.skipUnless(BUILD, "FERRY_BUILD_DIR is not set")
    def test_cmake_install_installs_them(self):
        tmp = tempfile.mkdtemp(prefix="ferry-man-")
        try:
            p = subprocess.run(["cmake", "--install", BUILD, "--prefix", tmp, "--component", "man"],
                               capture_output=True, timeout=120)
            self.assertEqual(p.returncode, 0, p.stderr)
            found = []
            for root, _, files in os.walk(tmp):
                found += [os.path.relpath(os.path.join(root, f), tmp) for f in files]
            self.assertEqual(sorted(found), sorted(["share/man/man1/%s.1" % n for n in PROGRAMS] +
                                                   ["share/man/man5/ferry.conf.5"]))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
