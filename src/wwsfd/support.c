/* Logging, sessions, throttling and histograms: small shared state of wwsfd,
 * each behind its own mutex. */
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <search.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wwsfd/wwsfd.h"

/* ---- logging ---- */

static _Atomic int current_level = LOG_INFO;
static const char *const level_names[] = { "error", "warning", "info", "debug" };

void log_set_level(enum log_level level) {
        current_level = level;
}

int log_level_from_string(const char *s, enum log_level *ret) {
        for (int i = 0; i < 4; i++)
                if (strcmp(s, level_names[i]) == 0) {
                        *ret = i;
                        return 0;
                }
        return -EINVAL;
}

void log_msg(enum log_level level, const char *fmt, ...) {
        if ((int) level > current_level)
                return;
        char line[1024];
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        int n = (int) strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
        n += snprintf(line + n, sizeof line - (size_t) n, ".%03ldZ wwsfd %s: ", ts.tv_nsec / 1000000,
                      level_names[level]);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(line + n, sizeof line - (size_t) n, fmt, ap);
        va_end(ap);
        /* One write per line, so lines from threads do not interleave. */
        size_t len = strnlen(line, sizeof line - 2);
        line[len++] = '\n';
        fwrite(line, 1, len, stderr);
}

/* ---- random handles ---- */

static void base64url(const uint8_t *in, size_t n, char *out) {
        static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        size_t o = 0;
        uint32_t acc = 0;
        int bits = 0;
        for (size_t i = 0; i < n; i++) {
                acc = (acc << 8) | in[i];
                bits += 8;
                while (bits >= 6) {
                        bits -= 6;
                        out[o++] = alphabet[(acc >> bits) & 63];
                }
        }
        if (bits > 0)
                out[o++] = alphabet[(acc << (6 - bits)) & 63];
        out[o] = '\0';
}

/* ---- sessions: a small hash table (search.h is not thread-safe nor
 * deletable, so an open-addressing table of our own) ---- */

/* Sessions the daemon keeps at once; past that the oldest expired go first
 * and then creation is refused. Each is under 1.5 KiB. */
#define SESSION_SLOTS 65536

struct session_table {
        pthread_mutex_t lock;
        struct session *slots;  /* id[0] == 0: empty; id[0] == 1: deleted */
        size_t used;
};

int session_table_new(struct session_table **ret) {
        struct session_table *t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        t->slots = calloc(SESSION_SLOTS, sizeof *t->slots);
        if (!t->slots) {
                free(t);
                return -ENOMEM;
        }
        pthread_mutex_init(&t->lock, NULL);
        *ret = t;
        return 0;
}

void session_table_free(struct session_table *t) {
        if (!t)
                return;
        pthread_mutex_destroy(&t->lock);
        explicit_bzero(t->slots, SESSION_SLOTS * sizeof *t->slots);
        free(t->slots);
        free(t);
}

static size_t slot_of(const char *id) {
        /* ids are random: their first bytes hash well enough. */
        uint64_t h = 1469598103934665603u;
        for (const char *p = id; *p; p++)
                h = (h ^ (unsigned char) *p) * 1099511628211u;
        return (size_t) (h % SESSION_SLOTS);
}

int session_create(struct session_table *t, struct session *s) {
        uint8_t rnd[32];
        if (gnutls_rnd(GNUTLS_RND_KEY, rnd, sizeof rnd) < 0)
                return -EIO;
        base64url(rnd, sizeof rnd, s->id);
        pthread_mutex_lock(&t->lock);
        int r = -ENOSPC;
        if (t->used < SESSION_SLOTS * 3 / 4) {
                for (size_t i = slot_of(s->id), n = 0; n < SESSION_SLOTS; i = (i + 1) % SESSION_SLOTS, n++)
                        if (t->slots[i].id[0] == 0 || t->slots[i].id[0] == 1) {
                                if (t->slots[i].id[0] == 0)
                                        t->used++;
                                t->slots[i] = *s;
                                r = 0;
                                break;
                        }
        }
        pthread_mutex_unlock(&t->lock);
        return r;
}

static struct session *find_locked(struct session_table *t, const char *id) {
        if (strlen(id) != SESSION_ID_LEN)
                return NULL;
        for (size_t i = slot_of(id), n = 0; n < SESSION_SLOTS; i = (i + 1) % SESSION_SLOTS, n++) {
                if (t->slots[i].id[0] == 0)
                        return NULL;
                if (t->slots[i].id[0] != 1 && strcmp(t->slots[i].id, id) == 0)
                        return &t->slots[i];
        }
        return NULL;
}

bool session_get(struct session_table *t, const char *id, int64_t now, struct session *ret) {
        pthread_mutex_lock(&t->lock);
        struct session *s = find_locked(t, id);
        bool ok = s && s->expires_at > now;
        if (ok)
                *ret = *s;
        pthread_mutex_unlock(&t->lock);
        return ok;
}

void session_remove(struct session_table *t, const char *id) {
        pthread_mutex_lock(&t->lock);
        struct session *s = find_locked(t, id);
        if (s) {
                explicit_bzero(s, sizeof *s);
                s->id[0] = 1;
        }
        pthread_mutex_unlock(&t->lock);
}

