#!/usr/bin/python3
"""Password logins (POST /api/v1/login) of a real wwsfd against a real slapd.

Scenario 2: alice has her own IMPU/IMPI in LDAP: the token carries them and
nothing is leased. Scenario 3: bob (member of cn=staff) leases from the pool
mapped to his group, carol (no group) from the [ldap] pool; affinity on the
next login, refresh keeps the IMPU, logout puts it in quarantine. A wrong
password, an unknown user and an empty password get one and the same 401;
filter-injection usernames, usernames with NUL or control bytes, overlong
ones and a uid with two entries get that 401 too, never a token, and slapd
only ever sees escaped filters. A stopped slapd is 503 ldap_unavailable with
Retry-After and logins come back when it does; a frozen one (SIGSTOP) costs
about the LDAP timeout while JWKS, static files and anonymous admissions go
on being answered. Per-account and per-address throttling (429 with
Retry-After; every spelling of a username that finds the same LDAP entry
counts against that account), the login counters in /metrics, and no
password or whole token in wwsfd's log (checked after every test, and at
log_level = debug).

Slapd comes from slapd_fixture.py (Debian slapd, ldap-utils); without it
the test is skipped (exit 77). Timing is asserted only where a time bound is
the subject, and then loosely."""

import os
import re
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import wwsfd_fixture as f  # noqa: E402
from slapd_fixture import PEOPLE_DN, Slapd, tools_missing  # noqa: E402

t = f.t

ALICE_IMPU = "sip:alice@ims.example.com"
ALICE_IMPI = "alice@ims.example.com"
STAFF_GROUP = "cn=staff,ou=groups,dc=example,dc=com"
STAFF_POOL = "staff-pool"           # bob, through [ldap] group_pool
DEFAULT_POOL = "customers"          # carol, through [ldap] pool
POOL_SIZE = 3
LEASE_TTL, QUARANTINE = 600, 1200

SERVICE_PASSWORD = "wwsf-service"
# Wrong passwords this test sends: distinctive, so that finding one in the
# log cannot be a coincidence.
WRONG = "Wr0ng-pa55word-for-alice"
WRONG_UNKNOWN = "Unkn0wn-user-pa55word"

# Generous bounds for "is answered, does not hang"; nothing asserts speed.
LDAP_TIMEOUT = 1            # [ldap] timeout of the frozen-server test
FROZEN_LOGIN_BOUND = 10     # a login while slapd is frozen answers within this
PROMPT_BOUND = 5            # other requests meanwhile answer within this

# Usernames that try to widen the search filter (RFC 4515 injection), with
# the escaped filter slapd must see instead (lower case, as compared).
INJECTIONS = {
    "*": r"(uid=\2a)",
    "alice)(uid=*": r"(uid=alice\29\28uid=\2a)",
    "*)(|(uid=*": r"(uid=\2a\29\28|\28uid=\2a)",
    "ali*": r"(uid=ali\2a)",
}
# Usernames that cannot be one: refused before LDAP.
NEVER_ASKED = ["ali\x00ce", "alice\x00", "ali\x01ce", "\x01\x02\x03", "a" * 300]


def login_pools(anonymous_size=5):
    """The anonymous pool of the fixture, and two authenticated pools of one
    subscription: staff-pool (sip:staff-N@...) and customers (sip:cust-N@...)."""
    return (f.anonymous_pool(size=anonymous_size)
            + t.subscription_ini("corp")
            + t.pool_ini(STAFF_POOL, t.list_entries("staff", POOL_SIZE), subscription="corp",
                         kind="authenticated", lease_ttl="%ds" % LEASE_TTL, quarantine="%ds" % QUARANTINE)
            + t.pool_ini(DEFAULT_POOL, t.list_entries("cust", POOL_SIZE), subscription="corp",
                         kind="authenticated", lease_ttl="%ds" % LEASE_TTL, quarantine="%ds" % QUARANTINE))


STAFF_IMPUS = {t.list_impu("staff", i) for i in range(1, POOL_SIZE + 1)}
CUSTOMER_IMPUS = {t.list_impu("cust", i) for i in range(1, POOL_SIZE + 1)}


