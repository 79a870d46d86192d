/* Durable acquisitions per second, next to SQLite's own rate for one
 * single-row INSERT per write transaction with the same settings (WAL, the
 * same synchronous level), measured in the same run on the same disk.
 *
 * usage: bench_durable LARGE-RANGE-INI
 *
 * The two loops alternate in rounds, so that a drift of the disk's speed
 * during the run falls on both sides of the ratio. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

#define ROUNDS 3

struct baseline {
        sqlite3 *db;
        sqlite3_stmt *begin, *insert, *commit;
        int64_t next;
};

static sqlite3_stmt *prepare(sqlite3 *db, const char *sql) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
                bench_fail("prepare %s: %s", sql, sqlite3_errmsg(db));
        return st;
}

/* A table shaped like a lease (a unique text key, a secondary index), written
 * with the PRAGMAs the store uses. */
static void baseline_open(struct baseline *b, const char *path, enum store_sync sync) {
        memset(b, 0, sizeof *b);
        b->db = bench_sqlite_open(path);
        bench_sql(b->db, "PRAGMA journal_mode = WAL");
        bench_sql(b->db, sync == STORE_SYNC_FULL ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
        bench_sql(b->db, "CREATE TABLE lease (id INTEGER PRIMARY KEY, impu TEXT NOT NULL UNIQUE, holder TEXT NOT NULL, "
                         "client_addr TEXT, expires_at INTEGER NOT NULL);"
                         "CREATE INDEX lease_by_holder ON lease (holder);");
        if (bench_sql_int(b->db, "PRAGMA synchronous") != (sync == STORE_SYNC_FULL ? 2 : 1))
                bench_fail("baseline: synchronous level not applied");
        b->begin = prepare(b->db, "BEGIN IMMEDIATE");
        b->insert = prepare(b->db, "INSERT INTO lease (impu, holder, client_addr, expires_at) VALUES (?1, ?2, ?3, ?4)");
        b->commit = prepare(b->db, "COMMIT");
}

static void step_done(sqlite3 *db, sqlite3_stmt *st) {
        if (sqlite3_step(st) != SQLITE_DONE)
                bench_fail("baseline: %s", sqlite3_errmsg(db));
        sqlite3_reset(st);
}

static void baseline_insert(struct baseline *b) {
        char impu[64], holder[64];
        int64_t n = b->next++;
        snprintf(impu, sizeof impu, "sip:+1556%07lld@ims.example.com", (long long) n);
        bench_holder((uint64_t) n, holder, sizeof holder);
        step_done(b->db, b->begin);
        sqlite3_bind_text(b->insert, 1, impu, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(b->insert, 2, holder, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(b->insert, 3, "192.0.2.10", -1, SQLITE_STATIC);
        sqlite3_bind_int64(b->insert, 4, 1700000000 + n);
        step_done(b->db, b->insert);
        step_done(b->db, b->commit);
}

static void baseline_close(struct baseline *b) {
        sqlite3_finalize(b->begin);
        sqlite3_finalize(b->insert);
        sqlite3_finalize(b->commit);
        sqlite3_close(b->db);
}

struct tally {
        int64_t ops;
        uint64_t ns;
        double round_rate[ROUNDS];
};

static void run_mode(const char *dir, const char *ini, enum store_sync sync, double round_seconds) {
        const char *name = sync == STORE_SYNC_FULL ? "FULL" : "NORMAL";
        char lease_db[4096], base_db[4096], label[160];
        snprintf(lease_db, sizeof lease_db, "%s/lease-%s.db", dir, name);
        snprintf(base_db, sizeof base_db, "%s/baseline-%s.db", dir, name);

        /* The store as wwsfd opens it: default options are synchronous FULL. */
        struct store_options normal = { .sync = STORE_SYNC_NORMAL };
        struct bench_lease b;
        bench_lease_open(&b, lease_db, sync == STORE_SYNC_FULL ? NULL : &normal, (int64_t) time(NULL));
        struct lease_import_result ir;
        bench_import(&b, ini, &ir);
        if (ir.pools != 1)
                bench_fail("%s: expected one pool, imported %d", ini, ir.pools);
        {
                sqlite3 *check = bench_sqlite_open(lease_db);
                sqlite3_stmt *st;
                if (sqlite3_prepare_v2(check, "PRAGMA journal_mode", -1, &st, NULL) != SQLITE_OK ||
                    sqlite3_step(st) != SQLITE_ROW || strcmp((const char *) sqlite3_column_text(st, 0), "wal") != 0)
                        bench_fail("%s: the store is not in WAL mode", lease_db);
                sqlite3_finalize(st);
                sqlite3_close(check);
        }

        struct baseline base;
        baseline_open(&base, base_db, sync);

        struct tally tb = { 0 }, tl = { 0 };
        uint64_t limit = (uint64_t) (round_seconds * 1e9);
        uint64_t holder = 0;
        for (int round = 0; round < ROUNDS; round++) {
                uint64_t t0 = wwsf_monotonic_ns(), t;
                int64_t n = 0;
                do {
                        baseline_insert(&base);
                        n++;
                } while ((t = wwsf_monotonic_ns() - t0) < limit);
                tb.ops += n;
                tb.ns += t;
                tb.round_rate[round] = (double) n / bench_seconds(t);

                t0 = wwsf_monotonic_ns();
                n = 0;
                do {
                        if (bench_acquire(&b, "national", holder++) != LEASE_ORIGIN_NEW)
                                bench_fail("expected a never-used entry of the range pool");
                        n++;
                } while ((t = wwsf_monotonic_ns() - t0) < limit);
                tl.ops += n;
                tl.ns += t;
                tl.round_rate[round] = (double) n / bench_seconds(t);
        }

        double rb = (double) tb.ops / bench_seconds(tb.ns), rl = (double) tl.ops / bench_seconds(tl.ns);
        printf("\n== synchronous=%s, journal_mode=WAL, %d alternating rounds of %.1f s each ==\n", name, ROUNDS,
               round_seconds);
        snprintf(label, sizeof label, "sync %s: SQLite 1-row INSERT transactions/s", name);
        bench_result(label, rb, "tx/s");
        snprintf(label, sizeof label, "sync %s: lease_acquire()/s (new holder, range pool)", name);
        bench_result(label, rl, "acq/s");
        snprintf(label, sizeof label, "sync %s: ratio lease_acquire / SQLite INSERT", name);
        bench_result(label, rl / rb, "");
        bench_note("sync %s: %lld INSERTs in %.2f s, %lld acquisitions in %.2f s", name, (long long) tb.ops,
                   bench_seconds(tb.ns), (long long) tl.ops, bench_seconds(tl.ns));
        printf("note:   sync %s: per-round rates (INSERT | acquire):", name);
        for (int i = 0; i < ROUNDS; i++)
                printf(" %.0f|%.0f", tb.round_rate[i], tl.round_rate[i]);
        printf("\n");
        bench_note("sync %s: mean time per acquisition %.3f ms, per INSERT transaction %.3f ms", name,
                   1e3 / rl, 1e3 / rb);

        baseline_close(&base);
        char buf[512];
        if (lease_check(b.engine, buf, sizeof buf) < 0 || strcmp(buf, "ok") != 0)
                bench_fail("%s: integrity check: %s", lease_db, buf);
        bench_lease_close(&b);
}

int main(int argc, char **argv) {
        if (argc != 2) {
                fprintf(stderr, "usage: %s LARGE-RANGE-INI\n", argv[0]);
                return 2;
        }
        const char *dir = bench_tmpdir();
        printf("bench_durable: temp dir %s, SQLite %s\n", dir, sqlite3_libversion());
        run_mode(dir, argv[1], STORE_SYNC_FULL, 2.0);
        run_mode(dir, argv[1], STORE_SYNC_NORMAL, 1.0);
        printf("\nanchors (docs/DESIGN.md section 6): ISC Kea 2.0 DHCPv4 11,686 leases/s memfile, 2,396 leases/s PostgreSQL\n");
        return 0;
}
