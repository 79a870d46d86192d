/* The portal API under /api/v1/portal/ (docs/openapi.json; the README's
 * "Portal API"): third-party portals manage the pools of the subscriptions
 * the operator gave them, and see nothing of anyone else's.
 *
 * The HTTP thread routes the request, checks what it can alone (the key's
 * presence, its throttle, the body's type and shape, the query) and hands
 * it to a worker. There, in one transaction: the key is authenticated
 * (every request: a revoked key stops at once), an Idempotency-Key is
 * looked up, the operation runs, its audit record and its kept answer are
 * written. The answer goes out after the commit, so a 2xx is durable.
 * Anything of another portal answers 404 exactly as what does not exist. */
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lease/lease.h"
#include "portal/portal.h"
#include "wwsfd/api/api.h"
#include "wwsfd/api/portal.h"
#include "wwsfd/daemon.h"
#include "wwsfd/jobs.h"
#include "wwsfd/log.h"
#include "wwsfd/throttle.h"

#define PAGE_DEFAULT 100
#define PAGE_MAX 1000

struct portal_req;
struct ctx;
typedef int (*op_fn)(struct ctx *c);

/* One operation: its method and path as docs/openapi.json writes them. */
struct op {
        const char *method;
        const char *path;
        op_fn fn;
        bool write;
        bool body;              /* takes a JSON body */
};

enum query_flag {
        Q_PAGE = 1 << 0,        /* limit, cursor */
        Q_SUBSCRIPTION = 1 << 1,
        Q_LEASE_FILTER = 1 << 2,        /* state, holder, impu */
        Q_FORCE = 1 << 3,       /* force, when */
        Q_WHEN = 1 << 4,        /* when */
        Q_AUDIT = 1 << 5,       /* impu (required), at */
};

struct portal_req {
        struct request *r;
        struct wwsfd *d;
        const struct op *op;
        char key[PORTAL_KEY_SIZE];
        json_t *body;
        char path[STORE_AUDIT_RESOURCE_MAX];    /* the resource written, for the audit */
        int64_t id;                             /* {id} */
        char name[POOL_NAME_MAX];               /* {name} */
        char impu[STORE_IDENTITY_MAX];          /* {impu} */

        int limit;
        int64_t cursor;
        char subscription[POOL_NAME_MAX];
        bool has_subscription;
        enum store_lease_state state;
        char holder[STORE_HOLDER_MAX];
        bool has_holder;
        char q_impu[STORE_IDENTITY_MAX];
        bool has_q_impu;
        int64_t at;                             /* -1: now */
        enum lease_pool_delete delete_how;
        bool when_released;

        char if_match[40];
        bool has_if_match;
        char idem_key[STORE_IDEMPOTENCY_KEY_MAX];
        uint8_t request_sha[STORE_PORTAL_HASH_SIZE];

        /* The worker's answer. */
        struct store_portal portal;
        bool authenticated;
        unsigned status;
        json_t *reply;          /* NULL: no body */
};

/* What an operation works with, in the worker. */
struct ctx {
        struct portal_req *pr;
        struct lease_engine *e;
        struct store *s;
        int64_t now;
        struct lease_portal limits;
        /* The audit record of a write. */
        const char *action;
        json_t *before, *after;
};

/* ---- answers ---- */

/* An error answer; the transaction is undone. */
__attribute__((format(printf, 4, 5)))
static int refuse(struct ctx *c, enum wwsf_error e, const char *field, const char *fmt, ...) {
        char detail[600];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof detail, fmt, ap);
        va_end(ap);
        c->pr->status = wwsf_error_info(e)->status;
        json_decref(c->pr->reply);
        c->pr->reply = error_json(c->pr->r, e, field, detail);
        return -ECANCELED;
}

static int answer(struct ctx *c, unsigned status, json_t *body) {
        if (body == NULL && status != 204)
                return refuse(c, WWSF_E_INTERNAL_ERROR, NULL, "out of memory");
        c->pr->status = status;
        c->pr->reply = body;
        return 0;
}

/* An engine's refusal in the API's words. The engine's own words are used
 * where they say nothing of other portals. */
static int engine_refusal(struct ctx *c, int r, const char *what) {
        const char *words = lease_engine_error(c->e);
        switch (r) {
        case -ENOENT:
                return refuse(c, WWSF_E_NOT_FOUND, NULL, "no such %s", what);
        case -EROFS:
                return refuse(c, WWSF_E_MANAGED_BY_CONFIG, NULL,
                              "this pool is defined in the operator's pool configuration; the API cannot change it");
        case -EADDRINUSE:
                return refuse(c, WWSF_E_CONFLICT, "name", "%s", words);
        case -EEXIST:
                return refuse(c, WWSF_E_IMPU_TAKEN, NULL, "%s", words);
        case -ENOTEMPTY:
                return refuse(c, WWSF_E_LEASES_LIVE, NULL, "%s", words);
        case -E2BIG:
                return refuse(c, WWSF_E_LIMIT_REACHED, NULL, "%s", words);
        case -ENOTSUP:
        case -ESTALE:
                return refuse(c, WWSF_E_CONFLICT, NULL, "%s", words);
        case -EINVAL:
                return refuse(c, WWSF_E_BAD_REQUEST, NULL, "%s", words);
        default:
                log_warning("portal %s: %s", c->pr->portal.name, words);
                return refuse(c, WWSF_E_BUSY, NULL, "the lease store could not do this now; try again");
        }
}

static int store_refusal(struct ctx *c, int r) {
        log_warning("portal %s: lease store: %s (%d)", c->pr->portal.name, c->s->ops->error(c->s), r);
        return refuse(c, WWSF_E_BUSY, NULL, "the lease store could not do this now; try again");
}

