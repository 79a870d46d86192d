/* SQLite backend of the lease store (see store.h). One connection per handle;
 * WAL mode so readers never block the writer; write transactions begin
 * IMMEDIATE so two processes never both read-then-write the same entry. */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/migrations.h"
#include "store/store.h"

enum stmt_id {
        ST_BEGIN,
        ST_COMMIT,
        ST_ROLLBACK,
        ST_SAVEPOINT,
        ST_SAVEPOINT_RELEASE,
        ST_SAVEPOINT_ROLLBACK,
        ST_SUB_UPSERT,
        ST_POOL_UPSERT,
        ST_POOL_GET,
        ST_POOL_LIST,
        ST_POOL_SET_NEXT,
        ST_POOL_COUNTS,
        ST_POOL_COUNTS_SCAN,
        ST_POOL_COUNTS_ADVANCE,
        ST_POOL_COUNTS_ADVANCE_ONE,
        ST_POOL_COUNTS_CHECK,
        ST_ENTRY_BY_IMPU,
        ST_ENTRY_LIVE_BY_HOLDER,
        ST_ENTRY_QUARANTINE_BY_HOLDER,
        ST_ENTRY_COUNT_LIVE,
        ST_ENTRY_FIRST_AVAILABLE,
        ST_ENTRY_INSERT,
        ST_ENTRY_UPDATE,
        ST_ENTRY_SET_IMPI,
        ST_ENTRIES_RETIRE,
        ST_ENTRIES_RESTORE,
        ST_ENTRIES_EXPIRED,
        ST_ENTRY_LIST_ALL,
        ST_ENTRY_LIST_POOL,
        ST_HISTORY_OPEN,
        ST_HISTORY_CLOSE,
        ST_HISTORY_RENEWED,
        ST_HISTORY_LIST,
        ST_HISTORY_LIST_AT,
        ST_PORTAL_INSERT,
        ST_PORTAL_GET,
        ST_PORTAL_LIST,
        ST_PORTAL_SET_LAST_USED,
        ST_PORTAL_SET_REVOKED,
        ST_PORTAL_KEY_INSERT,
        ST_PORTAL_KEY_GET,
        ST_PORTAL_KEYS_EXPIRE,
        ST_PORTAL_KEYS_PURGE,
        ST_PORTAL_KEYS_DELETE,
        ST_POOL_GET_BY_ID,
        ST_POOL_LIST_OWNED,
        ST_POOL_LIST_OWNED_SUB,
        ST_POOL_SET_PORTAL,
        ST_POOL_TOUCH,
        ST_POOL_SET_DELETING,
        ST_POOL_DELETE,
        ST_PORTAL_USAGE,
        ST_SUB_GET,
        ST_SUB_LIST_OWNED,
        ST_ENTRY_PAGE,
        ST_ENTRY_DELETE,
        ST_HISTORY_GET,
        ST_HISTORY_PAGE,
        ST_ENTRIES_PURGE,
        ST_AUDIT_INSERT,
        ST_AUDIT_LIST,
        ST_IDEM_GET,
        ST_IDEM_PUT,
        ST_IDEM_EXPIRE,
        _ST_MAX,
};

#define ENTRY_COLUMNS                                                                                  \
        "e.id, e.pool_id, p.name, e.idx, e.impu, e.impi, e.holder, e.client_addr, e.leased_at, "      \
        "e.expires_at, e.avail_at, e.retired, e.history_id FROM pool_entry e JOIN pool p ON p.id = e.pool_id "

/* The holder's entries: always through the holder index. Left to itself the
 * planner may take pool_entry_by_avail for "avail_at > ?" and read every
 * leased or quarantined entry of the pool. */
#define ENTRY_COLUMNS_BY_HOLDER                                                                        \
        "e.id, e.pool_id, p.name, e.idx, e.impu, e.impi, e.holder, e.client_addr, e.leased_at, "      \
        "e.expires_at, e.avail_at, e.retired, e.history_id FROM pool_entry e INDEXED BY pool_entry_by_holder " \
        "JOIN pool p ON p.id = e.pool_id "

#define POOL_COLUMNS                                                                                   \
        "p.id, p.name, s.name, s.owner, s.domain, s.impi_mode, p.kind, p.lease_ttl, p.quarantine, "   \
        "p.max_per_holder, p.source, p.size, p.next_index, p.impu_template, p.impu_prefix, "           \
        "p.impu_suffix, p.impu_start, p.impu_width, p.impu_regex, p.impi_template, p.impi_prefix, "   \
        "p.impi_suffix, p.impi_start, p.impi_width, p.shared_impi, p.token_length, p.token_alphabet, " \
        "p.source_file, p.imported_at, COALESCE(p.created_at, p.imported_at), COALESCE(p.portal_id, 0), "      \
        "p.revision, p.deleting, p.deleted_at IS NOT NULL FROM pool p JOIN subscription s ON s.id = p.subscription_id "

#define HISTORY_COLUMNS                                                                                \
        "SELECT h.id, h.pool_id, p.name, h.impu, h.impi, h.holder, h.client_addr, h.started_at, "     \
        "COALESCE(h.ended_at, e.expires_at, h.started_at), h.ended_at IS NULL, "                      \
        "COALESCE(h.end_reason, ''), h.renewals, p.quarantine FROM lease_history h "                  \
        "JOIN pool p ON p.id = h.pool_id "                                                             \
        "LEFT JOIN pool_entry e ON e.impu = h.impu AND e.history_id = h.id "
#define HISTORY_SELECT HISTORY_COLUMNS "WHERE h.impu = ?1 "

/* ?1 is now. */
#define PORTAL_SELECT                                                                                  \
        "SELECT p.id, p.name, p.max_pools, p.max_entries, p.created_at, p.last_used_at, p.revoked_at, " \
        "(SELECT count(*) FROM portal_key k WHERE k.portal_id = p.id AND k.expires_at IS NULL), "     \
        "(SELECT count(*) FROM portal_key k WHERE k.portal_id = p.id AND k.expires_at > ?1), "        \
        "(SELECT max(k.expires_at) FROM portal_key k WHERE k.portal_id = p.id AND k.expires_at > ?1) " \
        "FROM portal p "

