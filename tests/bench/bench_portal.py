#!/usr/bin/env python3
"""The portal API under wrk, next to wwsfd's own /healthz in the same run.

    bench_portal.py [--rounds N] [--duration S] [--big N] [--small N]

One wwsfd (durable leases, synchronous=FULL, throttles off) with a portal
"bench" and three pools it made through the API: a range pool of --small
(10^3) IMPUs, a range pool of --big (10^7), and a list pool that the writes
add to. Both range pools are then materialised in full, as after a round of
use, with SQL on the stopped daemon's database: every row of pool_entry
written, 10% in quarantine, 1% leased, the rest free (leased and released
long ago); the triggers of sql/0004-pool-counts.sql keep the pools' counts as
they would for leases. The bench checks that the API's stats say exactly
that. Then, in each round, on the same keep-alive connections (wrk -t2
-c16):

  healthz   GET /healthz                            the HTTPS ceiling
  read      GET /api/v1/portal/pools/{small}        a key check, a pool, its counts
  stats     GET /api/v1/portal/pools/{id}/stats     at --small and at --big
  write     POST /api/v1/portal/pools/{list}/entries, one new entry a request:
            a durable transaction with the key check and the audit record

and, for context, once: the scan that the counts replace (the aggregate
over a pool's entries that wwsfctl pool show ran before schema 4) at both
sizes, timed with Python's sqlite3 on the same file.

Goal: pools/{id}/stats at 10^7 entries as fast as at 10^3 (ratio of the
rates at least 0.9). Output: "result:", "goal:" and "note:" lines like the
other benchmarks; exit 1 only when something does not work (an answer that
is not a success, counts that are wrong, a daemon that dies), 77 without wrk
or openssl. docs/BENCHMARKS.md, section "Portal API", has the figures.
"""

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_wwsfd as B  # noqa: E402

F = B.F
sys.path.insert(0, os.path.join(B.SOURCE_ROOT, "tests", "integration"))
import wwsf_testlib as t  # noqa: E402

DOMAIN = t.DOMAIN
BASE = "/api/v1/portal"
GOAL_STATS_RATIO = 0.9
LEASED_EVERY, QUARANTINE_EVERY = 100, 10      # 1% leased, 10% in quarantine


def api(s, key, method, path, body=None):
    h = {"Authorization": "Bearer " + key}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    r = s.request(method, BASE + path, body=data, headers=h, timeout=120)
    if r.status >= 300:
        raise SystemExit("%s %s: %d %s" % (method, path, r.status, r.body[:500]))
    return json.loads(r.body) if r.body else None


def range_pool(name, prefix, size):
    width = len(str(size - 1))
    last = str(size - 1).zfill(width)
    return {"name": name, "subscription": "bench-sub", "kind": "anonymous", "lease_ttl": 600, "quarantine": 1200,
            "impu_range": "sip:%s{%s..%s}@%s" % (prefix, "0" * width, last, DOMAIN),
            "impi_range": "%s-{%s..%s}@%s" % (name, "0" * width, last, DOMAIN)}


def materialise(db, pool_id, prefix, size, now):
    """Writes every entry row of a range pool: 1% leased, 10% in quarantine,
    the rest free since long ago in an order unrelated to the index."""
    width = len(str(size - 1))
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("PRAGMA synchronous = OFF")
    c.execute("PRAGMA cache_size = -262144")
    c.execute("BEGIN")
    # The non-unique indexes are built after the rows (a sort, much faster
    # than 10^7 random insertions), with the migrations' own SQL.
    indexes = c.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'pool_entry' "
                        "AND sql IS NOT NULL AND sql NOT LIKE 'CREATE UNIQUE%'").fetchall()
    for name, _ in indexes:
        c.execute("DROP INDEX %s" % name)
    c.execute("""
        WITH RECURSIVE i(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM i WHERE n + 1 < ?2)
        INSERT INTO pool_entry (pool_id, idx, impu, impi, holder, leased_at, expires_at, avail_at)
        SELECT ?1, n, 'sip:' || ?3 || printf('%0' || ?4 || 'd', n) || '@' || ?5,
               ?6 || '-' || printf('%0' || ?4 || 'd', n) || '@' || ?5,
               'holder-' || n, ?7 - 100000,
               CASE WHEN n % ?8 = 1 THEN ?7 + 86400
                    WHEN n % ?9 = 0 THEN ?7 - 60
                    ELSE ?7 - 1000000 - (n * 7919) % 86400 END,
               CASE WHEN n % ?8 = 1 THEN ?7 + 86400 + 1200
                    WHEN n % ?9 = 0 THEN ?7 + 86400
                    ELSE ?7 - 1000000 - (n * 7919) % 86400 + 1200 END
        FROM i""", (pool_id, size, prefix, width, DOMAIN, "pool-%d" % pool_id, now, LEASED_EVERY, QUARANTINE_EVERY))
    for _, sql in indexes:
        c.execute(sql)
    c.execute("UPDATE pool SET next_index = ?2 WHERE id = ?1", (pool_id, size))
    c.execute("COMMIT")
    c.close()


