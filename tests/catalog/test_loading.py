"""Catalog files: every loading error names FILE:LINE; escapes, BOM, CRLF,
extra columns and blank lines are accepted. Checked through ferry-record
--strict --catalog FILE (exit 78 when the catalog cannot be loaded) and
ferry-journal stat --by-type --catalog FILE."""
from catalogtest import CATALOG, EX_CONFIG, EX_DATAERR, EX_OK, EX_USAGE, CatalogTestCase, main

HEADER = "event_type\tcategory\tproperties\n"


class Loading(CatalogTestCase):
    def strict(self, catalog, event_type="Service start"):
        return self.record(self.path("j"), "--strict", "--catalog", catalog, "-t", event_type, "-d", "dev1")

    def assertLoadError(self, content, line, fragment):
        p = self.write("bad.tsv", content)
        rc, _, err = self.strict(p)
        self.assertEqual(rc, EX_CONFIG, err)
        where = "%s:%d:" % (p, line) if line else "%s:" % p
        self.assertIn(where, err)
        self.assertIn(fragment, err)
        # nothing was created or recorded
        rc, _, err2 = self.journal_tool(self.path("j"), "stat")
        self.assertNotEqual(rc, EX_OK)

    def test_errors_name_file_and_line(self):
        cases = [
            ("", 0, "empty"),
            ("\n\n", 0, "empty"),
            ("name\tcategory\n", 1, "no event_type column"),
            ("event_type\tkind\n", 1, "no category column"),
            ("event_type\tcategory\tevent_type\n", 1, "appears twice"),
            (HEADER + "Service start\tSystemEvent\t{}\nService stop\tSystemEvent\n", 3, "2 field(s), the header has 3"),
            (HEADER + "Service start\tSystemEvent\t{}\tx\n", 2, "4 field(s)"),
            (HEADER + "A\tB\t{}\nService\\qstart\tSystemEvent\t{}\n", 3, "unknown escape \"\\q\""),
            (HEADER + "trailing\\\tSystemEvent\t{}\n", 2, "unknown escape"),
            (HEADER + "\tSystemEvent\t{}\n", 2, "column event_type is empty"),
            (HEADER + "Reboot\t\t{}\n", 2, "column category is empty"),
            (HEADER + "Reboot\tSystemMessage\t{}\nShutdown\tSystemMessage\t{}\nReboot\tX\t{}\n", 4,
             "event_type \"Reboot\" is already listed on line 2"),
            (HEADER + "Bad\x00Name\tSystemEvent\t{}\n", 2, "NUL byte"),
        ]
        for content, line, fragment in cases:
            with self.subTest(content=content[:60]):
                self.assertLoadError(content, line, fragment)

    def test_invalid_utf8_and_long_line(self):
        p = self.write("bad.tsv", HEADER.encode() + b"Caf\xc3(\tSystemEvent\t{}\n")
        rc, _, err = self.strict(p)
        self.assertEqual(rc, EX_CONFIG)
        self.assertIn("%s:2: column event_type is not valid UTF-8" % p, err)
        p = self.write("long.tsv", HEADER + "Reboot\tSystemMessage\t{}\n" + "x" * 70000 + "\tSystemEvent\t{}\n")
        rc, _, err = self.strict(p)
        self.assertEqual(rc, EX_CONFIG)
        self.assertIn("%s:3: line longer than 65536 bytes" % p, err)

    def test_missing_file(self):
        rc, _, err = self.strict(self.path("nope.tsv"))
        self.assertEqual(rc, EX_CONFIG)
        self.assertIn("nope.tsv", err)
        self.assertIn("No such file", err)

    def test_accepted_forms(self):
        # BOM, CRLF, blank lines, columns in another order, extra columns
        content = ("\ufeffnote\tcategory\tevent_type\r\n\r\n"
                   "x\tSystemEvent\tService start\r\n"
                   "\tSystemEvent\tTab\\there\r\n"
                   "\tSystemEvent\tLine\\nbreak and back\\\\slash\r\n")
        p = self.write("ok.tsv", content)
        for name in ("Service start", "Tab\there", "Line\nbreak and back\\slash"):
            rc, _, err = self.strict(p, name)
            self.assertEqual(rc, EX_OK, "%r: %s" % (name, err))
        rc, _, err = self.strict(p, "Line\\nbreak and back\\\\slash")  # the escaped text itself is unknown
        self.assertEqual(rc, EX_DATAERR)

    def test_journal_tool_reports_the_same(self):
        self.record_ok(self.path("j"), "-t", "Reboot", "-d", "dev1")
        p = self.write("bad.tsv", HEADER + "Reboot\tSystemMessage\n")
        rc, _, err = self.journal_tool(self.path("j"), "stat", "--by-type", "--catalog", p)
        self.assertEqual(rc, EX_CONFIG)
        self.assertIn("%s:2:" % p, err)
        rc, _, err = self.journal_tool(self.path("j"), "stat", "--catalog", p)
        self.assertEqual(rc, EX_USAGE)

    def test_shipped_catalog_loads(self):
        rc, _, err = self.strict(CATALOG, "Reboot")
        self.assertEqual(rc, EX_OK, err)


if __name__ == "__main__":
    main()
