"""A wwsfd with two portals for the portal API tests.

PortalTestCase.start_portals() starts a wwsfd (wwsfd_fixture.Wwsfd) whose
pool configuration gives each of two portals, acme and globex, a
subscription (web-acme, web-globex; per-entry IMPIs) and gives acme also a
shared-IMPI subscription (shared-acme) and an operator pool in web-acme
("visitors", from the files). It makes both portals' API keys with
`wwsfctl portal add` on the daemon's database and returns a Portals object
whose api() sends one request with a portal's key.

Every answer api() gets is appended, with the OpenAPI path template of its
request, to the file named by $WWSF_OPENAPI_RECORD (when set), so that the
answers of the test suite can be validated against docs/openapi.json's
schemas (tests/openapi/validate.mjs answers).
"""

import json
import os
import re
import sys
import tempfile
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import openapi_tools  # noqa: E402
import wwsf_testlib as t  # noqa: E402
import wwsfd_fixture as f  # noqa: E402

DOMAIN = t.DOMAIN
BASE = "/api/v1/portal"

# Path templates of docs/openapi.json, most specific first, as regexes.
_TEMPLATES = [
    ("/api/v1/portal/pools/{id}/entries/{impu}", r"^/api/v1/portal/pools/[^/]+/entries/.+$"),
    ("/api/v1/portal/pools/{id}/entries", r"^/api/v1/portal/pools/[^/]+/entries$"),
    ("/api/v1/portal/pools/{id}/leases", r"^/api/v1/portal/pools/[^/]+/leases$"),
    ("/api/v1/portal/pools/{id}/stats", r"^/api/v1/portal/pools/[^/]+/stats$"),
    ("/api/v1/portal/pools/{id}", r"^/api/v1/portal/pools/[^/]+$"),
    ("/api/v1/portal/pools", r"^/api/v1/portal/pools$"),
    ("/api/v1/portal/subscriptions/{name}", r"^/api/v1/portal/subscriptions/[^/]+$"),
    ("/api/v1/portal/subscriptions", r"^/api/v1/portal/subscriptions$"),
    ("/api/v1/portal/leases/{id}", r"^/api/v1/portal/leases/[^/]+$"),
    ("/api/v1/portal/audit", r"^/api/v1/portal/audit$"),
    ("/api/v1/openapi.json", r"^/api/v1/openapi\.json$"),
]


def template_of(path):
    p = urllib.parse.urlsplit(path).path
    for template, rx in _TEMPLATES:
        if re.match(rx, p):
            return template
    return None


def record(method, path, r):
    out = os.environ.get("WWSF_OPENAPI_RECORD")
    template = template_of(path)
    if not out or not template or r.status == 405:
        return
    body = None
    if r.body:
        try:
            body = json.loads(r.body)
        except ValueError:
            body = r.body.decode("utf-8", "replace")
    with open(out, "a") as fh:
        fh.write(json.dumps({"method": "GET" if method == "HEAD" else method, "path": template,
                             "status": r.status, "body": body}) + "\n")


# The file start_recording() made (None when $WWSF_OPENAPI_RECORD was set
# by the caller, who then keeps it).
_RECORDS = None


def start_recording(name):
    """For a test file's setUpModule(): every answer api() gets from here on
    goes to $WWSF_OPENAPI_RECORD, a new temporary file unless it is set."""
    global _RECORDS
    if not os.environ.get("WWSF_OPENAPI_RECORD"):
        fd, _RECORDS = tempfile.mkstemp(prefix="wwsf-%s-answers-" % name, suffix=".jsonl")
        os.close(fd)
        os.environ["WWSF_OPENAPI_RECORD"] = _RECORDS


def validate_recorded(minimum):
    """For a test file's tearDownModule(): at least minimum answers were
    recorded, and every one is what docs/openapi.json's schemas describe."""
    path = os.environ["WWSF_OPENAPI_RECORD"]
    try:
        with open(path) as fh:
            n = sum(1 for _ in fh)
        if n < minimum:
            raise AssertionError("only %d answers were recorded for the OpenAPI check" % n)
        rc, out, err = openapi_tools.validate("answers", openapi_tools.DOCUMENT, path)
        sys.stderr.write(out)
        if rc != 0:
            raise AssertionError("answers of the portal API that docs/openapi.json does not describe:\n%s" % err)
    finally:
        if _RECORDS:
            os.unlink(_RECORDS)