def metric(text, name, labels=""):
    """The value of one sample of the Prometheus text, or None."""
    m = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return float(m.group(1)) if m else None


def headers_without_date(r):
    return [(k.lower(), v) for k, v in r.headers.items() if k.lower() != "date"]


class Browser(f.Session):
    """A browser that logs in with a password."""

    def login(self, username, password, **kw):
        return self._take_cookie(self.server.post_json("/api/v1/login", {"username": username, "password": password},
                                                       source=self.source, **kw))


class LoginTestCase(f.WwsfdTestCase):
    """Each test has its own slapd; wwsfd's log is checked for passwords and
    tokens when the test ends."""

    def setUp(self):
        super().setUp()
        self.ldap = None
        self._slapd_log = None
        self.addCleanup(self._keep_slapd_log)       # runs after the servers are stopped
        self.sent_passwords = {"alice-secret", "bob-secret", "carol-secret", "dup-secret", SERVICE_PASSWORD}
        self.tokens = []
        self.ldap = Slapd(self.path("slapd"))
        self.ldap.start()
        self.addCleanup(self.ldap.cleanup)
        self.addCleanup(self._check_log_for_secrets)

    def _keep_slapd_log(self):
        if self.ldap is not None:
            self._slapd_log = self.ldap.log(80)

    def run(self, result=None):
        if result is None:
            return super().run(result)
        before = len(result.failures) + len(result.errors)
        try:
            return super().run(result)
        finally:
            if len(result.failures) + len(result.errors) > before and getattr(self, "_slapd_log", None):
                sys.stderr.write("\n==== slapd log of %s (last lines) ====\n%s==== end of slapd log ====\n"
                                 % (self.id(), self._slapd_log))

    def _check_log_for_secrets(self):
        for s in self.servers:
            self.assertLogClean(s.saved_log or s.log_text(), s.log_path)

    def assertLogClean(self, text, where, signatures=False):
        """No password this test sent (or the service account's) and no
        whole token it received in text: the offending lines are shown."""
        needles = [("password %r" % p, p) for p in sorted(self.sent_passwords) if len(p) >= 6]
        needles += [("a whole token", tok) for tok in self.tokens if tok]
        if signatures:
            needles += [("a token's signature", tok.split(".")[2]) for tok in self.tokens if tok]
        for what, needle in needles:
            lines = [l for l in text.splitlines() if needle in l]
            if lines:
                self.fail("%s in wwsfd's log %s:\n%s" % (what, where, "\n".join(l[:300] for l in lines[:5])))

    # -- helpers --

    def start_login_server(self, ldap=None, throttle=None, server=None, pools=None, **kw):
        """wwsfd with [ldap] on this test's slapd: pool = customers,
        group_pool = cn=staff... staff-pool; no login throttling unless
        asked."""
        ldap_keys = {"enabled": "yes", "uris": self.ldap.uri, "bind_dn": self.ldap.bind_dn,
                     "bind_password_file": self.ldap.password_file, "base_dn": self.ldap.base_dn,
                     "pool": DEFAULT_POOL, "group_pool": "%s %s" % (STAFF_GROUP, STAFF_POOL)}
        ldap_keys.update(ldap or {})
        throttle_keys = {"login_per_ip": "0", "login_per_user": "0"}
        throttle_keys.update(throttle or {})
        config = {"ldap": ldap_keys, "throttle": throttle_keys}
        if server:
            config["server"] = server
        return self.start_server(pools=pools if pools is not None else login_pools(), config=config, **kw)

    def login(self, server, username, password, browser=None, source=None, **kw):
        """(browser, response) of one login; remembers the password and any
        token for the log check."""
        self.sent_passwords.add(password)
        b = browser or Browser(server, source)
        r = b.login(username, password, **kw)
        if r.status == 200:
            self.tokens.append(r.json().get("token"))
        return b, r

    def login_ok(self, server, username, password, **kw):
        b, r = self.login(server, username, password, **kw)
        self.assertStatus(r, 200)
        return b, r.json()

    def refresh_ok(self, browser):
        r = browser.refresh()
        self.assertStatus(r, 200)
        self.tokens.append(r.json()["token"])
        return r.json()

    def assertInvalid(self, r, what=""):
        self.assertStatus(r, 401, "invalid_credentials")
        self.assertNotIn(b"token", r.body, what)
        self.assertEqual(r.header_all("Set-Cookie"), [], "%s: a session for a failed login" % what)

    def assertSameAnswer(self, r, ref, what):
        """Nothing in the answer tells r from ref: status, body byte for
        byte, headers apart from Date."""
        self.assertEqual(r.status, ref.status, "%s:\n%s" % (what, r))
        self.assertEqual(r.body, ref.body, what)
        self.assertEqual(headers_without_date(r), headers_without_date(ref), what)

    def check_token(self, server, reply, impu, impi, anonymous=False):
        """The token of a login reply: openssl verifies it from the JWKS
        alone, and it carries the reply's identities."""
        ok, out = server.verify(reply["token"])
        self.assertTrue(ok, "openssl did not verify the token:\n%s" % out)
        header, claims, _, _ = f.jwt_parts(reply["token"])
        self.assertEqual((claims["impu"], claims["impi"]), (impu, impi), claims)
        self.assertIs(claims["anon"], anonymous, claims)
        self.assertIs(reply["anonymous"], anonymous, reply)
        self.assertEqual(claims["iss"], server.public_url)
        self.assertEqual(claims["aud"], f.AUDIENCE)
        self.assertEqual(claims["exp"], reply["expires_at"])
        self.assertEqual(claims["sub"], reply["sub"])
        self.assertEqual(reply["epcscf_uri"], f.EPCSCF_URI)
        # sub: an opaque handle, never the password, the DN or the IMPU.
        for leak in ("secret", "uid=", PEOPLE_DN.lower(), "@", "sip:"):
            self.assertNotIn(leak, claims["sub"].lower(), claims)
        return claims

    def metrics(self, server):
        r = server.get("/metrics")
        self.assertStatus(r, 200)
        return r.body.decode()

    def slapd_log(self):
        with open(self.ldap.log_path, errors="replace") as fp:
            return fp.read()


