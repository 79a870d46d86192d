/* The lease rules of docs/DESIGN.md section 5, with a clock the tests move. */
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

#include "config/pool_config.h"
#include "lease/lease.h"
#include "store/store.h"

/* Pools used below:
 *   trio   list of 3, ttl 100, hold 300, max_per_holder 2
 *   range  range of 5, ttl 100, hold 300
 *   wild   wildcard of 4, shared IMPI, ttl 100, hold 300 */
static const char config_text[] =
        "[subscription sub]\n"
        "owner = none\n"
        "domain = ims.example.com\n"
        "impi_mode = per-entry\n"
        "\n"
        "[subscription shared]\n"
        "owner = tenant-a\n"
        "domain = ims.example.com\n"
        "impi_mode = shared\n"
        "\n"
        "[pool trio]\n"
        "subscription = sub\n"
        "kind = authenticated\n"
        "lease_ttl = 100\n"
        "quarantine = 300\n"
        "max_per_holder = 2\n"
        "entry = sip:a@ims.example.com a@ims.example.com\n"
        "entry = sip:b@ims.example.com b@ims.example.com\n"
        "entry = sip:c@ims.example.com c@ims.example.com\n"
        "\n"
        "[pool range]\n"
        "subscription = sub\n"
        "kind = anonymous\n"
        "lease_ttl = 100\n"
        "quarantine = 300\n"
        "impu_range = sip:+1555{00..04}@ims.example.com\n"
        "impi_range = r{10..14}@ims.example.com\n"
        "\n"
        "[pool wild]\n"
        "subscription = shared\n"
        "kind = anonymous\n"
        "lease_ttl = 100\n"
        "quarantine = 300\n"
        "impu_wildcard = sip:web-!.*!@ims.example.com\n"
        "size = 4\n"
        "impi = wild@ims.example.com\n";

struct fixture {
        char dir[64];
        char path[128];
        int64_t now;
        struct wwsf_clock clock;
        struct store *store;
        struct lease_engine *engine;
        struct pool_config *cfg;
};

static void write_file(const char *path, const char *text) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
}

static int setup(void **state) {
        struct fixture *fx = calloc(1, sizeof *fx);
        strcpy(fx->dir, "/tmp/wwsf-unit-XXXXXX");
        assert_non_null(mkdtemp(fx->dir));
        char ini[128];
        snprintf(ini, sizeof ini, "%s/pools.ini", fx->dir);
        write_file(ini, config_text);
        const char *files[] = { ini };
        int r = pool_config_load(files, 1, &fx->cfg);
        for (size_t i = 0; fx->cfg && i < fx->cfg->n_errors; i++)
                fprintf(stderr, "%s\n", fx->cfg->errors[i]);
        assert_int_equal(r, 0);

        snprintf(fx->path, sizeof fx->path, "%s/lease.db", fx->dir);
        char err[256];
        struct store_options opt = { .sync = STORE_SYNC_OFF };
        assert_int_equal(store_sqlite_open(fx->path, &opt, &fx->store, err, sizeof err), 0);
        fx->now = 1000000;
        fx->clock = wwsf_clock_fixed(&fx->now);
        assert_int_equal(lease_engine_new(fx->store, &fx->clock, &fx->engine), 0);
        struct lease_import_result res;
        assert_int_equal(lease_import(fx->engine, fx->cfg, &res), 0);
        assert_int_equal(res.pools, 3);
        assert_int_equal(res.entries_added, 3);
        *state = fx;
        return 0;
}

static int teardown(void **state) {
        struct fixture *fx = *state;
        lease_engine_free(fx->engine);
        store_close(fx->store);
        pool_config_free(fx->cfg);
        char cmd[160];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
        assert_int_equal(system(cmd), 0);
        free(fx);
        return 0;
}

static struct lease acquire_ok(struct fixture *fx, const char *pool, const char *holder, unsigned flags,
                               enum lease_origin expect_origin) {
        struct lease l;
        enum lease_origin origin;
        int r = lease_acquire(fx->engine, pool, holder, "192.0.2.7", flags, &l, &origin);
        if (r < 0)
                fail_msg("acquire %s/%s: %s", pool, holder, lease_engine_error(fx->engine));
        assert_int_equal(origin, expect_origin);
        assert_string_equal(l.holder, holder);
        assert_int_equal(l.state, LEASE_STATE_LEASED);
        return l;
}

static void test_acquire_fields(void **state) {
        struct fixture *fx = *state;
        struct lease l = acquire_ok(fx, "range", "h1", 0, LEASE_ORIGIN_NEW);
        assert_string_equal(l.impu, "sip:+155500@ims.example.com");
        assert_string_equal(l.impi, "r10@ims.example.com");
        assert_string_equal(l.pool, "range");
        assert_string_equal(l.client_addr, "192.0.2.7");
        assert_int_equal(l.leased_at, fx->now);
        assert_int_equal(l.expires_at, fx->now + 100);
        assert_int_equal(l.quarantine_until, fx->now + 100 + 300);
        l = acquire_ok(fx, "range", "h2", 0, LEASE_ORIGIN_NEW);
        assert_string_equal(l.impu, "sip:+155501@ims.example.com");
        assert_string_equal(l.impi, "r11@ims.example.com");
}

