"""The configuration file: every program reads it, flags win over it, the
environment wins over it (except opt-out: any source turns it on), bad files
are refused naming FILE:LINE and the key with exit 78, and ferry-journal
config shows each effective value and its source without ever printing the
API key."""
import json
import os
import unittest

from configlib import JOURNAL, RECORD, REPLAY, ConfigCase, clean_env

EX_CONFIG = 78


class Errors(ConfigCase):

    def assertConfigError(self, text, line, key, programs=None, extra=None):
        conf = self.write_conf(text)
        runs = {
            "ferry-record": [RECORD, "--config", conf, "-j", self.journal, "-t", "x", "-d", "device-1"],
            "ferry-replay": [REPLAY, "--config", conf, "-j", self.journal, "--once"],
            "ferry-journal": [JOURNAL, "--config", conf, "-j", self.journal, "config"],
        }
        for name in programs or runs:
            rc, out, err = self.run_env(runs[name], env=clean_env(FERRY_API_KEY="k-123456"))
            self.assertEqual(rc, EX_CONFIG, "%s: %s" % (name, err))
            self.assertIn("%s:%d:" % (conf, line), err, name)
            self.assertIn(key, err, name)
            if extra:
                self.assertIn(extra, err, name)
            self.assertFalse(os.path.exists(self.journal), "%s created the journal" % name)

    def test_unknown_key(self):
        self.assertConfigError("# comment\n[journal]\ndir = /tmp/x\nmax_sise = 2M\n", 4, "max_sise",
                               extra="unknown key")

    def test_unknown_section(self):
        self.assertConfigError("[journal]\n\n[recording]\ndurability = full\n", 4, "[recording]")

    def test_key_outside_a_section(self):
        self.assertConfigError("durability = full\n", 1, "durability")

    def test_syntax_error(self):
        self.assertConfigError("[recorder]\ndurability full\n", 2, "syntax")

    def test_bad_boolean(self):
        self.assertConfigError("[recorder]\nopt_out = maybe\n", 2, "opt_out", extra="true or false")

    def test_empty_value(self):
        self.assertConfigError("[replayer]\ntimeout =\n", 2, "timeout", extra="empty")

    def test_given_twice(self):
        self.assertConfigError("[recorder]\noverflow = reject\n; again\noverflow = evict-oldest\n", 4,
                               "overflow", extra="first on line 2")

    def test_bad_regex(self):
        self.assertConfigError("[privacy]\nredact = ([0-9]\n", 2, "redact")

    def test_bad_value_checked_by_the_flags_code(self):
        """A value only the program that uses it can check: the same check as
        its flag, reported as the file's line and key, exit 78."""
        self.assertConfigError("[recorder]\ndurability = fast\n", 2, "[recorder] durability = fast",
                               programs=["ferry-record"], extra="expected full or relaxed")
        self.assertConfigError("[journal]\nmax_size = 12\n", 2, "[journal] max_size = 12",
                               programs=["ferry-record"], extra="expected a size")
        self.assertConfigError("\n[replayer]\ntimeout = soon\n", 3, "[replayer] timeout = soon",
                               programs=["ferry-replay"], extra="expected seconds")
        self.assertConfigError("[replayer]\nendpoint = ftp://example.org/\n", 2, "endpoint",
                               programs=["ferry-replay"], extra="only http and https")
        self.assertConfigError("[replayer]\nmax_events = 5000\n", 2, "max_events", programs=["ferry-replay"])
        # the flag's own message is unchanged
        rc, _, err = self.run_env([RECORD, "-j", self.journal, "--durability", "fast", "-t", "x", "-d", "d1"],
                                  env=clean_env(FERRY_CONFIG=os.devnull))
        self.assertEqual(rc, 64, err)
        self.assertIn("--durability fast", err)

    def test_literal_api_key_is_refused_and_not_echoed(self):
        secret = "LITERAL-KEY-5f2b9c1d0e"
        conf = self.write_conf("[replayer]\napi_key = %s\n" % secret)
        for args in ([REPLAY, "--config", conf, "-j", self.journal, "--once"],
                     [JOURNAL, "--config", conf, "config"], [RECORD, "--config", conf, "-t", "x", "-d", "d1"]):
            rc, out, err = self.run_env(args)
            self.assertEqual(rc, EX_CONFIG, err)
            self.assertIn("%s:2:" % conf, err)
            self.assertIn("api_key_file", err)  # says what to do instead
            self.assertNotIn(secret, out + err)

    def test_missing_files(self):
        missing = os.path.join(self.tmp, "nope.conf")
        for env, args in ((clean_env(), ["--config", missing]), (clean_env(FERRY_CONFIG=missing), [])):
            rc, out, err = self.run_env([JOURNAL] + args + ["-j", self.journal, "config"], env=env)
            self.assertEqual(rc, EX_CONFIG, err)
            self.assertIn(missing, err)
            rc, out, err = self.run_env([RECORD] + args + ["-j", self.journal, "-t", "x", "-d", "d1"], env=env)
            self.assertEqual(rc, EX_CONFIG, err)
            self.assertFalse(os.path.exists(self.journal))
        # The default file (/etc/ferry/ferry.conf) may be absent: not an error.
        if not os.path.exists("/etc/ferry/ferry.conf"):
            rc, out, err = self.run_env([JOURNAL, "config"])
            self.assertEqual(rc, 0, err)
            self.assertIn("/etc/ferry/ferry.conf (default): not found", out)

    def test_unreadable_file(self):
        if os.geteuid() == 0:
            self.skipTest("root reads any file")
        conf = self.write_conf("[recorder]\nopt_out = true\n")
        os.chmod(conf, 0)
        rc, out, err = self.run_env([RECORD, "--config", conf, "-j", self.journal, "-t", "x", "-d", "d1"])
        self.assertEqual(rc, EX_CONFIG, err)
        self.assertFalse(os.path.exists(self.journal))