/* ---- what a portal may see ---- */

static bool owns_subscription(const struct ctx *c, const struct pool_subscription *sub) {
        return sub->owner[0] && strcmp(sub->owner, c->pr->portal.name) == 0;
}

/* The pool {id} if it is the caller's, else a 404 answer (r < 0). */
static int own_pool(struct ctx *c, struct store_pool *p) {
        int r = c->s->ops->pool_get_by_id(c->s, c->pr->id, p);
        if (r == -ENOENT || (r == 0 && (p->deleted || !owns_subscription(c, &p->sub))))
                return refuse(c, WWSF_E_NOT_FOUND, NULL, "no such pool");
        return r < 0 ? store_refusal(c, r) : 0;
}

static json_t *pool_answer(struct ctx *c, const struct store_pool *p) {
        struct store_counts counts;
        if (c->s->ops->pool_counts(c->s, p->id, c->now, &counts) < 0)
                return NULL;
        int64_t free_count = p->deleting ? 0 : p->def.size - counts.leased - counts.quarantine;
        return portal_pool_json(p, &counts, free_count < 0 ? 0 : free_count);
}

static void set_etag(struct ctx *c, const struct store_pool *p) {
        portal_etag(p, c->pr->r->etag, sizeof c->pr->r->etag);
}

/* If-Match against the pool's current ETag ("*" matches any). */
static int check_if_match(struct ctx *c, const struct store_pool *p) {
        if (!c->pr->has_if_match || strcmp(c->pr->if_match, "*") == 0)
                return 0;
        char etag[32];
        portal_etag(p, etag, sizeof etag);
        if (strcmp(etag, c->pr->if_match) != 0)
                return refuse(c, WWSF_E_PRECONDITION_FAILED, NULL, "the pool changed since: its ETag is now %s", etag);
        return 0;
}

/* ---- paging ---- */

struct page {
        struct ctx *c;
        json_t *items;
        int limit, n;
        int64_t last;           /* cursor of the last item kept */
        bool more;
};

static json_t *page_answer(struct page *pg) {
        json_t *j = json_object();
        if (!j) {
                json_decref(pg->items);
                return NULL;
        }
        json_object_set_new(j, "items", pg->items);
        char cursor[24];
        snprintf(cursor, sizeof cursor, "%" PRId64, pg->last);
        json_object_set_new(j, "next_cursor", pg->more ? json_string(cursor) : json_null());
        return j;
}

/* Adds item unless the page is full (then there is more). */
static int page_add(struct page *pg, json_t *item, int64_t cursor) {
        if (pg->n == pg->limit) {
                json_decref(item);
                pg->more = true;
                return 1;
        }
        if (!item || json_array_append_new(pg->items, item) < 0)
                return -ENOMEM;
        pg->n++;
        pg->last = cursor;
        return 0;
}

/* ---- operations ---- */

static int sub_item(const struct store_subscription *s, void *userdata) {
        return json_array_append_new(userdata, portal_subscription_json(s)) < 0 ? -ENOMEM : 0;
}

static int op_list_subscriptions(struct ctx *c) {
        json_t *items = json_array();
        if (!items)
                return refuse(c, WWSF_E_INTERNAL_ERROR, NULL, "out of memory");
        int r = c->s->ops->subscription_list_owned(c->s, c->pr->portal.name, sub_item, items);
        if (r < 0) {
                json_decref(items);
                return store_refusal(c, r);
        }
        return answer(c, 200, json_pack("{s:o, s:n}", "items", items, "next_cursor"));
}

static int op_get_subscription(struct ctx *c) {
        struct store_subscription sub;
        int r = c->s->ops->subscription_get(c->s, c->pr->name, &sub);
        if (r == -ENOENT || (r == 0 && !owns_subscription(c, &sub.sub)))
                return refuse(c, WWSF_E_NOT_FOUND, NULL, "no such subscription");
        if (r < 0)
                return store_refusal(c, r);
        return answer(c, 200, portal_subscription_json(&sub));
}

static int pool_item(const struct store_pool *p, void *userdata) {
        struct page *pg = userdata;
        return page_add(pg, pool_answer(pg->c, p), p->id);
}

static int op_list_pools(struct ctx *c) {
        struct page pg = { .c = c, .items = json_array(), .limit = c->pr->limit };
        if (!pg.items)
                return refuse(c, WWSF_E_INTERNAL_ERROR, NULL, "out of memory");
        int r = c->s->ops->pool_list_owned(c->s, c->pr->portal.name, c->pr->has_subscription ? c->pr->subscription : NULL,
                                           c->pr->cursor, pg.limit + 1, pool_item, &pg);
        if (r < 0) {
                json_decref(pg.items);
                return r == -ENOMEM ? refuse(c, WWSF_E_INTERNAL_ERROR, NULL, "out of memory") : store_refusal(c, r);
        }
        return answer(c, 200, page_answer(&pg));
}

/* The answer of a pool written, its ETag and the audit's after. */
static int pool_written(struct ctx *c, unsigned status, const struct store_pool *p) {
        json_t *j = pool_answer(c, p);
        if (!j)
                return refuse(c, WWSF_E_BUSY, NULL, "the lease store could not do this now; try again");
        set_etag(c, p);
        c->after = json_incref(j);
        return answer(c, status, j);
}

