/* Lease policy over the store primitives. The rules (docs/DESIGN.md section 5):
 *  - affinity: a holder with a live lease, or whose last IMPU is still in
 *    quarantine, gets that IMPU back;
 *  - quarantine: an IMPU goes to another holder only hold seconds after its
 *    last lease ended (avail_at = end of lease + hold);
 *  - reuse: never-used entries first, then the one free for longest (lowest
 *    avail_at), found through an index: O(log n) in the pool size;
 *  - range and wildcard pools create an entry row only when first handed out.
 * Each public call is one store transaction: all or nothing. */
#include "lease/lease.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/parse.h"
#include "lease/lease-internal.h"

/* A wildcard token collides with an existing IMPU with odds of about
 * size / 32^12; eight fresh draws in a row all colliding means a bug. */
#define WILDCARD_ATTEMPTS 8

int lease_engine_new(struct store *store, const struct wwsf_clock *clock, struct lease_engine **ret) {
        struct lease_engine *e = calloc(1, sizeof *e);
        if (!e)
                return -ENOMEM;
        e->store = store;
        e->ops = store->ops;
        e->clock = clock ? clock : &wwsf_clock_system;
        *ret = e;
        return 0;
}

void lease_engine_free(struct lease_engine *e) {
        free(e);
}

const char *lease_engine_error(const struct lease_engine *e) {
        return e->error;
}

int64_t lease_engine_retry_after(const struct lease_engine *e) {
        return e->retry_after;
}

int64_t lease_engine_now(const struct lease_engine *e) {
        return wwsf_clock_now(e->clock);
}

static enum lease_state entry_state(const struct store_entry *en, int64_t now) {
        if (en->expires_at > now)
                return LEASE_STATE_LEASED;
        if (en->retired)
                return LEASE_STATE_RETIRED;
        if (en->avail_at > now)
                return LEASE_STATE_QUARANTINE;
        return LEASE_STATE_FREE;
}

static void lease_from_entry(struct lease *l, const struct store_entry *en, int64_t now) {
        memset(l, 0, sizeof *l);
        memcpy(l->pool, en->pool, sizeof l->pool);
        memcpy(l->impu, en->impu, sizeof l->impu);
        memcpy(l->impi, en->impi, sizeof l->impi);
        l->state = entry_state(en, now);
        if (l->state == LEASE_STATE_LEASED || l->state == LEASE_STATE_QUARANTINE)
                memcpy(l->holder, en->holder, sizeof l->holder);
        if (l->state != LEASE_STATE_FREE)
                memcpy(l->client_addr, en->client_addr, sizeof l->client_addr);
        l->leased_at = en->leased_at;
        l->expires_at = en->expires_at;
        l->quarantine_until = l->state == LEASE_STATE_FREE || en->avail_at == STORE_NEVER ? 0 : en->avail_at;
        l->materialised = true;
}

