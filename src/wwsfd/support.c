/* Logging, sessions, throttling and histograms: small shared state of wwsfd,
 * each behind its own mutex. */
#include <errno.h>
#include <malloc.h>
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

/* ---- sessions: an open-addressing hash table that grows as sessions come.
 * A slot is small (the id, the expiry and one allocation holding the strings
 * packed end to end), so a session costs about 200 bytes, not the size of the
 * fixed buffers of struct session. ---- */

#define SESSION_SLOTS_MIN 1024u

struct session_slot {
        char id[SESSION_ID_LEN + 1];    /* "" empty, "\1" deleted */
        bool anon;
        int64_t expires_at;
        char *data;                     /* holder, sub, pool, impu, impi, each NUL-ended */
};

struct session_table {
        pthread_mutex_t lock;
        struct session_slot *slots;
        size_t n_slots;                 /* a power of two */
        size_t used;                    /* live and deleted slots */
        size_t live;
        size_t max;                     /* live sessions at most ([session] max_sessions) */
};

int session_table_new(size_t max, struct session_table **ret) {
        struct session_table *t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        t->max = max;
        t->slots = calloc(SESSION_SLOTS_MIN, sizeof *t->slots);
        if (!t->slots) {
                free(t);
                return -ENOMEM;
        }
        t->n_slots = SESSION_SLOTS_MIN;
        pthread_mutex_init(&t->lock, NULL);
        *ret = t;
        return 0;
}

static void slot_clear(struct session_slot *s) {
        if (s->data) {
                explicit_bzero(s->data, malloc_usable_size(s->data));
                free(s->data);
        }
        explicit_bzero(s, sizeof *s);
}

void session_table_free(struct session_table *t) {
        if (!t)
                return;
        for (size_t i = 0; i < t->n_slots; i++)
                slot_clear(&t->slots[i]);
        free(t->slots);
        pthread_mutex_destroy(&t->lock);
        free(t);
}

static size_t slot_hash(const char *id) {
        /* ids are random: FNV-1a spreads them well enough. */
        uint64_t h = 1469598103934665603u;
        for (const char *p = id; *p; p++)
                h = (h ^ (unsigned char) *p) * 1099511628211u;
        return (size_t) h;
}

static bool slot_live(const struct session_slot *s) {
        return (unsigned char) s->id[0] > 1;
}

/* Moves every live slot into a table of n slots (tombstones dropped). */
static int rehash_locked(struct session_table *t, size_t n) {
        struct session_slot *fresh = calloc(n, sizeof *fresh);
        if (!fresh)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_slots; i++) {
                if (!slot_live(&t->slots[i]))
                        continue;
                size_t k = slot_hash(t->slots[i].id) & (n - 1);
                while (fresh[k].id[0])
                        k = (k + 1) & (n - 1);
                fresh[k] = t->slots[i];
        }
        explicit_bzero(t->slots, t->n_slots * sizeof *t->slots);
        free(t->slots);
        t->slots = fresh;
        t->n_slots = n;
        t->used = t->live;
        return 0;
}

bool session_table_full(struct session_table *t) {
        pthread_mutex_lock(&t->lock);
        bool full = t->live >= t->max;
        pthread_mutex_unlock(&t->lock);
        return full;
}

