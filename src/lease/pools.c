/* Pools a portal manages through the portal API (lease.h): made, changed and
 * deleted one at a time, each inside the caller's transaction or one of its
 * own, under the same rules as an import (docs/DESIGN.md section 5) plus the
 * portal's limits, and never taking an IMPU from its holder. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lease/lease-internal.h"

/* Leases a forced delete revokes per round trip to the store. */
#define REVOKE_PAGE 256

struct overlap {
        struct lease_engine *e;
        const struct pool_def *def;
        int64_t self_id;
        const struct pool_list_entry *entries;
        size_t n_entries;
        bool api_only;          /* only against pools of the API (an import checks the files itself) */
        const char *taken;      /* the IMPU found in another pool, or the range */
        char impu[STORE_IDENTITY_MAX];
};

/* A listed entry of another pool inside the new range. */
static int entry_in_range(const struct store_entry *en, void *userdata) {
        struct overlap *o = userdata;
        int64_t idx;
        if (!en->retired && pool_template_match_index(&o->def->impu_tpl, o->def->size, en->impu, &idx)) {
                snprintf(o->impu, sizeof o->impu, "%s", en->impu);
                return 1;
        }
        return 0;
}

static int overlap_pool(const struct store_pool *p, void *userdata) {
        struct overlap *o = userdata;
        const struct pool_def *d = o->def;
        int64_t idx;
        if (p->id == o->self_id || (o->api_only && !p->portal_id))
                return 0;
        if (d->source == POOL_SOURCE_RANGE && p->def.source == POOL_SOURCE_RANGE &&
            pool_ranges_overlap(&d->impu_tpl, &p->def.impu_tpl)) {
                snprintf(o->impu, sizeof o->impu, "%s", d->impu_tpl.text);
                return 1;
        }
        if (p->def.source == POOL_SOURCE_RANGE)
                for (size_t i = 0; i < o->n_entries; i++)
                        if (pool_template_match_index(&p->def.impu_tpl, p->def.size, o->entries[i].impu, &idx)) {
                                snprintf(o->impu, sizeof o->impu, "%s", o->entries[i].impu);
                                return 1;
                        }
        if (d->source == POOL_SOURCE_RANGE && p->def.source == POOL_SOURCE_LIST) {
                int r = o->e->ops->entry_list(o->e->store, p->def.name, entry_in_range, o);
                return r < 0 ? r : r > 0 ? 1 : 0;
        }
        return 0;
}

int lease_check_overlap(struct lease_engine *e, const struct pool_def *d, int64_t self_id,
                        const struct pool_list_entry *entries, size_t n_entries, bool api_only) {
        struct store_entry en;
        int r;
        /* Listed IMPUs that some pool has materialised already, retired or not. */
        for (size_t i = 0; i < n_entries; i++) {
                r = e->ops->entry_by_impu(e->store, entries[i].impu, &en);
                if (r == 0 && en.pool_id != self_id)
                        return api_only ? fail(e, -EEXIST, "%s is already in pool '%s'", entries[i].impu, en.pool)
                                        : fail(e, -EEXIST, "%s is already in a pool", entries[i].impu);
                if (r < 0 && r != -ENOENT)
                        return store_fail(e, r, "find IMPU");
        }
        struct overlap o = { .e = e, .def = d, .self_id = self_id, .entries = entries, .n_entries = n_entries,
                             .api_only = api_only };
        r = e->ops->pool_list(e->store, overlap_pool, &o);
        if (r < 0)
                return store_fail(e, r, "list pools");
        if (r > 0)
                return fail(e, -EEXIST, "%s overlaps the IMPUs of %s", o.impu, api_only ? "a pool of the portal API" : "another pool");
        return 0;
}

/* The portal's pools and entries with a pool of `size` more IMPUs and
 * `more_pools` more pools, against its limits. */
static int check_limits(struct lease_engine *e, const struct lease_portal *pt, int64_t more_pools, int64_t more) {
        int64_t pools, entries;
        int r = e->ops->portal_usage(e->store, pt->id, &pools, &entries);
        if (r < 0)
                return store_fail(e, r, "count the portal's pools");
        if (pools + more_pools > pt->max_pools)
                return fail(e, -E2BIG, "the portal has %" PRId64 " pools already, its limit (max_pools %" PRId64 ")",
                            pools, pt->max_pools);
        if (entries + more > pt->max_entries)
                return fail(e, -E2BIG,
                            "the portal's pools would hold %" PRId64 " IMPUs, more than its limit (max_entries %" PRId64
                            ")",
                            entries + more, pt->max_entries);
        return 0;
}