static const char *const stmt_sql[_ST_MAX] = {
        [ST_BEGIN] = "BEGIN IMMEDIATE",
        [ST_COMMIT] = "COMMIT",
        [ST_ROLLBACK] = "ROLLBACK",
        [ST_SAVEPOINT] = "SAVEPOINT lease_op",
        [ST_SAVEPOINT_RELEASE] = "RELEASE lease_op",
        [ST_SAVEPOINT_ROLLBACK] = "ROLLBACK TO lease_op",
        [ST_SUB_UPSERT] = "INSERT INTO subscription (name, owner, domain, impi_mode) VALUES (?1, ?2, ?3, ?4) "
                          "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, domain = excluded.domain, "
                          "impi_mode = excluded.impi_mode",
        [ST_POOL_UPSERT] =
                "INSERT INTO pool (name, subscription_id, kind, lease_ttl, quarantine, max_per_holder, source, "
                "size, impu_template, impu_prefix, impu_suffix, impu_start, impu_width, impu_regex, "
                "impi_template, impi_prefix, impi_suffix, impi_start, impi_width, shared_impi, token_length, "
                "token_alphabet, source_file, imported_at, created_at, counted_at) "
                "VALUES (?1, (SELECT id FROM subscription WHERE name = ?2), ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
                "?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?24, ?24) "
                "ON CONFLICT (name) DO UPDATE SET subscription_id = excluded.subscription_id, "
                "kind = excluded.kind, lease_ttl = excluded.lease_ttl, quarantine = excluded.quarantine, "
                "max_per_holder = excluded.max_per_holder, source = excluded.source, size = excluded.size, "
                "impu_template = excluded.impu_template, impu_prefix = excluded.impu_prefix, "
                "impu_suffix = excluded.impu_suffix, impu_start = excluded.impu_start, "
                "impu_width = excluded.impu_width, impu_regex = excluded.impu_regex, "
                "impi_template = excluded.impi_template, impi_prefix = excluded.impi_prefix, "
                "impi_suffix = excluded.impi_suffix, impi_start = excluded.impi_start, "
                "impi_width = excluded.impi_width, shared_impi = excluded.shared_impi, "
                "token_length = excluded.token_length, token_alphabet = excluded.token_alphabet, "
                "source_file = excluded.source_file, imported_at = excluded.imported_at, "
                /* A new ETag only when the definition changed: importing the
                 * same files again changes nothing. */
                "revision = revision + (subscription_id IS NOT excluded.subscription_id OR "
                "kind IS NOT excluded.kind OR lease_ttl IS NOT excluded.lease_ttl OR "
                "quarantine IS NOT excluded.quarantine OR max_per_holder IS NOT excluded.max_per_holder OR "
                "source IS NOT excluded.source OR size IS NOT excluded.size OR "
                "impu_template IS NOT excluded.impu_template OR impu_prefix IS NOT excluded.impu_prefix OR "
                "impu_suffix IS NOT excluded.impu_suffix OR impu_start IS NOT excluded.impu_start OR "
                "impu_width IS NOT excluded.impu_width OR impu_regex IS NOT excluded.impu_regex OR "
                "impi_template IS NOT excluded.impi_template OR impi_prefix IS NOT excluded.impi_prefix OR "
                "impi_suffix IS NOT excluded.impi_suffix OR impi_start IS NOT excluded.impi_start OR "
                "impi_width IS NOT excluded.impi_width OR shared_impi IS NOT excluded.shared_impi OR "
                "token_length IS NOT excluded.token_length OR "
                "token_alphabet IS NOT excluded.token_alphabet)",
        [ST_POOL_GET] = "SELECT " POOL_COLUMNS "WHERE p.name = ?1",
        [ST_POOL_LIST] = "SELECT " POOL_COLUMNS "WHERE p.deleted_at IS NULL ORDER BY p.name",
        [ST_POOL_SET_NEXT] = "UPDATE pool SET next_index = ?2 WHERE id = ?1",
        /* The pool's counts (sql/0004-pool-counts.sql) hold for counted_at;
         * the two range counts take out what ended between then and ?2, and
         * cost only that. Columns: materialised, retired, the leases and the
         * leases or quarantines ongoing at counted_at, counted_at, and the
         * two range counts (0 when ?2 is before counted_at: the caller then
         * scans). */
        [ST_POOL_COUNTS] =
                "SELECT p.n_entries, p.n_retired, p.n_expires_after, p.n_avail_after, p.counted_at, "
                "(SELECT count(*) FROM pool_entry INDEXED BY pool_entry_open_by_expiry WHERE history_id IS NOT NULL "
                "AND expires_at > p.counted_at AND expires_at <= ?2 AND pool_id = p.id AND retired = 0), "
                "(SELECT count(*) FROM pool_entry INDEXED BY pool_entry_by_avail WHERE pool_id = p.id "
                "AND avail_at > p.counted_at AND avail_at <= ?2 AND retired = 0) "
                "FROM pool p WHERE p.id = ?1",
        /* The same counts from every entry of the pool, for a time before
         * counted_at. */
        [ST_POOL_COUNTS_SCAN] = "SELECT count(*), total(expires_at > ?2 AND retired = 0), "
                                "total(expires_at <= ?2 AND avail_at > ?2 AND retired = 0), total(retired) "
                                "FROM pool_entry WHERE pool_id = ?1",
        /* Moves every pool's counts forward to ?1, never back; _ONE only
         * pool ?2's (a lookup by id). */
        [ST_POOL_COUNTS_ADVANCE] =
                "UPDATE pool SET n_expires_after = n_expires_after - "
                "(SELECT count(*) FROM pool_entry INDEXED BY pool_entry_open_by_expiry WHERE history_id IS NOT NULL "
                "AND expires_at > pool.counted_at AND expires_at <= ?1 AND pool_id = pool.id AND retired = 0), "
                "n_avail_after = n_avail_after - "
                "(SELECT count(*) FROM pool_entry INDEXED BY pool_entry_by_avail WHERE pool_id = pool.id "
                "AND avail_at > pool.counted_at AND avail_at <= ?1 AND retired = 0), "
                "counted_at = ?1 WHERE counted_at < ?1",
        [ST_POOL_COUNTS_ADVANCE_ONE] =
                "UPDATE pool SET n_expires_after = n_expires_after - "
                "(SELECT count(*) FROM pool_entry INDEXED BY pool_entry_open_by_expiry WHERE history_id IS NOT NULL "
                "AND expires_at > pool.counted_at AND expires_at <= ?1 AND pool_id = pool.id AND retired = 0), "
                "n_avail_after = n_avail_after - "
                "(SELECT count(*) FROM pool_entry INDEXED BY pool_entry_by_avail WHERE pool_id = pool.id "
                "AND avail_at > pool.counted_at AND avail_at <= ?1 AND retired = 0), "
                "counted_at = ?1 WHERE id = ?2 AND counted_at < ?1",
        /* The pools whose counts a scan of their entries contradicts, or
         * that have a closed lease ending after counted_at (which a read
         * would never take out). */
        [ST_POOL_COUNTS_CHECK] =
                "SELECT p.name, p.n_entries, c.n, p.n_retired, c.r, p.n_expires_after, c.e, p.n_avail_after, c.a, "
                "c.late FROM pool p JOIN (SELECT q.id AS id, count(e.id) AS n, total(e.retired != 0) AS r, "
                "total(e.retired = 0 AND e.expires_at > q.counted_at) AS e, "
                "total(e.retired = 0 AND e.avail_at > q.counted_at) AS a, "
                "total(e.history_id IS NULL AND e.retired = 0 AND e.expires_at > q.counted_at) AS late "
                "FROM pool q LEFT JOIN pool_entry e ON e.pool_id = q.id GROUP BY q.id) c ON c.id = p.id "
                "WHERE p.n_entries != c.n OR p.n_retired != c.r OR p.n_expires_after != c.e "
                "OR p.n_avail_after != c.a OR c.late > 0 ORDER BY p.name",
        [ST_ENTRY_BY_IMPU] = "SELECT " ENTRY_COLUMNS "WHERE e.impu = ?1",
        [ST_ENTRY_LIVE_BY_HOLDER] = "SELECT " ENTRY_COLUMNS_BY_HOLDER "WHERE e.pool_id = ?1 AND e.holder = ?2 "
                                    "AND e.expires_at > ?3 ORDER BY e.expires_at DESC LIMIT 1",
        [ST_ENTRY_QUARANTINE_BY_HOLDER] =
                "SELECT " ENTRY_COLUMNS_BY_HOLDER "WHERE e.pool_id = ?1 AND e.holder = ?2 AND e.expires_at <= ?3 "
                "AND e.avail_at > ?3 AND e.retired = 0 ORDER BY e.expires_at DESC LIMIT 1",
        [ST_ENTRY_COUNT_LIVE] = "SELECT count(*) FROM pool_entry INDEXED BY pool_entry_by_holder "
                                "WHERE pool_id = ?1 AND holder = ?2 "
                                "AND expires_at > ?3",
        [ST_ENTRY_FIRST_AVAILABLE] = "SELECT " ENTRY_COLUMNS "WHERE e.pool_id = ?1 ORDER BY e.avail_at LIMIT 1",
        [ST_ENTRY_INSERT] = "INSERT INTO pool_entry (pool_id, idx, impu, impi, holder, client_addr, leased_at, "
                            "expires_at, avail_at, retired, history_id) "
                            "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        /* The lease columns only: setting idx too would rewrite the
         * UNIQUE (pool_id, idx) index on every lease operation. */
        [ST_ENTRY_UPDATE] = "UPDATE pool_entry SET holder = ?2, client_addr = ?3, "
                            "leased_at = ?4, expires_at = ?5, avail_at = ?6, retired = ?7, history_id = ?8 "
                            "WHERE id = ?1",
        [ST_ENTRY_SET_IMPI] = "UPDATE pool_entry SET impi = ?2 WHERE id = ?1 AND impi IS NOT ?2",
        [ST_ENTRIES_RETIRE] = "UPDATE pool_entry SET retired = 1, avail_at = ?5 "
                              "WHERE pool_id = ?1 AND idx >= ?2 AND idx < ?3 AND retired = 0",
        [ST_ENTRIES_RESTORE] = "UPDATE pool_entry SET retired = 0, "
                               "avail_at = CASE WHEN expires_at > 0 THEN expires_at + ?4 ELSE 0 END "
                               "WHERE pool_id = ?1 AND idx >= ?2 AND idx < ?3 AND retired = 1",
        [ST_ENTRIES_EXPIRED] = "SELECT " ENTRY_COLUMNS "WHERE e.history_id IS NOT NULL AND e.expires_at <= ?1 "
                               "ORDER BY e.expires_at LIMIT ?2",
        [ST_ENTRY_LIST_ALL] = "SELECT " ENTRY_COLUMNS "ORDER BY p.name, e.idx",
        [ST_ENTRY_LIST_POOL] = "SELECT " ENTRY_COLUMNS "WHERE p.name = ?1 ORDER BY e.idx",
        [ST_HISTORY_OPEN] = "INSERT INTO lease_history (pool_id, impu, impi, holder, client_addr, started_at) "
                            "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        [ST_HISTORY_CLOSE] = "UPDATE lease_history SET ended_at = ?2, end_reason = ?3 WHERE id = ?1",
        [ST_HISTORY_RENEWED] = "UPDATE lease_history SET renewals = renewals + 1 WHERE id = ?1",
        [ST_HISTORY_LIST] = HISTORY_SELECT "ORDER BY h.started_at DESC, h.id DESC",
        [ST_HISTORY_LIST_AT] = HISTORY_SELECT "AND h.started_at <= ?2 "
                               "AND COALESCE(h.ended_at, e.expires_at, h.started_at) > ?2 "
                               "ORDER BY h.started_at DESC, h.id DESC",
        [ST_PORTAL_INSERT] = "INSERT INTO portal (name, max_pools, max_entries, created_at) VALUES (?1, ?2, ?3, ?4)",
        [ST_PORTAL_GET] = PORTAL_SELECT "WHERE p.name = ?2",
        [ST_PORTAL_LIST] = PORTAL_SELECT "ORDER BY p.name",
        [ST_PORTAL_SET_LAST_USED] = "UPDATE portal SET last_used_at = ?2 WHERE id = ?1",
        [ST_PORTAL_SET_REVOKED] = "UPDATE portal SET revoked_at = ?2 WHERE id = ?1",
        [ST_PORTAL_KEY_INSERT] = "INSERT INTO portal_key (portal_id, key_id, secret_sha256, created_at) "
                                 "VALUES (?1, ?2, ?3, ?4)",
        [ST_PORTAL_KEY_GET] = "SELECT k.portal_id, p.name, k.secret_sha256, k.expires_at FROM portal_key k "
                              "JOIN portal p ON p.id = k.portal_id WHERE k.key_id = ?1",
        [ST_PORTAL_KEYS_EXPIRE] = "UPDATE portal_key SET expires_at = ?2 "
                                  "WHERE portal_id = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
        [ST_PORTAL_KEYS_PURGE] = "DELETE FROM portal_key WHERE portal_id = ?1 AND expires_at <= ?2",
        [ST_PORTAL_KEYS_DELETE] = "DELETE FROM portal_key WHERE portal_id = ?1",
        [ST_POOL_GET_BY_ID] = "SELECT " POOL_COLUMNS "WHERE p.id = ?1",
        [ST_POOL_LIST_OWNED] = "SELECT " POOL_COLUMNS "WHERE s.owner = ?1 AND p.id > ?2 AND p.deleted_at IS NULL "
                               "ORDER BY p.id LIMIT ?3",
        [ST_POOL_LIST_OWNED_SUB] = "SELECT " POOL_COLUMNS "WHERE s.owner = ?1 AND p.id > ?2 AND s.name = ?4 "
                                   "AND p.deleted_at IS NULL ORDER BY p.id LIMIT ?3",
        [ST_POOL_SET_PORTAL] = "UPDATE pool SET portal_id = ?2 WHERE id = ?1",
        [ST_POOL_TOUCH] = "UPDATE pool SET revision = revision + 1, imported_at = ?2 WHERE id = ?1",
        [ST_POOL_SET_DELETING] = "UPDATE pool SET deleting = ?2, revision = revision + 1 WHERE id = ?1",
        [ST_POOL_DELETE] = "UPDATE pool SET name = name || '#' || id, deleted_at = ?2, revision = revision + 1 "
                           "WHERE id = ?1",
        [ST_PORTAL_USAGE] = "SELECT count(*), total(size) FROM pool WHERE portal_id = ?1 AND deleted_at IS NULL",
        [ST_SUB_GET] = "SELECT s.id, s.name, s.owner, s.domain, s.impi_mode, "
                       "(SELECT count(*) FROM pool p WHERE p.subscription_id = s.id AND p.deleted_at IS NULL) "
                       "FROM subscription s WHERE s.name = ?1",
        [ST_SUB_LIST_OWNED] = "SELECT s.id, s.name, s.owner, s.domain, s.impi_mode, "
                              "(SELECT count(*) FROM pool p WHERE p.subscription_id = s.id AND p.deleted_at IS NULL) "
                              "FROM subscription s WHERE s.owner = ?1 ORDER BY s.name",
        [ST_ENTRY_PAGE] = "SELECT " ENTRY_COLUMNS "WHERE e.pool_id = ?1 AND e.idx > ?2 ORDER BY e.idx LIMIT ?3",
        [ST_ENTRY_DELETE] = "DELETE FROM pool_entry WHERE id = ?1",
        [ST_HISTORY_GET] = HISTORY_COLUMNS "WHERE h.id = ?1",
        /* ?5 is the state: 0 all, 1 open, 2 in quarantine, 3 past it. */
        [ST_HISTORY_PAGE] = HISTORY_COLUMNS "WHERE h.pool_id = ?1 AND h.id > ?2 "
                            "AND (?6 IS NULL OR h.holder = ?6) AND (?7 IS NULL OR h.impu = ?7) "
                            "AND (?5 = 0 OR (?5 = 1 AND h.ended_at IS NULL) "
                            "OR (?5 = 2 AND h.ended_at IS NOT NULL AND h.ended_at + p.quarantine > ?4) "
                            "OR (?5 = 3 AND h.ended_at IS NOT NULL AND h.ended_at + p.quarantine <= ?4)) "
                            "ORDER BY h.id LIMIT ?3",
        [ST_ENTRIES_PURGE] = "DELETE FROM pool_entry WHERE id IN (SELECT e.id FROM pool_entry e "
                             "JOIN pool p ON p.id = e.pool_id WHERE (p.deleted_at IS NOT NULL OR "
                             "(p.portal_id IS NOT NULL AND p.source = 'list')) AND e.avail_at = ?3 "
                             "AND e.history_id IS NULL AND e.expires_at + p.quarantine <= ?1 LIMIT ?2)",
        [ST_AUDIT_INSERT] = "INSERT INTO portal_audit (portal_id, at, action, resource, before, after, client_addr) "
                            "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        [ST_AUDIT_LIST] = "SELECT id, portal_id, at, action, resource, before, after, client_addr FROM portal_audit "
                          "WHERE portal_id = ?1 AND at >= ?2 ORDER BY id",
        [ST_IDEM_GET] = "SELECT request_sha256, status, body, location, created_at FROM portal_idempotency "
                        "WHERE portal_id = ?1 AND key = ?2",
        [ST_IDEM_PUT] = "INSERT INTO portal_idempotency (portal_id, key, request_sha256, status, body, location, "
                        "created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        [ST_IDEM_EXPIRE] = "DELETE FROM portal_idempotency WHERE created_at < ?1",
};

