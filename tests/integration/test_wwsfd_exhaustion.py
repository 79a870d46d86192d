#!/usr/bin/python3
"""A pool of two IMPUs behind a real wwsfd: the third visitor is answered 503
with Retry-After and error "pool_exhausted", nothing is leased twice, and
the rest of the server (JWKS, healthz, metrics, static files, refresh of
those who hold an IMPU) keeps working; a released IMPU stays held for its
quarantine. A full session table ([session] max_sessions) is answered 503
too_many_sessions before anything is leased or signed."""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wwsfd_fixture as f  # noqa: E402

LEASE_TTL, QUARANTINE = 600, 1200


def pool_gauge(metrics_text, pool, state):
    m = re.search(r'^wwsf_pool_impus\{pool="%s",kind="anonymous",state="%s"\} (\d+)$' % (pool, state),
                  metrics_text, re.M)
    return int(m.group(1)) if m else None


class Exhaustion(f.WwsfdTestCase):

    def test_third_visitor(self):
        server = self.start_server(pools=f.anonymous_pool(size=2, lease_ttl="%ds" % LEASE_TTL,
                                                          quarantine="%ds" % QUARANTINE))
        a, b = f.Session(server), f.Session(server)
        ra, rb = a.anonymous(), b.anonymous()
        self.assertStatus(ra, 200)
        self.assertStatus(rb, 200)
        impus = {ra.json()["impu"], rb.json()["impu"]}
        self.assertEqual(impus, {f.t.list_impu("visitors", 1), f.t.list_impu("visitors", 2)})

        for _ in range(3):
            c = f.Session(server)
            r = c.anonymous()
            self.assertStatus(r, 503, "pool_exhausted")
            retry = r.retry_after()
            # At most until the first IMPU could be free again.
            self.assertTrue(1 <= retry <= LEASE_TTL + QUARANTINE + 5, "Retry-After: %d" % retry)
            self.assertNotIn("token", r.json())
            self.assertIsNone(c.cookie, "no session for a visitor who got nothing")
        leased = server.ctl.leases("--pool", "visitors", "--state", "leased")
        self.assertEqual(sorted(l["impu"] for l in leased), sorted(impus), "nothing leased twice or beyond the pool")

        # Everything else keeps working.
        jwks = server.jwks()
        self.assertTrue(jwks["keys"])
        r = server.get("/healthz")
        self.assertStatus(r, 200)
        self.assertEqual(r.json().get("status"), "ok")
        r = server.get("/")
        self.assertStatus(r, 200)
        self.assertEqual(r.body, f.DEFAULT_INDEX)
        r = server.get("/metrics")
        self.assertStatus(r, 200)
        text = r.body.decode()
        self.assertEqual((pool_gauge(text, "visitors", "leased"), pool_gauge(text, "visitors", "free")), (2, 0), text)
        # Those who hold an IMPU can refresh.
        r = a.refresh()
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["impu"], ra.json()["impu"])
        ok, out = server.verify(r.json()["token"], jwks)
        self.assertTrue(ok, out)

        # One visitor leaves: their IMPU is in quarantine, still nothing free.
        self.assertStatus(b.logout(), 200)
        self.assertEqual(server.ctl.show(rb.json()["impu"])["state"], "quarantine")
        r = server.anonymous()
        self.assertStatus(r, 503, "pool_exhausted")
        self.assertTrue(1 <= r.retry_after() <= QUARANTINE + 5, r.header("Retry-After"))
        self.assertServes(server)

    def test_session_table_full(self):
        server = self.start_server(pools=f.anonymous_pool(size=10), config={"session": {"max_sessions": "3"}})
        visitors = [f.Session(server) for _ in range(3)]
        for v in visitors:
            self.assertStatus(v.anonymous(), 200)
        for _ in range(3):
            c = f.Session(server)
            r = c.anonymous()
            self.assertStatus(r, 503, "too_many_sessions")
            self.assertEqual(r.retry_after(), 60)
            self.assertIsNone(c.cookie)
        # Refused before the lease: three leases for three sessions.
        self.assertEqual(len(server.ctl.leases("--pool", "visitors", "--state", "leased")), 3)
        # Refresh of an open session still works; a logout makes room.
        self.assertStatus(visitors[0].refresh(), 200)
        self.assertStatus(visitors[1].logout(), 200)
        self.assertStatus(f.Session(server).anonymous(), 200)
        self.assertStatus(f.Session(server).anonymous(), 503, "too_many_sessions")
        self.assertServes(server)


if __name__ == "__main__":
    f.main()
