/* Portals and their API keys (src/portal) on a real SQLite store, with a
 * fixed clock: which keys authenticate, and when. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "portal/portal.h"
#include "store/migrations.h"
#include "store/store.h"

#define T0 1000000

struct fixture {
        char dir[64];
        char path[128];
        struct store *store;
};

static int setup(void **state) {
        struct fixture *fx = calloc(1, sizeof *fx);
        strcpy(fx->dir, "/tmp/wwsf-unit-XXXXXX");
        assert_non_null(mkdtemp(fx->dir));
        snprintf(fx->path, sizeof fx->path, "%s/portal.db", fx->dir);
        char err[256];
        struct store_options opt = { .sync = STORE_SYNC_OFF };
        assert_int_equal(store_sqlite_open(fx->path, &opt, &fx->store, err, sizeof err), 0);
        *state = fx;
        return 0;
}

static int teardown(void **state) {
        struct fixture *fx = *state;
        store_close(fx->store);
        char cmd[160];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
        assert_int_equal(system(cmd), 0);
        free(fx);
        return 0;
}

static void assert_key_works(struct store *s, const char *key, int64_t now, const char *expect_name) {
        char name[POOL_NAME_MAX] = "";
        int r = portal_authenticate(s, key, now, name);
        if (r != 0)
                fail_msg("key of %s refused at %lld: %d", expect_name, (long long) now, r);
        assert_string_equal(name, expect_name);
}

static void assert_key_refused(struct store *s, const char *key, int64_t now) {
        char name[POOL_NAME_MAX] = "unchanged";
        int r = portal_authenticate(s, key, now, name);
        if (r != -EACCES)
                fail_msg("key '%s' at %lld: expected -EACCES, got %d (%s)", key, (long long) now, r, name);
        assert_string_equal(name, "unchanged");
}

struct found {
        const char *name;
        struct portal_info info;
        int n;
};

static int find_one(const struct portal_info *p, void *userdata) {
        struct found *f = userdata;
        if (strcmp(p->name, f->name) == 0) {
                f->info = *p;
                f->n++;
        }
        return 0;
}

static struct portal_info info_of(struct store *s, const char *name, int64_t now) {
        struct found f = { .name = name };
        assert_int_equal(portal_list(s, now, find_one, &f), 0);
        assert_int_equal(f.n, 1);
        return f.info;
}

static void test_fresh_key_and_last_used(void **state) {
        struct fixture *fx = *state;
        char key[PORTAL_KEY_SIZE];
        assert_int_equal(portal_add(fx->store, "acme", 3, 500, T0, key), 0);
        assert_int_equal(strlen(key), PORTAL_KEY_LEN);
        assert_memory_equal(key, PORTAL_KEY_PREFIX, strlen(PORTAL_KEY_PREFIX));

        struct portal_info p = info_of(fx->store, "acme", T0);
        assert_int_equal(p.max_pools, 3);
        assert_int_equal(p.max_entries, 500);
        assert_int_equal(p.created_at, T0);
        assert_int_equal(p.last_used_at, 0);
        assert_int_equal(p.state, PORTAL_KEY_ACTIVE);

        assert_key_works(fx->store, key, T0 + 10, "acme");
        assert_int_equal(info_of(fx->store, "acme", T0 + 10).last_used_at, T0 + 10);
        assert_key_works(fx->store, key, T0 + 99, "acme");
        assert_int_equal(info_of(fx->store, "acme", T0 + 99).last_used_at, T0 + 99);
}

/* The base64url alphabet, to change a character into another valid one. */
static char other_char(char c) {
        return c == 'A' ? 'B' : 'A';
}

