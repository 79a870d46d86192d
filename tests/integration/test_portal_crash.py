#!/usr/bin/python3
"""wwsfd is killed with SIGKILL in the middle of a stream of portal API
writes from several client threads (pool creates with an Idempotency-Key,
entries added in batches, entries removed, PATCHes, deletes), then started
again on the same database, several times. After each restart: every write
answered 2xx is there (a created pool with all its entries, added entries
present, removed ones gone, PATCHed values applied, deleted pools gone),
nothing is half applied (a write that got no answer is there wholly or not at
all, a batch of entries all or nothing, a create with its audit record in
`wwsfctl portal log` or neither), the audit log holds exactly one record of
each write that happened, the Idempotency-Key of every answered create
replays the same pool after the restart and makes no second one, the store
passes `wwsfctl db check`, and the daemon serves again. Every answer is
checked against docs/openapi.json."""

import copy
import os
import random
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import portal_fixture as pf  # noqa: E402
import wwsf_testlib as t  # noqa: E402
import wwsfd_fixture as f  # noqa: E402

D = pf.DOMAIN
PORTAL = "crash"
SUBSCRIPTION = "web-crash"
ROUNDS = 5
CLIENTS = 4
MIN_WRITES = 60     # answered writes per round, before the kill (plus a random number more)
QUARANTINE = 1200


def pool_path(pool_id):
    return "/api/v1/portal/pools/%d" % pool_id


class Op:
    """One write a client sent: what it was, and its answer (None when the
    server went away under it: it may have been applied, wholly, or not)."""

    def __init__(self, kind, pool, **args):
        self.kind, self.pool, self.args = kind, pool, args
        self.status = self.reply = None
        self.answered = False

    def applied_to(self, model, pool_id=None):
        """model (pool name -> {"id", "entries", "lease_ttl"}) with this write
        applied; pool_id is a created pool's id."""
        m = copy.deepcopy(model)
        if self.kind == "create":
            m[self.pool] = {"id": pool_id, "entries": set(self.args["entries"]), "lease_ttl": 600}
        elif self.kind == "add":
            m[self.pool]["entries"] |= set(self.args["entries"])
        elif self.kind == "remove":
            m[self.pool]["entries"].discard(self.args["impu"])
        elif self.kind == "patch":
            m[self.pool]["lease_ttl"] = self.args["lease_ttl"]
        elif self.kind == "delete":
            del m[self.pool]
        return m

    def audit(self, pool_id):
        """(action, resource) of the record this write leaves in the portal's log."""
        return {"create": ("pool.create", pool_path(pool_id)),
                "add": ("entries.add", pool_path(pool_id) + "/entries"),
                "remove": ("entry.remove", "%s/entries/%s" % (pool_path(pool_id), self.args.get("impu"))),
                "patch": ("pool.update", pool_path(pool_id)),
                "delete": ("pool.delete", pool_path(pool_id))}[self.kind]

    def __repr__(self):
        return "%s %s %r -> %s" % (self.kind, self.pool, self.args, self.status if self.answered else "no answer")


class Client(threading.Thread):
    """Writes to pools of its own (named rROUND-cCLIENT-...) until the server
    goes away; keeps the model of what its answered writes made."""

    def __init__(self, p, rnd, i, seed, counter):
        super().__init__(daemon=True)
        self.p, self.rnd, self.i = p, rnd, i
        self.rng = random.Random(seed)
        self.counter = counter
        self.prefix = "r%d-c%d-" % (rnd, i)
        self.model = {}         # pool name -> {"id", "entries", "lease_ttl"}, from the answered writes
        self.ops = []
        self.unexpected = []
        self.n = 0

    def impus(self, k):
        self.n += 1
        return ["sip:r%dc%dn%de%d@%s" % (self.rnd, self.i, self.n, j, D) for j in range(k)]

    def next_op(self):
        alive = sorted(self.model)
        choice = self.rng.random()
        if len(alive) < 2 or choice < 0.3:
            self.n += 1
            name = "%sp%d" % (self.prefix, self.n)
            return Op("create", name, entries=self.impus(3), key="create-%s" % name)
        name = self.rng.choice(alive)
        pool = self.model[name]
        if choice < 0.55:
            return Op("add", name, entries=self.impus(3))
        if choice < 0.75 and len(pool["entries"]) > 1:
            return Op("remove", name, impu=self.rng.choice(sorted(pool["entries"])))
        if choice < 0.9:
            return Op("patch", name, lease_ttl=self.rng.randrange(60, QUARANTINE))
        return Op("delete", name)

    def request(self, op):
        if op.kind == "create":
            body = create_body(op.pool, op.args["entries"])
            return self.p.api("POST", "pools", portal=PORTAL, body=body, headers={"Idempotency-Key": op.args["key"]})
        path = "pools/%d" % self.model[op.pool]["id"]
        if op.kind == "add":
            return self.p.api("POST", path + "/entries", portal=PORTAL, body=entries_body(op.args["entries"]))
        if op.kind == "remove":
            return self.p.api("DELETE", path + "/entries/" + op.args["impu"], portal=PORTAL)
        if op.kind == "patch":
            return self.p.api("PATCH", path, portal=PORTAL, body={"lease_ttl": op.args["lease_ttl"]})
        return self.p.api("DELETE", path, portal=PORTAL)

    def run(self):
        while True:
            op = self.next_op()
            self.ops.append(op)
            try:
                r = self.request(op)
            except Exception:   # the server died under this request: nothing was promised
                return
            op.answered, op.status = True, r.status
            if r.status >= 300:
                self.unexpected.append("%r\n%s" % (op, r))
                return
            op.reply = r.json() if r.body else None
            pool_id = op.reply["id"] if op.kind == "create" else None
            self.model = op.applied_to(self.model, pool_id)
            self.counter.add()

    def maybe(self):
        """The write that got no answer, if any (always the last one)."""
        return self.ops[-1] if self.ops and not self.ops[-1].answered else None


