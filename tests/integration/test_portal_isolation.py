"""Tenant isolation of the portal API, as matrices generated from
docs/openapi.json, so that every operation the document describes enters them:

- cross-tenant: every operation under /api/v1/portal/ called by portal acme
  with portal globex's pool and lease ids, IMPU, holder, ETag, subscription
  and Idempotency-Key answers exactly (status, body, headers) as the same call
  with ones that never existed, and no answer of acme's shows anything of
  globex's; what is global (a pool name, an IMPU) is refused as "taken"
  without saying by whom;
- keys: every operation with no key, a malformed, unknown, wrong, revoked or
  rotated-out key gets 401 `unauthorized` with a Bearer challenge;
- none of this changes the lease store;
- the operator sees both portals' pools, leases and writes through wwsfctl.

One wwsfd serves the whole file; every answer is checked against the
document's schemas when the module ends."""

import copy
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import openapi_tools  # noqa: E402
import portal_fixture as pf  # noqa: E402
import wwsf_testlib as t  # noqa: E402
import wwsfd_fixture as f  # noqa: E402

DOMAIN = pf.DOMAIN
PORTAL_PATHS = "/api/v1/portal/"
HTTP_METHODS = ("get", "put", "post", "patch", "delete", "head", "options", "trace")

with open(openapi_tools.DOCUMENT) as _fh:
    DOC = json.load(_fh)

# The parameters of the document (by their name under components/parameters,
# or "in:name" for one written inline), sorted by what they carry. Those of
# SLOTS carry something a tenant owns: the matrix gives them globex's value,
# a value that never existed, or acme's own. FIXED ones are set to what makes
# the call strongest (a forced deletion, the audit at the time globex's lease
# is live); IGNORED ones change nothing about whose data is touched. A new
# parameter fails the matrix until it is sorted here.
SLOTS = {
    "PoolId": "pool",
    "LeaseId": "lease",
    "SubscriptionName": "subscription",
    "Impu": "impu",
    "AuditImpu": "impu",
    "SubscriptionFilter": "subscription",
    "ImpuFilter": "impu",
    "Holder": "holder",
    "IfMatch": "etag",
    "IdempotencyKey": "idempotency",
}
FIXED = {
    "Force": lambda w: "true",
    "EntryWhenReleased": lambda w: "released",
    "At": lambda w: w.at,
}
IGNORED = {"Limit", "Cursor", "LeaseState", "WhenReleased"}


def resolve(obj):
    """obj with a local $ref followed (as often as it takes)."""
    while isinstance(obj, dict) and "$ref" in obj:
        node = DOC
        for part in obj["$ref"].lstrip("#/").split("/"):
            node = node[part]
        obj = node
    return obj


def param_key(prm):
    if "$ref" in prm:
        return prm["$ref"].rsplit("/", 1)[1]
    return "%s:%s" % (prm["in"], prm["name"])


class Operation:
    """One (path, method) of the document, its parameters (the path item's
    and its own) and its request body's schema name."""

    def __init__(self, path, method, op, path_params):
        self.path, self.method, self.op = path, method.upper(), op
        self.id = op.get("operationId", "%s %s" % (self.method, path))
        self.params = [(param_key(p), resolve(p)) for p in path_params + op.get("parameters", [])]
        self.body_schema = None
        if "requestBody" in op:
            schema = resolve(op["requestBody"])["content"]["application/json"]["schema"]
            self.body_schema = schema["$ref"].rsplit("/", 1)[1] if "$ref" in schema else None
        security = op.get("security", DOC.get("security", []))
        self.public = security == []

    @property
    def write(self):
        return self.method != "GET"

    def slots(self):
        """(slot name, kind, where, required) of what the call names of a tenant."""
        out = []
        for key, prm in self.params:
            if key in SLOTS:
                out.append((key, SLOTS[key], prm["in"], prm["in"] == "path" or bool(prm.get("required"))))
            elif key not in FIXED and key not in IGNORED:
                raise AssertionError("%s: parameter %s of docs/openapi.json is not sorted in this test's SLOTS, FIXED "
                                     "or IGNORED" % (self.id, key))
        if self.body_schema is not None:
            builder = BODIES.get(self.body_schema)
            if builder is None:
                raise AssertionError("%s: no valid body is known for schema %s" % (self.id, self.body_schema))
            out += [("body." + kind, kind, "body", True) for kind in builder[0]]
        return out

    def __str__(self):
        return "%s %s" % (self.method, self.path)


