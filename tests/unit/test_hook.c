/* The eligibility hook pool (src/wwsfd/hook.h) with real helper processes:
 * the shipped examples of pool-config/hooks/ and tests/unit/hooks/fake-hook,
 * which misbehaves on request. Waits are bounded by generous limits and
 * never assert that something was fast: machines are noisy. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/clock.h"
#include "wwsfd/hook.h"

#define PERSONAL_INFO HOOKS_DIR "/personal-info"
#define ADVERT_RECEIPT HOOKS_DIR "/advert-receipt"
#define FAKE_HOOK TEST_HOOKS_DIR "/fake-hook"

/* Generous: a helper is a Python process, maybe under valgrind's parent. */
#define WAIT_LIMIT_MS 10000
#define MAX_REQUESTS 64

struct collector;

struct outcome {
        struct collector *c;
        int calls;
        enum hook_status status;
        bool has_verdict;
        struct hook_verdict verdict;
        pthread_t thread;               /* where the callback ran */
};

struct collector {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        int done;
        struct outcome out[MAX_REQUESTS];
};

static struct collector *collector_new(void) {
        struct collector *c = calloc(1, sizeof *c);
        pthread_condattr_t attr;
        assert_non_null(c);
        pthread_mutex_init(&c->lock, NULL);
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&c->cond, &attr);
        pthread_condattr_destroy(&attr);
        for (int i = 0; i < MAX_REQUESTS; i++)
                c->out[i].c = c;
        return c;
}

static void collector_free(struct collector *c) {
        pthread_cond_destroy(&c->cond);
        pthread_mutex_destroy(&c->lock);
        free(c);
}

static void on_done(void *userdata, enum hook_status status, const struct hook_verdict *v) {
        struct outcome *o = userdata;
        struct collector *c = o->c;
        pthread_mutex_lock(&c->lock);
        o->calls++;
        o->status = status;
        o->has_verdict = v != NULL;
        if (v)
                o->verdict = *v;
        o->thread = pthread_self();
        c->done++;
        pthread_cond_broadcast(&c->cond);
        pthread_mutex_unlock(&c->lock);
}

/* True once n callbacks have run, false after WAIT_LIMIT_MS. */
static bool wait_done(struct collector *c, int n) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += WAIT_LIMIT_MS / 1000;
        pthread_mutex_lock(&c->lock);
        while (c->done < n)
                if (pthread_cond_timedwait(&c->cond, &c->lock, &until) == ETIMEDOUT)
                        break;
        bool ok = c->done >= n;
        pthread_mutex_unlock(&c->lock);
        return ok;
}

static int done_count(struct collector *c) {
        pthread_mutex_lock(&c->lock);
        int n = c->done;
        pthread_mutex_unlock(&c->lock);
        return n;
}

/* Asks with the evidence given as JSON text (NULL: no evidence). */
static void ask(struct hook_pool *p, struct collector *c, int i, const char *evidence) {
        json_t *ev = NULL;
        if (evidence) {
                json_error_t error;
                ev = json_loads(evidence, 0, &error);
                assert_non_null(ev);
        }
        hook_pool_ask(p, "192.0.2.1", "test/1.0", ev, on_done, &c->out[i]);
        json_decref(ev);
}

static struct hook_pool *pool_new(const char *const *argv, int helpers, int timeout_ms, int queue_max) {
        struct hook_options opt = { .argv = argv, .helpers = helpers, .timeout_ms = timeout_ms,
                                    .queue_max = queue_max };
        struct hook_pool *p = NULL;
        assert_int_equal(hook_pool_new(&opt, &p), 0);
        assert_non_null(p);
        return p;
}

/* Every helper the pool started has been reaped: the test process has no
 * child left, running or zombie. */
static void assert_no_children(void) {
        errno = 0;
        assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
        assert_int_equal(errno, ECHILD);
}

static void assert_answer(const struct outcome *o, bool eligible) {
        assert_int_equal(o->calls, 1);
        assert_int_equal(o->status, HOOK_OK);
        assert_true(o->has_verdict);
        assert_int_equal(o->verdict.eligible, eligible);
}

static void assert_status(const struct outcome *o, enum hook_status status) {
        assert_int_equal(o->calls, 1);
        assert_int_equal(o->status, status);
        assert_false(o->has_verdict);
}

static long reason_pid(const struct outcome *o) {
        assert_int_equal(strncmp(o->verdict.reason, "pid:", 4), 0);
        return strtol(o->verdict.reason + 4, NULL, 10);
}