/* The pool by id, if the portal manages it (-EROFS for a pool of the files). */
static int managed_pool(struct lease_engine *e, const struct lease_portal *pt, int64_t pool_id, struct store_pool *p) {
        int r = e->ops->pool_get_by_id(e->store, pool_id, p);
        if (r == -ENOENT || (r == 0 && p->deleted))
                return fail(e, -ENOENT, "no pool %" PRId64, pool_id);
        if (r < 0)
                return store_fail(e, r, "read pool");
        if (p->portal_id != pt->id)
                return p->portal_id ? fail(e, -ENOENT, "no pool %" PRId64, pool_id)
                                    : fail(e, -EROFS, "pool '%s' is defined in the pool configuration files (%s); "
                                                      "the operator changes it there",
                                           p->def.name, p->def.source_file[0] ? p->def.source_file : "pool import");
        if (p->deleting)
                return fail(e, -ENOTSUP, "pool '%s' is being deleted", p->def.name);
        return 0;
}

static int reread(struct lease_engine *e, int64_t pool_id, struct store_pool *ret) {
        int r = e->ops->pool_get_by_id(e->store, pool_id, ret);
        return r < 0 ? store_fail(e, r, "read pool") : 0;
}

static int insert_entries(struct lease_engine *e, struct store_pool *p, const struct pool_list_entry *entries,
                          size_t n) {
        int r;
        for (size_t i = 0; i < n; i++) {
                struct store_entry en = { .pool_id = p->id, .idx = p->next_index++ };
                const char *impi = p->sub.impi_mode == IMPI_MODE_SHARED ? p->def.shared_impi : entries[i].impi;
                snprintf(en.impu, sizeof en.impu, "%s", entries[i].impu);
                snprintf(en.impi, sizeof en.impi, "%s", impi ? impi : "");
                if ((r = e->ops->entry_insert(e->store, &en)) == -EEXIST)
                        return fail(e, r, "%s is already in a pool", entries[i].impu);
                if (r < 0)
                        return store_fail(e, r, "add entry");
        }
        if ((r = e->ops->pool_set_next_index(e->store, p->id, p->next_index)) < 0)
                return store_fail(e, r, "write pool");
        return 0;
}

struct create_args {
        const struct lease_portal *pt;
        const struct pool_config_pool *cp;
        int64_t now;
        struct store_pool *ret;
};

static int create_locked(struct lease_engine *e, struct create_args *a) {
        const struct pool_def *d = &a->cp->def;
        struct store_pool p;
        int r = e->ops->pool_get(e->store, d->name, &p);
        if (r == 0)
                return fail(e, -EADDRINUSE, "a pool named '%s' exists already", d->name);
        if (r != -ENOENT)
                return store_fail(e, r, "read pool");
        if ((r = check_limits(e, a->pt, 1, d->size)) < 0 ||
            (r = lease_check_overlap(e, d, 0, a->cp->entries, a->cp->n_entries, false)) < 0)
                return r;
        if ((r = e->ops->pool_upsert(e->store, d, a->now)) < 0 || (r = e->ops->pool_get(e->store, d->name, &p)) < 0 ||
            (r = e->ops->pool_set_portal(e->store, p.id, a->pt->id)) < 0)
                return store_fail(e, r, "write pool");
        if (d->source == POOL_SOURCE_LIST && (r = insert_entries(e, &p, a->cp->entries, a->cp->n_entries)) < 0)
                return r;
        return reread(e, p.id, a->ret);
}

int lease_pool_create(struct lease_engine *e, const struct lease_portal *pt, const struct pool_config_pool *cp,
                      struct store_pool *ret) {
        struct create_args a = { pt, cp, wwsf_clock_now(e->clock), ret };
        e->error[0] = '\0';
        return IN_TRANSACTION(e, "create pool", create_locked(e, &a));
}

struct update_args {
        const struct lease_portal *pt;
        int64_t pool_id;
        struct pool_def def;
        int64_t now;
        struct store_pool *ret;
};

