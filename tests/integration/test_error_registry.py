#!/usr/bin/env python3
"""wwsfd's error registry (src/wwsfd/errors.def) against everything that
speaks of its codes: every error wwsfd can answer goes through the registry
(replies take an enum, and no other file builds an error body), every code of
the registry is answered somewhere, the README's table lists each with its
status and Retry-After, and the WIC words each code the registry gives words
to with those very words, and no other code."""
import glob
import os
import re
import unittest

ROOT = os.environ.get("WWSF_SOURCE_ROOT") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
WWSFD = os.path.join(ROOT, "src", "wwsfd")

ENTRY = re.compile(r'^WWSF_ERROR\((\w+), "([a-z_]+)", (\d{3}), (\d+), (NULL|"((?:[^"\\]|\\.)*)")\)$')


def read(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
        return f.read()


def registry():
    """[(name, code, status, retry_after, words or None)] in file order."""
    rows = []
    for line in read("src", "wwsfd", "errors.def").splitlines():
        if line.startswith("WWSF_ERROR("):
            m = ENTRY.match(line)
            assert m, "malformed registry line: " + line
            rows.append((m.group(1), m.group(2), int(m.group(3)), int(m.group(4)),
                         None if m.group(5) == "NULL" else m.group(6)))
    return rows


def wwsfd_sources():
    return sorted(glob.glob(os.path.join(WWSFD, "**", "*.[ch]"), recursive=True))


def strip_comments(c):
    return re.sub(r"/\*.*?\*/", " ", c, flags=re.S)


class ErrorRegistry(unittest.TestCase):
    def setUp(self):
        self.rows = registry()
        self.codes = {r[1]: r for r in self.rows}

    def test_registry_is_well_formed(self):
        self.assertGreaterEqual(len(self.rows), 20)
        names = [r[0] for r in self.rows]
        self.assertEqual(len(names), len(set(names)), "a name twice")
        self.assertEqual(len(self.codes), len(self.rows), "a code twice")
        for name, code, status, retry, words in self.rows:
            self.assertEqual(name.lower(), code, "the name is the code in capitals")
            self.assertTrue(400 <= status <= 599, code)
            self.assertTrue(0 <= retry <= 3600, code)
            if retry:
                self.assertIn(status, (429, 503), code + ": Retry-After goes with 429 and 503")

    def test_every_reply_goes_through_the_registry(self):
        used = set()
        for path in wwsfd_sources():
            c = strip_comments(open(path, encoding="utf-8").read())
            rel = os.path.relpath(path, ROOT)
            used |= set(re.findall(r"\bWWSF_E_([A-Z_]+)\b", c))
            # The one place that builds an error body.
            if os.path.basename(path) != "http.c":
                self.assertNotRegex(c, r'(json_pack\([^;]*|json_object_set\w*\([^,]+,\s*)"error"',
                                    rel + " builds an error body of its own")
            # Every error reply names a registry entry, never a code string.
            for call in re.finditer(r"\b(reply_error|request_finish_error|admission_fail)\(\s*[^,]+,\s*([^,)]+)", c):
                arg = call.group(2).strip()
                if arg.startswith("enum wwsf_error"):
                    continue        # the declaration or definition itself
                self.assertRegex(arg, r"^(WWSF_E_[A-Z_]+|e)$", "%s: %s" % (rel, call.group(0)))
        names = {r[0] for r in self.rows}
        self.assertEqual(used - names - {"COUNT"}, set(), "used but not in the registry")
        self.assertEqual(names - used, set(), "in the registry but never answered")

    def test_readme_lists_every_code(self):
        readme = read("README.md")
        start = readme.index("<!-- error registry -->")
        end = readme.index("<!-- /error registry -->")
        table = {}
        for line in readme[start:end].splitlines():
            m = re.match(r"^\| `([a-z_]+)` \| (\d{3}) \| (\S+) \|", line)
            if m:
                table[m.group(1)] = (int(m.group(2)), m.group(3))
        self.assertEqual(sorted(table), sorted(self.codes), "README's codes against the registry")
        for code, (_, _, status, retry, _) in self.codes.items():
            self.assertEqual(table[code][0], status, code)
            self.assertEqual(table[code][1], "%ds" % retry if retry else "no", code + ": Retry-After")

    def test_wic_words_each_code(self):
        ui = read("web", "src", "ui.js")
        block = ui[ui.index("const API_PROBLEMS = {"):]
        block = block[:block.index("\n};")]
        wic = {m.group(1): m.group(2).replace("\\'", "'")
               for m in re.finditer(r"^  (\w+): \['\w+', '((?:[^'\\]|\\.)*)'\],$", block, re.M)}
        self.assertEqual(len(wic), len(re.findall(r"^  \w+:", block, re.M)), "an entry the test cannot read")
        self.assertEqual(set(wic) - set(self.codes), set(), "the WIC words codes wwsfd never answers")
        for code, (_, _, _, _, words) in self.codes.items():
            if words is None:
                self.assertNotIn(code, wic, code + ": the registry says generic")
            else:
                self.assertIn(code, wic, code + ": the registry has words the WIC lacks")
                self.assertEqual(wic[code], words, code)


if __name__ == "__main__":
    unittest.main()