struct store_sqlite {
        struct store base;
        sqlite3 *db;
        sqlite3_stmt *stmt[_ST_MAX];
        char error[512];
};

#define SELF(s) ((struct store_sqlite *) (s))

static int fail(struct store_sqlite *s, int rc, const char *what) {
        snprintf(s->error, sizeof s->error, "%s: %s", what, sqlite3_errmsg(s->db));
        switch (rc & 0xff) {
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return -EBUSY;
        case SQLITE_CONSTRAINT:
                return rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY ? -EEXIST : -EIO;
        case SQLITE_FULL:
                return -ENOSPC;
        default:
                return -EIO;
        }
}

/* Returns a reset statement ready for binding, or NULL with s->error set. */
static sqlite3_stmt *stmt(struct store_sqlite *s, enum stmt_id id) {
        if (!s->stmt[id]) {
                int rc = sqlite3_prepare_v3(s->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &s->stmt[id], NULL);
                if (rc != SQLITE_OK) {
                        fail(s, rc, "prepare");
                        return NULL;
                }
        } else {
                sqlite3_reset(s->stmt[id]);
                sqlite3_clear_bindings(s->stmt[id]);
        }
        return s->stmt[id];
}

static void bind_text(sqlite3_stmt *st, int i, const char *v) {
        if (v && *v)
                sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
        else
                sqlite3_bind_null(st, i);
}

static void copy_col(sqlite3_stmt *st, int i, char *dst, size_t size) {
        const unsigned char *v = sqlite3_column_text(st, i);
        snprintf(dst, size, "%s", v ? (const char *) v : "");
}

/* Runs a statement that returns no rows. */
static int exec_stmt(struct store_sqlite *s, sqlite3_stmt *st, const char *what) {
        int rc = sqlite3_step(st);
        int r = rc == SQLITE_DONE ? 0 : fail(s, rc, what);
        sqlite3_reset(st);
        return r;
}

static void read_entry(sqlite3_stmt *st, struct store_entry *e) {
        memset(e, 0, sizeof *e);
        e->id = sqlite3_column_int64(st, 0);
        e->pool_id = sqlite3_column_int64(st, 1);
        copy_col(st, 2, e->pool, sizeof e->pool);
        e->idx = sqlite3_column_int64(st, 3);
        copy_col(st, 4, e->impu, sizeof e->impu);
        copy_col(st, 5, e->impi, sizeof e->impi);
        copy_col(st, 6, e->holder, sizeof e->holder);
        copy_col(st, 7, e->client_addr, sizeof e->client_addr);
        e->leased_at = sqlite3_column_int64(st, 8);
        e->expires_at = sqlite3_column_int64(st, 9);
        e->avail_at = sqlite3_column_int64(st, 10);
        e->retired = sqlite3_column_int(st, 11) != 0;
        e->history_id = sqlite3_column_int64(st, 12);
}

/* Runs a one-row entry query: 0 with *ret filled, or -ENOENT. */
static int entry_one(struct store_sqlite *s, sqlite3_stmt *st, struct store_entry *ret, const char *what) {
        int rc = sqlite3_step(st);
        int r;
        if (rc == SQLITE_ROW) {
                read_entry(st, ret);
                r = 0;
        } else if (rc == SQLITE_DONE)
                r = -ENOENT;
        else
                r = fail(s, rc, what);
        sqlite3_reset(st);
        return r;
}

static int entry_each(struct store_sqlite *s, sqlite3_stmt *st, store_entry_cb cb, void *userdata,
                      const char *what) {
        struct store_entry e;
        int rc, r = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                read_entry(st, &e);
                r = cb(&e, userdata);
                if (r != 0)
                        break;
        }
        if (r == 0 && rc != SQLITE_DONE)
                r = fail(s, rc, what);
        sqlite3_reset(st);
        return r;
}

static void read_template(sqlite3_stmt *st, int col, struct pool_template *t) {
        copy_col(st, col, t->text, sizeof t->text);
        copy_col(st, col + 1, t->prefix, sizeof t->prefix);
        copy_col(st, col + 2, t->suffix, sizeof t->suffix);
        t->start = sqlite3_column_int64(st, col + 3);
        t->width = sqlite3_column_int(st, col + 4);
}

static const char *column_str(sqlite3_stmt *st, int i) {
        return (const char *) sqlite3_column_text(st, i);
}

/* The schema's CHECKs keep kind, source and impi_mode to the model's words;
 * token_alphabet is NULL but for a wildcard pool, which leaves base32. */