def pools_ini():
    """Subscriptions of the two portals and the operator's pool."""
    return (t.subscription_ini("web-acme", owner="acme")
            + t.subscription_ini("shared-acme", impi_mode="shared", owner="acme")
            + t.subscription_ini("web-globex", owner="globex")
            + t.subscription_ini("operator")
            + t.pool_ini("visitors", t.list_entries("visitor", 3), subscription="web-acme")
            + t.pool_ini("staff", t.list_entries("staff", 2), subscription="operator"))


def list_pool(name, n=3, subscription="web-acme", prefix=None, **kw):
    """A PoolCreate body of a listed pool with n entries sip:PREFIX-i@DOMAIN."""
    prefix = prefix or name
    body = {"name": name, "subscription": subscription, "kind": "anonymous", "lease_ttl": 600,
            "quarantine": 1200,
            "entry": [{"impu": "sip:%s-%d@%s" % (prefix, i, DOMAIN), "impi": "%s-%d@%s" % (prefix, i, DOMAIN)}
                      for i in range(1, n + 1)]}
    body.update(kw)
    return body


def range_pool(name, first="0000", last="0099", prefix="+1555", subscription="web-acme", **kw):
    body = {"name": name, "subscription": subscription, "kind": "anonymous", "lease_ttl": 600,
            "quarantine": 1200,
            "impu_range": "sip:%s{%s..%s}@%s" % (prefix, first, last, DOMAIN),
            "impi_range": "%s-{%s..%s}@%s" % (name, first, last, DOMAIN)}
    body.update(kw)
    return body


class Portals:
    """The daemon and the portals' keys."""

    def __init__(self, server, keys):
        self.server = server
        self.keys = keys

    def api(self, method, path, key=None, portal="acme", body=None, raw=None, headers=None, content_type=None):
        """One request; key overrides the portal's key ("" sends none)."""
        h = {}
        k = self.keys.get(portal) if key is None else key
        if k:
            h["Authorization"] = "Bearer " + k
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            h["Content-Type"] = content_type or "application/json"
        h.update(headers or {})
        if not path.startswith("/"):
            path = BASE + "/" + path
        r = self.server.request(method, path, body=data, headers=h)
        record(method, path, r)
        return r

    def add_portal(self, name, *args):
        r = t.run_wwsfctl(["--db", self.server.db, "portal", "add", name, "--json"] + list(args))
        if r.rc != 0:
            raise AssertionError("portal add failed:\n%s" % r)
        self.keys[name] = r.json()["key"]
        return self.keys[name]

    def ctl(self, *args):
        return t.run_wwsfctl(["--db", self.server.db] + list(args))


class PortalTestCase(f.WwsfdTestCase):
    def start_portals(self, pools=None, config=None, hook="test-hook", **kw):
        cfg = {"anonymous": {"pool": "visitors"}}
        for sec, kv in (config or {}).items():
            cfg.setdefault(sec, {}).update(kv)
        s = self.make_server(pools=pools if pools is not None else pools_ini(), config=cfg, hook=hook, **kw)
        keys = {}
        p = Portals(s, keys)
        for name in ("acme", "globex"):
            p.add_portal(name)
        s.start()
        self.addCleanup(self.check_store, p)
        return p

    def check_store(self, p):
        """db check after the test: the store's integrity, and the counts kept
        with each pool against a scan of its entries."""
        r = p.ctl("db", "check")
        self.assertEqual((r.rc, r.out.strip()), (0, "ok"), str(r))

    def created(self, p, body, portal="acme"):
        """Creates a pool and returns its answer (201 asserted)."""
        r = p.api("POST", "pools", portal=portal, body=body)
        self.assertStatus(r, 201)
        return r.json()
