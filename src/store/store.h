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
        int64_t imported_at;
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

#define STORE_PORTAL_KEY_ID_SIZE 8
#define STORE_PORTAL_HASH_SIZE 32       /* SHA-256 */

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
        int (*pool_counts)(struct store *s, int64_t pool_id, int64_t now, struct store_counts *ret);
        /* leased and quarantine only (materialised and retired -1), in time
         * proportional to them. */
        int (*pool_busy)(struct store *s, int64_t pool_id, int64_t now, struct store_counts *ret);

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

        /* Copies the WAL into the database without waiting for readers. */
        int (*checkpoint)(struct store *s);

        /* "ok", or what an integrity check found. */
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