static void test_affinity_live_and_quarantine(void **state) {
        struct fixture *fx = *state;
        struct lease first = acquire_ok(fx, "trio", "alice", 0, LEASE_ORIGIN_NEW);
        fx->now += 50;
        struct lease again = acquire_ok(fx, "trio", "alice", 0, LEASE_ORIGIN_LIVE);
        assert_string_equal(again.impu, first.impu);
        assert_int_equal(again.expires_at, fx->now + 100);

        /* Released: in quarantine, still alice's to take back. */
        assert_int_equal(lease_release(fx->engine, first.impu, "alice", NULL), 0);
        fx->now += 10;
        struct lease back = acquire_ok(fx, "trio", "alice", 0, LEASE_ORIGIN_QUARANTINE);
        assert_string_equal(back.impu, first.impu);

        /* Expired without release: also quarantine, also hers. */
        fx->now += 150;
        struct lease l;
        assert_int_equal(lease_lookup(fx->engine, first.impu, &l), 0);
        assert_int_equal(l.state, LEASE_STATE_QUARANTINE);
        back = acquire_ok(fx, "trio", "alice", 0, LEASE_ORIGIN_QUARANTINE);
        assert_string_equal(back.impu, first.impu);
}

static void test_quarantine_holds_against_others(void **state) {
        struct fixture *fx = *state;
        /* A range of 5: use it all, release one, then ask as someone else. */
        struct lease ls[5];
        char holder[16];
        for (int i = 0; i < 5; i++) {
                snprintf(holder, sizeof holder, "h%d", i);
                ls[i] = acquire_ok(fx, "range", holder, 0, LEASE_ORIGIN_NEW);
        }
        assert_int_equal(lease_release(fx->engine, ls[2].impu, "h2", NULL), 0);
        struct lease l;
        assert_int_equal(lease_acquire(fx->engine, "range", "other", NULL, 0, &l, NULL), -ENOSPC);
        assert_non_null(strstr(lease_engine_error(fx->engine), "exhausted"));
        assert_int_equal(lease_engine_retry_after(fx->engine), 300);

        fx->now += 299;
        assert_int_equal(lease_acquire(fx->engine, "range", "other", NULL, 0, &l, NULL), -ENOSPC);
        assert_int_equal(lease_engine_retry_after(fx->engine), 1);
        fx->now += 1;
        l = acquire_ok(fx, "range", "other", 0, LEASE_ORIGIN_REUSED);
        assert_string_equal(l.impu, ls[2].impu);
}

static void test_longest_free_first(void **state) {
        struct fixture *fx = *state;
        struct lease a = acquire_ok(fx, "trio", "u1", 0, LEASE_ORIGIN_NEW);
        struct lease b = acquire_ok(fx, "trio", "u2", 0, LEASE_ORIGIN_NEW);
        struct lease c = acquire_ok(fx, "trio", "u3", 0, LEASE_ORIGIN_NEW);
        /* Release in the order b, c, a: b has been free longest. */
        assert_int_equal(lease_release(fx->engine, b.impu, "u2", NULL), 0);
        fx->now += 10;
        assert_int_equal(lease_release(fx->engine, c.impu, "u3", NULL), 0);
        fx->now += 10;
        assert_int_equal(lease_release(fx->engine, a.impu, "u1", NULL), 0);
        fx->now += 1000;
        assert_string_equal(acquire_ok(fx, "trio", "v1", 0, LEASE_ORIGIN_REUSED).impu, b.impu);
        assert_string_equal(acquire_ok(fx, "trio", "v2", 0, LEASE_ORIGIN_REUSED).impu, c.impu);
        assert_string_equal(acquire_ok(fx, "trio", "v3", 0, LEASE_ORIGIN_REUSED).impu, a.impu);
}

static void test_never_used_before_reused(void **state) {
        struct fixture *fx = *state;
        struct lease first = acquire_ok(fx, "range", "u1", 0, LEASE_ORIGIN_NEW);
        assert_int_equal(lease_release(fx->engine, first.impu, "u1", NULL), 0);
        fx->now += 1000;
        /* The released entry is free, but never-used ones have been free longer. */
        struct lease l = acquire_ok(fx, "range", "u2", 0, LEASE_ORIGIN_NEW);
        assert_string_not_equal(l.impu, first.impu);
}

