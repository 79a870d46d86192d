/* The eligibility hook pool of hook.h.
 *
 * One thread owns every helper process and runs a poll() loop over the
 * helpers' stdout pipes (answers), their stdin pipes while a request line is
 * only partly written, an eventfd that hook_pool_ask() and hook_pool_free()
 * write to, and the timers (answer deadlines, queue deadlines, restart
 * back-off, reaping of killed helpers). Nothing in the loop blocks: both pipe
 * ends we hold are non-blocking.
 *
 * Shared with the callers' threads, under `lock`: the queue of requests not
 * yet given to a helper, the count of outstanding requests, the stop flag
 * and the statistics. Everything else (helpers, their fds and pids) belongs
 * to the pool thread alone.
 *
 * Lifetimes of a request: hook_pool_ask() queues it; the loop gives it to an
 * idle helper, which has timeout_ms to answer (else HOOK_TIMEOUT and the
 * helper is killed and restarted, so a late answer can never be matched with
 * a later request). A queued request waits at most timeout_ms for a helper
 * (else HOOK_UNAVAILABLE), less if no helper can start before then. A helper
 * that exits while carrying a request puts it back at the head of the queue
 * once: it may have died before reading it (one that exits after each answer
 * is legal); a request that kills a second helper is answered
 * HOOK_UNAVAILABLE.
 *
 * Admission: at most helpers + queue_max requests are outstanding, so
 * queue_max is how many may wait while every helper is busy; past it,
 * HOOK_UNAVAILABLE at once, from the caller's thread.
 *
 * Statistics: requests counts every hook_pool_ask(); eligible and refused
 * the verdicts; timeouts HOOK_TIMEOUT; failures HOOK_UNAVAILABLE and
 * HOOK_BAD_ANSWER; restarts every start of a helper after the first one of
 * its slot, also those that fail. */
#include "common/clock.h"
#include "wwsfd/hook.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* An answer is an id (at most 20 digits), a boolean, a reason the verdict
 * keeps to 255 bytes (at most 6 times that once JSON-escaped as \uXXXX) and
 * a pool name of at most 64 bytes: 4 KiB holds any honest answer, with room
 * for keys added later, and stops a runaway helper from growing the daemon's
 * memory. A longer line is malformed. */
#define ANSWER_LINE_MAX 4096

/* A request is an id, the client's address, its User-Agent (the daemon
 * passes at most 512 bytes of it) and an evidence object from a body of at
 * most 16 KiB, which re-encoding can grow up to six times (a control byte
 * becomes \u00XX): 128 KiB takes any request the daemon lets through, and a
 * line longer than a pipe's buffer is written in parts as the helper reads. */
#define REQUEST_LINE_MAX (128 * 1024)

/* Each helper is a process and two fds; more than this is a typo. */
#define HELPERS_MAX 256

/* A helper that dies before answering anything is restarted after 0, then
 * 100, 200, 400... ms, at most 3 s: a helper that crashes at start costs a
 * few spawns a second, not a spinning core. One answer resets the count. */
#define RESTART_BACKOFF_MIN_MS 100
#define RESTART_BACKOFF_MAX_MS 3000

/* hook_pool_free(): how long helpers get after SIGTERM before SIGKILL. */
#define STOP_GRACE_MS 1000

/* How often the loop retries waitpid() on a killed helper not yet reaped. */
#define REAP_TICK_MS 20

struct hook_request {
        struct hook_request *next;
        char id[24];
        char *line;             /* the request, '\n'-terminated */
        size_t len;
        int64_t wait_deadline;  /* monotonic ms: HOOK_UNAVAILABLE if still queued then */
        bool requeued;          /* already given back once by a helper that died */
        hook_done_fn done;
        void *userdata;
};

struct helper {
        pid_t pid;                      /* 0: not running */
        int to_fd, from_fd;             /* its stdin, its stdout; -1 when not running */
        struct hook_request *req;       /* in flight, or NULL */
        size_t sent;                    /* bytes of req->line written */
        int64_t deadline;               /* monotonic ms: HOOK_TIMEOUT then */
        bool started_before;            /* the next start is a restart */
        bool answered;                  /* answered since it started */
        unsigned failures;              /* deaths in a row with no answer */
        int64_t next_start;             /* when not running: earliest restart */
        size_t in_len;
        char in[ANSWER_LINE_MAX + 1];   /* a partial answer line, with room for its '\n' */
};

