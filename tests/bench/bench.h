/* Shared helpers of the benchmarks (docs/BENCHMARKS.md says what each one
 * measures and how). A benchmark prints "result:" lines, reports each goal as
 * "goal met" or "goal missed" and exits non-zero only when something failed:
 * never because it was slow. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "common/clock.h"
#include "lease/lease.h"
#include "store/store.h"

/* Exit status of a benchmark that could not run what it measures. */
#define BENCH_EXIT_FAILURE 1

/* Prints "FAIL: ..." to stderr and exits; the temp dir is removed by atexit. */
__attribute__((format(printf, 1, 2), noreturn)) void bench_fail(const char *fmt, ...);

/* Creates a private temp dir under $TMPDIR (or /tmp), removed at exit. */
const char *bench_tmpdir(void);

/* Bytes of a SQLite database and its WAL (the -shm index holds no data). */
int64_t bench_db_size(const char *db);

static inline double bench_seconds(uint64_t ns) {
        return (double) ns / 1e9;
}

/* A holder handle that looks like a random session identifier, so that
 * holder index insertions land anywhere in the index, as they would live. */
void bench_holder(uint64_t n, char *buf, size_t size);

/* Writes a pool INI with one range pool named "bench" of size IMPUs
 * (sip:+1556NNNNNNN@ims.example.com, 7 digits, lease_ttl 15m, quarantine 30m). */
void bench_write_range_pool(const char *path, int64_t size);

struct bench_lease {
        struct store *store;
        struct lease_engine *engine;
        int64_t now;                    /* the engine's fixed clock */
        struct wwsf_clock clock;
};

/* Opens the store at path (opt NULL: the defaults, synchronous FULL) with an
 * engine on a fixed clock starting at now. */
void bench_lease_open(struct bench_lease *b, const char *path, const struct store_options *opt, int64_t now);
void bench_lease_close(struct bench_lease *b);

/* pool_config_load + lease_import of one file; returns the import's time. */
uint64_t bench_import(struct bench_lease *b, const char *ini, struct lease_import_result *ret);

/* One lease_acquire for holder number n; fails the benchmark on error. */
enum lease_origin bench_acquire(struct bench_lease *b, const char *pool, uint64_t n);

/* Runs lease_reclaim_batch(100, 250) until nothing is left; returns the count. */
int64_t bench_reclaim_all(struct bench_lease *b);

/* A plain SQLite connection for the benchmark's own SQL (baselines, bulk fill). */
sqlite3 *bench_sqlite_open(const char *path);
void bench_sql(sqlite3 *db, const char *sql);
int64_t bench_sql_int(sqlite3 *db, const char *sql);

/* Result lines, in one format for every benchmark. */
void bench_result(const char *what, double value, const char *unit);
void bench_goal(const char *what, bool met, const char *detail_fmt, ...) __attribute__((format(printf, 3, 4)));
void bench_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Median of n values (sorts them in place). */
double bench_median(double *v, size_t n);