static void test_holder_maximum(void **state) {
        struct fixture *fx = *state;
        struct lease one = acquire_ok(fx, "trio", "bob", 0, LEASE_ORIGIN_NEW);
        struct lease two = acquire_ok(fx, "trio", "bob", LEASE_ACQUIRE_ADDITIONAL, LEASE_ORIGIN_NEW);
        assert_string_not_equal(one.impu, two.impu);
        struct lease l;
        assert_int_equal(lease_acquire(fx->engine, "trio", "bob", NULL, LEASE_ACQUIRE_ADDITIONAL, &l, NULL), -EDQUOT);
        assert_non_null(strstr(lease_engine_error(fx->engine), "max_per_holder"));
        /* Without --additional bob simply gets a live lease back. */
        acquire_ok(fx, "trio", "bob", 0, LEASE_ORIGIN_LIVE);
        /* The range pool allows one: --additional is refused there. */
        acquire_ok(fx, "range", "bob", 0, LEASE_ORIGIN_NEW);
        assert_int_equal(lease_acquire(fx->engine, "range", "bob", NULL, LEASE_ACQUIRE_ADDITIONAL, &l, NULL), -EDQUOT);
}

static void test_exhaustion_and_unknown_pool(void **state) {
        struct fixture *fx = *state;
        acquire_ok(fx, "trio", "x1", 0, LEASE_ORIGIN_NEW);
        acquire_ok(fx, "trio", "x2", 0, LEASE_ORIGIN_NEW);
        acquire_ok(fx, "trio", "x3", 0, LEASE_ORIGIN_NEW);
        struct lease l;
        assert_int_equal(lease_acquire(fx->engine, "trio", "x4", NULL, 0, &l, NULL), -ENOSPC);
        assert_non_null(strstr(lease_engine_error(fx->engine), "exhausted"));
        assert_int_equal(lease_acquire(fx->engine, "nope", "x4", NULL, 0, &l, NULL), -ENOENT);
        assert_non_null(strstr(lease_engine_error(fx->engine), "unknown pool"));
        /* After the lease and the hold, the pool gives again. */
        fx->now += 100 + 300;
        acquire_ok(fx, "trio", "x4", 0, LEASE_ORIGIN_REUSED);
}

static int count_leased(const struct lease *l, void *userdata) {
        int *n = userdata;
        *n += l->state == LEASE_STATE_LEASED;
        return 0;
}

/* What an anonymous admission asks for: the pool's kind is checked in the
 * same transaction as the grant. */
static void test_anonymous_only(void **state) {
        struct fixture *fx = *state;
        struct lease l;
        assert_int_equal(lease_acquire(fx->engine, "trio", "anon", NULL, LEASE_ACQUIRE_ANONYMOUS_ONLY, &l, NULL),
                         -EACCES);
        assert_string_equal(lease_engine_error(fx->engine), "pool 'trio' is not an anonymous pool");
        int leased = 0;
        assert_int_equal(lease_list(fx->engine, "trio", count_leased, &leased), 0);
        assert_int_equal(leased, 0);
        assert_int_equal(lease_acquire(fx->engine, "nope", "anon", NULL, LEASE_ACQUIRE_ANONYMOUS_ONLY, &l, NULL),
                         -ENOENT);
        assert_non_null(strstr(lease_engine_error(fx->engine), "unknown pool"));

        acquire_ok(fx, "range", "anon", LEASE_ACQUIRE_ANONYMOUS_ONLY, LEASE_ORIGIN_NEW);
        acquire_ok(fx, "range", "anon", LEASE_ACQUIRE_ANONYMOUS_ONLY, LEASE_ORIGIN_LIVE);
        acquire_ok(fx, "wild", "anon", LEASE_ACQUIRE_ANONYMOUS_ONLY | LEASE_ACQUIRE_ADDITIONAL, LEASE_ORIGIN_NEW);
        /* Without the flag the kind does not matter. */
        acquire_ok(fx, "trio", "anon", 0, LEASE_ORIGIN_NEW);
}

static void test_renew_release_mismatch(void **state) {
        struct fixture *fx = *state;
        struct lease l = acquire_ok(fx, "trio", "carol", 0, LEASE_ORIGIN_NEW);
        fx->now += 60;
        struct lease r;
        assert_int_equal(lease_renew(fx->engine, l.impu, "carol", &r), 0);
        assert_int_equal(r.expires_at, fx->now + 100);
        assert_int_equal(lease_renew(fx->engine, l.impu, "mallory", &r), -EPERM);
        assert_non_null(strstr(lease_engine_error(fx->engine), "holder mismatch"));
        assert_int_equal(lease_release(fx->engine, l.impu, "mallory", &r), -EPERM);
        assert_int_equal(lease_release(fx->engine, l.impu, "carol", &r), 0);
        assert_int_equal(r.state, LEASE_STATE_QUARANTINE);
        assert_int_equal(r.quarantine_until, fx->now + 300);
        assert_int_equal(lease_release(fx->engine, l.impu, "carol", &r), -ESTALE);
        assert_int_equal(lease_renew(fx->engine, "sip:zz@ims.example.com", "carol", &r), -ENOENT);
        assert_int_equal(lease_renew(fx->engine, "not-a-uri", "carol", &r), -EINVAL);
}