struct hook_pool {
        char **argv;
        int n_helpers, timeout_ms, queue_max;
        int wake_fd;
        pthread_t thread;

        /* The pool thread's alone. */
        struct helper *helpers;
        struct pollfd *pfds;
        struct helper **pfd_helper;     /* which helper each pfds[i] belongs to; NULL: wake_fd */
        pid_t *corpses;                 /* killed, not yet reaped */
        size_t n_corpses, cap_corpses;

        pthread_mutex_t lock;
        /* Under lock. */
        struct hook_request *head, *tail;
        size_t outstanding;             /* asked, not yet answered */
        bool stopping;
        struct hook_stats stats;

        unsigned long long next_id;     /* atomic */
};

/* ---- requests ---------------------------------------------------------- */

/* Counts a finished request (with lock held). */
static void count_result(struct hook_stats *s, enum hook_status status, const struct hook_verdict *v) {
        switch (status) {
        case HOOK_OK:
                if (v->eligible)
                        s->eligible++;
                else
                        s->refused++;
                break;
        case HOOK_TIMEOUT:
                s->timeouts++;
                break;
        case HOOK_UNAVAILABLE:
        case HOOK_BAD_ANSWER:
                s->failures++;
                break;
        }
}

/* Answers a request that was counted in `outstanding`, and frees it. Called
 * from the pool thread, without the lock (the callback may ask again). */
static void finish(struct hook_pool *p, struct hook_request *req, enum hook_status status,
                   const struct hook_verdict *v) {
        pthread_mutex_lock(&p->lock);
        p->outstanding--;
        count_result(&p->stats, status, v);
        pthread_mutex_unlock(&p->lock);
        req->done(req->userdata, status, status == HOOK_OK ? v : NULL);
        free(req->line);
        free(req);
}

/* Length of the well-formed UTF-8 sequence at s, or 0 (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF). Never reads past a NUL. */
static size_t utf8_sequence(const unsigned char *s) {
        unsigned char lo = 0x80, hi = 0xBF;
        size_t n;
        if (s[0] < 0x80)
                return 1;
        if (s[0] >= 0xC2 && s[0] <= 0xDF)
                n = 2;
        else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
                n = 3;
                if (s[0] == 0xE0)
                        lo = 0xA0;
                else if (s[0] == 0xED)
                        hi = 0x9F;
        } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
                n = 4;
                if (s[0] == 0xF0)
                        lo = 0x90;
                else if (s[0] == 0xF4)
                        hi = 0x8F;
        } else
                return 0;
        if (s[1] < lo || s[1] > hi)
                return 0;
        for (size_t i = 2; i < n; i++)
                if ((s[i] & 0xC0) != 0x80)
                        return 0;
        return n;
}

/* s as a JSON string literal; bytes that are not UTF-8 (a User-Agent is
 * whatever the client sent) become '?', so the helper always gets valid
 * JSON. NULL becomes "". Returns a malloc'ed string or NULL. */
static char *json_literal(const char *s) {
        if (!s)
                s = "";
        size_t n = strlen(s);
        char *clean = malloc(n + 1);
        if (!clean)
                return NULL;
        size_t i = 0;
        while (i < n) {
                size_t k = utf8_sequence((const unsigned char *) s + i);
                if (k == 0) {
                        clean[i++] = '?';
                        continue;
                }
                memcpy(clean + i, s + i, k);
                i += k;
        }
        clean[n] = '\0';
        json_t *j = json_string(clean);
        free(clean);
        char *out = j ? json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
        json_decref(j);
        return out;
}

/* Builds req->line. Returns 0, -E2BIG past REQUEST_LINE_MAX, -EINVAL if the
 * evidence is not an object, -ENOMEM. */
