/* The raw limits that the wwsfd benchmark (bench_wwsfd.py) holds wwsfd's
 * rates against, each measured in C without wwsfd in the way:
 *
 *   wwsfd_limits sign KEYS_DIR SECONDS THREADS
 *       tokens_sign() of an anonymous token's claims with the active key of
 *       KEYS_DIR (ES256 in the benchmark), THREADS threads at once.
 *   wwsfd_limits lease DIR SECONDS full|normal CONNECTIONS [BATCH]
 *       lease_acquire() with a new holder each time in a range pool of 10^6
 *       (the never-used-entry path, as an anonymous admission takes it),
 *       store opened as wwsfd opens it (WAL, manual checkpoints, the given
 *       synchronous level), CONNECTIONS threads with a connection each.
 *       BATCH > 1: that many acquisitions per transaction, between
 *       lease_batch_begin() and lease_batch_commit(), as wwsfd's workers
 *       group them (one flush for the batch); default 1, a commit each.
 *   wwsfd_limits ldap-bind URI DN PASSWORD-FILE SECONDS THREADS
 *       simple binds as DN, one after the other on one connection per thread.
 *   wwsfd_limits ldap-login URI SERVICE-DN SERVICE-PASSWORD-FILE BASE-DN USER
 *                 PASSWORD-FILE SECONDS THREADS
 *       what wwsfd's LDAP pool does per login, on two connections per
 *       thread as it has: search (uid=USER) on the one bound as the service
 *       account, bind as the user's DN on the other.
 *
 * Each prints one line "limit: {json}" (what, ops, seconds, rate, threads)
 * for the script to read, and exits 1 (FAIL: on stderr) when an operation
 * does not succeed: a rate of failures is not a rate. Passwords are read from
 * files so that they are not on the command line. */
#include <errno.h>
#include <ldap.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "tokens/tokens.h"

#define THREADS_MAX 64

static _Atomic bool failed;

static void print_limit(const char *what, int64_t ops, double seconds, int threads) {
        printf("limit: {\"what\": \"%s\", \"ops\": %lld, \"seconds\": %.3f, \"rate\": %.1f, \"threads\": %d}\n", what,
               (long long) ops, seconds, seconds > 0 ? (double) ops / seconds : 0.0, threads);
        fflush(stdout);
}

static int positive(const char *s, const char *what) {
        char *end;
        long v = strtol(s, &end, 10);
        if (*end || v < 1 || v > 100000)
                bench_fail("%s: expected a positive number, got '%s'", what, s);
        return (int) v;
}

/* The first line of a file, without its newline; never freed (read once). */
static char *read_secret(const char *path) {
        FILE *f = fopen(path, "r");
        if (!f)
                bench_fail("%s: %s", path, strerror(errno));
        char buf[512];
        if (!fgets(buf, sizeof buf, f))
                buf[0] = '\0';
        fclose(f);
        buf[strcspn(buf, "\r\n")] = '\0';
        char *s = strdup(buf);
        if (!s)
                bench_fail("out of memory");
        return s;
}

struct worker {
        pthread_t thread;
        int index;
        uint64_t deadline_ns;
        uint64_t end_ns;        /* when it stopped */
        int64_t ops;
        void *ctx;
};

static double run_threads(struct worker *w, int n, double seconds, void *(*fn)(void *), void *ctx) {
        uint64_t t0 = wwsf_monotonic_ns();
        for (int i = 0; i < n; i++) {
                w[i] = (struct worker) { .index = i, .deadline_ns = t0 + (uint64_t) (seconds * 1e9), .ctx = ctx };
                if (pthread_create(&w[i].thread, NULL, fn, &w[i]) != 0)
                        bench_fail("pthread_create");
        }
        for (int i = 0; i < n; i++)
                pthread_join(w[i].thread, NULL);
        double elapsed = bench_seconds(wwsf_monotonic_ns() - t0);
        if (failed)
                exit(BENCH_EXIT_FAILURE);
        return elapsed;
}

static int64_t total_ops(const struct worker *w, int n) {
        int64_t s = 0;
        for (int i = 0; i < n; i++)
                s += w[i].ops;
        return s;
}

