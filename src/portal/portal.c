/* Portals and their API keys (see portal.h): the rules above the store's
 * rows, one write transaction per operation. */
#include "portal/portal.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "tokens/tokens.h"

#define PREFIX_LEN (sizeof PORTAL_KEY_PREFIX - 1)
#define SECRET_SIZE 32          /* 256 bits */
#define KEY_ID_LEN TOKENS_B64URL_LEN(STORE_PORTAL_KEY_ID_SIZE)
#define SECRET_LEN TOKENS_B64URL_LEN(SECRET_SIZE)
_Static_assert(PREFIX_LEN + KEY_ID_LEN + 1 + SECRET_LEN == PORTAL_KEY_LEN, "the key's layout");

/* A fresh key in key; the id and the secret's hash for the store. */
static int key_new(uint8_t id[STORE_PORTAL_KEY_ID_SIZE], uint8_t sha[STORE_PORTAL_HASH_SIZE],
                   char key[PORTAL_KEY_SIZE]) {
        uint8_t secret[SECRET_SIZE];
        int r = 0;
        if (gnutls_rnd(GNUTLS_RND_KEY, id, STORE_PORTAL_KEY_ID_SIZE) < 0 ||
            gnutls_rnd(GNUTLS_RND_KEY, secret, sizeof secret) < 0 ||
            gnutls_hash_fast(GNUTLS_DIG_SHA256, secret, sizeof secret, sha) < 0) {
                r = -EIO;
                goto out;
        }
        char *p = key;
        memcpy(p, PORTAL_KEY_PREFIX, PREFIX_LEN);
        p += PREFIX_LEN;
        p += tokens_b64url_encode(id, STORE_PORTAL_KEY_ID_SIZE, p);
        *p++ = '.';
        p += tokens_b64url_encode(secret, sizeof secret, p);
        *p = '\0';
out:
        gnutls_memset(secret, 0, sizeof secret);
        return r;
}

static int finish(struct store *s, int r) {
        if (r < 0) {
                s->ops->rollback(s);
                return r;
        }
        return s->ops->commit(s);
}

/* Inserts a new current key for the portal. A key id already taken (one
 * chance in 2^64 per key) draws another. */
static int key_insert(struct store *s, int64_t portal_id, int64_t now, char key[PORTAL_KEY_SIZE]) {
        uint8_t id[STORE_PORTAL_KEY_ID_SIZE], sha[STORE_PORTAL_HASH_SIZE];
        int r = -EEXIST;
        for (int attempt = 0; attempt < 3 && r == -EEXIST; attempt++) {
                if ((r = key_new(id, sha, key)) < 0)
                        break;
                r = s->ops->portal_key_insert(s, portal_id, id, sha, now);
        }
        if (r < 0)
                gnutls_memset(key, 0, PORTAL_KEY_SIZE);
        return r;
}

int portal_add(struct store *s, const char *name, int64_t max_pools, int64_t max_entries, int64_t now,
               char key[PORTAL_KEY_SIZE]) {
        if (!pool_name_valid(name) || max_pools < 1 || max_pools > PORTAL_MAX_POOLS_LIMIT || max_entries < 1 ||
            max_entries > PORTAL_MAX_ENTRIES_LIMIT)
                return -EINVAL;
        struct store_portal p = { .max_pools = max_pools, .max_entries = max_entries, .created_at = now };
        snprintf(p.name, sizeof p.name, "%s", name);
        int r = s->ops->begin(s);
        if (r < 0)
                return r;
        r = s->ops->portal_insert(s, &p, &p.id);
        if (r == 0)
                r = key_insert(s, p.id, now, key);
        return finish(s, r);
}

int portal_rotate(struct store *s, const char *name, int64_t grace, int64_t now, char key[PORTAL_KEY_SIZE]) {
        if (grace < 0 || grace > PORTAL_GRACE_MAX)
                return -EINVAL;
        struct store_portal p;
        int r = s->ops->begin(s);
        if (r < 0)
                return r;
        if ((r = s->ops->portal_get(s, name, now, &p)) < 0 ||
            (r = s->ops->portal_keys_expire(s, p.id, now + grace, now)) < 0 ||
            (r = s->ops->portal_set_revoked(s, p.id, 0)) < 0)
                return finish(s, r);
        return finish(s, key_insert(s, p.id, now, key));
}

int portal_revoke(struct store *s, const char *name, int64_t now) {
        struct store_portal p;
        int r = s->ops->begin(s);
        if (r < 0)
                return r;
        if ((r = s->ops->portal_get(s, name, now, &p)) == 0 && (r = s->ops->portal_keys_delete(s, p.id)) == 0)
                r = s->ops->portal_set_revoked(s, p.id, now);
        return finish(s, r);
}