static int build_line(struct hook_request *req, const char *client_addr, const char *user_agent,
                      const json_t *evidence) {
        static const char fmt[] = "{\"id\":\"%s\",\"client_addr\":%s,\"user_agent\":%s,\"evidence\":%s}\n";
        char *addr = NULL, *agent = NULL, *ev = NULL;
        int r = -ENOMEM;
        if (evidence && !json_is_object(evidence))
                return -EINVAL;
        addr = json_literal(client_addr);
        agent = json_literal(user_agent);
        ev = evidence ? json_dumps(evidence, JSON_COMPACT) : strdup("{}");
        if (!addr || !agent || !ev)
                goto out;
        /* The line without its '\n' is what REQUEST_LINE_MAX bounds. */
        size_t len = strlen(fmt) - 8 + strlen(req->id) + strlen(addr) + strlen(agent) + strlen(ev);
        if (len - 1 > REQUEST_LINE_MAX) {
                r = -E2BIG;
                goto out;
        }
        req->line = malloc(len + 1);
        if (!req->line)
                goto out;
        snprintf(req->line, len + 1, fmt, req->id, addr, agent, ev);
        req->len = len;
        r = 0;
out:
        free(addr);
        free(agent);
        free(ev);
        return r;
}

void hook_pool_ask(struct hook_pool *p, const char *client_addr, const char *user_agent, const json_t *evidence,
                   hook_done_fn done, void *userdata) {
        struct hook_request *req = NULL;
        bool refused = true;
        if (!done)
                return;         /* nobody to tell: a caller bug, and nothing to do */
        if (!p) {
                done(userdata, HOOK_UNAVAILABLE, NULL);
                return;
        }
        req = calloc(1, sizeof *req);
        if (req) {
                snprintf(req->id, sizeof req->id, "%llu",
                         __atomic_add_fetch(&p->next_id, 1, __ATOMIC_RELAXED));
                req->done = done;
                req->userdata = userdata;
                if (build_line(req, client_addr, user_agent, evidence) < 0) {
                        free(req->line);
                        free(req);
                        req = NULL;
                }
        }

        pthread_mutex_lock(&p->lock);
        p->stats.requests++;
        /* queue_max counts requests waiting while every helper is busy. */
        if (req && !p->stopping && p->outstanding < (size_t) p->n_helpers + (size_t) p->queue_max) {
                req->wait_deadline = (int64_t) wwsf_monotonic_ms() + p->timeout_ms;
                if (p->tail)
                        p->tail->next = req;
                else
                        p->head = req;
                p->tail = req;
                p->outstanding++;
                refused = false;
        } else
                p->stats.failures++;
        pthread_mutex_unlock(&p->lock);

        if (refused) {
                if (req) {
                        free(req->line);
                        free(req);
                }
                done(userdata, HOOK_UNAVAILABLE, NULL);
                return;
        }
        uint64_t one = 1;
        /* Fails only if the counter would overflow: the loop is awake then. */
        (void) !write(p->wake_fd, &one, sizeof one);
}

void hook_pool_stats(struct hook_pool *p, struct hook_stats *ret) {
        if (!p) {
                memset(ret, 0, sizeof *ret);
                return;
        }
        pthread_mutex_lock(&p->lock);
        *ret = p->stats;
        pthread_mutex_unlock(&p->lock);
}

/* ---- answers ----------------------------------------------------------- */

/* Copies a string of n bytes into dst[size], cut at a character boundary. */
static void copy_utf8_cut(char *dst, size_t size, const char *s, size_t n) {
        if (n >= size) {
                n = size - 1;
                while (n > 0 && ((unsigned char) s[n] & 0xC0) == 0x80)
                        n--;
        }
        memcpy(dst, s, n);
        dst[n] = '\0';
}

/* Reads one answer line for the request `id`. Answers with another id, a
 * non-boolean "eligible", a non-string "reason" or "pool", or a pool name
 * that does not fit (cutting it would name another pool) are not answers.
 * A reason that does not fit is cut: it is only shown to the user. Other
 * keys are ignored, so helpers may say more than this version reads. */