void session_expire(struct session_table *t, int64_t now) {
        pthread_mutex_lock(&t->lock);
        size_t live = 0;
        for (size_t i = 0; i < SESSION_SLOTS; i++) {
                struct session *s = &t->slots[i];
                if (s->id[0] > 1 && s->expires_at <= now) {
                        explicit_bzero(s, sizeof *s);
                        s->id[0] = 1;
                }
                if (s->id[0] > 1)
                        live++;
        }
        /* Rebuild when tombstones pile up, so probes stay short. */
        if (t->used > live + SESSION_SLOTS / 4) {
                struct session *old = t->slots;
                struct session *fresh = calloc(SESSION_SLOTS, sizeof *fresh);
                if (fresh) {
                        t->slots = fresh;
                        t->used = 0;
                        for (size_t i = 0; i < SESSION_SLOTS; i++)
                                if (old[i].id[0] > 1) {
                                        size_t k = slot_of(old[i].id);
                                        while (t->slots[k].id[0])
                                                k = (k + 1) % SESSION_SLOTS;
                                        t->slots[k] = old[i];
                                        t->used++;
                                }
                        explicit_bzero(old, SESSION_SLOTS * sizeof *old);
                        free(old);
                }
        }
        pthread_mutex_unlock(&t->lock);
}

/* ---- throttling: token buckets keyed by a string, in a tsearch tree ---- */

struct bucket {
        char key[280];
        double tokens;
        uint64_t updated_ms;
};

struct throttle {
        pthread_mutex_t lock;
        void *root;
        size_t count;
};

/* Keys tracked at once; a flood of distinct keys past this is refused rather
 * than allowed to eat memory. */
#define THROTTLE_KEYS_MAX 200000

static int bucket_cmp(const void *a, const void *b) {
        return strcmp(((const struct bucket *) a)->key, ((const struct bucket *) b)->key);
}

int throttle_new(struct throttle **ret) {
        struct throttle *t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        pthread_mutex_init(&t->lock, NULL);
        *ret = t;
        return 0;
}

void throttle_free(struct throttle *t) {
        if (!t)
                return;
        tdestroy(t->root, free);
        pthread_mutex_destroy(&t->lock);
        free(t);
}

int throttle_check(struct throttle *t, const char *key, int per_minute, uint64_t now_ms) {
        if (per_minute <= 0)
                return 0;
        struct bucket probe;
        snprintf(probe.key, sizeof probe.key, "%s", key);
        double rate = per_minute / 60000.0;     /* tokens per ms */
        int wait = 0;
        pthread_mutex_lock(&t->lock);
        struct bucket **found = tfind(&probe, &t->root, bucket_cmp);
        struct bucket *b = found ? *found : NULL;
        if (!b) {
                if (t->count >= THROTTLE_KEYS_MAX) {
                        pthread_mutex_unlock(&t->lock);
                        return 60;
                }
                b = malloc(sizeof *b);
                if (!b) {
                        pthread_mutex_unlock(&t->lock);
                        return 1;
                }
                *b = probe;
                b->tokens = per_minute;
                b->updated_ms = now_ms;
                tsearch(b, &t->root, bucket_cmp);
                t->count++;
        }
        b->tokens += (double) (now_ms - b->updated_ms) * rate;
        if (b->tokens > per_minute)
                b->tokens = per_minute;
        b->updated_ms = now_ms;
        if (b->tokens >= 1)
                b->tokens -= 1;
        else
                wait = (int) ((1 - b->tokens) / rate / 1000) + 1;
        pthread_mutex_unlock(&t->lock);
        return wait;
}

struct expire_ctx {
        uint64_t now_ms;
        struct bucket **victims;
        size_t n, cap;
};

static struct expire_ctx *expire_current;

static void collect_idle(const void *node, VISIT which, int depth) {
        (void) depth;
        if (which != postorder && which != leaf)
                return;
        struct bucket *b = *(struct bucket *const *) node;
        struct expire_ctx *c = expire_current;
        /* Idle for ten minutes: full again for any rate we use, so forget it. */
        if (c->now_ms - b->updated_ms > 600000 && c->n < c->cap)
                c->victims[c->n++] = b;
}

void throttle_expire(struct throttle *t, uint64_t now_ms) {
        pthread_mutex_lock(&t->lock);
        struct expire_ctx c = { .now_ms = now_ms, .cap = t->count };
        c.victims = calloc(c.cap ? c.cap : 1, sizeof *c.victims);
        if (c.victims) {
                expire_current = &c;    /* twalk has no user pointer; the lock serialises */
                twalk(t->root, collect_idle);
                expire_current = NULL;
                for (size_t i = 0; i < c.n; i++) {
                        tdelete(c.victims[i], &t->root, bucket_cmp);
                        free(c.victims[i]);
                        t->count--;
                }
                free(c.victims);
        }
        pthread_mutex_unlock(&t->lock);
}

/* ---- histograms: latency buckets in microseconds ---- */

static const uint64_t bucket_bounds_us[HISTOGRAM_BUCKETS] = {
        1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000, 5000000,
};

void histogram_observe(struct histogram *h, uint64_t us) {
        int i = 0;
        while (i < HISTOGRAM_BUCKETS && us > bucket_bounds_us[i])
                i++;
        h->buckets[i]++;
        h->count++;
        h->sum_us += us;
}

uint64_t histogram_bound_us(int i) {
        return bucket_bounds_us[i];
}

uint64_t wwsfd_now_ms(void) {
        return wwsf_monotonic_ns() / 1000000u;
}

void wwsfd_base64url(const uint8_t *in, size_t n, char *out) {
        base64url(in, n, out);
}
