"""The portal API (src/wwsfd/api/portal.c) against a real wwsfd: keys,
subscriptions, pools and their ETags, entries, leases, stats, the audit,
Idempotency-Key, ownership between the API and the pool-config files, the
write log of `wwsfctl portal log`, and a pool made through the API serving an
anonymous admission at once."""

import json
import os
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import portal_fixture as pf  # noqa: E402
import wwsf_testlib as t  # noqa: E402
import wwsfd_fixture as f  # noqa: E402

DOMAIN = pf.DOMAIN


class Keys(pf.PortalTestCase):
    def test_no_key_wrong_key_revoked_key(self):
        p = self.start_portals()
        self.assertStatus(p.api("GET", "subscriptions"), 200)
        for key in ("", "garbage", "Basic abc", p.keys["acme"][:-1] + ("A" if p.keys["acme"][-1] != "A" else "B")):
            r = p.api("GET", "subscriptions", key=key)
            self.assertStatus(r, 401, "unauthorized")
            self.assertIn("Bearer", r.header("WWW-Authenticate") or "", str(r))
        r = p.ctl("portal", "revoke", "acme")
        self.assertEqual(r.rc, 0, str(r))
        self.assertStatus(p.api("GET", "subscriptions"), 401, "unauthorized")
        # The other portal is untouched.
        self.assertStatus(p.api("GET", "subscriptions", portal="globex"), 200)

    def test_rotated_key_works_for_its_grace_only(self):
        p = self.start_portals()
        old = p.keys["acme"]
        r = p.ctl("portal", "rotate", "acme", "--grace", "0")
        self.assertEqual(r.rc, 0, str(r))
        new = r.out.strip()
        self.assertStatus(p.api("GET", "subscriptions", key=old), 401, "unauthorized")
        self.assertStatus(p.api("GET", "subscriptions", key=new), 200)

    def test_throttled_per_key(self):
        p = self.start_portals(config={"throttle": {"portal_per_key": "5/m"}})
        statuses = [p.api("GET", "subscriptions").status for _ in range(8)]
        self.assertIn(429, statuses, statuses)
        r = p.api("GET", "subscriptions")
        self.assertStatus(r, 429, "too_many_requests")
        self.assertGreater(r.retry_after(), 0)
        # Another key has its own bucket.
        self.assertStatus(p.api("GET", "subscriptions", portal="globex"), 200)
        m = p.server.get("/metrics").body.decode()
        self.assertRegex(m, r'wwsf_portal_requests_total\{portal="acme",kind="read"\} [1-9]')
        self.assertRegex(m, r'wwsf_portal_requests_total\{portal="unauthenticated",kind="throttled"\} [1-9]')


class Subscriptions(pf.PortalTestCase):
    def test_only_the_callers(self):
        p = self.start_portals()
        r = self.assertStatus(p.api("GET", "subscriptions"), 200)
        names = [s["name"] for s in r.json()["items"]]
        self.assertEqual(names, ["shared-acme", "web-acme"])
        web = [s for s in r.json()["items"] if s["name"] == "web-acme"][0]
        self.assertEqual(web, {"name": "web-acme", "domain": DOMAIN, "impi_mode": "per-entry", "pools": 1})
        self.assertStatus(p.api("GET", "subscriptions/web-acme"), 200)
        for other in ("web-globex", "operator", "nothing"):
            self.assertStatus(p.api("GET", "subscriptions/" + other), 404, "not_found")