/* ---- sign ---- */

static void *sign_main(void *arg) {
        struct worker *w = arg;
        const struct token_keyring *k = w->ctx;
        char sub[64], impu[96], impi[96];
        int64_t now = (int64_t) time(NULL);
        do {
                snprintf(sub, sizeof sub, "anon-%02d%016llx", w->index, (unsigned long long) w->ops);
                snprintf(impu, sizeof impu, "sip:+1556%07lld@ims.example.com", (long long) (w->ops % 1000000));
                snprintf(impi, sizeof impi, "web%07lld@ims.example.com", (long long) (w->ops % 1000000));
                struct token_claims c = {
                        .iss = "https://localhost:8443",
                        .aud = "ims.example.com",
                        .sub = sub,
                        .impu = impu,
                        .impi = impi,
                        .wwsf = "localhost:8443",
                        .anon = true,
                        .iat = now,
                        .nbf = now,
                        .exp = now + 300,
                        .lease_exp = now + 900,
                };
                char *token = NULL, *jti = NULL, err[256];
                if (tokens_sign(k, &c, &token, &jti, err, sizeof err) < 0) {
                        fprintf(stderr, "FAIL: tokens_sign: %s\n", err);
                        failed = true;
                        return NULL;
                }
                free(token);
                free(jti);
                w->ops++;
        } while (wwsf_monotonic_ns() < w->deadline_ns);
        return NULL;
}

static int cmd_sign(int argc, char **argv) {
        if (argc != 5)
                bench_fail("usage: sign KEYS_DIR SECONDS THREADS");
        double seconds = positive(argv[3], "SECONDS");
        int n = positive(argv[4], "THREADS");
        if (n > THREADS_MAX)
                bench_fail("at most %d threads", THREADS_MAX);
        struct token_keyring *k = NULL;
        char err[512];
        if (tokens_keyring_load(argv[2], (int64_t) time(NULL), 360, &k, err, sizeof err) < 0)
                bench_fail("keyring %s: %s", argv[2], err);
        if (!tokens_keyring_can_sign(k))
                bench_fail("keyring %s: no active key", argv[2]);
        struct worker w[THREADS_MAX];
        double elapsed = run_threads(w, n, seconds, sign_main, k);
        print_limit("sign", total_ops(w, n), elapsed, n);
        tokens_keyring_free(k);
        return 0;
}

/* ---- lease ---- */

struct lease_ctx {
        const char *db;
        struct store_options opt;
        int batch;
};

static void *lease_main(void *arg) {
        struct worker *w = arg;
        struct lease_ctx *c = w->ctx;
        struct bench_lease b;
        bench_lease_open(&b, c->db, &c->opt, (int64_t) time(NULL));
        uint64_t n = (uint64_t) w->index << 40;
        do {
                if (c->batch > 1 && lease_batch_begin(b.engine) < 0)
                        bench_fail("lease_batch_begin: %s", lease_engine_error(b.engine));
                for (int i = 0; i < c->batch; i++)
                        if (bench_acquire(&b, "bench", n++) != LEASE_ORIGIN_NEW) {
                                fprintf(stderr, "FAIL: expected a never-used entry\n");
                                failed = true;
                                break;
                        }
                if (c->batch > 1 && lease_batch_commit(b.engine) < 0)
                        bench_fail("lease_batch_commit: %s", lease_engine_error(b.engine));
                if (failed)
                        break;
                w->ops += c->batch;
        } while (wwsf_monotonic_ns() < w->deadline_ns);
        w->end_ns = wwsf_monotonic_ns();
        bench_lease_close(&b);
        return NULL;
}

