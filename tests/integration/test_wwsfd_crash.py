#!/usr/bin/python3
"""wwsfd is killed with SIGKILL during a stream of anonymous admissions from
several client threads, then started again on the same database, several
times. Every token a client received has its lease in the store (leased, the
token's IMPI and lease end, and the audit shows a lease open at the token's
iat), no IMPU went to two visitors, the store passes `wwsfctl db check`, no
IMPU has two open lease_history rows, and the restarted daemon goes on
issuing tokens."""

import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wwsfd_fixture as f  # noqa: E402

ROUNDS = 5
CLIENTS = 4
MIN_TOKENS = 15     # per round, before the kill


class Stream:
    """CLIENTS threads admitting visitors until the server goes away."""

    def __init__(self, server, rnd):
        self.server, self.rnd = server, rnd
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
                r = self.server.anonymous({"name": "r%d-c%d-%d" % (self.rnd, i, n), "email": "v@example.com"},
                                          timeout=30)
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

    def check_store(self, server, tokens, rounds):
        by_impu = {}
        for reply, claims in tokens:
            by_impu.setdefault(claims["impu"], []).append(claims["sub"])
        self.assertEqual({i: s for i, s in by_impu.items() if len(s) > 1}, {}, "an IMPU went to two visitors")
        self.assertEqual(len({c["jti"] for _, c in tokens}), len(tokens), "a jti was issued twice")
        for reply, claims in tokens:
            impu = claims["impu"]
            lease = server.ctl.show(impu)
            self.assertEqual(lease["state"], "leased", "a token's lease was lost: %s\n%s" % (claims, lease))
            self.assertEqual(lease["impi"], claims["impi"], lease)
            self.assertEqual(lease["expires_at"], claims["lease_exp"], lease)
            self.assertLessEqual(lease["leased_at"], claims["iat"], lease)
            self.assertEqual(claims["impu"], reply["impu"])
            audit = server.ctl.audit(impu, at=claims["iat"])
            self.assertEqual(len(audit), 1, "who held %s at %d: %s" % (impu, claims["iat"], audit))
            self.assertTrue(audit[0]["open"], audit)
            self.assertEqual(audit[0]["holder"], lease["holder"], audit)
            self.assertLessEqual(audit[0]["from"], claims["iat"])
        server.ctl.db_check()
        self.assertEqual(f.t.open_history_impus_shared(server.db), [], "an IMPU with two open leases")
        leased = server.ctl.leases("--pool", "visitors", "--state", "leased")
        self.assertGreaterEqual(len(leased), len(tokens))
        # Requests cut by a kill may have committed a lease that no client
        # heard of: at most one per client per kill.
        self.assertLessEqual(len(leased) - len(tokens), CLIENTS * rounds,
                             "more leases than tokens and cut requests can explain")
        return len(leased) - len(tokens)

    def test_kill_during_admissions(self):
        seed = int(os.environ.get("WWSF_TEST_SEED", random.randrange(1 << 30)))
        rng = random.Random(seed)
        sys.stderr.write("random seed %d (set WWSF_TEST_SEED to repeat)\n" % seed)
        server = self.start_server(pools=f.anonymous_pool(size=100000, lease_ttl="1h", quarantine="2h"),
                                   config={"server": {"threads": "2"}, "anonymous": {"hook_helpers": "2"}})
        tokens = []
        for rnd in range(1, ROUNDS + 1):
            with self.subTest(round=rnd):
                stream = Stream(server, rnd)
                stream.start()
                want = MIN_TOKENS + rng.randrange(0, 20)
                try:
                    f.wait_until(lambda: stream.count() >= want, 120, "%d tokens in round %d" % (want, rnd),
                                 interval=0.01)
                    time.sleep(rng.uniform(0, 0.05))       # land anywhere in the next admissions
                finally:
                    server.kill9()
                    stuck = stream.join()
                self.assertEqual(stuck, [], "client threads did not notice the kill")
                self.assertEqual(stream.unexpected, [], "answers other than 200 before the kill")
                tokens += stream.tokens
                server.start()
                cut = self.check_store(server, tokens, rnd)
                sys.stderr.write("round %d: %d tokens, %d leases committed but cut before the answer so far\n"
                                 % (rnd, len(stream.tokens), cut))
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


if __name__ == "__main__":
    f.main()