class Scenarios(LoginTestCase):

    def test_scenario2_own_identity(self):
        server = self.start_login_server()
        b, reply = self.login_ok(server, "alice", "alice-secret")
        self.assertEqual((reply["impu"], reply["impi"]), (ALICE_IMPU, ALICE_IMPI), reply)
        self.assertIn("lease_expires_at", reply)
        self.assertIsNone(reply["lease_expires_at"], "scenario 2 leases nothing")
        self.assertTrue(b.cookie, "a login opens a session")
        self.check_token(server, reply, ALICE_IMPU, ALICE_IMPI)
        # Her IMPU is in no pool: the store has never handed it out.
        self.assertNoLease(server, ALICE_IMPU)
        # Refresh: the same identities, still no lease.
        again = self.refresh_ok(b)
        self.assertEqual((again["impu"], again["impi"], again["lease_expires_at"]), (ALICE_IMPU, ALICE_IMPI, None))
        self.check_token(server, again, ALICE_IMPU, ALICE_IMPI)
        self.assertEqual(again["sub"], reply["sub"])
        self.assertStatus(b.logout(), 200)
        self.assertStatus(b.refresh(), 401, "no_session")
        self.assertNoLease(server, ALICE_IMPU)

    def assertNoLease(self, server, impu):
        r = server.ctl.run("lease", "show", impu, "--json")
        self.assertEqual(r.rc, t.EXIT_REFUSED, "lease show %s should say it is in no pool:\n%s" % (impu, r))
        self.assertIn("no pool", r.err, str(r))
        self.assertEqual([l for l in server.ctl.leases() if l["impu"] == impu], [])
        self.assertEqual(server.ctl.leases("--state", "leased"), [], "a lease was made")

    def test_scenario3_group_pool_and_default_pool(self):
        server = self.start_login_server()
        b1, rb = self.login_ok(server, "bob", "bob-secret")
        self.assertIn(rb["impu"], STAFF_IMPUS, "bob (cn=staff) leases from %s: %s" % (STAFF_POOL, rb))
        self.assertIsInstance(rb["lease_expires_at"], int, rb)
        claims = self.check_token(server, rb, rb["impu"], rb["impi"])
        self.assertEqual(claims["lease_exp"], rb["lease_expires_at"])
        self.assertLessEqual(claims["exp"], claims["lease_exp"])
        lease = server.ctl.show(rb["impu"])
        self.assertEqual((lease["state"], lease["pool"], lease["impi"]), ("leased", STAFF_POOL, rb["impi"]), lease)
        self.assertEqual(lease["expires_at"], rb["lease_expires_at"], lease)
        self.assertEqual(lease["client_addr"], "127.0.0.1", lease)
        self.assertIn("uid=bob", lease["holder"].lower(), lease)
        self.assertNotIn("secret", lease["holder"], lease)

        # carol: in no mapped group, so the [ldap] pool.
        _, rc = self.login_ok(server, "carol", "carol-secret")
        self.assertIn(rc["impu"], CUSTOMER_IMPUS, "carol leases from %s: %s" % (DEFAULT_POOL, rc))
        self.check_token(server, rc, rc["impu"], rc["impi"])
        self.assertEqual(server.ctl.show(rc["impu"])["pool"], DEFAULT_POOL)
        self.assertNotEqual(rc["sub"], rb["sub"])

        # bob again, from another browser: the same IMPU (affinity), one lease.
        b2, rb2 = self.login_ok(server, "bob", "bob-secret")
        self.assertEqual((rb2["impu"], rb2["impi"]), (rb["impu"], rb["impi"]), "affinity: bob's IMPU changed")
        self.assertEqual(rb2["sub"], rb["sub"], "one account, one sub")
        self.check_token(server, rb2, rb["impu"], rb["impi"])
        self.assertEqual(len(server.ctl.leases("--pool", STAFF_POOL, "--state", "leased")), 1)
        self.assertEqual([a["open"] for a in server.ctl.audit(rb["impu"])], [True])

        # Refresh keeps it, the lease renewed (not shortened).
        rr = self.refresh_ok(b2)
        self.assertEqual((rr["impu"], rr["impi"]), (rb["impu"], rb["impi"]), "refresh changed the IMPU")
        self.check_token(server, rr, rb["impu"], rb["impi"])
        self.assertGreaterEqual(rr["lease_expires_at"], rb2["lease_expires_at"])
        lease = server.ctl.show(rb["impu"])
        self.assertEqual((lease["state"], lease["expires_at"]), ("leased", rr["lease_expires_at"]), lease)

        # Logout: the IMPU goes to quarantine for the pool's hold.
        t0 = time.time()
        self.assertStatus(b2.logout(), 200)
        lease = server.ctl.show(rb["impu"])
        self.assertEqual(lease["state"], "quarantine", lease)
        self.assertGreaterEqual(lease["quarantine_until"], int(t0) + QUARANTINE - 1, lease)
        self.assertStatus(b2.refresh(), 401, "no_session")
        # carol's lease is untouched.
        self.assertEqual(server.ctl.show(rc["impu"])["state"], "leased")

    def test_case_and_spaces_are_one_account(self):
        """"ALICE" and " alice" are alice to LDAP: the same identity and sub."""
        server = self.start_login_server()
        subs = set()
        for name in ("alice", "ALICE", " alice"):
            _, reply = self.login_ok(server, name, "alice-secret")
            self.assertEqual(reply["impu"], ALICE_IMPU, name)
            subs.add(reply["sub"])
        _, rb = self.login_ok(server, "bob", "bob-secret")
        _, rb2 = self.login_ok(server, "BOB", "bob-secret")
        self.assertEqual(rb2["impu"], rb["impu"], "BOB is bob: affinity")
        self.assertEqual(len(subs), 1, subs)


