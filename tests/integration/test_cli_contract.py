#!/usr/bin/python3
"""The wwsfctl contract other tools rely on: JSON fields, exit statuses 0/1/2
with one clear line on stderr, --help everywhere, idempotent import, schema
version guard."""

import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wwsf_testlib as t  # noqa: E402

COMMANDS = ["config check", "pool import", "pool list", "pool show", "lease acquire", "lease renew",
            "lease release", "lease revoke", "lease list", "lease show", "lease reclaim", "audit", "stats",
            "db check", "portal add", "portal list", "portal rotate", "portal revoke", "portal check"]

# A small list pool of our own next to the shipped examples.
SMALL = "desk"


def small_config(n=3):
    return t.subscription_ini("small-web") + t.pool_ini(SMALL, t.list_entries("d", n), subscription="small-web",
                                                        lease_ttl="10m", quarantine="20m")


def dump(db, ignore=("imported_at",)):
    """Every row of every table (but the ignored columns), for before/after
    comparisons."""
    c = t.sql_connect(db)
    try:
        out = {}
        for (name,) in c.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"):
            cur = c.execute("SELECT * FROM \"%s\"" % name)
            cols = [d[0] for d in cur.description]
            out[name] = sorted(repr({k: v for k, v in zip(cols, row) if k not in ignore}) for row in cur)
        return out
    finally:
        c.close()


def without_imported_at(pools):
    return [{k: v for k, v in p.items() if k != "imported_at"} for p in pools]