static void read_pool(sqlite3_stmt *st, struct store_pool *p) {
        memset(p, 0, sizeof *p);
        struct pool_def *d = &p->def;
        p->id = sqlite3_column_int64(st, 0);
        copy_col(st, 1, d->name, sizeof d->name);
        copy_col(st, 2, d->subscription, sizeof d->subscription);
        memcpy(p->sub.name, d->subscription, sizeof p->sub.name);
        copy_col(st, 3, p->sub.owner, sizeof p->sub.owner);
        copy_col(st, 4, p->sub.domain, sizeof p->sub.domain);
        (void) impi_mode_from_string(column_str(st, 5), &p->sub.impi_mode);
        (void) pool_kind_from_string(column_str(st, 6), &d->kind);
        d->lease_ttl = sqlite3_column_int64(st, 7);
        d->quarantine = sqlite3_column_int64(st, 8);
        d->max_per_holder = sqlite3_column_int64(st, 9);
        (void) pool_source_from_string(column_str(st, 10), &d->source);
        d->size = sqlite3_column_int64(st, 11);
        p->next_index = sqlite3_column_int64(st, 12);
        read_template(st, 13, &d->impu_tpl);
        read_template(st, 19, &d->impi_tpl);
        if (d->source == POOL_SOURCE_WILDCARD) {
                /* One regex column: a wildcard pool's IMPI template has the
                 * same ! part as its IMPU template. */
                copy_col(st, 18, d->impu_tpl.regex, sizeof d->impu_tpl.regex);
                d->impu_tpl.wildcard = true;
                if (d->impi_tpl.text[0]) {
                        memcpy(d->impi_tpl.regex, d->impu_tpl.regex, sizeof d->impi_tpl.regex);
                        d->impi_tpl.wildcard = true;
                }
        } else if (d->source == POOL_SOURCE_RANGE) {
                /* A range pool's size is its templates' FIRST..LAST. */
                d->impu_tpl.count = d->size;
                if (d->impi_tpl.text[0])
                        d->impi_tpl.count = d->size;
        }
        copy_col(st, 24, d->shared_impi, sizeof d->shared_impi);
        d->token_length = sqlite3_column_int(st, 25);
        (void) token_alphabet_from_string(column_str(st, 26), &d->token_alphabet);
        copy_col(st, 27, d->source_file, sizeof d->source_file);
        p->imported_at = sqlite3_column_int64(st, 28);
        p->created_at = sqlite3_column_int64(st, 29);
        p->portal_id = sqlite3_column_int64(st, 30);
        p->revision = sqlite3_column_int64(st, 31);
        p->deleting = sqlite3_column_int(st, 32) != 0;
        p->deleted = sqlite3_column_int(st, 33) != 0;
}

static const char *sqlite_error(struct store *base) {
        return SELF(base)->error;
}

static int sqlite_begin(struct store *base) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_BEGIN);
        return st ? exec_stmt(s, st, "begin") : -EIO;
}

static int sqlite_commit(struct store *base) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_COMMIT);
        int r = st ? exec_stmt(s, st, "commit") : -EIO;
        if (r < 0 && !sqlite3_get_autocommit(s->db)) {
                sqlite3_stmt *rb = stmt(s, ST_ROLLBACK);
                if (rb)
                        (void) exec_stmt(s, rb, "rollback");
        }
        return r;
}

static void sqlite_rollback(struct store *base) {
        struct store_sqlite *s = SELF(base);
        if (sqlite3_get_autocommit(s->db))
                return; /* SQLite already rolled back (e.g. after SQLITE_FULL) */
        sqlite3_stmt *st = stmt(s, ST_ROLLBACK);
        if (st)
                (void) exec_stmt(s, st, "rollback");
}

static int sqlite_savepoint(struct store *base) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_SAVEPOINT);
        return st ? exec_stmt(s, st, "savepoint") : -EIO;
}

static int sqlite_savepoint_release(struct store *base) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_SAVEPOINT_RELEASE);
        return st ? exec_stmt(s, st, "release savepoint") : -EIO;
}

static void sqlite_savepoint_rollback(struct store *base) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_SAVEPOINT_ROLLBACK);
        if (st && exec_stmt(s, st, "rollback to savepoint") == 0 && (st = stmt(s, ST_SAVEPOINT_RELEASE)))
                (void) exec_stmt(s, st, "release savepoint");
}

static int sqlite_subscription_upsert(struct store *base, const struct pool_subscription *sub) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_SUB_UPSERT);
        if (!st)
                return -EIO;
        bind_text(st, 1, sub->name);
        bind_text(st, 2, sub->owner);
        bind_text(st, 3, sub->domain);
        bind_text(st, 4, impi_mode_to_string(sub->impi_mode));
        return exec_stmt(s, st, "subscription upsert");
}

static void bind_template(sqlite3_stmt *st, int col, const struct pool_template *t, bool with_regex) {
        bind_text(st, col, t->text);
        if (!t->text[0])
                return;
        sqlite3_bind_text(st, col + 1, t->prefix, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, col + 2, t->suffix, -1, SQLITE_STATIC);
        if (!t->wildcard) {
                sqlite3_bind_int64(st, col + 3, t->start);
                sqlite3_bind_int(st, col + 4, t->width);
        } else if (with_regex)
                sqlite3_bind_text(st, col + 5, t->regex, -1, SQLITE_STATIC);
}

static int sqlite_pool_upsert(struct store *base, const struct pool_def *def, int64_t now) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_POOL_UPSERT);
        if (!st)
                return -EIO;
        bind_text(st, 1, def->name);
        bind_text(st, 2, def->subscription);
        bind_text(st, 3, pool_kind_to_string(def->kind));
        sqlite3_bind_int64(st, 4, def->lease_ttl);
        sqlite3_bind_int64(st, 5, def->quarantine);
        sqlite3_bind_int64(st, 6, def->max_per_holder);
        bind_text(st, 7, pool_source_to_string(def->source));
        sqlite3_bind_int64(st, 8, def->size);
        bind_template(st, 9, &def->impu_tpl, true);
        bind_template(st, 15, &def->impi_tpl, false);
        bind_text(st, 20, def->shared_impi);
        if (def->source == POOL_SOURCE_WILDCARD) {
                sqlite3_bind_int(st, 21, def->token_length);
                bind_text(st, 22, token_alphabet_to_string(def->token_alphabet));
        }
        bind_text(st, 23, def->source_file);
        sqlite3_bind_int64(st, 24, now);
        return exec_stmt(s, st, "pool upsert");
}

static int sqlite_pool_get(struct store *base, const char *name, struct store_pool *ret) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_POOL_GET);
        if (!st)
                return -EIO;
        bind_text(st, 1, name);
        int rc = sqlite3_step(st), r;
        if (rc == SQLITE_ROW) {
                read_pool(st, ret);
                r = 0;
        } else
                r = rc == SQLITE_DONE ? -ENOENT : fail(s, rc, "pool get");
        sqlite3_reset(st);
        return r;
}

static int sqlite_pool_list(struct store *base, store_pool_cb cb, void *userdata) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_POOL_LIST);
        if (!st)
                return -EIO;
        struct store_pool p;
        int rc, r = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                read_pool(st, &p);
                if ((r = cb(&p, userdata)) != 0)
                        break;
        }
        if (r == 0 && rc != SQLITE_DONE)
                r = fail(s, rc, "pool list");
        sqlite3_reset(st);
        return r;
}

static int sqlite_pool_set_next_index(struct store *base, int64_t pool_id, int64_t next_index) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_POOL_SET_NEXT);
        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, pool_id);
        sqlite3_bind_int64(st, 2, next_index);
        return exec_stmt(s, st, "pool cursor");
}

static int pool_counts_scan(struct store_sqlite *s, int64_t pool_id, int64_t now, struct store_counts *ret) {
        sqlite3_stmt *st = stmt(s, ST_POOL_COUNTS_SCAN);
        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, pool_id);
        sqlite3_bind_int64(st, 2, now);
        int rc = sqlite3_step(st), r = 0;
        if (rc == SQLITE_ROW) {
                ret->materialised = sqlite3_column_int64(st, 0);
                ret->leased = sqlite3_column_int64(st, 1);
                ret->quarantine = sqlite3_column_int64(st, 2);
                ret->retired = sqlite3_column_int64(st, 3);
        } else
                r = fail(s, rc, "pool counts");
        sqlite3_reset(st);
        return r;
}

static int sqlite_pool_counts(struct store *base, int64_t pool_id, int64_t now, struct store_counts *ret) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_POOL_COUNTS);
        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, pool_id);
        sqlite3_bind_int64(st, 2, now);
        int rc = sqlite3_step(st), r = 0;
        bool before = false;
        if (rc == SQLITE_ROW) {
                before = now < sqlite3_column_int64(st, 4);
                /* What ended between counted_at and now leaves the counts. */
                int64_t leases = sqlite3_column_int64(st, 2) - sqlite3_column_int64(st, 5);
                int64_t busy = sqlite3_column_int64(st, 3) - sqlite3_column_int64(st, 6);
                ret->materialised = sqlite3_column_int64(st, 0);
                ret->retired = sqlite3_column_int64(st, 1);
                ret->leased = leases;
                ret->quarantine = busy - leases;
        } else
                r = rc == SQLITE_DONE ? -ENOENT : fail(s, rc, "pool counts");
        sqlite3_reset(st);
        return r == 0 && before ? pool_counts_scan(s, pool_id, now, ret) : r;
}

static int sqlite_pool_counts_advance(struct store *base, int64_t pool_id, int64_t now) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, pool_id ? ST_POOL_COUNTS_ADVANCE_ONE : ST_POOL_COUNTS_ADVANCE);
        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, now);
        if (pool_id)
                sqlite3_bind_int64(st, 2, pool_id);
        return exec_stmt(s, st, "advance pool counts");
}