class Refusals(LoginTestCase):

    def test_wrong_unknown_empty_are_one_answer(self):
        server = self.start_login_server()
        _, ref = self.login(server, "alice", WRONG)
        self.assertInvalid(ref, "wrong password")
        self.assertEqual(ref.json()["error"], "invalid_credentials")
        for user, password, what in (("mallory", WRONG_UNKNOWN, "unknown user"),
                                     ("alice", "", "empty password"),
                                     ("mallory", "", "unknown user, empty password"),
                                     ("alice", "bob-secret", "another user's password"),
                                     ("bob", WRONG, "wrong password for bob")):
            _, r = self.login(server, user, password)
            self.assertInvalid(r, what)
            self.assertSameAnswer(r, ref, what)
        # No lease came of any of them; the right password still works.
        self.assertEqual(server.ctl.leases("--state", "leased"), [])
        self.login_ok(server, "alice", "alice-secret")

    def test_filter_injection_and_bad_usernames(self):
        server = self.start_login_server()
        _, ref = self.login(server, "alice", WRONG)
        self.assertInvalid(ref)
        # With the right password of a real user: a filter widened to alice's
        # entry would log in.
        for user in INJECTIONS:
            _, r = self.login(server, user, "alice-secret")
            self.assertInvalid(r, repr(user))
            self.assertSameAnswer(r, ref, repr(user))
        _, r = self.login(server, "dup", "dup-secret")
        self.assertInvalid(r, "dup (two entries)")
        self.assertSameAnswer(r, ref, "dup (two entries)")

        # NUL, control bytes, 300 bytes: the same 401, and LDAP never asked.
        searches = self.slapd_log().count("SRCH base=")
        for user in NEVER_ASKED:
            _, r = self.login(server, user, "alice-secret")
            self.assertInvalid(r, repr(user))
            self.assertSameAnswer(r, ref, repr(user))
        # The raw JSON escape, exactly as a client may write it.
        for raw in (b'{"username":"alice\\u0000","password":"alice-secret"}',
                    b'{"username":"\\u0000alice","password":"alice-secret"}',
                    b'{"username":"alice","password":"alice-secret\\u0000"}'):
            r = server.request("POST", "/api/v1/login", body=raw, headers={"Content-Type": "application/json"})
            self.assertInvalid(r, repr(raw))
            self.assertSameAnswer(r, ref, repr(raw))
        self.login_ok(server, "bob", "bob-secret")     # one search: slapd's log is current
        self.assertEqual(self.slapd_log().count("SRCH base="), searches + 1,
                         "a username that cannot be one reached LDAP")

        # What slapd searched for: every injected value escaped, never a
        # filter of ours with an unescaped '*'.
        log = self.slapd_log().lower()
        filters = re.findall(r'filter="([^"]*)"', log)
        # Every filter but the fixture's own readiness probe.
        ours = [x for x in filters if x != "(objectclass=*)"]
        self.assertTrue(ours, "no search by uid in slapd's log:\n%s" % self.ldap.log())
        for x in ours:
            self.assertNotIn("*", x, "an unescaped '*' reached slapd: %s" % x)
            self.assertNotIn("(|", x, "an injected filter reached slapd: %s" % x)
        for user, escaped in INJECTIONS.items():
            self.assertIn(escaped, ours, "slapd did not search for the literal %r" % user)
        # The only lease is bob's.
        self.assertEqual([l["pool"] for l in server.ctl.leases("--state", "leased")], [STAFF_POOL])
        # Alice herself is still fine.
        _, reply = self.login_ok(server, "alice", "alice-secret")
        self.assertEqual(reply["impu"], ALICE_IMPU)

    def test_bad_bodies(self):
        server = self.start_login_server()
        for body in ({"username": "alice"}, {"password": "alice-secret"}, {"username": 1, "password": "x-y-z-w"},
                     {"username": "alice", "password": None}, []):
            r = server.post_json("/api/v1/login", body)
            self.assertStatus(r, 400, "bad_request")
            self.assertNotIn(b"token", r.body)