/* Runs `advert-receipt --issue ...` and returns its one line. */
static void issue_receipt(const char *args, char *out, size_t size) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "'%s' --issue %s", ADVERT_RECEIPT, args);
        FILE *f = popen(cmd, "r");
        assert_non_null(f);
        assert_non_null(fgets(out, (int) size, f));
        assert_int_equal(pclose(f), 0);
        out[strcspn(out, "\n")] = '\0';
        assert_true(strlen(out) > 64);
}

/* ---- the shipped helpers ------------------------------------------------ */

static void test_personal_info(void **state) {
        (void) state;
        const char *const argv[] = { PERSONAL_INFO, NULL };
        struct collector *c = collector_new();
        setenv("WWSF_HOOK_POOL", "anon-web", 1);
        struct hook_pool *p = pool_new(argv, 1, WAIT_LIMIT_MS, 8);

        ask(p, c, 0, "{\"name\":\"Ann Example\",\"email\":\"ann.example@mail.example.com\"}");
        ask(p, c, 1, "{\"name\":\"Ann\",\"email\":\"ann@example\"}");
        ask(p, c, 2, "{\"email\":\"ann@example.com\"}");
        ask(p, c, 3, "{\"name\":\"   \",\"email\":\"ann@example.com\"}");
        ask(p, c, 4, "{\"name\":\"Ann\",\"email\":\"ann@@example.com\"}");
        ask(p, c, 5, NULL);
        assert_true(wait_done(c, 6));

        assert_answer(&c->out[0], true);
        assert_string_equal(c->out[0].verdict.pool, "anon-web");
        assert_string_equal(c->out[0].verdict.reason, "");
        assert_answer(&c->out[1], false);
        assert_string_equal(c->out[1].verdict.reason, "that email address does not look right");
        assert_string_equal(c->out[1].verdict.pool, "");
        assert_answer(&c->out[2], false);
        assert_string_equal(c->out[2].verdict.reason, "please give your name");
        assert_answer(&c->out[3], false);
        assert_string_equal(c->out[3].verdict.reason, "please give your name");
        assert_answer(&c->out[4], false);
        assert_answer(&c->out[5], false);
        assert_true(pthread_equal(c->out[0].thread, pthread_self()) == 0);

        struct hook_stats s;
        hook_pool_stats(p, &s);
        assert_int_equal(s.requests, 6);
        assert_int_equal(s.eligible, 1);
        assert_int_equal(s.refused, 5);
        assert_int_equal(s.timeouts + s.failures + s.restarts, 0);

        hook_pool_free(p);
        unsetenv("WWSF_HOOK_POOL");
        collector_free(c);
        assert_no_children();
}