class CheckConfig(ConfigCase):
    """--check-config: the same checks as a run, and nothing else happens:
    no journal, no socket, no request (the endpoint is a closed port)."""

    def check(self, prog, conf, *extra, env=None):
        args = [prog, "--config", conf, "--check-config", "-j", self.journal] + list(extra)
        return self.run_env(args, env=env or clean_env(FERRY_API_KEY="k-123456"))

    def test_good_file(self):
        conf = self.write_conf("[journal]\nmax_size = 3M\n[recorder]\ndurability = relaxed\n"
                               "[replayer]\nendpoint = http://127.0.0.1:9\ntimeout = 5\n")
        for prog in (RECORD, REPLAY):
            rc, out, err = self.check(prog, conf)
            self.assertEqual(rc, 0, err)
            self.assertIn("configuration OK (configuration file %s: read)" % conf, out)
        rc, out, err = self.check(RECORD, conf, "--listen", os.path.join(self.tmp, "s.sock"))
        self.assertEqual(rc, 0, err)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "s.sock")))
        self.assertFalse(os.path.exists(self.journal))

    def test_bad_values_fail_as_a_run_would(self):
        conf = self.write_conf("[recorder]\ndurability = fast\n[replayer]\ntimeout = soon\n")
        for prog, key in ((RECORD, "[recorder] durability = fast"), (REPLAY, "[replayer] timeout = soon")):
            rc, out, err = self.check(prog, conf)
            self.assertEqual(rc, EX_CONFIG, err)
            self.assertIn(key, err)
            self.assertNotIn("configuration OK", out)
        rc, out, err = self.check(RECORD, self.write_conf(""), "--strict", "--catalog",
                                  os.path.join(self.tmp, "missing.tsv"))
        self.assertEqual(rc, EX_CONFIG, err)
        self.assertIn("missing.tsv", err)
        self.assertFalse(os.path.exists(self.journal))

    def test_replayer_key_and_ca(self):
        conf = self.write_conf("[replayer]\ncacert = %s\n" % os.path.join(self.tmp, "no-ca.pem"))
        rc, out, err = self.check(REPLAY, self.write_conf("", "empty.conf"), env=clean_env())
        self.assertEqual(rc, EX_CONFIG, err)
        self.assertIn("no API key", err)
        rc, out, err = self.check(REPLAY, conf)
        self.assertEqual(rc, EX_CONFIG, err)
        self.assertIn("%s:2: [replayer] cacert = %s" % (conf, os.path.join(self.tmp, "no-ca.pem")), err)
        self.assertIn("No such file", err)
        # a run refuses it at once too, instead of failing every request
        rc, out, err = self.run_env([REPLAY, "--config", conf, "-j", self.journal, "--once"],
                                    env=clean_env(FERRY_API_KEY="k-123456"))
        self.assertEqual(rc, EX_CONFIG, err)

    def test_opt_out_is_reported(self):
        conf = self.write_conf("[recorder]\nopt_out = true\n")
        for prog in (RECORD, REPLAY):
            rc, out, err = self.check(prog, conf, env=clean_env())
            self.assertEqual(rc, 0, err)
            self.assertIn("opted out", out)
        self.assertFalse(os.path.exists(self.journal))


