/* Sessions: an open-addressing hash table that grows as sessions come, the
 * HMAC key behind tags and `sub` handles, and the cookie format. A slot is
 * small (the id, the expiry and one allocation holding the strings packed
 * end to end), so a session costs about 200 bytes, not the size of the fixed
 * buffers of struct session. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tokens/tokens.h"
#include "wwsfd/log.h"
#include "wwsfd/sessions.h"

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
        uint8_t key[SESSION_KEY_LEN];   /* tags and sub handles; never changes */
};

int session_table_new(size_t max, const uint8_t key[SESSION_KEY_LEN], struct session_table **ret) {
        struct session_table *t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        t->max = max;
        memcpy(t->key, key, sizeof t->key);
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
        explicit_bzero(t->key, sizeof t->key);
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


/* ---- the key, tags and sub handles ---- */

int session_key_load(const char *keys_dir, uint8_t key[SESSION_KEY_LEN]) {
        char path[4096];
        snprintf(path, sizeof path, "%s/sub.key", keys_dir);
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 && errno == ENOENT) {
                uint8_t fresh[SESSION_KEY_LEN];
                if (gnutls_rnd(GNUTLS_RND_KEY, fresh, sizeof fresh) < 0)
                        return -EIO;
                fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
                if (fd >= 0) {
                        bool ok = write(fd, fresh, sizeof fresh) == (ssize_t) sizeof fresh && fsync(fd) == 0;
                        close(fd);
                        explicit_bzero(fresh, sizeof fresh);
                        if (!ok) {
                                unlink(path);
                                log_error("%s: cannot write", path);
                                return -EIO;
                        }
                }
                fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        }
        if (fd < 0) {
                int r = -errno;
                log_error("%s: %s", path, strerror(-r));
                return r;
        }
        ssize_t n = read(fd, key, SESSION_KEY_LEN);
        close(fd);
        if (n != (ssize_t) SESSION_KEY_LEN) {
                log_error("%s: not a %d-byte key", path, SESSION_KEY_LEN);
                return -EINVAL;
        }
        return 0;
}

/* The first `bytes` (at most 32) of HMAC-SHA256(key, msg), base64url, into
 * b64 (room for 44 characters). */
static int key_mac(const struct session_table *t, const char *msg, size_t len, size_t bytes, char *b64) {
        uint8_t mac[32];
        int r = gnutls_hmac_fast(GNUTLS_MAC_SHA256, t->key, sizeof t->key, msg, len, mac);
        if (r >= 0)
                tokens_b64url_encode(mac, bytes, b64);
        return r;
}

void session_sub_for(const struct session_table *t, const char *holder, char *buf, size_t size) {
        char b64[48] = "";
        /* 128 bits are plenty to keep handles apart. */
        (void) key_mac(t, holder, strlen(holder), 16, b64);
        snprintf(buf, size, "u-%s", b64);
}

void session_tag(const struct session_table *t, const char *id, char buf[SESSION_TAG_LEN + 1]) {
        char b64[48];
        char msg[SESSION_ID_LEN + 8];
        /* Another message than the sub's, with the same key. Ids are
         * SESSION_ID_LEN characters (the callers check); anything longer is
         * cut, never read past. */
        int n = snprintf(msg, sizeof msg, "tag:%.*s", SESSION_ID_LEN, id);
        if (key_mac(t, msg, (size_t) n, 9, b64) < 0)
                /* Outside the tag alphabet: matches no tag a client sends. */
                memset(b64, '*', SESSION_TAG_LEN);
        memcpy(buf, b64, SESSION_TAG_LEN);
        buf[SESSION_TAG_LEN] = '\0';
}

/* Whether s[0..n) is all base64url characters (session ids and tags). */
static bool b64url_chars(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char) s[i]) && s[i] != '-' && s[i] != '_')
                        return false;
        return true;
}

bool session_tag_well_formed(const char *s) {
        return strlen(s) == SESSION_TAG_LEN && b64url_chars(s, SESSION_TAG_LEN);
}

/* ---- the cookie ---- */

/* The session ids of a cookie value, oldest first: at most max of the newest
 * well-formed ones (anything else in the cookie is ignored). */
static size_t cookie_ids(const char *v, char ids[][SESSION_ID_LEN + 1], size_t max) {
        size_t n = 0;
        while (v && *v) {
                size_t len = strcspn(v, ".");
                if (len == SESSION_ID_LEN && b64url_chars(v, len)) {
                        if (n == max) {
                                memmove(ids[0], ids[1], (max - 1) * sizeof ids[0]);
                                n--;
                        }
                        memcpy(ids[n], v, SESSION_ID_LEN);
                        ids[n][SESSION_ID_LEN] = '\0';
                        n++;
                }
                v += len + (v[len] == '.');
        }
        return n;
}

/* ids[0..n) but ids[skip], joined by '.'. */
static void join_ids(char ids[][SESSION_ID_LEN + 1], size_t n, size_t skip, char *out, size_t size) {
        size_t o = 0;
        out[0] = '\0';
        for (size_t i = 0; i < n; i++)
                if (i != skip)
                        o += (size_t) snprintf(out + o, size - o, "%s%s", o ? "." : "", ids[i]);
}

void session_cookie_others(struct session_table *t, const char *cookie, int64_t now, char *out, size_t size) {
        char ids[SESSIONS_PER_COOKIE][SESSION_ID_LEN + 1];
        size_t n = cookie_ids(cookie, ids, SESSIONS_PER_COOKIE), k = 0;
        /* The live ones, in order... */
        for (size_t i = 0; i < n; i++)
                if (session_exists(t, ids[i], now))
                        memmove(ids[k++], ids[i], sizeof ids[0]);
        /* ...the newest SESSIONS_PER_COOKIE - 1 of them. */
        size_t first = k > SESSIONS_PER_COOKIE - 1 ? k - (SESSIONS_PER_COOKIE - 1) : 0;
        join_ids(ids + first, k - first, (size_t) -1, out, size);
}

bool session_cookie_pick(struct session_table *t, const char *cookie, const char *tag, int64_t now,
                         struct session *ret, char *others, size_t size) {
        char ids[SESSIONS_PER_COOKIE][SESSION_ID_LEN + 1];
        size_t n = cookie_ids(cookie, ids, SESSIONS_PER_COOKIE), pick = n ? n - 1 : 0;
        if (tag) {
                char mine[SESSION_TAG_LEN + 1];
                for (pick = 0; pick < n; pick++) {
                        session_tag(t, ids[pick], mine);
                        if (strcmp(mine, tag) == 0)
                                break;
                }
        }
        join_ids(ids, n, pick, others, size);
        return pick < n && session_get(t, ids[pick], now, ret);
}

void session_cookie_format(char *buf, size_t size, const char *others, const char *id, int64_t max_age) {
        others = others ? others : "";
        id = id ? id : "";
        bool empty = !others[0] && !id[0];
        snprintf(buf, size, SESSION_COOKIE "=%s%s%s; Path=/api/v1/; Max-Age=%lld; HttpOnly; Secure; SameSite=Strict",
                 others, others[0] && id[0] ? "." : "", id, empty ? 0LL : (long long) max_age);
}