static void test_advert_receipt(void **state) {
        (void) state;
        const char *const argv[] = { ADVERT_RECEIPT, NULL };
        char fresh[256], expired[256], tampered[256], evidence[6][400];
        struct collector *c = collector_new();
        setenv("WWSF_ADVERT_KEY", "advert-test-key", 1);
        unsetenv("WWSF_ADVERT_KEY_FILE");

        issue_receipt("summer-ad 600", fresh, sizeof fresh);
        issue_receipt("summer-ad 60 --now 1000000000", expired, sizeof expired);
        strcpy(tampered, fresh);
        /* Another advert id with the same MAC. */
        tampered[0] = tampered[0] == 's' ? 'w' : 's';
        snprintf(evidence[0], sizeof evidence[0], "{\"receipt\":\"%s\"}", fresh);
        snprintf(evidence[1], sizeof evidence[1], "{\"receipt\":\"%s\"}", expired);
        snprintf(evidence[2], sizeof evidence[2], "{\"receipt\":\"%s\"}", tampered);
        snprintf(evidence[3], sizeof evidence[3], "{\"receipt\":\"not a receipt\"}");
        snprintf(evidence[4], sizeof evidence[4], "{\"receipt\":42}");
        /* The MAC of the fresh receipt with its last digit changed. */
        strcpy(tampered, fresh);
        size_t last = strlen(tampered) - 1;
        tampered[last] = tampered[last] == '0' ? '1' : '0';
        snprintf(evidence[5], sizeof evidence[5], "{\"receipt\":\"%s\"}", tampered);

        struct hook_pool *p = pool_new(argv, 2, WAIT_LIMIT_MS, 8);
        for (int i = 0; i < 6; i++)
                ask(p, c, i, evidence[i]);
        assert_true(wait_done(c, 6));
        assert_answer(&c->out[0], true);
        assert_answer(&c->out[1], false);
        assert_non_null(strstr(c->out[1].verdict.reason, "expired"));
        for (int i = 2; i < 6; i++) {
                assert_answer(&c->out[i], false);
                if (i != 4)
                        assert_string_equal(c->out[i].verdict.reason, "that advert receipt is not valid");
        }
        assert_string_equal(c->out[4].verdict.reason, "please watch the advert first");
        hook_pool_free(p);
        collector_free(c);

        /* The key from a file; a receipt signed with another key fails. */
        char dir[] = "/tmp/wwsf-hook-XXXXXX", path[64];
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof path, "%s/advert.key", dir);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs("advert-test-key\n", f);
        fclose(f);
        unsetenv("WWSF_ADVERT_KEY");
        setenv("WWSF_ADVERT_KEY_FILE", path, 1);
        c = collector_new();
        p = pool_new(argv, 1, WAIT_LIMIT_MS, 8);
        ask(p, c, 0, evidence[0]);
        assert_true(wait_done(c, 1));
        hook_pool_free(p);
        f = fopen(path, "w");
        assert_non_null(f);
        fputs("another-key\n", f);
        fclose(f);
        p = pool_new(argv, 1, WAIT_LIMIT_MS, 8);
        ask(p, c, 1, evidence[0]);
        assert_true(wait_done(c, 2));
        hook_pool_free(p);
        assert_answer(&c->out[0], true);
        assert_answer(&c->out[1], false);
        unsetenv("WWSF_ADVERT_KEY_FILE");
        unlink(path);
        rmdir(dir);
        collector_free(c);
        assert_no_children();
}

/* ---- the pool ------------------------------------------------------------ */

struct asker {
        struct hook_pool *p;
        struct collector *c;
        int first, count;
};

static void *ask_many(void *arg) {
        struct asker *a = arg;
        for (int i = a->first; i < a->first + a->count; i++) {
                char ev[128];
                snprintf(ev, sizeof ev, "{\"sleep_ms\":10,\"reason\":\"request %d\",\"eligible\":%s}", i,
                         i % 3 ? "true" : "false");
                json_error_t error;
                json_t *j = json_loads(ev, 0, &error);
                hook_pool_ask(a->p, "2001:db8::1", "test", j, on_done, &a->c->out[i]);
                json_decref(j);
        }
        return NULL;
}

static void test_concurrent_requests(void **state) {
        (void) state;
        const char *const argv[] = { FAKE_HOOK, "echo", NULL };
        struct collector *c = collector_new();
        struct hook_pool *p = pool_new(argv, 2, WAIT_LIMIT_MS, 48);
        pthread_t threads[4];
        struct asker askers[4];
        for (int t = 0; t < 4; t++) {
                askers[t] = (struct asker) { .p = p, .c = c, .first = t * 12, .count = 12 };
                assert_int_equal(pthread_create(&threads[t], NULL, ask_many, &askers[t]), 0);
        }
        for (int t = 0; t < 4; t++)
                pthread_join(threads[t], NULL);
        assert_true(wait_done(c, 48));
        for (int i = 0; i < 48; i++) {
                char want[64];
                snprintf(want, sizeof want, "request %d", i);
                assert_answer(&c->out[i], i % 3 != 0);
                /* Each answer went to the request it answers. */
                assert_string_equal(c->out[i].verdict.reason, want);
        }
        struct hook_stats s;
        hook_pool_stats(p, &s);
        assert_int_equal(s.requests, 48);
        assert_int_equal(s.eligible, 32);
        assert_int_equal(s.refused, 16);
        assert_int_equal(s.timeouts + s.failures + s.restarts, 0);
        hook_pool_free(p);
        collector_free(c);
        assert_no_children();
}

