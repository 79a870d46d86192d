/* The lease store: every byte of SQL in the project sits behind this interface.
 *
 * The lease engine (src/lease) holds the policy (affinity, quarantine, reuse
 * order, limits) and calls these primitives inside one write transaction per
 * operation. A backend implements struct store_ops; SQLite (store_sqlite.c) is
 * the one we ship. A PostgreSQL backend for several wwsfd nodes would
 * implement the same operations (entry_first_available with FOR UPDATE SKIP
 * LOCKED) and leave every caller as it is.
 *
 * Functions return 0, or a negative errno: -ENOENT (no such row), -EEXIST (a
 * unique key is taken), -EBUSY (the database stayed locked past the busy
 * timeout), -EIO (anything else; store_error() has the backend's words).
 * Strings in the structs are copied in; they are bounded by the sizes below,
 * which the engine checks before it calls in. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pool/pool.h"

/* Buffer sizes, the NUL included. Names and identities are the pool model's. */
#define STORE_NAME_MAX POOL_NAME_MAX            /* pool and subscription names, tenant */
#define STORE_IDENTITY_MAX POOL_IDENTITY_MAX    /* IMPU, IMPI */
#define STORE_HOLDER_MAX 256    /* holder handle: 255 + NUL */
#define STORE_ADDR_MAX 64       /* client address: INET6_ADDRSTRLEN fits */

#define STORE_PORTAL_KEY_ID_SIZE 8
#define STORE_PORTAL_HASH_SIZE 32       /* SHA-256 */

/* Retired entries and never-free ones use this as avail_at, so the
 * longest-free-first index never reaches them. */
#define STORE_NEVER INT64_MAX

enum store_sync {
        STORE_SYNC_FULL,        /* fsync every commit: survives power loss (default) */
        STORE_SYNC_NORMAL,      /* WAL synced at checkpoints: survives a process crash */
        STORE_SYNC_OFF,         /* for benchmarks that want the CPU cost alone */
};

struct store_options {
        enum store_sync sync;
        int busy_timeout_ms;    /* 0 = 5000 */
        bool read_only;
        /* No automatic WAL checkpoints: the owner calls ops->checkpoint(). */
        bool manual_checkpoint;
};

/* A pool as the store keeps it: the definition pool_upsert() wrote, the
 * subscription it names, and the store's own columns. */
struct store_pool {
        int64_t id;
        struct pool_def def;
        struct pool_subscription sub;
        int64_t next_index;     /* entries materialised so far: the index of the next one */
        int64_t imported_at;    /* last written (import, or a change through the API) */
        int64_t created_at;
        int64_t portal_id;      /* the portal that manages it through the API; 0: the pool-config files */
        int64_t revision;       /* its ETag: grows with every change of it or its entries */
        bool deleting;          /* hands out nothing more; goes when its last lease ends */
        bool deleted;           /* gone: only pool_get_by_id() finds it, for its history */
};

/* A subscription and how many pools it has. */
struct store_subscription {
        int64_t id;
        struct pool_subscription sub;
        int64_t pools;
};

struct store_entry {
        int64_t id;             /* 0 before insert */
        int64_t pool_id;
        char pool[STORE_NAME_MAX];      /* filled by lookups */
        int64_t idx;
        char impu[STORE_IDENTITY_MAX];
        char impi[STORE_IDENTITY_MAX];
        char holder[STORE_HOLDER_MAX];  /* "" = none */
        char client_addr[STORE_ADDR_MAX];
        int64_t leased_at, expires_at, avail_at;
        bool retired;
        int64_t history_id;     /* 0 = no open lease */
};

struct store_history {
        int64_t id;
        int64_t pool_id;
        char pool[STORE_NAME_MAX];
        char impu[STORE_IDENTITY_MAX];
        char impi[STORE_IDENTITY_MAX];
        char holder[STORE_HOLDER_MAX];
        char client_addr[STORE_ADDR_MAX];
        int64_t started_at;
        int64_t ended_at;       /* for an open lease: its current expires_at */
        bool open;
        char end_reason[16];    /* "" while open */
        int64_t renewals;
        int64_t hold;           /* the pool's quarantine: others may have the IMPU at ended_at + hold */
};

