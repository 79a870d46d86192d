"""The OpenAPI document of the portal API (docs/openapi.json) and its
validator (tests/openapi/validate.mjs), for the tests that use them.

The validator's npm packages (tests/openapi/package-lock.json) are installed
with `npm ci` into $WWSF_BUILD_ROOT/tests/openapi/npm, never the source tree,
when that copy is missing or older than the lock file."""

import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("WWSF_SOURCE_ROOT") or os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("WWSF_BUILD_ROOT") or os.path.join(ROOT, "build")
VALIDATOR_DIR = os.path.join(ROOT, "tests", "openapi")
DOCUMENT = os.path.join(ROOT, "docs", "openapi.json")
NPM_DIR = os.path.join(BUILD, "tests", "openapi", "npm")

# The portal API: path -> its methods.
ROUTES = {
    "/api/v1/openapi.json": {"get"},
    "/api/v1/portal/subscriptions": {"get"},
    "/api/v1/portal/subscriptions/{name}": {"get"},
    "/api/v1/portal/pools": {"get", "post"},
    "/api/v1/portal/pools/{id}": {"get", "patch", "delete"},
    "/api/v1/portal/pools/{id}/entries": {"get", "post"},
    "/api/v1/portal/pools/{id}/entries/{impu}": {"delete"},
    "/api/v1/portal/pools/{id}/leases": {"get"},
    "/api/v1/portal/leases/{id}": {"get", "delete"},
    "/api/v1/portal/pools/{id}/stats": {"get"},
    "/api/v1/portal/audit": {"get"},
}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def missing_tools():
    return [tool for tool in ("node", "npm") if not shutil.which(tool)]


def install_validator():
    """npm ci of tests/openapi's lock file into NPM_DIR when it is stale, and
    validate.mjs beside it (its imports resolve from where it lies); returns
    the path of that copy of validate.mjs."""
    os.makedirs(NPM_DIR, exist_ok=True)
    stamp = os.path.join(NPM_DIR, "node_modules", ".package-lock.json")
    stale = not os.path.exists(stamp)
    for name in ("package.json", "package-lock.json"):
        with open(os.path.join(VALIDATOR_DIR, name), "rb") as f:
            data = f.read()
        dst = os.path.join(NPM_DIR, name)
        old = None
        if os.path.exists(dst):
            with open(dst, "rb") as f:
                old = f.read()
        if old != data:
            with open(dst, "wb") as f:
                f.write(data)
            stale = True
    if stale:
        sys.stderr.write("installing the OpenAPI validator (tests/openapi/package-lock.json) into %s\n" % NPM_DIR)
        p = subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline",
                            "--loglevel=error"], cwd=NPM_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           encoding="utf-8", errors="replace")
        if p.returncode != 0:
            raise AssertionError("npm ci in %s failed:\n%s" % (NPM_DIR, p.stdout))
    script = os.path.join(NPM_DIR, "validate.mjs")
    shutil.copyfile(os.path.join(VALIDATOR_DIR, "validate.mjs"), script)
    return script




def validate(*args, timeout=300):
    """(exit status, stdout, stderr) of node validate.mjs ARGS."""
    script = install_validator()
    p = subprocess.run(["node", script] + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       encoding="utf-8", errors="replace", timeout=timeout)
    return p.returncode, p.stdout, p.stderr