static int op_create_pool(struct ctx *c) {
        json_t *body = c->pr->body;
        const char *name = json_string_value(json_object_get(body, "name"));
        const char *subname = json_string_value(json_object_get(body, "subscription"));
        if (!json_object_get(body, "name"))
                return refuse(c, WWSF_E_BAD_REQUEST, "name", "a pool needs a 'name'");
        if (!name || !pool_name_valid(name))
                return refuse(c, WWSF_E_BAD_REQUEST, "name",
                              "'name' must be 1-%d characters of letters, digits, '.', '_' or '-'", POOL_NAME_CHARS);
        if (!json_object_get(body, "subscription"))
                return refuse(c, WWSF_E_BAD_REQUEST, "subscription", "a pool needs a 'subscription'");
        struct store_subscription sub;
        int r = subname ? c->s->ops->subscription_get(c->s, subname, &sub) : -ENOENT;
        if (r == -ENOENT || (r == 0 && !owns_subscription(c, &sub.sub)))
                return refuse(c, WWSF_E_BAD_REQUEST, "subscription", "'subscription' must name one of your subscriptions");
        if (r < 0)
                return store_refusal(c, r);

        struct portal_pool_request req;
        struct portal_refusal why;
        if ((r = portal_pool_request(body, &sub.sub, name, NULL, &req, &why)) < 0)
                return r == -ENOMEM ? refuse(c, WWSF_E_INTERNAL_ERROR, NULL, "out of memory")
                                    : refuse(c, WWSF_E_BAD_REQUEST, why.field[0] ? why.field : NULL, "%s", why.detail);
        struct store_pool p;
        r = lease_pool_create(c->e, &c->limits, req.pool, &p);
        portal_pool_request_free(&req);
        if (r < 0)
                return engine_refusal(c, r, "pool");
        snprintf(c->pr->r->location, sizeof c->pr->r->location, "/api/v1/portal/pools/%" PRId64, p.id);
        snprintf(c->pr->path, sizeof c->pr->path, "%s", c->pr->r->location);
        c->action = "pool.create";
        return pool_written(c, 201, &p);
}

static int op_get_pool(struct ctx *c) {
        struct store_pool p;
        int r = own_pool(c, &p);
        if (r < 0)
                return r;
        set_etag(c, &p);
        json_t *j = pool_answer(c, &p);
        return j ? answer(c, 200, j) : refuse(c, WWSF_E_BUSY, NULL, "the lease store could not do this now; try again");
}

static int op_update_pool(struct ctx *c) {
        struct store_pool old;
        int r = own_pool(c, &old);
        if (r < 0 || (r = check_if_match(c, &old)) < 0)
                return r;
        if (!old.portal_id)
                return engine_refusal(c, -EROFS, "pool");
        struct portal_pool_request req;
        struct portal_refusal why;
        if ((r = portal_pool_request(c->pr->body, &old.sub, old.def.name, &old, &req, &why)) < 0)
                return r == -ENOMEM ? refuse(c, WWSF_E_INTERNAL_ERROR, NULL, "out of memory")
                                    : refuse(c, WWSF_E_BAD_REQUEST, why.field[0] ? why.field : NULL, "%s", why.detail);
        c->before = pool_answer(c, &old);
        struct store_pool p;
        r = lease_pool_update(c->e, &c->limits, old.id, &req.pool->def, &p);
        portal_pool_request_free(&req);
        if (r < 0)
                return engine_refusal(c, r, "pool");
        c->action = "pool.update";
        return pool_written(c, 200, &p);
}

static int op_delete_pool(struct ctx *c) {
        struct store_pool old;
        int r = own_pool(c, &old);
        if (r < 0 || (r = check_if_match(c, &old)) < 0)
                return r;
        c->before = pool_answer(c, &old);
        struct store_pool p;
        bool gone;
        if ((r = lease_pool_delete(c->e, &c->limits, old.id, c->pr->delete_how, &p, &gone)) < 0)
                return engine_refusal(c, r, "pool");
        c->action = "pool.delete";
        if (gone)
                return answer(c, 204, NULL);
        return pool_written(c, 202, &p);
}

static int entry_item(const struct store_entry *e, void *userdata) {
        struct page *pg = userdata;
        return page_add(pg, portal_entry_json(e, pg->c->now), e->idx);
}

static int op_list_entries(struct ctx *c) {
        struct store_pool p;
        int r = own_pool(c, &p);
        if (r < 0)
                return r;
        struct page pg = { .c = c, .items = json_array(), .limit = c->pr->limit };
        if (!pg.items)
                return refuse(c, WWSF_E_INTERNAL_ERROR, NULL, "out of memory");
        /* Entry indexes start at 0: the first page starts after -1. */
        r = c->s->ops->entry_page(c->s, p.id, c->pr->cursor - 1, pg.limit + 1, entry_item, &pg);
        if (r < 0) {
                json_decref(pg.items);
                return store_refusal(c, r);
        }
        /* The cursor is the next index, so that 0 is no cursor. */
        pg.last++;
        return answer(c, 200, page_answer(&pg));
}