static int sqlite_entry_by_impu(struct store *base, const char *impu, struct store_entry *ret) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_ENTRY_BY_IMPU);
        if (!st)
                return -EIO;
        bind_text(st, 1, impu);
        return entry_one(s, st, ret, "entry by IMPU");
}

static int sqlite_entry_by_holder(struct store *base, int64_t pool_id, const char *holder, int64_t now, bool live,
                                  struct store_entry *ret) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, live ? ST_ENTRY_LIVE_BY_HOLDER : ST_ENTRY_QUARANTINE_BY_HOLDER);
        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, pool_id);
        bind_text(st, 2, holder);
        sqlite3_bind_int64(st, 3, now);
        return entry_one(s, st, ret, "entry by holder");
}

static int sqlite_entry_count_live(struct store *base, int64_t pool_id, const char *holder, int64_t now,
                                   int64_t *ret) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_ENTRY_COUNT_LIVE);
        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, pool_id);
        bind_text(st, 2, holder);
        sqlite3_bind_int64(st, 3, now);
        int rc = sqlite3_step(st), r = 0;
        if (rc == SQLITE_ROW)
                *ret = sqlite3_column_int64(st, 0);
        else
                r = fail(s, rc, "count leases");
        sqlite3_reset(st);
        return r;
}

static int sqlite_entry_first_available(struct store *base, int64_t pool_id, struct store_entry *ret) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_ENTRY_FIRST_AVAILABLE);
        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, pool_id);
        return entry_one(s, st, ret, "first available entry");
}

static void bind_entry_state(sqlite3_stmt *st, int col, const struct store_entry *e) {
        bind_text(st, col, e->holder);
        bind_text(st, col + 1, e->client_addr);
        if (e->leased_at)
                sqlite3_bind_int64(st, col + 2, e->leased_at);
        sqlite3_bind_int64(st, col + 3, e->expires_at);
        sqlite3_bind_int64(st, col + 4, e->avail_at);
        sqlite3_bind_int(st, col + 5, e->retired);
        if (e->history_id)
                sqlite3_bind_int64(st, col + 6, e->history_id);
}

static int sqlite_entry_insert(struct store *base, struct store_entry *e) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_ENTRY_INSERT);
        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, e->pool_id);
        sqlite3_bind_int64(st, 2, e->idx);
        bind_text(st, 3, e->impu);
        bind_text(st, 4, e->impi);
        bind_entry_state(st, 5, e);
        int r = exec_stmt(s, st, "entry insert");
        if (r == 0)
                e->id = sqlite3_last_insert_rowid(s->db);
        return r;
}

static int sqlite_entry_update(struct store *base, const struct store_entry *e) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_ENTRY_UPDATE);
        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, e->id);
        bind_entry_state(st, 2, e);
        return exec_stmt(s, st, "entry update");
}

static int sqlite_entry_set_impi(struct store *base, int64_t id, const char *impi) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_ENTRY_SET_IMPI);
        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, id);
        bind_text(st, 2, impi);
        return exec_stmt(s, st, "entry IMPI");
}

static int sqlite_checkpoint(struct store *base) {
        struct store_sqlite *s = SELF(base);
        int rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        return rc == SQLITE_OK ? 0 : fail(s, rc, "checkpoint");
}

/* The statements on the path of every lease operation, and what their plans
 * must (and must not) contain. */
static const struct {
        enum stmt_id id;
        const char *must_use;   /* an index name, or NULL */
} hot_statements[] = {
        { ST_POOL_GET, NULL },
        { ST_ENTRY_BY_IMPU, NULL },
        { ST_ENTRY_LIVE_BY_HOLDER, "pool_entry_by_holder" },
        { ST_ENTRY_QUARANTINE_BY_HOLDER, "pool_entry_by_holder" },
        { ST_ENTRY_COUNT_LIVE, "pool_entry_by_holder" },
        { ST_ENTRY_FIRST_AVAILABLE, "pool_entry_by_avail" },
        { ST_ENTRY_UPDATE, NULL },
        { ST_ENTRIES_EXPIRED, "pool_entry_open_by_expiry" },
        { ST_POOL_COUNTS, "pool_entry_open_by_expiry" },
        /* Before every close of a lease. */
        { ST_POOL_COUNTS_ADVANCE_ONE, "pool_entry_open_by_expiry" },
        { ST_HISTORY_LIST_AT, "lease_history_by_impu" },
        /* Every request of a portal authenticates its key. */
        { ST_PORTAL_KEY_GET, "(key_id=?)" },
        { ST_PORTAL_SET_LAST_USED, NULL },
};

int store_sqlite_check_plans(struct store *base, char *err, size_t errsize) {
        struct store_sqlite *s = SELF(base);
        for (size_t i = 0; i < sizeof hot_statements / sizeof hot_statements[0]; i++) {
                char *sql = sqlite3_mprintf("EXPLAIN QUERY PLAN %s", stmt_sql[hot_statements[i].id]);
                sqlite3_stmt *st;
                int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
                sqlite3_free(sql);
                if (rc != SQLITE_OK) {
                        snprintf(err, errsize, "%s: %s", stmt_sql[hot_statements[i].id], sqlite3_errmsg(s->db));
                        return -EIO;
                }
                bool uses = hot_statements[i].must_use == NULL, scans = false;
                char plan[512] = "";
                while (sqlite3_step(st) == SQLITE_ROW) {
                        const char *detail = (const char *) sqlite3_column_text(st, 3);
                        if (!detail)
                                continue;
                        if (strncmp(detail, "SCAN ", 5) == 0)
                                scans = true;
                        if (hot_statements[i].must_use && strstr(detail, hot_statements[i].must_use))
                                uses = true;
                        size_t n = strlen(plan);
                        snprintf(plan + n, sizeof plan - n, "%s%s", n ? "; " : "", detail);
                }
                sqlite3_finalize(st);
                if (scans || !uses) {
                        snprintf(err, errsize, "%s: plan '%s'%s", stmt_sql[hot_statements[i].id], plan,
                                 scans ? " scans a table" : " misses its index");
                        return -EINVAL;
                }
        }
        return 0;
}

static int sqlite_entries_set_retired(struct store *base, int64_t pool_id, int64_t from, int64_t to, bool retired,
                                     int64_t hold, int64_t *ret_changed) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, retired ? ST_ENTRIES_RETIRE : ST_ENTRIES_RESTORE);
        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, pool_id);
        sqlite3_bind_int64(st, 2, from);
        sqlite3_bind_int64(st, 3, to);
        sqlite3_bind_int64(st, 4, hold);
        if (retired)
                sqlite3_bind_int64(st, 5, STORE_NEVER);
        int r = exec_stmt(s, st, retired ? "retire entries" : "restore entries");
        if (r == 0)
                *ret_changed = sqlite3_changes64(s->db);
        return r;
}

static int sqlite_entries_expired(struct store *base, int64_t now, int limit, store_entry_cb cb, void *userdata) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_ENTRIES_EXPIRED);
        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, now);
        sqlite3_bind_int(st, 2, limit);
        return entry_each(s, st, cb, userdata, "expired entries");
}

static int sqlite_entry_list(struct store *base, const char *pool, store_entry_cb cb, void *userdata) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, pool ? ST_ENTRY_LIST_POOL : ST_ENTRY_LIST_ALL);
        if (!st)
                return -EIO;
        if (pool)
                bind_text(st, 1, pool);
        return entry_each(s, st, cb, userdata, "entry list");
}

static int sqlite_history_open(struct store *base, const struct store_entry *e, int64_t started_at,
                               int64_t *ret_id) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_HISTORY_OPEN);
        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, e->pool_id);
        bind_text(st, 2, e->impu);
        bind_text(st, 3, e->impi);
        bind_text(st, 4, e->holder);
        bind_text(st, 5, e->client_addr);
        sqlite3_bind_int64(st, 6, started_at);
        int r = exec_stmt(s, st, "history open");
        if (r == 0)
                *ret_id = sqlite3_last_insert_rowid(s->db);
        return r;
}

static int sqlite_history_close(struct store *base, int64_t id, int64_t ended_at, const char *reason) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_HISTORY_CLOSE);
        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, ended_at);
        bind_text(st, 3, reason);
        return exec_stmt(s, st, "history close");
}

static int sqlite_history_renewed(struct store *base, int64_t id) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_HISTORY_RENEWED);
        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, id);
        return exec_stmt(s, st, "history renew");
}

static void read_history(sqlite3_stmt *st, struct store_history *h) {
        memset(h, 0, sizeof *h);
        h->id = sqlite3_column_int64(st, 0);
        h->pool_id = sqlite3_column_int64(st, 1);
        copy_col(st, 2, h->pool, sizeof h->pool);
        copy_col(st, 3, h->impu, sizeof h->impu);
        copy_col(st, 4, h->impi, sizeof h->impi);
        copy_col(st, 5, h->holder, sizeof h->holder);
        copy_col(st, 6, h->client_addr, sizeof h->client_addr);
        h->started_at = sqlite3_column_int64(st, 7);
        h->ended_at = sqlite3_column_int64(st, 8);
        h->open = sqlite3_column_int(st, 9) != 0;
        copy_col(st, 10, h->end_reason, sizeof h->end_reason);
        h->renewals = sqlite3_column_int64(st, 11);
        h->hold = sqlite3_column_int64(st, 12);
}

