/* Reclaiming 100,000 expired leases with lease_reclaim_batch() in batches of
 * at most 100 leases or 250 ms (Kea's bounds): the total time and the longest
 * batch. Goal: every batch under 50 ms, so reclamation never stalls issuance.
 *
 * usage: bench_reclaim LARGE-RANGE-INI
 *
 * The 100,000 live leases are written in bulk with SQL, row for row what
 * lease_acquire() writes for a new entry (a pool_entry row with its open
 * lease_history row; acquired over the last 15 minutes), because acquiring
 * them one by one would measure acquisition, not reclamation. Then the fixed
 * clock moves past their expiry and the batches run on the store opened with
 * its defaults (synchronous FULL: one fsync per batch), and again with
 * synchronous NORMAL for context. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

#define LEASES 100000
#define BATCH_COUNT 100
#define BATCH_MS 250
#define POOL "national"
#define TTL (15 * 60)   /* lease_ttl of large-range.ini */

static void fill_leases(const char *db, int64_t now) {
        sqlite3 *raw = bench_sqlite_open(db);
        bench_sql(raw, "PRAGMA synchronous = OFF");
        char sql[4096];
        snprintf(sql, sizeof sql,
                 "BEGIN IMMEDIATE;"
                 "CREATE TEMP TABLE fill AS WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n"
                 "  WHERE x < %d - 1)"
                 "  SELECT x, printf('sip:+1556%%07d@ims.example.com', x) AS impu,"
                 "    printf('web%%07d@ims.example.com', x) AS impi,"
                 "    printf('sess-%%08x%%08x', (x * 2654435761) %% 4294967296, (x * 40503 + 12345) %% 4294967296)"
                 "      AS holder,"
                 "    %" PRId64 " - (x %% %d) AS leased_at FROM n;"
                 "INSERT INTO lease_history (id, pool_id, impu, impi, holder, client_addr, started_at)"
                 "  SELECT x + 1, p.id, impu, impi, holder, '192.0.2.10', leased_at FROM fill,"
                 "  pool p WHERE p.name = '" POOL "' ORDER BY x;"
                 "INSERT INTO pool_entry (pool_id, idx, impu, impi, holder, client_addr, leased_at, expires_at,"
                 "  avail_at, retired, history_id)"
                 "  SELECT p.id, x, impu, impi, holder, '192.0.2.10', leased_at, leased_at + p.lease_ttl,"
                 "  leased_at + p.lease_ttl + p.quarantine, 0, x + 1 FROM fill, pool p"
                 "  WHERE p.name = '" POOL "' ORDER BY x;"
                 "UPDATE pool SET next_index = %d WHERE name = '" POOL "';"
                 "DROP TABLE fill;"
                 "COMMIT;",
                 LEASES, now, TTL, LEASES);
        bench_sql(raw, sql);
        if (bench_sql_int(raw, "SELECT count(*) FROM pool_entry WHERE history_id IS NOT NULL") != LEASES)
                bench_fail("fill: expected %d open leases", LEASES);
        sqlite3_close(raw);
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return (x > y) - (x < y);
}