def operations():
    """Every operation of the document, in its order."""
    out = []
    for path, item in DOC["paths"].items():
        for method, op in item.items():
            if method in HTTP_METHODS:
                out.append(Operation(path, method, op, item.get("parameters", [])))
    return out


# Valid request bodies by schema: (the kinds of slot the body carries, a
# builder from a slot's value getter). The body of a pool's creation with
# globex's Idempotency-Key is globex's own request, byte for byte: a key kept
# for every portal at once would answer acme with globex's pool.
def _pool_create(v):
    if v("idempotency") is not None and v("idempotency") == World.current.globex["idempotency"]:
        return World.current.globex_create_body
    return pf.list_pool("acme-probe", 2, subscription=v("subscription"))


BODIES = {
    "PoolCreate": (["subscription"], _pool_create),
    "PoolPatch": ([], lambda v: {"lease_ttl": 300}),
    "EntriesAdd": ([], lambda v: {"entry": [{"impu": "sip:acme-probe-9@" + DOMAIN,
                                              "impi": "acme-probe-9@" + DOMAIN}]}),
}


class Request:
    def __init__(self, method, path, headers, body):
        self.method, self.path, self.headers, self.body = method, path, headers, body

    def send(self, p, portal="acme", key=None):
        return p.api(self.method, self.path, portal=portal, key=key, body=copy.deepcopy(self.body),
                     headers=dict(self.headers))

    def __str__(self):
        return "%s %s%s%s" % (self.method, self.path, " " + json.dumps(self.headers) if self.headers else "",
                              " " + json.dumps(self.body) if self.body is not None else "")


class World:
    """What the matrix works with: a tenant's values by kind of slot, for
    globex, for nothing, and for acme."""

    current = None

    def __init__(self):
        self.globex, self.none, self.acme = {}, {}, {}
        self.at = None
        self.globex_create_body = None
        self.globex_marks = []          # strings that only globex's data holds
        self.globex_pool_ids = set()
        self.globex_lease_ids = set()

    def side(self, name):
        return {"globex": self.globex, "none": self.none, "acme": self.acme}[name]

    def request(self, op, choice):
        """The call of op, each slot from the side choice(slot) names (None:
        the slot is left out, if it may be)."""
        path, query, headers = op.path, [], {}
        for key, prm in op.params:
            if key in IGNORED:
                continue
            if key in FIXED:
                value = FIXED[key](self)
            else:
                side = choice(key)
                if side is None:
                    if prm["in"] == "path" or prm.get("required"):
                        raise AssertionError("%s: required parameter %s left out" % (op.id, key))
                    continue
                value = self.side(side)[SLOTS[key]]
                if value is None:
                    continue
            if prm["in"] == "path":
                path = path.replace("{%s}" % prm["name"], urllib.parse.quote(str(value), safe=":@"))
            elif prm["in"] == "query":
                query.append((prm["name"], str(value)))
            elif prm["in"] == "header":
                headers[prm["name"]] = str(value)
            else:
                raise AssertionError("%s: parameter %s in %s" % (op.id, key, prm["in"]))
        if "{" in path:
            raise AssertionError("%s: path parameters left in %s" % (op.id, path))
        body = None
        if op.body_schema is not None:
            kinds, build = BODIES[op.body_schema]

            def value(kind):
                """The value of a slot of the body, or of the parameter of that kind."""
                key = "body." + kind if kind in kinds else next((k for k, _ in op.params if SLOTS.get(k) == kind),
                                                                None)
                side = choice(key) if key else None
                return self.side(side).get(kind) if side else None

            body = build(value)
        if query:
            path += "?" + urllib.parse.urlencode(query)
        return Request(op.method, path, headers, body)

    def marks_in(self, r):
        """What of globex's an answer shows: its names and IMPUs (any string
        with a mark of globex's in it), its pools and leases by id."""
        found = []
        if not r.body:
            return found
        try:
            j = json.loads(r.body)
        except ValueError:
            j = r.body.decode("utf-8", "replace")

        def walk(x):
            if isinstance(x, str):
                found.extend(m for m in self.globex_marks if m in x)
            elif isinstance(x, list):
                for y in x:
                    walk(y)
            elif isinstance(x, dict):
                if x.get("id") in self.globex_pool_ids and "subscription" in x:
                    found.append("pool %s" % x["id"])
                if x.get("pool") in self.globex_pool_ids:
                    found.append("pool %s" % x["pool"])
                if x.get("id") in self.globex_lease_ids and "holder" in x:
                    found.append("lease %s" % x["id"])
                for y in x.values():
                    walk(y)

        walk(j)
        for h in ("Location", "ETag"):
            v = r.header(h)
            if v and any(v.endswith("/%d" % i) for i in self.globex_pool_ids):
                found.append("%s: %s" % (h, v))
        return found


