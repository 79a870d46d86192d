#!/usr/bin/python3
"""wwsfd is killed with SIGKILL during a stream of anonymous admissions from
several client threads, then started again on the same database, several
times; then the same during a stream of password logins of many LDAP users
(scenario 3, a real slapd). Every token a client received has its lease in
the store (leased to that user or visitor, the token's IMPI, a lease end no
earlier than the token's, and the audit shows a lease open at the token's
iat), no IMPU went to two users, the store passes `wwsfctl db check`, no IMPU
has two open lease_history rows, and the restarted daemon goes on issuing
tokens."""

import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wwsfd_fixture as f  # noqa: E402
from slapd_fixture import PEOPLE_DN, Slapd, tools_missing  # noqa: E402

ROUNDS = 5
CLIENTS = 4
MIN_TOKENS = 15     # per round, before the kill
LOGIN_USERS = 24    # LDAP users of the login test, each leasing from one pool
LOGIN_POOL = "customers"


class Stream:
    """CLIENTS threads admitting visitors until the server goes away."""

    def __init__(self, server, rnd, request=None):
        """request(server, rnd, client, n) -> response; an anonymous
        admission by default."""
        self.server, self.rnd = server, rnd
        self.request = request or (lambda s, rnd, i, n: s.anonymous(
            {"name": "r%d-c%d-%d" % (rnd, i, n), "email": "v@example.com"}, timeout=30))
        self.lock = threading.Lock()
        self.tokens = []        # (reply, claims)
        self.unexpected = []    # answers other than 200
        self.stop = False
        self.threads = [threading.Thread(target=self.client, args=(i,), daemon=True) for i in range(CLIENTS)]

    def client(self, i):
        n = 0
        while not self.stop:
            n += 1
            try:
                r = self.request(self.server, self.rnd, i, n)
            except Exception:   # the server died under this request: nothing was promised
                if self.server.running():
                    time.sleep(0.01)
                    continue
                return
            with self.lock:
                if r.status == 200:
                    reply = r.json()
                    self.tokens.append((reply, f.jwt_parts(reply["token"])[1]))
                else:
                    self.unexpected.append(str(r))

    def count(self):
        with self.lock:
            return len(self.tokens)

    def start(self):
        for th in self.threads:
            th.start()

    def join(self):
        self.stop = True
        for th in self.threads:
            th.join(60)
        return [th for th in self.threads if th.is_alive()]