static void test_timeout_then_restarted_helper(void **state) {
        (void) state;
        const char *const argv[] = { FAKE_HOOK, "echo", NULL };
        const int timeout_ms = 2000;
        struct collector *c = collector_new();
        struct hook_pool *p = pool_new(argv, 1, timeout_ms, 8);

        ask(p, c, 0, "{\"reason_pid\":true}");
        assert_true(wait_done(c, 1));
        assert_answer(&c->out[0], true);
        long first = reason_pid(&c->out[0]);

        int64_t start = (int64_t) wwsf_monotonic_ms();
        ask(p, c, 1, "{\"hang\":true}");
        assert_true(wait_done(c, 2));
        assert_status(&c->out[1], HOOK_TIMEOUT);
        /* Never before its time (a lower bound is safe on a noisy machine). */
        assert_true((int64_t) wwsf_monotonic_ms() - start >= timeout_ms - 10);

        ask(p, c, 2, "{\"reason_pid\":true}");
        assert_true(wait_done(c, 3));
        assert_answer(&c->out[2], true);
        assert_true(reason_pid(&c->out[2]) != first);

        struct hook_stats s;
        hook_pool_stats(p, &s);
        assert_int_equal(s.requests, 3);
        assert_int_equal(s.eligible, 2);
        assert_int_equal(s.timeouts, 1);
        assert_int_equal(s.failures, 0);
        assert_int_equal(s.restarts, 1);
        hook_pool_free(p);
        collector_free(c);
        assert_no_children();
}

static void test_helper_exiting_after_each_answer(void **state) {
        (void) state;
        const char *const argv[] = { FAKE_HOOK, "exit-after-answer", NULL };
        struct collector *c = collector_new();
        struct hook_pool *p = pool_new(argv, 1, WAIT_LIMIT_MS, 16);

        for (int i = 0; i < 4; i++) {
                ask(p, c, i, "{\"reason_pid\":true}");
                assert_true(wait_done(c, i + 1));
                assert_answer(&c->out[i], true);
                for (int k = 0; k < i; k++)
                        assert_true(reason_pid(&c->out[i]) != reason_pid(&c->out[k]));
        }
        /* A burst: some requests reach a helper that is about to exit. */
        for (int i = 4; i < 12; i++)
                ask(p, c, i, "{}");
        assert_true(wait_done(c, 12));
        for (int i = 4; i < 12; i++)
                assert_answer(&c->out[i], true);

        struct hook_stats s;
        hook_pool_stats(p, &s);
        assert_int_equal(s.eligible, 12);
        assert_true(s.restarts >= 11);
        hook_pool_free(p);
        collector_free(c);
        assert_no_children();
}

static void test_helper_closing_stdin(void **state) {
        (void) state;
        /* The second write meets a pipe nobody reads: EPIPE, not a SIGPIPE
         * that kills this process; the request goes to a new helper. */
        const char *const argv[] = { FAKE_HOOK, "close-stdin", NULL };
        struct collector *c = collector_new();
        struct hook_pool *p = pool_new(argv, 1, WAIT_LIMIT_MS, 8);
        ask(p, c, 0, "{\"reason_pid\":true}");
        assert_true(wait_done(c, 1));
        ask(p, c, 1, "{\"reason_pid\":true}");
        assert_true(wait_done(c, 2));
        assert_answer(&c->out[0], true);
        assert_answer(&c->out[1], true);
        assert_true(reason_pid(&c->out[0]) != reason_pid(&c->out[1]));
        hook_pool_free(p);
        collector_free(c);
        assert_no_children();
}

static void test_bad_answers(void **state) {
        (void) state;
        static const char *const modes[] = { "garbage", "wrong-id", "long-line" };
        for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
                const char *const argv[] = { FAKE_HOOK, modes[m], NULL };
                struct collector *c = collector_new();
                struct hook_pool *p = pool_new(argv, 1, WAIT_LIMIT_MS, 8);
                ask(p, c, 0, "{}");
                assert_true(wait_done(c, 1));
                ask(p, c, 1, "{}");
                assert_true(wait_done(c, 2));
                assert_status(&c->out[0], HOOK_BAD_ANSWER);
                assert_status(&c->out[1], HOOK_BAD_ANSWER);
                struct hook_stats s;
                hook_pool_stats(p, &s);
                assert_int_equal(s.requests, 2);
                assert_int_equal(s.failures, 2);
                assert_true(s.restarts >= 1);
                hook_pool_free(p);
                collector_free(c);
        }
        assert_no_children();
}