class CliContract(t.TempDirTestCase):

    def setUp(self):
        super().setUp()
        self.small = t.write_lines(self.path("small.ini"), small_config())
        self.files = t.example_configs() + [self.small]
        self.c = self.ctl(now=t.T0)
        self.c.import_(*self.files)

    # --- help and usage -----------------------------------------------------

    def test_help_for_every_command(self):
        r = t.run_wwsfctl(["--help"])
        self.assertEqual(r.rc, 0, str(r))
        for cmd in COMMANDS:
            self.assertIn(cmd, r.out, "'wwsfctl --help' does not list %s:\n%s" % (cmd, r))
        for cmd in COMMANDS:
            with self.subTest(command=cmd):
                r = self.c.run(*(cmd.split() + ["--help"]))
                self.assertEqual(r.rc, 0, str(r))
                self.assertIn(cmd, r.out, "help of %s does not name it:\n%s" % (cmd, r))
                self.assertIn("usage", r.out.lower(), str(r))
        for group in ("pool", "lease", "config", "db", "portal"):
            with self.subTest(group=group):
                r = self.c.run(group, "--help")
                self.assertEqual(r.rc, 0, str(r))

    def test_usage_errors_exit_2(self):
        impu = t.list_impu("d", 1)
        cases = [
            [],
            ["frobnicate"],
            ["lease"],
            ["lease", "frobnicate"],
            ["lease", "acquire", "--pool", SMALL],
            ["lease", "acquire", "--holder", "h"],
            ["lease", "acquire", "--pool", SMALL, "--holder", "h", "--no-such-option"],
            ["lease", "acquire", "--pool", SMALL, "--holder", "h", "--client-addr", "not-an-address"],
            ["lease", "renew", "--holder", "h"],
            ["lease", "renew", impu],
            ["lease", "release", impu],
            ["lease", "revoke"],
            ["lease", "revoke", impu, "--holder", "h"],
            ["lease", "list", "--state", "bogus"],
            ["lease", "show"],
            ["lease", "reclaim", "--batch", "0"],
            ["pool", "show"],
            ["pool", "list", "extra"],
            ["config", "check"],
            ["pool", "import"],
            ["audit"],
            ["audit", impu, "--at", "yesterday"],
            ["stats", "extra"],
        ]
        for args in cases:
            with self.subTest(args=" ".join(args)):
                self.c.usage(*args)
        for args in (["--now", "bogus", "stats"], ["--db"]):
            with self.subTest(args=" ".join(args)):
                r = t.run_wwsfctl(args)
                self.assertEqual(r.rc, 2, str(r))

    # --- JSON ---------------------------------------------------------------

    def assert_lease_object(self, o, pool=None, holder=None, state=None):
        for key in ("impu", "impi", "pool", "holder", "expires_at", "state"):
            self.assertIn(key, o, "lease JSON without %r: %s" % (key, o))
        self.assertIsInstance(o["impu"], str)
        self.assertIsInstance(o["impi"], str)
        if o["expires_at"] is None:
            # Only an entry that was never leased has no end time.
            self.assertEqual((o["state"], o["holder"]), ("free", None), "expires_at missing: %s" % o)
        else:
            self.assertIsInstance(o["expires_at"], int, "expires_at must be epoch seconds: %s" % o)
        if pool is not None:
            self.assertEqual(o["pool"], pool, str(o))
        if holder is not None:
            self.assertEqual(o["holder"], holder, str(o))
        if state is not None:
            self.assertEqual(o["state"], state, str(o))

    def test_acquire_json(self):
        o = self.c.acquire(SMALL, "alice", "--client-addr", "192.0.2.7")
        self.assert_lease_object(o, pool=SMALL, holder="alice", state="leased")
        self.assertEqual(o["expires_at"], t.T0 + 600, "expires_at = now + lease_ttl: %s" % o)
        self.assertEqual(o["impu"], t.list_impu("d", 1), str(o))
        self.assertEqual(o["impi"], "d-1@" + t.DOMAIN, str(o))
        self.assertEqual(o["client_addr"], "192.0.2.7", str(o))
        # --json is also accepted before the command.
        r = self.c.ok("--json", "lease", "acquire", "--pool", "customers", "--holder", "bob")
        o = r.json()
        self.assert_lease_object(o, pool="customers", holder="bob", state="leased")
        self.assertEqual(o["impu"], "sip:+15550100000@ims.example.com", str(o))
        self.assertEqual(o["impi"], "+15550100000@ims.example.com", str(o))
        self.assertEqual(o["expires_at"], t.T0 + 3600, str(o))
        # A wildcard pool hands out a generated IMPU, never the wildcard itself.
        o = self.c.acquire("acme-visitors", "carol")
        self.assert_lease_object(o, pool="acme-visitors", holder="carol", state="leased")
        self.assertRegex(o["impu"], r"^sip:web-[a-z2-7]{12}@ims\.example\.com$")
        self.assertEqual(o["impi"], "acme-visitors@ims.example.com")
        o = self.c.acquire("acme-members", "dave")
        self.assertRegex(o["impu"], r"^sip:member-[0-9]{12}@ims\.example\.com$")

    def test_list_json(self):
        a = self.c.acquire(SMALL, "alice")
        b = self.c.acquire("customers", "bob")
        rows = self.c.leases()
        self.assertIsInstance(rows, list)
        for o in rows:
            self.assert_lease_object(o)
        by_impu = {o["impu"]: o for o in rows}
        for got, holder in ((a, "alice"), (b, "bob")):
            self.assertIn(got["impu"], by_impu)
            o = by_impu[got["impu"]]
            self.assert_lease_object(o, pool=got["pool"], holder=holder, state="leased")
            self.assertEqual(o["expires_at"], got["expires_at"])
        leased = self.c.leases("--state", "leased")
        self.assertEqual(sorted(o["impu"] for o in leased), sorted([a["impu"], b["impu"]]))
        free = self.c.leases("--pool", SMALL, "--state", "free")
        self.assertEqual(sorted(o["impu"] for o in free), [t.list_impu("d", 2), t.list_impu("d", 3)])
        self.assertEqual(self.c.leases("--state", "quarantine"), [])
        self.assertEqual([o["impu"] for o in self.c.leases("--pool", "customers")], [b["impu"]])

    def test_json_on_every_data_command(self):
        o = self.c.acquire(SMALL, "alice")
        impu = o["impu"]
        runs = [
            ["config", "check", self.small],
            ["pool", "import", self.small],
            ["pool", "list"],
            ["pool", "show", SMALL],
            ["lease", "list"],
            ["lease", "show", impu],
            ["lease", "renew", impu, "--holder", "alice"],
            ["audit", impu],
            ["stats"],
            ["lease", "reclaim"],
            ["db", "check"],
            ["lease", "release", impu, "--holder", "alice"],
            ["lease", "revoke", impu],
        ]
        for args in runs:
            with self.subTest(args=" ".join(args)):
                self.c.json(*args)
        pool = self.c.pool(SMALL)
        for key in ("pool", "size", "materialised", "leased", "quarantined", "free", "source"):
            self.assertIn(key, pool, str(pool))
        self.assertEqual(pool["size"], 3)

    def test_holder_round_trips_in_json(self):
        # Whatever holder wwsfctl accepts, every JSON object names it: tools
        # match leases to their users by this field.
        holders = ["Zo\u00eb \"q\" \\x", "user@example.org;tag=1", os.fsdecode(b"latin1-\xe9t\xe9")]
        for i, holder in enumerate(holders):
            with self.subTest(holder=repr(holder)):
                r = self.c.run("lease", "acquire", "--pool", SMALL, "--holder", holder, "--json")
                if r.rc == 2:
                    continue    # refused as a usage error: fine too
                self.assertEqual(r.rc, 0, str(r))
                o = r.json()
                self.assertIn("holder", o, "acquire --json dropped the holder: %s" % r.out)
                impu = o["impu"]
                rows = [x for x in self.c.leases() if x["impu"] == impu]
                self.assertIn("holder", rows[0], "lease list --json dropped the holder: %s" % rows)
                self.assertIn("holder", self.c.audit(impu)[0], "audit --json dropped the holder")
                self.assertEqual(rows[0]["holder"], o["holder"])
        for bad in ("", "tab\there", "x" * 300):
            with self.subTest(holder=repr(bad)):
                self.c.usage("lease", "acquire", "--pool", SMALL, "--holder", bad)

    # --- refusals -----------------------------------------------------------

    def test_unknown_pool(self):
        self.c.refused("lease", "acquire", "--pool", "no-such-pool", "--holder", "h", keyword="unknown pool")
        self.c.refused("pool", "show", "no-such-pool", keyword="unknown pool")
        self.c.refused("lease", "list", "--pool", "no-such-pool", keyword="unknown pool")

    def test_exhausted(self):
        for i in range(3):
            self.c.acquire(SMALL, "h%d" % i)
        r = self.c.refused("lease", "acquire", "--pool", SMALL, "--holder", "late", keyword="exhausted")
        self.assertIn("wwsfctl", r.err)
        self.assertEqual(r.out, "", "a refusal prints nothing on stdout:\n%s" % r)
        r = self.c.refused("lease", "acquire", "--pool", SMALL, "--holder", "late", "--json", keyword="exhausted")
        self.assertEqual(r.out, "", "a refusal prints nothing on stdout, JSON or not:\n%s" % r)

    def test_holder_mismatch(self):
        impu = self.c.acquire(SMALL, "alice")["impu"]
        self.c.refused("lease", "release", impu, "--holder", "mallory", keyword="holder mismatch")
        self.c.refused("lease", "renew", impu, "--holder", "mallory", keyword="holder mismatch")
        # Still alice's.
        o = self.c.show(impu)
        self.assertEqual((o["state"], o["holder"]), ("leased", "alice"), str(o))
        self.c.json("lease", "renew", impu, "--holder", "alice")
        self.c.json("lease", "release", impu, "--holder", "alice")

    def test_nothing_to_release(self):
        self.c.refused("lease", "release", t.list_impu("d", 1), "--holder", "alice")
        self.c.refused("lease", "renew", t.list_impu("d", 1), "--holder", "alice")
        self.c.refused("lease", "show", "sip:nobody@elsewhere.example.org")

    def test_bad_config_refused(self):
        lines = small_config() + ["bogus_key = 1"]
        path = t.write_lines(self.path("bad.ini"), lines)
        for cmd in (["config", "check"], ["pool", "import"]):
            with self.subTest(cmd=" ".join(cmd)):
                r = self.c.run(*(cmd + [path]))
                self.assertEqual(r.rc, 1, str(r))
                self.assertIn("bad config", r.err, str(r))
                self.assertIn("%s:%d: " % (path, len(lines)), r.err, str(r))

    # --- import -------------------------------------------------------------

    def test_import_twice_changes_nothing(self):
        o = self.c.acquire(SMALL, "alice")
        self.c.acquire(SMALL, "bob")
        self.c.json("lease", "release", o["impu"], "--holder", "alice", now=t.T0 + 60)
        self.c.acquire("customers", "carol")
        self.c.json("lease", "revoke", "sip:+15550100000@ims.example.com", now=t.T0 + 90)
        now = t.T0 + 120
        # The same files at the same time as the first import: the pool list
        # JSON is identical, imported_at included.
        first = self.c.json("pool", "list", now=now)
        res = self.c.import_(*self.files)
        self.assertEqual((res["entries_added"], res["entries_retired"]), (0, 0), str(res))
        self.assertEqual(self.c.json("pool", "list", now=now), first, "a second import changed the pool list")
        # Later: only imported_at (when the files were last imported) may move.
        before = (first, self.c.leases(now=now), self.c.json("stats", now=now), dump(self.c.db))
        res = self.c.import_(*self.files, now=now + 3600)
        self.assertEqual((res["entries_added"], res["entries_retired"]), (0, 0), str(res))
        after = (self.c.json("pool", "list", now=now), self.c.leases(now=now), self.c.json("stats", now=now),
                 dump(self.c.db))
        self.assertEqual(without_imported_at(after[0]), without_imported_at(before[0]),
                         "pool list changed on a second import of the same files")
        self.assertEqual(after[1], before[1], "lease list changed on a second import of the same files")
        self.assertEqual(after[2], before[2], "stats changed on a second import of the same files")
        self.assertEqual(after[3], before[3], "a second import of the same files changed database rows")
        self.c.db_check()

    def test_reimport_edited_list_pool(self):
        leased = self.c.acquire(SMALL, "alice")
        self.assertEqual(leased["impu"], t.list_impu("d", 1))
        # Remove d-2 (never used) and d-1 (leased), add d-4.
        lines = [l for l in small_config(4) if "d-2@" not in l and "d-1@" not in l]
        t.write_lines(self.small, lines)
        res = self.c.import_(self.small, now=t.T0 + 10)
        self.assertEqual(res["entries_added"], 1, str(res))
        self.assertEqual(res["entries_retired"], 2, str(res))
        rows = {o["impu"]: o for o in self.c.leases("--pool", SMALL, now=t.T0 + 10)}
        self.assertEqual(rows[t.list_impu("d", 2)]["state"], "retired", str(rows))
        # A removed entry's current lease runs on.
        self.assertEqual((rows[t.list_impu("d", 1)]["state"], rows[t.list_impu("d", 1)]["holder"]),
                         ("leased", "alice"), str(rows))
        self.assertEqual(rows[t.list_impu("d", 4)]["state"], "free", str(rows))
        pool = self.c.pool(SMALL, now=t.T0 + 10)
        self.assertEqual(pool["size"], 2, str(pool))
        # Only d-3 and d-4 are handed out now; retired ones never again.
        got = {self.c.acquire(SMALL, h, now=t.T0 + 20)["impu"] for h in ("bob", "carol")}
        self.assertEqual(got, {t.list_impu("d", 3), t.list_impu("d", 4)})
        self.c.refused("lease", "acquire", "--pool", SMALL, "--holder", "dave", now=t.T0 + 20, keyword="exhausted")
        self.c.json("lease", "release", t.list_impu("d", 1), "--holder", "alice", now=t.T0 + 30)
        far = t.T0 + 100000     # every lease and hold above is over
        rows = {o["impu"]: o for o in self.c.leases("--pool", SMALL, now=far)}
        self.assertEqual(rows[t.list_impu("d", 1)]["state"], "retired", str(rows))
        self.assertEqual(rows[t.list_impu("d", 2)]["state"], "retired", str(rows))
        got = {self.c.acquire(SMALL, h, now=far)["impu"] for h in ("x1", "x2")}
        self.assertEqual(got, {t.list_impu("d", 3), t.list_impu("d", 4)})
        self.c.refused("lease", "acquire", "--pool", SMALL, "--holder", "x3", now=far, keyword="exhausted")
        # Listed again: handed out again.
        t.write_lines(self.small, small_config(4))
        res = self.c.import_(self.small, now=far)
        self.assertEqual(res["entries_added"], 0, str(res))
        got = {self.c.acquire(SMALL, h, now=far)["impu"] for h in ("y1", "y2")}
        self.assertEqual(got, {t.list_impu("d", 1), t.list_impu("d", 2)})
        self.c.db_check()

    def test_reimport_resized_range_pool(self):
        def config(last):
            return t.subscription_ini("r-web") + t.pool_ini(
                "rsz", ["impu_range = sip:+1444{00..%s}@%s" % (last, t.DOMAIN),
                        "impi_range = z{00..%s}@%s" % (last, t.DOMAIN)], subscription="r-web")
        path = self.path("rsz.ini")
        impu = lambda i: "sip:+1444%02d@%s" % (i, t.DOMAIN)  # noqa: E731
        t.write_lines(path, config("09"))
        self.c.import_(path)
        for i in range(6):
            self.assertEqual(self.c.acquire("rsz", "h%d" % i)["impu"], impu(i))
        self.c.json("lease", "release", impu(5), "--holder", "h5")
        # Shrink to four: the two materialised entries beyond it are retired;
        # the lease on one of them runs on.
        t.write_lines(path, config("03"))
        res = self.c.import_(path, now=t.T0 + 1)
        self.assertEqual(res["entries_retired"], 2, str(res))
        rows = {o["impu"]: o for o in self.c.leases("--pool", "rsz", now=t.T0 + 1)}
        self.assertEqual((rows[impu(4)]["state"], rows[impu(4)]["holder"]), ("leased", "h4"), str(rows))
        self.assertEqual(rows[impu(5)]["state"], "retired", str(rows))
        pool = self.c.pool("rsz", now=t.T0 + 1)
        self.assertEqual((pool["size"], pool["leased"], pool["free"]), (4, 4, 0), str(pool))
        self.c.refused("lease", "acquire", "--pool", "rsz", "--holder", "new", now=t.T0 + 2, keyword="exhausted")
        later = t.T0 + 5000     # every lease and hold above is over
        got = {self.c.acquire("rsz", "x%d" % i, now=later)["impu"] for i in range(4)}
        self.assertEqual(got, {impu(i) for i in range(4)}, "retired entries are never handed out")
        self.c.refused("lease", "acquire", "--pool", "rsz", "--holder", "x9", now=later, keyword="exhausted")
        # Grow back: never-used entries first, then the restored ones, free longest first.
        t.write_lines(path, config("09"))
        self.c.import_(path, now=later)
        got = [self.c.acquire("rsz", "y%d" % i, now=later)["impu"] for i in range(6)]
        self.assertEqual(got, [impu(6), impu(7), impu(8), impu(9), impu(5), impu(4)])
        self.c.refused("lease", "acquire", "--pool", "rsz", "--holder", "y9", now=later, keyword="exhausted")
        self.assertEqual(self.c.pool("rsz", now=later)["materialised"], 10)
        self.c.db_check()

    # --- show and audit -----------------------------------------------------

    def test_show_range_impu_never_handed_out(self):
        impu = "sip:+15550104242@ims.example.com"
        o = self.c.show(impu)
        self.assertEqual(o["state"], "free", str(o))
        self.assertEqual(o["pool"], "customers", str(o))
        self.assertEqual(o["impi"], "+15550104242@ims.example.com", str(o))
        self.assertIsNone(o["holder"], str(o))
        r = self.c.ok("lease", "show", impu)
        self.assertIn("free", r.out, str(r))
        self.assertNotIn(impu, [x["impu"] for x in self.c.leases()], "never handed out: not listed")
        o = self.c.show("sip:+15569999999@ims.example.com")
        self.assertEqual((o["state"], o["pool"]), ("free", "national"), str(o))
        # Outside every range: refused.
        self.c.refused("lease", "show", "sip:+15550110000@ims.example.com")
        # Once handed out, show follows it.
        got = self.c.acquire("customers", "alice")
        o = self.c.show(got["impu"])
        self.assertEqual((o["state"], o["holder"]), ("leased", "alice"), str(o))

    def test_audit_at_epoch_and_iso(self):
        start = t.T0 - 100
        got = self.c.acquire(SMALL, "alice", "--client-addr", "2001:db8::7", now=start)
        impu = got["impu"]
        for at in (str(t.T0), t.T0_ISO):
            with self.subTest(at=at):
                rows = self.c.audit(impu, at=at)
                self.assertEqual(len(rows), 1, str(rows))
                self.assertEqual(rows[0]["holder"], "alice", str(rows))
                self.assertEqual(rows[0]["from"], start, str(rows))
                self.assertEqual(rows[0]["client_addr"], "2001:db8::7", str(rows))
        self.assertEqual(self.c.audit(impu, at=str(start - 1)), [])
        self.assertEqual(self.c.audit(impu, at="2025-12-31T23:58:19Z"), [], "one second before the lease")
        self.assertEqual(len(self.c.audit(impu, at="2025-12-31T23:58:20Z")), 1, "the second the lease started")
        self.assertEqual(self.c.audit(impu, at=str(start + 600)), [], "the lease ended at start + lease_ttl")
        r = self.c.ok("audit", impu, "--at", str(start - 1))
        self.assertIn("nobody", r.out, str(r))

    # --- schema -------------------------------------------------------------

    def test_newer_schema_refused(self):
        db = self.path("future.db")
        ctl = t.Ctl(db, now=t.T0)
        ctl.import_(self.small)
        c = sqlite3.connect(db)
        c.execute("PRAGMA user_version = 99")
        c.commit()
        c.close()
        for args in (["pool", "list"], ["lease", "list"], ["stats"], ["db", "check"],
                     ["lease", "acquire", "--pool", SMALL, "--holder", "alice"], ["pool", "import", self.small]):
            with self.subTest(args=" ".join(args)):
                ctl.refused(*args, keyword="newer")
        c = sqlite3.connect(db)
        self.assertEqual(c.execute("PRAGMA user_version").fetchone()[0], 99, "a refused store must not be migrated")
        self.assertEqual(c.execute("SELECT count(*) FROM lease_history").fetchone()[0], 0)
        c.close()

    def test_fresh_database_checks_ok(self):
        ctl = self.ctl("fresh.db")
        self.assertEqual(ctl.json("pool", "list"), [])
        ctl.db_check()
        r = ctl.ok("db", "check")
        self.assertEqual(r.out.strip(), "ok")


if __name__ == "__main__":
    t.main()
