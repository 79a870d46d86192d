"""Shared helpers of the wwsfctl integration tests.

Every test runs the real wwsfctl binary (meson passes its path in $WWSFCTL)
against a database of its own in a temporary directory, always with an
explicit --db PATH. Times are passed with --now wherever a rule depends on
them, so nothing here waits for the clock or asserts on how long anything
took.
"""

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.environ.get("WWSF_SOURCE_ROOT") or os.path.dirname(os.path.dirname(HERE))
WWSFCTL = os.environ.get("WWSFCTL") or os.path.join(SOURCE_ROOT, "build", "src", "wwsfctl", "wwsfctl")
POOL_CONFIG_DIR = os.path.join(SOURCE_ROOT, "pool-config")

# 2026-01-01T00:00:00Z: the fixed clock of the tests that use --now.
T0 = 1767225600
T0_ISO = "2026-01-01T00:00:00Z"

DOMAIN = "ims.example.com"

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


def example_configs():
    """The shipped pool-config/*.ini files, sorted."""
    return sorted(os.path.join(POOL_CONFIG_DIR, f) for f in os.listdir(POOL_CONFIG_DIR) if f.endswith(".ini"))


def free_port(kind=socket.SOCK_STREAM, host="127.0.0.1"):
    """A port nobody uses on host right now (the server binds it a moment
    later; a start that finds it taken picks another)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout, what, interval=0.05):
    """Polls predicate() until it returns something true; AssertionError
    naming `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("gave up after %ds waiting for %s" % (timeout, what))
        time.sleep(interval)


def describe_status(rc):
    if rc < 0:
        try:
            return "killed by %s" % signal.Signals(-rc).name
        except ValueError:
            return "killed by signal %d" % -rc
    return "exit %d" % rc


class Result:
    def __init__(self, args, rc, out, err):
        self.args, self.rc, self.out, self.err = args, rc, out, err

    @property
    def err_lines(self):
        return [l for l in self.err.splitlines() if l.strip()]

    def json(self):
        try:
            return json.loads(self.out)
        except ValueError as e:
            raise AssertionError("%s: stdout is not JSON (%s):\n%s" % (self.cmdline(), e, self.out))

    def cmdline(self):
        return "wwsfctl " + " ".join(self.args)

    def __str__(self):
        return "%s -> %s\n--- stdout:\n%s--- stderr:\n%s" % (self.cmdline(), describe_status(self.rc), self.out,
                                                              self.err)


def run_wwsfctl(args, timeout=60, env=None):
    args = [str(a) for a in args]
    p = subprocess.run([WWSFCTL] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       encoding="utf-8", errors="replace", timeout=timeout, env=env)
    return Result(args, p.returncode, p.stdout, p.stderr)


class Ctl:
    """wwsfctl bound to one database (and optionally a fixed clock)."""

    def __init__(self, db, now=None):
        self.db = db
        self.now = now

    def args(self, args, now=None):
        now = self.now if now is None else now
        pre = ["--db", self.db]
        if now is not None:
            pre += ["--now", str(now)]
        return pre + [str(a) for a in args]

    def run(self, *args, now=None):
        return run_wwsfctl(self.args(args, now))

    def ok(self, *args, now=None):
        r = self.run(*args, now=now)
        if r.rc != EXIT_OK:
            raise AssertionError("expected exit 0:\n%s" % r)
        return r

    def json(self, *args, now=None):
        """Runs a data command with --json after it; returns the parsed output."""
        return self.ok(*(list(args) + ["--json"]), now=now).json()

    def refused(self, *args, now=None, keyword=None):
        """Expects exit 1 with one line on stderr (containing keyword)."""
        r = self.run(*args, now=now)
        if r.rc != EXIT_REFUSED:
            raise AssertionError("expected exit 1 (refused):\n%s" % r)
        if len(r.err_lines) != 1:
            raise AssertionError("expected exactly one line on stderr:\n%s" % r)
        if keyword is not None and keyword.lower() not in r.err.lower():
            raise AssertionError("expected %r on stderr:\n%s" % (keyword, r))
        return r

    def usage(self, *args, now=None):
        r = self.run(*args, now=now)
        if r.rc != EXIT_USAGE:
            raise AssertionError("expected exit 2 (usage error):\n%s" % r)
        if not r.err.strip():
            raise AssertionError("a usage error should say something on stderr:\n%s" % r)
        return r

    # Shorthands for the commands most tests use.
    def import_(self, *files, now=None):
        return self.json("pool", "import", *files, now=now)

    def acquire(self, pool, holder, *extra, now=None):
        return self.json("lease", "acquire", "--pool", pool, "--holder", holder, *extra, now=now)

    def leases(self, *extra, now=None):
        return self.json("lease", "list", *extra, now=now)

    def show(self, impu, now=None):
        return self.json("lease", "show", impu, now=now)

    def pool(self, name, now=None):
        return self.json("pool", "show", name, now=now)

    def audit(self, impu, at=None, now=None):
        extra = ["--at", at] if at is not None else []
        return self.json("audit", impu, *extra, now=now)

    def db_check(self):
        r = self.ok("db", "check", "--json")
        out = r.json()
        if out.get("ok") is not True or out.get("integrity_check") != "ok":
            raise AssertionError("db check did not say ok:\n%s" % r)
        return out


def subscription_ini(name="sub", impi_mode="per-entry", owner="none", domain=DOMAIN):
    return ["[subscription %s]" % name, "owner = %s" % owner, "domain = %s" % domain,
            "impi_mode = %s" % impi_mode, ""]


def pool_ini(name, source_lines, subscription="sub", kind="anonymous", lease_ttl="10m", quarantine="20m",
             max_per_holder=None):
    lines = ["[pool %s]" % name, "subscription = %s" % subscription, "kind = %s" % kind,
             "lease_ttl = %s" % lease_ttl, "quarantine = %s" % quarantine]
    if max_per_holder is not None:
        lines.append("max_per_holder = %s" % max_per_holder)
    return lines + list(source_lines) + [""]


def list_entries(prefix, n, shared=False):
    """entry lines for sip:PREFIX-1@DOMAIN .. sip:PREFIX-n@DOMAIN."""
    if shared:
        return ["entry = sip:%s-%d@%s" % (prefix, i, DOMAIN) for i in range(1, n + 1)]
    return ["entry = sip:%s-%d@%s %s-%d@%s" % (prefix, i, DOMAIN, prefix, i, DOMAIN) for i in range(1, n + 1)]


def list_impu(prefix, i):
    return "sip:%s-%d@%s" % (prefix, i, DOMAIN)


def write_lines(path, lines):
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def sql_connect(db):
    """A plain sqlite3 connection for checks the CLI does not offer."""
    c = sqlite3.connect(db, timeout=30)
    c.execute("PRAGMA busy_timeout = 30000")
    return c


def checkpoint(db):
    """Moves the WAL into the database file, so file sizes are real."""
    c = sql_connect(db)
    try:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        c.close()


def db_size(db):
    return sum(os.path.getsize(db + s) for s in ("", "-wal") if os.path.exists(db + s))


def open_history_impus_shared(db):
    """IMPUs with more than one open lease_history row (should be none)."""
    c = sql_connect(db)
    try:
        return c.execute("SELECT impu, count(*) FROM lease_history WHERE ended_at IS NULL "
                         "GROUP BY impu HAVING count(*) > 1").fetchall()
    finally:
        c.close()


class TempDirTestCase(unittest.TestCase):
    """Each test method gets its own temporary directory (self.dir)."""

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="wwsf-it-")
        self.dir = self._tmp.name

    def tearDown(self):
        self._tmp.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)

    def ctl(self, name="wwsf.db", now=None):
        return Ctl(self.path(name), now=now)


def main():
    if not os.access(WWSFCTL, os.X_OK):
        sys.stderr.write("wwsfctl not found at %s (set WWSFCTL)\n" % WWSFCTL)
        sys.exit(1)
    unittest.main(verbosity=2)