class Pools(pf.PortalTestCase):
    def test_create_show_list(self):
        p = self.start_portals()
        r = p.api("POST", "pools", body=pf.list_pool("shop", 3))
        self.assertStatus(r, 201)
        pool = r.json()
        self.assertEqual(r.header("Location"), "/api/v1/portal/pools/%d" % pool["id"])
        self.assertEqual(r.header("ETag"), pool["etag"])
        self.assertEqual((pool["name"], pool["source"], pool["size"], pool["managed_by"], pool["state"]),
                         ("shop", "list", 3, "api", "active"))
        self.assertEqual(pool["counts"], {"leased": 0, "quarantine": 0, "free": 3, "retired": 0, "materialised": 3})
        g = self.assertStatus(p.api("GET", "pools/%d" % pool["id"]), 200)
        self.assertEqual(g.json()["etag"], pool["etag"])
        names = sorted(x["name"] for x in p.api("GET", "pools").json()["items"])
        self.assertEqual(names, ["shop", "visitors"])
        r = p.api("GET", "pools?subscription=shared-acme")
        self.assertEqual(r.json(), {"items": [], "next_cursor": None})
        # The operator's pool in the portal's subscription: seen, not the API's.
        vis = [x for x in p.api("GET", "pools").json()["items"] if x["name"] == "visitors"][0]
        self.assertEqual(vis["managed_by"], "config")
        # wwsfctl sees it too.
        out = p.ctl("pool", "list", "--json")
        self.assertEqual(out.rc, 0, str(out))
        self.assertIn("shop", [x["pool"] for x in out.json()])

    def test_range_wildcard_shared(self):
        p = self.start_portals()
        r = self.created(p, pf.range_pool("numbers", "0000", "0999"))
        self.assertEqual((r["source"], r["size"], r["impu_range"]), ("range", 1000, "sip:+1555{0000..0999}@" + DOMAIN))
        w = self.created(p, {"name": "wild", "subscription": "web-acme", "kind": "anonymous", "lease_ttl": 60,
                             "quarantine": 60, "impu_wildcard": "sip:w-![a-z2-7]{12}!@" + DOMAIN,
                             "impi_wildcard": "w-![a-z2-7]{12}!@" + DOMAIN, "size": 1000})
        self.assertEqual((w["source"], w["size"], w["token_length"]), ("wildcard", 1000, 12))
        s = self.created(p, {"name": "shared", "subscription": "shared-acme", "kind": "authenticated",
                             "lease_ttl": 60, "quarantine": 60, "impi": "shared@" + DOMAIN,
                             "entry": [{"impu": "sip:shared-1@" + DOMAIN}]})
        self.assertEqual(s["impi"], "shared@" + DOMAIN)

    def test_paging(self):
        p = self.start_portals(config=None)
        for i in range(5):
            self.created(p, pf.list_pool("p%d" % i, 1, prefix="page%d" % i))
        seen, cursor = [], None
        for _ in range(10):
            r = self.assertStatus(p.api("GET", "pools?limit=2" + ("&cursor=" + cursor if cursor else "")), 200)
            j = r.json()
            self.assertLessEqual(len(j["items"]), 2)
            seen += [x["name"] for x in j["items"]]
            cursor = j["next_cursor"]
            if cursor is None:
                break
        self.assertEqual(sorted(seen), sorted(["visitors"] + ["p%d" % i for i in range(5)]))
        self.assertEqual(len(seen), len(set(seen)))

    def test_patch_if_match(self):
        p = self.start_portals()
        pool = self.created(p, pf.range_pool("numbers", "0000", "0099"))
        path = "pools/%d" % pool["id"]
        r = p.api("PATCH", path, body={"lease_ttl": 300}, headers={"If-Match": pool["etag"]})
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["lease_ttl"], 300)
        self.assertNotEqual(r.json()["etag"], pool["etag"])
        # The old ETag is stale now.
        r = p.api("PATCH", path, body={"lease_ttl": 400}, headers={"If-Match": pool["etag"]})
        self.assertStatus(r, 412, "precondition_failed")
        r = p.api("DELETE", path, headers={"If-Match": pool["etag"]})
        self.assertStatus(r, 412, "precondition_failed")
        self.assertEqual(p.api("GET", path).json()["lease_ttl"], 300)
        # A PATCH that changes nothing keeps the ETag, so others' If-Match stays good.
        etag = p.api("GET", path).json()["etag"]
        for body in ({}, {"lease_ttl": 300}):
            r = p.api("PATCH", path, body=body, headers={"If-Match": etag})
            self.assertStatus(r, 200)
            self.assertEqual(r.json()["etag"], etag, body)
        # The range grows; its shape may not change once used.
        r = p.api("PATCH", path, body={"impu_range": "sip:+1555{0000..0199}@" + DOMAIN,
                                       "impi_range": "numbers-{0000..0199}@" + DOMAIN})
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["size"], 200)
        for member in ("name", "subscription", "entry", "impu_wildcard"):
            r = p.api("PATCH", path, body={member: "x"})
            self.assertStatus(r, 400, "bad_request")
            self.assertEqual(r.json()["field"], member, str(r))

    def test_delete(self):
        p = self.start_portals()
        pool = self.created(p, pf.list_pool("gone", 2))
        path = "pools/%d" % pool["id"]
        r = p.api("DELETE", path)
        self.assertStatus(r, 204)
        self.assertEqual(r.body, b"")
        self.assertStatus(p.api("GET", path), 404, "not_found")
        # Its IMPUs and its name may be used again (no lease held them).
        self.created(p, pf.list_pool("gone", 2))

    def test_managed_by_config(self):
        p = self.start_portals()
        vis = [x for x in p.api("GET", "pools").json()["items"] if x["name"] == "visitors"][0]
        path = "pools/%d" % vis["id"]
        self.assertStatus(p.api("PATCH", path, body={"lease_ttl": 5}), 409, "managed_by_config")
        self.assertStatus(p.api("DELETE", path), 409, "managed_by_config")
        self.assertStatus(p.api("POST", path + "/entries", body={"entry": [{"impu": "sip:x-1@" + DOMAIN,
                                                                            "impi": "x-1@" + DOMAIN}]}),
                          409, "managed_by_config")
        r = p.api("DELETE", path + "/entries/" + t.list_impu("visitor", 1))
        self.assertStatus(r, 409, "managed_by_config")

    def test_import_refuses_api_pool_and_keeps_it(self):
        p = self.start_portals()
        pool = self.created(p, pf.list_pool("shop", 2))
        # A file that defines a pool of the same name is refused, by name.
        lines = pf.pools_ini() + t.pool_ini("shop", t.list_entries("other", 1), subscription="web-acme")
        t.write_lines(p.server.pool_file, lines)
        r = p.ctl("pool", "import", p.server.pool_file)
        self.assertEqual(r.rc, 1, str(r))
        self.assertIn("shop", r.err)
        self.assertIn("portal API", r.err)
        # Importing the files as they were leaves the API's pool as it is.
        t.write_lines(p.server.pool_file, pf.pools_ini())
        r = p.ctl("pool", "import", p.server.pool_file)
        self.assertEqual(r.rc, 0, str(r))
        g = self.assertStatus(p.api("GET", "pools/%d" % pool["id"]), 200).json()
        self.assertEqual((g["etag"], g["size"], g["state"]), (pool["etag"], 2, "active"))


