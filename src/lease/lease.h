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

int lease_pools(struct lease_engine *e, const char *pool, lease_pool_cb cb, void *userdata);
/* The same for every pool with leased, quarantine and free only
 * (materialised and retired -1), in time proportional to the busy entries
 * rather than to every entry ever materialised: for /metrics. */
int lease_pools_busy(struct lease_engine *e, lease_pool_cb cb, void *userdata);

/* Leases of impu, newest first; with at >= 0, those live at that time. */
int lease_audit(struct lease_engine *e, const char *impu, int64_t at, store_history_cb cb, void *userdata);

/* Moves the store's journal into the database (for owners of a store opened
 * with manual_checkpoint), without blocking other writers. */
int lease_checkpoint(struct lease_engine *e);

/* Integrity of the store ("ok") and of the lease rules. */
int lease_check(struct lease_engine *e, char *buf, size_t size);

int64_t lease_engine_now(const struct lease_engine *e);

const char *lease_state_to_string(enum lease_state s);
int lease_state_from_string(const char *s, enum lease_state *ret);
const char *lease_origin_to_string(enum lease_origin o);