static int check_holder(struct lease_engine *e, const char *holder) {
        if (!holder || !*holder)
                return fail(e, -EINVAL, "a holder is required");
        if (strlen(holder) >= STORE_HOLDER_MAX)
                return fail(e, -EINVAL, "holder longer than %d bytes", STORE_HOLDER_MAX - 1);
        for (const char *p = holder; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        return fail(e, -EINVAL, "holder contains control characters");
        if (!wwsf_is_utf8(holder))
                return fail(e, -EINVAL, "holder is not valid UTF-8");
        return 0;
}

static int check_impu(struct lease_engine *e, const char *impu) {
        if (!impu || strlen(impu) >= STORE_IDENTITY_MAX || !wwsf_is_public_identity(impu))
                return fail(e, -EINVAL, "'%s' is not a sip:, sips: or tel: URI", impu ? impu : "");
        return 0;
}

/* When the entry may go to another holder after its lease ends at end. */
static int64_t avail_after(const struct store_entry *en, const struct store_pool *p, int64_t end) {
        return en->retired ? STORE_NEVER : end + p->def.quarantine;
}

/* Closes the entry's open history row, if any, at ended_at (its
 * expires_at). The pool's kept counts move up to ended_at first: they find
 * the leases that end after their instant among the open ones only
 * (sql/0004-pool-counts.sql). */
static int close_history(struct lease_engine *e, struct store_entry *en, int64_t ended_at, const char *reason) {
        if (!en->history_id)
                return 0;
        int r = e->ops->pool_counts_advance(e->store, en->pool_id, ended_at);
        if (r < 0)
                return store_fail(e, r, "advance pool counts");
        r = e->ops->history_close(e->store, en->history_id, ended_at, reason);
        if (r < 0)
                return store_fail(e, r, "close lease history");
        en->history_id = 0;
        return 0;
}

/* Gives en to holder from now for the pool's TTL and opens its history row.
 * en->id == 0 means a new entry to insert. */
static int grant(struct lease_engine *e, const struct store_pool *p, struct store_entry *en, const char *holder,
                 const char *client_addr, int64_t now) {
        int r;
        if (en->history_id) {
                /* The previous holder's lease ran out and nobody reclaimed it yet. */
                if ((r = close_history(e, en, en->expires_at, "expired")) < 0)
                        return r;
        }
        snprintf(en->holder, sizeof en->holder, "%s", holder);
        snprintf(en->client_addr, sizeof en->client_addr, "%s", client_addr ? client_addr : "");
        en->leased_at = now;
        en->expires_at = now + p->def.lease_ttl;
        en->avail_at = avail_after(en, p, en->expires_at);
        if (!en->id) {
                if ((r = e->ops->entry_insert(e->store, en)) < 0)
                        return r == -EEXIST ? r : store_fail(e, r, "create pool entry");
        }
        if ((r = e->ops->history_open(e->store, en, now, &en->history_id)) < 0)
                return store_fail(e, r, "open lease history");
        if ((r = e->ops->entry_update(e->store, en)) < 0)
                return store_fail(e, r, "update pool entry");
        return 0;
}

/* Writes the identities of index idx (range) or token (wildcard) into en.
 * Config check bounds their length, so truncation means a damaged store. */
int lease_fill_identity(const struct store_pool *p, struct store_entry *en, const char *token, int64_t idx) {
        const struct pool_template *ut = &p->def.impu_tpl, *it = &p->def.impi_tpl;
        int n, m = 0;
        if (token)
                n = pool_template_format_token(ut, token, en->impu, sizeof en->impu);
        else
                n = pool_template_format_index(ut, idx, en->impu, sizeof en->impu);
        if (p->sub.impi_mode == IMPI_MODE_SHARED)
                snprintf(en->impi, sizeof en->impi, "%s", p->def.shared_impi);  /* both POOL_IDENTITY_MAX */
        else if (token)
                m = pool_template_format_token(it, token, en->impi, sizeof en->impi);
        else
                m = pool_template_format_index(it, idx, en->impi, sizeof en->impi);
        return n < 0 || m < 0 ? -ENAMETOOLONG : 0;
}

/* Creates the pool's next never-used entry (range or wildcard) for holder. */
static int grant_new(struct lease_engine *e, struct store_pool *p, const char *holder, const char *client_addr,
                     int64_t now, struct store_entry *en) {
        int r = -EEXIST;
        int attempts = p->def.source == POOL_SOURCE_WILDCARD ? WILDCARD_ATTEMPTS : 1;
        for (int attempt = 0; attempt < attempts; attempt++) {
                memset(en, 0, sizeof *en);
                en->pool_id = p->id;
                memcpy(en->pool, p->def.name, sizeof en->pool);
                en->idx = p->next_index;
                if (p->def.source == POOL_SOURCE_WILDCARD) {
                        char token[POOL_TOKEN_MAX + 1];
                        if ((r = pool_token_random(p->def.token_alphabet, p->def.token_length, token)) < 0)
                                return fail(e, r, "no random bytes for a wildcard IMPU");
                        r = lease_fill_identity(p, en, token, 0);
                } else
                        r = lease_fill_identity(p, en, NULL, en->idx);
                if (r < 0)
                        return fail(e, r, "pool '%s': generated identity longer than %d bytes", p->def.name,
                                    STORE_IDENTITY_MAX - 1);
                r = grant(e, p, en, holder, client_addr, now);
                if (r != -EEXIST)
                        break;
        }
        if (r == -EEXIST)
                return fail(e, r, "pool '%s': IMPU %s already belongs to another pool: the pool configuration overlaps",
                            p->def.name, en->impu);
        if (r < 0)
                return r;
        p->next_index++;
        if ((r = e->ops->pool_set_next_index(e->store, p->id, p->next_index)) < 0)
                return store_fail(e, r, "advance pool");
        return 0;
}

static int acquire_locked(struct lease_engine *e, const char *pool, const char *holder, const char *client_addr,
                          unsigned flags, int64_t now, struct store_entry *en, enum lease_origin *origin) {
        struct store_pool p;
        int r = e->ops->pool_get(e->store, pool, &p);
        if (r == -ENOENT)
                return fail(e, r, "unknown pool '%s'", pool);
        if (r < 0)
                return store_fail(e, r, "read pool");
        if ((flags & LEASE_ACQUIRE_ANONYMOUS_ONLY) && p.def.kind != POOL_KIND_ANONYMOUS)
                return fail(e, -EACCES, "pool '%s' is not an anonymous pool", pool);

        /* Affinity, live: the same IMPU again, renewed. */
        if (!(flags & LEASE_ACQUIRE_ADDITIONAL)) {
                r = e->ops->entry_by_holder(e->store, p.id, holder, now, true, en);
                if (r == 0 && !en->history_id) {
                        /* Live by the clock, but its lease was closed (the
                         * clock went back past its end): a new lease, with a
                         * history row of its own, as from quarantine. */
                        char addr[STORE_ADDR_MAX];
                        snprintf(addr, sizeof addr, "%s", client_addr && *client_addr ? client_addr : en->client_addr);
                        if ((r = grant(e, &p, en, holder, addr, now)) < 0)
                                return r;
                        *origin = LEASE_ORIGIN_LIVE;
                        return 0;
                }
                if (r == 0) {
                        en->expires_at = now + p.def.lease_ttl;
                        en->avail_at = avail_after(en, &p, en->expires_at);
                        if (client_addr && *client_addr)
                                snprintf(en->client_addr, sizeof en->client_addr, "%s", client_addr);
                        if ((r = e->ops->entry_update(e->store, en)) < 0 ||
                            (en->history_id && (r = e->ops->history_renewed(e->store, en->history_id)) < 0))
                                return store_fail(e, r, "renew lease");
                        *origin = LEASE_ORIGIN_LIVE;
                        return 0;
                }
                if (r != -ENOENT)
                        return store_fail(e, r, "find holder's lease");
        }

        /* A pool being deleted lets its holders keep what they have, nothing more. */
        if (p.deleting)
                return fail(e, -ENOSPC, "pool '%s' is being deleted: it hands out no more IMPUs", pool);

        int64_t live;
        if ((r = e->ops->entry_count_live(e->store, p.id, holder, now, &live)) < 0)
                return store_fail(e, r, "count holder's leases");
        if (live >= p.def.max_per_holder)
                return fail(e, -EDQUOT, "holder '%s' already has %lld lease%s in pool '%s' (max_per_holder %lld)",
                            holder, (long long) live, live == 1 ? "" : "s", pool, (long long) p.def.max_per_holder);

        /* Affinity, quarantine: the holder's last IMPU, which nobody else can have yet. */
        r = e->ops->entry_by_holder(e->store, p.id, holder, now, false, en);
        if (r == 0) {
                *origin = LEASE_ORIGIN_QUARANTINE;
                return grant(e, &p, en, holder, client_addr, now);
        }
        if (r != -ENOENT)
                return store_fail(e, r, "find holder's quarantined IMPU");

        /* Never-used entries have been free since the pool was imported:
         * longer than any entry that was ever released. */
        if (p.def.source != POOL_SOURCE_LIST && p.next_index < p.def.size) {
                *origin = LEASE_ORIGIN_NEW;
                return grant_new(e, &p, holder, client_addr, now, en);
        }

        r = e->ops->entry_first_available(e->store, p.id, en);
        if (r < 0 && r != -ENOENT)
                return store_fail(e, r, "find a free IMPU");
        if (r == -ENOENT || en->avail_at > now) {
                e->retry_after = r == 0 && en->avail_at != STORE_NEVER ? en->avail_at - now : 0;
                return fail(e, -ENOSPC, "pool '%s' is exhausted: all %lld IMPUs are leased or in quarantine", pool,
                            (long long) p.def.size);
        }
        *origin = en->leased_at ? LEASE_ORIGIN_REUSED : LEASE_ORIGIN_NEW;
        return grant(e, &p, en, holder, client_addr, now);
}

int lease_batch_begin(struct lease_engine *e) {
        if (e->depth)
                return fail(e, -EINVAL, "a batch is already open");
        int r = e->ops->begin(e->store);
        if (r < 0)
                return store_fail(e, r, "begin batch");
        e->depth = 1;
        return 0;
}

int lease_batch_commit(struct lease_engine *e) {
        if (!e->depth)
                return fail(e, -EINVAL, "no batch is open");
        e->depth = 0;
        int r = e->ops->commit(e->store);
        return r < 0 ? store_fail(e, r, "commit batch") : 0;
}

void lease_batch_rollback(struct lease_engine *e) {
        if (!e->depth)
                return;
        e->depth = 0;
        e->ops->rollback(e->store);
}

int lease_transaction(struct lease_engine *e, const char *what, lease_transaction_fn fn, void *userdata) {
        e->error[0] = '\0';
        return IN_TRANSACTION(e, what, fn(e, userdata));
}

struct store *lease_engine_store(const struct lease_engine *e) {
        return e->store;
}

int lease_acquire(struct lease_engine *e, const char *pool, const char *holder, const char *client_addr,
                  unsigned flags, struct lease *ret, enum lease_origin *ret_origin) {
        int r;
        e->retry_after = 0;
        e->error[0] = '\0';
        if ((r = check_holder(e, holder)) < 0)
                return r;
        if (!pool || !*pool)
                return fail(e, -EINVAL, "a pool is required");
        if (client_addr && *client_addr && (strlen(client_addr) >= STORE_ADDR_MAX || !wwsf_is_ip_address(client_addr)))
                return fail(e, -EINVAL, "client address '%s' is not an IPv4 or IPv6 address", client_addr);

        int64_t now = wwsf_clock_now(e->clock);
        struct store_entry en;
        enum lease_origin origin = LEASE_ORIGIN_NEW;
        r = IN_TRANSACTION(e, "acquire", acquire_locked(e, pool, holder, client_addr, flags, now, &en, &origin));
        if (r < 0)
                return r;
        if (ret)
                lease_from_entry(ret, &en, now);
        if (ret_origin)
                *ret_origin = origin;
        return 0;
}

/* Loads the entry of impu inside a transaction, or explains its absence. */
static int entry_for(struct lease_engine *e, const char *impu, struct store_entry *en) {
        int r = e->ops->entry_by_impu(e->store, impu, en);
        if (r == -ENOENT)
                return fail(e, r, "no lease for %s: it was never handed out", impu);
        if (r < 0)
                return store_fail(e, r, "find IMPU");
        return 0;
}

static int renew_locked(struct lease_engine *e, const char *impu, const char *holder, int64_t now,
                        struct store_entry *en) {
        int r = entry_for(e, impu, en);
        if (r < 0)
                return r;
        enum lease_state st = entry_state(en, now);
        if (st != LEASE_STATE_LEASED && !(st == LEASE_STATE_QUARANTINE && en->holder[0]))
                return fail(e, -ESTALE, "%s is %s: nothing to renew", impu, lease_state_to_string(st));
        if (strcmp(en->holder, holder) != 0)
                return fail(e, -EPERM, "holder mismatch: %s is %s by another holder", impu,
                            st == LEASE_STATE_LEASED ? "leased" : "held in quarantine");
        struct store_pool p;
        if ((r = e->ops->pool_get(e->store, en->pool, &p)) < 0)
                return store_fail(e, r, "read pool");
        /* From quarantine, or live by the clock with its lease closed (the
         * clock went back past its end): a new lease with its history row. */
        if (st == LEASE_STATE_QUARANTINE || !en->history_id) {
                char addr[STORE_ADDR_MAX];
                snprintf(addr, sizeof addr, "%s", en->client_addr);
                return grant(e, &p, en, holder, addr, now);
        }
        en->expires_at = now + p.def.lease_ttl;
        en->avail_at = avail_after(en, &p, en->expires_at);
        if ((r = e->ops->entry_update(e->store, en)) < 0 ||
            (en->history_id && (r = e->ops->history_renewed(e->store, en->history_id)) < 0))
                return store_fail(e, r, "renew lease");
        return 0;
}

int lease_renew(struct lease_engine *e, const char *impu, const char *holder, struct lease *ret) {
        int r;
        if ((r = check_impu(e, impu)) < 0 || (r = check_holder(e, holder)) < 0)
                return r;
        int64_t now = wwsf_clock_now(e->clock);
        struct store_entry en;
        if ((r = IN_TRANSACTION(e, "renew", renew_locked(e, impu, holder, now, &en))) < 0)
                return r;
        if (ret)
                lease_from_entry(ret, &en, now);
        return 0;
}

/* Ends a live lease at now, for release (holder given) or revoke (NULL). */
static int end_locked(struct lease_engine *e, const char *impu, const char *holder, int64_t now,
                      struct store_entry *en) {
        int r = entry_for(e, impu, en);
        if (r < 0)
                return r;
        enum lease_state st = entry_state(en, now);
        if (holder) {
                if (st != LEASE_STATE_LEASED)
                        return fail(e, -ESTALE, "%s is not leased (%s): nothing to release", impu,
                                    lease_state_to_string(st));
                if (strcmp(en->holder, holder) != 0)
                        return fail(e, -EPERM, "holder mismatch: %s is leased by another holder", impu);
        } else if (st != LEASE_STATE_LEASED && !(st == LEASE_STATE_QUARANTINE && en->holder[0]))
                return fail(e, -ESTALE, "%s is %s: nothing to revoke", impu, lease_state_to_string(st));

        struct store_pool p;
        if ((r = e->ops->pool_get(e->store, en->pool, &p)) < 0)
                return store_fail(e, r, "read pool");
        if (st == LEASE_STATE_LEASED) {
                en->expires_at = now;
                en->avail_at = avail_after(en, &p, now);
        }
        /* A lease that had already run out ended by expiry, whatever comes now. */
        const char *reason = st != LEASE_STATE_LEASED ? "expired" : holder ? "released" : "revoked";
        if ((r = close_history(e, en, en->expires_at, reason)) < 0)
                return r;
        if (!holder)
                en->holder[0] = '\0';   /* a revoked holder gets no affinity */
        if ((r = e->ops->entry_update(e->store, en)) < 0)
                return store_fail(e, r, "end lease");
        return 0;
}

int lease_release(struct lease_engine *e, const char *impu, const char *holder, struct lease *ret) {
        int r;
        if ((r = check_impu(e, impu)) < 0 || (r = check_holder(e, holder)) < 0)
                return r;
        int64_t now = wwsf_clock_now(e->clock);
        struct store_entry en;
        if ((r = IN_TRANSACTION(e, "release", end_locked(e, impu, holder, now, &en))) < 0)
                return r;
        if (ret)
                lease_from_entry(ret, &en, now);
        return 0;
}

int lease_revoke(struct lease_engine *e, const char *impu, struct lease *ret) {
        int r;
        if ((r = check_impu(e, impu)) < 0)
                return r;
        int64_t now = wwsf_clock_now(e->clock);
        struct store_entry en;
        if ((r = IN_TRANSACTION(e, "revoke", end_locked(e, impu, NULL, now, &en))) < 0)
                return r;
        if (ret) {
                lease_from_entry(ret, &en, now);
                if (ret->state == LEASE_STATE_QUARANTINE)
                        ret->holder[0] = '\0';
        }
        return 0;
}

struct range_match {
        const char *impu;
        struct store_pool pool;
        int64_t index;
        bool found;
};

static int match_range_pool(const struct store_pool *p, void *userdata) {
        struct range_match *m = userdata;
        if (p->def.source != POOL_SOURCE_RANGE)
                return 0;
        if (pool_template_match_index(&p->def.impu_tpl, p->def.size, m->impu, &m->index) &&
            m->index >= p->next_index) {
                m->pool = *p;
                m->found = true;
                return 1;
        }
        return 0;
}

int lease_lookup(struct lease_engine *e, const char *impu, struct lease *ret) {
        int r;
        if ((r = check_impu(e, impu)) < 0)
                return r;
        int64_t now = wwsf_clock_now(e->clock);
        struct store_entry en;
        r = e->ops->entry_by_impu(e->store, impu, &en);
        if (r == 0) {
                lease_from_entry(ret, &en, now);
                return 0;
        }
        if (r != -ENOENT)
                return store_fail(e, r, "find IMPU");
        /* Not materialised: it may still be a never-used entry of a range pool. */
        struct range_match m = { .impu = impu };
        if ((r = e->ops->pool_list(e->store, match_range_pool, &m)) < 0)
                return store_fail(e, r, "list pools");
        if (!m.found)
                return fail(e, -ENOENT, "%s is in no pool", impu);
        struct store_entry virt = { .pool_id = m.pool.id, .idx = m.index };
        memcpy(virt.pool, m.pool.def.name, sizeof virt.pool);
        if (lease_fill_identity(&m.pool, &virt, NULL, m.index) < 0)
                return fail(e, -ENAMETOOLONG, "%s: identity too long", impu);
        lease_from_entry(ret, &virt, now);
        ret->materialised = false;
        return 0;
}

struct reclaim_state {
        struct lease_engine *e;
        struct store_entry *batch;
        int n, cap;
};

static int collect_expired(const struct store_entry *en, void *userdata) {
        struct reclaim_state *rs = userdata;
        if (rs->n >= rs->cap)
                return 1;
        rs->batch[rs->n++] = *en;
        return 0;
}

static int reclaim_locked(struct lease_engine *e, int max_count, int max_ms, int64_t now,
                          struct lease_reclaim_result *res) {
        struct reclaim_state rs = { .e = e, .cap = max_count };
        rs.batch = calloc((size_t) max_count, sizeof *rs.batch);
        if (!rs.batch)
                return fail(e, -ENOMEM, "reclaim: out of memory");
        uint64_t deadline = wwsf_monotonic_ns() + (uint64_t) max_ms * 1000000u;
        int r = e->ops->entries_expired(e->store, now, max_count, collect_expired, &rs);
        if (r < 0) {
                r = store_fail(e, r, "find expired leases");
                goto out;
        }
        for (int i = 0; i < rs.n; i++) {
                struct store_entry *en = &rs.batch[i];
                if ((r = close_history(e, en, en->expires_at, "expired")) < 0)
                        goto out;
                if ((r = e->ops->entry_update(e->store, en)) < 0) {
                        r = store_fail(e, r, "reclaim lease");
                        goto out;
                }
                res->reclaimed++;
                if (wwsf_monotonic_ns() > deadline && i + 1 < rs.n) {
                        res->more = true;
                        break;
                }
        }
        if (rs.n == max_count)
                res->more = true;
        /* Each close moved its pool's kept counts up to its lease's end
         * (close_history()); once no expired lease is left open, every
         * pool's move up to now, so that a read of them has only what ends
         * after now to add. Not before: the range up to now would hold every
         * lease still to reclaim, a batch's bound of work many times over. */
        if (!res->more && (r = e->ops->pool_counts_advance(e->store, 0, now)) < 0) {
                r = store_fail(e, r, "advance pool counts");
                goto out;
        }
        r = 0;
out:
        free(rs.batch);
        return r;
}

int lease_reclaim_batch(struct lease_engine *e, int max_count, int max_ms, struct lease_reclaim_result *ret) {
        if (max_count < 1 || max_ms < 1)
                return fail(e, -EINVAL, "reclaim needs a batch size and a time bound of at least 1");
        struct lease_reclaim_result res = { 0 };
        uint64_t t0 = wwsf_monotonic_ns();
        int64_t now = wwsf_clock_now(e->clock);
        int r = IN_TRANSACTION(e, "reclaim", reclaim_locked(e, max_count, max_ms, now, &res));
        res.elapsed_ns = wwsf_monotonic_ns() - t0;
        if (r < 0)
                return r;
        *ret = res;
        return 0;
}

/* Whether index i (or token t) names the same identity under both templates:
 * the size of a range may change, its shape may not. */
bool lease_same_template(const struct pool_template *stored, const struct pool_template *configured) {
        if (!configured->text[0])
                return !stored->text[0];
        return strcmp(stored->prefix, configured->prefix) == 0 && strcmp(stored->suffix, configured->suffix) == 0 &&
               (configured->wildcard ? strcmp(stored->regex, configured->regex) == 0
                                     : stored->start == configured->start && stored->width == configured->width);
}

/* The pools of the portal API against a pool of the files (which the
 * configuration checked against each other). */
static int overlap_api_pools(struct lease_engine *e, const struct pool_config_pool *cp, int64_t self_id) {
        int r = lease_check_overlap(e, &cp->def, self_id, cp->entries, cp->n_entries, true);
        if (r < 0) {
                char why[sizeof e->error];
                memcpy(why, e->error, sizeof why);
                return fail(e, r, "%s:%d: pool '%s': %s", cp->file, cp->line, cp->def.name, why);
        }
        return 0;
}

/* Writes the pool row of d, then its entries: for a list, the IMPUs cp lists
 * (where cp says they were written); for a range or wildcard, which of the
 * rows it already has are within its size. */
static int import_pool(struct lease_engine *e, const struct pool_config_pool *cp, int64_t now,
                       struct lease_import_result *res) {
        const struct pool_def *d = &cp->def;
        struct store_pool old;
        int r = e->ops->pool_get(e->store, d->name, &old);
        bool existed = r == 0;
        if (r < 0 && r != -ENOENT)
                return store_fail(e, r, "read pool");
        if (existed && old.portal_id)
                return fail(e, -EROFS,
                            "%s:%d: pool '%s' is managed through the portal API by its portal; give the file's pool "
                            "another name",
                            cp->file, cp->line, d->name);
        if (existed && old.def.source != d->source)
                return fail(e, -EINVAL, "pool '%s': its IMPU source changed from %s to %s; define a new pool instead",
                            d->name, pool_source_to_string(old.def.source), pool_source_to_string(d->source));
        if (existed && d->source != POOL_SOURCE_LIST && old.next_index > 0 &&
            (!lease_same_template(&old.def.impu_tpl, &d->impu_tpl) || !lease_same_template(&old.def.impi_tpl, &d->impi_tpl) ||
             strcmp(old.def.shared_impi, d->shared_impi) != 0))
                return fail(e, -EINVAL,
                            "pool '%s': its IMPU/IMPI template changed after IMPUs were handed out; define a new pool instead",
                            d->name);
        if ((r = e->ops->pool_upsert(e->store, d, now)) < 0)
                return store_fail(e, r, "write pool");
        struct store_pool p;
        if ((r = e->ops->pool_get(e->store, d->name, &p)) < 0)
                return store_fail(e, r, "read pool");
        res->pools++;
        const int64_t hold = p.def.quarantine;
        if (d->source == POOL_SOURCE_RANGE && (r = overlap_api_pools(e, cp, p.id)) < 0)
                return r;

        if (d->source != POOL_SOURCE_LIST) {
                /* Entries beyond the size are retired, those within it not: a
                 * range that shrank and grew back gets its entries back. next_index
                 * stays the count of rows ever materialised. */
                int64_t changed;
                if ((r = e->ops->entries_set_retired(e->store, p.id, p.def.size, INT64_MAX, true, hold, &changed)) < 0)
                        return store_fail(e, r, "retire entries");
                res->entries_retired += (int) changed;
                if ((r = e->ops->entries_set_retired(e->store, p.id, 0, p.def.size, false, hold, &changed)) < 0)
                        return store_fail(e, r, "restore entries");
                return 0;
        }

        /* A list: count the listed entries that are active now, retire every
         * entry, then bring back (or add) what is still listed. */
        int64_t active_listed = 0, was_active, changed;
        struct store_entry en;
        for (size_t i = 0; i < cp->n_entries; i++) {
                r = e->ops->entry_by_impu(e->store, cp->entries[i].impu, &en);
                if (r == 0 && en.pool_id != p.id)
                        return fail(e, -EEXIST, "%s:%d: %s already belongs to pool '%s'", cp->file,
                                    cp->entries[i].line, cp->entries[i].impu, en.pool);
                if (r == 0 && !en.retired)
                        active_listed++;
                else if (r < 0 && r != -ENOENT)
                        return store_fail(e, r, "find listed entry");
        }
        if ((r = overlap_api_pools(e, cp, p.id)) < 0)
                return r;
        if ((r = e->ops->entries_set_retired(e->store, p.id, 0, INT64_MAX, true, hold, &was_active)) < 0)
                return store_fail(e, r, "retire entries");
        res->entries_retired += (int) (was_active - active_listed);
        for (size_t i = 0; i < cp->n_entries; i++) {
                const struct pool_list_entry *le = &cp->entries[i];
                const char *impi = p.sub.impi_mode == IMPI_MODE_SHARED ? p.def.shared_impi : le->impi;
                r = e->ops->entry_by_impu(e->store, le->impu, &en);
                if (r == 0) {
                        if ((r = e->ops->entry_set_impi(e->store, en.id, impi)) < 0 ||
                            (r = e->ops->entries_set_retired(e->store, p.id, en.idx, en.idx + 1, false, hold,
                                                             &changed)) < 0)
                                return store_fail(e, r, "update listed entry");
                        continue;
                }
                if (r != -ENOENT)
                        return store_fail(e, r, "find listed entry");
                /* A listed entry keeps its index for life; new ones go after the rest. */
                en = (struct store_entry) { .pool_id = p.id, .idx = p.next_index++ };
                snprintf(en.impu, sizeof en.impu, "%s", le->impu);
                snprintf(en.impi, sizeof en.impi, "%s", impi);
                if ((r = e->ops->entry_insert(e->store, &en)) < 0)
                        return store_fail(e, r, "add listed entry");
                res->entries_added++;
        }
        if ((r = e->ops->pool_set_next_index(e->store, p.id, p.next_index)) < 0)
                return store_fail(e, r, "write pool");
        return 0;
}

static int import_locked(struct lease_engine *e, const struct pool_config *cfg, int64_t now,
                         struct lease_import_result *res) {
        int r;
        for (size_t i = 0; i < cfg->n_subs; i++) {
                if ((r = e->ops->subscription_upsert(e->store, &cfg->subs[i].sub)) < 0)
                        return store_fail(e, r, "write subscription");
                res->subscriptions++;
        }
        for (size_t i = 0; i < cfg->n_pools; i++)
                if ((r = import_pool(e, &cfg->pools[i], now, res)) < 0)
                        return r;
        return 0;
}

int lease_import(struct lease_engine *e, const struct pool_config *cfg, struct lease_import_result *ret) {
        struct lease_import_result res = { 0 };
        int64_t now = wwsf_clock_now(e->clock);
        int r = IN_TRANSACTION(e, "import", import_locked(e, cfg, now, &res));
        if (r < 0)
                return r;
        if (ret)
                *ret = res;
        return 0;
}

struct list_state {
        int64_t now;
        lease_cb cb;
        void *userdata;
};

static int list_entry(const struct store_entry *en, void *userdata) {
        struct list_state *ls = userdata;
        struct lease l;
        lease_from_entry(&l, en, ls->now);
        return ls->cb(&l, ls->userdata);
}

int lease_list(struct lease_engine *e, const char *pool, lease_cb cb, void *userdata) {
        struct list_state ls = { .now = wwsf_clock_now(e->clock), .cb = cb, .userdata = userdata };
        int r = e->ops->entry_list(e->store, pool, list_entry, &ls);
        return r < 0 ? store_fail(e, r, "list leases") : r;
}

struct pools_state {
        struct lease_engine *e;
        const char *only;
        int64_t now;
        lease_pool_cb cb;
        void *userdata;
        int error;
        bool found;
};

static int pool_stats_one(const struct store_pool *p, void *userdata) {
        struct pools_state *ps = userdata;
        if (ps->only && strcmp(ps->only, p->def.name) != 0)
                return 0;
        ps->found = true;
        struct store_counts c;
        int r = ps->e->ops->pool_counts(ps->e->store, p->id, ps->now, &c);
        if (r < 0) {
                ps->error = store_fail(ps->e, r, "count entries");
                return 1;
        }
        struct lease_pool_stats s = {
                .pool = *p, .leased = c.leased, .quarantine = c.quarantine, .retired = c.retired,
                .materialised = c.materialised,
        };
        /* Retired entries lie outside size (off the list, or beyond a shrunk
         * range): what is left is what the pool can still hand out. */
        s.free = p->def.size - c.leased - c.quarantine;
        if (s.free < 0)
                s.free = 0;
        return ps->cb ? ps->cb(&s, ps->userdata) : 0;
}

int lease_pools(struct lease_engine *e, const char *pool, lease_pool_cb cb, void *userdata) {
        struct pools_state ps = { .e = e, .only = pool, .now = wwsf_clock_now(e->clock), .cb = cb,
                                  .userdata = userdata };
        int r = e->ops->pool_list(e->store, pool_stats_one, &ps);
        if (r < 0)
                return store_fail(e, r, "list pools");
        if (ps.error < 0)
                return ps.error;
        if (pool && !ps.found)
                return fail(e, -ENOENT, "unknown pool '%s'", pool);
        return r;
}

int lease_audit(struct lease_engine *e, const char *impu, int64_t at, store_history_cb cb, void *userdata) {
        int r = check_impu(e, impu);
        if (r < 0)
                return r;
        r = e->ops->history_list(e->store, impu, at, cb, userdata);
        return r < 0 ? store_fail(e, r, "read lease history") : r;
}

int lease_checkpoint(struct lease_engine *e) {
        int r = e->ops->checkpoint(e->store);
        return r < 0 ? store_fail(e, r, "checkpoint") : 0;
}

int lease_check(struct lease_engine *e, char *buf, size_t size) {
        int r = e->ops->check(e->store, buf, size);
        return r < 0 ? store_fail(e, r, "integrity check") : 0;
}

const char *lease_state_to_string(enum lease_state s) {
        switch (s) {
        case LEASE_STATE_FREE: return "free";
        case LEASE_STATE_LEASED: return "leased";
        case LEASE_STATE_QUARANTINE: return "quarantine";
        case LEASE_STATE_RETIRED: return "retired";
        }
        return "?";
}

int lease_state_from_string(const char *s, enum lease_state *ret) {
        for (int i = LEASE_STATE_FREE; i <= LEASE_STATE_RETIRED; i++)
                if (strcmp(s, lease_state_to_string(i)) == 0) {
                        *ret = i;
                        return 0;
                }
        return -EINVAL;
}

const char *lease_origin_to_string(enum lease_origin o) {
        switch (o) {
        case LEASE_ORIGIN_LIVE: return "affinity-live";
        case LEASE_ORIGIN_QUARANTINE: return "affinity-quarantine";
        case LEASE_ORIGIN_NEW: return "new";
        case LEASE_ORIGIN_REUSED: return "reused";
        }
        return "?";
}