static void test_bad_keys_refused(void **state) {
        struct fixture *fx = *state;
        char key[PORTAL_KEY_SIZE], other[PORTAL_KEY_SIZE], bad[PORTAL_KEY_SIZE + 8];
        assert_int_equal(portal_add(fx->store, "acme", 1, 1, T0, key), 0);
        assert_int_equal(portal_add(fx->store, "beta", 1, 1, T0, other), 0);
        const size_t dot = strlen(PORTAL_KEY_PREFIX) + 11;
        assert_int_equal(key[dot], '.');

        /* acme's key id with beta's secret, and beta's id with acme's secret. */
        memcpy(bad, key, dot);
        strcpy(bad + dot, other + dot);
        assert_key_refused(fx->store, bad, T0);
        memcpy(bad, other, dot);
        strcpy(bad + dot, key + dot);
        assert_key_refused(fx->store, bad, T0);

        /* Empty, truncated, one more character. */
        assert_key_refused(fx->store, "", T0);
        assert_key_refused(fx->store, PORTAL_KEY_PREFIX, T0);
        for (size_t n = 1; n < PORTAL_KEY_LEN; n += 7) {
                snprintf(bad, sizeof bad, "%.*s", (int) n, key);
                assert_key_refused(fx->store, bad, T0);
        }
        snprintf(bad, sizeof bad, "%.*s", PORTAL_KEY_LEN - 1, key);
        assert_key_refused(fx->store, bad, T0);
        snprintf(bad, sizeof bad, "%sA", key);
        assert_key_refused(fx->store, bad, T0);
        snprintf(bad, sizeof bad, "%s\n", key);
        assert_key_refused(fx->store, bad, T0);

        /* Every single character changed, to a valid character and to one
         * outside the alphabet; the last characters carry 2 unused bits,
         * which must not give the key a second spelling. */
        for (size_t i = 0; i < PORTAL_KEY_LEN; i++) {
                strcpy(bad, key);
                bad[i] = other_char(key[i]);
                assert_key_refused(fx->store, bad, T0);
                bad[i] = '=';
                assert_key_refused(fx->store, bad, T0);
                bad[i] = (char) (key[i] ^ 1);
                assert_key_refused(fx->store, bad, T0);
        }

        /* None of that touched the keys: both still work, and the refusals
         * left last_used alone. */
        assert_int_equal(info_of(fx->store, "acme", T0).last_used_at, 0);
        assert_key_works(fx->store, key, T0, "acme");
        assert_key_works(fx->store, other, T0, "beta");
}

static void test_rotate_grace(void **state) {
        struct fixture *fx = *state;
        char old[PORTAL_KEY_SIZE], fresh[PORTAL_KEY_SIZE], third[PORTAL_KEY_SIZE];
        assert_int_equal(portal_add(fx->store, "acme", 1, 1, T0, old), 0);
        const int64_t t = T0 + 100, grace = 3600;
        assert_int_equal(portal_rotate(fx->store, "acme", grace, t, fresh), 0);
        assert_string_not_equal(old, fresh);

        struct portal_info p = info_of(fx->store, "acme", t);
        assert_int_equal(p.state, PORTAL_KEY_ROTATING);
        assert_int_equal(p.grace_until, t + grace);

        assert_key_works(fx->store, old, t, "acme");
        assert_key_works(fx->store, old, t + grace - 1, "acme");
        assert_key_refused(fx->store, old, t + grace);
        assert_key_refused(fx->store, old, t + grace + 86400);
        assert_key_works(fx->store, fresh, t, "acme");
        assert_key_works(fx->store, fresh, t + grace + 86400, "acme");
        assert_int_equal(info_of(fx->store, "acme", t + grace).state, PORTAL_KEY_ACTIVE);

        /* A second rotation within the grace keeps the oldest key's earlier
         * end; grace 0 stops the older keys at once. */
        assert_int_equal(portal_rotate(fx->store, "acme", 7200, t + 10, third), 0);
        assert_key_works(fx->store, old, t + grace - 1, "acme");
        assert_key_refused(fx->store, old, t + grace);
        assert_key_works(fx->store, fresh, t + 10 + 7200 - 1, "acme");
        assert_key_refused(fx->store, fresh, t + 10 + 7200);
        assert_int_equal(portal_rotate(fx->store, "acme", 0, t + 20, fresh), 0);
        assert_key_refused(fx->store, third, t + 20);
        assert_key_works(fx->store, fresh, t + 20, "acme");

        assert_int_equal(portal_rotate(fx->store, "acme", PORTAL_GRACE_MAX + 1, t, third), -EINVAL);
        assert_int_equal(portal_rotate(fx->store, "acme", -1, t, third), -EINVAL);
        assert_int_equal(portal_rotate(fx->store, "nobody", 60, t, third), -ENOENT);
}

static void test_revoke(void **state) {
        struct fixture *fx = *state;
        char old[PORTAL_KEY_SIZE], fresh[PORTAL_KEY_SIZE], other[PORTAL_KEY_SIZE];
        assert_int_equal(portal_add(fx->store, "acme", 1, 1, T0, old), 0);
        assert_int_equal(portal_add(fx->store, "beta", 1, 1, T0, other), 0);
        assert_int_equal(portal_rotate(fx->store, "acme", 3600, T0, fresh), 0);
        assert_int_equal(portal_revoke(fx->store, "acme", T0 + 1), 0);
        assert_key_refused(fx->store, old, T0 + 1);
        assert_key_refused(fx->store, fresh, T0 + 1);
        struct portal_info p = info_of(fx->store, "acme", T0 + 1);
        assert_int_equal(p.state, PORTAL_KEY_REVOKED);
        assert_int_equal(p.revoked_at, T0 + 1);
        /* Only acme's keys. */
        assert_key_works(fx->store, other, T0 + 1, "beta");
        assert_int_equal(portal_revoke(fx->store, "nobody", T0), -ENOENT);

        /* A rotation gives it a key again, and only that key. */
        assert_int_equal(portal_rotate(fx->store, "acme", 3600, T0 + 2, fresh), 0);
        assert_key_works(fx->store, fresh, T0 + 2, "acme");
        assert_key_refused(fx->store, old, T0 + 2);
        p = info_of(fx->store, "acme", T0 + 2);
        assert_int_equal(p.state, PORTAL_KEY_ACTIVE);
        assert_int_equal(p.revoked_at, 0);
}