int session_create(struct session_table *t, struct session *s) {
        uint8_t rnd[32];
        if (gnutls_rnd(GNUTLS_RND_KEY, rnd, sizeof rnd) < 0)
                return -EIO;
        tokens_b64url_encode(rnd, sizeof rnd, s->id);
        const char *parts[] = { s->holder, s->sub, s->pool, s->impu, s->impi };
        size_t len = 0;
        for (size_t i = 0; i < 5; i++)
                len += strlen(parts[i]) + 1;
        char *data = malloc(len);
        if (!data)
                return -ENOMEM;
        for (size_t i = 0, o = 0; i < 5; i++) {
                size_t n = strlen(parts[i]) + 1;
                memcpy(data + o, parts[i], n);
                o += n;
        }
        pthread_mutex_lock(&t->lock);
        int r = 0;
        if (t->live >= t->max)
                r = -ENOSPC;
        else if ((t->used + 1) * 4 > t->n_slots * 3)
                /* Past 3/4 full: twice the size, or the same size when it is
                 * mostly tombstones. */
                r = rehash_locked(t, t->live * 2 + 2 > t->n_slots / 2 ? t->n_slots * 2 : t->n_slots);
        if (r == 0) {
                size_t k = slot_hash(s->id) & (t->n_slots - 1);
                while (slot_live(&t->slots[k]))
                        k = (k + 1) & (t->n_slots - 1);
                if (!t->slots[k].id[0])
                        t->used++;
                t->slots[k] = (struct session_slot) { .anon = s->anon, .expires_at = s->expires_at, .data = data };
                memcpy(t->slots[k].id, s->id, sizeof t->slots[k].id);
                t->live++;
                data = NULL;
        }
        pthread_mutex_unlock(&t->lock);
        free(data);
        return r;
}

static struct session_slot *find_locked(struct session_table *t, const char *id) {
        if (strlen(id) != SESSION_ID_LEN)
                return NULL;
        for (size_t k = slot_hash(id) & (t->n_slots - 1), n = 0; n < t->n_slots; k = (k + 1) & (t->n_slots - 1), n++) {
                if (!t->slots[k].id[0])
                        return NULL;
                if (slot_live(&t->slots[k]) && strcmp(t->slots[k].id, id) == 0)
                        return &t->slots[k];
        }
        return NULL;
}

bool session_get(struct session_table *t, const char *id, int64_t now, struct session *ret) {
        pthread_mutex_lock(&t->lock);
        struct session_slot *s = find_locked(t, id);
        bool ok = s && s->expires_at > now;
        if (ok) {
                memset(ret, 0, sizeof *ret);
                memcpy(ret->id, s->id, sizeof ret->id);
                ret->anon = s->anon;
                ret->expires_at = s->expires_at;
                char *fields[] = { ret->holder, ret->sub, ret->pool, ret->impu, ret->impi };
                size_t sizes[] = { sizeof ret->holder, sizeof ret->sub, sizeof ret->pool, sizeof ret->impu,
                                   sizeof ret->impi };
                const char *p = s->data;
                for (size_t i = 0; i < 5; i++) {
                        snprintf(fields[i], sizes[i], "%s", p);
                        p += strlen(p) + 1;
                }
        }
        pthread_mutex_unlock(&t->lock);
        return ok;
}

bool session_exists(struct session_table *t, const char *id, int64_t now) {
        pthread_mutex_lock(&t->lock);
        struct session_slot *s = find_locked(t, id);
        bool ok = s && s->expires_at > now;
        pthread_mutex_unlock(&t->lock);
        return ok;
}

static void remove_locked(struct session_table *t, struct session_slot *s) {
        slot_clear(s);
        s->id[0] = 1;   /* a tombstone keeps the probe chains of the others */
        t->live--;
}

void session_remove(struct session_table *t, const char *id) {
        pthread_mutex_lock(&t->lock);
        struct session_slot *s = find_locked(t, id);
        if (s)
                remove_locked(t, s);
        pthread_mutex_unlock(&t->lock);
}

void session_expire(struct session_table *t, int64_t now) {
        pthread_mutex_lock(&t->lock);
        for (size_t i = 0; i < t->n_slots; i++)
                if (slot_live(&t->slots[i]) && t->slots[i].expires_at <= now)
                        remove_locked(t, &t->slots[i]);
        /* Shrink when mostly empty, so a burst does not hold its memory. */
        size_t n = t->n_slots;
        while (n > SESSION_SLOTS_MIN && t->live * 8 < n)
                n /= 2;
        if (n != t->n_slots || t->used > t->live * 2 + SESSION_SLOTS_MIN / 2)
                (void) rehash_locked(t, n);
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
