#!/usr/bin/python3
"""wwsfctl portal add/list/rotate/revoke/check: the key is printed once, alone
on its line, read back only from stdin, never stored; rotation's grace with
--now; revocation; the list's key states; a schema-1 store upgraded in
place."""

import base64
import hashlib
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wwsf_testlib as t  # noqa: E402

KEY_RE = re.compile(r"^wwsfk_[A-Za-z0-9_-]{11}\.[A-Za-z0-9_-]{43}$")
HOUR = 3600


def secret_of(key):
    """The 32 bytes the key's second part encodes."""
    text = key.split(".", 1)[1]
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    assert len(raw) == 32, key
    return text, raw


def db_bytes(db):
    """The database file and its WAL, as stored on disk."""
    t.checkpoint(db)
    out = b""
    for suffix in ("", "-wal", "-journal"):
        if os.path.exists(db + suffix):
            with open(db + suffix, "rb") as f:
                out += f.read()
    return out


class PortalCli(t.TempDirTestCase):

    def setUp(self):
        super().setUp()
        self.c = self.ctl(now=t.T0)

    def check(self, key, now=None, extra=()):
        """wwsfctl portal check with key on stdin (never in argv)."""
        args = self.c.args(["portal", "check"] + list(extra), now=now)
        p = subprocess.run([t.WWSFCTL] + args, input=key, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           encoding="utf-8", errors="replace", timeout=60)
        return t.Result(args, p.returncode, p.stdout, p.stderr)

    def assert_accepted(self, key, name, now=None):
        r = self.check(key + "\n", now=now)
        self.assertEqual((r.rc, r.out), (0, name + "\n"), str(r))

    def assert_refused(self, key, now=None):
        r = self.check(key + "\n", now=now)
        self.assertEqual(r.rc, t.EXIT_REFUSED, str(r))
        self.assertEqual(r.out, "", str(r))
        self.assertEqual(r.err_lines, ["wwsfctl: key refused"], str(r))

    def add(self, name, *extra, now=None):
        r = self.c.ok("portal", "add", name, *extra, now=now)
        lines = r.out.splitlines()
        self.assertEqual(len(lines), 1, "add prints the key alone on one line:\n%s" % r)
        self.assertRegex(lines[0], KEY_RE, str(r))
        self.assertEqual(r.out, lines[0] + "\n", str(r))
        self.assertEqual(r.err, "", str(r))
        return lines[0]

    def rotate(self, name, *extra, now=None):
        r = self.c.ok("portal", "rotate", name, *extra, now=now)
        lines = r.out.splitlines()
        self.assertEqual(len(lines), 1, str(r))
        self.assertRegex(lines[0], KEY_RE, str(r))
        return lines[0]

    def portal(self, name, now=None):
        rows = [p for p in self.c.json("portal", "list", now=now) if p["name"] == name]
        self.assertEqual(len(rows), 1, "portal list: %r" % rows)
        return rows[0]

    def test_add_prints_the_key_once(self):
        key = self.add("acme")
        o = self.c.json("portal", "add", "beta")
        self.assertEqual(sorted(o), ["key", "name"], str(o))
        self.assertEqual(o["name"], "beta")
        self.assertRegex(o["key"], KEY_RE)
        self.assertNotEqual(o["key"], key)
        self.assert_accepted(key, "acme")
        self.assert_accepted(o["key"], "beta")
        # --json before the command too; a key also without a line end.
        r = self.check(key, extra=["--json"])
        self.assertEqual((r.rc, r.json()), (0, {"name": "acme"}), str(r))
        # Nothing else shows a key.
        listing = self.c.ok("portal", "list").out + self.c.ok("portal", "list", "--json").out
        for k in (key, o["key"]):
            self.assertNotIn(secret_of(k)[0], listing)

    def test_key_is_not_stored(self):
        keys = [self.add("acme"), self.add("beta")]
        keys.append(self.rotate("acme", "--grace", "1h"))
        for k in keys:
            self.assert_accepted(k, "acme" if k != keys[1] else "beta")
        data = db_bytes(self.c.db)
        self.assertGreater(len(data), 0)
        for k in keys:
            text, raw = secret_of(k)
            with self.subTest(key=k):
                self.assertNotIn(k.encode(), data, "the key is in the database file")
                self.assertNotIn(text.encode(), data, "the key's secret is in the database file")
                self.assertNotIn(raw, data, "the decoded secret is in the database file")
                # What is stored is the secret's SHA-256 (so the check above
                # looked at the right file).
                self.assertIn(hashlib.sha256(raw).digest(), data)

    def test_duplicate_and_bad_names(self):
        self.add("acme")
        r = self.c.refused("portal", "add", "acme", keyword="exists already")
        self.assertIn("acme", r.err)
        self.assertEqual(r.out, "")
        self.assertEqual(len(self.c.json("portal", "list")), 1)
        for name in ("", "x" * 65, "a/b", "a b", "acme\n", "ünï"):
            for cmd in (["portal", "add"], ["portal", "rotate"], ["portal", "revoke"]):
                with self.subTest(name=name, cmd=cmd):
                    r = self.c.usage(*(cmd + [name]))
                    self.assertIn("not a portal name", r.err, str(r))
                    self.assertEqual(r.out, "", str(r))
        self.add("x" * 64)
        self.add("a.b_c-9")
        self.assertEqual(sorted(p["name"] for p in self.c.json("portal", "list")), ["a.b_c-9", "acme", "x" * 64])
        for args in (["portal", "add"], ["portal", "add", "a", "b"], ["portal", "add", "z", "--max-pools", "0"],
                     ["portal", "add", "z", "--max-entries", "many"], ["portal", "rotate", "acme", "--grace", "soon"],
                     ["portal", "rotate", "acme", "--grace", "8d"], ["portal", "revoke"], ["portal", "list", "x"],
                     ["portal", "check", "wwsfk_x.y"], ["portal"], ["portal", "frobnicate"]):
            with self.subTest(args=args):
                self.c.usage(*args)
        self.c.refused("portal", "rotate", "nobody", keyword="unknown portal")
        self.c.refused("portal", "revoke", "nobody", keyword="unknown portal")

    def test_check_refuses_what_is_not_a_working_key(self):
        key = self.add("acme")
        other = self.add("beta")
        dot = key.index(".")
        for bad in ("", key[:-1], key + "A", key[:dot] + other[dot:], other[:dot] + key[dot:],
                    key[:10] + ("A" if key[10] != "A" else "B") + key[11:], "wwsfk_" + "A" * 55,
                    key + "\n" + key, " " + key, key * 5):
            with self.subTest(bad=bad):
                self.assert_refused(bad)
        # Far more than a key on stdin is refused, not read to the end.
        r = self.check("x" * 1000000)
        self.assertEqual(r.rc, t.EXIT_REFUSED, str(r))
        self.assert_accepted(key, "acme")

    def test_limits_and_last_used(self):
        key = self.add("acme", "--max-pools", "3", "--max-entries", "500")
        p = self.portal("acme")
        self.assertEqual(p, {"name": "acme", "max_pools": 3, "max_entries": 500, "created_at": t.T0,
                             "last_used_at": None, "key_state": "active", "grace_until": None,
                             "revoked_at": None})
        self.assert_refused("wwsfk_AAAAAAAAAAA." + "A" * 43, now=t.T0 + 5)
        self.assertIsNone(self.portal("acme")["last_used_at"], "a refused key is no use")
        self.assert_accepted(key, "acme", now=t.T0 + 50)
        self.assertEqual(self.portal("acme")["last_used_at"], t.T0 + 50)
        self.add("beta")
        beta = self.portal("beta")
        self.assertEqual((beta["max_pools"], beta["max_entries"]), (16, 100000), "the defaults")
        r = self.c.ok("portal", "list")
        self.assertIn("acme", r.out)
        self.assertIn("active", r.out)
        self.assertIn("2026-01-01T00:00:50Z", r.out, "last used, as a time:\n%s" % r)

    def test_rotate_grace(self):
        old = self.add("acme")
        new = self.rotate("acme", "--grace", "1h", now=t.T0 + 100)
        self.assertNotEqual(old, new)
        end = t.T0 + 100 + HOUR
        p = self.portal("acme", now=t.T0 + 200)
        self.assertEqual((p["key_state"], p["grace_until"]), ("rotating", end), str(p))
        r = self.c.ok("portal", "list", now=t.T0 + 200)
        self.assertIn("rotating until 2026-01-01T01:01:40Z", r.out, str(r))
        self.assert_accepted(old, "acme", now=t.T0 + 200)
        self.assert_accepted(old, "acme", now=end - 1)
        self.assert_refused(old, now=end)
        self.assert_refused(old, now=end + 86400)
        self.assert_accepted(new, "acme", now=end)
        self.assert_accepted(new, "acme", now=end + 86400)
        p = self.portal("acme", now=end)
        self.assertEqual((p["key_state"], p["grace_until"]), ("active", None), str(p))
        # The default grace is an hour; --json prints the key like add.
        o = self.c.json("portal", "rotate", "acme", now=end)
        self.assertEqual(sorted(o), ["key", "name"])
        self.assert_accepted(new, "acme", now=end + HOUR - 1)
        self.assert_refused(new, now=end + HOUR)
        self.assert_accepted(o["key"], "acme", now=end + HOUR)
        # --grace 0: the old key stops at once.
        newest = self.rotate("acme", "--grace", "0", now=end + 10)
        self.assert_refused(o["key"], now=end + 10)
        self.assert_accepted(newest, "acme", now=end + 10)

    def test_revoke(self):
        old = self.add("acme")
        other = self.add("beta")
        new = self.rotate("acme", "--grace", "1h", now=t.T0 + 10)
        r = self.c.ok("portal", "revoke", "acme", now=t.T0 + 20)
        self.assertIn("revoked", r.out)
        for k in (old, new):
            self.assert_refused(k, now=t.T0 + 20)
            self.assert_refused(k, now=t.T0 + 30)
        self.assert_accepted(other, "beta", now=t.T0 + 30)
        p = self.portal("acme", now=t.T0 + 30)
        self.assertEqual((p["key_state"], p["revoked_at"], p["grace_until"]), ("revoked", t.T0 + 20, None), str(p))
        self.assertEqual(self.portal("beta", now=t.T0 + 30)["key_state"], "active")
        r = self.c.ok("portal", "list", now=t.T0 + 30)
        self.assertRegex(r.out, r"(?m)^acme .* revoked$", str(r))
        self.assertEqual(self.c.json("portal", "revoke", "acme"), {"name": "acme", "key_state": "revoked"})
        # A rotation gives a revoked portal a key again.
        again = self.rotate("acme", now=t.T0 + 40)
        self.assert_accepted(again, "acme", now=t.T0 + 40)
        self.assert_refused(new, now=t.T0 + 40)
        self.assertEqual(self.portal("acme", now=t.T0 + 40)["key_state"], "active")

    def test_schema_1_store_is_upgraded(self):
        db = self.path("v1.db")
        with open(os.path.join(t.SOURCE_ROOT, "sql", "0001-lease-store.sql")) as f:
            schema1 = f.read()
        c = t.sql_connect(db)
        c.executescript(schema1)
        c.execute("INSERT INTO subscription (name, owner, domain, impi_mode) "
                  "VALUES ('web', 'acme', 'ims.example.com', 'shared')")
        c.execute("PRAGMA user_version = 1")
        c.commit()
        c.close()
        ctl = t.Ctl(db, now=t.T0)
        self.assertEqual(ctl.json("portal", "list"), [])
        c = t.sql_connect(db)
        try:
            newest = len([n for n in os.listdir(os.path.join(t.SOURCE_ROOT, "sql")) if n.endswith(".sql")])
            self.assertGreaterEqual(newest, 2)
            self.assertEqual(c.execute("PRAGMA user_version").fetchone()[0], newest)
            self.assertEqual(c.execute("SELECT owner FROM subscription WHERE name = 'web'").fetchall(), [("acme",)])
        finally:
            c.close()
        r = ctl.ok("portal", "add", "acme")
        p = subprocess.run([t.WWSFCTL, "--db", db, "portal", "check"], input=r.out, stdout=subprocess.PIPE,
                           encoding="utf-8", timeout=60)
        self.assertEqual((p.returncode, p.stdout), (0, "acme\n"))
        ctl.db_check()
        r = t.run_wwsfctl(["--version"])
        self.assertIn("schema %d" % newest, r.out, str(r))


if __name__ == "__main__":
    t.main()
