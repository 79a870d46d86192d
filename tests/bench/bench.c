#include "bench.h"

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/pool_config.h"

static char tmpdir[4096];

static void rmtree(const char *path);

static void remove_tmpdir(void) {
        if (tmpdir[0] && !getenv("WWSF_BENCH_KEEP"))
                rmtree(tmpdir);
}

void bench_fail(const char *fmt, ...) {
        va_list ap;
        fflush(stdout);
        fputs("FAIL: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        exit(BENCH_EXIT_FAILURE);
}

const char *bench_tmpdir(void) {
        if (tmpdir[0])
                return tmpdir;
        const char *base = getenv("TMPDIR");
        if (!base || !*base)
                base = "/tmp";
        snprintf(tmpdir, sizeof tmpdir, "%s/wwsf-bench-XXXXXX", base);
        if (!mkdtemp(tmpdir)) {
                int r = errno;
                tmpdir[0] = '\0';
                bench_fail("mkdtemp under %s: %s", base, strerror(r));
        }
        atexit(remove_tmpdir);
        return tmpdir;
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        (void) st;
        (void) type;
        (void) ftw;
        if (remove(path) < 0)
                fprintf(stderr, "warning: cannot remove %s: %s\n", path, strerror(errno));
        return 0;
}

static void rmtree(const char *path) {
        nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int64_t file_size(const char *path) {
        struct stat st;
        return stat(path, &st) == 0 ? (int64_t) st.st_size : 0;
}

int64_t bench_db_size(const char *db) {
        char wal[4096];
        snprintf(wal, sizeof wal, "%s-wal", db);
        return file_size(db) + file_size(wal);
}

/* splitmix64: a bijection, so distinct n give distinct holders. */
static uint64_t mix(uint64_t x) {
        x += 0x9e3779b97f4a7c15u;
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
        return x ^ (x >> 31);
}

void bench_holder(uint64_t n, char *buf, size_t size) {
        snprintf(buf, size, "sess-%016llx", (unsigned long long) mix(n));
}

static void write_file(const char *path, const char *text) {
        FILE *f = fopen(path, "w");
        if (!f)
                bench_fail("cannot write %s: %s", path, strerror(errno));
        fputs(text, f);
        if (fclose(f) != 0)
                bench_fail("cannot write %s: %s", path, strerror(errno));
}

void bench_write_range_pool(const char *path, int64_t size) {
        if (size < 1 || size > 10000000)
                bench_fail("range pool size %lld out of 1..10^7", (long long) size);
        char text[1024];
        snprintf(text, sizeof text,
                 "[subscription bench-web]\n"
                 "owner = none\n"
                 "domain = ims.example.com\n"
                 "impi_mode = per-entry\n"
                 "\n"
                 "[pool bench]\n"
                 "subscription = bench-web\n"
                 "kind = anonymous\n"
                 "lease_ttl = 15m\n"
                 "quarantine = 30m\n"
                 "impu_range = sip:+1556{0000000..%07lld}@ims.example.com\n"
                 "impi_range = web{0000000..%07lld}@ims.example.com\n",
                 (long long) (size - 1), (long long) (size - 1));
        write_file(path, text);
}

void bench_lease_open(struct bench_lease *b, const char *path, const struct store_options *opt, int64_t now) {
        char err[1024] = "";
        memset(b, 0, sizeof *b);
        b->now = now;
        b->clock = wwsf_clock_fixed(&b->now);
        int r = store_sqlite_open(path, opt, &b->store, err, sizeof err);
        if (r < 0)
                bench_fail("store_sqlite_open: %s (%s)", err, strerror(-r));
        if ((r = lease_engine_new(b->store, &b->clock, &b->engine)) < 0)
                bench_fail("lease_engine_new: %s", strerror(-r));
}

void bench_lease_close(struct bench_lease *b) {
        lease_engine_free(b->engine);
        store_close(b->store);
        b->engine = NULL;
        b->store = NULL;
}

uint64_t bench_import(struct bench_lease *b, const char *ini, struct lease_import_result *ret) {
        struct pool_config *cfg = NULL;
        uint64_t t0 = wwsf_monotonic_ns();
        int r = pool_config_load(&ini, 1, &cfg);
        if (r < 0) {
                for (size_t i = 0; cfg && i < cfg->n_errors; i++)
                        fprintf(stderr, "%s\n", cfg->errors[i]);
                bench_fail("pool_config_load %s: %s", ini, strerror(-r));
        }
        if ((r = lease_import(b->engine, cfg, ret)) < 0)
                bench_fail("lease_import %s: %s", ini, lease_engine_error(b->engine));
        uint64_t elapsed = wwsf_monotonic_ns() - t0;
        pool_config_free(cfg);
        return elapsed;
}

enum lease_origin bench_acquire(struct bench_lease *b, const char *pool, uint64_t n) {
        char holder[64];
        struct lease l;
        enum lease_origin origin;
        bench_holder(n, holder, sizeof holder);
        int r = lease_acquire(b->engine, pool, holder, "192.0.2.10", 0, &l, &origin);
        if (r < 0)
                bench_fail("lease_acquire #%llu in pool %s: %s", (unsigned long long) n, pool,
                           lease_engine_error(b->engine));
        if (strcmp(l.holder, holder) != 0 || l.state != LEASE_STATE_LEASED)
                bench_fail("lease_acquire #%llu returned %s in state %s for holder '%s'", (unsigned long long) n,
                           l.impu, lease_state_to_string(l.state), l.holder);
        return origin;
}

int64_t bench_reclaim_all(struct bench_lease *b) {
        int64_t total = 0;
        for (;;) {
                struct lease_reclaim_result res;
                int r = lease_reclaim_batch(b->engine, 100, 250, &res);
                if (r < 0)
                        bench_fail("lease_reclaim_batch: %s", lease_engine_error(b->engine));
                total += res.reclaimed;
                if (!res.more && res.reclaimed == 0)
                        return total;
        }
}

sqlite3 *bench_sqlite_open(const char *path) {
        sqlite3 *db = NULL;
        int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
        if (rc != SQLITE_OK)
                bench_fail("sqlite3_open %s: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_busy_timeout(db, 5000);
        return db;
}

void bench_sql(sqlite3 *db, const char *sql) {
        char *err = NULL;
        if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
                bench_fail("SQL failed: %s\n  in: %.300s", err ? err : sqlite3_errmsg(db), sql);
}

int64_t bench_sql_int(sqlite3 *db, const char *sql) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
                bench_fail("SQL failed: %s\n  in: %.300s", sqlite3_errmsg(db), sql);
        if (sqlite3_step(st) != SQLITE_ROW)
                bench_fail("SQL returned no row: %s\n  in: %.300s", sqlite3_errmsg(db), sql);
        int64_t v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return v;
}

void bench_result(const char *what, double value, const char *unit) {
        printf("result: %-64s %14.2f %s\n", what, value, unit);
        fflush(stdout);
}

void bench_goal(const char *what, bool met, const char *detail_fmt, ...) {
        char detail[512];
        va_list ap;
        va_start(ap, detail_fmt);
        vsnprintf(detail, sizeof detail, detail_fmt, ap);
        va_end(ap);
        printf("goal:   %s: %s (%s)\n", what, met ? "goal met" : "goal missed", detail);
        fflush(stdout);
}

void bench_note(const char *fmt, ...) {
        va_list ap;
        fputs("note:   ", stdout);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        fputc('\n', stdout);
        fflush(stdout);
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return (x > y) - (x < y);
}

double bench_median(double *v, size_t n) {
        if (n == 0)
                return 0;
        qsort(v, n, sizeof *v, cmp_double);
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}