static int update_locked(struct lease_engine *e, struct update_args *a) {
        struct store_pool old;
        struct pool_def *d = &a->def;
        int r = managed_pool(e, a->pt, a->pool_id, &old);
        if (r < 0)
                return r;
        if (strcmp(d->name, old.def.name) != 0 || strcmp(d->subscription, old.def.subscription) != 0)
                return fail(e, -ENOTSUP, "a pool's name and subscription stay as they were made");
        if (d->source != old.def.source)
                return fail(e, -ENOTSUP, "pool '%s': its IMPU source stays %s", old.def.name,
                            pool_source_to_string(old.def.source));
        if (d->source != POOL_SOURCE_LIST && old.next_index > 0 &&
            (!lease_same_template(&old.def.impu_tpl, &d->impu_tpl) ||
             !lease_same_template(&old.def.impi_tpl, &d->impi_tpl) || strcmp(old.def.shared_impi, d->shared_impi) != 0))
                return fail(e, -ENOTSUP,
                            "pool '%s': its IMPU/IMPI template cannot change once IMPUs were handed out; "
                            "only the range's size can",
                            old.def.name);
        /* A list's size is its entries, which change through the entries resource. */
        if (d->source == POOL_SOURCE_LIST)
                d->size = old.def.size;
        if ((r = check_limits(e, a->pt, 0, d->size - old.def.size)) < 0 ||
            (d->source == POOL_SOURCE_RANGE && (r = lease_check_overlap(e, d, old.id, NULL, 0, false)) < 0))
                return r;
        /* The upsert gives a new revision (ETag) only when the definition
         * changed: a PATCH that changes nothing leaves other clients'
         * If-Match good. */
        if ((r = e->ops->pool_upsert(e->store, d, a->now)) < 0)
                return store_fail(e, r, "write pool");
        if (d->source != POOL_SOURCE_LIST) {
                /* As an import does: entries beyond the size retire (their
                 * leases run on), those within it come back. */
                int64_t changed;
                if ((r = e->ops->entries_set_retired(e->store, old.id, d->size, INT64_MAX, true, d->quarantine,
                                                     &changed)) < 0 ||
                    (r = e->ops->entries_set_retired(e->store, old.id, 0, d->size, false, d->quarantine, &changed)) < 0)
                        return store_fail(e, r, "retire entries");
        }
        return reread(e, old.id, a->ret);
}

int lease_pool_update(struct lease_engine *e, const struct lease_portal *pt, int64_t pool_id,
                      const struct pool_def *def, struct store_pool *ret) {
        struct update_args a = { .pt = pt, .pool_id = pool_id, .def = *def, .now = wwsf_clock_now(e->clock),
                                 .ret = ret };
        e->error[0] = '\0';
        return IN_TRANSACTION(e, "update pool", update_locked(e, &a));
}

struct revoke_page {
        char (*impus)[STORE_IDENTITY_MAX];
        int n;
        int64_t last_id;
};

static int collect_open(const struct store_history *h, void *userdata) {
        struct revoke_page *pg = userdata;
        snprintf(pg->impus[pg->n++], STORE_IDENTITY_MAX, "%s", h->impu);
        pg->last_id = h->id;
        return 0;
}

/* Revokes every live lease of the pool (their IMPUs go to quarantine). */
static int revoke_all(struct lease_engine *e, int64_t pool_id, int64_t now) {
        struct revoke_page pg = { .impus = calloc(REVOKE_PAGE, STORE_IDENTITY_MAX) };
        if (!pg.impus)
                return fail(e, -ENOMEM, "out of memory");
        const struct store_history_filter f = { .state = STORE_LEASES_OPEN, .now = now };
        int r;
        for (;;) {
                pg.n = 0;
                if ((r = e->ops->history_page(e->store, pool_id, &f, pg.last_id, REVOKE_PAGE, collect_open, &pg)) < 0) {
                        r = store_fail(e, r, "list leases");
                        break;
                }
                for (int i = 0; i < pg.n && r >= 0; i++) {
                        r = lease_revoke(e, pg.impus[i], NULL);
                        /* A lease whose time had run out is reclaim's to close. */
                        if (r == -ESTALE)
                                r = 0;
                }
                if (r < 0 || pg.n < REVOKE_PAGE)
                        break;
        }
        free(pg.impus);
        return r;
}

/* Retires every entry and the pool itself: it keeps its row for the history
 * and the entries whose hold still runs (lease_purge() removes them later);
 * the others go now. */
static int delete_now(struct lease_engine *e, const struct store_pool *p, int64_t now) {
        int64_t changed;
        int r;
        if ((r = e->ops->entries_set_retired(e->store, p->id, 0, INT64_MAX, true, p->def.quarantine, &changed)) < 0 ||
            (r = e->ops->pool_delete(e->store, p->id, now)) < 0 ||
            (r = e->ops->entries_purge(e->store, now, INT32_MAX, &changed)) < 0)
                return store_fail(e, r, "delete pool");
        return 0;
}