static void test_revoke(void **state) {
        struct fixture *fx = *state;
        struct lease l = acquire_ok(fx, "trio", "dave", 0, LEASE_ORIGIN_NEW);
        struct lease r;
        assert_int_equal(lease_revoke(fx->engine, l.impu, &r), 0);
        assert_int_equal(r.state, LEASE_STATE_QUARANTINE);
        assert_string_equal(r.holder, "");
        /* No affinity after a revoke: dave gets another IMPU... */
        struct lease next = acquire_ok(fx, "trio", "dave", 0, LEASE_ORIGIN_NEW);
        assert_string_not_equal(next.impu, l.impu);
        /* ...and nobody gets the revoked one during the hold. */
        acquire_ok(fx, "trio", "erin", 0, LEASE_ORIGIN_NEW);
        assert_int_equal(lease_acquire(fx->engine, "trio", "frank", NULL, 0, &r, NULL), -ENOSPC);
        fx->now += 300;
        assert_string_equal(acquire_ok(fx, "trio", "frank", 0, LEASE_ORIGIN_REUSED).impu, l.impu);
        assert_int_equal(lease_revoke(fx->engine, "sip:a-never@ims.example.com", &r), -ENOENT);
}

struct history_capture {
        int n;
        struct store_history h[8];
};

static int capture_history(const struct store_history *h, void *userdata) {
        struct history_capture *c = userdata;
        if (c->n < 8)
                c->h[c->n++] = *h;
        return 0;
}

static void test_reclaim_and_audit(void **state) {
        struct fixture *fx = *state;
        int64_t t0 = fx->now;
        struct lease first = acquire_ok(fx, "range", "grace", 0, LEASE_ORIGIN_NEW);
        for (int i = 0; i < 4; i++) {
                char h[8];
                snprintf(h, sizeof h, "f%d", i);
                acquire_ok(fx, "range", h, 0, LEASE_ORIGIN_NEW);
        }
        /* Everything expires; reclaim in batches of 2. */
        fx->now += 100;
        struct lease_reclaim_result res;
        assert_int_equal(lease_reclaim_batch(fx->engine, 2, 250, &res), 0);
        assert_int_equal(res.reclaimed, 2);
        assert_true(res.more);
        int total = res.reclaimed;
        while (res.more) {
                assert_int_equal(lease_reclaim_batch(fx->engine, 2, 250, &res), 0);
                total += res.reclaimed;
        }
        assert_int_equal(total, 5);
        assert_int_equal(lease_reclaim_batch(fx->engine, 2, 250, &res), 0);
        assert_int_equal(res.reclaimed, 0);
        assert_false(res.more);

        /* After the hold, a second holder gets grace's IMPU. */
        fx->now += 300;
        struct lease second = acquire_ok(fx, "range", "heidi", 0, LEASE_ORIGIN_REUSED);
        assert_string_equal(second.impu, first.impu);
        int64_t t1 = fx->now;

        struct history_capture c = { 0 };
        assert_int_equal(lease_audit(fx->engine, first.impu, t0 + 50, capture_history, &c), 0);
        assert_int_equal(c.n, 1);
        assert_string_equal(c.h[0].holder, "grace");
        assert_string_equal(c.h[0].client_addr, "192.0.2.7");
        assert_int_equal(c.h[0].started_at, t0);
        assert_int_equal(c.h[0].ended_at, t0 + 100);
        assert_string_equal(c.h[0].end_reason, "expired");

        memset(&c, 0, sizeof c);
        assert_int_equal(lease_audit(fx->engine, first.impu, t1 + 10, capture_history, &c), 0);
        assert_int_equal(c.n, 1);
        assert_string_equal(c.h[0].holder, "heidi");
        assert_true(c.h[0].open);

        /* In the quarantine gap nobody held it. */
        memset(&c, 0, sizeof c);
        assert_int_equal(lease_audit(fx->engine, first.impu, t0 + 200, capture_history, &c), 0);
        assert_int_equal(c.n, 0);

        memset(&c, 0, sizeof c);
        assert_int_equal(lease_audit(fx->engine, first.impu, -1, capture_history, &c), 0);
        assert_int_equal(c.n, 2);
        assert_string_equal(c.h[0].holder, "heidi");
        assert_string_equal(c.h[1].holder, "grace");
}

static void test_expired_unreclaimed_is_reused_and_audited(void **state) {
        struct fixture *fx = *state;
        int64_t t0 = fx->now;
        struct lease a = acquire_ok(fx, "trio", "p1", 0, LEASE_ORIGIN_NEW);
        acquire_ok(fx, "trio", "p2", 0, LEASE_ORIGIN_NEW);
        acquire_ok(fx, "trio", "p3", 0, LEASE_ORIGIN_NEW);
        /* No reclaim ran; the hold after expiry passes. */
        fx->now += 100 + 300;
        struct lease b = acquire_ok(fx, "trio", "q1", 0, LEASE_ORIGIN_REUSED);
        assert_string_equal(b.impu, a.impu);
        struct history_capture c = { 0 };
        assert_int_equal(lease_audit(fx->engine, a.impu, -1, capture_history, &c), 0);
        assert_int_equal(c.n, 2);
        assert_string_equal(c.h[1].holder, "p1");
        assert_false(c.h[1].open);
        assert_int_equal(c.h[1].ended_at, t0 + 100);
        assert_string_equal(c.h[1].end_reason, "expired");
}

