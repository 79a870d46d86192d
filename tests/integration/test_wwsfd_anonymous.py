#!/usr/bin/python3
"""Anonymous admission through the eligibility hook of a real wwsfd: an
eligible visitor gets a token, one the hook refuses gets 403 with the hook's
reason; a helper killed with SIGKILL does not cost the next visitor; a helper
that hangs is answered 503 with Retry-After within about the hook timeout
while the server goes on serving; too many attempts from one address are
answered 429 with Retry-After."""

import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wwsfd_fixture as f  # noqa: E402


class Eligibility(f.WwsfdTestCase):
    """With the shipped personal-info hook."""

    def test_eligible(self):
        server = self.start_server()
        r = server.anonymous(f.EVIDENCE_OK)
        self.assertStatus(r, 200)
        reply = r.json()
        self.assertIs(reply.get("anonymous"), True, reply)
        self.assertIs(f.jwt_parts(reply["token"])[1]["anon"], True)
        self.assertEqual(server.ctl.show(reply["impu"])["state"], "leased")

    def test_not_eligible(self):
        server = self.start_server()
        for evidence, reason in (({"name": "Ann"}, "please give your email address"),
                                 ({"email": "ann@example.com"}, "please give your name"),
                                 ({"name": "Ann", "email": "ann@"}, "that email address does not look right")):
            r = server.anonymous(evidence)
            self.assertStatus(r, 403, "not_eligible")
            self.assertEqual(r.json()["detail"], reason, "the hook's reason is shown to the visitor")
            self.assertEqual(r.header_all("Set-Cookie"), [], "no session for a refused visitor")
        # Not JSON objects where they must be.
        for body in ({"evidence": "Ann"}, {"evidence": None}, {}, {"evidence": []}):
            self.assertStatus(server.post_json("/api/v1/anonymous", body), 400, "bad_request")
        # Refusals lease nothing.
        self.assertEqual(server.ctl.leases("--pool", "visitors", "--state", "leased"), [])
        self.assertStatus(server.anonymous(f.EVIDENCE_OK), 200)
        self.assertEqual(len(server.ctl.leases("--pool", "visitors", "--state", "leased")), 1)

    def test_helper_killed(self):
        server = self.start_server(config={"anonymous": {"hook_helpers": "2"}})
        self.assertStatus(server.anonymous(), 200)
        helpers = server.wait_helpers(2)
        # One helper killed: the very next request is served.
        os.kill(helpers[0], signal.SIGKILL)
        for _ in range(3):
            self.assertStatus(server.anonymous(), 200)
        # All of them killed: still served (helpers are restarted).
        helpers = server.wait_helpers(2, exclude=helpers[:1])
        for pid in helpers:
            os.kill(pid, signal.SIGKILL)
        r = server.anonymous()
        self.assertStatus(r, 200)
        server.wait_helpers(2, exclude=helpers)
        for _ in range(3):
            self.assertStatus(server.anonymous(), 200)