def expected_counts(size):
    leased = len(range(1, size, LEASED_EVERY))
    quarantine = len(range(0, size, QUARANTINE_EVERY))
    return leased, quarantine


def scan_seconds(db, pool_id, now):
    """Best of three of the aggregate over every entry of the pool."""
    c = sqlite3.connect(db)
    best = None
    for _ in range(3):
        t0 = time.perf_counter()
        c.execute("SELECT count(*), total(expires_at > ?2 AND retired = 0), "
                  "total(expires_at <= ?2 AND avail_at > ?2 AND retired = 0), total(retired) "
                  "FROM pool_entry WHERE pool_id = ?1", (pool_id, now)).fetchone()
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    c.close()
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="rounds of each measurement (default 3)")
    ap.add_argument("--duration", type=int, default=10, help="seconds of each wrk run (default 10)")
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--wrk-connections", type=int, default=16)
    ap.add_argument("--small", type=int, default=1000, help="IMPUs of the small pool (default 10^3)")
    ap.add_argument("--big", type=int, default=10000000, help="IMPUs of the large pool (default 10^7)")
    ap.add_argument("--threads", type=int, default=4, help="wwsfd [server] threads (default 4)")
    args = ap.parse_args()

    for what, path in (("wwsfd", F.WWSFD), ("wwsfctl", F.WWSFCTL)):
        if not os.access(path, os.X_OK):
            sys.stderr.write("%s not found at %s\n" % (what, path))
            return 1
    missing = [p for p in ("wrk", "openssl") if not shutil.which(p)]
    if missing:
        print("SKIP: not installed: %s (scripts/install-deps installs them)" % ", ".join(missing))
        return B.SKIP
    os.environ.pop("MALLOC_PERTURB_", None)
    args.tmp = tempfile.mkdtemp(prefix="wwsf-bench-portal-", dir=os.environ.get("TMPDIR") or "/tmp")
    print("bench_portal: temp dir %s, %d CPUs, load average %s, wrk -t%d -c%d -d%ds, %d round(s)" % (
        args.tmp, os.cpu_count() or 0, B.loadavg(), args.wrk_threads, args.wrk_connections, args.duration,
        args.rounds), flush=True)

    pools = (t.subscription_ini("bench-sub", owner="bench") + t.subscription_ini("web")
             + t.pool_ini("visitors", t.list_entries("visitor", 3), subscription="web"))
    config = {
        "server": {"threads": str(args.threads), "max_connections_per_ip": "1024"},
        "store": {"sync": "full"},
        "throttle": {"portal_per_key": "0", "anonymous_per_ip": "0"},
    }
    s = F.Wwsfd(os.path.join(args.tmp, "wwsfd"), pools=pools, config=config)
    try:
        r = t.run_wwsfctl(["--db", s.db, "portal", "add", "bench", "--max-pools", "10",
                           "--max-entries", str(args.big + args.small + 10000000), "--json"])
        if r.rc != 0:
            raise SystemExit("portal add: %s" % r)
        key = r.json()["key"]
        s.start()
        small = api(s, key, "POST", "/pools", range_pool("bench-small", "+3", args.small))["id"]
        big = api(s, key, "POST", "/pools", range_pool("bench-big", "+4", args.big))["id"]
        writes = api(s, key, "POST", "/pools", {
            "name": "bench-writes", "subscription": "bench-sub", "kind": "anonymous", "lease_ttl": 600,
            "quarantine": 1200, "entry": [{"impu": "sip:first@%s" % DOMAIN, "impi": "first@%s" % DOMAIN}]})["id"]
        s.finish()

        now = int(time.time())
        for pid, prefix, size in ((small, "+3", args.small), (big, "+4", args.big)):
            t0 = time.monotonic()
            materialise(s.db, pid, prefix, size, now)
            B.note("pool %d: %d entry rows written in %.1f s", pid, size, time.monotonic() - t0)
        scans = {size: scan_seconds(s.db, pid, now) for pid, size in ((small, args.small), (big, args.big))}

        s.start()
        for pid, size in ((small, args.small), (big, args.big)):
            st = api(s, key, "GET", "/pools/%d/stats" % pid)
            want_leased, want_quarantine = expected_counts(size)
            got = (st["materialised"], st["leased"], st["quarantine"], st["free"])
            want = (size, want_leased, want_quarantine, size - want_leased - want_quarantine)
            if got != want:
                B.fail("pool of %d: stats say (materialised, leased, quarantine, free) = %s, the rows %s" % (
                    size, got, want))
            else:
                B.note("pool of %d: stats %s, as written", size, json.dumps(st))

        runs = {}

        def wrk(label, mode, env):
            run = B.run_wrk(B.url_of(s), mode, args, env=env, label=label)
            if run is not None:
                runs.setdefault(label, []).append(run)

        for rnd in range(args.rounds):
            B.note("round %d of %d, load average %s", rnd + 1, args.rounds, B.loadavg())
            wrk("healthz", "healthz", {})
            wrk("read", "get", {"WRK_PATH": BASE + "/pools/%d" % small, "WRK_BEARER": key})
            # The two sizes in turn, each first in every other round.
            for label, pid in (("stats-small", small), ("stats-big", big))[::1 if rnd % 2 == 0 else -1]:
                wrk(label, "get", {"WRK_PATH": BASE + "/pools/%d/stats" % pid, "WRK_BEARER": key})
            wrk("write", "entries", {"WRK_PATH": BASE + "/pools/%d/entries" % writes, "WRK_BEARER": key,
                                     "WRK_DOMAIN": DOMAIN, "WRK_TAG": "r%d-" % rnd})
        added = api(s, key, "GET", "/pools/%d" % writes)
        B.note("the write pool holds %s entries after the runs", json.dumps(added.get("size")))
        s.finish()

        def mean_rate(label):
            v = [r.steady for r in runs.get(label, []) if r.steady is not None]
            return statistics.mean(v) if v else None

        def p50(label):
            v = [r.p50 for r in runs.get(label, [])]
            return statistics.median(v) if v else None

        rates = {k: mean_rate(k) for k in ("healthz", "read", "stats-small", "stats-big", "write")}
        if None in rates.values():
            B.fail("a measurement has no rate: %s" % rates)
            return 1
        B.result("GET /healthz (HTTPS ceiling, same connections)", rates["healthz"], "/s")
        B.result("portal read: GET pools/{id}", rates["read"], "/s")
        B.result("portal write: POST pools/{id}/entries (durable)", rates["write"], "/s")
        B.result("portal read / healthz", rates["read"] / rates["healthz"], "")
        B.result("portal write / healthz", rates["write"] / rates["healthz"], "")
        B.result("GET pools/{id}/stats at %d entries" % args.small, rates["stats-small"], "/s")
        B.result("GET pools/{id}/stats at %d entries" % args.big, rates["stats-big"], "/s")
        B.result("stats p50 at %d entries" % args.small, p50("stats-small"), "ms")
        B.result("stats p50 at %d entries" % args.big, p50("stats-big"), "ms")
        ratio = rates["stats-big"] / rates["stats-small"]
        B.result("stats rate at %d / at %d" % (args.big, args.small), ratio, "")
        B.result("the scan it replaces at %d entries (sqlite3, best of 3)" % args.small, scans[args.small] * 1000,
                 "ms")
        B.result("the scan it replaces at %d entries (sqlite3, best of 3)" % args.big, scans[args.big] * 1000, "ms")
        B.note("rates per run: %s", "; ".join("%s %s" % (k, B.spread([r.steady for r in v]))
                                              for k, v in sorted(runs.items())))
        B.goal("pools/{id}/stats at %d entries as fast as at %d" % (args.big, args.small),
               ratio >= GOAL_STATS_RATIO, "ratio %.2f, goal >= %.1f" % (ratio, GOAL_STATS_RATIO))
    finally:
        if s.running():
            s.kill9()
        if os.environ.get("WWSF_BENCH_KEEP"):
            print("kept %s" % args.tmp)
        else:
            shutil.rmtree(args.tmp, ignore_errors=True)
    print("load average at the end: %s" % B.loadavg(), flush=True)
    if B.failures:
        sys.stderr.write("\n%d failure(s):\n" % len(B.failures))
        for f in B.failures:
            sys.stderr.write("  - %s\n" % f.splitlines()[0])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