static bool parse_answer(const char *id, const char *line, size_t len, struct hook_verdict *v) {
        json_error_t error;
        bool ok = false;
        if (len > 0 && line[len - 1] == '\r')
                len--;
        json_t *a = json_loadb(line, len, JSON_REJECT_DUPLICATES, &error);
        memset(v, 0, sizeof *v);
        if (!json_is_object(a))
                goto out;
        json_t *jid = json_object_get(a, "id");
        json_t *eligible = json_object_get(a, "eligible");
        json_t *reason = json_object_get(a, "reason");
        json_t *pool = json_object_get(a, "pool");
        if (!json_is_string(jid) || strcmp(json_string_value(jid), id) != 0 || !json_is_boolean(eligible))
                goto out;
        v->eligible = json_is_true(eligible);
        if (reason && !json_is_null(reason)) {
                if (!json_is_string(reason))
                        goto out;
                copy_utf8_cut(v->reason, sizeof v->reason, json_string_value(reason), json_string_length(reason));
        }
        if (pool && !json_is_null(pool)) {
                if (!json_is_string(pool) || json_string_length(pool) >= sizeof v->pool)
                        goto out;
                memcpy(v->pool, json_string_value(pool), json_string_length(pool) + 1);
        }
        ok = true;
out:
        json_decref(a);
        return ok;
}

/* ---- helper processes -------------------------------------------------- */

/* True once pid is reaped (or was reaped by someone else: SIGCHLD ignored,
 * or a waitpid(-1) elsewhere in the process). */
static bool reap(pid_t pid, bool block) {
        for (;;) {
                pid_t r = waitpid(pid, NULL, block ? 0 : WNOHANG);
                if (r == pid || (r < 0 && errno == ECHILD))
                        return true;
                if (r < 0 && errno == EINTR)
                        continue;
                return false;
        }
}

static void reap_corpses(struct hook_pool *p, bool block) {
        size_t kept = 0;
        for (size_t i = 0; i < p->n_corpses; i++)
                if (!reap(p->corpses[i], block))
                        p->corpses[kept++] = p->corpses[i];
        p->n_corpses = kept;
}

static void bury(struct hook_pool *p, pid_t pid) {
        if (reap(pid, false))
                return;
        if (p->n_corpses == p->cap_corpses) {
                size_t cap = p->cap_corpses ? 2 * p->cap_corpses : 8;
                pid_t *c = realloc(p->corpses, cap * sizeof *c);
                if (!c) {
                        reap(pid, true);        /* SIGKILL was sent: this is short */
                        return;
                }
                p->corpses = c;
                p->cap_corpses = cap;
        }
        p->corpses[p->n_corpses++] = pid;
}

static void close_fd(int *fd) {
        if (*fd >= 0)
                close(*fd);
        *fd = -1;
}

static void schedule_restart(struct helper *h, int64_t now) {
        int64_t delay = 0;
        if (h->answered)
                h->failures = 0;
        if (h->failures > 0) {
                unsigned shift = h->failures - 1 < 10 ? h->failures - 1 : 10;
                delay = (int64_t) RESTART_BACKOFF_MIN_MS << shift;
                if (delay > RESTART_BACKOFF_MAX_MS)
                        delay = RESTART_BACKOFF_MAX_MS;
        }
        h->failures++;
        h->answered = false;
        h->next_start = now + delay;
}

/* Kills the helper (if it still runs), closes its pipes, schedules its
 * restart, and returns the request it carried, for the caller to answer. */
static struct hook_request *helper_stop(struct hook_pool *p, struct helper *h, int64_t now) {
        struct hook_request *req = h->req;
        h->req = NULL;
        close_fd(&h->to_fd);
        close_fd(&h->from_fd);
        if (h->pid > 0) {
                kill(h->pid, SIGKILL);
                bury(p, h->pid);
                h->pid = 0;
        }
        h->in_len = 0;
        schedule_restart(h, now);
        return req;
}

/* A request whose helper died without answering: once more, at the head of
 * the queue; a second time, HOOK_UNAVAILABLE (it may be what kills them). */
static void requeue_or_fail(struct hook_pool *p, struct hook_request *req, int64_t now) {
        if (!req)
                return;
        if (!req->requeued) {
                pthread_mutex_lock(&p->lock);
                if (!p->stopping) {
                        req->requeued = true;
                        req->wait_deadline = now + p->timeout_ms;
                        req->next = p->head;
                        p->head = req;
                        if (!p->tail)
                                p->tail = req;
                        pthread_mutex_unlock(&p->lock);
                        return;
                }
                pthread_mutex_unlock(&p->lock);
        }
        finish(p, req, HOOK_UNAVAILABLE, NULL);
}