static int op_add_entries(struct ctx *c) {
        struct store_pool old;
        int r = own_pool(c, &old);
        if (r < 0)
                return r;
        if (!old.portal_id)
                return engine_refusal(c, -EROFS, "pool");
        json_t *body = c->pr->body, *entries = json_object_get(body, "entry"), *v;
        const char *member;
        json_object_foreach(body, member, v) {
                if (strcmp(member, "entry") != 0)
                        return refuse(c, WWSF_E_BAD_REQUEST, member,
                                      "'%.64s' is not a member here: the body is {\"entry\": [{\"impu\": ..., "
                                      "\"impi\": ...}, ...]} and nothing else",
                                      member);
        }
        if (!entries)
                return refuse(c, WWSF_E_BAD_REQUEST, "entry",
                              "the body is {\"entry\": [{\"impu\": ..., \"impi\": ...}, ...]}");
        if (old.def.source != POOL_SOURCE_LIST)
                return engine_refusal(c, lease_entries_add(c->e, &c->limits, old.id, NULL, 0, NULL), "pool");
        /* The new entries under the pool's definition, through the checks of
         * a pool of the files. */
        json_t *as_pool = json_pack("{s:s, s:I, s:I, s:O}", "kind", pool_kind_to_string(old.def.kind), "lease_ttl",
                                    (json_int_t) old.def.lease_ttl, "quarantine", (json_int_t) old.def.quarantine,
                                    "entry", entries);
        if (!as_pool)
                return refuse(c, WWSF_E_INTERNAL_ERROR, NULL, "out of memory");
        if (old.def.shared_impi[0])
                json_object_set_new(as_pool, "impi", json_string(old.def.shared_impi));
        struct portal_pool_request req;
        struct portal_refusal why;
        r = portal_pool_request(as_pool, &old.sub, old.def.name, NULL, &req, &why);
        json_decref(as_pool);
        if (r < 0)
                return r == -ENOMEM ? refuse(c, WWSF_E_INTERNAL_ERROR, NULL, "out of memory")
                                    : refuse(c, WWSF_E_BAD_REQUEST, why.field[0] ? why.field : NULL, "%s", why.detail);
        c->before = pool_answer(c, &old);
        struct store_pool p;
        r = lease_entries_add(c->e, &c->limits, old.id, req.pool->entries, req.pool->n_entries, &p);
        size_t added = req.pool->n_entries;
        portal_pool_request_free(&req);
        if (r < 0)
                return engine_refusal(c, r, "pool");
        c->action = "entries.add";
        json_t *pj = pool_answer(c, &p);
        if (!pj)
                return refuse(c, WWSF_E_BUSY, NULL, "the lease store could not do this now; try again");
        set_etag(c, &p);
        c->after = json_incref(pj);
        return answer(c, 200, json_pack("{s:I, s:o}", "added", (json_int_t) added, "pool", pj));
}

static int op_remove_entry(struct ctx *c) {
        struct store_pool old;
        int r = own_pool(c, &old);
        if (r < 0)
                return r;
        struct store_entry en;
        r = c->s->ops->entry_by_impu(c->s, c->pr->impu, &en);
        if (r == -ENOENT || (r == 0 && (en.pool_id != old.id || en.retired)))
                return refuse(c, WWSF_E_NOT_FOUND, NULL, "no such entry in this pool");
        if (r < 0)
                return store_refusal(c, r);
        c->before = portal_entry_json(&en, c->now);
        bool deferred = false;
        if ((r = lease_entry_remove(c->e, &c->limits, old.id, c->pr->impu, c->pr->when_released, &deferred)) < 0)
                return engine_refusal(c, r, "entry");
        c->action = "entry.remove";
        if (!deferred)
                return answer(c, 204, NULL);
        if ((r = c->s->ops->entry_by_impu(c->s, c->pr->impu, &en)) < 0)
                return store_refusal(c, r);
        json_t *j = portal_entry_json(&en, c->now);
        json_object_set_new(j, "state", json_string("retired"));
        c->after = json_incref(j);
        return answer(c, 202, j);
}

static int lease_item(const struct store_history *h, void *userdata) {
        struct page *pg = userdata;
        return page_add(pg, portal_lease_json(h, pg->c->now), h->id);
}

static int op_list_leases(struct ctx *c) {
        struct store_pool p;
        int r = own_pool(c, &p);
        if (r < 0)
                return r;
        struct page pg = { .c = c, .items = json_array(), .limit = c->pr->limit };
        if (!pg.items)
                return refuse(c, WWSF_E_INTERNAL_ERROR, NULL, "out of memory");
        const struct store_history_filter f = {
                .state = c->pr->state,
                .now = c->now,
                .holder = c->pr->has_holder ? c->pr->holder : NULL,
                .impu = c->pr->has_q_impu ? c->pr->q_impu : NULL,
        };
        r = c->s->ops->history_page(c->s, p.id, &f, c->pr->cursor, pg.limit + 1, lease_item, &pg);
        if (r < 0) {
                json_decref(pg.items);
                return store_refusal(c, r);
        }
        return answer(c, 200, page_answer(&pg));
}

/* The lease {id} if it is of one of the caller's pools, and its pool. */
static int own_lease(struct ctx *c, struct store_history *h, struct store_pool *p) {
        int r = c->s->ops->history_get(c->s, c->pr->id, h);
        if (r == -ENOENT)
                return refuse(c, WWSF_E_NOT_FOUND, NULL, "no such lease");
        if (r < 0)
                return store_refusal(c, r);
        r = c->s->ops->pool_get_by_id(c->s, h->pool_id, p);
        if (r == -ENOENT || (r == 0 && (p->deleted || !owns_subscription(c, &p->sub))))
                return refuse(c, WWSF_E_NOT_FOUND, NULL, "no such lease");
        return r < 0 ? store_refusal(c, r) : 0;
}

static int op_get_lease(struct ctx *c) {
        struct store_history h;
        struct store_pool p;
        int r = own_lease(c, &h, &p);
        return r < 0 ? r : answer(c, 200, portal_lease_json(&h, c->now));
}

static int op_revoke_lease(struct ctx *c) {
        struct store_history h;
        struct store_pool p;
        int r = own_lease(c, &h, &p);
        if (r < 0)
                return r;
        /* A lease of a pool of the files is the operator's to end, as
         * every other change of that pool is. */
        if (!p.portal_id)
                return engine_refusal(c, -EROFS, "pool");
        c->before = portal_lease_json(&h, c->now);
        if ((r = lease_revoke_id(c->e, h.id, &h)) < 0)
                return engine_refusal(c, r, "lease");
        c->action = "lease.revoke";
        json_t *j = portal_lease_json(&h, c->now);
        c->after = json_incref(j);
        return answer(c, 200, j);
}

