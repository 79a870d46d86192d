/* Acquisition rate against pool size (10^3, 10^6, 10^7 IMPUs). Goal: the
 * 10^7 rate at least 0.8 of the 10^3 rate.
 *
 * usage: bench_pool_size [--busy-percent P] [SIZE...]
 *
 * What could grow with the pool is the cost of the index lookups on
 * pool_entry, so each pool is first materialised in full, as it is after a
 * pool has been through one round of use: SIZE pool_entry rows written in bulk
 * with SQL on the database file (a recursive CTE), of which P% (default 10)
 * are in quarantine (released recently, avail_at in the future) and the rest
 * are free (leased then released long ago, avail_at in the past, in an order
 * unrelated to their index). Then, through lease_acquire() with a distinct
 * holder each time:
 *   fresh  the never-used path (a new row; the pool's next_index advances),
 *          with the pool materialised up to SIZE-250: the 250 rows at the top
 *          are deleted before each round of 250 acquisitions;
 *   reuse  the steady state: the entry free for longest is handed out again;
 *          between rounds of 250 the fixed clock moves past TTL + quarantine
 *          and lease_reclaim_batch() closes the leases of the round, so that
 *          every round finds the same mix of free and busy entries.
 * Both with synchronous=OFF, to expose the CPU and index cost rather than the
 * disk's flush; up to 8 rounds of reuse with the default synchronous=FULL gives the
 * durable figure. A lazily materialised pool (10^7 declared, nothing
 * materialised) gives the fresh path of a newly imported range.
 * The pools are measured side by side: each round goes to every pool in
 * turn, so that a drift in the machine's speed (these are shared virtual
 * machines) falls on every size alike and the ratios stay meaningful.
 * Every timed phase stops at a time budget, so a slow path cannot stall the
 * suite; the rate is over what was done. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

#define ROUND 250               /* acquisitions per round (a quarter of the smallest pool) */
#define ROUNDS 40               /* rounds per timed phase */
#define CPU_BUDGET_NS (20ull * 1000000000ull)
#define DURABLE_ROUNDS 8
#define DURABLE_BUDGET_NS (10ull * 1000000000ull)
#define POOL "bench"
/* lease_ttl + quarantine of bench_write_range_pool(), plus one second. */
#define PAST_HOLD (15 * 60 + 30 * 60 + 1)

struct phase {
        int64_t ops;
        uint64_t ns;
        int rounds;
        double round_rate[ROUNDS];
        bool budget_hit;
};

/* One pool under test, in its own database. */
struct pool_run {
        int64_t size;
        bool lazy;              /* imported only: nothing materialised */
        char db[4096];
        double fill_s;
        int64_t db_bytes;
        sqlite3 *raw;
        struct bench_lease b;
        struct phase fresh, reuse, durable;
};

static double rate(const struct phase *p) {
        return p->ns ? (double) p->ops / bench_seconds(p->ns) : 0;
}

static double median_round(const struct phase *p) {
        double v[ROUNDS];
        int n = 0;
        for (int i = 0; i < p->rounds; i++)
                if (p->round_rate[i] > 0)
                        v[n++] = p->round_rate[i];
        return bench_median(v, (size_t) n);
}

static uint64_t next_holder = 1;

/* One round of up to ROUND acquisitions, each expected to come by want. */
static void timed_round(struct bench_lease *b, enum lease_origin want, struct phase *ph, uint64_t budget) {
        uint64_t t0 = wwsf_monotonic_ns();
        int n = 0;
        while (n < ROUND) {
                enum lease_origin o = bench_acquire(b, POOL, next_holder++);
                if (o != want)
                        bench_fail("acquisition came by '%s', expected '%s'", lease_origin_to_string(o),
                                   lease_origin_to_string(want));
                n++;
                if (ph->ns + (wwsf_monotonic_ns() - t0) >= budget) {
                        ph->budget_hit = true;
                        break;
                }
        }
        uint64_t t = wwsf_monotonic_ns() - t0;
        ph->ops += n;
        ph->ns += t;
        ph->round_rate[ph->rounds++] = n == ROUND ? (double) n / bench_seconds(t) : 0;
}