class Precedence(ConfigCase):

    def stat(self, journal):
        rc, out, err = self.run_env([JOURNAL, "-j", journal, "stat", "--json"], env=clean_env(FERRY_CONFIG=os.devnull))
        self.assertEqual(rc, 0, err)
        return json.loads(out)

    def test_file_sets_journal_and_options(self):
        j = os.path.join(self.tmp, "from-file")
        conf = self.write_conf("[journal]\ndir = %s\nmax_size = 3M\n[recorder]\ndurability = relaxed\n" % j)
        rc, out, err = self.run_env([RECORD, "--config", conf, "-t", "x", "-d", "device-1"])
        self.assertEqual(rc, 0, err)
        st = self.stat(j)
        self.assertEqual(st["recorded"], 1)
        self.assertEqual(st["max_bytes"], 3 << 20)
        # ferry-journal reads the same file
        rc, out, err = self.run_env([JOURNAL, "stat", "--json"], env=clean_env(FERRY_CONFIG=conf))
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)["recorded"], 1)

    def test_flag_wins_over_file(self):
        jf, jflag = os.path.join(self.tmp, "file"), os.path.join(self.tmp, "flag")
        conf = self.write_conf("[journal]\ndir = %s\nmax_size = 3M\n" % jf)
        rc, out, err = self.run_env([RECORD, "--config", conf, "-j", jflag, "--max-size", "5M", "-t", "x", "-d", "d1"])
        self.assertEqual(rc, 0, err)
        self.assertFalse(os.path.exists(jf))
        self.assertEqual(self.stat(jflag)["recorded"], 1)
        rc, out, err = self.run_env([JOURNAL, "--config", conf, "-j", jflag, "config", "--json"])
        self.assertEqual(rc, 0, err)
        dir_entry = [s for s in json.loads(out)["settings"] if s["key"] == "journal.dir"][0]
        self.assertEqual((dir_entry["value"], dir_entry["source"]), (jflag, "flag"))

    def test_env_wins_over_file_flag_over_env(self):
        jf, je, jflag = (os.path.join(self.tmp, n) for n in ("file", "env", "flag"))
        conf = self.write_conf("[journal]\ndir = %s\n" % jf)
        env = clean_env(FERRY_CONFIG=conf, FERRY_JOURNAL=je)
        rc, out, err = self.run_env([RECORD, "-t", "x", "-d", "d1"], env=env)
        self.assertEqual(rc, 0, err)
        self.assertTrue(os.path.exists(je))
        self.assertFalse(os.path.exists(jf))
        rc, out, err = self.run_env([RECORD, "-j", jflag, "-t", "x", "-d", "d1"], env=env)
        self.assertEqual(rc, 0, err)
        self.assertTrue(os.path.exists(jflag))
        self.assertFalse(os.path.exists(jf))
        rc, out, err = self.run_env([JOURNAL, "config"], env=env)
        self.assertRegex(out, r"(?m)^journal\.dir += %s  # env FERRY_JOURNAL" % je)

    def test_flag_config_wins_over_env_config(self):
        a = self.write_conf("[journal]\ndir = %s\n" % os.path.join(self.tmp, "a"), "a.conf")
        b = self.write_conf("[journal]\ndir = %s\n" % os.path.join(self.tmp, "b"), "b.conf")
        rc, out, err = self.run_env([RECORD, "--config=" + b, "-t", "x", "-d", "d1"], env=clean_env(FERRY_CONFIG=a))
        self.assertEqual(rc, 0, err)
        self.assertTrue(os.path.exists(os.path.join(self.tmp, "b")))
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "a")))

    def test_file_opt_out_records_nothing(self):
        j = os.path.join(self.tmp, "j")
        conf = self.write_conf("[journal]\ndir = %s\n[recorder]\nopt_out = yes\n" % j)
        rc, out, err = self.run_env([RECORD, "--config", conf, "-t", "x", "-d", "d1"])
        self.assertEqual((rc, err), (0, ""))
        self.assertFalse(os.path.exists(j))
        # opt_out = false in the file does not undo FERRY_OPT_OUT
        conf = self.write_conf("[journal]\ndir = %s\n[recorder]\nopt_out = false\n" % j)
        rc, out, err = self.run_env([RECORD, "--config", conf, "-t", "x", "-d", "d1"],
                                    env=clean_env(FERRY_OPT_OUT="1"))
        self.assertEqual((rc, err), (0, ""))
        self.assertFalse(os.path.exists(j))

    def test_file_privacy_policy_reaches_the_recorder(self):
        j = os.path.join(self.tmp, "j")
        conf = self.write_conf("[journal]\ndir = %s\n[privacy]\ndeny = event_properties.token\n"
                               "redact = host-[0-9]+\n" % j)
        rc, out, err = self.run_env([RECORD, "--config", conf, "-t", "x", "-d", "d1",
                                     "-p", "token=SECRET-TOKEN-42", "-p", "error=timeout at host-1234",
                                     "--deny", "event_properties.other"])
        self.assertEqual(rc, 0, err)
        with open(os.path.join(j, "data.mdb"), "rb") as f:
            data = f.read()
        self.assertNotIn(b"SECRET-TOKEN-42", data)
        self.assertNotIn(b"host-1234", data)
        self.assertIn(b"timeout at", data)
        st = self.stat(j)
        self.assertEqual((st["props_dropped"], st["values_redacted"]), (1, 1))

    def test_indented_lines_comments_and_case(self):
        j = os.path.join(self.tmp, "j")
        conf = self.write_conf("; a comment\n# another\n\n  [Journal]\n    DIR = %s\n\n[recorder]\n"
                               "  durability = relaxed\n" % j)
        rc, out, err = self.run_env([RECORD, "--config", conf, "-t", "x", "-d", "d1"])
        self.assertEqual(rc, 0, err)
        self.assertTrue(os.path.exists(j))


