/* Throttling: token buckets in a tsearch tree, behind one mutex. */
#include <errno.h>
#include <pthread.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wwsfd/throttle.h"

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