class Crash(f.WwsfdTestCase):

    def check_store(self, server, tokens, rounds, pool="visitors", same_user_again=False):
        """same_user_again: a user may log in again (and get the same IMPU,
        its lease renewed) instead of every token being a new visitor."""
        by_impu = {}
        for reply, claims in tokens:
            by_impu.setdefault(claims["impu"], set()).add(claims["sub"])
        self.assertEqual({i: s for i, s in by_impu.items() if len(s) > 1}, {}, "an IMPU went to two users")
        holders = {}
        self.assertEqual(len({c["jti"] for _, c in tokens}), len(tokens), "a jti was issued twice")
        for reply, claims in tokens:
            impu = claims["impu"]
            lease = server.ctl.show(impu)
            self.assertEqual(lease["state"], "leased", "a token's lease was lost: %s\n%s" % (claims, lease))
            self.assertEqual(lease["impi"], claims["impi"], lease)
            if same_user_again:
                self.assertGreaterEqual(lease["expires_at"], claims["lease_exp"], lease)
            else:
                self.assertEqual(lease["expires_at"], claims["lease_exp"], lease)
            self.assertLessEqual(lease["leased_at"], claims["iat"], lease)
            # One user, one holder: the sub of every token of an IMPU maps
            # to the one holder that has it.
            self.assertEqual(holders.setdefault(claims["sub"], lease["holder"]), lease["holder"],
                             "one user, two holders: %s" % claims)
            self.assertEqual(claims["impu"], reply["impu"])
            audit = server.ctl.audit(impu, at=claims["iat"])
            self.assertEqual(len(audit), 1, "who held %s at %d: %s" % (impu, claims["iat"], audit))
            self.assertTrue(audit[0]["open"], audit)
            self.assertEqual(audit[0]["holder"], lease["holder"], audit)
            self.assertLessEqual(audit[0]["from"], claims["iat"])
        server.ctl.db_check()
        self.assertEqual(f.t.open_history_impus_shared(server.db), [], "an IMPU with two open leases")
        leased = server.ctl.leases("--pool", pool, "--state", "leased")
        heard = len({c["impu"] for _, c in tokens})
        self.assertGreaterEqual(len(leased), heard)
        # Requests cut by a kill may have committed a lease that no client
        # heard of: at most one per client per kill.
        self.assertLessEqual(len(leased) - heard, CLIENTS * rounds,
                             "more leases than tokens and cut requests can explain")
        return len(leased) - heard

    def kill_rounds(self, server, rng, what, request=None, **check):
        """ROUNDS times: a stream of requests (Stream), SIGKILL after some
        tokens, restart, check_store(**check). Returns every token received."""
        tokens = []
        for rnd in range(1, ROUNDS + 1):
            with self.subTest(round=rnd):
                stream = Stream(server, rnd, request)
                stream.start()
                want = MIN_TOKENS + rng.randrange(0, 20)
                try:
                    f.wait_until(lambda: stream.count() >= want, 120, "%d tokens in round %d" % (want, rnd),
                                 interval=0.01)
                    time.sleep(rng.uniform(0, 0.05))       # land anywhere in the next requests
                finally:
                    server.kill9()
                    stuck = stream.join()
                self.assertEqual(stuck, [], "client threads did not notice the kill")
                self.assertEqual(stream.unexpected, [], "answers other than 200 before the kill")
                tokens += stream.tokens
                server.start()
                cut = self.check_store(server, tokens, rnd, **check)
                sys.stderr.write("round %d: %d %s, %d leases committed but cut before the answer so far\n"
                                 % (rnd, len(stream.tokens), what, cut))
        return tokens

    def test_kill_during_admissions(self):
        seed = int(os.environ.get("WWSF_TEST_SEED", random.randrange(1 << 30)))
        rng = random.Random(seed)
        sys.stderr.write("random seed %d (set WWSF_TEST_SEED to repeat)\n" % seed)
        server = self.start_server(pools=f.anonymous_pool(size=100000, lease_ttl="1h", quarantine="2h"),
                                   config={"server": {"threads": "2"}, "anonymous": {"hook_helpers": "2"}})
        tokens = self.kill_rounds(server, rng, "tokens")
        # The restarted daemon goes on: new visitors, new IMPUs, tokens that
        # verify with the same keys.
        seen = {c["impu"] for _, c in tokens}
        jwks = server.jwks()
        for _ in range(5):
            r = server.anonymous()
            self.assertStatus(r, 200)
            reply = r.json()
            self.assertNotIn(reply["impu"], seen, "an IMPU handed out twice after the kills")
            seen.add(reply["impu"])
            tokens.append((reply, f.jwt_parts(reply["token"])[1]))
        for reply, _ in (tokens[0], tokens[-1]):
            ok, out = server.verify(reply["token"], jwks)
            self.assertTrue(ok, out)
        self.check_store(server, tokens, ROUNDS)

    def test_kill_during_logins(self):
        missing = tools_missing()
        if missing:
            self.skipTest("not installed: %s" % ", ".join(missing))
        seed = int(os.environ.get("WWSF_TEST_SEED", random.randrange(1 << 30)))
        rng = random.Random(seed)
        sys.stderr.write("random seed %d (set WWSF_TEST_SEED to repeat)\n" % seed)
        ldap = Slapd(self.path("slapd"))
        ldap.start()
        self.addCleanup(ldap.cleanup)
        users = {"crash-user-%02d" % i: "crash-secret-%02d" % i for i in range(LOGIN_USERS)}
        ldap.modify("".join(
            "dn: uid=%s,%s\nchangetype: add\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: Crash\n"
            "userPassword: %s\n\n" % (u, PEOPLE_DN, u, u, pw) for u, pw in sorted(users.items())))
        pools = (f.anonymous_pool(size=5) + f.t.subscription_ini("corp")
                 + f.t.pool_ini(LOGIN_POOL, f.t.list_entries("cust", 1000), subscription="corp",
                                kind="authenticated", lease_ttl="1h", quarantine="2h"))
        config = {"server": {"threads": "2"},
                  "ldap": {"enabled": "yes", "uris": ldap.uri, "bind_dn": ldap.bind_dn,
                           "bind_password_file": ldap.password_file, "base_dn": ldap.base_dn,
                           "connections": "4", "pool": LOGIN_POOL},
                  "throttle": {"login_per_ip": "0", "login_per_user": "0"}}
        server = self.start_server(pools=pools, config=config)
        names = sorted(users)

        def login(s, rnd, i, n):
            u = names[rng.randrange(len(names))]
            return s.post_json("/api/v1/login", {"username": u, "password": users[u]}, timeout=30)

        tokens = self.kill_rounds(server, rng, "logins", login, pool=LOGIN_POOL, same_user_again=True)
        # Every user logged in more than once keeps one IMPU across the kills.
        by_sub = {}
        for _, c in tokens:
            by_sub.setdefault(c["sub"], set()).add(c["impu"])
        self.assertEqual({s: i for s, i in by_sub.items() if len(i) > 1}, {}, "a user's IMPU changed")
        r = server.post_json("/api/v1/login", {"username": names[0], "password": users[names[0]]})
        self.assertStatus(r, 200)


if __name__ == "__main__":
    f.main()