/* Which leases of a pool history_page() returns. */
enum store_lease_state {
        STORE_LEASES_ALL,
        STORE_LEASES_OPEN,              /* not ended */
        STORE_LEASES_QUARANTINE,        /* ended, and ended_at + hold > now */
        STORE_LEASES_ENDED,             /* ended, and past their hold */
};

struct store_history_filter {
        enum store_lease_state state;
        int64_t now;
        const char *holder;     /* NULL: any */
        const char *impu;       /* NULL: any */
};

/* One write of a portal through the API (sql/0003-portal-api.sql). */
#define STORE_AUDIT_ACTION_MAX 32
#define STORE_AUDIT_RESOURCE_MAX 512
struct store_audit {
        int64_t id;
        int64_t portal_id;
        int64_t at;
        char action[STORE_AUDIT_ACTION_MAX];
        char resource[STORE_AUDIT_RESOURCE_MAX];
        const char *before;     /* JSON, or NULL; borrowed */
        const char *after;
        char client_addr[STORE_ADDR_MAX];
};

/* The answer kept for a POST with an Idempotency-Key. */
#define STORE_IDEMPOTENCY_KEY_MAX 129
struct store_idempotency {
        int64_t portal_id;
        char key[STORE_IDEMPOTENCY_KEY_MAX];
        uint8_t request_sha256[STORE_PORTAL_HASH_SIZE];
        int status;
        char *body;             /* idempotency_get(): the caller frees it; put: borrowed */
        char location[STORE_AUDIT_RESOURCE_MAX];
        int64_t created_at;
};

struct store_counts {
        int64_t materialised, leased, quarantine, retired;
};

/* A portal (sql/0002-portals.sql); times are 0 for never. */
struct store_portal {
        int64_t id;
        char name[STORE_NAME_MAX];
        int64_t max_pools, max_entries;
        int64_t created_at, last_used_at, revoked_at;
        /* Its keys at the time the lookup was given: */
        int64_t keys_current;   /* without an end */
        int64_t keys_grace;     /* old keys that still work */
        int64_t grace_until;    /* when the last of those stops, 0 if none */
};


/* One API key of a portal, found by its key id. */
struct store_portal_key {
        int64_t portal_id;
        char portal[STORE_NAME_MAX];
        uint8_t secret_sha256[STORE_PORTAL_HASH_SIZE];
        int64_t expires_at;     /* 0 = the current key */
};

struct store;

typedef int (*store_portal_cb)(const struct store_portal *p, void *userdata);
typedef int (*store_pool_cb)(const struct store_pool *p, void *userdata);
typedef int (*store_entry_cb)(const struct store_entry *e, void *userdata);
typedef int (*store_history_cb)(const struct store_history *h, void *userdata);
typedef int (*store_subscription_cb)(const struct store_subscription *s, void *userdata);
typedef int (*store_audit_cb)(const struct store_audit *a, void *userdata);

struct store_ops {
        const char *backend;
        void (*close)(struct store *s);
        const char *(*error)(struct store *s);

        int (*begin)(struct store *s);          /* a write transaction, taken at once */
        int (*commit)(struct store *s);
        void (*rollback)(struct store *s);
        /* Inside a transaction: a nested one (SQL SAVEPOINT) that can be
         * undone alone, so one operation of a batch can fail without the rest. */
        int (*savepoint)(struct store *s);
        int (*savepoint_release)(struct store *s);
        void (*savepoint_rollback)(struct store *s);