static int history_each(struct store_sqlite *s, sqlite3_stmt *st, store_history_cb cb, void *userdata,
                        const char *what) {
        struct store_history h;
        int rc, r = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                read_history(st, &h);
                if ((r = cb(&h, userdata)) != 0)
                        break;
        }
        if (r == 0 && rc != SQLITE_DONE)
                r = fail(s, rc, what);
        sqlite3_reset(st);
        return r;
}

static int sqlite_history_list(struct store *base, const char *impu, int64_t at, store_history_cb cb,
                               void *userdata) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, at >= 0 ? ST_HISTORY_LIST_AT : ST_HISTORY_LIST);
        if (!st)
                return -EIO;
        bind_text(st, 1, impu);
        if (at >= 0)
                sqlite3_bind_int64(st, 2, at);
        return history_each(s, st, cb, userdata, "history list");
}

static void read_portal(sqlite3_stmt *st, struct store_portal *p) {
        memset(p, 0, sizeof *p);
        p->id = sqlite3_column_int64(st, 0);
        copy_col(st, 1, p->name, sizeof p->name);
        p->max_pools = sqlite3_column_int64(st, 2);
        p->max_entries = sqlite3_column_int64(st, 3);
        p->created_at = sqlite3_column_int64(st, 4);
        p->last_used_at = sqlite3_column_int64(st, 5);
        p->revoked_at = sqlite3_column_int64(st, 6);
        p->keys_current = sqlite3_column_int64(st, 7);
        p->keys_grace = sqlite3_column_int64(st, 8);
        p->grace_until = sqlite3_column_int64(st, 9);
}

static int sqlite_portal_insert(struct store *base, const struct store_portal *p, int64_t *ret_id) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_PORTAL_INSERT);
        if (!st)
                return -EIO;
        bind_text(st, 1, p->name);
        sqlite3_bind_int64(st, 2, p->max_pools);
        sqlite3_bind_int64(st, 3, p->max_entries);
        sqlite3_bind_int64(st, 4, p->created_at);
        int r = exec_stmt(s, st, "portal insert");
        if (r == 0 && ret_id)
                *ret_id = sqlite3_last_insert_rowid(s->db);
        return r;
}

static int sqlite_portal_get(struct store *base, const char *name, int64_t now, struct store_portal *ret) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_PORTAL_GET);
        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, now);
        bind_text(st, 2, name);
        int rc = sqlite3_step(st), r;
        if (rc == SQLITE_ROW) {
                read_portal(st, ret);
                r = 0;
        } else
                r = rc == SQLITE_DONE ? -ENOENT : fail(s, rc, "portal get");
        sqlite3_reset(st);
        return r;
}

static int sqlite_portal_list(struct store *base, int64_t now, store_portal_cb cb, void *userdata) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_PORTAL_LIST);
        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, now);
        struct store_portal p;
        int rc, r = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                read_portal(st, &p);
                if ((r = cb(&p, userdata)) != 0)
                        break;
        }
        if (r == 0 && rc != SQLITE_DONE)
                r = fail(s, rc, "portal list");
        sqlite3_reset(st);
        return r;
}

/* UPDATE/DELETE statements of the form (?1 = an id, ?2 = a time); time 0
 * binds NULL, the schema's "never". */
static int exec_id_time(struct store *base, enum stmt_id id, int64_t row, int64_t t, const char *what) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, id);
        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, row);
        if (t)
                sqlite3_bind_int64(st, 2, t);
        return exec_stmt(s, st, what);
}

static int sqlite_portal_set_last_used(struct store *base, int64_t id, int64_t at) {
        return exec_id_time(base, ST_PORTAL_SET_LAST_USED, id, at, "portal last used");
}

static int sqlite_portal_set_revoked(struct store *base, int64_t id, int64_t at) {
        return exec_id_time(base, ST_PORTAL_SET_REVOKED, id, at, "portal revoked");
}

static int sqlite_portal_key_insert(struct store *base, int64_t portal_id,
                                    const uint8_t key_id[STORE_PORTAL_KEY_ID_SIZE],
                                    const uint8_t secret_sha256[STORE_PORTAL_HASH_SIZE], int64_t now) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_PORTAL_KEY_INSERT);
        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, portal_id);
        sqlite3_bind_blob(st, 2, key_id, STORE_PORTAL_KEY_ID_SIZE, SQLITE_STATIC);
        sqlite3_bind_blob(st, 3, secret_sha256, STORE_PORTAL_HASH_SIZE, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, now);
        return exec_stmt(s, st, "portal key insert");
}

static int sqlite_portal_key_get(struct store *base, const uint8_t key_id[STORE_PORTAL_KEY_ID_SIZE],
                                 struct store_portal_key *ret) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_PORTAL_KEY_GET);
        if (!st)
                return -EIO;
        sqlite3_bind_blob(st, 1, key_id, STORE_PORTAL_KEY_ID_SIZE, SQLITE_STATIC);
        int rc = sqlite3_step(st), r = -ENOENT;
        if (rc == SQLITE_ROW) {
                memset(ret, 0, sizeof *ret);
                ret->portal_id = sqlite3_column_int64(st, 0);
                copy_col(st, 1, ret->portal, sizeof ret->portal);
                /* The schema's CHECK holds the hash to its size. */
                if (sqlite3_column_bytes(st, 2) == STORE_PORTAL_HASH_SIZE) {
                        memcpy(ret->secret_sha256, sqlite3_column_blob(st, 2), STORE_PORTAL_HASH_SIZE);
                        r = 0;
                }
                ret->expires_at = sqlite3_column_int64(st, 3);
        } else if (rc != SQLITE_DONE)
                r = fail(s, rc, "portal key get");
        sqlite3_reset(st);
        return r;
}

static int sqlite_portal_keys_expire(struct store *base, int64_t portal_id, int64_t until, int64_t now) {
        int r = exec_id_time(base, ST_PORTAL_KEYS_EXPIRE, portal_id, until, "portal keys expire");
        return r < 0 ? r : exec_id_time(base, ST_PORTAL_KEYS_PURGE, portal_id, now, "portal keys purge");
}

static int sqlite_portal_keys_delete(struct store *base, int64_t portal_id) {
        return exec_id_time(base, ST_PORTAL_KEYS_DELETE, portal_id, 0, "portal keys delete");
}

/* ---- the portal API's view ---- */

/* Runs a one-row pool query: 0 with *ret filled, or -ENOENT. */
static int pool_one(struct store_sqlite *s, sqlite3_stmt *st, struct store_pool *ret, const char *what) {
        int rc = sqlite3_step(st), r;
        if (rc == SQLITE_ROW) {
                read_pool(st, ret);
                r = 0;
        } else
                r = rc == SQLITE_DONE ? -ENOENT : fail(s, rc, what);
        sqlite3_reset(st);
        return r;
}

static int pool_each(struct store_sqlite *s, sqlite3_stmt *st, store_pool_cb cb, void *userdata, const char *what) {
        struct store_pool p;
        int rc, r = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                read_pool(st, &p);
                if ((r = cb(&p, userdata)) != 0)
                        break;
        }
        if (r == 0 && rc != SQLITE_DONE)
                r = fail(s, rc, what);
        sqlite3_reset(st);
        return r;
}

static int sqlite_pool_get_by_id(struct store *base, int64_t id, struct store_pool *ret) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_POOL_GET_BY_ID);
        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, id);
        return pool_one(s, st, ret, "pool by id");
}

static int sqlite_pool_list_owned(struct store *base, const char *owner, const char *subscription, int64_t after_id,
                                  int limit, store_pool_cb cb, void *userdata) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, subscription ? ST_POOL_LIST_OWNED_SUB : ST_POOL_LIST_OWNED);
        if (!st)
                return -EIO;
        bind_text(st, 1, owner);
        sqlite3_bind_int64(st, 2, after_id);
        sqlite3_bind_int(st, 3, limit);
        if (subscription)
                bind_text(st, 4, subscription);
        return pool_each(s, st, cb, userdata, "owned pools");
}

static int sqlite_pool_set_portal(struct store *base, int64_t pool_id, int64_t portal_id) {
        return exec_id_time(base, ST_POOL_SET_PORTAL, pool_id, portal_id, "pool owner");
}

static int sqlite_pool_touch(struct store *base, int64_t pool_id, int64_t now) {
        return exec_id_time(base, ST_POOL_TOUCH, pool_id, now, "pool revision");
}

static int sqlite_pool_set_deleting(struct store *base, int64_t pool_id, bool deleting) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_POOL_SET_DELETING);
        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, pool_id);
        sqlite3_bind_int(st, 2, deleting);
        return exec_stmt(s, st, "pool deleting");
}

static int sqlite_pool_delete(struct store *base, int64_t pool_id, int64_t now) {
        return exec_id_time(base, ST_POOL_DELETE, pool_id, now, "delete pool");
}

static int sqlite_portal_usage(struct store *base, int64_t portal_id, int64_t *ret_pools, int64_t *ret_entries) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_PORTAL_USAGE);
        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, portal_id);
        int rc = sqlite3_step(st), r = 0;
        if (rc == SQLITE_ROW) {
                *ret_pools = sqlite3_column_int64(st, 0);
                *ret_entries = sqlite3_column_int64(st, 1);
        } else
                r = fail(s, rc, "portal usage");
        sqlite3_reset(st);
        return r;
}

static void read_subscription(sqlite3_stmt *st, struct store_subscription *ret) {
        memset(ret, 0, sizeof *ret);
        ret->id = sqlite3_column_int64(st, 0);
        copy_col(st, 1, ret->sub.name, sizeof ret->sub.name);
        copy_col(st, 2, ret->sub.owner, sizeof ret->sub.owner);
        copy_col(st, 3, ret->sub.domain, sizeof ret->sub.domain);
        (void) impi_mode_from_string(column_str(st, 4), &ret->sub.impi_mode);
        ret->pools = sqlite3_column_int64(st, 5);
}