static void test_answer_fields(void **state) {
        (void) state;
        const char *const argv[] = { FAKE_HOOK, "echo", NULL };
        struct collector *c = collector_new();
        struct hook_pool *p = pool_new(argv, 1, WAIT_LIMIT_MS, 8);
        char ev[2048];
        /* 300 two-byte characters: cut to whole characters within 255 bytes. */
        strcpy(ev, "{\"eligible\":false,\"reason\":\"");
        for (int i = 0; i < 300; i++)
                strcat(ev, "\xc3\xa9");
        strcat(ev, "\"}");
        ask(p, c, 0, ev);
        assert_true(wait_done(c, 1));
        assert_answer(&c->out[0], false);
        assert_int_equal(strlen(c->out[0].verdict.reason), 254);

        /* A pool name of 64 bytes fits; 65 would be cut into another name. */
        char name[66];
        memset(name, 'p', 65);
        name[64] = '\0';
        snprintf(ev, sizeof ev, "{\"pool\":\"%s\"}", name);
        ask(p, c, 1, ev);
        assert_true(wait_done(c, 2));
        assert_answer(&c->out[1], true);
        assert_string_equal(c->out[1].verdict.pool, name);
        name[64] = 'p';
        name[65] = '\0';
        snprintf(ev, sizeof ev, "{\"pool\":\"%s\"}", name);
        ask(p, c, 2, ev);
        assert_true(wait_done(c, 3));
        assert_status(&c->out[2], HOOK_BAD_ANSWER);
        ask(p, c, 3, "{\"eligible\":\"yes\"}");
        assert_true(wait_done(c, 4));
        assert_status(&c->out[3], HOOK_BAD_ANSWER);
        ask(p, c, 4, "{\"pool\":null,\"reason\":null}");
        assert_true(wait_done(c, 5));
        assert_answer(&c->out[4], true);
        assert_string_equal(c->out[4].verdict.pool, "");

        /* Client fields that are not UTF-8 still make a valid request. */
        json_t *empty = json_object();
        hook_pool_ask(p, "\xff\xfe", "agent \xc3\x28 \xed\xa0\x80", empty, on_done, &c->out[5]);
        json_decref(empty);
        assert_true(wait_done(c, 6));
        assert_answer(&c->out[5], true);
        hook_pool_free(p);
        collector_free(c);
        assert_no_children();
}

static void test_helper_cannot_run(void **state) {
        (void) state;
        static const char *const programs[] = { "/nonexistent/wwsf-hook", "/dev/null" };
        for (size_t k = 0; k < 2; k++) {
                const char *const argv[] = { programs[k], NULL };
                struct collector *c = collector_new();
                struct hook_pool *p = pool_new(argv, 2, 1000, 8);
                ask(p, c, 0, "{}");
                ask(p, c, 1, "{}");
                assert_true(wait_done(c, 2));
                assert_status(&c->out[0], HOOK_UNAVAILABLE);
                assert_status(&c->out[1], HOOK_UNAVAILABLE);
                hook_pool_free(p);
                collector_free(c);
        }

        /* A helper that dies at start is restarted with a growing delay: in
         * 1.5 s that is a handful of starts, not a spinning loop. */
        const char *const argv[] = { FAKE_HOOK, "crash-at-start", NULL };
        struct collector *c = collector_new();
        struct hook_pool *p = pool_new(argv, 1, 1000, 8);
        ask(p, c, 0, "{}");
        assert_true(wait_done(c, 1));
        assert_status(&c->out[0], HOOK_UNAVAILABLE);
        struct timespec nap = { 1, 500 * 1000 * 1000 };
        nanosleep(&nap, NULL);
        struct hook_stats s;
        hook_pool_stats(p, &s);
        assert_true(s.restarts >= 1);
        assert_true(s.restarts <= 20);
        hook_pool_free(p);
        collector_free(c);
        assert_no_children();
}

static void test_queue_overflow(void **state) {
        (void) state;
        const char *const argv[] = { FAKE_HOOK, "echo", NULL };
        struct collector *c = collector_new();
        struct hook_pool *p = pool_new(argv, 1, WAIT_LIMIT_MS, 1);
        ask(p, c, 0, "{\"sleep_ms\":500}");    /* carried by the helper */
        ask(p, c, 1, "{}");                     /* waits in the queue */
        ask(p, c, 2, "{}");                     /* one too many */
        /* Refused at once, from this thread, before hook_pool_ask() returned. */
        assert_status(&c->out[2], HOOK_UNAVAILABLE);
        assert_true(pthread_equal(c->out[2].thread, pthread_self()));

        /* So is a request line over 16 KiB, and evidence that is no object. */
        json_t *big = json_pack("{s:s}", "blob", "");
        char *blob = malloc(20000);
        assert_non_null(blob);
        memset(blob, 'x', 19999);
        blob[19999] = '\0';
        json_object_set_new(big, "blob", json_string(blob));
        free(blob);
        hook_pool_ask(p, "192.0.2.1", "test", big, on_done, &c->out[3]);
        json_decref(big);
        assert_status(&c->out[3], HOOK_UNAVAILABLE);
        json_t *array = json_array();
        hook_pool_ask(p, "192.0.2.1", "test", array, on_done, &c->out[4]);
        json_decref(array);
        assert_status(&c->out[4], HOOK_UNAVAILABLE);

        assert_true(wait_done(c, 5));
        assert_answer(&c->out[0], true);
        assert_answer(&c->out[1], true);
        struct hook_stats s;
        hook_pool_stats(p, &s);
        assert_int_equal(s.requests, 5);
        assert_int_equal(s.eligible, 2);
        assert_int_equal(s.failures, 3);
        hook_pool_free(p);
        collector_free(c);
        assert_no_children();
}