        int (*subscription_upsert)(struct store *s, const struct pool_subscription *sub);
        /* Inserts or updates the pool row from its definition; keeps next_index.
         * def->subscription names a subscription upserted before. */
        int (*pool_upsert)(struct store *s, const struct pool_def *def, int64_t now);
        int (*pool_get)(struct store *s, const char *name, struct store_pool *ret);
        int (*pool_list)(struct store *s, store_pool_cb cb, void *userdata);
        int (*pool_set_next_index)(struct store *s, int64_t pool_id, int64_t next_index);
        /* The pool's counts at now, from the counts kept with the pool: a
         * time independent of the pool's size (it grows only with the
         * entries whose lease or quarantine ended since the counts were last
         * moved forward; a time before that is counted by a scan). -ENOENT
         * for no such pool. */
        int (*pool_counts)(struct store *s, int64_t pool_id, int64_t now, struct store_counts *ret);
        /* Moves the pool's kept counts (pool_id 0: every pool's) forward to
         * now, never back. The engine calls it before it closes a lease that
         * ended at now (sql/0004-pool-counts.sql), and each reclaim for all. */
        int (*pool_counts_advance)(struct store *s, int64_t pool_id, int64_t now);

        int (*entry_by_impu)(struct store *s, const char *impu, struct store_entry *ret);
        /* The holder's entry in the pool with expires_at > now (live), or else
         * with expires_at <= now < avail_at (quarantine, latest first). */
        int (*entry_by_holder)(struct store *s, int64_t pool_id, const char *holder, int64_t now, bool live,
                               struct store_entry *ret);
        int (*entry_count_live)(struct store *s, int64_t pool_id, const char *holder, int64_t now, int64_t *ret);
        /* The entry with the lowest avail_at in the pool (-ENOENT if none). */
        int (*entry_first_available)(struct store *s, int64_t pool_id, struct store_entry *ret);
        int (*entry_insert)(struct store *s, struct store_entry *e);
        /* Writes the lease columns: holder, client_addr, leased_at,
         * expires_at, avail_at, retired, history_id. */
        int (*entry_update)(struct store *s, const struct store_entry *e);
        int (*entry_set_impi)(struct store *s, int64_t id, const char *impi);
        /* Entries of the pool with from <= idx < to: retired = true marks the
         * active ones retired (avail_at STORE_NEVER); false restores the retired
         * ones (avail_at = expires_at + hold, or 0 if never leased). *ret_changed
         * counts the entries that changed. */
        int (*entries_set_retired)(struct store *s, int64_t pool_id, int64_t from, int64_t to, bool retired,
                                   int64_t hold, int64_t *ret_changed);
        /* Up to limit entries with an open lease and expires_at <= now, oldest first. */
        int (*entries_expired)(struct store *s, int64_t now, int limit, store_entry_cb cb, void *userdata);
        int (*entry_list)(struct store *s, const char *pool, store_entry_cb cb, void *userdata);

        int (*history_open)(struct store *s, const struct store_entry *e, int64_t started_at, int64_t *ret_id);
        int (*history_close)(struct store *s, int64_t id, int64_t ended_at, const char *reason);
        int (*history_renewed)(struct store *s, int64_t id);
        /* Leases of impu, newest first; with at >= 0 only those live at that time. */
        int (*history_list)(struct store *s, const char *impu, int64_t at, store_history_cb cb, void *userdata);

        /* Portals and their API keys. The key counts of struct store_portal
         * are those at now. */
        int (*portal_insert)(struct store *s, const struct store_portal *p, int64_t *ret_id);
        int (*portal_get)(struct store *s, const char *name, int64_t now, struct store_portal *ret);
        int (*portal_list)(struct store *s, int64_t now, store_portal_cb cb, void *userdata);
        int (*portal_set_last_used)(struct store *s, int64_t id, int64_t at);
        /* at 0 clears the mark. */
        int (*portal_set_revoked)(struct store *s, int64_t id, int64_t at);
        int (*portal_key_insert)(struct store *s, int64_t portal_id, const uint8_t key_id[STORE_PORTAL_KEY_ID_SIZE],
                                 const uint8_t secret_sha256[STORE_PORTAL_HASH_SIZE], int64_t now);
        int (*portal_key_get)(struct store *s, const uint8_t key_id[STORE_PORTAL_KEY_ID_SIZE],
                              struct store_portal_key *ret);
        /* The portal's keys that would work past until end at until; those
         * that ended by now are deleted. */
        int (*portal_keys_expire)(struct store *s, int64_t portal_id, int64_t until, int64_t now);
        int (*portal_keys_delete)(struct store *s, int64_t portal_id);