/* Deletes the top ROUND entries and their lease history, so that the next
 * ROUND acquisitions create them again on the same database as the last. */
static void reset_top(sqlite3 *raw, int64_t size) {
        char sql[1024];
        int64_t from = size - ROUND;
        snprintf(sql, sizeof sql,
                 "BEGIN IMMEDIATE;"
                 "DELETE FROM lease_history WHERE impu IN (SELECT e.impu FROM pool_entry e JOIN pool p "
                 "  ON p.id = e.pool_id WHERE p.name = '" POOL "' AND e.idx >= %" PRId64 ");"
                 "DELETE FROM pool_entry WHERE pool_id = (SELECT id FROM pool WHERE name = '" POOL "') "
                 "  AND idx >= %" PRId64 ";"
                 "UPDATE pool SET next_index = %" PRId64 " WHERE name = '" POOL "';"
                 "COMMIT;",
                 from, from, from);
        bench_sql(raw, sql);
}

/* Moves the clock past the hold of every lease handed out so far and closes
 * them, outside the timed part. */
static void age_and_reclaim(struct bench_lease *b) {
        b->now += PAST_HOLD;
        bench_reclaim_all(b);
}

/* Writes size pool_entry rows for the pool (see the comment at the top). The
 * store must be closed. Returns the time it took. */
static double fill_pool(const char *db, int64_t size, int busy_percent, int64_t now) {
        uint64_t t0 = wwsf_monotonic_ns();
        sqlite3 *raw = bench_sqlite_open(db);
        /* A bulk load: no journal, no fsync, a big cache for the index builds. */
        bench_sql(raw, "PRAGMA journal_mode = DELETE; PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;"
                       "PRAGMA cache_size = -262144;");
        /* The non-unique indexes are built after the rows (a sort, much faster
         * than 10^7 random insertions); the same SQL as the migration's. */
        static const char *const names[] = { "pool_entry_by_avail", "pool_entry_by_holder",
                                             "pool_entry_open_by_expiry" };
        enum { N_INDEXES = sizeof names / sizeof names[0] };
        char *create[N_INDEXES];
        for (int i = 0; i < N_INDEXES; i++) {
                sqlite3_stmt *st;
                if (sqlite3_prepare_v2(raw, "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?1", -1,
                                       &st, NULL) != SQLITE_OK)
                        bench_fail("fill: %s", sqlite3_errmsg(raw));
                sqlite3_bind_text(st, 1, names[i], -1, SQLITE_STATIC);
                if (sqlite3_step(st) != SQLITE_ROW)
                        bench_fail("fill: the schema has no index %s (bench out of date with sql/)", names[i]);
                create[i] = strdup((const char *) sqlite3_column_text(st, 0));
                sqlite3_finalize(st);
        }
        bench_sql(raw, "BEGIN");
        for (int i = 0; i < N_INDEXES; i++) {
                char sql[128];
                snprintf(sql, sizeof sql, "DROP INDEX %s", names[i]);
                bench_sql(raw, sql);
        }
        /* perm is a permutation of 0..size-1 (7919 is prime and does not divide
         * size), so avail_at orders the entries unlike their index, as reuse
         * does over time; the lowest perm values are the busy ones. */
        if (size % 7919 == 0)
                bench_fail("fill: size %lld is a multiple of 7919", (long long) size);
        int64_t busy = size * busy_percent / 100;
        char sql[4096];
        snprintf(sql, sizeof sql,
                 "WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n WHERE x < %" PRId64 " - 1),"
                 " r(x, perm) AS (SELECT x, (x * 7919) %% %" PRId64 " FROM n),"
                 " t(x, perm, avail) AS (SELECT x, perm, CASE WHEN perm < %" PRId64 ""
                 "   THEN %" PRId64 " + 30 * 86400 + perm"              /* quarantine: free in a month */
                 "   ELSE %" PRId64 " - 3600 - (%" PRId64 " - perm) END FROM r)"  /* free for an hour or more */
                 " INSERT INTO pool_entry (pool_id, idx, impu, impi, holder, client_addr, leased_at, expires_at,"
                 "   avail_at, retired, history_id)"
                 " SELECT (SELECT id FROM pool WHERE name = '" POOL "'), x,"
                 "   printf('sip:+1556%%07d@ims.example.com', x), printf('web%%07d@ims.example.com', x),"
                 "   printf('sess-%%08x%%08x', (x * 2654435761) %% 4294967296, (x * 40503 + 12345) %% 4294967296),"
                 "   '192.0.2.10',"
                 "   CASE WHEN perm < %" PRId64 " THEN %" PRId64 " - 60 - perm - 900 ELSE avail - 1800 - 900 END,"
                 "   CASE WHEN perm < %" PRId64 " THEN %" PRId64 " - 60 - perm ELSE avail - 1800 END,"
                 "   avail, 0, NULL FROM t",
                 size, size, busy, now, now, size, busy, now, busy, now);
        bench_sql(raw, sql);
        for (int i = 0; i < N_INDEXES; i++) {
                bench_sql(raw, create[i]);
                free(create[i]);
        }
        snprintf(sql, sizeof sql, "UPDATE pool SET next_index = %" PRId64 " WHERE name = '" POOL "'", size);
        bench_sql(raw, sql);
        bench_sql(raw, "COMMIT; PRAGMA journal_mode = WAL;");
        sqlite3_close(raw);
        return bench_seconds(wwsf_monotonic_ns() - t0);
}