static int op_pool_stats(struct ctx *c) {
        struct store_pool p;
        int r = own_pool(c, &p);
        if (r < 0)
                return r;
        struct store_counts n;
        if ((r = c->s->ops->pool_counts(c->s, p.id, c->now, &n)) < 0)
                return store_refusal(c, r);
        int64_t free_count = p.deleting ? 0 : p.def.size - n.leased - n.quarantine;
        return answer(c, 200,
                      json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "pool", (json_int_t) p.id, "size",
                                (json_int_t) p.def.size, "leased", (json_int_t) n.leased, "quarantine",
                                (json_int_t) n.quarantine, "free", (json_int_t) (free_count < 0 ? 0 : free_count),
                                "retired", (json_int_t) n.retired, "materialised", (json_int_t) n.materialised, "at",
                                (json_int_t) c->now));
}

struct audit_state {
        struct ctx *c;
        json_t *items;
        int error;
};

static int audit_item(const struct store_history *h, void *userdata) {
        struct audit_state *as = userdata;
        struct store_pool p;
        int r = as->c->s->ops->pool_get_by_id(as->c->s, h->pool_id, &p);
        if (r == -ENOENT || (r == 0 && !owns_subscription(as->c, &p.sub)))
                return 0;       /* another portal's: not there for this one */
        if (r < 0 || json_array_append_new(as->items, portal_lease_json(h, as->c->now)) < 0) {
                as->error = r < 0 ? r : -ENOMEM;
                return 1;
        }
        return 0;
}

static int op_audit(struct ctx *c) {
        struct audit_state as = { .c = c, .items = json_array() };
        if (!as.items)
                return refuse(c, WWSF_E_INTERNAL_ERROR, NULL, "out of memory");
        int r = c->s->ops->history_list(c->s, c->pr->q_impu, c->pr->at >= 0 ? c->pr->at : c->now, audit_item, &as);
        if (r < 0 || as.error < 0) {
                json_decref(as.items);
                return store_refusal(c, r < 0 ? r : as.error);
        }
        return answer(c, 200, json_pack("{s:o}", "items", as.items));
}

/* Paths as docs/openapi.json writes them; {impu} takes the rest of the path. */
static const struct op ops[] = {
        { "GET", "/api/v1/portal/subscriptions", op_list_subscriptions, false, false },
        { "GET", "/api/v1/portal/subscriptions/{name}", op_get_subscription, false, false },
        { "GET", "/api/v1/portal/pools", op_list_pools, false, false },
        { "POST", "/api/v1/portal/pools", op_create_pool, true, true },
        { "GET", "/api/v1/portal/pools/{id}", op_get_pool, false, false },
        { "PATCH", "/api/v1/portal/pools/{id}", op_update_pool, true, true },
        { "DELETE", "/api/v1/portal/pools/{id}", op_delete_pool, true, false },
        { "GET", "/api/v1/portal/pools/{id}/entries", op_list_entries, false, false },
        { "POST", "/api/v1/portal/pools/{id}/entries", op_add_entries, true, true },
        { "DELETE", "/api/v1/portal/pools/{id}/entries/{impu}", op_remove_entry, true, false },
        { "GET", "/api/v1/portal/pools/{id}/leases", op_list_leases, false, false },
        { "GET", "/api/v1/portal/leases/{id}", op_get_lease, false, false },
        { "DELETE", "/api/v1/portal/leases/{id}", op_revoke_lease, true, false },
        { "GET", "/api/v1/portal/pools/{id}/stats", op_pool_stats, false, false },
        { "GET", "/api/v1/portal/audit", op_audit, false, false },
};
#define N_OPS (sizeof ops / sizeof ops[0])

/* ---- the worker ---- */

static void req_free(struct portal_req *pr) {
        json_decref(pr->body);
        json_decref(pr->reply);
        gnutls_memset(pr->key, 0, sizeof pr->key);
        free(pr);
}

