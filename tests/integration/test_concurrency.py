#!/usr/bin/python3
"""Eight processes acquire leases from one pool at once, each through many
wwsfctl runs with distinct holders: no IMPU may go to two holders, the pool
hands out exactly min(attempts, size), every other attempt says "exhausted",
and what was reported is what the store holds."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wwsf_testlib as t  # noqa: E402

WORKERS = 8
PER_WORKER = 10

# One worker: waits for the start line on stdin, then runs wwsfctl once per
# holder. Successes (the JSON object) go to ok.K, failures (status and stderr
# on one line) to fail.K.
WORKER_SCRIPT = r'''
set -u
W=$1 DB=$2 NOW=$3 POOL=$4 K=$5 N=$6 DIR=$7 HOLDER=${8:-}
read -r _
for i in $(seq 1 "$N"); do
  h=${HOLDER:-w$K-$i}
  if out=$("$W" --db "$DB" --now "$NOW" lease acquire --pool "$POOL" --holder "$h" --json 2>"$DIR/err.$K"); then
    printf '%s\n' "$out" >> "$DIR/ok.$K"
  else
    rc=$?
    printf '%s\t%s\t%s\n' "$rc" "$h" "$(tr '\n' ' ' < "$DIR/err.$K")" >> "$DIR/fail.$K"
  fi
done
'''


def config():
    sub = "conc-web"
    return (t.subscription_ini(sub)
            + t.pool_ini("conc-list", t.list_entries("c", 20), subscription=sub)
            + t.pool_ini("conc-range", ["impu_range = sip:+1888{00..29}@%s" % t.DOMAIN,
                                        "impi_range = c{00..29}@%s" % t.DOMAIN], subscription=sub)
            + t.pool_ini("conc-wide", ["impu_range = sip:+1777{000..499}@%s" % t.DOMAIN,
                                       "impi_range = w{000..499}@%s" % t.DOMAIN], subscription=sub,
                         max_per_holder=3))


class Concurrency(t.TempDirTestCase):

    def setUp(self):
        super().setUp()
        self.c = self.ctl(now=t.T0)
        self.c.import_(t.write_lines(self.path("conc.ini"), config()))

    def contest(self, pool, holder=None, workers=WORKERS, per_worker=PER_WORKER):
        """Runs the workers at once; returns (successes, failures)."""
        out = self.path("run-" + pool + ("-" + holder if holder else ""))
        os.mkdir(out)
        procs = []
        for k in range(workers):
            args = ["bash", "-c", WORKER_SCRIPT, "worker", t.WWSFCTL, self.c.db, str(t.T0), pool, str(k),
                    str(per_worker), out]
            if holder:
                args.append(holder)
            procs.append(subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, universal_newlines=True))
        for p in procs:     # every worker is up: let them all go
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in procs:
            p.stdin.close()
        for k, p in enumerate(procs):
            text = p.stdout.read()
            p.stdout.close()
            rc = p.wait(timeout=110)
            self.assertEqual(rc, 0, "worker %d failed:\n%s" % (k, text))
        ok, failed = [], []
        for k in range(workers):
            path = os.path.join(out, "ok.%d" % k)
            if os.path.exists(path):
                with open(path) as f:
                    for line in f:
                        ok.append(t.Result(["(worker %d)" % k], 0, line, "").json())
            path = os.path.join(out, "fail.%d" % k)
            if os.path.exists(path):
                with open(path) as f:
                    failed += [line.rstrip("\n").split("\t", 2) for line in f]
        self.assertEqual(len(ok) + len(failed), workers * per_worker, "every attempt is accounted for")
        return ok, failed

    def check_distinct_holders(self, pool, size, ok, failed):
        attempts = WORKERS * PER_WORKER
        by_impu = {}
        for o in ok:
            self.assertEqual(o["pool"], pool, str(o))
            self.assertEqual(o["state"], "leased", str(o))
            by_impu.setdefault(o["impu"], []).append(o["holder"])
        twice = {i: h for i, h in by_impu.items() if len(h) > 1}
        self.assertEqual(twice, {}, "IMPUs handed to more than one holder")
        self.assertEqual(len(ok), min(attempts, size),
                         "%d attempts on a pool of %d: %d successes; failures: %s"
                         % (attempts, size, len(ok), failed[:5]))
        for rc, holder, err in failed:
            self.assertEqual(rc, "1", "%s: %s" % (holder, err))
            self.assertIn("exhausted", err, "%s: a failure other than exhaustion: %s" % (holder, err))
        self.check_store(pool, ok)

    def check_store(self, pool, ok):
        rows = {o["impu"]: o for o in self.c.leases("--pool", pool)}
        for o in ok:
            self.assertIn(o["impu"], rows, "reported lease missing from lease list: %s" % o)
            r = rows[o["impu"]]
            self.assertEqual((r["state"], r["holder"]), ("leased", o["holder"]), "store disagrees: %s" % r)
        leased = [r for r in rows.values() if r["state"] == "leased"]
        self.assertEqual(len(leased), len({o["impu"] for o in ok}), "leases nobody was told about")
        self.assertEqual(t.open_history_impus_shared(self.c.db), [], "an IMPU with two open leases")
        self.c.db_check()

    def test_list_pool(self):
        ok, failed = self.contest("conc-list")
        self.check_distinct_holders("conc-list", 20, ok, failed)
        self.assertEqual({o["impu"] for o in ok}, {t.list_impu("c", i) for i in range(1, 21)})

    def test_range_pool(self):
        ok, failed = self.contest("conc-range")
        self.check_distinct_holders("conc-range", 30, ok, failed)
        self.assertEqual({o["impu"] for o in ok}, {"sip:+1888%02d@%s" % (i, t.DOMAIN) for i in range(30)})
        pool = self.c.pool("conc-range")
        self.assertEqual((pool["materialised"], pool["leased"], pool["free"]), (30, 30, 0), str(pool))

    def test_range_pool_not_exhausted(self):
        ok, failed = self.contest("conc-wide")
        self.check_distinct_holders("conc-wide", 500, ok, failed)
        self.assertEqual(failed, [])
        # Materialised in order, without gaps.
        want = {"sip:+1777%03d@%s" % (i, t.DOMAIN) for i in range(WORKERS * PER_WORKER)}
        self.assertEqual({o["impu"] for o in ok}, want)
        self.assertEqual(self.c.pool("conc-wide")["materialised"], WORKERS * PER_WORKER)

    def test_one_holder_from_many_processes(self):
        # Affinity under contention: one holder asking from eight processes at
        # once ends up with one lease, the same IMPU every time.
        ok, failed = self.contest("conc-wide", holder="same-user", per_worker=4)
        self.assertEqual(failed, [])
        self.assertEqual({o["impu"] for o in ok}, {"sip:+1777000@" + t.DOMAIN}, "affinity: one IMPU")
        rows = [r for r in self.c.leases("--pool", "conc-wide") if r["state"] == "leased"]
        self.assertEqual([(r["impu"], r["holder"]) for r in rows], [("sip:+1777000@" + t.DOMAIN, "same-user")])
        self.c.db_check()


    def test_first_use_by_many_processes(self):
        # A fresh store opened by several processes at once (a daemon and an
        # import starting together): each must wait for the others, none may
        # fail with "database is locked". The window is small, so try often.
        cfg = t.write_lines(self.path("first.ini"), config())
        for trial in range(40):
            db = self.path("first-%d.db" % trial)
            # Each waits for the start line, then becomes wwsfctl: all start at once.
            procs = [subprocess.Popen(["bash", "-c", 'read -r _; exec "$@"', "start", t.WWSFCTL, "--db", db,
                                       "--now", str(t.T0), "pool", "import", cfg],
                                      stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      universal_newlines=True)
                     for _ in range(2 * WORKERS)]
            for p in procs:
                p.stdin.write("go\n")
                p.stdin.flush()
            for p in procs:
                p.stdin.close()
            results = []
            for p in procs:
                err = p.stderr.read()
                p.stderr.close()
                results.append((p.wait(timeout=60), err.strip()))
            for rc, err in results:
                self.assertEqual(rc, 0, "trial %d: concurrent first use of a store failed: %s" % (trial, err))
            t.Ctl(db).db_check()
            self.assertEqual(len(t.Ctl(db, now=t.T0).json("pool", "list")), 3)


if __name__ == "__main__":
    t.main()
