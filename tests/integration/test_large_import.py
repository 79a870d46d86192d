#!/usr/bin/python3
"""pool-config/large-range.ini (ten million IMPUs) imports without creating
its entries: the database grows by under 1 MB, the pool reports size
10000000 and nothing materialised, and 1000 acquisitions materialise exactly
1000 entries. No timing is asserted."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wwsf_testlib as t  # noqa: E402

POOL = "national"
SIZE = 10000000
LEASES = 1000
WORKERS = 2

# One loop of acquisitions: holders PREFIX-FIRST .. PREFIX-LAST. Prints each
# failure; exits 1 if there was any.
LOOP_SCRIPT = r'''
set -u
W=$1 DB=$2 NOW=$3 POOL=$4 PREFIX=$5 FIRST=$6 LAST=$7
status=0
for i in $(seq "$FIRST" "$LAST"); do
  "$W" --db "$DB" --now "$NOW" lease acquire --pool "$POOL" --holder "$PREFIX-$i" >/dev/null || status=1
done
exit $status
'''


class LargeImport(t.TempDirTestCase):

    def test_ten_million_range(self):
        large = os.path.join(t.POOL_CONFIG_DIR, "large-range.ini")
        self.assertTrue(os.path.exists(large), large)
        c = self.ctl(now=t.T0)
        self.assertEqual(c.json("pool", "list"), [])     # creates the schema
        t.checkpoint(c.db)
        empty = t.db_size(c.db)

        res = c.import_(large)
        self.assertEqual(res["pools"], 1, str(res))
        t.checkpoint(c.db)
        grown = t.db_size(c.db) - empty
        self.assertLess(grown, 1 << 20, "importing ten million range IMPUs grew the database by %d bytes" % grown)

        pool = c.pool(POOL)
        self.assertEqual((pool["size"], pool["materialised"]), (SIZE, 0), str(pool))
        self.assertEqual((pool["leased"], pool["free"]), (0, SIZE), str(pool))
        self.assertEqual(c.leases("--pool", POOL), [], "no entry rows before the first lease")
        last = c.show("sip:+15569999999@ims.example.com")
        self.assertEqual((last["state"], last["pool"], last["impi"]), ("free", POOL, "web9999999@ims.example.com"))

        # 1000 acquisitions, from WORKERS loops at once.
        share = LEASES // WORKERS
        procs = [subprocess.Popen(["bash", "-c", LOOP_SCRIPT, "loop", t.WWSFCTL, c.db, str(t.T0), POOL, "h%d" % k,
                                   str(k * share + 1), str((k + 1) * share)],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
                 for k in range(WORKERS)]
        for p in procs:
            out, _ = p.communicate(timeout=110)
            self.assertEqual(p.returncode, 0, "acquisitions failed:\n%s" % out)

        pool = c.pool(POOL)
        self.assertEqual((pool["size"], pool["materialised"], pool["leased"]), (SIZE, LEASES, LEASES), str(pool))
        self.assertEqual(pool["free"], SIZE - LEASES, str(pool))
        rows = c.leases("--pool", POOL)
        self.assertEqual(len(rows), LEASES)
        self.assertEqual({r["impu"] for r in rows}, {"sip:+1556%07d@ims.example.com" % i for i in range(LEASES)},
                         "the first 1000 IMPUs of the range, each once")
        self.assertEqual(len({r["holder"] for r in rows}), LEASES)
        self.assertTrue(all(r["state"] == "leased" for r in rows))
        conn = t.sql_connect(c.db)
        try:
            n = conn.execute("SELECT count(*) FROM pool_entry").fetchone()[0]
        finally:
            conn.close()
        self.assertEqual(n, LEASES, "entry rows in the store")
        stats = c.json("stats")
        national = [p for p in stats["pools"] if p["pool"] == POOL][0]
        self.assertEqual((national["size"], national["materialised"]), (SIZE, LEASES), str(national))
        c.db_check()


if __name__ == "__main__":
    t.main()