class Entries(pf.PortalTestCase):
    def test_add_list_remove(self):
        p = self.start_portals()
        pool = self.created(p, pf.list_pool("shop", 2))
        path = "pools/%d/entries" % pool["id"]
        r = p.api("POST", path, body={"entry": [{"impu": "sip:more-1@" + DOMAIN, "impi": "more-1@" + DOMAIN}]})
        self.assertStatus(r, 200)
        self.assertEqual((r.json()["added"], r.json()["pool"]["size"]), (1, 3))
        r = self.assertStatus(p.api("GET", path + "?limit=2"), 200).json()
        self.assertEqual(len(r["items"]), 2)
        r2 = self.assertStatus(p.api("GET", path + "?limit=2&cursor=" + r["next_cursor"]), 200).json()
        self.assertEqual([e["impu"] for e in r["items"] + r2["items"]],
                         ["sip:shop-1@" + DOMAIN, "sip:shop-2@" + DOMAIN, "sip:more-1@" + DOMAIN])
        self.assertIsNone(r2["next_cursor"])
        self.assertStatus(p.api("DELETE", path + "/sip:shop-1@" + DOMAIN), 204)
        self.assertEqual(p.api("GET", "pools/%d" % pool["id"]).json()["size"], 2)
        self.assertStatus(p.api("DELETE", path + "/sip:shop-1@" + DOMAIN), 404, "not_found")

    def test_range_pool_takes_no_entries(self):
        p = self.start_portals()
        pool = self.created(p, pf.range_pool("numbers"))
        r = p.api("POST", "pools/%d/entries" % pool["id"],
                  body={"entry": [{"impu": "sip:x-1@" + DOMAIN, "impi": "x-1@" + DOMAIN}]})
        self.assertStatus(r, 409, "conflict")


