/* Portals: the identities that manage their own subscriptions and pools
 * through the portal API, and their API keys.
 *
 * A key is "wwsfk_" base64url(8-byte key id) "." base64url(32-byte secret),
 * PORTAL_KEY_LEN characters, from gnutls_rnd(GNUTLS_RND_KEY). The store keeps
 * the key id (found by its index) and the SHA-256 of the secret, which is
 * compared in constant time; the key itself exists only in the caller's
 * buffer. A portal has one current key; after a rotation the old keys work
 * for a grace period; a revocation stops every key at once.
 *
 * Functions return 0 or a negative errno: -EINVAL (a bad name or limit),
 * -EEXIST (the name is taken), -ENOENT (no such portal), -EACCES (a key
 * refused), -EIO/-EBUSY/-ENOSPC from the store (store->ops->error() says
 * more). Each runs in one write transaction of its own. */
#pragma once
#include <stdint.h>

#include "pool/pool.h"
#include "store/store.h"

#define PORTAL_KEY_PREFIX "wwsfk_"
/* "wwsfk_" + 11 + "." + 43 characters. */
#define PORTAL_KEY_LEN 61
#define PORTAL_KEY_SIZE (PORTAL_KEY_LEN + 1)

/* Limits a portal is given unless told otherwise, and their bounds. A portal
 * is a tenant that makes pools through an API: each pool costs a row and a
 * name in every listing, and each entry may become a row; the defaults are a
 * large tenant's needs, the bounds keep one tenant from owning the store. */
#define PORTAL_MAX_POOLS_DEFAULT 16
#define PORTAL_MAX_POOLS_LIMIT 1000
#define PORTAL_MAX_ENTRIES_DEFAULT INT64_C(100000)
#define PORTAL_MAX_ENTRIES_LIMIT POOL_SIZE_MAX

/* How long old keys keep working after a rotation: long enough to roll the
 * new key out to a portal's servers; at most a week, so that a rotation done
 * because a key leaked does not leave it usable for long. */
#define PORTAL_GRACE_DEFAULT 3600
#define PORTAL_GRACE_MAX (7 * 86400)

/* How long the answer to a POST with an Idempotency-Key is kept. */
#define PORTAL_IDEMPOTENCY_TTL 86400

enum portal_key_state {
        PORTAL_KEY_ACTIVE,      /* one current key */
        PORTAL_KEY_ROTATING,    /* a current key and old ones in their grace period */
        PORTAL_KEY_REVOKED,     /* no key works */
};

struct portal_info {
        char name[POOL_NAME_MAX];
        int64_t max_pools, max_entries;
        int64_t created_at, last_used_at, revoked_at;   /* 0 = never */
        enum portal_key_state state;
        int64_t grace_until;    /* rotating: when the last old key stops; else 0 */
};

typedef int (*portal_info_cb)(const struct portal_info *p, void *userdata);

/* Makes portal name (pool_name_valid() rules: it is the owner of its
 * subscriptions) with the given limits and its first key, written to key
 * (NUL-terminated). The caller shows the key once and wipes it. */
int portal_add(struct store *s, const char *name, int64_t max_pools, int64_t max_entries, int64_t now,
               char key[PORTAL_KEY_SIZE]);

/* A new current key for name, in key; the portal's older keys stop at
 * now + grace (at once for grace 0; a key already due to stop earlier keeps
 * its end). Also gives a revoked portal a key again. */
int portal_rotate(struct store *s, const char *name, int64_t grace, int64_t now, char key[PORTAL_KEY_SIZE]);

/* Every key of name stops at once. */
int portal_revoke(struct store *s, const char *name, int64_t now);

/* Every portal, by name, with its key state at now. */
int portal_list(struct store *s, int64_t now, portal_info_cb cb, void *userdata);

/* 0 with the portal's name in ret_name if key is a key of a portal that works
 * at now (its last use becomes now); -EACCES for any key that does not, be it
 * malformed, unknown, wrong, expired or revoked; or a store error. */
int portal_authenticate(struct store *s, const char *key, int64_t now, char ret_name[POOL_NAME_MAX]);

/* The same inside the caller's transaction, with the whole portal (its id
 * and limits) in *ret. */
int portal_authenticate_in(struct store *s, const char *key, int64_t now, struct store_portal *ret);

/* What portal name changed through the API at or after since, oldest first. */
int portal_log(struct store *s, const char *name, int64_t since, store_audit_cb cb, void *userdata);

const char *portal_key_state_to_string(enum portal_key_state st);