static void test_add_refusals(void **state) {
        struct fixture *fx = *state;
        char key[PORTAL_KEY_SIZE], name[POOL_NAME_MAX + 1];
        assert_int_equal(portal_add(fx->store, "acme", 1, 1, T0, key), 0);
        assert_int_equal(portal_add(fx->store, "acme", 1, 1, T0, key), -EEXIST);
        assert_int_equal(portal_add(fx->store, "", 1, 1, T0, key), -EINVAL);
        assert_int_equal(portal_add(fx->store, "a/b", 1, 1, T0, key), -EINVAL);
        assert_int_equal(portal_add(fx->store, "a b", 1, 1, T0, key), -EINVAL);
        /* 65 characters, one too many; 64 is fine. */
        memset(name, 'n', POOL_NAME_MAX);
        name[POOL_NAME_MAX] = '\0';
        assert_int_equal(portal_add(fx->store, name, 1, 1, T0, key), -EINVAL);
        name[POOL_NAME_CHARS] = '\0';
        assert_int_equal(portal_add(fx->store, name, 1, 1, T0, key), 0);
        assert_int_equal(portal_add(fx->store, "b", 0, 1, T0, key), -EINVAL);
        assert_int_equal(portal_add(fx->store, "b", PORTAL_MAX_POOLS_LIMIT + 1, 1, T0, key), -EINVAL);
        assert_int_equal(portal_add(fx->store, "b", 1, 0, T0, key), -EINVAL);
        assert_int_equal(portal_add(fx->store, "b", 1, PORTAL_MAX_ENTRIES_LIMIT + 1, T0, key), -EINVAL);
}

static int user_version(sqlite3 *db) {
        sqlite3_stmt *st;
        assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        int v = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        return v;
}

/* A database of schema 1 (with a row in it) gets the portal tables at open
 * and keeps its rows. */
static void test_upgrade_from_schema_1(void **state) {
        struct fixture *fx = *state;
        char path[160], err[256];
        snprintf(path, sizeof path, "%s/v1.db", fx->dir);
        sqlite3 *db;
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        assert_string_equal(store_migrations[0].name, "0001-lease-store.sql");
        assert_int_equal(sqlite3_exec(db, store_migrations[0].sql, NULL, NULL, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db,
                                      "INSERT INTO subscription (name, owner, domain, impi_mode) "
                                      "VALUES ('web', 'acme', 'ims.example.com', 'shared'); "
                                      "PRAGMA user_version = 1",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
        sqlite3_close(db);

        struct store *s;
        struct store_options opt = { .sync = STORE_SYNC_OFF };
        assert_int_equal(store_sqlite_open(path, &opt, &s, err, sizeof err), 0);
        char key[PORTAL_KEY_SIZE];
        assert_int_equal(portal_add(s, "acme", 1, 1, T0, key), 0);
        assert_key_works(s, key, T0, "acme");
        store_close(s);

        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        /* Brought up to the newest schema, past the portals' (2). */
        assert_int_equal(user_version(db), store_schema_version());
        assert_true(store_schema_version() >= 2);
        sqlite3_stmt *st;
        assert_int_equal(sqlite3_prepare_v2(db, "SELECT owner FROM subscription WHERE name = 'web'", -1, &st, NULL),
                         SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_string_equal((const char *) sqlite3_column_text(st, 0), "acme");
        sqlite3_finalize(st);
        sqlite3_close(db);
}

static void test_query_plans(void **state) {
        struct fixture *fx = *state;
        char err[1024];
        if (store_sqlite_check_plans(fx->store, err, sizeof err) < 0)
                fail_msg("%s", err);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_fresh_key_and_last_used, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_keys_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rotate_grace, setup, teardown),
                cmocka_unit_test_setup_teardown(test_revoke, setup, teardown),
                cmocka_unit_test_setup_teardown(test_add_refusals, setup, teardown),
                cmocka_unit_test_setup_teardown(test_upgrade_from_schema_1, setup, teardown),
                cmocka_unit_test_setup_teardown(test_query_plans, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
