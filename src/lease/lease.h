/* The lease engine: hands IMPUs from pools to holders under the rules of
 * docs/DESIGN.md section 5, over any lease store backend (src/store).
 *
 * Every operation is one write transaction on the store. Functions return 0 or
 * a negative errno, and lease_engine_error() says what happened in words:
 *   -ENOENT  unknown pool or IMPU          -EPERM   holder mismatch
 *   -ENOSPC  pool exhausted                -EDQUOT  holder at its maximum
 *   -ESTALE  no live lease to act on       -EINVAL  bad argument
 *   -EEXIST  IMPU claimed by another pool  -EBUSY   store locked too long
 *   -EACCES  pool of the wrong kind        -EIO     store failure */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "common/clock.h"
#include "config/pool_config.h"
#include "store/store.h"

enum lease_state {
        LEASE_STATE_FREE,
        LEASE_STATE_LEASED,
        LEASE_STATE_QUARANTINE,
        LEASE_STATE_RETIRED,
};

struct lease {
        char pool[STORE_NAME_MAX];
        char impu[STORE_IDENTITY_MAX];
        char impi[STORE_IDENTITY_MAX];
        char holder[STORE_HOLDER_MAX];          /* "" when none */
        char client_addr[STORE_ADDR_MAX];       /* "" when unknown */
        enum lease_state state;
        int64_t leased_at;                      /* 0 when never leased */
        int64_t expires_at;                     /* end of the current or last lease */
        int64_t quarantine_until;               /* when others may have it; 0 if free */
        bool materialised;                      /* false: a range entry never handed out */
};

/* How lease_acquire() found the entry it returns. */
enum lease_origin {
        LEASE_ORIGIN_LIVE,              /* the holder's live lease, renewed (affinity) */
        LEASE_ORIGIN_QUARANTINE,        /* the holder's entry back from quarantine (affinity) */
        LEASE_ORIGIN_NEW,               /* never handed out before */
        LEASE_ORIGIN_REUSED,            /* free for longest */
};

enum {
        /* Grant another IMPU even when the holder already has a live lease
         * (up to the pool's max_per_holder); without it, acquire returns the
         * holder's live lease. */
        LEASE_ACQUIRE_ADDITIONAL = 1 << 0,
        /* Refuse (-EACCES) a pool that is not anonymous: for an admission
         * that has authenticated nobody. */
        LEASE_ACQUIRE_ANONYMOUS_ONLY = 1 << 1,
};

struct lease_engine;

/* The engine borrows the store and the clock; both must outlive it. */
int lease_engine_new(struct store *store, const struct wwsf_clock *clock, struct lease_engine **ret);
void lease_engine_free(struct lease_engine *e);

/* Words for the last failure. Owned by the engine, valid until the next call. */
const char *lease_engine_error(const struct lease_engine *e);

/* After -ENOSPC: seconds until the pool's next entry comes free (0 if unknown). */
int64_t lease_engine_retry_after(const struct lease_engine *e);

/* Group commit: between lease_batch_begin() and lease_batch_commit(), the
 * operations below share one transaction (each in a savepoint of its own, so
 * a refused one leaves the others), made durable together by the commit: one
 * flush for many leases. Nothing is durable, and nobody may be told it is,
 * before the commit returns 0. */
int lease_batch_begin(struct lease_engine *e);
int lease_batch_commit(struct lease_engine *e);
void lease_batch_rollback(struct lease_engine *e);

/* Runs fn inside one transaction (a savepoint when one is open already, as
 * in a batch): the operations it calls, and any store writes of its own
 * through lease_engine_store(), are applied all together or not at all (fn
 * returning a negative errno undoes them). Returns what fn returned, or a
 * store failure. */
typedef int (*lease_transaction_fn)(struct lease_engine *e, void *userdata);
int lease_transaction(struct lease_engine *e, const char *what, lease_transaction_fn fn, void *userdata);
/* The store the engine runs on, for writes that belong to an operation's
 * transaction (an audit record). */
struct store *lease_engine_store(const struct lease_engine *e);

int lease_acquire(struct lease_engine *e, const char *pool, const char *holder, const char *client_addr,
                  unsigned flags, struct lease *ret, enum lease_origin *ret_origin);
/* Extends the holder's lease on impu by the pool's TTL from now. A lease in
 * quarantine that is still the holder's is taken back. */
int lease_renew(struct lease_engine *e, const char *impu, const char *holder, struct lease *ret);
/* Ends the lease now; the IMPU stays in quarantine for the pool's hold. */
int lease_release(struct lease_engine *e, const char *impu, const char *holder, struct lease *ret);
/* Ends the lease now whoever holds it and drops affinity; the hold still applies. */
int lease_revoke(struct lease_engine *e, const char *impu, struct lease *ret);
int lease_lookup(struct lease_engine *e, const char *impu, struct lease *ret);

struct lease_reclaim_result {
        int reclaimed;
        bool more;              /* stopped on a bound with expired leases left */
        uint64_t elapsed_ns;
};

/* Closes at most max_count leases whose time has passed, in one transaction,
 * stopping early after max_ms. Run it repeatedly; each call is short. */