struct delete_args {
        const struct lease_portal *pt;
        int64_t pool_id;
        enum lease_pool_delete how;
        int64_t now;
        struct store_pool *ret;
        bool *ret_gone;
};

static int delete_locked(struct lease_engine *e, struct delete_args *a) {
        struct store_pool p;
        int r = managed_pool(e, a->pt, a->pool_id, &p);
        if (r < 0)
                return r;
        struct store_counts busy;
        if ((r = e->ops->pool_counts(e->store, p.id, a->now, &busy)) < 0)
                return store_fail(e, r, "count leases");
        if (busy.leased > 0 && a->how == LEASE_DELETE_IDLE)
                return fail(e, -ENOTEMPTY,
                            "pool '%s' has %" PRId64 " live lease%s: revoke them (force=true) or let them end "
                            "(when=released)",
                            p.def.name, busy.leased, busy.leased == 1 ? "" : "s");
        if (busy.leased > 0 && a->how == LEASE_DELETE_FORCE && (r = revoke_all(e, p.id, a->now)) < 0)
                return r;
        if (busy.leased > 0 && a->how == LEASE_DELETE_WHEN_RELEASED) {
                int64_t changed;
                if ((r = e->ops->pool_set_deleting(e->store, p.id, true)) < 0 ||
                    (r = e->ops->entries_set_retired(e->store, p.id, 0, INT64_MAX, true, p.def.quarantine,
                                                     &changed)) < 0)
                        return store_fail(e, r, "retire pool");
                *a->ret_gone = false;
                return reread(e, p.id, a->ret);
        }
        *a->ret_gone = true;
        *a->ret = p;
        return delete_now(e, &p, a->now);
}

int lease_pool_delete(struct lease_engine *e, const struct lease_portal *pt, int64_t pool_id,
                      enum lease_pool_delete how, struct store_pool *ret, bool *ret_gone) {
        struct delete_args a = { pt, pool_id, how, wwsf_clock_now(e->clock), ret, ret_gone };
        e->error[0] = '\0';
        return IN_TRANSACTION(e, "delete pool", delete_locked(e, &a));
}

struct entries_args {
        const struct lease_portal *pt;
        int64_t pool_id;
        const struct pool_list_entry *entries;
        size_t n;
        int64_t now;
        struct store_pool *ret;
};

static int entries_add_locked(struct lease_engine *e, struct entries_args *a) {
        struct store_pool p;
        int r = managed_pool(e, a->pt, a->pool_id, &p);
        if (r < 0)
                return r;
        if (p.def.source != POOL_SOURCE_LIST)
                return fail(e, -ENOTSUP, "pool '%s' is a %s pool: only listed pools take entries", p.def.name,
                            pool_source_to_string(p.def.source));
        if ((r = check_limits(e, a->pt, 0, (int64_t) a->n)) < 0 ||
            (r = lease_check_overlap(e, &p.def, -1, a->entries, a->n, false)) < 0 ||
            (r = insert_entries(e, &p, a->entries, a->n)) < 0)
                return r;
        p.def.size += (int64_t) a->n;
        if ((r = e->ops->pool_upsert(e->store, &p.def, a->now)) < 0)
                return store_fail(e, r, "write pool");
        return reread(e, p.id, a->ret);
}

int lease_entries_add(struct lease_engine *e, const struct lease_portal *pt, int64_t pool_id,
                      const struct pool_list_entry *entries, size_t n, struct store_pool *ret) {
        struct entries_args a = { pt, pool_id, entries, n, wwsf_clock_now(e->clock), ret };
        e->error[0] = '\0';
        return IN_TRANSACTION(e, "add entries", entries_add_locked(e, &a));
}

struct remove_args {
        const struct lease_portal *pt;
        int64_t pool_id;
        const char *impu;
        bool when_released;
        int64_t now;
        bool *ret_deferred;
};

