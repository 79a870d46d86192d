#!/usr/bin/python3
"""Signals to a real wwsfd. SIGHUP reloads the signing keys: a key generated
while the daemon runs is published after SIGHUP (before it signs), once
activated the new tokens carry its kid, and the old key stays published.
SIGTERM while admissions are in flight: they complete with their tokens,
the daemon exits 0, and the store passes `wwsfctl db check` with every
lease of those tokens in it."""

import http.client
import os
import signal
import ssl
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wwsfd_fixture as f  # noqa: E402

IN_FLIGHT = 4


class Signals(f.WwsfdTestCase):

    def kids(self, server):
        return [k["kid"] for k in server.jwks()["keys"]]

    def token_kid(self, server):
        r = server.anonymous()
        self.assertStatus(r, 200)
        token = r.json()["token"]
        return f.jwt_parts(token)[0]["kid"], token

    def test_sighup_reloads_keys(self):
        server = self.start_server(pools=f.anonymous_pool(size=1000))
        old = server.kid
        self.assertEqual(self.kids(server), [old])
        kid, old_token = self.token_kid(server)
        self.assertEqual(kid, old)

        # A new key: published after SIGHUP, not signing yet.
        new = server.generate_key("ES256")
        self.assertEqual(self.kids(server), [old], "the JWKS changed without a reload")
        server.signal(signal.SIGHUP)
        f.wait_until(lambda: new in self.kids(server), 30, "the JWKS to list the new key after SIGHUP")
        self.assertEqual(sorted(self.kids(server)), sorted([old, new]))
        self.assertEqual(self.token_kid(server)[0], old, "a key in state next signed a token")

        # Activated: new tokens carry the new kid; the old key stays published.
        server.activate_key(new)
        server.signal(signal.SIGHUP)
        kid, new_token = f.wait_until(lambda: (lambda k: k if k[0] == new else None)(self.token_kid(server)), 30,
                                      "tokens signed with the new key after SIGHUP")
        jwks = server.jwks()
        self.assertEqual(sorted(k["kid"] for k in jwks["keys"]), sorted([old, new]),
                         "the retired key must stay published while its tokens live")
        for token in (old_token, new_token):
            ok, out = server.verify(token, jwks)
            self.assertTrue(ok, out)
        for _ in range(3):
            self.assertEqual(self.token_kid(server)[0], new)
        self.assertEqual(server.get("/healthz").json().get("status"), "ok")

        # A third key of the other algorithm, rotated in the same way.
        rsa = server.generate_key("RS256")
        server.activate_key(rsa)
        server.signal(signal.SIGHUP)
        kid, rsa_token = f.wait_until(lambda: (lambda k: k if k[0] == rsa else None)(self.token_kid(server)), 30,
                                      "tokens signed with the RS256 key after SIGHUP")
        self.assertEqual(f.jwt_parts(rsa_token)[0]["alg"], "RS256")
        jwks = server.jwks()
        self.assertEqual(sorted(k["kid"] for k in jwks["keys"]), sorted([old, new, rsa]))
        for token in (old_token, new_token, rsa_token):
            ok, out = server.verify(token, jwks)
            self.assertTrue(ok, out)
        self.assertTrue(server.running())

    def test_sighup_with_a_broken_keys_file_keeps_serving(self):
        """A reload that fails (keys.json corrupted meanwhile) leaves the
        daemon running with the keys it had."""
        server = self.start_server()
        kid, _ = self.token_kid(server)
        path = os.path.join(server.keys_dir, "keys.json")
        with open(path) as fp:
            good = fp.read()
        with open(path, "w") as fp:
            fp.write("{not json")
        # The reload logs the pool import after the keys: wait for that.
        imports = server.log_text().count("wwsfd info: pools:")
        server.signal(signal.SIGHUP)
        f.wait_until(lambda: server.log_text().count("wwsfd info: pools:") > imports, 30, "the reload to finish")
        self.assertIn("signing keys:", server.log_text().rsplit("reloading", 1)[-1], "the failed load is logged")
        with open(path, "w") as fp:
            fp.write(good)
        self.assertTrue(server.running())
        self.assertEqual(self.kids(server), [kid])
        self.assertEqual(self.token_kid(server)[0], kid)

    def test_sigterm_with_requests_in_flight(self):
        server = self.start_server(hook="test-hook", pools=f.anonymous_pool(size=100),
                                   config={"anonymous": {"hook_helpers": str(IN_FLIGHT), "hook_timeout": "20s"},
                                           "server": {"shutdown_grace": "30s"}})
        self.assertStatus(server.anonymous({"name": "warm-up"}), 200)
        server.wait_helpers(IN_FLIGHT)
        results = [None] * IN_FLIGHT

        def admit(i):
            try:
                results[i] = server.anonymous({"delay": 2, "mark": "in-flight-%d" % i})
            except Exception as e:  # reported below
                results[i] = e

        threads = [threading.Thread(target=admit, args=(i,)) for i in range(IN_FLIGHT)]
        for th in threads:
            th.start()
        try:
            # Every request is with a helper, which answers in 2 s.
            for i in range(IN_FLIGHT):
                f.wait_until(lambda: server.hook_mark("in-flight-%d" % i), 30, "request %d to reach a helper" % i)
            server.terminate()
            # Once the daemon has taken the signal (its main thread may be
            # busy with a checkpoint for a moment), no new work is taken:
            # new requests are refused, or answered 503.
            f.wait_until(lambda: "SIGTERM: stopping" in server.log_text(), 30, "wwsfd to take SIGTERM")
            refused = None

            def new_work_refused():
                nonlocal refused
                try:
                    r = server.get("/healthz", timeout=10)
                except (OSError, ssl.SSLError, http.client.HTTPException):
                    refused = "connection refused"
                    return True
                if r.status == 200:
                    return False    # the moment between the log line and the flag
                refused = r
                return True

            f.wait_until(new_work_refused, 10, "new requests to be refused after SIGTERM", interval=0.01)
            if refused != "connection refused":
                self.assertStatus(refused, 503, "shutting_down")
            rc = server.wait()
        finally:
            for th in threads:
                th.join(60)
        self.assertEqual(rc, 0, "exit status after SIGTERM")
        for i, r in enumerate(results):
            self.assertIsInstance(r, f.Response, "request %d in flight at SIGTERM got no answer: %r" % (i, r))
            self.assertStatus(r, 200)
        log = server.log_text()
        self.assertIn("stopped", log)
        self.assertNotIn("unfinished", log)
        # The store is sound and holds every lease those tokens promise.
        server.ctl.db_check()
        self.assertEqual(f.t.open_history_impus_shared(server.db), [])
        for r in results:
            claims = f.jwt_parts(r.json()["token"])[1]
            lease = server.ctl.show(claims["impu"])
            self.assertEqual((lease["state"], lease["expires_at"]), ("leased", claims["lease_exp"]), lease)
        # And it starts again on it.
        server.start()
        self.assertStatus(server.anonymous({"name": "after"}), 200)

    def test_sigterm_past_the_grace(self):
        """A request still waiting when shutdown_grace runs out is answered
        (503), not cut, and the daemon exits 0 soon after the grace."""
        server = self.start_server(hook="test-hook",
                                   config={"anonymous": {"hook_helpers": "2", "hook_timeout": "20s"},
                                           "server": {"shutdown_grace": "1s"}})
        self.assertStatus(server.anonymous({"name": "warm-up"}), 200)
        result = {}

        def admit():
            try:
                result["r"] = server.anonymous({"delay": 10, "mark": "slow"})
            except Exception as e:  # reported below
                result["r"] = e

        th = threading.Thread(target=admit)
        th.start()
        try:
            f.wait_until(lambda: server.hook_mark("slow"), 30, "the request to reach a helper")
            server.terminate()
            rc = server.wait()
        finally:
            th.join(60)
        self.assertEqual(rc, 0)
        r = result.get("r")
        self.assertIsInstance(r, f.Response, "the request in flight got no answer: %r" % r)
        self.assertStatus(r, 503)
        self.assertGreater(r.retry_after(), 0)
        server.ctl.db_check()

    def test_sigterm_idle_exits_zero(self):
        server = self.start_server()
        self.assertStatus(server.anonymous(), 200)
        helpers = server.helpers()
        self.assertEqual(server.stop(), 0)
        self.assertEqual([p for p in helpers if f.alive(p)], [], "helpers left behind")
        server.ctl.db_check()


if __name__ == "__main__":
    f.main()