static void run(const char *dir, const char *ini, enum store_sync sync) {
        const char *name = sync == STORE_SYNC_FULL ? "FULL" : "NORMAL";
        char db[4096], label[160];
        snprintf(db, sizeof db, "%s/reclaim-%s.db", dir, name);
        int64_t now = (int64_t) time(NULL);
        /* As wwsfd opens it: WAL checkpoints on a timer of their own, not
         * inside whichever commit crosses the automatic threshold. */
        struct store_options off = { .sync = STORE_SYNC_OFF }, normal = { .sync = STORE_SYNC_NORMAL,
                                                                           .manual_checkpoint = true },
                             full = { .sync = STORE_SYNC_FULL, .manual_checkpoint = true };
        struct bench_lease b;
        struct lease_import_result ir;

        bench_lease_open(&b, db, &off, now);
        bench_import(&b, ini, &ir);
        bench_lease_close(&b);
        uint64_t t0 = wwsf_monotonic_ns();
        fill_leases(db, now);
        printf("\n== reclaim %d expired leases, batches of %d / %d ms, synchronous=%s ==\n", LEASES, BATCH_COUNT,
               BATCH_MS, name);
        bench_note("%d live leases written in %.2f s (SQL bulk fill, untimed)", LEASES,
                   bench_seconds(wwsf_monotonic_ns() - t0));

        bench_lease_open(&b, db, sync == STORE_SYNC_FULL ? &full : &normal, now);
        {
                struct lease l;
                if (lease_lookup(b.engine, "sip:+15560001234@ims.example.com", &l) < 0 ||
                    l.state != LEASE_STATE_LEASED)
                        bench_fail("bulk-filled lease not live: %s", lease_engine_error(b.engine));
        }
        b.now = now + TTL + 1;  /* every lease has run out */

        size_t cap = LEASES / BATCH_COUNT * 2 + 16, n = 0;
        uint64_t *batch_ns = calloc(cap, sizeof *batch_ns);
        if (!batch_ns)
                bench_fail("out of memory");
        int64_t total = 0;
        int cut_by_time = 0;
        uint64_t checkpoint_ns = 0, checkpoint_max_ns = 0;
        uint64_t start = wwsf_monotonic_ns();
        for (;;) {
                struct lease_reclaim_result res;
                uint64_t b0 = wwsf_monotonic_ns();
                int r = lease_reclaim_batch(b.engine, BATCH_COUNT, BATCH_MS, &res);
                uint64_t wall = wwsf_monotonic_ns() - b0;
                if (r < 0)
                        bench_fail("lease_reclaim_batch: %s", lease_engine_error(b.engine));
                if (n == cap)
                        bench_fail("more batches than expected (%zu)", n);
                batch_ns[n++] = wall > res.elapsed_ns ? wall : res.elapsed_ns;
                total += res.reclaimed;
                if (res.more && res.reclaimed < BATCH_COUNT)
                        cut_by_time++;
                /* wwsfd checkpoints about once a second from another thread;
                 * here every 10 batches, timed apart from the batches. */
                if (n % 10 == 0) {
                        uint64_t c0 = wwsf_monotonic_ns();
                        if (lease_checkpoint(b.engine) < 0)
                                bench_fail("checkpoint: %s", lease_engine_error(b.engine));
                        uint64_t c = wwsf_monotonic_ns() - c0;
                        checkpoint_ns += c;
                        if (c > checkpoint_max_ns)
                                checkpoint_max_ns = c;
                }
                if (!res.more && res.reclaimed == 0)
                        break;
        }
        uint64_t elapsed = wwsf_monotonic_ns() - start;
        if (total != LEASES)
                bench_fail("reclaimed %lld leases, expected %d", (long long) total, LEASES);

        bench_lease_close(&b);
        sqlite3 *raw = bench_sqlite_open(db);
        int64_t open_entries = bench_sql_int(raw, "SELECT count(*) FROM pool_entry WHERE history_id IS NOT NULL");
        int64_t open_history = bench_sql_int(raw, "SELECT count(*) FROM lease_history WHERE ended_at IS NULL");
        int64_t expired = bench_sql_int(raw, "SELECT count(*) FROM lease_history WHERE end_reason = 'expired'");
        sqlite3_close(raw);
        if (open_entries || open_history || expired != LEASES)
                bench_fail("after reclaim: %lld entries and %lld history rows still open, %lld closed as expired",
                           (long long) open_entries, (long long) open_history, (long long) expired);

        qsort(batch_ns, n, sizeof *batch_ns, cmp_u64);
        snprintf(label, sizeof label, "sync %s: reclaim %d leases, total", name, LEASES);
        bench_result(label, bench_seconds(elapsed) * 1e3, "ms");
        snprintf(label, sizeof label, "sync %s: leases reclaimed per second", name);
        bench_result(label, (double) LEASES / bench_seconds(elapsed), "leases/s");
        snprintf(label, sizeof label, "sync %s: longest batch", name);
        bench_result(label, (double) batch_ns[n - 1] / 1e6, "ms");
        snprintf(label, sizeof label, "sync %s: median batch", name);
        bench_result(label, (double) batch_ns[n / 2] / 1e6, "ms");
        snprintf(label, sizeof label, "sync %s: 99th percentile batch", name);
        bench_result(label, (double) batch_ns[(n * 99) / 100] / 1e6, "ms");
        bench_note("sync %s: %zu calls (the last one finds nothing), %d cut short by the %d ms bound", name, n,
                   cut_by_time, BATCH_MS);
        snprintf(label, sizeof label, "sync %s: WAL checkpoints (every 10 batches), total", name);
        bench_result(label, (double) checkpoint_ns / 1e6, "ms");
        snprintf(label, sizeof label, "sync %s: longest checkpoint", name);
        bench_result(label, (double) checkpoint_max_ns / 1e6, "ms");
        snprintf(label, sizeof label, "sync %s: longest batch under 50 ms", name);
        bench_goal(label, batch_ns[n - 1] < 50000000u, "%.2f ms", (double) batch_ns[n - 1] / 1e6);
        free(batch_ns);
}

int main(int argc, char **argv) {
        if (argc != 2) {
                fprintf(stderr, "usage: %s LARGE-RANGE-INI\n", argv[0]);
                return 2;
        }
        const char *dir = bench_tmpdir();
        printf("bench_reclaim: temp dir %s, SQLite %s\n", dir, sqlite3_libversion());
        run(dir, argv[1], STORE_SYNC_FULL);
        run(dir, argv[1], STORE_SYNC_NORMAL);
        return 0;
}