class LdapOutages(LoginTestCase):

    def test_stopped_then_started_again(self):
        server = self.start_login_server()
        self.login_ok(server, "alice", "alice-secret")      # a pooled connection
        self.ldap.stop()
        for user, password in (("alice", "alice-secret"), ("bob", "bob-secret")):
            _, r = self.login(server, user, password)
            self.assertStatus(r, 503, "ldap_unavailable")
            self.assertGreater(r.retry_after(), 0)
            self.assertNotIn(b"token", r.body)
            self.assertEqual(r.header_all("Set-Cookie"), [])
        self.assertServes(server)
        self.ldap.start()                                   # same port, same data
        _, reply = self.login_ok(server, "alice", "alice-secret")
        self.assertEqual(reply["impu"], ALICE_IMPU)
        _, rb = self.login_ok(server, "bob", "bob-secret")
        self.assertIn(rb["impu"], STAFF_IMPUS)

    def test_frozen_server(self):
        server = self.start_login_server(ldap={"timeout": "%ds" % LDAP_TIMEOUT},
                                         pools=login_pools(anonymous_size=1000))
        self.login_ok(server, "alice", "alice-secret")      # a pooled, bound connection
        jwks = server.jwks()
        n_logins = 4
        results = [None] * n_logins

        def attempt(i):
            user, password = [("alice", "alice-secret"), ("bob", "bob-secret")][i % 2]
            start = time.monotonic()
            try:
                r = Browser(server).login(user, password, timeout=60)
                results[i] = (r, time.monotonic() - start)
            except Exception as e:      # reported below
                results[i] = (e, time.monotonic() - start)

        self.ldap.freeze()
        try:
            threads = [threading.Thread(target=attempt, args=(i,)) for i in range(n_logins)]
            for th in threads:
                th.start()
            # While those logins wait on LDAP, everything else is answered.
            rounds = 0
            while rounds == 0 or (any(th.is_alive() for th in threads) and rounds < 100):
                rounds += 1
                for what, call in (("JWKS", lambda: server.get("/.well-known/jwks.json", timeout=60)),
                                   ("static file", lambda: server.get("/", timeout=60)),
                                   ("anonymous admission", lambda: f.Session(server).anonymous(timeout=60))):
                    start = time.monotonic()
                    r = call()
                    took = time.monotonic() - start
                    self.assertStatus(r, 200)
                    self.assertLess(took, PROMPT_BOUND, "%s took %.1fs during an LDAP freeze" % (what, took))
                    if what == "JWKS":
                        self.assertEqual(r.json(), jwks)
                    elif what == "static file":
                        self.assertEqual(r.body, f.DEFAULT_INDEX)
                    else:
                        self.tokens.append(r.json()["token"])
            for th in threads:
                th.join(120)
            # And another login after the first ones gave up.
            start = time.monotonic()
            _, r = self.login(server, "carol", "carol-secret", timeout=60)
            results.append((r, time.monotonic() - start))
        finally:
            self.ldap.thaw()
        for i, (r, took) in enumerate(results):
            if isinstance(r, Exception):
                self.fail("login %d during the freeze: %r after %.1fs" % (i, r, took))
            self.assertStatus(r, 503, "ldap_unavailable")
            self.assertGreater(r.retry_after(), 0)
            self.assertLess(took, FROZEN_LOGIN_BOUND, "login %d took %.1fs against a frozen slapd" % (i, took))
        # After the thaw, logins work again.
        _, reply = self.login_ok(server, "alice", "alice-secret")
        self.assertEqual(reply["impu"], ALICE_IMPU)
        _, rb = self.login_ok(server, "bob", "bob-secret")
        self.assertIn(rb["impu"], STAFF_IMPUS)


