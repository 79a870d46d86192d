#!/usr/bin/python3
"""The build, README.md's dependency table and scripts/install-deps agree:
every dependency('NAME') of every meson.build is the -dev package of a row
of the table (through PKG_CONFIG_PACKAGES below), every -dev library package
of the table is a dependency() of the build, the table is one table, and
scripts/install-deps installs every package of the table and nothing the
table does not explain. Reads files only; no build needed."""

import os
import re
import shutil
import subprocess
import unittest

ROOT = os.environ["WWSF_SOURCE_ROOT"]
README = os.path.join(ROOT, "README.md")
INSTALL_DEPS = os.path.join(ROOT, "scripts", "install-deps")
SECTION = "## Dependencies (Debian packages)"

# pkg-config name of a dependency() -> the Debian package that ships its .pc
# file. A new dependency() needs an entry here and a row in README.md.
PKG_CONFIG_PACKAGES = {
    "libmicrohttpd": "libmicrohttpd-dev",
    "gnutls": "libgnutls28-dev",
    "libjwt-gnutls": "libjwt-gnutls-dev",
    "sqlite3": "libsqlite3-dev",
    "ldap": "libldap-dev",
    "jansson": "libjansson-dev",
    "inih": "libinih-dev",
    "cmocka": "libcmocka-dev",
    "lua5.1": "liblua5.1-0-dev",
}
# dependency() names that meson resolves itself, without a package.
MESON_BUILTIN = {"threads"}
# -dev packages of the table that are not a dependency(), and why.
DEV_NOT_A_DEPENDENCY = {
    "libclang-rt-14-dev": "clang's libFuzzer and sanitizer runtimes; clang links them itself",
}


def meson_files():
    """Every meson.build of the source tree, build directories and
    node_modules left out."""
    out = []
    for d, dirs, files in os.walk(ROOT):
        dirs[:] = sorted(x for x in dirs if x not in (".git", "node_modules")
                         and not os.path.exists(os.path.join(d, x, "meson-private")))
        if "meson.build" in files:
            out.append(os.path.join(d, "meson.build"))
    return out


def strip_comment(line):
    """line without its # comment (a # inside a '...' string stays)."""
    quoted = False
    for i, c in enumerate(line):
        if c == "'" and (i == 0 or line[i - 1] != "\\"):
            quoted = not quoted
        elif c == "#" and not quoted:
            return line[:i]
    return line


def meson_dependencies():
    """{pkg-config name: [file:line, ...]} of every dependency('NAME')."""
    found = {}
    for path in meson_files():
        with open(path) as f:
            for n, line in enumerate(f, 1):
                for name in re.findall(r"\bdependency\(\s*'([^']+)'", strip_comment(line)):
                    found.setdefault(name, []).append("%s:%d" % (os.path.relpath(path, ROOT), n))
    return found


def readme_table():
    """[(packages, what for)] of the dependency table, and the section's lines
    that look like table rows but are not part of it."""
    with open(README) as f:
        text = f.read()
    if SECTION not in text:
        raise AssertionError("README.md has no section %r" % SECTION)
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0].splitlines()
    first = next((i for i, l in enumerate(section) if l.startswith("|")), None)
    if first is None:
        raise AssertionError("no table in README.md's %r" % SECTION)
    end = first
    while end < len(section) and section[end].startswith("|"):
        end += 1
    table, stray = section[first:end], [l for l in section[end:] if l.startswith("|")]
    if len(table) < 3 or not re.match(r"^\|\s*-+\s*\|\s*-+\s*\|$", table[1]):
        raise AssertionError("README.md's dependency table has no header row: %r" % table[:2])
    rows = []
    for line in table[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 2:
            raise AssertionError("not a row of two cells (a | in the text?): %r" % line)
        rows.append((re.findall(r"`([^`]+)`", cells[0]), cells[1]))
    return rows, stray


def install_deps_packages():
    """Every package scripts/install-deps may install: the words of its
    packages=( ... ) and packages+=( ... ) arrays."""
    words, inside = [], False
    with open(INSTALL_DEPS) as f:
        for line in f:
            code = line.split("#", 1)[0].strip()
            m = re.match(r"^packages\+?=\((.*)$", code)
            if m:
                code, inside = m.group(1), True
            if not inside:
                continue
            if code.endswith(")"):
                code, inside = code[:-1], False
            words += code.split()
    return set(words)


class Dependencies(unittest.TestCase):

    def setUp(self):
        self.rows, self.stray = readme_table()
        self.listed = {p for packages, _ in self.rows for p in packages}

    def test_table_is_one_table(self):
        self.assertEqual(self.stray, [], "rows of README.md's dependency table after a break in it")
        for packages, purpose in self.rows:
            self.assertTrue(packages, "a row names no `package`: %r" % purpose)
            self.assertTrue(purpose, "row %s says nothing it is for" % packages)

    def test_every_dependency_has_a_row(self):
        deps = meson_dependencies()
        self.assertIn("gnutls", deps, "no dependency() found at all: is the parser broken?")
        for name, where in sorted(deps.items()):
            if name in MESON_BUILTIN:
                continue
            self.assertIn(name, PKG_CONFIG_PACKAGES,
                          "dependency('%s') (%s) is not in this test's PKG_CONFIG_PACKAGES; add it there "
                          "and a row to README.md's dependency table" % (name, ", ".join(where)))
            self.assertIn(PKG_CONFIG_PACKAGES[name], self.listed,
                          "dependency('%s') (%s): README.md's dependency table has no row for %s"
                          % (name, ", ".join(where), PKG_CONFIG_PACKAGES[name]))

    def test_every_dev_package_is_a_dependency(self):
        used = {PKG_CONFIG_PACKAGES.get(name) for name in meson_dependencies()}
        for p in sorted(self.listed):
            if p.endswith("-dev") and p not in DEV_NOT_A_DEPENDENCY:
                self.assertIn(p, used, "README.md lists %s, but no meson.build has its dependency()" % p)

    def test_install_deps_installs_the_table(self):
        installed = install_deps_packages()
        self.assertIn("gcc", installed, "no packages found in scripts/install-deps: is the parser broken?")
        self.assertEqual(sorted(self.listed - installed), [],
                         "in README.md's dependency table but not installed by scripts/install-deps")
        self.assertEqual(sorted(installed - self.listed), [],
                         "installed by scripts/install-deps but not in README.md's dependency table")

    @unittest.skipUnless(shutil.which("dpkg-query"), "not a Debian system")
    def test_packages_ship_the_pc_files(self):
        """This test's own table is right: each package ships NAME.pc."""
        for name, package in sorted(PKG_CONFIG_PACKAGES.items()):
            p = subprocess.run(["dpkg-query", "-L", package], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               encoding="utf-8")
            if p.returncode != 0:
                continue  # not installed here: the build says so by itself
            pc = {os.path.basename(l) for l in p.stdout.splitlines() if l.endswith(".pc")}
            self.assertIn(name + ".pc", pc, "%s does not ship %s.pc" % (package, name))


if __name__ == "__main__":
    unittest.main()
