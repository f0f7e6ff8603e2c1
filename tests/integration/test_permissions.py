"""Test 7: a new journal directory is 0700 and data.mdb / lock.mdb are 0600,
whatever the umask (022, and even 000)."""
import os
import stat

from ferrytest import FerryTestCase, main


class Permissions(FerryTestCase):

    def mode(self, p):
        return stat.S_IMODE(os.stat(p).st_mode)

    def check(self, root, journal):
        """Every directory created from root down to journal is 0700."""
        p = journal
        while True:
            self.assertEqual(self.mode(p), 0o700, "directory %s is %o" % (p, self.mode(p)))
            if p == root:
                break
            p = os.path.dirname(p)
        for name in ("data.mdb", "lock.mdb"):
            f = os.path.join(journal, name)
            self.assertEqual(self.mode(f), 0o600, "%s is %o" % (f, self.mode(f)))
        self.assertEqual(sorted(os.listdir(journal)), ["data.mdb", "lock.mdb"])

    def with_umask(self, mask, fn):
        old = os.umask(mask)  # inherited by the children
        try:
            fn()
        finally:
            os.umask(old)

    def test_umask_022(self):
        os.chmod(self.tmp, 0o755)

        def run():
            self.record_ok(self.path("a", "b", "journal"), "-t", "x", "-d", "d")
            self.record_ok(self.path("j2"), "--jsonl", "-", input=b'{"event_type":"x","user_id":"u"}\n')
            rc, _, err = self.writer("record", self.path("lib", "journal"), "w", "1")
            self.assertEqual(rc, 0, err)
        self.with_umask(0o022, run)
        self.check(self.path("a"), self.path("a", "b", "journal"))
        self.check(self.path("j2"), self.path("j2"))
        self.check(self.path("lib"), self.path("lib", "journal"))
        self.assertEqual(self.mode(self.tmp), 0o755, "an existing parent's mode was changed")

    def test_umask_000(self):
        def run():
            self.record_ok(self.path("open", "journal"), "-t", "x", "-d", "d")
        self.with_umask(0o000, run)
        self.check(self.path("open"), self.path("open", "journal"))

    def test_tools_keep_modes(self):
        """Reading with ferry-journal and recording again keep the modes."""
        j = self.path("journal")

        def run():
            self.record_ok(j, "-t", "x", "-d", "d")
            self.stat(j)
            self.dump(j)
            self.record_ok(j, "-t", "y", "-d", "d")
        self.with_umask(0o000, run)
        self.check(j, j)


if __name__ == "__main__":
    main()