class Throttling(LoginTestCase):

    def assertThrottled(self, r, what):
        self.assertStatus(r, 429, "too_many_requests")
        retry = r.retry_after()
        self.assertTrue(1 <= retry <= 60, "%s: Retry-After %d" % (what, retry))
        self.assertNotIn(b"token", r.body)
        self.assertEqual(r.header_all("Set-Cookie"), [])

    def test_per_user(self):
        server = self.start_login_server(throttle={"login_per_user": "3/m"})
        before = metric(self.metrics(server), "wwsf_throttled_total")
        start = time.monotonic()
        for name in ("alice", "ALICE", " alice"):       # three spellings of one account
            _, reply = self.login_ok(server, name, "alice-secret")
            self.assertEqual(reply["impu"], ALICE_IMPU)
        if time.monotonic() - start > 15:
            self.skipTest("three logins took over 15 s: the bucket (one per 20 s) may have refilled")
        for name, password in (("alice", "alice-secret"), ("ALICE", "alice-secret"), (" alice ", "alice-secret"),
                               ("Alice", WRONG)):
            _, r = self.login(server, name, password)
            self.assertThrottled(r, repr(name))
        # Another account is not held back.
        _, rb = self.login_ok(server, "bob", "bob-secret")
        self.assertIn(rb["impu"], STAFF_IMPUS)
        self.login_ok(server, "carol", "carol-secret")
        self.assertEqual(metric(self.metrics(server), "wwsf_throttled_total") - before, 4)

    def test_per_user_other_spellings_ldap_matches(self):
        """slapd's caseIgnoreMatch folds more than ASCII case and spaces:
        full-width letters, a dotted capital I, no-break spaces all find
        alice's entry. Each would be a password guess against alice outside
        her limit, so none may reach LDAP: usernames are printable ASCII, and
        the rest is refused like a wrong password (401), or throttled (429);
        never a token, even with alice's password."""
        server = self.start_login_server(throttle={"login_per_user": "3/m"})
        start = time.monotonic()
        for _ in range(3):
            self.login_ok(server, "alice", "alice-secret")
        if time.monotonic() - start > 15:
            self.skipTest("three logins took over 15 s: the bucket (one per 20 s) may have refilled")
        answers = []
        for name in ("\uff41\uff4c\uff49\uff43\uff45",      # full-width "alice"
                     "\uff41lice", "AL\u0130CE", "\u00a0alice", "alice\u00a0"):
            _, r = self.login(server, name, "alice-secret")
            answers.append((name, r.status, r.json().get("impu") if r.status == 200 else r.json().get("error")))
        for name, status, what in answers:
            self.assertIn(status, (401, 429),
                          "a spelling of alice that LDAP matches escaped her per-user limit: %r" % answers)
        ldap_log = self.ldap.log()
        for name, _, _ in answers:
            self.assertNotIn(name.encode("utf-8").hex(), ldap_log.lower().replace("\\", ""),
                             "a non-ASCII username reached LDAP")

    def test_per_user_counts_failures(self):
        server = self.start_login_server(throttle={"login_per_user": "3/m"})
        start = time.monotonic()
        for _ in range(3):
            _, r = self.login(server, "alice", WRONG)
            self.assertInvalid(r)
        if time.monotonic() - start > 15:
            self.skipTest("three logins took over 15 s: the bucket (one per 20 s) may have refilled")
        # Guessing passwords ends here: even the right one waits.
        _, r = self.login(server, "alice", "alice-secret")
        self.assertThrottled(r, "alice after three wrong passwords")
        self.login_ok(server, "bob", "bob-secret")

    def test_per_ip(self):
        server = self.start_login_server(throttle={"login_per_ip": "3/m"})
        start = time.monotonic()
        self.login_ok(server, "alice", "alice-secret")
        self.login_ok(server, "bob", "bob-secret")
        _, r = self.login(server, "carol", WRONG)
        self.assertInvalid(r)
        if time.monotonic() - start > 15:
            self.skipTest("three logins took over 15 s: the bucket (one per 20 s) may have refilled")
        for user, password in (("carol", "carol-secret"), ("alice", "alice-secret"), ("nobody", WRONG_UNKNOWN)):
            _, r = self.login(server, user, password)
            self.assertThrottled(r, "%s from 127.0.0.1" % user)
        # Another client (another loopback address) logs in.
        _, r = self.login(server, "carol", "carol-secret", source="127.0.0.2")
        self.assertStatus(r, 200)
        self.assertIn(r.json()["impu"], CUSTOMER_IMPUS)
        self.assertEqual(server.ctl.show(r.json()["impu"])["client_addr"], "127.0.0.2")
        # Anonymous admissions from the throttled address have their own limit.
        self.assertStatus(server.anonymous(), 200)