        /* The portal API's view. A pool's owner is its subscription's owner;
         * pools of the API have portal_id too. Deleted pools are found by
         * pool_get_by_id() only (with deleted set). */
        int (*pool_get_by_id)(struct store *s, int64_t id, struct store_pool *ret);
        /* Pools of the subscriptions owned by owner (only of subscription, if
         * not NULL) with id > after_id, in id order, at most limit. */
        int (*pool_list_owned)(struct store *s, const char *owner, const char *subscription, int64_t after_id,
                               int limit, store_pool_cb cb, void *userdata);
        /* Makes the API of that portal the pool's manager (0: the files). */
        int (*pool_set_portal)(struct store *s, int64_t pool_id, int64_t portal_id);
        /* A new revision (ETag) of the pool, written at now. */
        int (*pool_touch)(struct store *s, int64_t pool_id, int64_t now);
        int (*pool_set_deleting)(struct store *s, int64_t pool_id, bool deleting);
        /* Marks the pool deleted: its row stays for the history, under a
         * name no pool can take; its entries stay until entries_purge(). */
        int (*pool_delete)(struct store *s, int64_t pool_id, int64_t now);
        /* The pools a portal manages and the IMPUs they may hold in all. */
        int (*portal_usage)(struct store *s, int64_t portal_id, int64_t *ret_pools, int64_t *ret_entries);
        int (*subscription_get)(struct store *s, const char *name, struct store_subscription *ret);
        /* By name. */
        int (*subscription_list_owned)(struct store *s, const char *owner, store_subscription_cb cb, void *userdata);
        /* Entries of the pool with idx > after_idx, in index order, at most limit. */
        int (*entry_page)(struct store *s, int64_t pool_id, int64_t after_idx, int limit, store_entry_cb cb,
                          void *userdata);
        int (*entry_delete)(struct store *s, int64_t id);
        int (*history_get)(struct store *s, int64_t id, struct store_history *ret);
        /* Leases of the pool with id > after_id matching f, in id order, at most limit. */
        int (*history_page)(struct store *s, int64_t pool_id, const struct store_history_filter *f, int64_t after_id,
                            int limit, store_history_cb cb, void *userdata);
        /* Deletes up to limit retired entries that no lease or hold needs any
         * more (past expires_at + the pool's quarantine) of deleted pools and
         * of listed pools of the API; *ret_n counts them. */
        int (*entries_purge)(struct store *s, int64_t now, int limit, int64_t *ret_n);
        int (*audit_insert)(struct store *s, const struct store_audit *a);
        /* The portal's writes at or after since, oldest first. */
        int (*audit_list)(struct store *s, int64_t portal_id, int64_t since, store_audit_cb cb, void *userdata);
        int (*idempotency_get)(struct store *s, int64_t portal_id, const char *key, struct store_idempotency *ret);
        int (*idempotency_put)(struct store *s, const struct store_idempotency *rec);
        /* Forgets the answers kept from before `before`. */
        int (*idempotency_expire)(struct store *s, int64_t before);

        /* Copies the WAL into the database without waiting for readers. */
        int (*checkpoint)(struct store *s);

        /* "ok", or what an integrity check found: the database's own, and
         * every pool's kept counts against a scan of its entries. */
        int (*check)(struct store *s, char *buf, size_t size);
};

struct store {
        const struct store_ops *ops;
};

/* Opens (creating if needed) the SQLite store at path and brings its schema up
 * to date. A database from a newer schema is refused with -EPROTO and the
 * reason in *ret_error (static or owned by the caller's buffer). */
int store_sqlite_open(const char *path, const struct store_options *opt, struct store **ret,
                      char *errbuf, size_t errsize);

/* Checks that the statements on the path of every lease operation use their
 * indexes and scan no table (a test runs it). */
int store_sqlite_check_plans(struct store *s, char *err, size_t errsize);

/* Closes any backend; accepts NULL. */
void store_close(struct store *s);

/* Highest schema version this build knows. */
int store_schema_version(void);