static int sqlite_subscription_get(struct store *base, const char *name, struct store_subscription *ret) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_SUB_GET);
        if (!st)
                return -EIO;
        bind_text(st, 1, name);
        int rc = sqlite3_step(st), r = 0;
        if (rc == SQLITE_ROW)
                read_subscription(st, ret);
        else
                r = rc == SQLITE_DONE ? -ENOENT : fail(s, rc, "subscription get");
        sqlite3_reset(st);
        return r;
}

static int sqlite_subscription_list_owned(struct store *base, const char *owner, store_subscription_cb cb,
                                          void *userdata) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_SUB_LIST_OWNED);
        if (!st)
                return -EIO;
        bind_text(st, 1, owner);
        struct store_subscription sub;
        int rc, r = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                read_subscription(st, &sub);
                if ((r = cb(&sub, userdata)) != 0)
                        break;
        }
        if (r == 0 && rc != SQLITE_DONE)
                r = fail(s, rc, "owned subscriptions");
        sqlite3_reset(st);
        return r;
}

static int sqlite_entry_page(struct store *base, int64_t pool_id, int64_t after_idx, int limit, store_entry_cb cb,
                             void *userdata) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_ENTRY_PAGE);
        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, pool_id);
        sqlite3_bind_int64(st, 2, after_idx);
        sqlite3_bind_int(st, 3, limit);
        return entry_each(s, st, cb, userdata, "entry page");
}

static int sqlite_entry_delete(struct store *base, int64_t id) {
        return exec_id_time(base, ST_ENTRY_DELETE, id, 0, "entry delete");
}

static int sqlite_history_get(struct store *base, int64_t id, struct store_history *ret) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_HISTORY_GET);
        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, id);
        int rc = sqlite3_step(st), r = 0;
        if (rc == SQLITE_ROW)
                read_history(st, ret);
        else
                r = rc == SQLITE_DONE ? -ENOENT : fail(s, rc, "lease get");
        sqlite3_reset(st);
        return r;
}

static int sqlite_history_page(struct store *base, int64_t pool_id, const struct store_history_filter *f,
                               int64_t after_id, int limit, store_history_cb cb, void *userdata) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_HISTORY_PAGE);
        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, pool_id);
        sqlite3_bind_int64(st, 2, after_id);
        sqlite3_bind_int(st, 3, limit);
        sqlite3_bind_int64(st, 4, f->now);
        sqlite3_bind_int(st, 5, (int) f->state);
        bind_text(st, 6, f->holder);
        bind_text(st, 7, f->impu);
        return history_each(s, st, cb, userdata, "lease page");
}

static int sqlite_entries_purge(struct store *base, int64_t now, int limit, int64_t *ret_n) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_ENTRIES_PURGE);
        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, now);
        sqlite3_bind_int(st, 2, limit);
        /* Retired entries, found through pool_entry_by_avail. */
        sqlite3_bind_int64(st, 3, STORE_NEVER);
        int r = exec_stmt(s, st, "purge entries");
        if (r == 0)
                *ret_n = sqlite3_changes64(s->db);
        return r;
}

static int sqlite_audit_insert(struct store *base, const struct store_audit *a) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_AUDIT_INSERT);
        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, a->portal_id);
        sqlite3_bind_int64(st, 2, a->at);
        bind_text(st, 3, a->action);
        bind_text(st, 4, a->resource);
        bind_text(st, 5, a->before);
        bind_text(st, 6, a->after);
        bind_text(st, 7, a->client_addr);
        return exec_stmt(s, st, "audit insert");
}

static int sqlite_audit_list(struct store *base, int64_t portal_id, int64_t since, store_audit_cb cb,
                             void *userdata) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_AUDIT_LIST);
        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, portal_id);
        sqlite3_bind_int64(st, 2, since);
        struct store_audit a;
        int rc, r = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                memset(&a, 0, sizeof a);
                a.id = sqlite3_column_int64(st, 0);
                a.portal_id = sqlite3_column_int64(st, 1);
                a.at = sqlite3_column_int64(st, 2);
                copy_col(st, 3, a.action, sizeof a.action);
                copy_col(st, 4, a.resource, sizeof a.resource);
                a.before = column_str(st, 5);
                a.after = column_str(st, 6);
                copy_col(st, 7, a.client_addr, sizeof a.client_addr);
                if ((r = cb(&a, userdata)) != 0)
                        break;
        }
        if (r == 0 && rc != SQLITE_DONE)
                r = fail(s, rc, "audit list");
        sqlite3_reset(st);
        return r;
}

static int sqlite_idempotency_get(struct store *base, int64_t portal_id, const char *key,
                                  struct store_idempotency *ret) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_IDEM_GET);
        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, portal_id);
        bind_text(st, 2, key);
        int rc = sqlite3_step(st), r = -ENOENT;
        if (rc == SQLITE_ROW) {
                memset(ret, 0, sizeof *ret);
                ret->portal_id = portal_id;
                snprintf(ret->key, sizeof ret->key, "%s", key);
                /* The schema's CHECK holds the hash to its size. */
                if (sqlite3_column_bytes(st, 0) == STORE_PORTAL_HASH_SIZE)
                        memcpy(ret->request_sha256, sqlite3_column_blob(st, 0), STORE_PORTAL_HASH_SIZE);
                ret->status = sqlite3_column_int(st, 1);
                const char *body = column_str(st, 2);
                ret->body = strdup(body ? body : "");
                copy_col(st, 3, ret->location, sizeof ret->location);
                ret->created_at = sqlite3_column_int64(st, 4);
                r = ret->body ? 0 : -ENOMEM;
        } else if (rc != SQLITE_DONE)
                r = fail(s, rc, "idempotency get");
        sqlite3_reset(st);
        return r;
}

static int sqlite_idempotency_put(struct store *base, const struct store_idempotency *rec) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_IDEM_PUT);
        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, rec->portal_id);
        bind_text(st, 2, rec->key);
        sqlite3_bind_blob(st, 3, rec->request_sha256, STORE_PORTAL_HASH_SIZE, SQLITE_STATIC);
        sqlite3_bind_int(st, 4, rec->status);
        sqlite3_bind_text(st, 5, rec->body ? rec->body : "", -1, SQLITE_STATIC);
        bind_text(st, 6, rec->location);
        sqlite3_bind_int64(st, 7, rec->created_at);
        return exec_stmt(s, st, "idempotency put");
}

static int sqlite_idempotency_expire(struct store *base, int64_t before) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st = stmt(s, ST_IDEM_EXPIRE);
        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, before);
        return exec_stmt(s, st, "idempotency expire");
}

static int sqlite_check(struct store *base, char *buf, size_t size) {
        struct store_sqlite *s = SELF(base);
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(s->db, "PRAGMA integrity_check", -1, &st, NULL);
        if (rc != SQLITE_OK)
                return fail(s, rc, "integrity check");
        size_t used = 0;
        buf[0] = '\0';
        while ((rc = sqlite3_step(st)) == SQLITE_ROW && used + 1 < size) {
                int n = snprintf(buf + used, size - used, "%s%s", used ? "; " : "", sqlite3_column_text(st, 0));
                used += n > 0 ? (size_t) n : 0;
        }
        int r = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : fail(s, rc, "integrity check");
        sqlite3_finalize(st);
        if (r < 0 || strcmp(buf, "ok") != 0)
                return r;
        /* The pools' counts against a scan of their entries. */
        if (!(st = stmt(s, ST_POOL_COUNTS_CHECK)))
                return -EIO;
        used = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW && used + 1 < size) {
                int n = snprintf(buf + used, size - used,
                                 "%spool %s: counts (entries %lld, retired %lld, leased %lld, busy %lld) "
                                 "and its entries (%lld, %lld, %lld, %lld); closed leases ending after "
                                 "its counts' time: %lld",
                                 used ? "; " : "", sqlite3_column_text(st, 0),
                                 (long long) sqlite3_column_int64(st, 1), (long long) sqlite3_column_int64(st, 3),
                                 (long long) sqlite3_column_int64(st, 5), (long long) sqlite3_column_int64(st, 7),
                                 (long long) sqlite3_column_int64(st, 2), (long long) sqlite3_column_int64(st, 4),
                                 (long long) sqlite3_column_int64(st, 6), (long long) sqlite3_column_int64(st, 8),
                                 (long long) sqlite3_column_int64(st, 9));
                used += n > 0 ? (size_t) n : 0;
        }
        if (rc != SQLITE_DONE && rc != SQLITE_ROW)
                r = fail(s, rc, "pool counts check");
        else if (used == 0)
                snprintf(buf, size, "ok");
        sqlite3_reset(st);
        return r;
}

static void sqlite_close(struct store *base) {
        struct store_sqlite *s = SELF(base);
        for (int i = 0; i < _ST_MAX; i++)
                sqlite3_finalize(s->stmt[i]);
        sqlite3_close(s->db);
        free(s);
}