class Observability(LoginTestCase):

    def test_metrics(self):
        server = self.start_login_server()
        text = self.metrics(server)
        names = [("wwsf_logins_total", '{outcome="success"}'), ("wwsf_logins_total", '{outcome="failure"}'),
                 ("wwsf_tokens_issued_total", '{kind="login"}'), ("wwsf_tokens_issued_total", '{kind="anonymous"}'),
                 ("wwsf_ldap_latency_seconds_count", "")]
        before = {n: metric(text, *n) for n in names}
        for n, v in before.items():
            self.assertIsNotNone(v, "no %s%s in /metrics:\n%s" % (n[0], n[1], text))
        self.login_ok(server, "alice", "alice-secret")
        self.login_ok(server, "bob", "bob-secret")
        for user, password in (("alice", WRONG), ("mallory", WRONG_UNKNOWN), ("alice", ""), ("ali\x00ce", WRONG)):
            _, r = self.login(server, user, password)
            self.assertInvalid(r, repr(user))
        text = self.metrics(server)
        after = {n: metric(text, *n) for n in names}
        delta = {n[0] + n[1]: after[n] - before[n] for n in names}
        self.assertEqual(delta['wwsf_logins_total{outcome="success"}'], 2, delta)
        self.assertEqual(delta['wwsf_logins_total{outcome="failure"}'], 4, delta)
        self.assertEqual(delta['wwsf_tokens_issued_total{kind="login"}'], 2, delta)
        self.assertEqual(delta['wwsf_tokens_issued_total{kind="anonymous"}'], 0, delta)
        self.assertGreaterEqual(delta["wwsf_ldap_latency_seconds_count"], 4, delta)
        # The staff pool's gauge shows bob's lease.
        self.assertEqual(metric(text, "wwsf_pool_impus",
                                '{pool="%s",kind="authenticated",state="leased"}' % STAFF_POOL), 1, text)

    def test_log_never_shows_passwords_or_tokens(self):
        """At log_level = debug, through successes, failures, refresh, logout,
        injection attempts and an LDAP outage."""
        server = self.start_login_server(server={"log_level": "debug"})
        b, reply = self.login_ok(server, "alice", "alice-secret")
        self.refresh_ok(b)
        bb, rb = self.login_ok(server, "bob", "bob-secret")
        self.refresh_ok(bb)
        self.assertStatus(bb.logout(), 200)
        self.login_ok(server, "carol", "carol-secret")
        for user, password in (("alice", WRONG), ("mallory", WRONG_UNKNOWN), ("dup", "dup-secret"),
                               ("*", "alice-secret"), ("alice)(uid=*", "alice-secret"), ("ali\x00ce", WRONG),
                               ("a" * 300, WRONG)):
            _, r = self.login(server, user, password)
            self.assertInvalid(r, repr(user))
        self.ldap.stop()
        _, r = self.login(server, "bob", "bob-secret")
        self.assertStatus(r, 503, "ldap_unavailable")
        self.ldap.start()
        self.login_ok(server, "bob", "bob-secret")
        self.assertEqual(server.stop(), 0)
        log = server.log_text()
        self.assertIn(" debug: ", log, "the daemon did not log at debug level?")
        for p in ("alice-secret", "bob-secret", "carol-secret", "dup-secret", SERVICE_PASSWORD, WRONG, WRONG_UNKNOWN):
            self.assertIn(p, self.sent_passwords)
        self.assertEqual(len(self.tokens), 6)     # logins and refreshes above
        self.assertLogClean(log, server.log_path, signatures=True)


def main():
    missing = tools_missing()
    if missing:
        sys.stderr.write("skipped: not installed: %s (Debian packages slapd, ldap-utils)\n" % ", ".join(missing))
        sys.exit(77)
    f.main()


if __name__ == "__main__":
    main()