int lease_reclaim_batch(struct lease_engine *e, int max_count, int max_ms, struct lease_reclaim_result *ret);

struct lease_import_result {
        int subscriptions, pools, entries_added, entries_retired;
};

/* Creates or updates every subscription and pool of cfg (their pool model,
 * and a list's entries) in one transaction.
 * Range and wildcard pools get no entry rows. A pool's IMPU source may grow
 * or shrink (entries leaving it are retired: never handed out again, their
 * current lease runs on) but a range or wildcard template cannot change. */
int lease_import(struct lease_engine *e, const struct pool_config *cfg, struct lease_import_result *ret);

typedef int (*lease_cb)(const struct lease *l, void *userdata);

/* Materialised entries (pool == NULL: all pools), in pool and index order. */
int lease_list(struct lease_engine *e, const char *pool, lease_cb cb, void *userdata);

struct lease_pool_stats {
        struct store_pool pool;
        int64_t leased, quarantine, free, retired, materialised;
};

typedef int (*lease_pool_cb)(const struct lease_pool_stats *s, void *userdata);

/* Each pool's counts by state (pool == NULL: all pools), from the counts
 * kept with the pool: a time that does not grow with the pool's size. */
int lease_pools(struct lease_engine *e, const char *pool, lease_pool_cb cb, void *userdata);

/* Leases of impu, newest first; with at >= 0, those live at that time. */
int lease_audit(struct lease_engine *e, const char *impu, int64_t at, store_history_cb cb, void *userdata);

/* Pools a portal manages through the portal API (src/lease/pools.c). Each
 * call is one transaction (a savepoint inside lease_transaction()). The
 * definitions come checked by the pool configuration's rules
 * (pool_config_validate()); these add the store's: the portal's limits, no
 * IMPU in two pools, a template that stays once used. Besides the errors
 * above they return:
 *   -EADDRINUSE  a pool of that name exists       -EEXIST     an IMPU is in another pool
 *   -EROFS       a pool of the configuration files -ENOTEMPTY  leases are live
 *   -E2BIG       beyond the portal's limits       -ENOTSUP    not for this pool (its source, its
 *                                                              template, being deleted) */
struct lease_portal {
        int64_t id;
        int64_t max_pools, max_entries;
};

int lease_pool_create(struct lease_engine *e, const struct lease_portal *pt, const struct pool_config_pool *cp,
                      struct store_pool *ret);
/* def is the pool's whole new definition (same name, subscription and source). */
int lease_pool_update(struct lease_engine *e, const struct lease_portal *pt, int64_t pool_id,
                      const struct pool_def *def, struct store_pool *ret);

enum lease_pool_delete {
        LEASE_DELETE_IDLE,              /* refused (-ENOTEMPTY) while leases are live */
        LEASE_DELETE_FORCE,             /* revokes the live leases first */
        LEASE_DELETE_WHEN_RELEASED,     /* hands out nothing more, goes when its last lease ends */
};
/* *ret_gone tells whether the pool is gone now (*ret: as it was) or is
 * being deleted (*ret: as it is). Deleted pools keep their history; their
 * IMPUs stay out of every pool until their quarantine has passed. */
int lease_pool_delete(struct lease_engine *e, const struct lease_portal *pt, int64_t pool_id,
                      enum lease_pool_delete how, struct store_pool *ret, bool *ret_gone);
/* Adds listed entries (checked) to a listed pool. */
int lease_entries_add(struct lease_engine *e, const struct lease_portal *pt, int64_t pool_id,
                      const struct pool_list_entry *entries, size_t n, struct store_pool *ret);
/* Takes impu out of a listed pool; a leased one only when_released (then
 * *ret_deferred: it leaves the pool now and its holder keeps it until the
 * lease ends). */
int lease_entry_remove(struct lease_engine *e, const struct lease_portal *pt, int64_t pool_id, const char *impu,
                       bool when_released, bool *ret_deferred);
/* Revokes the lease of that history id (-ESTALE if it has ended). */
int lease_revoke_id(struct lease_engine *e, int64_t lease_id, struct store_history *ret);
/* Finishes deletions: pools being deleted whose last lease ended, and at
 * most limit entries whose hold has passed. *ret_n counts what went. */
int lease_purge(struct lease_engine *e, int limit, int *ret_n);
/* -EEXIST if an IMPU of d (its range, or the listed entries) is in another
 * pool than self_id; with api_only, only pools of the API are compared as
 * wholes (the configuration checked its own pools against each other). */
int lease_check_overlap(struct lease_engine *e, const struct pool_def *d, int64_t self_id,
                        const struct pool_list_entry *entries, size_t n_entries, bool api_only);

/* Moves the store's journal into the database (for owners of a store opened
 * with manual_checkpoint), without blocking other writers. */
int lease_checkpoint(struct lease_engine *e);

/* Integrity of the store ("ok") and of the lease rules. */
int lease_check(struct lease_engine *e, char *buf, size_t size);

int64_t lease_engine_now(const struct lease_engine *e);

const char *lease_state_to_string(enum lease_state s);
int lease_state_from_string(const char *s, enum lease_state *ret);
const char *lease_origin_to_string(enum lease_origin o);