static void print_phase(const char *what, const struct pool_run *pr, const struct phase *p) {
        char label[160];
        snprintf(label, sizeof label, "size %-8" PRId64 " %s%s", pr->size, pr->lazy ? "lazy, " : "", what);
        bench_result(label, rate(p), "acq/s");
        printf("note:   %-8" PRId64 " %s%s: %lld acquisitions in %.2f s, %d rounds, median round %.0f/s%s\n",
               pr->size, pr->lazy ? "lazy, " : "", what, (long long) p->ops, bench_seconds(p->ns), p->rounds,
               median_round(p), p->budget_hit ? ", stopped at the time budget" : "");
        fflush(stdout);
}

static void remove_db(const char *db) {
        char path[4200];
        remove(db);
        snprintf(path, sizeof path, "%s-wal", db);
        remove(path);
        snprintf(path, sizeof path, "%s-shm", db);
        remove(path);
}

static void setup(const char *dir, struct pool_run *pr, int busy_percent, int64_t now) {
        char ini[4096];
        snprintf(pr->db, sizeof pr->db, "%s/pool-%" PRId64 "%s.db", dir, pr->size, pr->lazy ? "-lazy" : "");
        snprintf(ini, sizeof ini, "%s/pool-%" PRId64 ".ini", dir, pr->size);
        struct store_options off = { .sync = STORE_SYNC_OFF };
        struct lease_import_result ir;

        bench_write_range_pool(ini, pr->size);
        bench_lease_open(&pr->b, pr->db, &off, now);
        bench_import(&pr->b, ini, &ir);
        if (pr->lazy) {
                printf("\n== lazily materialised pool of %" PRId64 " IMPUs: imported, nothing materialised ==\n",
                       pr->size);
                return;
        }
        bench_lease_close(&pr->b);
        printf("\n== pool of %" PRId64 " IMPUs, %d%% in quarantine ==\n", pr->size, busy_percent);
        fflush(stdout);
        pr->fill_s = fill_pool(pr->db, pr->size, busy_percent, now);
        pr->db_bytes = bench_db_size(pr->db);
        bench_note("materialised %" PRId64 " entries in %.1f s (SQL bulk fill, untimed); database %.1f MB", pr->size,
                   pr->fill_s, (double) pr->db_bytes / 1e6);

        pr->raw = bench_sqlite_open(pr->db);
        bench_sql(pr->raw, "PRAGMA synchronous = OFF");
        bench_lease_open(&pr->b, pr->db, &off, now);
        /* The engine sees the bulk rows as its own. */
        char impu[64];
        struct lease l;
        snprintf(impu, sizeof impu, "sip:+1556%07" PRId64 "@ims.example.com", pr->size / 2);
        if (lease_lookup(pr->b.engine, impu, &l) < 0 || !l.materialised || strcmp(l.pool, POOL) != 0)
                bench_fail("bulk-filled entry %s not found by lease_lookup: %s", impu, lease_engine_error(pr->b.engine));
}