static void test_free_answers_everything(void **state) {
        (void) state;
        const char *const argv[] = { FAKE_HOOK, "echo", NULL };
        struct collector *c = collector_new();
        struct hook_pool *p = pool_new(argv, 2, 60000, 8);
        for (int i = 0; i < 6; i++)
                ask(p, c, i, "{\"hang\":true}");
        /* Give the helpers time to take two of them (not asserted). */
        struct timespec nap = { 0, 500 * 1000 * 1000 };
        nanosleep(&nap, NULL);
        assert_int_equal(done_count(c), 0);
        hook_pool_free(p);
        /* Answered before hook_pool_free() returned, once each. */
        assert_int_equal(done_count(c), 6);
        for (int i = 0; i < 6; i++) {
                assert_status(&c->out[i], HOOK_UNAVAILABLE);
                assert_true(pthread_equal(c->out[i].thread, pthread_self()) == 0);
        }
        collector_free(c);
        assert_no_children();
}

static void test_arguments(void **state) {
        (void) state;
        const char *const argv[] = { FAKE_HOOK, NULL };
        const char *const empty[] = { NULL };
        struct hook_pool *p = NULL;
        struct hook_options opt = { .argv = argv, .helpers = 1, .timeout_ms = 100, .queue_max = 0 };
        struct hook_options bad;
        bad = opt, bad.argv = NULL;
        assert_int_equal(hook_pool_new(&bad, &p), -EINVAL);
        bad = opt, bad.argv = empty;
        assert_int_equal(hook_pool_new(&bad, &p), -EINVAL);
        bad = opt, bad.helpers = 0;
        assert_int_equal(hook_pool_new(&bad, &p), -EINVAL);
        bad = opt, bad.timeout_ms = 0;
        assert_int_equal(hook_pool_new(&bad, &p), -EINVAL);
        bad = opt, bad.queue_max = -1;
        assert_int_equal(hook_pool_new(&bad, &p), -EINVAL);
        assert_int_equal(hook_pool_new(NULL, &p), -EINVAL);
        assert_null(p);
        hook_pool_free(NULL);

        struct collector *c = collector_new();
        hook_pool_ask(NULL, "192.0.2.1", "test", NULL, on_done, &c->out[0]);
        assert_status(&c->out[0], HOOK_UNAVAILABLE);
        struct hook_stats s = { .requests = 7 };
        hook_pool_stats(NULL, &s);
        assert_int_equal(s.requests, 0);

        /* queue_max 0: a request that finds every helper busy is refused,
         * one that finds a helper free is not. */
        p = pool_new(argv, 1, WAIT_LIMIT_MS, 0);
        ask(p, c, 1, "{\"sleep_ms\":300}");
        ask(p, c, 2, "{}");
        assert_status(&c->out[2], HOOK_UNAVAILABLE);
        assert_true(wait_done(c, 3));
        assert_answer(&c->out[1], true);
        hook_pool_free(p);
        collector_free(c);
        assert_no_children();
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_personal_info),
                cmocka_unit_test(test_advert_receipt),
                cmocka_unit_test(test_concurrent_requests),
                cmocka_unit_test(test_timeout_then_restarted_helper),
                cmocka_unit_test(test_helper_exiting_after_each_answer),
                cmocka_unit_test(test_helper_closing_stdin),
                cmocka_unit_test(test_bad_answers),
                cmocka_unit_test(test_answer_fields),
                cmocka_unit_test(test_helper_cannot_run),
                cmocka_unit_test(test_queue_overflow),
                cmocka_unit_test(test_free_answers_everything),
                cmocka_unit_test(test_arguments),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