static void test_wildcard_pool(void **state) {
        struct fixture *fx = *state;
        char seen[4][STORE_IDENTITY_MAX];
        for (int i = 0; i < 4; i++) {
                char h[8];
                snprintf(h, sizeof h, "w%d", i);
                struct lease l = acquire_ok(fx, "wild", h, 0, LEASE_ORIGIN_NEW);
                assert_string_equal(l.impi, "wild@ims.example.com");
                assert_int_equal(strncmp(l.impu, "sip:web-", 8), 0);
                assert_int_equal(strlen(l.impu), strlen("sip:web-@ims.example.com") + 12);
                assert_null(strchr(l.impu, '!'));
                for (int j = 0; j < i; j++)
                        assert_string_not_equal(seen[j], l.impu);
                strcpy(seen[i], l.impu);
        }
        struct lease l;
        assert_int_equal(lease_acquire(fx->engine, "wild", "w9", NULL, 0, &l, NULL), -ENOSPC);
}

static void test_lookup_unmaterialised(void **state) {
        struct fixture *fx = *state;
        struct lease l;
        assert_int_equal(lease_lookup(fx->engine, "sip:+155503@ims.example.com", &l), 0);
        assert_false(l.materialised);
        assert_int_equal(l.state, LEASE_STATE_FREE);
        assert_string_equal(l.impi, "r13@ims.example.com");
        assert_string_equal(l.pool, "range");
        assert_int_equal(lease_lookup(fx->engine, "sip:+155505@ims.example.com", &l), -ENOENT);
        assert_int_equal(lease_lookup(fx->engine, "sip:+15550@ims.example.com", &l), -ENOENT);
}

static void test_bad_arguments(void **state) {
        struct fixture *fx = *state;
        struct lease l;
        char long_holder[300];
        memset(long_holder, 'x', sizeof long_holder - 1);
        long_holder[sizeof long_holder - 1] = '\0';
        assert_int_equal(lease_acquire(fx->engine, "trio", "", NULL, 0, &l, NULL), -EINVAL);
        assert_int_equal(lease_acquire(fx->engine, "trio", long_holder, NULL, 0, &l, NULL), -EINVAL);
        assert_int_equal(lease_acquire(fx->engine, "trio", "ctl\x01", NULL, 0, &l, NULL), -EINVAL);
        assert_int_equal(lease_acquire(fx->engine, "trio", "ok", "not-an-ip", 0, &l, NULL), -EINVAL);
        assert_int_equal(lease_acquire(fx->engine, "trio", "ok", "2001:db8::1", 0, &l, NULL), 0);
}

static void test_reimport_list_changes(void **state) {
        struct fixture *fx = *state;
        struct lease b = acquire_ok(fx, "trio", "keeper", 0, LEASE_ORIGIN_NEW);
        assert_string_equal(b.impu, "sip:a@ims.example.com");
        /* Drop a, add d: a is retired (its lease runs on), d joins. */
        char ini[128];
        snprintf(ini, sizeof ini, "%s/pools2.ini", fx->dir);
        char *text = strdup(config_text);
        char *p = strstr(text, "entry = sip:a@ims.example.com a@ims.example.com");
        assert_non_null(p);
        memcpy(p, "entry = sip:d@ims.example.com d@ims.example.com", 47);
        write_file(ini, text);
        free(text);
        const char *files[] = { ini };
        struct pool_config *cfg2;
        assert_int_equal(pool_config_load(files, 1, &cfg2), 0);
        struct lease_import_result res;
        assert_int_equal(lease_import(fx->engine, cfg2, &res), 0);
        pool_config_free(cfg2);
        assert_int_equal(res.entries_added, 1);
        assert_int_equal(res.entries_retired, 1);

        struct lease l;
        assert_int_equal(lease_lookup(fx->engine, "sip:a@ims.example.com", &l), 0);
        assert_int_equal(l.state, LEASE_STATE_LEASED);
        assert_int_equal(lease_release(fx->engine, "sip:a@ims.example.com", "keeper", &l), 0);
        assert_int_equal(l.state, LEASE_STATE_RETIRED);
        /* Three entries remain: b, c, d; a is never handed out again. */
        fx->now += 10000;
        for (int i = 0; i < 3; i++) {
                char h[8];
                snprintf(h, sizeof h, "n%d", i);
                struct lease got = acquire_ok(fx, "trio", h, 0, LEASE_ORIGIN_NEW);
                assert_string_not_equal(got.impu, "sip:a@ims.example.com");
        }
        assert_int_equal(lease_acquire(fx->engine, "trio", "n4", NULL, 0, &l, NULL), -ENOSPC);
}

/* Imports the test config with the range pool cut to `last` + 1 entries. */
static void reimport_range(struct fixture *fx, char last, struct lease_import_result *res) {
        char ini[128];
        snprintf(ini, sizeof ini, "%s/pools-range.ini", fx->dir);
        char *text = strdup(config_text);
        strstr(text, "{00..04}")[6] = last;
        strstr(text, "r{10..14}")[7] = last;
        write_file(ini, text);
        free(text);
        const char *files[] = { ini };
        struct pool_config *cfg2;
        assert_int_equal(pool_config_load(files, 1, &cfg2), 0);
        assert_int_equal(lease_import(fx->engine, cfg2, res), 0);
        pool_config_free(cfg2);
}