class Leases(pf.PortalTestCase):
    def test_api_pool_serves_admissions_at_once(self):
        p = self.start_portals()
        pool = self.created(p, pf.list_pool("fresh", 2))
        r = p.server.post_json("/api/v1/anonymous", {"evidence": {"pool": "fresh"}})
        self.assertStatus(r, 200)
        impu = r.json()["impu"]
        self.assertIn(impu, ["sip:fresh-1@" + DOMAIN, "sip:fresh-2@" + DOMAIN])
        leases = self.assertStatus(p.api("GET", "pools/%d/leases" % pool["id"]), 200).json()["items"]
        self.assertEqual([(x["impu"], x["state"]) for x in leases], [(impu, "leased")])
        stats = self.assertStatus(p.api("GET", "pools/%d/stats" % pool["id"]), 200).json()
        self.assertEqual((stats["leased"], stats["free"], stats["size"]), (1, 1, 2))
        # The audit: who held it now; the other portal sees nothing of it.
        a = self.assertStatus(p.api("GET", "audit?impu=" + impu), 200).json()["items"]
        self.assertEqual([x["impu"] for x in a], [impu])
        self.assertEqual(p.api("GET", "audit?impu=" + impu, portal="globex").json()["items"], [])

    def test_revoke_lease_refresh_gets_lease_lost(self):
        p = self.start_portals()
        pool = self.created(p, pf.list_pool("fresh", 2))
        s = f.Session(p.server)
        r = s.anonymous({"pool": "fresh"})
        self.assertStatus(r, 200)
        lease = p.api("GET", "pools/%d/leases?state=leased" % pool["id"]).json()["items"][0]
        r = self.assertStatus(p.api("DELETE", "leases/%d" % lease["id"]), 200)
        self.assertEqual((r.json()["state"], r.json()["end_reason"]), ("quarantine", "revoked"))
        self.assertStatus(p.api("DELETE", "leases/%d" % lease["id"]), 409, "conflict")
        self.assertStatus(s.refresh(), 401, "lease_lost")

    def test_delete_when_released_keeps_the_holders_impu(self):
        p = self.start_portals()
        pool = self.created(p, pf.list_pool("going", 2))
        s = f.Session(p.server)
        r = s.anonymous({"pool": "going"})
        self.assertStatus(r, 200)
        impu = r.json()["impu"]
        path = "pools/%d" % pool["id"]
        self.assertStatus(p.api("DELETE", path), 409, "leases_live")
        r = self.assertStatus(p.api("DELETE", path + "?when=released"), 202)
        self.assertEqual(r.json()["state"], "deleting")
        # No new admissions from it; the holder keeps and refreshes its IMPU.
        r = p.server.post_json("/api/v1/anonymous", {"evidence": {"pool": "going"}})
        self.assertEqual(r.status, 503, str(r))
        r = self.assertStatus(s.refresh(), 200)
        self.assertEqual(r.json()["impu"], impu)
        self.assertStatus(s.logout(), 200)
        # Once the lease ends the pool goes (the daemon's periodic work).
        f.wait_until(lambda: p.api("GET", path).status == 404, 30, "the pool to go")

    def test_shrink_with_live_leases_keeps_the_holders_impus(self):
        p = self.start_portals()
        pool = self.created(p, pf.range_pool("shrinking", first="0000", last="0003", prefix="+1666"))
        path = "pools/%d" % pool["id"]
        held = {}
        for _ in range(4):
            s = f.Session(p.server)
            r = self.assertStatus(s.anonymous({"pool": "shrinking"}), 200)
            held[r.json()["impu"]] = s
        self.assertEqual(len(held), 4)
        r = self.assertStatus(p.api("PATCH", path, body={"impu_range": "sip:+1666{0000..0001}@" + DOMAIN,
                                                         "impi_range": "shrinking-{0000..0001}@" + DOMAIN}), 200)
        self.assertEqual(r.json()["size"], 2)
        stats = self.assertStatus(p.api("GET", path + "/stats"), 200).json()
        self.assertEqual((stats["size"], stats["leased"], stats["retired"], stats["free"]), (2, 2, 2, 0), stats)
        # Every holder keeps its IMPU, inside the new range or out of it.
        for impu, s in held.items():
            self.assertEqual(self.assertStatus(s.refresh(), 200).json()["impu"], impu)
        # The IMPUs out of the range are never handed out again, even once let go.
        for impu in ("sip:+16660002@" + DOMAIN, "sip:+16660003@" + DOMAIN):
            self.assertStatus(held.pop(impu).logout(), 200)
        r = p.server.post_json("/api/v1/anonymous", {"evidence": {"pool": "shrinking"}})
        self.assertEqual((r.status, r.json().get("error")), (503, "pool_exhausted"), str(r))
        for impu, s in held.items():
            self.assertEqual(self.assertStatus(s.refresh(), 200).json()["impu"], impu)

    def test_delete_force_revokes(self):
        p = self.start_portals()
        pool = self.created(p, pf.list_pool("forced", 2))
        s = f.Session(p.server)
        self.assertStatus(s.anonymous({"pool": "forced"}), 200)
        self.assertStatus(p.api("DELETE", "pools/%d?force=true" % pool["id"]), 204)
        self.assertStatus(s.refresh(), 401, "lease_lost")
        # The IMPUs stay out of every pool while their quarantine runs.
        r = p.api("POST", "pools", body=pf.list_pool("again", 2, prefix="forced"))
        self.assertStatus(r, 409, "impu_taken")

    def test_remove_leased_entry(self):
        p = self.start_portals()
        pool = self.created(p, pf.list_pool("one", 1))
        s = f.Session(p.server)
        r = self.assertStatus(s.anonymous({"pool": "one"}), 200)
        impu = r.json()["impu"]
        path = "pools/%d/entries/%s" % (pool["id"], impu)
        self.assertStatus(p.api("DELETE", path), 409, "leases_live")
        r = self.assertStatus(p.api("DELETE", path + "?when=released"), 202)
        self.assertEqual(r.json()["state"], "retired")
        # The holder keeps it.
        self.assertEqual(self.assertStatus(s.refresh(), 200).json()["impu"], impu)