static int cmd_lease(int argc, char **argv) {
        if (argc != 6 && argc != 7)
                bench_fail("usage: lease DIR SECONDS full|normal CONNECTIONS [BATCH]");
        double seconds = positive(argv[3], "SECONDS");
        int n = positive(argv[5], "CONNECTIONS");
        if (n > THREADS_MAX)
                bench_fail("at most %d connections", THREADS_MAX);
        struct lease_ctx c = { .opt = { .manual_checkpoint = true }, .batch = argc == 7 ? positive(argv[6], "BATCH") : 1 };
        if (strcmp(argv[4], "full") == 0)
                c.opt.sync = STORE_SYNC_FULL;
        else if (strcmp(argv[4], "normal") == 0)
                c.opt.sync = STORE_SYNC_NORMAL;
        else
                bench_fail("expected full or normal, got %s", argv[4]);
        char ini[4096], db[4096], what[64];
        snprintf(ini, sizeof ini, "%s/limits-pool.ini", argv[2]);
        snprintf(db, sizeof db, "%s/limits-%s-%d.db", argv[2], argv[4], n);
        c.db = db;
        /* A new database each time: every acquisition takes a never-used entry. */
        for (const char *suffix = ""; suffix; suffix = !*suffix ? "-wal" : strcmp(suffix, "-wal") == 0 ? "-shm" : NULL) {
                char f[4200];
                snprintf(f, sizeof f, "%s%s", db, suffix);
                if (unlink(f) < 0 && errno != ENOENT)
                        bench_fail("cannot remove %s: %s", f, strerror(errno));
        }
        bench_write_range_pool(ini, 1000000);
        struct bench_lease b;
        bench_lease_open(&b, db, &c.opt, (int64_t) time(NULL));
        struct lease_import_result ir;
        bench_import(&b, ini, &ir);
        /* wwsfd's main thread checkpoints about once a second; so does this
         * one while the workers run (no checkpoint would let the WAL grow
         * without bound, which is not what wwsfd does either). */
        struct worker w[THREADS_MAX];
        uint64_t t0 = wwsf_monotonic_ns();
        for (int i = 0; i < n; i++) {
                w[i] = (struct worker) { .index = i, .deadline_ns = t0 + (uint64_t) (seconds * 1e9), .ctx = &c };
                if (pthread_create(&w[i].thread, NULL, lease_main, &w[i]) != 0)
                        bench_fail("pthread_create");
        }
        while (wwsf_monotonic_ns() + 1000000000u < t0 + (uint64_t) (seconds * 1e9)) {
                struct timespec ts = { 1, 0 };
                nanosleep(&ts, NULL);
                if (lease_checkpoint(b.engine) < 0)
                        bench_fail("checkpoint: %s", lease_engine_error(b.engine));
        }
        uint64_t end = t0;
        for (int i = 0; i < n; i++) {
                pthread_join(w[i].thread, NULL);
                if (w[i].end_ns > end)
                        end = w[i].end_ns;
        }
        /* Up to the last acquisition: a checkpoint after it is not theirs. */
        double elapsed = bench_seconds(end - t0);
        if (failed)
                return BENCH_EXIT_FAILURE;
        bench_lease_close(&b);
        snprintf(what, sizeof what, "lease-%s-batch-%d", argv[4], c.batch);
        print_limit(what, total_ops(w, n), elapsed, n);
        return 0;
}

/* ---- LDAP ---- */

struct ldap_ctx {
        const char *uri, *dn, *password;                /* ldap-bind: the DN; ldap-login: the service account */
        const char *base_dn, *user, *user_password;     /* ldap-login */
};

static LDAP *ldap_open(const char *uri) {
        LDAP *ld = NULL;
        int rc = ldap_initialize(&ld, uri);
        if (rc != LDAP_SUCCESS)
                bench_fail("ldap_initialize %s: %s", uri, ldap_err2string(rc));
        int version = LDAP_VERSION3;
        ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version);
        ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
        return ld;
}