class HookTimeout(f.WwsfdTestCase):
    """With tests/integration/hooks/test-hook and hook_timeout = 1s."""

    def start(self, hook_timeout="1s"):
        return self.start_server(hook="test-hook",
                                 config={"anonymous": {"hook_helpers": "2", "hook_timeout": hook_timeout}})

    def test_hanging_helper(self):
        server = self.start()
        self.assertStatus(server.anonymous({"name": "warm-up"}), 200)
        done = {}

        def hang():
            start = time.monotonic()
            try:
                done["r"] = server.anonymous({"hang": True, "mark": "hanging"})
            except Exception as e:  # reported below
                done["e"] = e
            done["elapsed"] = time.monotonic() - start

        th = threading.Thread(target=hang)
        th.start()
        try:
            pid = int(f.wait_until(lambda: server.hook_mark("hanging"), 30, "the hanging request to reach a helper"))
            # Meanwhile the server answers other requests.
            self.assertServes(server)
            jwks_answered_while_hanging = th.is_alive()
        finally:
            th.join(60)
        self.assertFalse(th.is_alive(), "the request to a hanging helper was never answered")
        self.assertNotIn("e", done, "the request to a hanging helper failed: %r" % done.get("e"))
        r = done["r"]
        self.assertStatus(r, 503, "hook_unavailable")
        self.assertGreater(r.retry_after(), 0)
        # About the hook timeout (1 s); the bound only rules out a hang.
        self.assertLess(done["elapsed"], 15, "took %.1fs with hook_timeout = 1s" % done["elapsed"])
        self.assertTrue(jwks_answered_while_hanging, "the JWKS was answered only after the hanging request")
        # The hung helper is killed and replaced; the server goes on serving.
        f.wait_until(lambda: not f.alive(pid), 30, "the hung helper %d to be killed" % pid)
        for _ in range(4):
            self.assertStatus(server.anonymous({"name": "after"}), 200)
        server.wait_helpers(2, exclude=[pid])

    def test_hanging_helper_does_not_block_the_other(self):
        server = self.start(hook_timeout="5s")     # room for a whole admission meanwhile
        self.assertStatus(server.anonymous({"name": "warm-up"}), 200)
        done = {}
        th = threading.Thread(target=lambda: done.setdefault("r", server.anonymous({"hang": True, "mark": "h"})))
        th.start()
        try:
            f.wait_until(lambda: server.hook_mark("h"), 30, "the hanging request to reach a helper")
            r = server.anonymous({"name": "other"})
            other_while_hanging = th.is_alive()
        finally:
            th.join(60)
        self.assertStatus(r, 200)
        self.assertTrue(other_while_hanging, "a visitor waited for another visitor's hanging helper")
        self.assertStatus(done["r"], 503, "hook_unavailable")

    def test_crashing_helper(self):
        """A request whose helpers exit without answering is answered 503 (it
        is retried once on another helper), and the server goes on."""
        server = self.start()
        self.assertStatus(server.anonymous({"name": "warm-up"}), 200)
        r = server.anonymous({"crash": True})
        self.assertStatus(r, 503, "hook_unavailable")
        self.assertGreater(r.retry_after(), 0)
        r = f.wait_until(lambda: (lambda x: x if x.status == 200 else None)(server.anonymous({"name": "after"})),
                         30, "admissions to work again after helpers crashed", interval=0.2)
        self.assertStatus(r, 200)

    def test_reason_and_pool_from_hook(self):
        other = f.t.pool_ini("other", ["impu_range = sip:+1777{0000..0019}@%s" % f.DOMAIN,
                                       "impi_range = o{0000..0019}@%s" % f.DOMAIN], subscription="web")
        pools = f.anonymous_pool(size=20) + other
        server = self.start_server(hook="test-hook", pools=pools)
        r = server.anonymous({"eligible": False, "reason": "watch the advert first"})
        self.assertStatus(r, 403, "not_eligible")
        self.assertEqual(r.json()["detail"], "watch the advert first")
        r = server.anonymous({"pool": "other"})
        self.assertStatus(r, 200)
        self.assertTrue(r.json()["impu"].startswith("sip:+1777"), r.json())
        self.assertEqual(server.ctl.show(r.json()["impu"])["pool"], "other")

    def test_hook_cannot_pick_a_pool_for_logged_in_users(self):
        """The hook may name anonymous pools only: an authenticated pool or one
        that does not exist is refused (503 lease_failed), nothing leased."""
        staff = f.t.pool_ini("staff", ["impu_range = sip:+1888{0000..0009}@%s" % f.DOMAIN,
                                       "impi_range = s{0000..0009}@%s" % f.DOMAIN], subscription="web",
                             kind="authenticated")
        server = self.start_server(hook="test-hook", pools=f.anonymous_pool(size=20) + staff)
        for pool in ("staff", "no-such-pool"):
            r = server.anonymous({"pool": pool})
            self.assertStatus(r, 503, "lease_failed")
            self.assertEqual(r.json()["detail"], "admission is misconfigured")
            self.assertEqual(r.header("Retry-After"), "30")
        self.assertEqual(server.ctl.leases("--pool", "staff", "--state", "leased"), [])
        self.assertEqual(server.ctl.leases("--pool", "visitors", "--state", "leased"), [])
        self.assertStatus(server.anonymous({}), 200)


class Throttle(f.WwsfdTestCase):

    def test_throttled_per_address(self):
        server = self.start_server(config={"throttle": {"anonymous_per_ip": "3/m"}})
        for i in range(3):
            self.assertStatus(server.anonymous(), 200)
        r = server.anonymous()
        self.assertStatus(r, 429, "too_many_requests")
        # 3 per minute: the next attempt is possible within 20 s.
        self.assertTrue(1 <= r.retry_after() <= 60, r.header("Retry-After"))
        self.assertEqual(r.header_all("Set-Cookie"), [])
        self.assertEqual(len(server.ctl.leases("--pool", "visitors", "--state", "leased")), 3)
        # Only that address, only that endpoint.
        self.assertServes(server)
        r = server.anonymous(source="127.0.0.2")
        self.assertStatus(r, 200)
        self.assertEqual(server.ctl.show(r.json()["impu"])["client_addr"], "127.0.0.2")
        self.assertStatus(server.anonymous(), 429)


if __name__ == "__main__":
    f.main()