class Cell:
    """One call of the cross-tenant matrix: acme's with globex's values in
    the crossed slots, and the same call with values that never existed."""

    def __init__(self, op, name, crossed, globex, none):
        self.op, self.name, self.crossed, self.globex, self.none = op, name, crossed, globex, none

    @property
    def crosses_path(self):
        return any(where == "path" for _, _, where, _ in self.crossed)

    def __str__(self):
        return "%s [%s]" % (self.op.id, self.name)


def cross_cells(w):
    """The cross-tenant matrix of every operation under /api/v1/portal/:
    all its slots globex's; when it has more than one, each path, query or
    body slot alone globex's (the others acme's own, or left out); and for a
    read that needs none, acme's call as it is (a collection: nothing of
    globex's in it). A write that names nothing of a tenant has nothing to
    cross: it is in the keys matrix only."""
    cells = []
    for op in operations():
        if not op.path.startswith(PORTAL_PATHS):
            continue
        slots = op.slots()
        if slots:
            everything = [s[0] for s in slots]
            cells.append(Cell(op, "all of globex's: " + ", ".join(everything), slots,
                              w.request(op, lambda k: "globex"), w.request(op, lambda k: "none")))
        if len(slots) > 1:
            for slot in slots:
                name, _, where, _ = slot
                if where == "header":
                    continue

                def choice(k, side, name=name):
                    if k == name:
                        return side
                    s = next((s for s in slots if s[0] == k), None)
                    return "acme" if s is not None and s[3] and s[2] != "header" else None

                cells.append(Cell(op, "globex's %s alone" % name, [slot],
                                  w.request(op, lambda k: choice(k, "globex")),
                                  w.request(op, lambda k: choice(k, "none"))))
        if not any(s[3] for s in slots) and not op.write:
            plain = w.request(op, lambda k: None)
            cells.append(Cell(op, "acme's own call", [], plain, plain))
    return cells


def store_dump(db):
    """Every table of the store, every row, but for the time a portal's key
    was last used and the instant the daemon's tick last brought a pool's
    counts forward to."""
    volatile = {("portal", "last_used_at"), ("pool", "counted_at")}
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    try:
        out = {}
        for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"):
            cols = [c[1] for c in con.execute('PRAGMA table_info("%s")' % table) if (table, c[1]) not in volatile]
            columns = ", ".join('"%s"' % c for c in cols)
            order = ", ".join(str(i + 1) for i in range(len(cols)))
            rows = con.execute('SELECT %s FROM "%s" ORDER BY %s' % (columns, table, order)).fetchall()
            out[table] = (cols, rows)
        return out
    finally:
        con.close()


# Headers whose presence and value an answer of something of globex's must
# share with the answer of what does not exist.
COMPARED_HEADERS = ("Content-Type", "ETag", "Location", "WWW-Authenticate", "Allow", "Retry-After")


def answer_of(r):
    body = None
    if r.body:
        try:
            body = json.loads(r.body)
        except ValueError:
            body = r.body
    return {"status": r.status, "body": body, "headers": {h: r.header(h) for h in COMPARED_HEADERS}}