static const struct store_ops sqlite_ops = {
        .backend = "sqlite",
        .close = sqlite_close,
        .error = sqlite_error,
        .begin = sqlite_begin,
        .commit = sqlite_commit,
        .rollback = sqlite_rollback,
        .savepoint = sqlite_savepoint,
        .savepoint_release = sqlite_savepoint_release,
        .savepoint_rollback = sqlite_savepoint_rollback,
        .subscription_upsert = sqlite_subscription_upsert,
        .pool_upsert = sqlite_pool_upsert,
        .pool_get = sqlite_pool_get,
        .pool_list = sqlite_pool_list,
        .pool_set_next_index = sqlite_pool_set_next_index,
        .pool_counts = sqlite_pool_counts,
        .pool_counts_advance = sqlite_pool_counts_advance,
        .entry_by_impu = sqlite_entry_by_impu,
        .entry_by_holder = sqlite_entry_by_holder,
        .entry_count_live = sqlite_entry_count_live,
        .entry_first_available = sqlite_entry_first_available,
        .entry_insert = sqlite_entry_insert,
        .entry_update = sqlite_entry_update,
        .entry_set_impi = sqlite_entry_set_impi,
        .checkpoint = sqlite_checkpoint,
        .entries_set_retired = sqlite_entries_set_retired,
        .entries_expired = sqlite_entries_expired,
        .entry_list = sqlite_entry_list,
        .history_open = sqlite_history_open,
        .history_close = sqlite_history_close,
        .history_renewed = sqlite_history_renewed,
        .history_list = sqlite_history_list,
        .portal_insert = sqlite_portal_insert,
        .portal_get = sqlite_portal_get,
        .portal_list = sqlite_portal_list,
        .portal_set_last_used = sqlite_portal_set_last_used,
        .portal_set_revoked = sqlite_portal_set_revoked,
        .portal_key_insert = sqlite_portal_key_insert,
        .portal_key_get = sqlite_portal_key_get,
        .portal_keys_expire = sqlite_portal_keys_expire,
        .portal_keys_delete = sqlite_portal_keys_delete,
        .pool_get_by_id = sqlite_pool_get_by_id,
        .pool_list_owned = sqlite_pool_list_owned,
        .pool_set_portal = sqlite_pool_set_portal,
        .pool_touch = sqlite_pool_touch,
        .pool_set_deleting = sqlite_pool_set_deleting,
        .pool_delete = sqlite_pool_delete,
        .portal_usage = sqlite_portal_usage,
        .subscription_get = sqlite_subscription_get,
        .subscription_list_owned = sqlite_subscription_list_owned,
        .entry_page = sqlite_entry_page,
        .entry_delete = sqlite_entry_delete,
        .history_get = sqlite_history_get,
        .history_page = sqlite_history_page,
        .entries_purge = sqlite_entries_purge,
        .audit_insert = sqlite_audit_insert,
        .audit_list = sqlite_audit_list,
        .idempotency_get = sqlite_idempotency_get,
        .idempotency_put = sqlite_idempotency_put,
        .idempotency_expire = sqlite_idempotency_expire,
        .check = sqlite_check,
};

static int user_version(sqlite3 *db, int *ret) {
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
        if (rc != SQLITE_OK)
                return rc;
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                *ret = sqlite3_column_int(st, 0);
                rc = SQLITE_OK;
        }
        sqlite3_finalize(st);
        return rc;
}

/* Applies every migration newer than the database, each in its own
 * transaction; re-reads the version under the write lock so that two
 * processes opening a new database at once apply each step once. */
static int migrate(struct store_sqlite *s, bool read_only) {
        int version = 0, rc;
        if ((rc = user_version(s->db, &version)) != SQLITE_OK)
                return fail(s, rc, "read schema version");
        if (version > store_migrations_count) {
                snprintf(s->error, sizeof s->error,
                         "database schema version %d is newer than this build supports (%d): use a newer wwsf",
                         version, store_migrations_count);
                return -EPROTO;
        }
        if (version == store_migrations_count)
                return 0;
        if (read_only) {
                snprintf(s->error, sizeof s->error, "database schema version %d needs upgrading to %d", version,
                         store_migrations_count);
                return -EPROTO;
        }
        for (int i = version; i < store_migrations_count; i++) {
                const struct store_migration *m = &store_migrations[i];
                char *err = NULL;
                if ((rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL)) != SQLITE_OK)
                        return fail(s, rc, "begin migration");
                int now_version = 0;
                if ((rc = user_version(s->db, &now_version)) != SQLITE_OK) {
                        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
                        return fail(s, rc, "read schema version");
                }
                if (now_version >= m->version) {
                        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
                        continue;
                }
                char pragma[64];
                snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", m->version);
                if ((rc = sqlite3_exec(s->db, m->sql, NULL, NULL, &err)) != SQLITE_OK ||
                    (rc = sqlite3_exec(s->db, pragma, NULL, NULL, &err)) != SQLITE_OK ||
                    (rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, &err)) != SQLITE_OK) {
                        snprintf(s->error, sizeof s->error, "migration %s: %s", m->name, err ? err : "failed");
                        sqlite3_free(err);
                        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
                        return -EIO;
                }
        }
        return 0;
}

/* Switching to WAL needs a moment alone with the file, and SQLite answers
 * SQLITE_BUSY at once, without the busy handler, when another connection is
 * opening it too (several processes on a new database). Wait and try again. */
static int set_wal(sqlite3 *db, int timeout_ms, char **err) {
        for (int waited = 0;; waited += 10) {
                sqlite3_free(*err);
                *err = NULL;
                int rc = sqlite3_exec(db, "PRAGMA journal_mode = WAL", NULL, NULL, err);
                if ((rc & 0xff) != SQLITE_BUSY || waited >= timeout_ms)
                        return rc;
                sqlite3_sleep(10);
        }
}

int store_sqlite_open(const char *path, const struct store_options *opt, struct store **ret, char *errbuf,
                      size_t errsize) {
        static const struct store_options defaults = { .sync = STORE_SYNC_FULL };
        if (!opt)
                opt = &defaults;
        struct store_sqlite *s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->base.ops = &sqlite_ops;
        int flags = (opt->read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
                    SQLITE_OPEN_NOMUTEX;
        int r, rc = sqlite3_open_v2(path, &s->db, flags, NULL);
        if (rc != SQLITE_OK) {
                snprintf(errbuf, errsize, "%s: %s", path, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
                r = rc == SQLITE_CANTOPEN ? -ENOENT : -EIO;
                goto fail;
        }
        sqlite3_extended_result_codes(s->db, 1);
        /* Several wwsfctl and wwsfd processes share one file; a writer holds the
         * lock for one short transaction, so waiting beats failing. */
        sqlite3_busy_timeout(s->db, opt->busy_timeout_ms > 0 ? opt->busy_timeout_ms : 5000);

        static const char *const sync_pragma[] = {
                [STORE_SYNC_FULL] = "PRAGMA synchronous = FULL",
                [STORE_SYNC_NORMAL] = "PRAGMA synchronous = NORMAL",
                [STORE_SYNC_OFF] = "PRAGMA synchronous = OFF",
        };
        char *err = NULL;
        /* Refuse a newer schema before changing anything in the file. */
        int version = 0;
        if ((rc = user_version(s->db, &version)) != SQLITE_OK) {
                err = sqlite3_mprintf("%s", sqlite3_errmsg(s->db));
                goto sql_fail;
        }
        if (version > store_migrations_count) {
                snprintf(errbuf, errsize,
                         "%s: database schema version %d is newer than this build supports (%d): use a newer wwsf",
                         path, version, store_migrations_count);
                r = -EPROTO;
                goto fail;
        }
        if (!opt->read_only && (rc = set_wal(s->db, opt->busy_timeout_ms > 0 ? opt->busy_timeout_ms : 5000,
                                             &err)) != SQLITE_OK)
                goto sql_fail;
        /* A daemon checkpoints on its own timer: an automatic checkpoint runs
         * inside whichever commit crosses the threshold, outside any bound
         * the caller set on its work. */
        if (opt->manual_checkpoint &&
            (rc = sqlite3_exec(s->db, "PRAGMA wal_autocheckpoint = 0", NULL, NULL, &err)) != SQLITE_OK)
                goto sql_fail;
        /* temp_store = MEMORY: the statement and savepoint journals (the
         * pages a statement or a savepoint may have to put back) stay in
         * memory instead of a temporary file written page by page. Every
         * write of pool_entry fires a trigger (sql/0004-pool-counts.sql) and
         * so keeps a statement journal, and every request of a batch has its
         * savepoint: on a file that was a write() per page, several per
         * lease. They never outlive their transaction, and a crash loses
         * nothing of them that the database needs. */
        if ((rc = sqlite3_exec(s->db, sync_pragma[opt->sync], NULL, NULL, &err)) != SQLITE_OK ||
            (rc = sqlite3_exec(s->db, "PRAGMA foreign_keys = ON", NULL, NULL, &err)) != SQLITE_OK ||
            (rc = sqlite3_exec(s->db, "PRAGMA temp_store = MEMORY", NULL, NULL, &err)) != SQLITE_OK)
                goto sql_fail;

        if ((r = migrate(s, opt->read_only)) < 0) {
                snprintf(errbuf, errsize, "%s: %s", path, s->error);
                goto fail;
        }
        *ret = &s->base;
        return 0;

sql_fail:
        snprintf(errbuf, errsize, "%s: %s", path, err ? err : sqlite3_errmsg(s->db));
        sqlite3_free(err);
        r = (rc & 0xff) == SQLITE_NOTADB ? -EPROTO : (rc & 0xff) == SQLITE_BUSY ? -EBUSY : -EIO;
fail:
        sqlite3_close(s->db);
        free(s);
        return r;
}

void store_close(struct store *s) {
        if (s)
                s->ops->close(s);
}

int store_schema_version(void) {
        return store_migrations_count;
}
