#!/usr/bin/python3
"""`wwsfctl config check`: the shipped examples pass; broken files are refused
with exit 1, "bad config" and a FILE:LINE: reason line for the right line."""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wwsf_testlib as t  # noqa: E402


def line_of(lines, needle, nth=1):
    """1-based number of the nth line containing needle."""
    seen = 0
    for i, l in enumerate(lines):
        if needle in l:
            seen += 1
            if seen == nth:
                return i + 1
    raise AssertionError("test bug: %r not in the config" % needle)


class ConfigExamples(t.TempDirTestCase):

    def check(self, *files):
        return t.run_wwsfctl(["config", "check"] + list(files))

    def test_each_example_alone(self):
        examples = t.example_configs()
        self.assertTrue(examples, "no pool-config/*.ini found in %s" % t.POOL_CONFIG_DIR)
        for f in examples:
            with self.subTest(file=os.path.basename(f)):
                r = self.check(f)
                self.assertEqual(r.rc, 0, "config check of a shipped example failed:\n%s" % r)

    def test_all_examples_together(self):
        r = self.check(*t.example_configs())
        self.assertEqual(r.rc, 0, "config check of all shipped examples together failed:\n%s" % r)
        r = self.check("--json", *t.example_configs())
        self.assertEqual(r.rc, 0, str(r))
        out = r.json()
        self.assertIs(out["ok"], True, str(r))
        self.assertEqual(out["errors"], [], str(r))

    def test_examples_import_cleanly(self):
        ctl = self.ctl()
        ctl.import_(*t.example_configs())
        ctl.db_check()

    # --- broken files -------------------------------------------------------

    def expect_bad(self, files, expected, keyword):
        """files: {name: lines}. expected: (name, [acceptable line numbers]).
        keyword: regular expression the reason must match (case-insensitive)."""
        paths = {}
        for name, lines in files.items():
            paths[name] = t.write_lines(self.path(name), lines)
        r = self.check(*paths.values())
        self.assertEqual(r.rc, 1, "expected exit 1 (bad config):\n%s" % r)
        self.assertIn("bad config", r.err, "stderr should say 'bad config':\n%s" % r)
        name, ok_lines = expected
        path = paths[name]
        found = []
        for l in r.err.splitlines():
            m = re.match(r"^(.*?):(\d+): (.+)$", l)
            if m and m.group(1) == path:
                found.append((int(m.group(2)), m.group(3)))
        self.assertTrue(found, "no '%s:LINE: reason' line on stderr:\n%s" % (path, r))
        hits = [(n, why) for n, why in found if n in ok_lines]
        self.assertTrue(hits, "no problem reported for %s line %s (got lines %s):\n%s"
                        % (name, " or ".join(map(str, ok_lines)), [n for n, _ in found], r))
        self.assertTrue(any(re.search(keyword, why, re.I) for _, why in hits),
                        "the reason for %s:%s does not match /%s/:\n%s" % (name, ok_lines, keyword, r))
        return r

    def sub(self, **kw):
        return t.subscription_ini("s1", **kw)

    def test_unknown_key_in_pool(self):
        lines = self.sub() + t.pool_ini("p1", ["colour = blue"] + t.list_entries("a", 2))
        self.expect_bad({"unknown-key.ini": lines}, ("unknown-key.ini", [line_of(lines, "colour")]), r"unknown key")

    def test_unknown_key_in_subscription(self):
        lines = self.sub() + t.pool_ini("p1", t.list_entries("a", 2), subscription="s1")
        lines.insert(2, "flavour = vanilla")
        self.expect_bad({"unknown-key-sub.ini": lines},
                        ("unknown-key-sub.ini", [line_of(lines, "flavour")]), r"unknown key")

    def test_missing_domain_without_pools(self):
        lines = ["[subscription s1]", "owner = none", "impi_mode = per-entry"]
        self.expect_bad({"no-domain.ini": lines}, ("no-domain.ini", [1]), r"domain")

    def test_missing_domain(self):
        # The usual case: a pool of that subscription follows.
        lines = (["[subscription s1]", "owner = none", "impi_mode = per-entry", ""]
                 + t.pool_ini("p1", t.list_entries("a", 2), subscription="s1"))
        self.expect_bad({"no-domain-pool.ini": lines}, ("no-domain-pool.ini", [1]), r"domain")

    def test_unknown_subscription(self):
        lines = self.sub() + t.pool_ini("p1", t.list_entries("a", 2), subscription="nosuch")
        self.expect_bad({"unknown-sub.ini": lines},
                        ("unknown-sub.ini", [line_of(lines, "subscription = nosuch")]), r"unknown subscription")

    def test_bad_range_first_greater_than_last(self):
        lines = self.sub() + t.pool_ini("p1", ["impu_range = sip:+1555{9..1}@%s" % t.DOMAIN,
                                               "impi_range = u{1..9}@%s" % t.DOMAIN], subscription="s1")
        self.expect_bad({"bad-range.ini": lines}, ("bad-range.ini", [line_of(lines, "impu_range")]),
                        r"greater|FIRST|LAST|range")

    def test_bad_impi_range_first_greater_than_last(self):
        lines = self.sub() + t.pool_ini("p1", ["impu_range = sip:+1555{1..9}@%s" % t.DOMAIN,
                                               "impi_range = u{9..1}@%s" % t.DOMAIN], subscription="s1")
        self.expect_bad({"bad-impi-range.ini": lines}, ("bad-impi-range.ini", [line_of(lines, "impi_range")]),
                        r"greater|FIRST|LAST|range")

    def test_range_impi_count_mismatch(self):
        lines = self.sub() + t.pool_ini("p1", ["impu_range = sip:+1555{00..99}@%s" % t.DOMAIN,
                                               "impi_range = u{00..49}@%s" % t.DOMAIN], subscription="s1")
        self.expect_bad({"mismatch.ini": lines}, ("mismatch.ini", [line_of(lines, "impi_range")]),
                        r"impi_range")

    def test_range_impi_count_mismatch_impi_first(self):
        # The same mismatch with impi_range written before impu_range: the
        # order of keys in a section must not matter.
        lines = self.sub() + t.pool_ini("p1", ["impi_range = u{00..49}@%s" % t.DOMAIN,
                                               "impu_range = sip:+1555{00..99}@%s" % t.DOMAIN], subscription="s1")
        self.expect_bad({"mismatch-order.ini": lines},
                        ("mismatch-order.ini", [line_of(lines, "impi_range"), line_of(lines, "impu_range")]),
                        r"impi_range|impu_range")

    def test_duplicate_entry(self):
        entries = t.list_entries("a", 3) + ["entry = sip:a-2@%s dup@%s" % (t.DOMAIN, t.DOMAIN)]
        lines = self.sub() + t.pool_ini("p1", entries, subscription="s1")
        self.expect_bad({"dup-entry.ini": lines}, ("dup-entry.ini", [line_of(lines, "sip:a-2@", nth=2)]),
                        r"twice|duplicate")

    def test_duplicate_entry_across_pools(self):
        lines = (self.sub() + t.pool_ini("p1", t.list_entries("a", 3), subscription="s1")
                 + t.pool_ini("p2", ["entry = sip:a-3@%s x@%s" % (t.DOMAIN, t.DOMAIN)], subscription="s1"))
        self.expect_bad({"dup-pools.ini": lines}, ("dup-pools.ini", [line_of(lines, "sip:a-3@", nth=2)]),
                        r"already|twice|duplicate")

    def test_duplicate_key(self):
        lines = self.sub() + t.pool_ini("p1", ["kind = authenticated"] + t.list_entries("a", 2), subscription="s1")
        self.expect_bad({"dup-key.ini": lines}, ("dup-key.ini", [line_of(lines, "kind =", nth=2)]),
                        r"twice|duplicate")

    def test_overlapping_ranges_across_files(self):
        a = self.sub() + t.pool_ini("p1", ["impu_range = sip:+1555{000..499}@%s" % t.DOMAIN,
                                           "impi_range = a{000..499}@%s" % t.DOMAIN], subscription="s1")
        b = t.pool_ini("p2", ["impu_range = sip:+1555{400..999}@%s" % t.DOMAIN,
                              "impi_range = b{400..999}@%s" % t.DOMAIN], subscription="s1")
        self.expect_bad({"a.ini": a, "b.ini": b}, ("b.ini", [line_of(b, "[pool p2]"), line_of(b, "impu_range")]),
                        r"overlap")

    def test_overlapping_ranges_of_different_width(self):
        # sip:+1555{00..99} holds sip:+155500 .. sip:+155599; sip:+15550{0..9}
        # is sip:+155500 .. sip:+155509: ten IMPUs in both pools.
        a = self.sub() + t.pool_ini("p1", ["impu_range = sip:+1555{00..99}@%s" % t.DOMAIN,
                                           "impi_range = a{00..99}@%s" % t.DOMAIN], subscription="s1")
        b = t.pool_ini("p2", ["impu_range = sip:+15550{0..9}@%s" % t.DOMAIN,
                              "impi_range = b{0..9}@%s" % t.DOMAIN], subscription="s1")
        self.expect_bad({"a.ini": a, "b.ini": b}, ("b.ini", [line_of(b, "[pool p2]"), line_of(b, "impu_range")]),
                        r"overlap")

    def test_listed_entry_inside_range(self):
        a = self.sub() + t.pool_ini("p1", ["impu_range = sip:+1555{00..99}@%s" % t.DOMAIN,
                                           "impi_range = a{00..99}@%s" % t.DOMAIN], subscription="s1")
        b = t.pool_ini("p2", ["entry = sip:+155542@%s x@%s" % (t.DOMAIN, t.DOMAIN)], subscription="s1")
        self.expect_bad({"a.ini": a, "b.ini": b}, ("b.ini", [line_of(b, "sip:+155542")]), r"inside|overlap")

    def test_quarantine_shorter_than_lease_ttl(self):
        lines = self.sub() + t.pool_ini("p1", t.list_entries("a", 2), subscription="s1", lease_ttl="1h",
                                        quarantine="30m")
        self.expect_bad({"short-hold.ini": lines}, ("short-hold.ini", [line_of(lines, "quarantine =")]),
                        r"shorter|quarantine")

    def test_wildcard_regex_no_token_matches(self):
        lines = (t.subscription_ini("s1", impi_mode="shared")
                 + t.pool_ini("p1", ["impu_wildcard = sip:web-![A-Z]+!@%s" % t.DOMAIN, "size = 100",
                                     "impi = shared@%s" % t.DOMAIN], subscription="s1"))
        self.expect_bad({"wildcard.ini": lines}, ("wildcard.ini", [line_of(lines, "impu_wildcard")]),
                        r"match")

    def test_size_on_range_pool(self):
        # 'size' belongs to wildcard pools; on a range it would silently cut
        # the pool short (after impu_range) or be overridden (before it).
        for order in ("after", "before"):
            with self.subTest(size=order + " impu_range"):
                src = ["impu_range = sip:+1555{00..99}@%s" % t.DOMAIN, "impi_range = u{00..99}@%s" % t.DOMAIN]
                src = src + ["size = 5"] if order == "after" else ["size = 5"] + src
                lines = self.sub() + t.pool_ini("p1", src, subscription="s1")
                name = "range-size-%s.ini" % order
                self.expect_bad({name: lines}, (name, [line_of(lines, "size ="), line_of(lines, "[pool p1]")]),
                                r"size")

    def test_wildcard_size_beyond_its_tokens(self):
        # Four digits make 10000 distinct IMPUs: a pool cannot promise 100000.
        lines = (t.subscription_ini("s1", impi_mode="shared")
                 + t.pool_ini("p1", ["impu_wildcard = sip:m-![0-9]+!@%s" % t.DOMAIN, "token_length = 4",
                                     "size = 100000", "impi = m@%s" % t.DOMAIN], subscription="s1"))
        self.expect_bad({"wildcard-size.ini": lines},
                        ("wildcard-size.ini", [line_of(lines, "size ="), line_of(lines, "impu_wildcard"),
                                               line_of(lines, "token_length"), line_of(lines, "[pool p1]")]),
                        r"size|distinct|token")

    def test_garbage_line(self):
        lines = self.sub() + t.pool_ini("p1", ["this line has no equals sign"] + t.list_entries("a", 2),
                                        subscription="s1")
        self.expect_bad({"garbage.ini": lines}, ("garbage.ini", [line_of(lines, "no equals sign")]),
                        r"key\s*=\s*value|expected|syntax|garbage")

    def long_entry(self, length):
        head, tail = "entry = sip:", "@%s long@%s" % (t.DOMAIN, t.DOMAIN)
        line = head + "x" * (length - len(head) - len(tail)) + tail
        assert len(line) == length
        return line

    def test_line_too_long(self):
        lines = self.sub() + t.pool_ini("p1", [self.long_entry(260)] + t.list_entries("a", 2), subscription="s1")
        self.expect_bad({"long.ini": lines}, ("long.ini", [line_of(lines, "long@")]), r"longer|too long")

    def test_longest_allowed_line_accepted(self):
        # The refusal names the limit ("line longer than N characters"); a line
        # of exactly N characters must then be accepted.
        lines = self.sub() + t.pool_ini("p1", [self.long_entry(400)] + t.list_entries("a", 2), subscription="s1")
        r = self.expect_bad({"long.ini": lines}, ("long.ini", [line_of(lines, "long@")]), r"longer|too long")
        m = re.search(r"longer than (\d+)", r.err)
        self.assertTrue(m, "the message should name the limit:\n%s" % r)
        limit = int(m.group(1))
        lines = self.sub() + t.pool_ini("p1", [self.long_entry(limit)] + t.list_entries("a", 2), subscription="s1")
        path = t.write_lines(self.path("limit.ini"), lines)
        r = self.check(path)
        self.assertEqual(r.rc, 0, "a line of exactly %d characters (the limit the refusal names) was refused:\n%s"
                         % (limit, r))

    def test_shared_impi_pool_without_impi(self):
        lines = (t.subscription_ini("s1", impi_mode="shared")
                 + t.pool_ini("p1", t.list_entries("a", 2, shared=True), subscription="s1"))
        self.expect_bad({"no-impi.ini": lines},
                        ("no-impi.ini", [line_of(lines, "[pool p1]"), line_of(lines, "subscription = s1")]),
                        r"impi")

    def test_every_problem_reported_in_one_run(self):
        # Two independent problems in two files: both named, exit 1.
        a = self.sub() + t.pool_ini("p1", ["colour = blue"] + t.list_entries("a", 2), subscription="s1")
        b = t.pool_ini("p2", t.list_entries("b", 2), subscription="s1", lease_ttl="1h", quarantine="1m")
        self.expect_bad({"a.ini": a, "b.ini": b}, ("a.ini", [line_of(a, "colour")]), r"unknown key")
        self.expect_bad({"a.ini": a, "b.ini": b}, ("b.ini", [line_of(b, "quarantine")]), r"shorter|quarantine")

    def test_bad_config_is_not_imported(self):
        lines = self.sub() + t.pool_ini("p1", ["colour = blue"] + t.list_entries("a", 2), subscription="s1")
        path = t.write_lines(self.path("bad.ini"), lines)
        ctl = self.ctl()
        r = ctl.run("pool", "import", path)
        self.assertEqual(r.rc, 1, str(r))
        self.assertIn("bad config", r.err, str(r))
        self.assertIn("%s:%d:" % (path, line_of(lines, "colour")), r.err, str(r))
        self.assertEqual(ctl.json("pool", "list"), [], "nothing may be imported from a bad config")


if __name__ == "__main__":
    t.main()