class Isolation(pf.PortalTestCase):
    """One wwsfd with the portals acme and globex, each with a pool of its
    own made through the API and a visitor holding an IMPU of it."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="wwsfd-isolation-")
        cls.addClassCleanup(cls._remove_class_tmp)
        server = f.Wwsfd(os.path.join(cls.tmp, "wwsfd"), pools=pf.pools_ini(),
                         config={"anonymous": {"pool": "visitors"}}, hook="test-hook")
        cls.server = server
        cls.addClassCleanup(server.finish)
        cls.p = p = pf.Portals(server, {})
        for name in ("acme", "globex"):
            p.add_portal(name)
        server.start()
        cls.addClassCleanup(cls._check_store)
        World.current = cls.w = cls._make_world(p)

    @classmethod
    def _check_store(cls):
        """db check after the tests: the store's integrity, and the counts
        kept with each pool against a scan of its entries."""
        r = cls.p.ctl("db", "check")
        if (r.rc, r.out.strip()) != (0, "ok"):
            raise AssertionError("db check after the isolation tests:\n%s" % r)

    @classmethod
    def _remove_class_tmp(cls):
        if os.environ.get("WWSF_KEEP_TMP"):
            sys.stderr.write("kept %s\n" % cls.tmp)
        else:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def _make_world(cls, p):
        w = World()

        def ok(r, status):
            if r.status != status:
                raise AssertionError("expected HTTP %d, got:\n%s" % (status, r))
            return r.json() if r.body else None

        # globex: a listed pool made with an Idempotency-Key, grown by an
        # entry and changed once; a range pool; a visitor holding an IMPU.
        w.globex_create_body = pf.list_pool("globex-shop", 3, subscription="web-globex")
        gpool = ok(p.api("POST", "pools", portal="globex", body=w.globex_create_body,
                         headers={"Idempotency-Key": "globex-shop-1"}), 201)
        ok(p.api("POST", "pools/%d/entries" % gpool["id"], portal="globex",
                 body={"entry": [{"impu": "sip:globex-shop-4@" + DOMAIN, "impi": "globex-shop-4@" + DOMAIN}]}), 200)
        gpool = ok(p.api("PATCH", "pools/%d" % gpool["id"], portal="globex", body={"lease_ttl": 900}), 200)
        grange = ok(p.api("POST", "pools", portal="globex",
                          body=pf.range_pool("globex-numbers", prefix="+1666", subscription="web-globex")), 201)
        ok(p.server.post_json("/api/v1/anonymous", {"evidence": {"pool": "globex-shop"}}), 200)
        glease = ok(p.api("GET", "pools/%d/leases" % gpool["id"], portal="globex"), 200)["items"][0]
        # acme: a pool of its own with a visitor in it.
        apool = ok(p.api("POST", "pools", body=pf.list_pool("acme-shop", 2)), 201)
        ok(p.server.post_json("/api/v1/anonymous", {"evidence": {"pool": "acme-shop"}}), 200)
        alease = ok(p.api("GET", "pools/%d/leases" % apool["id"]), 200)["items"][0]

        w.gpool, w.grange, w.glease, w.apool, w.alease = gpool, grange, glease, apool, alease
        w.at = glease["started_at"]
        w.globex.update(pool=gpool["id"], lease=glease["id"], subscription="web-globex", impu=glease["impu"],
                        holder=glease["holder"], etag=gpool["etag"], idempotency="globex-shop-1")
        w.none.update(pool=999999, lease=999999, subscription="no-such", impu="sip:nobody-x@" + DOMAIN,
                      holder="anon-nobody", etag='"999999"', idempotency="never-used-1")
        w.acme.update(pool=apool["id"], lease=alease["id"], subscription="web-acme", impu=alease["impu"],
                      holder=alease["holder"], etag=apool["etag"], idempotency=None)
        w.globex_marks = ["globex", glease["holder"], "+1666"]
        w.globex_pool_ids = {gpool["id"], grange["id"]}
        w.globex_lease_ids = {glease["id"]}
        return w

    def setUp(self):
        super().setUp()
        # The shared daemon's log is printed when a test fails.
        self.servers.append(self.server)

    # -- what is compared --

    def globex_views(self):
        """The store (all of it) and globex's data as the operator sees it."""
        w, p = self.w, self.p
        views = {"store": store_dump(p.server.db)}
        for args in (["pool", "list"], ["pool", "show", "globex-shop"], ["pool", "show", "globex-numbers"],
                     ["lease", "list", "--pool", "globex-shop"], ["lease", "show", w.globex["impu"]],
                     ["audit", w.globex["impu"], "--at", str(w.at)], ["portal", "log", "globex"]):
            r = p.ctl(*(args + ["--json"]))
            self.assertEqual(r.rc, 0, str(r))
            views[" ".join(args)] = r.json()
        return views

    def assertUnchanged(self, before, after, what):
        for k in before:
            if before[k] != after[k]:
                if k == "store":
                    tables = [tb for tb in before[k] if before[k][tb] != after[k].get(tb)]
                    detail = "; ".join("%s: %r -> %r" % (tb, before[k][tb][1], after[k].get(tb, (None, None))[1])
                                       for tb in tables)
                else:
                    detail = "%r -> %r" % (before[k], after[k])
                self.fail("%s changed %s: %s" % (what, k, detail[:4000]))
        self.assertEqual(sorted(before), sorted(after))

    # -- the matrices --

    def test_cross_tenant_matrix(self):
        """Every operation with globex's ids, IMPUs, holder, ETag,
        subscription or Idempotency-Key answers acme as with ones that never
        existed; the store does not change."""
        before = self.globex_views()
        cells = cross_cells(self.w)
        for cell in cells:
            with self.subTest(cell=str(cell)):
                self.check_cell(cell)
        after = self.globex_views()
        self.assertUnchanged(before, after, "acme's cross-tenant calls")
        # Every operation of the document under /api/v1/portal/ is in the
        # matrix, and every value of a tenant it takes was globex's in a cell.
        portal_ops = [op for op in operations() if op.path.startswith(PORTAL_PATHS)]
        self.assertEqual({str(c.op) for c in cells},
                         {str(op) for op in portal_ops if op.slots() or not op.write})
        self.assertEqual({(str(c.op), s[0]) for c in cells for s in c.crossed},
                         {(str(op), s[0]) for op in portal_ops for s in op.slots()})
        self.assertGreaterEqual(len(cells), len(portal_ops))
        sys.stderr.write("cross-tenant matrix: %d cells (%d crossing globex's values) over %d operations\n"
                         % (len(cells), len([c for c in cells if c.crossed]), len(portal_ops)))

    def check_cell(self, cell):
        w, p = self.w, self.p
        r = cell.globex.send(p)
        context = "acme's %s\n-> %s" % (cell.globex, r)
        self.assertEqual(w.marks_in(r), [], "globex's data in " + context)
        if not cell.crossed:
            # A collection: nothing of globex's, while globex's own call shows its data.
            self.assertStatus(r, 200)
            mine = cell.globex.send(p, portal="globex")
            self.assertStatus(mine, 200)
            self.assertNotEqual(w.marks_in(mine), [], "globex's own %s shows none of its data:\n%s"
                                % (cell.globex, mine))
            return
        n = cell.none.send(p)
        self.assertEqual(answer_of(r), answer_of(n), "%s\nanswers otherwise than the same call with values that "
                                                     "never existed:\n%s\n-> %s" % (context, cell.none, n))
        if cell.crosses_path:
            self.assertStatus(r, 404, "not_found")
        elif cell.op.write:
            self.assertTrue(400 <= r.status < 500, context)
        else:
            self.assertStatus(r, 200)
        # The values crossed are globex's indeed: globex's own call of a read
        # with all of them finds its data.
        if not cell.op.write and len(cell.crossed) == len(cell.op.slots()):
            mine = cell.globex.send(p, portal="globex")
            self.assertStatus(mine, 200)
            self.assertNotEqual(w.marks_in(mine), [], "globex's own %s shows none of its data:\n%s"
                                % (cell.globex, mine))

    def test_taken_without_saying_by_whom(self):
        """A pool's name and an IMPU are global (the hook names pools; no
        IMPU in two pools of anyone): taken by globex is refused exactly as
        taken by the operator, the name or IMPU aside, and changes nothing."""
        w, p = self.w, self.p
        before = self.globex_views()
        staff_impu = t.list_impu("staff", 1)
        pairs = [
            ("a pool named as globex's",
             pf.list_pool("globex-shop", 1, prefix="acme-fresh"), pf.list_pool("staff", 1, prefix="acme-fresh"),
             "POST", "pools", "globex-shop", "staff"),
            ("a pool with globex's IMPU",
             dict(pf.list_pool("acme-taken", 1), entry=[{"impu": w.globex["impu"], "impi": "acme-taken@" + DOMAIN}]),
             dict(pf.list_pool("acme-taken", 1), entry=[{"impu": staff_impu, "impi": "acme-taken@" + DOMAIN}]),
             "POST", "pools", w.globex["impu"], staff_impu),
            ("an entry of globex's added to acme's pool",
             {"entry": [{"impu": w.globex["impu"], "impi": "acme-taken@" + DOMAIN}]},
             {"entry": [{"impu": staff_impu, "impi": "acme-taken@" + DOMAIN}]},
             "POST", "pools/%d/entries" % w.acme["pool"], w.globex["impu"], staff_impu),
        ]
        for name, gbody, obody, method, path, gvalue, ovalue in pairs:
            with self.subTest(cell=name):
                g = p.api(method, path, body=gbody)
                o = p.api(method, path, body=obody)
                self.assertStatus(g, 409)
                ga, oa = answer_of(g), answer_of(o)
                ga["body"]["detail"] = ga["body"]["detail"].replace(gvalue, "X")
                oa["body"]["detail"] = oa["body"]["detail"].replace(ovalue, "X")
                self.assertEqual(ga, oa, "%s:\n%s\nthe operator's:\n%s" % (name, g, o))
                self.assertNotIn("globex", ga["body"]["detail"])
        self.assertUnchanged(before, self.globex_views(), "acme's refused writes")

    def test_keys_matrix(self):
        """Every operation under /api/v1/portal/ with no key, a malformed,
        unknown, wrong, revoked, rotated-out or expired key: 401 unauthorized with a
        Bearer challenge, and nothing changes; the rest is public."""
        w, p = self.w, self.p
        revoked = p.add_portal("isolation-revoked")
        self.assertStatus(p.api("GET", "subscriptions", key=revoked), 200)
        r = p.ctl("portal", "revoke", "isolation-revoked")
        self.assertEqual(r.rc, 0, str(r))
        rotated = p.add_portal("isolation-rotated")
        self.assertStatus(p.api("GET", "subscriptions", key=rotated), 200)
        r = p.ctl("portal", "rotate", "isolation-rotated", "--grace", "0")
        self.assertEqual(r.rc, 0, str(r))
        self.assertStatus(p.api("GET", "subscriptions", key=r.out.strip()), 200)
        # A grace that runs out while the daemon runs: the old key is kept
        # until then, and refused by its time alone after.
        expired = p.add_portal("isolation-expired")
        self.assertStatus(p.api("GET", "subscriptions", key=expired), 200)
        r = p.ctl("portal", "rotate", "isolation-expired", "--grace", "2s")
        self.assertEqual(r.rc, 0, str(r))
        f.wait_until(lambda: p.api("GET", "subscriptions", key=expired).status == 401, 30,
                     "the rotated key's grace to run out", interval=0.2)
        acme = p.keys["acme"]
        key_id, _, secret = acme.partition(".")
        kinds = {
            "no key": ("", None),
            "not a bearer token": ("", {"Authorization": "Basic " + acme}),
            "malformed key": ("not-a-key", None),
            "unknown key": ("wwsfk_AAAAAAAAAAA." + "A" * 43, None),
            "wrong secret": (key_id + "." + ("B" if secret[0] == "A" else "A") + secret[1:], None),
            "revoked key": (revoked, None),
            "rotated-out key": (rotated, None),
            "key past its grace": (expired, None),
        }
        before = self.globex_views()
        cells = 0
        covered = set()
        for op in operations():
            if op.public:
                self.assertFalse(op.path.startswith(PORTAL_PATHS), "%s is public" % op)
                with self.subTest(cell="%s without a key" % op):
                    self.assertEqual(op.method, "GET", str(op))
                    self.assertStatus(p.api(op.method, op.path, key=""), 200)
                covered.add(str(op))
                cells += 1
                continue
            self.assertTrue(op.path.startswith(PORTAL_PATHS), "%s needs a key but is not of the portal API" % op)
            # acme's own call: it would do what it says with acme's key.
            slots = {s[0]: s for s in op.slots()}
            req = w.request(op, lambda k: "acme" if slots[k][3] else None)
            for kind, (key, headers) in kinds.items():
                with self.subTest(cell="%s with %s" % (op, kind)):
                    r = p.api(req.method, req.path, key=key, body=copy.deepcopy(req.body),
                              headers=dict(req.headers, **(headers or {})))
                    self.assertStatus(r, 401, "unauthorized")
                    self.assertRegex(r.header("WWW-Authenticate") or "", r"^Bearer\b", str(r))
                    self.assertEqual(w.marks_in(r), [])
                cells += 1
            covered.add(str(op))
        self.assertUnchanged(before, self.globex_views(), "calls with keys that do not work")
        self.assertEqual(covered, {str(op) for op in operations()})
        self.assertEqual(cells, len(kinds) * len([op for op in operations() if not op.public])
                         + len([op for op in operations() if op.public]))
        sys.stderr.write("keys matrix: %d cells over %d operations\n" % (cells, len(covered)))

    def test_operator_sees_everything(self):
        """wwsfctl shows both portals' pools, globex's lease and globex's
        writes, and acme's log holds none of globex's."""
        w, p = self.w, self.p
        pools = {x["pool"]: x for x in p.ctl("pool", "list", "--json").json()}
        for name, owner in (("acme-shop", "acme"), ("globex-shop", "globex"), ("globex-numbers", "globex"),
                            ("visitors", "acme"), ("staff", None)):
            self.assertIn(name, pools)
            self.assertEqual(pools[name]["owner"], owner, pools[name])
        self.assertEqual(pools["globex-shop"]["leased"], 1)
        self.assertEqual(pools["globex-shop"]["size"], 4)
        leases = p.ctl("lease", "list", "--pool", "globex-shop", "--state", "leased", "--json").json()
        self.assertEqual([(x["impu"], x["holder"]) for x in leases], [(w.globex["impu"], w.globex["holder"])])
        shown = p.ctl("lease", "show", w.globex["impu"], "--json").json()
        self.assertEqual((shown["pool"], shown["state"], shown["holder"]),
                         ("globex-shop", "leased", w.globex["holder"]))
        audit = p.ctl("audit", w.globex["impu"], "--at", str(w.at), "--json").json()
        self.assertEqual([(x["pool"], x["holder"]) for x in audit], [("globex-shop", w.globex["holder"])])
        log = p.ctl("portal", "log", "globex", "--json").json()
        gpath = "/api/v1/portal/pools/%d" % w.globex["pool"]
        self.assertEqual([(x["action"], x["resource"]) for x in log],
                         [("pool.create", gpath), ("entries.add", gpath + "/entries"), ("pool.update", gpath),
                          ("pool.create", "/api/v1/portal/pools/%d" % w.grange["id"])])
        self.assertEqual(log[2]["after"]["lease_ttl"], 900)
        text = p.ctl("portal", "log", "globex")
        self.assertEqual(text.rc, 0, str(text))
        self.assertIn("entries.add", text.out)
        # acme's log: its own pool only, whatever it tried against globex's.
        alog = p.ctl("portal", "log", "acme", "--json").json()
        self.assertEqual([(x["action"], x["resource"]) for x in alog],
                         [("pool.create", "/api/v1/portal/pools/%d" % w.acme["pool"])])


# Every answer of this file against the document's schemas.
def setUpModule():
    pf.start_recording("portal-isolation")


def tearDownModule():
    pf.validate_recorded(minimum=100)


if __name__ == "__main__":
    f.main()