struct list_state {
        portal_info_cb cb;
        void *userdata;
};

static int list_one(const struct store_portal *p, void *userdata) {
        struct list_state *st = userdata;
        struct portal_info info = {
                .max_pools = p->max_pools,
                .max_entries = p->max_entries,
                .created_at = p->created_at,
                .last_used_at = p->last_used_at,
                .revoked_at = p->revoked_at,
        };
        memcpy(info.name, p->name, sizeof info.name);
        if (p->keys_current + p->keys_grace == 0)
                info.state = PORTAL_KEY_REVOKED;
        else if (p->keys_grace > 0) {
                info.state = PORTAL_KEY_ROTATING;
                info.grace_until = p->grace_until;
        } else
                info.state = PORTAL_KEY_ACTIVE;
        return st->cb(&info, st->userdata);
}

int portal_list(struct store *s, int64_t now, portal_info_cb cb, void *userdata) {
        struct list_state st = { cb, userdata };
        return s->ops->portal_list(s, now, list_one, &st);
}

/* The key's id and the SHA-256 of its secret, or -EACCES for anything that
 * is not a key's shape. */
static int key_parse(const char *key, uint8_t id[STORE_PORTAL_KEY_ID_SIZE], uint8_t sha[STORE_PORTAL_HASH_SIZE]) {
        uint8_t secret[SECRET_SIZE];
        /* The length first: nothing past PORTAL_KEY_LEN is read. */
        if (strnlen(key, PORTAL_KEY_SIZE) != PORTAL_KEY_LEN)
                return -EACCES;
        const char *id_text = key + PREFIX_LEN, *secret_text = id_text + KEY_ID_LEN + 1;
        if (memcmp(key, PORTAL_KEY_PREFIX, PREFIX_LEN) != 0 || id_text[KEY_ID_LEN] != '.' ||
            !tokens_b64url_decode_exact(id_text, KEY_ID_LEN, id, STORE_PORTAL_KEY_ID_SIZE) ||
            !tokens_b64url_decode_exact(secret_text, SECRET_LEN, secret, sizeof secret))
                return -EACCES;
        int r = gnutls_hash_fast(GNUTLS_DIG_SHA256, secret, sizeof secret, sha) < 0 ? -EIO : 0;
        gnutls_memset(secret, 0, sizeof secret);
        return r;
}

int portal_authenticate_in(struct store *s, const char *key, int64_t now, struct store_portal *ret) {
        uint8_t id[STORE_PORTAL_KEY_ID_SIZE], sha[STORE_PORTAL_HASH_SIZE];
        struct store_portal_key k;
        int r = key_parse(key, id, sha);
        if (r < 0)
                return r;
        r = s->ops->portal_key_get(s, id, &k);
        if (r == -ENOENT)
                return -EACCES;
        /* The secret's hash in constant time: how long the comparison takes
         * says nothing of how much of it matched. */
        if (r == 0 && (gnutls_memcmp(sha, k.secret_sha256, sizeof sha) != 0 || (k.expires_at != 0 && k.expires_at <= now)))
                return -EACCES;
        if (r == 0)
                r = s->ops->portal_get(s, k.portal, now, ret);
        if (r == 0 && ret->last_used_at != now)
                r = s->ops->portal_set_last_used(s, k.portal_id, now);
        return r == -ENOENT ? -EACCES : r;
}

int portal_authenticate(struct store *s, const char *key, int64_t now, char ret_name[POOL_NAME_MAX]) {
        struct store_portal p;
        int r = s->ops->begin(s);
        if (r < 0)
                return r;
        if ((r = finish(s, portal_authenticate_in(s, key, now, &p))) == 0)
                memcpy(ret_name, p.name, POOL_NAME_MAX);
        return r;
}

int portal_log(struct store *s, const char *name, int64_t since, store_audit_cb cb, void *userdata) {
        struct store_portal p;
        int r = s->ops->portal_get(s, name, 0, &p);
        return r < 0 ? r : s->ops->audit_list(s, p.id, since, cb, userdata);
}

const char *portal_key_state_to_string(enum portal_key_state st) {
        static const char *const words[] = {
                [PORTAL_KEY_ACTIVE] = "active",
                [PORTAL_KEY_ROTATING] = "rotating",
                [PORTAL_KEY_REVOKED] = "revoked",
        };
        return (size_t) st < sizeof words / sizeof words[0] ? words[st] : "?";
}
