#!/usr/bin/python3
"""The lease rules of docs/DESIGN.md section 5, driven through wwsfctl with --now:
affinity, quarantine hold, longest-free-first reuse, per-holder maximum,
exhaustion, revoke, reclaim and the audit trail."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wwsf_testlib as t  # noqa: E402

TTL, HOLD = 600, 1200   # lease_ttl = 10m, quarantine = 20m in every pool below
T0 = t.T0


def rules_config():
    sub = "rules-web"
    return (t.subscription_ini(sub)
            + t.pool_ini("one", t.list_entries("one", 1), subscription=sub)
            + t.pool_ini("four", t.list_entries("four", 4), subscription=sub)
            + t.pool_ini("multi", t.list_entries("multi", 5), subscription=sub, max_per_holder=2)
            + t.pool_ini("rng", ["impu_range = sip:+1999{000..099}@%s" % t.DOMAIN,
                                 "impi_range = r{000..099}@%s" % t.DOMAIN], subscription=sub)
            + t.subscription_ini("wild-web", impi_mode="shared")
            + t.pool_ini("wild", ["impu_wildcard = sip:w-![a-z2-7]+!@%s" % t.DOMAIN, "size = 3",
                                  "token_length = 8", "impi = wild@%s" % t.DOMAIN], subscription="wild-web"))


def impu(pool, i):
    return t.list_impu(pool, i)


class LeaseRules(t.TempDirTestCase):

    def setUp(self):
        super().setUp()
        self.c = self.ctl(now=T0)
        self.c.import_(t.write_lines(self.path("rules.ini"), rules_config()))

    def tearDown(self):
        # The counts kept with each pool (sql/0004-pool-counts.sql), which
        # `pool list` shows, against each entry's own state, at times on both
        # sides of what the test did, forward and back again; and db check,
        # which compares them with a scan.
        try:
            for at in (T0 + 10 * (TTL + HOLD), T0, T0 + TTL + 1, T0 + TTL + HOLD + 1, T0 + 2000, T0 - 1):
                counts = {}
                for e in self.c.json("lease", "list", now=at):
                    c = counts.setdefault(e["pool"], {"leased": 0, "quarantine": 0})
                    if e["state"] in c:
                        c[e["state"]] += 1
                for p in self.c.json("pool", "list", now=at):
                    c = counts.get(p["pool"], {"leased": 0, "quarantine": 0})
                    self.assertEqual((p["leased"], p["quarantined"]), (c["leased"], c["quarantine"]),
                                     "pool %s at %d" % (p["pool"], at))
            self.assertEqual(self.c.ok("db", "check").out.strip(), "ok")
        finally:
            super().tearDown()

    def acquire(self, pool, holder, at, *extra):
        return self.c.acquire(pool, holder, *extra, now=at)

    def exhausted(self, pool, holder, at):
        return self.c.refused("lease", "acquire", "--pool", pool, "--holder", holder, now=at, keyword="exhausted")

    def release(self, x, holder, at):
        return self.c.json("lease", "release", x, "--holder", holder, now=at)

    def state(self, x, at):
        o = self.c.show(x, now=at)
        return o["state"], o["holder"]

    # --- affinity -----------------------------------------------------------

    def test_affinity_while_leased(self):
        for pool in ("four", "rng"):
            with self.subTest(pool=pool):
                a = self.acquire(pool, "alice", T0)
                self.assertEqual(a["origin"], "new", str(a))
                self.acquire(pool, "bob", T0 + 1)
                again = self.acquire(pool, "alice", T0 + 100)
                self.assertEqual(again["impu"], a["impu"], "a holder with a live lease gets it back")
                self.assertEqual(again["origin"], "affinity-live", str(again))
                self.assertEqual(again["expires_at"], T0 + 100 + TTL, "coming back renews the lease")
                mine = [o for o in self.c.leases("--pool", pool, now=T0 + 100) if o["holder"] == "alice"]
                self.assertEqual(len(mine), 1, "affinity must not add a second lease: %s" % mine)

    def test_affinity_in_quarantine_after_release(self):
        for pool in ("four", "rng"):
            with self.subTest(pool=pool):
                a = self.acquire(pool, "alice", T0)
                self.acquire(pool, "bob", T0)
                self.release(a["impu"], "alice", T0 + 10)
                self.assertEqual(self.state(a["impu"], T0 + 20), ("quarantine", "alice"))
                # Other entries are free (never used), yet alice gets hers back.
                again = self.acquire(pool, "alice", T0 + 20)
                self.assertEqual(again["impu"], a["impu"], "affinity in quarantine")
                self.assertEqual(again["origin"], "affinity-quarantine", str(again))
                self.assertEqual(again["expires_at"], T0 + 20 + TTL)
                self.assertEqual(self.state(a["impu"], T0 + 20), ("leased", "alice"))

    def test_affinity_in_quarantine_after_expiry(self):
        a = self.acquire("four", "alice", T0)
        late = T0 + TTL + 100     # expired, nobody reclaimed it, hold not over
        self.assertEqual(self.state(a["impu"], late), ("quarantine", "alice"))
        again = self.acquire("four", "alice", late)
        self.assertEqual((again["impu"], again["origin"]), (a["impu"], "affinity-quarantine"), str(again))
        rows = self.c.audit(a["impu"], now=late)
        self.assertEqual(len(rows), 2, str(rows))
        self.assertEqual(rows[1]["end_reason"], "expired", "the first lease ended by expiry: %s" % rows)
        self.assertEqual(rows[1]["until"], T0 + TTL, str(rows))

    def test_renew_in_quarantine_takes_it_back(self):
        a = self.acquire("one", "alice", T0)
        self.release(a["impu"], "alice", T0 + 10)
        o = self.c.json("lease", "renew", a["impu"], "--holder", "alice", now=T0 + 50)
        self.assertEqual((o["state"], o["holder"], o["expires_at"]), ("leased", "alice", T0 + 50 + TTL), str(o))
        self.c.refused("lease", "renew", a["impu"], "--holder", "bob", now=T0 + 60, keyword="holder mismatch")

    # --- quarantine ---------------------------------------------------------

    def test_hold_after_release(self):
        x = self.acquire("one", "alice", T0)["impu"]
        self.release(x, "alice", T0 + 100)
        free_at = T0 + 100 + HOLD
        for at in (T0 + 101, T0 + 100 + TTL, free_at - 1):
            with self.subTest(at=at - T0):
                self.exhausted("one", "bob", at)
        self.assertEqual(self.state(x, free_at - 1), ("quarantine", "alice"))
        b = self.acquire("one", "bob", free_at)
        self.assertEqual((b["impu"], b["holder"], b["origin"]), (x, "bob", "reused"), str(b))

    def test_hold_after_expiry(self):
        x = self.acquire("one", "alice", T0)["impu"]
        free_at = T0 + TTL + HOLD
        for at in (T0 + 1, T0 + TTL, T0 + TTL + 1, free_at - 1):
            with self.subTest(at=at - T0):
                self.exhausted("one", "bob", at)
        b = self.acquire("one", "bob", free_at)
        self.assertEqual((b["impu"], b["holder"]), (x, "bob"), str(b))
        # alice's affinity is gone with her IMPU.
        self.exhausted("one", "alice", free_at + 1)

    def test_hold_with_renewals(self):
        x = self.acquire("one", "alice", T0)["impu"]
        self.c.json("lease", "renew", x, "--holder", "alice", now=T0 + 500)
        self.c.json("lease", "renew", x, "--holder", "alice", now=T0 + 1000)
        end = T0 + 1000 + TTL
        self.exhausted("one", "bob", end + HOLD - 1)
        self.assertEqual(self.acquire("one", "bob", end + HOLD)["impu"], x)
        rows = self.c.audit(x, now=end + HOLD)
        self.assertEqual([r["holder"] for r in rows], ["bob", "alice"], str(rows))
        self.assertEqual(rows[1]["renewals"], 2, str(rows))
        self.assertEqual(rows[1]["until"], end, str(rows))

    # --- reuse order --------------------------------------------------------

    def test_longest_free_first(self):
        got = [self.acquire("four", "h%d" % i, T0)["impu"] for i in range(1, 5)]
        self.assertEqual(got, [impu("four", i) for i in range(1, 5)], "never-used entries in list order")
        order = [3, 1, 4, 2]
        for k, i in enumerate(order):
            self.release(impu("four", i), "h%d" % i, T0 + 10 * (k + 1))
        later = T0 + 10 * len(order) + HOLD + 1     # every hold is over
        reused = [self.acquire("four", "n%d" % k, later)["impu"] for k in range(4)]
        self.assertEqual(reused, [impu("four", i) for i in order], "the IMPU free longest goes first")
        self.exhausted("four", "n9", later)

    def test_never_used_before_released(self):
        self.acquire("four", "h1", T0)
        self.acquire("four", "h2", T0)
        self.release(impu("four", 2), "h2", T0 + 10)
        self.release(impu("four", 1), "h1", T0 + 20)
        later = T0 + 100000
        reused = [self.acquire("four", "n%d" % k, later)["impu"] for k in range(4)]
        self.assertEqual(reused, [impu("four", 3), impu("four", 4), impu("four", 2), impu("four", 1)],
                         "entries never used have been free longest (since the import)")

    def test_reuse_waits_for_the_hold_one_by_one(self):
        for i in range(1, 5):
            self.acquire("four", "h%d" % i, T0)
        self.release(impu("four", 2), "h2", T0 + 10)
        self.release(impu("four", 4), "h4", T0 + 20)
        self.exhausted("four", "n1", T0 + 10 + HOLD - 1)
        self.assertEqual(self.acquire("four", "n1", T0 + 10 + HOLD)["impu"], impu("four", 2))
        self.exhausted("four", "n2", T0 + 20 + HOLD - 1)
        self.assertEqual(self.acquire("four", "n2", T0 + 20 + HOLD)["impu"], impu("four", 4))

    # --- limits -------------------------------------------------------------

    def test_max_per_holder_with_additional(self):
        a = self.acquire("multi", "alice", T0)
        self.assertEqual(self.acquire("multi", "alice", T0 + 1)["impu"], a["impu"], "without --additional: same")
        b = self.acquire("multi", "alice", T0 + 2, "--additional")
        self.assertNotEqual(b["impu"], a["impu"], "--additional gives another IMPU")
        self.assertEqual(b["holder"], "alice")
        r = self.c.refused("lease", "acquire", "--pool", "multi", "--holder", "alice", "--additional", now=T0 + 3)
        self.assertIn("max", r.err.lower(), "the refusal should say the holder is at its maximum:\n%s" % r)
        mine = sorted(o["impu"] for o in self.c.leases("--pool", "multi", "--state", "leased", now=T0 + 3)
                      if o["holder"] == "alice")
        self.assertEqual(mine, sorted([a["impu"], b["impu"]]))
        # Other holders are not limited by alice.
        self.acquire("multi", "bob", T0 + 4)
        self.acquire("multi", "bob", T0 + 5, "--additional")
        # After a release there is room again; the released IMPU comes back (affinity).
        self.release(b["impu"], "alice", T0 + 10)
        c = self.acquire("multi", "alice", T0 + 11, "--additional")
        self.assertEqual(c["impu"], b["impu"], str(c))
        self.c.refused("lease", "acquire", "--pool", "multi", "--holder", "alice", "--additional", now=T0 + 12)

    def test_default_max_is_one(self):
        self.acquire("four", "alice", T0)
        self.c.refused("lease", "acquire", "--pool", "four", "--holder", "alice", "--additional", now=T0 + 1)

    def test_exhausted(self):
        got = {self.acquire("four", "h%d" % i, T0)["impu"] for i in range(4)}
        self.assertEqual(len(got), 4)
        r = self.exhausted("four", "late", T0 + 1)
        self.assertEqual(r.out, "")
        pool = self.c.pool("four", now=T0 + 1)
        self.assertEqual((pool["leased"], pool["free"]), (4, 0), str(pool))
        self.assertEqual(len(self.c.leases("--pool", "four", "--state", "leased", now=T0 + 1)), 4)
        # A range pool runs out too.
        for i in range(100):
            self.acquire("rng", "r%d" % i, T0)
        self.exhausted("rng", "late", T0 + 1)
        self.assertEqual(self.c.pool("rng", now=T0 + 1)["materialised"], 100)

    def test_wildcard_pool(self):
        got = [self.acquire("wild", "h%d" % i, T0) for i in range(3)]
        impus = [o["impu"] for o in got]
        self.assertEqual(len(set(impus)), 3, "distinct generated IMPUs: %s" % impus)
        for o in got:
            self.assertRegex(o["impu"], r"^sip:w-[a-z2-7]{8}@ims\.example\.com$")
            self.assertEqual(o["impi"], "wild@" + t.DOMAIN)
        self.assertNotIn("sip:w-![a-z2-7]+!@" + t.DOMAIN, impus, "the wildcard itself is never handed out")
        self.exhausted("wild", "late", T0 + 1)
        pool = self.c.pool("wild", now=T0 + 1)
        self.assertEqual((pool["size"], pool["materialised"], pool["leased"]), (3, 3, 3), str(pool))
        # Affinity and reuse work on generated IMPUs as on listed ones.
        self.assertEqual(self.acquire("wild", "h1", T0 + 2)["impu"], impus[1])
        self.release(impus[1], "h1", T0 + 3)
        self.exhausted("wild", "late", T0 + 3 + HOLD - 1)
        self.assertEqual(self.acquire("wild", "late", T0 + 3 + HOLD)["impu"], impus[1])

    # --- revoke -------------------------------------------------------------

    def test_revoke(self):
        x = self.acquire("one", "alice", T0)["impu"]
        o = self.c.json("lease", "revoke", x, now=T0 + 100)
        self.assertEqual(o["state"], "quarantine", str(o))
        self.assertEqual(self.state(x, T0 + 101), ("quarantine", None), "revoke drops the holder")
        # alice lost her affinity; the hold still keeps everybody out.
        self.exhausted("one", "alice", T0 + 200)
        self.exhausted("one", "bob", T0 + 100 + HOLD - 1)
        self.c.refused("lease", "renew", x, "--holder", "alice", now=T0 + 200)
        self.c.refused("lease", "release", x, "--holder", "alice", now=T0 + 200)
        b = self.acquire("one", "bob", T0 + 100 + HOLD)
        self.assertEqual((b["impu"], b["holder"]), (x, "bob"))
        rows = self.c.audit(x, now=T0 + 100 + HOLD)
        self.assertEqual([(r["holder"], r["end_reason"]) for r in rows], [("bob", None), ("alice", "revoked")],
                         str(rows))
        self.assertEqual(rows[1]["until"], T0 + 100, str(rows))

    def test_revoked_holder_gets_another_impu(self):
        x = self.acquire("four", "alice", T0)["impu"]
        self.c.json("lease", "revoke", x, now=T0 + 10)
        y = self.acquire("four", "alice", T0 + 20)
        self.assertNotEqual(y["impu"], x, "no affinity after a revoke")
        self.assertEqual(y["origin"], "new", str(y))

    def test_revoke_nothing(self):
        self.c.refused("lease", "revoke", impu("four", 1), now=T0)

    # --- reclaim ------------------------------------------------------------

    def test_reclaim_closes_expired_leases(self):
        x = self.acquire("four", "alice", T0)["impu"]
        y = self.acquire("four", "bob", T0 + 300)["impu"]
        out = self.c.json("lease", "reclaim", now=T0 + 100)
        self.assertEqual(out["reclaimed"], 0, str(out))
        rows = self.c.audit(x, now=T0 + 100)
        self.assertEqual((rows[0]["open"], rows[0]["end_reason"]), (True, None), str(rows))
        out = self.c.json("lease", "reclaim", now=T0 + TTL + 1)     # alice's ended, bob's not
        self.assertEqual(out["reclaimed"], 1, str(out))
        rows = self.c.audit(x, now=T0 + TTL + 1)
        self.assertEqual(len(rows), 1, str(rows))
        self.assertEqual((rows[0]["holder"], rows[0]["open"], rows[0]["end_reason"], rows[0]["until"]),
                         ("alice", False, "expired", T0 + TTL), str(rows))
        self.assertEqual(self.c.audit(y, now=T0 + TTL + 1)[0]["open"], True)
        self.assertEqual(self.c.json("lease", "reclaim", now=T0 + TTL + 1)["reclaimed"], 0, "nothing left")
        # Reclaimed is still in quarantine: alice comes back to the same IMPU.
        again = self.acquire("four", "alice", T0 + TTL + 2)
        self.assertEqual(again["impu"], x)
        self.assertEqual([r["open"] for r in self.c.audit(x, now=T0 + TTL + 2)], [True, False])

    def test_reclaim_in_batches(self):
        n = 25
        got = [self.acquire("rng", "h%d" % i, T0)["impu"] for i in range(n)]
        out = self.c.json("lease", "reclaim", "--batch", "10", now=T0 + TTL)
        self.assertEqual(out["reclaimed"], n, str(out))
        self.assertGreaterEqual(out["batches"], 3, "at most 10 per batch: %s" % out)
        for x in got[:3] + got[-3:]:
            rows = self.c.audit(x, now=T0 + TTL)
            self.assertEqual((rows[0]["end_reason"], rows[0]["until"]), ("expired", T0 + TTL), str(rows))
        c = t.sql_connect(self.c.db)
        open_rows = c.execute("SELECT count(*) FROM lease_history WHERE ended_at IS NULL").fetchone()[0]
        c.close()
        self.assertEqual(open_rows, 0)
        self.c.db_check()

    # --- audit --------------------------------------------------------------

    def test_audit_who_held_it_when(self):
        x = self.acquire("one", "alice", T0, "--client-addr", "192.0.2.1")["impu"]
        self.release(x, "alice", T0 + 100)
        b_start = T0 + 100 + HOLD
        self.acquire("one", "bob", b_start, "--client-addr", "2001:db8::2")
        self.release(x, "bob", b_start + 50)
        c_start = b_start + 50 + HOLD
        self.acquire("one", "carol", c_start)   # runs out without a release
        now = c_start + TTL + 10

        def held_at(at):
            return [(r["holder"], r["client_addr"]) for r in self.c.audit(x, at=at, now=now)]

        self.assertEqual(held_at(T0 - 1), [])
        self.assertEqual(held_at(T0), [("alice", "192.0.2.1")])
        self.assertEqual(held_at(T0 + 99), [("alice", "192.0.2.1")])
        self.assertEqual(held_at(T0 + 100), [], "alice released at T0+100")
        self.assertEqual(held_at(T0 + 500), [], "nobody held it during the hold")
        self.assertEqual(held_at(b_start + 1), [("bob", "2001:db8::2")])
        self.assertEqual(held_at(c_start + TTL - 1), [("carol", None)])
        self.assertEqual(held_at(c_start + TTL), [], "carol's lease ran out at its expiry")
        rows = self.c.audit(x, now=now)
        self.assertEqual([r["holder"] for r in rows], ["carol", "bob", "alice"], "newest first: %s" % rows)
        self.assertEqual([(r["from"], r["until"]) for r in rows],
                         [(c_start, c_start + TTL), (b_start, b_start + 50), (T0, T0 + 100)])
        self.assertEqual([r["end_reason"] for r in rows][1:], ["released", "released"])
        for r in rows:
            self.assertEqual((r["impu"], r["pool"], r["impi"]), (x, "one", "one-1@" + t.DOMAIN), str(r))
        self.c.db_check()


if __name__ == "__main__":
    t.main()