static int audit_write(struct ctx *c) {
        char *before = c->before ? json_dumps(c->before, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        char *after = c->after ? json_dumps(c->after, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        struct store_audit a = { .portal_id = c->pr->portal.id, .at = c->now, .before = before, .after = after };
        snprintf(a.action, sizeof a.action, "%s", c->action);
        snprintf(a.resource, sizeof a.resource, "%s", c->pr->path);
        snprintf(a.client_addr, sizeof a.client_addr, "%s", c->pr->r->client_addr);
        int r = c->s->ops->audit_insert(c->s, &a);
        free(before);
        free(after);
        return r;
}

/* Replays the answer kept for the request's Idempotency-Key: 1 when it
 * was, 0 when the key is new. */
static int idempotency_replay(struct ctx *c) {
        struct portal_req *pr = c->pr;
        struct store_idempotency kept;
        int r = c->s->ops->idempotency_get(c->s, pr->portal.id, pr->idem_key, &kept);
        if (r == -ENOENT || (r == 0 && kept.created_at < c->now - PORTAL_IDEMPOTENCY_TTL)) {
                if (r == 0)
                        free(kept.body);
                return 0;
        }
        if (r < 0)
                return store_refusal(c, r);
        if (gnutls_memcmp(kept.request_sha256, pr->request_sha, sizeof pr->request_sha) != 0) {
                free(kept.body);
                return refuse(c, WWSF_E_IDEMPOTENCY_MISMATCH, NULL,
                              "this Idempotency-Key came with another request before; use a new key for a new request");
        }
        json_t *body = kept.body[0] ? json_loads(kept.body, 0, NULL) : NULL;
        free(kept.body);
        snprintf(pr->r->location, sizeof pr->r->location, "%s", kept.location);
        pr->status = (unsigned) kept.status;
        pr->reply = body;
        return 1;
}

static int idempotency_keep(struct ctx *c) {
        struct portal_req *pr = c->pr;
        char *body = pr->reply ? json_dumps(pr->reply, JSON_COMPACT) : NULL;
        struct store_idempotency kept = { .portal_id = pr->portal.id, .status = (int) pr->status, .body = body,
                                          .created_at = c->now };
        snprintf(kept.key, sizeof kept.key, "%s", pr->idem_key);
        memcpy(kept.request_sha256, pr->request_sha, sizeof kept.request_sha256);
        snprintf(kept.location, sizeof kept.location, "%s", pr->r->location);
        int r = c->s->ops->idempotency_put(c->s, &kept);
        free(body);
        return r;
}

static int run_request(struct lease_engine *e, void *userdata) {
        struct ctx *c = userdata;
        struct portal_req *pr = c->pr;
        int r = portal_authenticate_in(c->s, pr->key, c->now, &pr->portal);
        gnutls_memset(pr->key, 0, sizeof pr->key);
        if (r == -EACCES) {
                pr->r->bearer_challenge = true;
                return refuse(c, WWSF_E_UNAUTHORIZED, NULL, "the API key is not valid");
        }
        if (r < 0)
                return store_refusal(c, r);
        pr->authenticated = true;
        c->limits = (struct lease_portal) { pr->portal.id, pr->portal.max_pools, pr->portal.max_entries };
        (void) e;
        if (pr->idem_key[0]) {
                if ((r = idempotency_replay(c)) != 0)
                        return r < 0 ? r : 0;
        }
        if ((r = pr->op->fn(c)) < 0)
                return r;
        if (c->action && (r = audit_write(c)) < 0)
                return store_refusal(c, r);
        if (pr->idem_key[0] && (r = idempotency_keep(c)) < 0)
                return store_refusal(c, r);
        return 0;
}

static void after_commit(struct worker *w, void *userdata, bool committed) {
        struct portal_req *pr = userdata;
        (void) w;
        struct request *r = pr->r;
        if (!committed && pr->status < 300) {
                json_decref(pr->reply);
                pr->reply = NULL;
                r->location[0] = r->etag[0] = '\0';
                pr->status = 503;
                pr->reply = error_json(r, WWSF_E_BUSY, NULL, "the lease store could not record this; try again");
        }
        metrics_count_portal(&pr->d->metrics, pr->authenticated ? pr->portal.name : NULL, pr->op->write, pr->status);
        if (pr->op->write && pr->status < 300)
                log_info("portal %s: %s %s: %u", pr->portal.name, pr->op->method, pr->path, pr->status);
        json_t *reply = pr->reply;
        pr->reply = NULL;
        request_finish_json(r, pr->status, reply);
        req_free(pr);
}

static void portal_job(struct worker *w, void *userdata) {
        struct portal_req *pr = userdata;
        struct ctx c = { .pr = pr, .e = w->engine, .s = lease_engine_store(w->engine),
                         .now = lease_engine_now(w->engine) };
        int r = lease_transaction(w->engine, "portal request", run_request, &c);
        if (r < 0 && r != -ECANCELED && !pr->reply) {
                log_warning("portal request: %s", lease_engine_error(w->engine));
                pr->status = 503;
                pr->reply = error_json(pr->r, WWSF_E_BUSY, NULL, "the lease store could not do this now; try again");
        }
        json_decref(c.before);
        json_decref(c.after);
        worker_defer(w, after_commit, pr);
}

/* ---- the HTTP thread ---- */

/* Whether url matches the pattern, filling the request's path parameters. */
static bool path_match(const char *pattern, const char *url, struct portal_req *pr) {
        const char *p = pattern, *u = url;
        while (*p) {
                if (*p != '{') {
                        if (*p++ != *u++)
                                return false;
                        continue;
                }
                const char *close = strchr(p, '}');
                size_t plen = (size_t) (close - p - 1);
                if (strncmp(p + 1, "impu", plen) == 0 && plen == 4) {
                        /* The rest of the path: an IMPU, %-decoded already. */
                        size_t n = strlen(u);
                        if (n == 0 || n >= sizeof pr->impu)
                                return false;
                        memcpy(pr->impu, u, n + 1);
                        u += n;
                } else {
                        size_t n = strcspn(u, "/");
                        if (n == 0)
                                return false;
                        if (plen == 2 && strncmp(p + 1, "id", 2) == 0) {
                                int64_t id = 0;
                                for (size_t i = 0; i < n; i++) {
                                        if (u[i] < '0' || u[i] > '9' || i >= 18)
                                                return false;
                                        id = id * 10 + (u[i] - '0');
                                }
                                if (id < 1)
                                        return false;
                                pr->id = id;
                        } else {
                                if (n >= sizeof pr->name)
                                        return false;
                                memcpy(pr->name, u, n);
                                pr->name[n] = '\0';
                        }
                        u += n;
                }
                p = close + 1;
        }
        return *u == '\0';
}

static const char *query(struct request *r, const char *name) {
        return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

static bool parse_count(const char *s, int64_t min, int64_t max, int64_t *ret) {
        if (!s || !*s || strlen(s) > 18)
                return false;
        int64_t v = 0;
        for (const char *p = s; *p; p++) {
                if (*p < '0' || *p > '9')
                        return false;
                v = v * 10 + (*p - '0');
        }
        if (v < min || v > max)
                return false;
        *ret = v;
        return true;
}

struct query_iter {
        const char *const *allowed;
        const char *unknown;
};

static enum MHD_Result query_key(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
        struct query_iter *qi = cls;
        (void) kind;
        (void) value;
        for (const char *const *a = qi->allowed; *a; a++)
                if (strcmp(*a, key) == 0)
                        return MHD_YES;
        qi->unknown = key;
        return MHD_NO;
}

/* A refused query parameter: 400 naming it. */
static enum MHD_Result bad_query(struct request *r, const char *field, const char *detail) {
        return reply_json(r, 400, error_json(r, WWSF_E_BAD_REQUEST, field, detail));
}

/* The query parameters of the operation, checked, into pr. */
static bool parse_query(struct request *r, struct portal_req *pr, enum MHD_Result *ret) {
        static const char *const page[] = { "limit", "cursor", NULL };
        static const char *const pools[] = { "limit", "cursor", "subscription", NULL };
        static const char *const leases[] = { "limit", "cursor", "state", "holder", "impu", NULL };
        static const char *const del_pool[] = { "force", "when", NULL };
        static const char *const del_entry[] = { "when", NULL };
        static const char *const audit[] = { "impu", "at", NULL };
        static const char *const none[] = { NULL };
        const struct op *op = pr->op;
        const char *const *allowed = none;
        if (op->fn == op_list_pools)
                allowed = pools;
        else if (op->fn == op_list_entries)
                allowed = page;
        else if (op->fn == op_list_leases)
                allowed = leases;
        else if (op->fn == op_delete_pool)
                allowed = del_pool;
        else if (op->fn == op_remove_entry)
                allowed = del_entry;
        else if (op->fn == op_audit)
                allowed = audit;
        struct query_iter qi = { .allowed = allowed };
        MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, query_key, &qi);
        if (qi.unknown) {
                char detail[160];
                snprintf(detail, sizeof detail, "unknown query parameter '%.64s'", qi.unknown);
                *ret = bad_query(r, qi.unknown, detail);
                return false;
        }
        const char *v;
        int64_t n;
        pr->limit = PAGE_DEFAULT;
        pr->at = -1;
        if ((v = query(r, "limit"))) {
                if (!parse_count(v, 1, PAGE_MAX, &n)) {
                        *ret = bad_query(r, "limit", "limit must be a number from 1 to 1000");
                        return false;
                }
                pr->limit = (int) n;
        }
        if ((v = query(r, "cursor")) && !parse_count(v, 0, INT64_MAX / 2, &pr->cursor)) {
                *ret = bad_query(r, "cursor", "cursor must be a next_cursor of an earlier page");
                return false;
        }
        if ((v = query(r, "subscription"))) {
                if (!pool_name_valid(v)) {
                        *ret = bad_query(r, "subscription", "subscription must be a subscription's name");
                        return false;
                }
                snprintf(pr->subscription, sizeof pr->subscription, "%s", v);
                pr->has_subscription = true;
        }
        if ((v = query(r, "state"))) {
                static const char *const states[] = { "leased", "quarantine", "ended" };
                static const enum store_lease_state values[] = { STORE_LEASES_OPEN, STORE_LEASES_QUARANTINE,
                                                                 STORE_LEASES_ENDED };
                size_t i = 0;
                while (i < 3 && strcmp(v, states[i]) != 0)
                        i++;
                if (i == 3) {
                        *ret = bad_query(r, "state", "state must be leased, quarantine or ended");
                        return false;
                }
                pr->state = values[i];
        }
        if ((v = query(r, "holder"))) {
                if (!*v || strlen(v) >= sizeof pr->holder) {
                        *ret = bad_query(r, "holder", "holder must be 1-255 bytes");
                        return false;
                }
                snprintf(pr->holder, sizeof pr->holder, "%s", v);
                pr->has_holder = true;
        }
        if ((v = query(r, "impu"))) {
                if (!*v || strlen(v) >= sizeof pr->q_impu) {
                        *ret = bad_query(r, "impu", "impu must be 1-255 bytes");
                        return false;
                }
                snprintf(pr->q_impu, sizeof pr->q_impu, "%s", v);
                pr->has_q_impu = true;
        }
        if (op->fn == op_audit && !pr->has_q_impu) {
                *ret = bad_query(r, "impu", "the audit needs ?impu=");
                return false;
        }
        if ((v = query(r, "at")) && !parse_count(v, 0, INT64_MAX / 2, &pr->at)) {
                *ret = bad_query(r, "at", "at must be a Unix time in seconds");
                return false;
        }
        pr->delete_how = LEASE_DELETE_IDLE;
        if ((v = query(r, "force"))) {
                if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0) {
                        *ret = bad_query(r, "force", "force must be true or false");
                        return false;
                }
                if (strcmp(v, "true") == 0)
                        pr->delete_how = LEASE_DELETE_FORCE;
        }
        if ((v = query(r, "when"))) {
                if (strcmp(v, "released") != 0) {
                        *ret = bad_query(r, "when", "when must be 'released'");
                        return false;
                }
                if (pr->delete_how == LEASE_DELETE_FORCE) {
                        *ret = bad_query(r, "when", "force=true and when=released contradict each other");
                        return false;
                }
                pr->delete_how = LEASE_DELETE_WHEN_RELEASED;
                pr->when_released = true;
        }
        return true;
}

/* The key of "Authorization: Bearer KEY", or NULL. */
static const char *bearer_key(struct request *r) {
        const char *h = request_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
        if (!h || strncasecmp(h, "Bearer ", 7) != 0)
                return NULL;
        h += 7;
        while (*h == ' ')
                h++;
        return *h ? h : NULL;
}

static bool header_token(const char *v, size_t max) {
        size_t n = strlen(v);
        if (n == 0 || n >= max)
                return false;
        for (; *v; v++)
                if ((unsigned char) *v < 0x21 || (unsigned char) *v > 0x7e)
                        return false;
        return true;
}

static enum MHD_Result unauthorized(struct request *r, const char *detail) {
        r->bearer_challenge = true;
        metrics_count_portal(&r->d->metrics, NULL, false, 401);
        return reply_json(r, 401, error_json(r, WWSF_E_UNAUTHORIZED, NULL, detail));
}

enum MHD_Result api_portal(struct request *r, const char *url) {
        struct wwsfd *d = r->d;
        struct portal_req *pr = calloc(1, sizeof *pr);
        if (!pr)
                return MHD_NO;
        pr->r = r;
        pr->d = d;
        /* The method and the route. */
        char allow[sizeof r->allow_buf] = "";
        const char *m = r->method;
        for (size_t i = 0; i < N_OPS; i++) {
                struct portal_req probe = { 0 };
                if (!path_match(ops[i].path, url, &probe))
                        continue;
                if (strcmp(ops[i].method, m) == 0 || (strcmp(m, "HEAD") == 0 && strcmp(ops[i].method, "GET") == 0)) {
                        pr->op = &ops[i];
                        pr->id = probe.id;
                        memcpy(pr->name, probe.name, sizeof pr->name);
                        memcpy(pr->impu, probe.impu, sizeof pr->impu);
                        break;
                }
                size_t n = strlen(allow);
                snprintf(allow + n, sizeof allow - n, "%s%s%s", n ? ", " : "", ops[i].method,
                         strcmp(ops[i].method, "GET") == 0 ? ", HEAD" : "");
        }
        enum MHD_Result res;
        if (!pr->op) {
                free(pr);
                if (allow[0]) {
                        memcpy(r->allow_buf, allow, sizeof r->allow_buf);
                        r->allow = r->allow_buf;
                        return reply_error(r, WWSF_E_METHOD_NOT_ALLOWED, "%s is not allowed here", m);
                }
                return reply_error(r, WWSF_E_NOT_FOUND, "no such resource");
        }
        snprintf(pr->path, sizeof pr->path, "%s", url);

        const char *key = bearer_key(r);
        if (!key) {
                free(pr);
                return unauthorized(r, "send the portal's API key: Authorization: Bearer <key>");
        }
        if (strlen(key) != PORTAL_KEY_LEN) {
                free(pr);
                return unauthorized(r, "the API key is not valid");
        }
        memcpy(pr->key, key, PORTAL_KEY_LEN + 1);
        /* Per key, by its id (the part before the secret): a caller cannot
         * spread one key's requests over several buckets. */
        char bucket[48];
        snprintf(bucket, sizeof bucket, "portal-key:%.*s", (int) (sizeof PORTAL_KEY_PREFIX - 1 + 11), key);
        int wait = d->cfg->portal_per_key_per_minute > 0
                           ? throttle_check(d->throttle, bucket, d->cfg->portal_per_key_per_minute, wwsf_monotonic_ms())
                           : 0;
        if (wait > 0) {
                req_free(pr);
                d->metrics.throttled++;
                r->retry_after = wait;
                metrics_count_portal(&d->metrics, NULL, false, 429);
                return reply_error(r, WWSF_E_TOO_MANY_REQUESTS, "too many requests with this API key; wait %d s", wait);
        }
        if (!parse_query(r, pr, &res)) {
                req_free(pr);
                return res;
        }
        const char *v = request_header(r, "If-Match");
        if (v) {
                if (!header_token(v, sizeof pr->if_match)) {
                        req_free(pr);
                        return reply_json(r, 400, error_json(r, WWSF_E_BAD_REQUEST, "If-Match",
                                                             "If-Match must be an ETag of the pool"));
                }
                snprintf(pr->if_match, sizeof pr->if_match, "%s", v);
                pr->has_if_match = true;
        }
        if (pr->op->body) {
                if (!(pr->body = request_json_body(r, 0, &res))) {
                        req_free(pr);
                        return res;
                }
        } else if (r->body_len) {
                const struct op *op = pr->op;   /* pr is freed before the answer is made */
                req_free(pr);
                return reply_error(r, WWSF_E_BAD_REQUEST, "%s %s takes no body", op->method, op->path);
        }
        if ((v = request_header(r, "Idempotency-Key")) && strcmp(pr->op->method, "POST") == 0) {
                if (!header_token(v, sizeof pr->idem_key)) {
                        req_free(pr);
                        return reply_json(r, 400, error_json(r, WWSF_E_BAD_REQUEST, "Idempotency-Key",
                                                             "Idempotency-Key must be 1-128 visible ASCII characters"));
                }
                snprintf(pr->idem_key, sizeof pr->idem_key, "%s", v);
                /* The request the key stands for: method, path and body. */
                gnutls_hash_hd_t h;
                if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0) {
                        req_free(pr);
                        return reply_error(r, WWSF_E_INTERNAL_ERROR, "no hash");
                }
                gnutls_hash(h, pr->op->method, strlen(pr->op->method) + 1);
                gnutls_hash(h, url, strlen(url) + 1);
                gnutls_hash(h, r->body ? r->body : "", r->body_len);
                gnutls_hash_deinit(h, pr->request_sha);
        }
        request_suspend(r);
        if (!job_queue_push(d->jobs, portal_job, pr)) {
                req_free(pr);
                request_finish_error(r, WWSF_E_OVERLOADED, "the server is busy; try again in a moment");
        }
        return MHD_YES;
}