static void test_reimport_range_shrink_grow(void **state) {
        struct fixture *fx = *state;
        struct lease ls[5];
        for (int i = 0; i < 5; i++) {
                char h[8];
                snprintf(h, sizeof h, "g%d", i);
                ls[i] = acquire_ok(fx, "range", h, 0, LEASE_ORIGIN_NEW);
        }
        /* Shrink to three: the last two are retired, their leases run on. */
        struct lease_import_result res;
        reimport_range(fx, '2', &res);
        assert_int_equal(res.entries_retired, 2);
        struct lease l;
        assert_int_equal(lease_lookup(fx->engine, ls[4].impu, &l), 0);
        assert_int_equal(l.state, LEASE_STATE_LEASED);
        fx->now += 100 + 300;
        assert_int_equal(lease_lookup(fx->engine, ls[4].impu, &l), 0);
        assert_int_equal(l.state, LEASE_STATE_RETIRED);
        for (int i = 0; i < 3; i++) {
                char h[8];
                snprintf(h, sizeof h, "k%d", i);
                struct lease got = acquire_ok(fx, "range", h, 0, LEASE_ORIGIN_REUSED);
                assert_string_not_equal(got.impu, ls[3].impu);
                assert_string_not_equal(got.impu, ls[4].impu);
        }
        assert_int_equal(lease_acquire(fx->engine, "range", "k3", NULL, 0, &l, NULL), -ENOSPC);
        /* Grow back: the two come back into use. */
        reimport_range(fx, '4', &res);
        assert_int_equal(res.entries_retired, 0);
        struct lease a = acquire_ok(fx, "range", "k3", 0, LEASE_ORIGIN_REUSED);
        struct lease b = acquire_ok(fx, "range", "k4", 0, LEASE_ORIGIN_REUSED);
        assert_true(strcmp(a.impu, ls[3].impu) == 0 || strcmp(a.impu, ls[4].impu) == 0);
        assert_true(strcmp(b.impu, ls[3].impu) == 0 || strcmp(b.impu, ls[4].impu) == 0);
        assert_int_equal(lease_acquire(fx->engine, "range", "k5", NULL, 0, &l, NULL), -ENOSPC);
}

static void test_template_change_refused(void **state) {
        struct fixture *fx = *state;
        acquire_ok(fx, "range", "t1", 0, LEASE_ORIGIN_NEW);
        char ini[128];
        snprintf(ini, sizeof ini, "%s/pools3.ini", fx->dir);
        char *text = strdup(config_text);
        char *p = strstr(text, "sip:+1555{00..04}");
        memcpy(p, "sip:+1666{00..04}", 17);
        p = strstr(text, "r{10..14}");
        memcpy(p, "s{10..14}", 9);
        write_file(ini, text);
        free(text);
        const char *files[] = { ini };
        struct pool_config *cfg2;
        assert_int_equal(pool_config_load(files, 1, &cfg2), 0);
        assert_int_equal(lease_import(fx->engine, cfg2, NULL), -EINVAL);
        assert_non_null(strstr(lease_engine_error(fx->engine), "template changed"));
        pool_config_free(cfg2);
        /* Nothing of the failed import stuck. */
        struct lease l;
        assert_int_equal(lease_lookup(fx->engine, "sip:+155501@ims.example.com", &l), 0);
}

static void test_schema_newer_refused(void **state) {
        struct fixture *fx = *state;
        char path[160], err[512];
        snprintf(path, sizeof path, "%s/newer.db", fx->dir);
        struct store *s;
        assert_int_equal(store_sqlite_open(path, NULL, &s, err, sizeof err), 0);
        store_close(s);
        sqlite3 *db;
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
        assert_int_equal(store_sqlite_open(path, NULL, &s, err, sizeof err), -EPROTO);
        assert_non_null(strstr(err, "newer"));
}