class Show(ConfigCase):

    def test_config_text_and_json(self):
        keyfile = os.path.join(self.tmp, "api-key")
        with open(keyfile, "w") as f:
            f.write("SHOWKEY-0a1b2c3d4e5f\n")
        conf = self.write_conf("[journal]\ndir = /srv/j\n[replayer]\ntimeout = 12\napi_key_file = %s\n"
                               "gzip = false\n[privacy]\ndeny = event_properties.email\n"
                               "deny = user_properties\nredact = [0-9]{4}-[0-9]{4}\n" % keyfile)
        rc, out, err = self.run_env([JOURNAL, "--config", conf, "config"])
        self.assertEqual(rc, 0, err)
        self.assertIn("# configuration file %s (--config): read" % conf, out)
        self.assertRegex(out, r"(?m)^journal\.dir += /srv/j  # %s:2$" % conf)
        self.assertRegex(out, r"(?m)^replayer\.timeout += 12  # %s:4$" % conf)
        self.assertRegex(out, r"(?m)^replayer\.retry_for += 60  # default$")
        self.assertRegex(out, r"(?m)^replayer\.gzip += false  # %s:6$" % conf)
        self.assertRegex(out, r"(?m)^replayer\.api_key_file += %s  # %s:5$" % (keyfile, conf))
        self.assertRegex(out, r"(?m)^replayer\.api_key += \(hidden\)")
        self.assertRegex(out, r"(?m)^privacy\.deny += event_properties\.email  # %s:8$" % conf)
        self.assertRegex(out, r"(?m)^privacy\.deny += user_properties  # %s:9$" % conf)
        self.assertRegex(out, r"(?m)^privacy\.allow += \(none\)  # default$")
        self.assertNotIn("SHOWKEY", out + err)

        rc, out, err = self.run_env([JOURNAL, "--config", conf, "config", "--json"],
                                    env=clean_env(FERRY_API_KEY="ENVKEY-99887766", FERRY_OPT_OUT="true"))
        self.assertEqual(rc, 0, err)
        self.assertNotIn("ENVKEY", out + err)
        self.assertNotIn("SHOWKEY", out + err)
        doc = json.loads(out)
        self.assertEqual((doc["config_file"], doc["named_by"], doc["found"]), (conf, "--config", True))
        by = {}
        for s in doc["settings"]:
            by.setdefault(s["key"], []).append(s)
        self.assertEqual(by["replayer.timeout"], [{"key": "replayer.timeout", "value": "12", "source": "file",
                                                   "file": conf, "line": 4}])
        self.assertEqual(by["replayer.api_key"][0]["source"], "env")
        self.assertEqual(by["replayer.api_key"][0]["value"], "(hidden)")
        self.assertEqual(by["recorder.opt_out"][0]["value"], "true")
        self.assertEqual(by["recorder.opt_out"][0]["env"], "FERRY_OPT_OUT")
        self.assertEqual([s["value"] for s in by["privacy.deny"]], ["event_properties.email", "user_properties"])
        self.assertEqual([s["line"] for s in by["privacy.redact"]], [10])
        self.assertEqual(by["privacy.allow"], [{"key": "privacy.allow", "value": None, "source": "default"}])
        self.assertEqual(by["replayer.sink"][0]["value"], "amplitude")

    def test_every_key_of_the_example_file(self):
        """contrib/ferry.conf names every key (commented out); uncommented
        it is a valid file with the documented defaults."""
        src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "contrib", "ferry.conf")
        with open(src) as f:
            text = f.read()
        rc, out, err = self.run_env([JOURNAL, "--config", src, "config", "--json"])
        self.assertEqual(rc, 0, err)
        keys = {s["key"] for s in json.loads(out)["settings"]}
        for k in keys - {"replayer.api_key"}:
            self.assertRegex(text, r"(?m)^#? ?%s = " % k.split(".")[1], k)
        import re
        active = re.sub(r"(?m)^#(?= ?[a-z_]+ = )", "", text)
        active = re.sub(r"(?m)^ ?api_key = .*$", "", active)  # the one refused key
        conf = self.write_conf(active)
        rc, out, err = self.run_env([RECORD, "--config", conf, "-j", self.journal, "-t", "x", "-d", "d1"])
        self.assertEqual(rc, 0, err)
        # Injected settings are parsed before --help: a bad one would stop it.
        rc, out, err = self.run_env([REPLAY, "--config", conf, "-j", self.journal, "--once", "--endpoint",
                                     "http://127.0.0.1:9", "--retry-for", "0", "--help"],
                                    env=clean_env(FERRY_API_KEY="k-1234567"))
        self.assertEqual(rc, 0, err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
