#!/usr/bin/python3
"""A stream of acquisitions (one wwsfctl per acquisition, in a bash loop in
its own session) is killed with SIGKILL at a random moment, several times.
After each kill: every acquisition the stream reported is in the store with
its holder, the store passes its integrity check, no IMPU has two open
leases, and the stream goes on from there."""

import os
import random
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wwsf_testlib as t  # noqa: E402

ROUNDS = 8
MIN_REPORTED = 50
POOL = "crash"

# Reports an acquisition (the JSON line) only once wwsfctl exited 0, that is
# after its transaction committed; anything else goes to the failure log.
STREAM_SCRIPT = r'''
set -u
W=$1 DB=$2 NOW=$3 ROUND=$4 LOG=$5 FAILLOG=$6
for i in $(seq 1 100000); do
  "$W" --db "$DB" --now "$NOW" lease acquire --pool crash --holder "r$ROUND-$i" --json >> "$LOG" \
    || echo "status $? for r$ROUND-$i" >> "$FAILLOG"
done
'''


def config():
    return (t.subscription_ini("crash-web")
            + t.pool_ini(POOL, ["impu_range = sip:+1666{00000..99999}@%s" % t.DOMAIN,
                                "impi_range = k{00000..99999}@%s" % t.DOMAIN],
                         subscription="crash-web", lease_ttl="1d", quarantine="2d"))


def complete_lines(path):
    """The lines of path that were written whole (a kill may cut the last)."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        text = f.read()
    return text.split("\n")[:-1]


class Crash(t.TempDirTestCase):

    def setUp(self):
        super().setUp()
        self.c = self.ctl(now=t.T0)
        self.c.import_(t.write_lines(self.path("crash.ini"), config()))

    def run_round(self, rnd, rng):
        log, faillog = self.path("log.%d" % rnd), self.path("fail.%d" % rnd)
        p = subprocess.Popen(["bash", "-c", STREAM_SCRIPT, "stream", t.WWSFCTL, self.c.db, str(t.T0), str(rnd),
                              log, faillog], start_new_session=True)   # its own session and process group
        try:
            want = MIN_REPORTED + rng.randrange(0, 40)
            deadline = time.monotonic() + 90
            while len(complete_lines(log)) < want:
                self.assertIsNone(p.poll(), "the stream stopped by itself: %s" % complete_lines(faillog))
                self.assertLess(time.monotonic(), deadline, "the stream made no progress (%d reported)"
                                % len(complete_lines(log)))
                time.sleep(0.01)
            time.sleep(rng.uniform(0, 0.05))    # land anywhere in the next acquisition
        finally:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        self.assertEqual(complete_lines(faillog), [], "acquisitions failed before the kill")
        return [t.Result(["(round %d)" % rnd], 0, l, "").json() for l in complete_lines(log)]

    def check_store(self, reported, rnd):
        rows = {o["impu"]: o for o in self.c.leases("--pool", POOL)}
        for o in reported:
            self.assertIn(o["impu"], rows, "round %d: a reported lease is missing after the kill: %s" % (rnd, o))
            r = rows[o["impu"]]
            self.assertEqual((r["state"], r["holder"]), ("leased", o["holder"]),
                             "round %d: the store lost or changed a committed lease: %s" % (rnd, r))
        reported_holders = {o["holder"] for o in reported}
        self.assertEqual(len(reported_holders), len(reported))
        by_impu = {}
        for o in reported:
            by_impu.setdefault(o["impu"], []).append(o["holder"])
        self.assertEqual({i: h for i, h in by_impu.items() if len(h) > 1}, {}, "an IMPU reported to two holders")
        # The one acquisition cut by each kill may have committed without
        # being reported; nothing else may be in the store.
        unreported = [r for r in rows.values() if r["holder"] not in reported_holders]
        self.assertLessEqual(len(unreported), rnd, "leases that no stream run produced: %s" % unreported)
        self.unreported = len(unreported)
        self.c.db_check()
        self.assertEqual(t.open_history_impus_shared(self.c.db), [], "an IMPU with two open leases")
        c = t.sql_connect(self.c.db)
        try:
            entries, next_index = c.execute(
                "SELECT (SELECT count(*) FROM pool_entry WHERE pool_id = p.id), p.next_index "
                "FROM pool p WHERE p.name = ?", (POOL,)).fetchone()
            self.assertEqual(entries, next_index, "the range cursor and the entries it created disagree")
            open_rows = c.execute("SELECT count(*) FROM lease_history WHERE ended_at IS NULL").fetchone()[0]
            linked = c.execute("SELECT count(*) FROM pool_entry e JOIN lease_history h ON h.id = e.history_id "
                               "WHERE h.ended_at IS NULL AND h.impu = e.impu AND h.holder = e.holder").fetchone()[0]
            self.assertEqual((open_rows, linked), (entries, entries), "every entry has exactly its open lease")
        finally:
            c.close()
        return len(rows)

    def test_kill_during_acquisitions(self):
        seed = int(os.environ.get("WWSF_TEST_SEED", random.randrange(1 << 30)))
        rng = random.Random(seed)
        sys.stderr.write("random seed %d (set WWSF_TEST_SEED to repeat)\n" % seed)
        reported = []
        for rnd in range(1, ROUNDS + 1):
            with self.subTest(round=rnd):
                got = self.run_round(rnd, rng)
                self.assertGreaterEqual(len(got), MIN_REPORTED)
                reported += got
                stored = self.check_store(reported, rnd)
                self.assertGreaterEqual(stored, len(reported))
                sys.stderr.write("round %d: %d reported, %d committed but cut before reporting so far\n"
                                 % (rnd, len(got), self.unreported))
        # The stream goes on: new holders get new IMPUs.
        seen = {o["impu"] for o in self.c.leases("--pool", POOL)}
        for i in range(5):
            o = self.c.acquire(POOL, "after-%d" % i)
            self.assertNotIn(o["impu"], seen, "an IMPU handed out twice after the kills: %s" % o)
            seen.add(o["impu"])
            reported.append(o)
        self.check_store(reported, ROUNDS)


if __name__ == "__main__":
    t.main()