static void test_batch(void **state) {
        struct fixture *fx = *state;
        struct lease l;
        /* A batch that commits: every lease in it is there, a refused one
         * inside it changes nothing else. */
        assert_int_equal(lease_batch_begin(fx->engine), 0);
        assert_int_equal(lease_batch_begin(fx->engine), -EINVAL);
        acquire_ok(fx, "range", "b1", 0, LEASE_ORIGIN_NEW);
        assert_int_equal(lease_acquire(fx->engine, "nope", "b2", NULL, 0, &l, NULL), -ENOENT);
        acquire_ok(fx, "range", "b3", 0, LEASE_ORIGIN_NEW);
        /* Another connection sees none of it before the commit. */
        char err[256];
        struct store *other;
        assert_int_equal(store_sqlite_open(fx->path, NULL, &other, err, sizeof err), 0);
        struct lease_engine *oe;
        assert_int_equal(lease_engine_new(other, &fx->clock, &oe), 0);
        assert_int_equal(lease_lookup(oe, "sip:+155500@ims.example.com", &l), 0);
        assert_false(l.materialised);
        assert_int_equal(lease_batch_commit(fx->engine), 0);
        assert_int_equal(lease_lookup(oe, "sip:+155500@ims.example.com", &l), 0);
        assert_string_equal(l.holder, "b1");
        assert_int_equal(lease_lookup(oe, "sip:+155501@ims.example.com", &l), 0);
        assert_string_equal(l.holder, "b3");

        /* A batch rolled back leaves nothing, not even its pool cursor. */
        assert_int_equal(lease_batch_begin(fx->engine), 0);
        acquire_ok(fx, "range", "b4", 0, LEASE_ORIGIN_NEW);
        lease_batch_rollback(fx->engine);
        assert_int_equal(lease_lookup(oe, "sip:+155502@ims.example.com", &l), 0);
        assert_false(l.materialised);
        assert_string_equal(acquire_ok(fx, "range", "b5", 0, LEASE_ORIGIN_NEW).impu, "sip:+155502@ims.example.com");
        assert_int_equal(lease_batch_commit(fx->engine), -EINVAL);
        lease_engine_free(oe);
        store_close(other);
}

/* lease_pools() (the counts kept with each pool, sql/0004-pool-counts.sql)
 * agrees with a scan of every entry's state (lease_list()) on leased,
 * quarantine and free, through random acquisitions, renewals, releases,
 * revocations, reclaims (which move the kept counts forward) and clock moves
 * forward and back; and the store's check finds the kept counts true. */
struct state_counts {
        int64_t leased[3], quarantine[3], free[3];
        int n;
};

static const char *const count_pools[] = { "range", "trio", "wild" };      /* pool_list()'s name order */

static int collect_counts(const struct lease_pool_stats *s, void *userdata) {
        struct state_counts *c = userdata;
        assert_true(c->n < 3);
        assert_string_equal(s->pool.def.name, count_pools[c->n]);
        c->leased[c->n] = s->leased;
        c->quarantine[c->n] = s->quarantine;
        c->free[c->n] = s->free;
        c->n++;
        return 0;
}

static int scan_counts(const struct lease *l, void *userdata) {
        struct state_counts *c = userdata;
        int i = 0;
        while (i < 3 && strcmp(count_pools[i], l->pool) != 0)
                i++;
        assert_true(i < 3);
        if (l->state == LEASE_STATE_LEASED)
                c->leased[i]++;
        else if (l->state == LEASE_STATE_QUARANTINE)
                c->quarantine[i]++;
        return 0;
}

static void test_kept_counts_agree(void **state) {
        struct fixture *fx = *state;
        struct lease held[64];
        int n_held = 0;
        unsigned seed = 20261207;
        int moves_back = 0;
        for (int step = 0; step < 500; step++) {
                int op = rand_r(&seed) % 7;
                if (op <= 1 && n_held < 64) {
                        char holder[32];
                        snprintf(holder, sizeof holder, "h%d", rand_r(&seed) % 12);
                        struct lease l;
                        if (lease_acquire(fx->engine, count_pools[rand_r(&seed) % 3], holder, NULL, 0, &l, NULL) == 0)
                                held[n_held++] = l;
                } else if (op == 2 && n_held) {
                        struct lease *l = &held[rand_r(&seed) % n_held];
                        (void) lease_renew(fx->engine, l->impu, l->holder, NULL);
                } else if (op == 3 && n_held) {
                        int k = rand_r(&seed) % n_held;
                        (void) lease_release(fx->engine, held[k].impu, held[k].holder, NULL);
                        held[k] = held[--n_held];
                } else if (op == 4 && n_held) {
                        int k = rand_r(&seed) % n_held;
                        (void) lease_revoke(fx->engine, held[k].impu, NULL);
                        held[k] = held[--n_held];
                } else if (op == 5) {
                        /* Back in time, as `wwsfctl --now` may go: the counts
                         * read then add back what ended in between. */
                        int64_t back = rand_r(&seed) % 600;
                        fx->now -= back;
                        moves_back += back > 0;
                } else {
                        fx->now += rand_r(&seed) % 900;
                        if (rand_r(&seed) % 2) {
                                struct lease_reclaim_result rr;
                                assert_int_equal(lease_reclaim_batch(fx->engine, 100, 1000, &rr) < 0, 0);
                        }
                }
                struct state_counts kept = { 0 }, scan = { 0 };
                assert_int_equal(lease_pools(fx->engine, NULL, collect_counts, &kept) < 0, 0);
                assert_int_equal(lease_list(fx->engine, NULL, scan_counts, &scan) < 0, 0);
                assert_int_equal(kept.n, 3);
                for (int i = 0; i < 3; i++) {
                        assert_int_equal(kept.leased[i], scan.leased[i]);
                        assert_int_equal(kept.quarantine[i], scan.quarantine[i]);
                }
                if (step % 50 == 0) {
                        char verdict[512];
                        assert_int_equal(fx->store->ops->check(fx->store, verdict, sizeof verdict), 0);
                        assert_string_equal(verdict, "ok");
                }
        }
        assert_true(moves_back > 10);
}