static bool simple_bind(LDAP *ld, const char *dn, const char *password, const char *what) {
        struct berval cred = { strlen(password), (char *) password };
        int rc = ldap_sasl_bind_s(ld, dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
        if (rc != LDAP_SUCCESS) {
                fprintf(stderr, "FAIL: %s: bind as %s: %s\n", what, dn, ldap_err2string(rc));
                failed = true;
                return false;
        }
        return true;
}

static void *bind_main(void *arg) {
        struct worker *w = arg;
        const struct ldap_ctx *c = w->ctx;
        LDAP *ld = ldap_open(c->uri);
        do {
                if (!simple_bind(ld, c->dn, c->password, "ldap-bind"))
                        break;
                w->ops++;
        } while (wwsf_monotonic_ns() < w->deadline_ns);
        ldap_unbind_ext_s(ld, NULL, NULL);
        return NULL;
}

static void *login_main(void *arg) {
        struct worker *w = arg;
        const struct ldap_ctx *c = w->ctx;
        LDAP *ld = ldap_open(c->uri), *user_ld = ldap_open(c->uri);
        char filter[300];
        snprintf(filter, sizeof filter, "(uid=%s)", c->user);
        char *attrs[] = { "imsPublicIdentity", "imsPrivateIdentity", "memberOf", NULL };
        if (!simple_bind(ld, c->dn, c->password, "ldap-login"))
                goto out;
        do {
                LDAPMessage *res = NULL;
                struct timeval tv = { 10, 0 };
                int rc = ldap_search_ext_s(ld, c->base_dn, LDAP_SCOPE_SUBTREE, filter, attrs, 0, NULL, NULL, &tv, 2,
                                           &res);
                LDAPMessage *e = rc == LDAP_SUCCESS ? ldap_first_entry(ld, res) : NULL;
                char *dn = e ? ldap_get_dn(ld, e) : NULL;
                ldap_msgfree(res);
                if (!dn) {
                        fprintf(stderr, "FAIL: ldap-login: search %s under %s: %s\n", filter, c->base_dn,
                                rc == LDAP_SUCCESS ? "no entry" : ldap_err2string(rc));
                        failed = true;
                        break;
                }
                bool ok = simple_bind(user_ld, dn, c->user_password, "ldap-login");
                ldap_memfree(dn);
                if (!ok)
                        break;
                w->ops++;
        } while (wwsf_monotonic_ns() < w->deadline_ns);
out:
        ldap_unbind_ext_s(ld, NULL, NULL);
        ldap_unbind_ext_s(user_ld, NULL, NULL);
        return NULL;
}

static int cmd_ldap_bind(int argc, char **argv) {
        if (argc != 7)
                bench_fail("usage: ldap-bind URI DN PASSWORD-FILE SECONDS THREADS");
        struct ldap_ctx c = { .uri = argv[2], .dn = argv[3], .password = read_secret(argv[4]) };
        double seconds = positive(argv[5], "SECONDS");
        int n = positive(argv[6], "THREADS");
        if (n > THREADS_MAX)
                bench_fail("at most %d threads", THREADS_MAX);
        struct worker w[THREADS_MAX];
        double elapsed = run_threads(w, n, seconds, bind_main, &c);
        print_limit("ldap-bind", total_ops(w, n), elapsed, n);
        return 0;
}

static int cmd_ldap_login(int argc, char **argv) {
        if (argc != 10)
                bench_fail("usage: ldap-login URI SERVICE-DN SERVICE-PASSWORD-FILE BASE-DN USER PASSWORD-FILE SECONDS "
                           "THREADS");
        struct ldap_ctx c = { .uri = argv[2], .dn = argv[3], .password = read_secret(argv[4]),
                              .base_dn = argv[5], .user = argv[6], .user_password = read_secret(argv[7]) };
        double seconds = positive(argv[8], "SECONDS");
        int n = positive(argv[9], "THREADS");
        if (n > THREADS_MAX)
                bench_fail("at most %d threads", THREADS_MAX);
        struct worker w[THREADS_MAX];
        double elapsed = run_threads(w, n, seconds, login_main, &c);
        print_limit("ldap-login", total_ops(w, n), elapsed, n);
        return 0;
}

int main(int argc, char **argv) {
        if (argc >= 2 && strcmp(argv[1], "sign") == 0)
                return cmd_sign(argc, argv);
        if (argc >= 2 && strcmp(argv[1], "lease") == 0)
                return cmd_lease(argc, argv);
        if (argc >= 2 && strcmp(argv[1], "ldap-bind") == 0)
                return cmd_ldap_bind(argc, argv);
        if (argc >= 2 && strcmp(argv[1], "ldap-login") == 0)
                return cmd_ldap_login(argc, argv);
        fprintf(stderr, "usage: %s sign|lease|ldap-bind|ldap-login ... (see the comment at the top of the source)\n",
                argv[0]);
        return 2;
}
