/* The lease engine's insides, shared by its files (lease.c: leases and
 * import; pools.c: pools managed through the portal API). Nothing outside
 * src/lease includes this. */
#pragma once
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#include "lease/lease.h"

struct lease_engine {
        struct store *store;
        const struct store_ops *ops;
        const struct wwsf_clock *clock;
        int64_t retry_after;
        int depth;              /* transactions open: a batch or lease_transaction() calls */
        char error[768];
};

__attribute__((format(printf, 3, 4)))
static inline int fail(struct lease_engine *e, int r, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->error, sizeof e->error, fmt, ap);
        va_end(ap);
        return r;
}

static inline int store_fail(struct lease_engine *e, int r, const char *what) {
        if (r == -EBUSY)
                return fail(e, r, "%s: the lease store stayed locked by another process (%s)", what,
                            e->ops->error(e->store));
        return fail(e, r, "%s: lease store error: %s", what, e->ops->error(e->store));
}


/* Evaluates call inside one write transaction: commit on success, else roll
 * back. Inside a transaction already (a batch, lease_transaction()) the call
 * gets a savepoint of its own instead, and the outer commit makes it durable. */
#define IN_TRANSACTION(e, what, call)                                                                          \
        ({                                                                                                     \
                bool _nested = (e)->depth > 0;                                                                 \
                int _r = _nested ? (e)->ops->savepoint((e)->store) : (e)->ops->begin((e)->store);              \
                if (_r < 0)                                                                                    \
                        _r = store_fail((e), _r, what);                                                        \
                else {                                                                                         \
                        (e)->depth++;                                                                          \
                        _r = (call);                                                                           \
                        (e)->depth--;                                                                          \
                        if (_r < 0) {                                                                          \
                                if (_nested)                                                                   \
                                        (e)->ops->savepoint_rollback((e)->store);                              \
                                else                                                                           \
                                        (e)->ops->rollback((e)->store);                                        \
                        } else if ((_r = _nested ? (e)->ops->savepoint_release((e)->store)                     \
                                                 : (e)->ops->commit((e)->store)) < 0)                          \
                                _r = store_fail((e), _r, what);                                                \
                }                                                                                              \
                _r;                                                                                            \
        })

/* Whether a template keeps naming the same identities (see lease.c). */
bool lease_same_template(const struct pool_template *stored, const struct pool_template *configured);
/* Fills en's IMPU and IMPI for index idx (range) or token (wildcard). */
int lease_fill_identity(const struct store_pool *p, struct store_entry *en, const char *token, int64_t idx);
