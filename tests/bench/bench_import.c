/* Importing pool-config/large-range.ini (a range of ten million IMPUs) into a
 * fresh store: pool_config_load() + lease_import(). Goals: under 1 s, and the
 * database grows by under 1 MB (range pools are materialised lazily).
 *
 * usage: bench_import LARGE-RANGE-INI
 *
 * Each repetition opens a fresh store with its defaults (synchronous FULL,
 * WAL); the schema is created at open, outside the timed part. Growth is
 * measured twice: database + WAL before and after the import with the store
 * open, and the database file after close (SQLite checkpoints the WAL into
 * it) against a fresh store closed without an import. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

#define REPS 5

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return (x > y) - (x < y);
}

struct pool_seen {
        int64_t size, materialised, free;
        int n;
};

static int on_pool(const struct lease_pool_stats *s, void *userdata) {
        struct pool_seen *p = userdata;
        p->size = s->pool.def.size;
        p->materialised = s->materialised;
        p->free = s->free;
        p->n++;
        return 0;
}

int main(int argc, char **argv) {
        if (argc != 2) {
                fprintf(stderr, "usage: %s LARGE-RANGE-INI\n", argv[0]);
                return 2;
        }
        const char *ini = argv[1];
        const char *dir = bench_tmpdir();
        printf("bench_import: temp dir %s, SQLite %s, %d repetitions, file %s\n", dir, sqlite3_libversion(), REPS,
               ini);

        /* A fresh store closed without an import: the reference size. */
        char empty[4096];
        snprintf(empty, sizeof empty, "%s/empty.db", dir);
        struct bench_lease b;
        bench_lease_open(&b, empty, NULL, (int64_t) time(NULL));
        int64_t empty_open = bench_db_size(empty);
        bench_lease_close(&b);
        int64_t empty_closed = bench_db_size(empty);

        double total_ms[REPS], load_ms[REPS], import_ms[REPS], open_ms[REPS];
        int64_t grow_open = 0, grow_closed = 0;
        for (int i = 0; i < REPS; i++) {
                char db[4096];
                snprintf(db, sizeof db, "%s/import-%d.db", dir, i);
                uint64_t t0 = wwsf_monotonic_ns();
                bench_lease_open(&b, db, NULL, (int64_t) time(NULL));
                open_ms[i] = (double) (wwsf_monotonic_ns() - t0) / 1e6;
                int64_t before = bench_db_size(db);

                struct pool_config *cfg = NULL;
                t0 = wwsf_monotonic_ns();
                int r = pool_config_load(&ini, 1, &cfg);
                uint64_t t1 = wwsf_monotonic_ns();
                if (r < 0) {
                        for (size_t k = 0; cfg && k < cfg->n_errors; k++)
                                fprintf(stderr, "%s\n", cfg->errors[k]);
                        bench_fail("pool_config_load %s: %s", ini, strerror(-r));
                }
                struct lease_import_result ir;
                if ((r = lease_import(b.engine, cfg, &ir)) < 0)
                        bench_fail("lease_import: %s", lease_engine_error(b.engine));
                uint64_t t2 = wwsf_monotonic_ns();
                pool_config_free(cfg);
                load_ms[i] = (double) (t1 - t0) / 1e6;
                import_ms[i] = (double) (t2 - t1) / 1e6;
                total_ms[i] = (double) (t2 - t0) / 1e6;
                int64_t after = bench_db_size(db);
                if (after - before > grow_open)
                        grow_open = after - before;

                if (ir.subscriptions != 1 || ir.pools != 1 || ir.entries_added != 0)
                        bench_fail("import: %d subscriptions, %d pools, %d entries added; expected 1, 1, 0",
                                   ir.subscriptions, ir.pools, ir.entries_added);
                struct pool_seen seen = { 0 };
                if (lease_pools(b.engine, NULL, on_pool, &seen) < 0)
                        bench_fail("lease_pools: %s", lease_engine_error(b.engine));
                if (seen.n != 1 || seen.size != 10000000 || seen.materialised != 0 || seen.free != 10000000)
                        bench_fail("after import: %d pools, size %lld, %lld materialised, %lld free", seen.n,
                                   (long long) seen.size, (long long) seen.materialised, (long long) seen.free);
                bench_lease_close(&b);
                if (bench_db_size(db) - empty_closed > grow_closed)
                        grow_closed = bench_db_size(db) - empty_closed;
                printf("note:   repetition %d: open %.2f ms, load %.3f ms, import %.3f ms, total %.3f ms, "
                       "db+WAL %+lld bytes\n",
                       i + 1, open_ms[i], load_ms[i], import_ms[i], total_ms[i], (long long) (after - before));
        }

        qsort(total_ms, REPS, sizeof *total_ms, cmp_double);
        qsort(load_ms, REPS, sizeof *load_ms, cmp_double);
        qsort(import_ms, REPS, sizeof *import_ms, cmp_double);
        printf("\n== import of a ten-million-IMPU range into a fresh store (synchronous FULL, WAL) ==\n");
        bench_result("pool_config_load, median", load_ms[REPS / 2], "ms");
        bench_result("lease_import (one transaction), median", import_ms[REPS / 2], "ms");
        bench_result("load + import, median", total_ms[REPS / 2], "ms");
        bench_result("load + import, slowest", total_ms[REPS - 1], "ms");
        bench_result("growth, database + WAL with the store open (largest)", (double) grow_open / 1024, "KiB");
        bench_result("growth, database file after close (largest)", (double) grow_closed / 1024, "KiB");
        bench_note("fresh store: %lld bytes (db + WAL) open, %lld bytes closed", (long long) empty_open,
                   (long long) empty_closed);
        bench_goal("import under 1 s", total_ms[REPS - 1] < 1000, "slowest %.2f ms", total_ms[REPS - 1]);
        int64_t grow = grow_open > grow_closed ? grow_open : grow_closed;
        bench_goal("database growth under 1 MB", grow < 1000000, "%lld bytes", (long long) grow);
        return 0;
}