class Idempotency(pf.PortalTestCase):
    def test_replay_and_mismatch(self):
        p = self.start_portals()
        h = {"Idempotency-Key": "create-shop-1"}
        r1 = p.api("POST", "pools", body=pf.list_pool("shop", 2), headers=h)
        self.assertStatus(r1, 201)
        r2 = p.api("POST", "pools", body=pf.list_pool("shop", 2), headers=h)
        self.assertStatus(r2, 201)
        self.assertEqual(r2.json()["id"], r1.json()["id"])
        self.assertEqual(r2.header("Location"), r1.header("Location"))
        r3 = p.api("POST", "pools", body=pf.list_pool("shop", 3), headers=h)
        self.assertStatus(r3, 422, "idempotency_mismatch")
        # Keys are per portal.
        r4 = p.api("POST", "pools", portal="globex", body=pf.list_pool("gshop", 1, subscription="web-globex"),
                   headers=h)
        self.assertStatus(r4, 201)
        self.assertEqual(len([x for x in p.api("GET", "pools").json()["items"] if x["name"] == "shop"]), 1)

    def test_concurrent_creates_one_key_make_one_pool(self):
        p = self.start_portals()
        h = {"Idempotency-Key": "burst"}
        results = []

        def create():
            results.append(p.api("POST", "pools", body=pf.list_pool("burst", 2), headers=h))

        threads = [threading.Thread(target=create) for _ in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        self.assertEqual([r.status for r in results], [201] * 8, [str(r) for r in results if r.status != 201])
        self.assertEqual(len({r.json()["id"] for r in results}), 1)
        self.assertEqual(len([x for x in p.api("GET", "pools").json()["items"] if x["name"] == "burst"]), 1)

    def test_two_portals_one_impu_at_once(self):
        p = self.start_portals()
        results = {}

        def create(portal, sub):
            body = pf.list_pool("race-" + portal, 1, subscription=sub, prefix="race")
            results[portal] = p.api("POST", "pools", portal=portal, body=body)

        threads = [threading.Thread(target=create, args=a) for a in (("acme", "web-acme"), ("globex", "web-globex"))]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        statuses = sorted(r.status for r in results.values())
        self.assertEqual(statuses, [201, 409], {k: str(v) for k, v in results.items()})
        loser = [r for r in results.values() if r.status == 409][0]
        self.assertEqual(loser.error(), "impu_taken")
        self.assertNotIn("race-acme", loser.json()["detail"])
        self.assertNotIn("race-globex", loser.json()["detail"])


class AuditLog(pf.PortalTestCase):
    def test_portal_log(self):
        p = self.start_portals()
        pool = self.created(p, pf.list_pool("logged", 1))
        self.assertStatus(p.api("PATCH", "pools/%d" % pool["id"], body={"lease_ttl": 100}), 200)
        self.assertStatus(p.api("DELETE", "pools/%d" % pool["id"]), 204)
        r = p.ctl("portal", "log", "acme", "--json")
        self.assertEqual(r.rc, 0, str(r))
        log = r.json()
        self.assertEqual([x["action"] for x in log], ["pool.create", "pool.update", "pool.delete"])
        self.assertEqual(log[0]["resource"], "/api/v1/portal/pools/%d" % pool["id"])
        self.assertIsNone(log[0]["before"])
        self.assertEqual(log[0]["after"]["name"], "logged")
        self.assertEqual((log[1]["before"]["lease_ttl"], log[1]["after"]["lease_ttl"]), (600, 100))
        self.assertIsNone(log[2]["after"])
        self.assertEqual(log[0]["client_addr"], "127.0.0.1")
        # Reads are not written down; the other portal's log is empty.
        self.assertEqual(p.ctl("portal", "log", "globex", "--json").json(), [])
        r = p.ctl("portal", "log", "acme")
        self.assertEqual(r.rc, 0, str(r))
        self.assertIn("pool.create", r.out)
        self.assertNotIn(p.keys["acme"], p.server.log_text())


class Openapi(pf.PortalTestCase):
    def test_served_as_in_the_repo(self):
        p = self.start_portals()
        r = p.server.get("/api/v1/openapi.json")
        self.assertStatus(r, 200)
        self.assertEqual(r.header("Content-Type"), "application/json")
        with open(os.path.join(t.SOURCE_ROOT, "docs", "openapi.json"), "rb") as fh:
            self.assertEqual(r.body, fh.read())


# Every answer of this file's tests against the document's schemas.
def setUpModule():
    pf.start_recording("portal")


def tearDownModule():
    pf.validate_recorded(minimum=50)


if __name__ == "__main__":
    f.main()