static int entry_remove_locked(struct lease_engine *e, struct remove_args *a) {
        struct store_pool p;
        int r = managed_pool(e, a->pt, a->pool_id, &p);
        if (r < 0)
                return r;
        if (p.def.source != POOL_SOURCE_LIST)
                return fail(e, -ENOTSUP, "pool '%s' is a %s pool: change its size instead", p.def.name,
                            pool_source_to_string(p.def.source));
        struct store_entry en;
        r = e->ops->entry_by_impu(e->store, a->impu, &en);
        if (r == -ENOENT || (r == 0 && (en.pool_id != p.id || en.retired)))
                return fail(e, -ENOENT, "%s is not in pool '%s'", a->impu, p.def.name);
        if (r < 0)
                return store_fail(e, r, "find IMPU");
        bool leased = en.expires_at > a->now, held = en.avail_at > a->now;
        if (leased && !a->when_released)
                return fail(e, -ENOTEMPTY, "%s is leased: let its holder go first (when=released) or revoke the lease",
                            a->impu);
        *a->ret_deferred = leased;
        if (leased || held) {
                /* Out of the pool now; the row stays while its lease or hold runs. */
                int64_t changed;
                r = e->ops->entries_set_retired(e->store, p.id, en.idx, en.idx + 1, true, p.def.quarantine, &changed);
        } else
                r = e->ops->entry_delete(e->store, en.id);
        if (r < 0)
                return store_fail(e, r, "remove entry");
        p.def.size--;
        if ((r = e->ops->pool_upsert(e->store, &p.def, a->now)) < 0)
                return store_fail(e, r, "write pool");
        return 0;
}

int lease_entry_remove(struct lease_engine *e, const struct lease_portal *pt, int64_t pool_id, const char *impu,
                       bool when_released, bool *ret_deferred) {
        struct remove_args a = { pt, pool_id, impu, when_released, wwsf_clock_now(e->clock), ret_deferred };
        e->error[0] = '\0';
        return IN_TRANSACTION(e, "remove entry", entry_remove_locked(e, &a));
}

struct purge_state {
        struct lease_engine *e;
        int64_t now;
        int64_t ids[64];
        int n;
};

static int collect_deleting(const struct store_pool *p, void *userdata) {
        struct purge_state *ps = userdata;
        if (p->deleting && ps->n < (int) (sizeof ps->ids / sizeof ps->ids[0]))
                ps->ids[ps->n++] = p->id;
        return 0;
}

static int purge_locked(struct lease_engine *e, struct purge_state *ps, int limit, int *ret_n) {
        int r = e->ops->pool_list(e->store, collect_deleting, ps);
        if (r < 0)
                return store_fail(e, r, "list pools");
        int done = 0;
        for (int i = 0; i < ps->n; i++) {
                struct store_pool p;
                struct store_counts busy;
                if ((r = e->ops->pool_get_by_id(e->store, ps->ids[i], &p)) < 0 ||
                    (r = e->ops->pool_counts(e->store, p.id, ps->now, &busy)) < 0)
                        return store_fail(e, r, "read pool");
                if (busy.leased == 0) {
                        if ((r = delete_now(e, &p, ps->now)) < 0)
                                return r;
                        done++;
                }
        }
        int64_t purged;
        if ((r = e->ops->entries_purge(e->store, ps->now, limit, &purged)) < 0)
                return store_fail(e, r, "purge entries");
        *ret_n = done + (int) purged;
        return 0;
}

int lease_purge(struct lease_engine *e, int limit, int *ret_n) {
        struct purge_state ps = { .e = e, .now = wwsf_clock_now(e->clock) };
        int n = 0;
        e->error[0] = '\0';
        int r = IN_TRANSACTION(e, "purge", purge_locked(e, &ps, limit, &n));
        if (r == 0 && ret_n)
                *ret_n = n;
        return r;
}

struct revoke_args {
        int64_t lease_id;
        struct store_history *ret;
};

static int revoke_id_locked(struct lease_engine *e, struct revoke_args *a) {
        int r = e->ops->history_get(e->store, a->lease_id, a->ret);
        if (r == -ENOENT)
                return fail(e, r, "no lease %" PRId64, a->lease_id);
        if (r < 0)
                return store_fail(e, r, "read lease");
        if (!a->ret->open)
                return fail(e, -ESTALE, "lease %" PRId64 " ended already (%s)", a->lease_id, a->ret->end_reason);
        if ((r = lease_revoke(e, a->ret->impu, NULL)) < 0)
                return r;
        if ((r = e->ops->history_get(e->store, a->lease_id, a->ret)) < 0)
                return store_fail(e, r, "read lease");
        return 0;
}

int lease_revoke_id(struct lease_engine *e, int64_t lease_id, struct store_history *ret) {
        struct revoke_args a = { lease_id, ret };
        e->error[0] = '\0';
        return IN_TRANSACTION(e, "revoke lease", revoke_id_locked(e, &a));
}