static void assert_counts_agree(struct fixture *fx) {
        struct state_counts kept = { 0 }, scan = { 0 };
        assert_int_equal(lease_pools(fx->engine, NULL, collect_counts, &kept) < 0, 0);
        assert_int_equal(lease_list(fx->engine, NULL, scan_counts, &scan) < 0, 0);
        for (int i = 0; i < 3; i++) {
                assert_int_equal(kept.leased[i], scan.leased[i]);
                assert_int_equal(kept.quarantine[i], scan.quarantine[i]);
        }
        char verdict[512];
        assert_int_equal(fx->store->ops->check(fx->store, verdict, sizeof verdict), 0);
        assert_string_equal(verdict, "ok");
}

/* A lease released, then the clock back before its end (an NTP step, or
 * wwsfctl --now): by the clock the holder's IMPU is live again, with its
 * lease closed. Renewing it, or acquiring again, opens a new lease (a
 * history row of its own) rather than extending a closed one, which the
 * kept counts would never take out once it ends. */
static void test_renew_after_the_clock_went_back(void **state) {
        struct fixture *fx = *state;
        int64_t t0 = fx->now;
        for (int way = 0; way < 2; way++) {
                fx->now = t0 + way * 10000;
                struct lease l;
                assert_int_equal(lease_acquire(fx->engine, "trio", "back", NULL, 0, &l, NULL), 0);
                fx->now += 60;
                assert_int_equal(lease_release(fx->engine, l.impu, "back", NULL), 0);
                fx->now -= 30;          /* before the release: live by the clock */
                struct lease again;
                enum lease_origin origin;
                if (way == 0)
                        assert_int_equal(lease_renew(fx->engine, l.impu, "back", &again), 0);
                else {
                        assert_int_equal(lease_acquire(fx->engine, "trio", "back", NULL, 0, &again, &origin), 0);
                        assert_int_equal(origin, LEASE_ORIGIN_LIVE);
                }
                assert_string_equal(again.impu, l.impu);
                assert_counts_agree(fx);
                fx->now += 100 + 300 + 1;       /* past the new lease and its quarantine */
                struct lease_reclaim_result rr;
                assert_int_equal(lease_reclaim_batch(fx->engine, 100, 1000, &rr), 0);
                assert_int_equal(rr.reclaimed, 1);
                assert_counts_agree(fx);
        }
}

/* The store's check finds kept counts that a write behind the triggers'
 * back made wrong. */
static void test_check_finds_wrong_counts(void **state) {
        struct fixture *fx = *state;
        char verdict[512];
        assert_int_equal(fx->store->ops->check(fx->store, verdict, sizeof verdict), 0);
        assert_string_equal(verdict, "ok");
        sqlite3 *db;
        assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "UPDATE pool SET n_expires_after = n_expires_after + 1 WHERE name = 'trio'",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
        sqlite3_close(db);
        assert_int_equal(fx->store->ops->check(fx->store, verdict, sizeof verdict), 0);
        assert_non_null(strstr(verdict, "pool trio: counts"));
}

static void test_query_plans(void **state) {
        struct fixture *fx = *state;
        char err[1024];
        int r = store_sqlite_check_plans(fx->store, err, sizeof err);
        if (r < 0)
                fail_msg("%s", err);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_acquire_fields, setup, teardown),
                cmocka_unit_test_setup_teardown(test_affinity_live_and_quarantine, setup, teardown),
                cmocka_unit_test_setup_teardown(test_quarantine_holds_against_others, setup, teardown),
                cmocka_unit_test_setup_teardown(test_longest_free_first, setup, teardown),
                cmocka_unit_test_setup_teardown(test_never_used_before_reused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_holder_maximum, setup, teardown),
                cmocka_unit_test_setup_teardown(test_exhaustion_and_unknown_pool, setup, teardown),
                cmocka_unit_test_setup_teardown(test_anonymous_only, setup, teardown),
                cmocka_unit_test_setup_teardown(test_renew_release_mismatch, setup, teardown),
                cmocka_unit_test_setup_teardown(test_revoke, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reclaim_and_audit, setup, teardown),
                cmocka_unit_test_setup_teardown(test_expired_unreclaimed_is_reused_and_audited, setup, teardown),
                cmocka_unit_test_setup_teardown(test_wildcard_pool, setup, teardown),
                cmocka_unit_test_setup_teardown(test_lookup_unmaterialised, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reimport_list_changes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reimport_range_shrink_grow, setup, teardown),
                cmocka_unit_test_setup_teardown(test_template_change_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_schema_newer_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_query_plans, setup, teardown),
                cmocka_unit_test_setup_teardown(test_kept_counts_agree, setup, teardown),
                cmocka_unit_test_setup_teardown(test_check_finds_wrong_counts, setup, teardown),
                cmocka_unit_test_setup_teardown(test_renew_after_the_clock_went_back, setup, teardown),
                cmocka_unit_test_setup_teardown(test_batch, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
