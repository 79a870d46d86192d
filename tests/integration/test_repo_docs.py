#!/usr/bin/python3
"""The repository is self-contained: no tracked file points at material
outside it, docs/DESIGN.md exists, and every "DESIGN.md section N" that a
tracked file cites names a section N that docs/DESIGN.md has as a heading
"## N. ...".

Forms of a citation, as the tree writes them ("docs/" optional, the words
may be split over comment lines):
    DESIGN.md section 5            DESIGN.md section 4, step 5
    DESIGN.md section 4 steps 2 to 4
    DESIGN.md sections 3 and 4     DESIGN.md §3      section 6 of DESIGN.md
Only the section numbers are checked; steps are not.

The files are those of `git ls-files` in $WWSF_SOURCE_ROOT (else the
repository this file is in); binary files (a NUL byte) are left out.
Standard library only."""

import os
import re
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.environ.get("WWSF_SOURCE_ROOT") or os.path.dirname(os.path.dirname(HERE))
DESIGN = os.path.join("docs", "DESIGN.md")

# Material that lives outside the repository. Built from pieces, so that this
# file does not contain the strings it looks for.
OUTSIDE = [
    ".." + "/shared",
    "shared" + "/DESIGN.md",
    "000_" + "5d594d5fce5f463d",
]

# Between "DESIGN.md" and "section": spaces, line breaks and the comment
# leaders of a wrapped comment (" * ", "# ", "-- ", "; "), a comma or "(".
_GAP = r"[\s*#/;,(\-]*"
# One number, or a list or range of them: "3", "3 and 4", "3, 4 and 5",
# "3 to 5", "3-5", "§3 and §4".
_NUMBERS = r"(\d+(?:\s*(?:,\s*(?:and\s+|or\s+)?|and|or|&|to|-|–)\s*§?\s*\d+)*)"
REFERENCE_AFTER = re.compile(r"DESIGN\.md" + _GAP + r"(?:sections?\b\s*|§\s*)" + _NUMBERS, re.IGNORECASE)
REFERENCE_BEFORE = re.compile(r"(?:sections?\b\s*|§\s*)" + _NUMBERS + r"\s+(?:of|in)\s+(?:the\s+)?(?:docs/)?DESIGN\.md",
                              re.IGNORECASE)
HEADING = re.compile(r"^## (\d+)\.", re.MULTILINE)


def section_numbers(text):
    """The numbers of "3", "3 and 4", "3, 4", "3 to 5", "3-5"."""
    found = set()
    for m in re.finditer(r"(\d+)(?:\s*(?:to|-|–)\s*§?\s*(\d+))?", text):
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) else first
        if last < first or last - first > 50:
            last = first
        found.update(range(first, last + 1))
    return found


def references(text):
    """(section number, line number, the citation as written) for each citation in text."""
    out = []
    for pattern in (REFERENCE_AFTER, REFERENCE_BEFORE):
        for m in pattern.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            cited = " ".join(m.group(0).split())
            for n in sorted(section_numbers(m.group(1))):
                out.append((n, line, cited))
    return out


def tracked_files(root):
    """Paths (relative to root) of the files git tracks, or None outside a git checkout."""
    try:
        r = subprocess.run(["git", "-C", root, "ls-files", "-z"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           check=False)
    except FileNotFoundError:
        return None
    if r.returncode != 0:
        return None
    return [p for p in r.stdout.decode("utf-8", "surrogateescape").split("\0") if p]


def text_files(root):
    """(path, text) of every tracked file that exists and is not binary."""
    for rel in tracked_files(root) or []:
        path = os.path.join(root, rel)
        if not os.path.isfile(path):
            continue        # deleted in the work tree, or a submodule
        with open(path, "rb") as f:
            data = f.read()
        if b"\0" in data:
            continue        # binary (the screenshot, ...)
        yield rel, data.decode("utf-8", "replace")


class RepoDocs(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if tracked_files(SOURCE_ROOT) is None:
            raise unittest.SkipTest("%s is not a git checkout (or git is missing)" % SOURCE_ROOT)
        cls.files = list(text_files(SOURCE_ROOT))

    def test_sees_the_tree(self):
        names = {rel for rel, _ in self.files}
        for rel in ("README.md", "meson.build", "tests/integration/test_repo_docs.py"):
            self.assertIn(rel, names, "git ls-files in %s does not list %s" % (SOURCE_ROOT, rel))

    def test_nothing_points_outside_the_repository(self):
        bad = []
        for rel, text in self.files:
            for needle in OUTSIDE:
                start = 0
                while True:
                    i = text.find(needle, start)
                    if i < 0:
                        break
                    bad.append("%s:%d: %r" % (rel, text.count("\n", 0, i) + 1, needle))
                    start = i + 1
        self.assertEqual(bad, [], "tracked files refer to material outside the repository "
                         "(say it in docs/DESIGN.md instead):\n  " + "\n  ".join(bad))

    def test_design_exists_with_numbered_sections(self):
        path = os.path.join(SOURCE_ROOT, DESIGN)
        self.assertTrue(os.path.isfile(path), "%s is missing" % DESIGN)
        names = {rel for rel, _ in self.files}
        self.assertIn(DESIGN, names, "%s is not tracked by git" % DESIGN)
        with open(path, encoding="utf-8") as f:
            numbers = [int(n) for n in HEADING.findall(f.read())]
        self.assertTrue(numbers, "%s has no '## N.' headings" % DESIGN)
        self.assertEqual(len(numbers), len(set(numbers)), "%s numbers a section twice: %s" % (DESIGN, numbers))

    def test_every_cited_section_exists(self):
        with open(os.path.join(SOURCE_ROOT, DESIGN), encoding="utf-8") as f:
            sections = {int(n) for n in HEADING.findall(f.read())}
        cited, bad = 0, []
        for rel, text in self.files:
            for n, line, as_written in references(text):
                cited += 1
                if n not in sections:
                    bad.append("%s:%d: %r: %s has no section %d" % (rel, line, as_written, DESIGN, n))
        self.assertEqual(bad, [], "citations of sections that do not exist (sections: %s):\n  %s"
                         % (sorted(sections), "\n  ".join(bad)))
        # The tree cites sections 3 to 6 in about twenty places: finding none
        # means the pattern broke, not that the tree is clean.
        self.assertGreater(cited, 10, "found only %d citations of DESIGN.md sections" % cited)

    def test_reference_forms(self):
        """The citation pattern itself, on the forms the tree uses."""
        cases = {
            "(see DESIGN.md section 5)": [5],
            "docs/DESIGN.md section 4 steps 2 to 4": [4],
            "(DESIGN.md\n * section 4, step 5): the same": [4],
            "# as in DESIGN.md\n# section 6": [6],
            "-- DESIGN.md\n-- section 3": [3],
            "DESIGN.md sections 3 and 4": [3, 4],
            "DESIGN.md sections 3, 4 and 7": [3, 4, 7],
            "DESIGN.md sections 3 to 5": [3, 4, 5],
            "DESIGN.md §6": [6],
            "docs/DESIGN.md §§": [],
            "section 6 of docs/DESIGN.md": [6],
            "DESIGN.md Section 8": [8],
            "see DESIGN.md for the flows": [],
            "DESIGN.md section 3, in the order of section 4": [3],
        }
        for text, want in cases.items():
            with self.subTest(text=text):
                self.assertEqual(sorted(n for n, _, _ in references(text)), want)


if __name__ == "__main__":
    unittest.main(verbosity=2)
