#!/usr/bin/python3
"""docs/openapi.json, the portal API's OpenAPI 3.1 document, through
tests/openapi/validate.mjs: it validates against the official schemas and the
validator's own checks (references, operationIds, a JSON schema for every
answer but 204); its paths and methods are exactly the portal API's; and the
validator can fail: a copy with a reference to a missing schema, and an answer
that does not match its schema, are refused.

The validator's npm packages (tests/openapi/package-lock.json) are installed
with `npm ci` into $WWSF_BUILD_ROOT/tests/openapi/npm, never the source tree,
when that copy is missing or older than the lock file (the npm registry is
needed once). Skipped (exit 77) without node and npm."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from openapi_tools import (DOCUMENT, HTTP_METHODS, ROOT, ROUTES, install_validator,  # noqa: E402
                           missing_tools)

class Run:
    def __init__(self, args, p):
        self.args, self.rc, self.out, self.err = args, p.returncode, p.stdout, p.stderr

    def __str__(self):
        return "node validate.mjs %s -> exit %d\n--- stdout:\n%s--- stderr:\n%s" % (
            " ".join(self.args), self.rc, self.out, self.err)


def load_document():
    with open(DOCUMENT, encoding="utf-8") as f:
        return json.load(f)


class OpenApiDocument(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.script = install_validator()
        cls.tmp = tempfile.mkdtemp(prefix="wwsf-openapi-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def validate(self, *args):
        args = [str(a) for a in args]
        p = subprocess.run(["node", self.script] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           encoding="utf-8", errors="replace", timeout=120)
        return Run(args, p)

    def write(self, name, content):
        path = os.path.join(self.tmp, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(content if isinstance(content, str) else json.dumps(content, indent=1))
        return path

    def test_the_document_is_valid(self):
        r = self.validate("document", DOCUMENT)
        self.assertEqual(r.rc, 0, str(r))
        self.assertIn("valid OpenAPI 3.1", r.out, str(r))

    def test_paths_and_methods_are_the_portal_apis(self):
        doc = load_document()
        self.assertEqual(doc["openapi"], "3.1.0")
        self.assertEqual(set(doc["paths"]), set(ROUTES), "the document's paths")
        for path, item in doc["paths"].items():
            self.assertEqual(set(item) & HTTP_METHODS, ROUTES[path], path)
        want = sorted("%s %s" % (m.upper(), p) for p, methods in ROUTES.items() for m in methods)
        r = self.validate("routes", DOCUMENT)
        self.assertEqual(r.rc, 0, str(r))
        self.assertEqual(r.out.splitlines(), want, "validate.mjs routes")

    def test_the_servers_routes_are_the_documents(self):
        """The operations wwsfd serves (the table of src/wwsfd/api/portal.c
        and the document's own route in routes.c) are exactly the
        document's: none missing there, none missing here."""
        served = set()
        with open(os.path.join(ROOT, "src", "wwsfd", "api", "portal.c"), encoding="utf-8") as f:
            for m in re.finditer(r'\{ "(GET|POST|PATCH|DELETE|PUT)", "(/api/v1/portal/[^"]*)", op_', f.read()):
                served.add("%s %s" % (m.group(1), m.group(2)))
        with open(os.path.join(ROOT, "src", "wwsfd", "routes.c"), encoding="utf-8") as f:
            for m in re.finditer(r'\{ "(GET|POST)", "(/api/v1/openapi\.json)"', f.read()):
                served.add("%s %s" % (m.group(1), m.group(2)))
        self.assertGreater(len(served), 10, "the route table was not found")
        doc = load_document()
        documented = {"%s %s" % (m.upper(), path) for path, item in doc["paths"].items()
                      for m in set(item) & HTTP_METHODS}
        self.assertEqual(served - documented, set(), "served but not in docs/openapi.json")
        self.assertEqual(documented - served, set(), "in docs/openapi.json but not served")

    def test_every_request_but_the_document_needs_the_key(self):
        doc = load_document()
        self.assertEqual(doc["components"]["securitySchemes"]["apiKey"]["type"], "http")
        self.assertEqual(doc["components"]["securitySchemes"]["apiKey"]["scheme"], "bearer")
        self.assertEqual(doc["security"], [{"apiKey": []}])
        for path, item in doc["paths"].items():
            for method in set(item) & HTTP_METHODS:
                op = item[method]
                if path == "/api/v1/openapi.json":
                    self.assertEqual(op.get("security"), [], path)
                else:
                    self.assertNotIn("security", op, "%s %s overrides the global security" % (method, path))

    def test_a_broken_document_is_refused(self):
        breaks = {
            "a response schema to a missing schema": (
                lambda d: d["paths"]["/api/v1/portal/pools/{id}"]["get"]["responses"]["200"]["content"]
                ["application/json"].update(schema={"$ref": "#/components/schemas/NoSuchSchema"}),
                "NoSuchSchema"),
            "a missing shared response": (
                lambda d: d["paths"]["/api/v1/portal/leases/{id}"]["get"]["responses"].update(
                    {"404": {"$ref": "#/components/responses/NoSuchResponse"}}),
                "NoSuchResponse"),
            "an operation without operationId": (
                lambda d: d["paths"]["/api/v1/portal/audit"]["get"].pop("operationId"),
                "no operationId"),
            "an answer without a schema": (
                lambda d: d["paths"]["/api/v1/portal/leases/{id}"]["delete"]["responses"].update(
                    {"200": {"description": "The lease."}}),
                "no application/json schema"),
        }
        for what, (damage, expect) in breaks.items():
            with self.subTest(what):
                doc = load_document()
                damage(doc)
                r = self.validate("document", self.write("broken.json", doc))
                self.assertEqual(r.rc, 1, str(r))
                self.assertIn(expect, r.err, str(r))

    def test_answers_against_their_schemas(self):
        valid = {"method": "GET", "path": "/api/v1/portal/pools/{id}", "status": 404,
                 "body": {"error": "not_found", "detail": "no such pool"}}
        gone = {"method": "DELETE", "path": "/api/v1/portal/leases/{id}", "status": 200,
                "body": {"id": 4, "pool": 2, "impu": "sip:web-k3x9q2m7a4bz@ims.example.com",
                         "impi": "acme-visitors@ims.example.com", "holder": "visitor-1", "client_addr": None,
                         "state": "quarantine", "started_at": 1767225600, "expires_at": 1767225900,
                         "ended_at": 1767225900, "end_reason": "revoked", "renewals": 0,
                         "quarantine_until": 1767227100}}
        records = self.write("good.jsonl", "\n".join(json.dumps(r) for r in (valid, gone)) + "\n")
        r = self.validate("answers", DOCUMENT, records)
        self.assertEqual(r.rc, 0, str(r))
        self.assertEqual(r.out.strip(), "2 answers valid against 2 operations", str(r))

        # A member the document does not name, and a code 404 never carries.
        extra = dict(gone, body=dict(gone["body"], owner="acme"))
        wrong_code = dict(valid, body={"error": "conflict", "detail": "no such pool"})
        undeclared = dict(valid, status=418, body=None)
        records = self.write("bad.jsonl", "\n".join(json.dumps(r) for r in (valid, extra, wrong_code, undeclared))
                             + "\n")
        r = self.validate("answers", DOCUMENT, records)
        self.assertEqual(r.rc, 1, str(r))
        self.assertNotIn("bad.jsonl:1:", r.err, str(r))
        self.assertIn("bad.jsonl:2: DELETE /api/v1/portal/leases/{id} 200", r.err, str(r))
        self.assertIn("owner", r.err, str(r))
        self.assertIn("bad.jsonl:3: GET /api/v1/portal/pools/{id} 404", r.err, str(r))
        self.assertIn("bad.jsonl:4: GET /api/v1/portal/pools/{id} 418", r.err, str(r))
        self.assertIn("3 of 4 answers invalid", r.err, str(r))


def main():
    missing = missing_tools()
    if missing:
        sys.stderr.write("skipped: not installed: %s (Debian packages nodejs, npm)\n" % ", ".join(missing))
        sys.exit(77)
    unittest.main(verbosity=2)


if __name__ == "__main__":
    main()