/* pipe2() with both fds above 2, so that the dup2() onto the child's 0 and
 * 1 never overwrite one another even if the daemon runs with 0 or 1 closed. */
static int make_pipe(int fds[2]) {
        if (pipe2(fds, O_CLOEXEC) < 0)
                return -errno;
        for (int i = 0; i < 2; i++) {
                if (fds[i] > 2)
                        continue;
                int moved = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
                if (moved < 0) {
                        int r = -errno;
                        close(fds[0]);
                        close(fds[1]);
                        return r;
                }
                close(fds[i]);
                fds[i] = moved;
        }
        return 0;
}

static void set_nonblocking(int fd) {
        int flags = fcntl(fd, F_GETFL);
        if (flags >= 0)
                fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* Starts the helper with posix_spawn(): glibc implements it with a vfork-like
 * clone (no copy of the daemon's page tables, no unsafe code between fork and
 * exec in a threaded process) and reports exec errors (ENOENT, EACCES) to
 * the parent. (Valgrind turns that clone into a fork: there an exec error
 * shows as a helper that exits at once, with the same outcome.) The child gets our pipes as stdin and stdout, the daemon's
 * stderr (so helper logs reach the daemon's log), no other fd, an empty
 * signal mask and default dispositions for the signals a daemon commonly
 * ignores. */
static void helper_start(struct hook_pool *p, struct helper *h, int64_t now) {
        int in[2] = { -1, -1 }, out[2] = { -1, -1 };
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        sigset_t none, defaults;
        pid_t pid = 0;
        int r;

        if (h->started_before) {
                pthread_mutex_lock(&p->lock);
                p->stats.restarts++;
                pthread_mutex_unlock(&p->lock);
        }
        h->started_before = true;

        if (make_pipe(in) < 0)
                goto fail;
        if (make_pipe(out) < 0)
                goto fail;

        sigemptyset(&none);
        sigemptyset(&defaults);
        static const int reset[] = { SIGPIPE, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGCHLD, SIGALRM, SIGUSR1, SIGUSR2 };
        for (size_t i = 0; i < sizeof reset / sizeof reset[0]; i++)
                sigaddset(&defaults, reset[i]);

        if (posix_spawn_file_actions_init(&fa) != 0)
                goto fail;
        if (posix_spawnattr_init(&attr) != 0) {
                posix_spawn_file_actions_destroy(&fa);
                goto fail;
        }
        r = posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
        if (r == 0)
                r = posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
        /* Also fds the daemon's libraries opened without O_CLOEXEC. */
        if (r == 0)
                r = posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1);
#endif
        if (r == 0)
                r = posix_spawnattr_setsigmask(&attr, &none);
        if (r == 0)
                r = posix_spawnattr_setsigdefault(&attr, &defaults);
        if (r == 0)
                r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        if (r == 0)
                r = posix_spawnp(&pid, p->argv[0], &fa, &attr, p->argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        if (r != 0)
                goto fail;

        close(in[0]);
        close(out[1]);
        set_nonblocking(in[1]);
        set_nonblocking(out[0]);
        h->pid = pid;
        h->to_fd = in[1];
        h->from_fd = out[0];
        h->in_len = 0;
        h->answered = false;
        return;

fail:
        for (int i = 0; i < 2; i++) {
                close_fd(&in[i]);
                close_fd(&out[i]);
        }
        schedule_restart(h, now);
}

/* The pool thread blocks every signal, so a write to a helper that died
 * leaves SIGPIPE pending on this thread instead of killing the daemon; the
 * write fails with EPIPE and this takes the pending signal away. */
static void discard_sigpipe(void) {
        sigset_t set;
        struct timespec zero = { 0, 0 };
        sigemptyset(&set);
        sigaddset(&set, SIGPIPE);
        while (sigtimedwait(&set, NULL, &zero) == SIGPIPE)
                ;
}

/* Writes what is left of the request line; the rest waits for POLLOUT. */
static void helper_send(struct hook_pool *p, struct helper *h, int64_t now) {
        while (h->req && h->sent < h->req->len) {
                ssize_t n = write(h->to_fd, h->req->line + h->sent, h->req->len - h->sent);
                if (n > 0) {
                        h->sent += (size_t) n;
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return;
                if (n < 0 && errno == EPIPE)
                        discard_sigpipe();
                requeue_or_fail(p, helper_stop(p, h, now), now);
                return;
        }
}

/* Takes the complete lines out of h->in. Returns false once the helper has
 * been stopped. */
static bool helper_take_lines(struct hook_pool *p, struct helper *h, int64_t now) {
        char *nl;
        while ((nl = memchr(h->in, '\n', h->in_len))) {
                size_t len = (size_t) (nl - h->in);
                struct hook_verdict v;
                struct hook_request *req = h->req;
                /* A line nobody asked for, or an answer to a line the helper
                 * cannot have read in full, breaks the one-at-a-time rule. */
                bool ok = req && h->sent == req->len && parse_answer(req->id, h->in, len, &v);
                if (!ok) {
                        req = helper_stop(p, h, now);
                        if (req)
                                finish(p, req, HOOK_BAD_ANSWER, NULL);
                        return false;
                }
                h->req = NULL;
                h->answered = true;
                h->failures = 0;
                h->in_len -= len + 1;
                memmove(h->in, nl + 1, h->in_len);
                finish(p, req, HOOK_OK, &v);
        }
        if (h->in_len == sizeof h->in || (!h->req && h->in_len > 0)) {
                /* Longer than ANSWER_LINE_MAX, or output with no request. */
                struct hook_request *req = helper_stop(p, h, now);
                if (req)
                        finish(p, req, HOOK_BAD_ANSWER, NULL);
                return false;
        }
        return true;
}

static void helper_receive(struct hook_pool *p, struct helper *h, int64_t now) {
        for (;;) {
                ssize_t n = read(h->from_fd, h->in + h->in_len, sizeof h->in - h->in_len);
                if (n > 0) {
                        h->in_len += (size_t) n;
                        if (!helper_take_lines(p, h, now))
                                return;
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return;
                /* End of file: the helper exited (or closed its stdout). */
                requeue_or_fail(p, helper_stop(p, h, now), now);
                return;
        }
}

/* ---- the loop ---------------------------------------------------------- */

static void start_due_helpers(struct hook_pool *p, int64_t now) {
        for (int i = 0; i < p->n_helpers; i++)
                if (p->helpers[i].pid == 0 && now >= p->helpers[i].next_start)
                        helper_start(p, &p->helpers[i], now);
}

static void expire_in_flight(struct hook_pool *p, int64_t now) {
        for (int i = 0; i < p->n_helpers; i++) {
                struct helper *h = &p->helpers[i];
                if (h->req && now >= h->deadline)
                        finish(p, helper_stop(p, h, now), HOOK_TIMEOUT, NULL);
        }
}

/* Queued requests past their wait, or that no helper can take in time
 * because none runs and none may start before their deadline. */
static void expire_queued(struct hook_pool *p, int64_t now) {
        bool running = false;
        int64_t first_start = INT64_MAX;
        for (int i = 0; i < p->n_helpers; i++) {
                if (p->helpers[i].pid > 0)
                        running = true;
                else if (p->helpers[i].next_start < first_start)
                        first_start = p->helpers[i].next_start;
        }
        struct hook_request *expired = NULL, **expired_end = &expired, **link;
        pthread_mutex_lock(&p->lock);
        p->tail = NULL;
        for (link = &p->head; *link;) {
                struct hook_request *req = *link;
                if (now >= req->wait_deadline || (!running && first_start > req->wait_deadline)) {
                        *link = req->next;
                        req->next = NULL;
                        *expired_end = req;
                        expired_end = &req->next;
                } else {
                        p->tail = req;
                        link = &req->next;
                }
        }
        pthread_mutex_unlock(&p->lock);
        while (expired) {
                struct hook_request *req = expired;
                expired = req->next;
                finish(p, req, HOOK_UNAVAILABLE, NULL);
        }
}

static void dispatch(struct hook_pool *p, int64_t now) {
        for (int i = 0; i < p->n_helpers; i++) {
                struct helper *h = &p->helpers[i];
                if (h->pid == 0 || h->req)
                        continue;
                pthread_mutex_lock(&p->lock);
                struct hook_request *req = p->head;
                if (req) {
                        p->head = req->next;
                        if (!p->head)
                                p->tail = NULL;
                        req->next = NULL;
                }
                pthread_mutex_unlock(&p->lock);
                if (!req)
                        return;
                h->req = req;
                h->sent = 0;
                h->deadline = now + p->timeout_ms;
                helper_send(p, h, now);
        }
}

/* Milliseconds until the next timer, for poll(); -1 if none. */
static int next_timeout(struct hook_pool *p, int64_t now) {
        int64_t wake = INT64_MAX;
        for (int i = 0; i < p->n_helpers; i++) {
                const struct helper *h = &p->helpers[i];
                if (h->pid == 0 && h->next_start < wake)
                        wake = h->next_start;
                if (h->req && h->deadline < wake)
                        wake = h->deadline;
        }
        pthread_mutex_lock(&p->lock);
        for (const struct hook_request *req = p->head; req; req = req->next)
                if (req->wait_deadline < wake)
                        wake = req->wait_deadline;
        pthread_mutex_unlock(&p->lock);
        if (p->n_corpses > 0 && now + REAP_TICK_MS < wake)
                wake = now + REAP_TICK_MS;
        if (wake == INT64_MAX)
                return -1;
        if (wake <= now)
                return 0;
        return wake - now > INT_MAX ? INT_MAX : (int) (wake - now);
}

static void shutdown_helpers(struct hook_pool *p) {
        pthread_mutex_lock(&p->lock);
        struct hook_request *queued = p->head;
        p->head = p->tail = NULL;
        pthread_mutex_unlock(&p->lock);
        while (queued) {
                struct hook_request *req = queued;
                queued = req->next;
                finish(p, req, HOOK_UNAVAILABLE, NULL);
        }

        /* EOF on stdin is the polite way to stop; SIGTERM the firm one. */
        for (int i = 0; i < p->n_helpers; i++) {
                struct helper *h = &p->helpers[i];
                struct hook_request *req = h->req;
                h->req = NULL;
                if (req)
                        finish(p, req, HOOK_UNAVAILABLE, NULL);
                close_fd(&h->to_fd);
                close_fd(&h->from_fd);
                if (h->pid > 0)
                        kill(h->pid, SIGTERM);
        }
        int64_t until = (int64_t) wwsf_monotonic_ms() + STOP_GRACE_MS;
        for (;;) {
                bool left = false;
                for (int i = 0; i < p->n_helpers; i++) {
                        struct helper *h = &p->helpers[i];
                        if (h->pid > 0 && reap(h->pid, false))
                                h->pid = 0;
                        left = left || h->pid > 0;
                }
                if (!left || (int64_t) wwsf_monotonic_ms() >= until)
                        break;
                struct timespec nap = { 0, 10 * 1000 * 1000 };
                nanosleep(&nap, NULL);
        }
        for (int i = 0; i < p->n_helpers; i++) {
                struct helper *h = &p->helpers[i];
                if (h->pid > 0) {
                        kill(h->pid, SIGKILL);
                        reap(h->pid, true);
                        h->pid = 0;
                }
        }
        reap_corpses(p, true);
}

static void *pool_main(void *arg) {
        struct hook_pool *p = arg;
        for (;;) {
                int64_t now = (int64_t) wwsf_monotonic_ms();
                pthread_mutex_lock(&p->lock);
                bool stopping = p->stopping;
                pthread_mutex_unlock(&p->lock);
                if (stopping)
                        break;

                reap_corpses(p, false);
                start_due_helpers(p, now);
                expire_in_flight(p, now);
                expire_queued(p, now);
                dispatch(p, now);

                nfds_t n = 0;
                p->pfds[n] = (struct pollfd) { .fd = p->wake_fd, .events = POLLIN };
                p->pfd_helper[n++] = NULL;
                for (int i = 0; i < p->n_helpers; i++) {
                        struct helper *h = &p->helpers[i];
                        if (h->pid == 0)
                                continue;
                        p->pfds[n] = (struct pollfd) { .fd = h->from_fd, .events = POLLIN };
                        p->pfd_helper[n++] = h;
                        if (h->req && h->sent < h->req->len) {
                                p->pfds[n] = (struct pollfd) { .fd = h->to_fd, .events = POLLOUT };
                                p->pfd_helper[n++] = h;
                        }
                }
                int timeout = next_timeout(p, now);
                if (poll(p->pfds, n, timeout) <= 0)
                        continue;       /* timers, or EINTR */

                now = (int64_t) wwsf_monotonic_ms();
                for (nfds_t i = 0; i < n; i++) {
                        struct helper *h = p->pfd_helper[i];
                        if (!p->pfds[i].revents)
                                continue;
                        if (!h) {
                                uint64_t count;
                                (void) !read(p->wake_fd, &count, sizeof count);
                        } else if (p->pfds[i].fd == h->to_fd) {
                                helper_send(p, h, now);
                        } else if (p->pfds[i].fd == h->from_fd) {
                                /* (Unless an earlier entry stopped this helper.) */
                                helper_receive(p, h, now);
                        }
                }
        }
        shutdown_helpers(p);
        return NULL;
}

/* ---- life cycle -------------------------------------------------------- */

static void pool_release(struct hook_pool *p) {
        if (p->argv)
                for (char **a = p->argv; *a; a++)
                        free(*a);
        free(p->argv);
        free(p->helpers);
        free(p->pfds);
        free(p->pfd_helper);
        free(p->corpses);
        if (p->wake_fd >= 0)
                close(p->wake_fd);
        free(p);
}

int hook_pool_new(const struct hook_options *opt, struct hook_pool **ret) {
        struct hook_pool *p = NULL;
        sigset_t all, old;
        size_t argc = 0;
        int r = -EINVAL;

        if (!opt || !ret || !opt->argv || !opt->argv[0] || !*opt->argv[0] || opt->helpers < 1 ||
            opt->helpers > HELPERS_MAX || opt->timeout_ms < 1 || opt->queue_max < 0)
                return -EINVAL;
        while (opt->argv[argc])
                argc++;

        p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        p->wake_fd = -1;
        p->n_helpers = opt->helpers;
        p->timeout_ms = opt->timeout_ms;
        p->queue_max = opt->queue_max;
        r = -ENOMEM;
        p->argv = calloc(argc + 1, sizeof *p->argv);
        p->helpers = calloc((size_t) opt->helpers, sizeof *p->helpers);
        p->pfds = calloc(1 + 2 * (size_t) opt->helpers, sizeof *p->pfds);
        p->pfd_helper = calloc(1 + 2 * (size_t) opt->helpers, sizeof *p->pfd_helper);
        if (!p->argv || !p->helpers || !p->pfds || !p->pfd_helper)
                goto fail;
        for (size_t i = 0; i < argc; i++)
                if (!(p->argv[i] = strdup(opt->argv[i])))
                        goto fail;
        for (int i = 0; i < opt->helpers; i++)
                p->helpers[i].to_fd = p->helpers[i].from_fd = -1;

        p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (p->wake_fd < 0) {
                r = -errno;
                goto fail;
        }
        r = -pthread_mutex_init(&p->lock, NULL);
        if (r < 0)
                goto fail;

        /* The thread starts with every signal blocked: signals meant for the
         * daemon go to its other threads, and SIGPIPE becomes EPIPE here. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        r = -pthread_create(&p->thread, NULL, pool_main, p);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r < 0) {
                pthread_mutex_destroy(&p->lock);
                goto fail;
        }
        *ret = p;
        return 0;

fail:
        pool_release(p);
        return r;
}

void hook_pool_free(struct hook_pool *p) {
        if (!p)
                return;
        pthread_mutex_lock(&p->lock);
        p->stopping = true;
        pthread_mutex_unlock(&p->lock);
        uint64_t one = 1;
        (void) !write(p->wake_fd, &one, sizeof one);
        pthread_join(p->thread, NULL);
        pthread_mutex_destroy(&p->lock);
        pool_release(p);
}