class Counter:
    def __init__(self):
        self.lock = threading.Lock()
        self.n = 0

    def add(self):
        with self.lock:
            self.n += 1

    def value(self):
        with self.lock:
            return self.n


def create_body(name, impus):
    return {"name": name, "subscription": SUBSCRIPTION, "kind": "anonymous", "lease_ttl": 600,
            "quarantine": QUARANTINE, "entry": [{"impu": u, "impi": u[4:]} for u in impus]}


def entries_body(impus):
    return {"entry": [{"impu": u, "impi": u[4:]} for u in impus]}


class Crash(pf.PortalTestCase):

    def start(self):
        pools = pf.pools_ini() + t.subscription_ini(SUBSCRIPTION, owner=PORTAL)
        p = self.start_portals(pools=pools, config={"throttle": {"portal_per_key": "0"},
                                                    "server": {"threads": "2"}})
        p.add_portal(PORTAL, "--max-pools", "1000")
        return p

    def state(self, p):
        """The portal's pools as the API shows them: name -> {"id", "entries",
        "lease_ttl", "size"}."""
        out, cursor = {}, None
        while True:
            r = self.assertStatus(p.api("GET", "pools?limit=1000" + ("&cursor=" + cursor if cursor else ""),
                                        portal=PORTAL), 200).json()
            for x in r["items"]:
                out[x["name"]] = {"id": x["id"], "lease_ttl": x["lease_ttl"], "size": x["size"],
                                  "state": x["state"], "entries": self.entries(p, x["id"])}
            cursor = r["next_cursor"]
            if cursor is None:
                return out

    def entries(self, p, pool_id):
        got, cursor = set(), None
        while True:
            r = self.assertStatus(p.api("GET", "pools/%d/entries?limit=1000" % pool_id
                                        + ("&cursor=" + cursor if cursor else ""), portal=PORTAL), 200).json()
            got |= {e["impu"] for e in r["items"] if e["state"] != "retired"}
            cursor = r["next_cursor"]
            if cursor is None:
                return got

    def audit_log(self, p):
        r = p.ctl("portal", "log", PORTAL, "--json")
        self.assertEqual(r.rc, 0, str(r))
        return r.json()

    def check_client(self, c, found, log):
        """The client's pools against its model, with or without its
        unanswered write; returns the model that holds, and the id of a
        create that got no answer if it happened."""
        mine = {name: v for name, v in found.items() if name.startswith(c.prefix)}
        view = lambda m: {n: (sorted(v["entries"]), v["lease_ttl"]) for n, v in m.items()}  # noqa: E731
        for name, v in mine.items():
            self.assertEqual(v["state"], "active", name)
            self.assertEqual(v["size"], len(v["entries"]), "pool %s: its size and its entries differ" % name)
        maybe = c.maybe()
        candidates = [(False, c.model, None)]      # (the unanswered write applied, model, id it created)
        if maybe and maybe.kind == "create":
            if maybe.pool in mine:
                pool_id = mine[maybe.pool]["id"]
                candidates.append((True, maybe.applied_to(c.model, pool_id), pool_id))
        elif maybe:
            candidates.append((True, maybe.applied_to(c.model), None))
        for happened, model, created in candidates:
            if view(model) == view(mine) and all(mine[n]["id"] == v["id"] for n, v in model.items()):
                break
        else:
            self.fail("client %d: the store holds neither what its answered writes made nor that with its "
                      "unanswered one wholly applied:\nfound %r\nanswered %r\nwrites %r"
                      % (c.i, view(mine), view(c.model), c.ops))
        applied = [op for op in c.ops if op.answered]
        if happened:
            applied.append(maybe)
        # Exactly one audit record of each write that happened, none of the
        # one that did not.
        ids = {}
        for op in c.ops:
            if op.kind == "create" and op.answered:
                ids[op.pool] = op.reply["id"]
        if created:
            ids[maybe.pool] = created
        want = sorted(op.audit(ids[op.pool]) for op in applied)
        pool_ids = set(ids.values())
        got = sorted((x["action"], x["resource"]) for x in log
                     if int(x["resource"].split("/")[5]) in pool_ids)
        self.assertEqual(got, want, "client %d: the audit log and the writes differ" % c.i)
        names = {v: k for k, v in ids.items()}
        for x in log:
            pool_id = int(x["resource"].split("/")[5])
            if x["action"] == "pool.create" and pool_id in names:
                self.assertEqual((x["before"], x["after"]["name"], x["after"]["size"]), (None, names[pool_id], 3), x)
        if maybe and maybe.kind == "create" and not created:
            self.assertEqual([x for x in log if x["action"] == "pool.create" and (x["after"] or {}).get("name")
                              == maybe.pool], [], "an audit record of a create that did not happen")
        return happened

    def check_replays(self, p, clients, found):
        """The Idempotency-Key of every create answered 2xx gives its pool
        again, after the restart, and makes no second one; a create that got
        no answer, sent again with its key, makes its pool once."""
        for c in clients:
            for op in c.ops:
                if op.kind != "create" or not (op.answered or op is c.maybe()):
                    continue
                r = p.api("POST", "pools", portal=PORTAL, body=create_body(op.pool, op.args["entries"]),
                          headers={"Idempotency-Key": op.args["key"]})
                self.assertStatus(r, 201)
                if op.answered:
                    self.assertEqual(r.json()["id"], op.reply["id"], "%r replayed another pool" % op)
                    self.assertEqual(r.header("Location"), pool_path(op.reply["id"]))
                elif op.pool in found:
                    self.assertEqual(r.json()["id"], found[op.pool]["id"], "%r made a second pool" % op)
                else:
                    found[op.pool] = {"id": r.json()["id"]}
        after = self.state(p)
        self.assertEqual(sorted(after), sorted(found), "the replays changed the portal's pools")
        for name, v in after.items():
            self.assertEqual(v["id"], found[name]["id"], name)

    def test_kill_during_portal_writes(self):
        seed = int(os.environ.get("WWSF_TEST_SEED", random.randrange(1 << 30)))
        rng = random.Random(seed)
        sys.stderr.write("random seed %d (set WWSF_TEST_SEED to repeat)\n" % seed)
        p = self.start()
        server = p.server
        for rnd in range(1, ROUNDS + 1):
            with self.subTest(round=rnd):
                counter = Counter()
                clients = [Client(p, rnd, i, rng.randrange(1 << 30), counter) for i in range(CLIENTS)]
                want = MIN_WRITES + rng.randrange(0, 120)
                for c in clients:
                    c.start()
                try:
                    f.wait_until(lambda: counter.value() >= want or not any(c.is_alive() for c in clients), 120,
                                 "%d answered writes in round %d" % (want, rnd), interval=0.01)
                    time.sleep(rng.uniform(0, 0.05))        # land anywhere in the next requests
                finally:
                    server.kill9()
                    for c in clients:
                        c.join(60)
                self.assertEqual([c.i for c in clients if c.is_alive()], [], "client threads did not notice the kill")
                self.assertEqual([u for c in clients for u in c.unexpected], [],
                                 "answers other than 2xx before the kill")
                server.start()
                found = self.state(p)
                log = self.audit_log(p)
                cut = applied = 0
                for c in clients:
                    happened = self.check_client(c, found, log)
                    cut += c.maybe() is not None
                    applied += happened
                server.ctl.db_check()
                self.check_replays(p, clients, {n: v for n, v in found.items()})
                sys.stderr.write("round %d: %d answered writes, %d cut by the kill of which %d had happened\n"
                                 % (rnd, sum(1 for c in clients for op in c.ops if op.answered), cut, applied))
        # The daemon serves again.
        self.assertStatus(server.get("/healthz"), 200)
        r = p.api("POST", "pools", portal=PORTAL, body=create_body("after-the-kills", ["sip:after-1@" + D]),
                  headers={"Idempotency-Key": "after-the-kills"})
        self.assertStatus(r, 201)
        self.assertEqual(self.state(p)["after-the-kills"]["entries"], {"sip:after-1@" + D})


# Every answer of this file's tests against the document's schemas.
def setUpModule():
    pf.start_recording("portal-crash")


def tearDownModule():
    pf.validate_recorded(minimum=50)


if __name__ == "__main__":
    f.main()