int main(int argc, char **argv) {
        int64_t sizes[8] = { 1000, 1000000, 10000000 };
        size_t n_sizes = 3;
        int busy_percent = 10;
        bool sizes_given = false;
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--busy-percent") == 0 && i + 1 < argc) {
                        busy_percent = atoi(argv[++i]);
                        if (busy_percent < 0 || busy_percent > 50)
                                bench_fail("--busy-percent: 0 to 50");
                        continue;
                }
                char *end;
                long long v = strtoll(argv[i], &end, 10);
                if (*end || v < 4 * ROUND || v > 10000000) {
                        fprintf(stderr, "usage: %s [--busy-percent P] [SIZE...] (SIZE from %d to 10^7)\n", argv[0],
                                4 * ROUND);
                        return 2;
                }
                if (!sizes_given)
                        n_sizes = 0;
                sizes_given = true;
                if (n_sizes == sizeof sizes / sizeof sizes[0] - 1)
                        bench_fail("at most %zu sizes", sizeof sizes / sizeof sizes[0] - 1);
                sizes[n_sizes++] = v;
        }
        const char *dir = bench_tmpdir();
        printf("bench_pool_size: temp dir %s, SQLite %s, rounds of %d acquisitions, %d rounds per phase, "
               "%d%% of each pool in quarantine\n",
               dir, sqlite3_libversion(), ROUND, ROUNDS, busy_percent);

        int64_t now = (int64_t) time(NULL);
        struct pool_run runs[9] = { 0 };
        size_t n = 0;
        for (size_t i = 0; i < n_sizes; i++) {
                runs[n].size = sizes[i];
                setup(dir, &runs[n++], busy_percent, now);
        }
        struct pool_run *lazy = &runs[n++];
        lazy->size = 10000000;
        lazy->lazy = true;
        setup(dir, lazy, busy_percent, now);

        /* Fresh path, the materialised pools with their top rows deleted
         * before each round; the lazy pool simply goes on. */
        printf("\n== fresh entries, synchronous=OFF, pools in turn ==\n");
        for (int round = 0; round < ROUNDS; round++)
                for (size_t i = 0; i < n; i++) {
                        struct pool_run *pr = &runs[i];
                        if (pr->fresh.budget_hit)
                                continue;
                        if (!pr->lazy)
                                reset_top(pr->raw, pr->size);
                        timed_round(&pr->b, LEASE_ORIGIN_NEW, &pr->fresh, CPU_BUDGET_NS);
                        age_and_reclaim(&pr->b);
                }
        for (size_t i = 0; i < n; i++)
                print_phase("fresh, sync OFF", &runs[i], &runs[i].fresh);
        bench_lease_close(&lazy->b);
        remove_db(lazy->db);
        n--;

        /* A round cut short by the budget leaves the top of a pool unused:
         * count the pool as fully materialised (those few rows stay absent). */
        for (size_t i = 0; i < n; i++) {
                char sql[256];
                snprintf(sql, sizeof sql, "UPDATE pool SET next_index = %" PRId64 " WHERE name = '" POOL "'",
                         runs[i].size);
                bench_sql(runs[i].raw, sql);
        }

        /* Reuse path: the steady state. */
        printf("\n== reuse of the entry free for longest, synchronous=OFF, pools in turn ==\n");
        for (int round = 0; round < ROUNDS; round++)
                for (size_t i = 0; i < n; i++) {
                        struct pool_run *pr = &runs[i];
                        if (pr->reuse.budget_hit)
                                continue;
                        timed_round(&pr->b, LEASE_ORIGIN_REUSED, &pr->reuse, CPU_BUDGET_NS);
                        age_and_reclaim(&pr->b);
                }
        for (size_t i = 0; i < n; i++)
                print_phase("reuse, sync OFF", &runs[i], &runs[i].reuse);

        /* The same with the store's defaults: every commit waits for the disk. */
        printf("\n== reuse, the store's defaults (synchronous=FULL), pools in turn ==\n");
        for (size_t i = 0; i < n; i++) {
                int64_t t = runs[i].b.now;
                bench_lease_close(&runs[i].b);
                bench_lease_open(&runs[i].b, runs[i].db, NULL, t);
        }
        for (int round = 0; round < DURABLE_ROUNDS; round++)
                for (size_t i = 0; i < n; i++) {
                        struct pool_run *pr = &runs[i];
                        if (pr->durable.budget_hit)
                                continue;
                        timed_round(&pr->b, LEASE_ORIGIN_REUSED, &pr->durable, DURABLE_BUDGET_NS);
                        age_and_reclaim(&pr->b);
                }
        for (size_t i = 0; i < n; i++)
                print_phase("reuse, sync FULL", &runs[i], &runs[i].durable);

        for (size_t i = 0; i < n; i++) {
                struct pool_run *pr = &runs[i];
                if (pr->size <= 1000000) {
                        char buf[512];
                        if (lease_check(pr->b.engine, buf, sizeof buf) < 0 || strcmp(buf, "ok") != 0)
                                bench_fail("integrity check: %s", buf);
                }
                bench_lease_close(&pr->b);
                sqlite3_close(pr->raw);
                remove_db(pr->db);
        }

        printf("\n== summary (acquisitions/s) ==\n");
        printf("%-10s %12s %12s %12s %10s %10s\n", "size", "fresh OFF", "reuse OFF", "reuse FULL", "fill s", "db MB");
        for (size_t i = 0; i < n; i++)
                printf("%-10" PRId64 " %12.0f %12.0f %12.0f %10.1f %10.1f\n", runs[i].size, rate(&runs[i].fresh),
                       rate(&runs[i].reuse), rate(&runs[i].durable), runs[i].fill_s,
                       (double) runs[i].db_bytes / 1e6);
        printf("%-10s %12.0f\n", "lazy 10^7", rate(&lazy->fresh));

        const struct pool_run *lo = NULL, *hi = NULL;
        for (size_t i = 0; i < n; i++) {
                if (runs[i].size == 1000)
                        lo = &runs[i];
                if (runs[i].size == 10000000)
                        hi = &runs[i];
        }
        if (lo && hi) {
                double reuse = rate(&hi->reuse) / rate(&lo->reuse), fresh = rate(&hi->fresh) / rate(&lo->fresh);
                bench_result("reuse rate 10^7 / 10^3 (sync OFF)", reuse, "");
                bench_result("fresh rate 10^7 / 10^3 (sync OFF)", fresh, "");
                bench_result("reuse rate 10^7 / 10^3 (sync FULL)", rate(&hi->durable) / rate(&lo->durable), "");
                bench_goal("reuse (steady state): 10^7 rate >= 0.8 x 10^3 rate", reuse >= 0.8, "ratio %.2f", reuse);
                bench_goal("fresh entries: 10^7 rate >= 0.8 x 10^3 rate", fresh >= 0.8, "ratio %.2f", fresh);
        } else
                bench_note("goal 10^7 vs 10^3 not evaluated: both sizes were not run");
        return 0;
}
