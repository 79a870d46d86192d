/* The portal API's JSON: pools as requests describe them (turned into the
 * pool configuration's keys, so that a pool of the API passes exactly the
 * checks a pool of the files does) and the resources as answers show them. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lease/lease.h"
#include "wwsfd/api/portal.h"

/* Durations the API takes: a month at most, for a lease and for its hold. */
#define DURATION_MAX (30 * 86400)

enum member_type { M_STRING, M_INT, M_ENTRIES };

struct member {
        const char *name;
        enum member_type type;
        int64_t min, max;       /* M_INT */
        bool create, patch;     /* where the member may appear */
};

static const struct member members[] = {
        { "name", M_STRING, 0, 0, true, false },
        { "subscription", M_STRING, 0, 0, true, false },
        { "kind", M_STRING, 0, 0, true, true },
        { "lease_ttl", M_INT, 1, DURATION_MAX, true, true },
        { "quarantine", M_INT, 0, DURATION_MAX, true, true },
        { "max_per_holder", M_INT, 1, POOL_HOLDER_LIMIT_MAX, true, true },
        { "entry", M_ENTRIES, 1, POOL_LIST_ENTRIES_MAX, true, false },
        { "impu_range", M_STRING, 0, 0, true, true },
        { "impi_range", M_STRING, 0, 0, true, true },
        { "impu_wildcard", M_STRING, 0, 0, true, false },
        { "impi_wildcard", M_STRING, 0, 0, true, false },
        { "size", M_INT, 1, POOL_SIZE_MAX, true, true },
        { "token_length", M_INT, POOL_TOKEN_MIN, POOL_TOKEN_MAX, true, false },
        { "impi", M_STRING, 0, 0, true, true },
};
#define N_MEMBERS (sizeof members / sizeof members[0])

static const struct member *member_find(const char *name) {
        for (size_t i = 0; i < N_MEMBERS; i++)
                if (strcmp(members[i].name, name) == 0)
                        return &members[i];
        return NULL;
}

/* Members of a pool's answers that the server sets. */
static bool member_read_only(const char *name) {
        static const char *const names[] = { "id", "source", "managed_by", "state", "etag", "counts",
                                             "created_at", "updated_at" };
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
                if (strcmp(names[i], name) == 0)
                        return true;
        return false;
}

__attribute__((format(printf, 3, 4)))
static int refuse(struct portal_refusal *why, const char *field, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why->detail, sizeof why->detail, fmt, ap);
        va_end(ap);
        snprintf(why->field, sizeof why->field, "%s", field ? field : "");
        return -EINVAL;
}

/* Text without whitespace or control bytes: a value of the configuration's
 * keys, where whitespace separates an entry's IMPU from its IMPI. */
static bool plain_text(const char *s) {
        if (!*s || strlen(s) >= POOL_IDENTITY_MAX)
                return false;
        for (; *s; s++)
                if ((unsigned char) *s <= 0x20 || *s == 0x7f)
                        return false;
        return true;
}

/* The configuration's keys of one request, each with the position its
 * errors name, and the member that position stands for. */
struct keys {
        struct pool_config *cfg;
        struct pool_config_pool *pool;
        char (*fields)[PORTAL_FIELD_MAX];
        int n, cap;
};

static int key_add(struct keys *k, const char *field, const char *name, const char *value) {
        if (k->n + 1 >= k->cap) {
                int cap = k->cap ? k->cap * 2 : 64;
                void *f = realloc(k->fields, (size_t) cap * sizeof *k->fields);
                if (!f)
                        return -ENOMEM;
                k->fields = f;
                k->cap = cap;
        }
        int pos = ++k->n;
        snprintf(k->fields[pos], sizeof k->fields[pos], "%s", field);
        pool_config_pool_key(k->cfg, k->pool, pos, name, value);
        return 0;
}

/* Members of the JSON as the configuration's keys. */
static int keys_from_json(struct keys *k, json_t *body, bool create, struct portal_refusal *why) {
        const char *name;
        json_t *v;
        char buf[2 * POOL_IDENTITY_MAX + 2];
        json_object_foreach(body, name, v) {
                const struct member *m = member_find(name);
                if (!m && member_read_only(name))
                        return refuse(why, name, "'%s' is read-only: the server sets it", name);
                if (!m)
                        return refuse(why, name, "unknown member '%s'", name);
                if (!(create ? m->create : m->patch))
                        return refuse(why, name, "'%s' cannot be changed%s", name,
                                      strcmp(name, "entry") == 0 ? ": add and remove entries through pools/{id}/entries"
                                                                 : " once the pool exists");
                if (strcmp(name, "name") == 0 || strcmp(name, "subscription") == 0)
                        continue;       /* the pool's name and subscription: the caller's */
                switch (m->type) {
                case M_STRING:
                        if (!json_is_string(v))
                                return refuse(why, name, "'%s' must be a string", name);
                        if (!plain_text(json_string_value(v)))
                                return refuse(why, name, "'%s' must be 1-%d characters without spaces or control characters",
                                              name, POOL_IDENTITY_MAX - 1);
                        if (key_add(k, name, name, json_string_value(v)) < 0)
                                return -ENOMEM;
                        break;
                case M_INT: {
                        if (!json_is_integer(v))
                                return refuse(why, name, "'%s' must be an integer%s", name,
                                              strcmp(name, "lease_ttl") == 0 || strcmp(name, "quarantine") == 0
                                                      ? " (seconds)"
                                                      : "");
                        json_int_t x = json_integer_value(v);
                        if (x < m->min || x > m->max)
                                return refuse(why, name, "'%s' must be from %" PRId64 " to %" PRId64, name, m->min, m->max);
                        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, x);
                        if (key_add(k, name, name, buf) < 0)
                                return -ENOMEM;
                        break;
                }
                case M_ENTRIES: {
                        if (!json_is_array(v) || json_array_size(v) < 1)
                                return refuse(why, name, "'entry' must be an array of {\"impu\", \"impi\"} objects");
                        if (json_array_size(v) > POOL_LIST_ENTRIES_MAX)
                                return refuse(why, name, "more than %d entries in one request; use impu_range",
                                              POOL_LIST_ENTRIES_MAX);
                        size_t i;
                        json_t *en;
                        json_array_foreach(v, i, en) {
                                char field[PORTAL_FIELD_MAX];
                                snprintf(field, sizeof field, "entry[%zu]", i);
                                const char *impu = json_string_value(json_object_get(en, "impu"));
                                json_t *impi = json_object_get(en, "impi");
                                if (!json_is_object(en) || !impu || (impi && !json_is_string(impi)) ||
                                    json_object_size(en) != (impi ? 2u : 1u))
                                        return refuse(why, field, "%s must be {\"impu\": \"...\"} with an optional \"impi\"",
                                                      field);
                                if (!plain_text(impu) || (impi && !plain_text(json_string_value(impi))))
                                        return refuse(why, field,
                                                      "%s: an IMPU or IMPI is 1-%d characters without spaces or control "
                                                      "characters",
                                                      field, POOL_IDENTITY_MAX - 1);
                                snprintf(buf, sizeof buf, "%s%s%s", impu, impi ? " " : "",
                                         impi ? json_string_value(impi) : "");
                                if (key_add(k, field, "entry", buf) < 0)
                                        return -ENOMEM;
                        }
                        break;
                }
                }
        }
        return 0;
}

/* Where the member name occurs in words as a word of its own (not inside
 * "impi_range" for "impi"), or NULL. */
static const char *word_at(const char *words, const char *name) {
        size_t n = strlen(name);
        for (const char *at = strstr(words, name); at; at = strstr(at + 1, name)) {
                bool before = at == words || !(isalnum((unsigned char) at[-1]) || at[-1] == '_');
                bool after = !(isalnum((unsigned char) at[n]) || at[n] == '_');
                if (before && after)
                        return at;
        }
        return NULL;
}

/* The member a problem of the whole pool is about: the one it asks for
 * ("set 'impi'", "needs 'size'", "set impi_range"), else the first it
 * mentions. */
static const char *member_of_words(const char *words) {
        char quoted[PORTAL_FIELD_MAX + 8];
        for (size_t i = 0; i < N_MEMBERS; i++) {
                snprintf(quoted, sizeof quoted, "'%s'", members[i].name);
                if (strstr(words, quoted))
                        return members[i].name;
                snprintf(quoted, sizeof quoted, "set %s", members[i].name);
                if (word_at(words, quoted))
                        return members[i].name;
        }
        const char *first = NULL, *field = NULL;
        for (size_t i = 0; i < N_MEMBERS; i++) {
                const char *at = word_at(words, members[i].name);
                if (at && (!first || at < first)) {
                        first = at;
                        field = members[i].name;
                }
        }
        return field;
}

/* The member a problem of the configuration names: the key at its
 * position, or else the one its words are about. The configuration's
 * words name other keys by their line ("first at line 5"): here that is
 * the member at that position. */
static void refusal_from_config(const struct keys *k, const char *error, struct portal_refusal *why) {
        /* "request:POSITION: reason" */
        const char *p = strchr(error, ':');
        long pos = p ? strtol(p + 1, NULL, 10) : 0;
        const char *reason = p ? strchr(p + 1, ':') : NULL;
        reason = reason ? reason + 1 : error;
        while (*reason == ' ')
                reason++;
        const char *field = pos >= 1 && pos <= k->n ? k->fields[pos] : member_of_words(reason);
        char words[sizeof why->detail];
        size_t o = 0;
        for (const char *r = reason; *r && o + 1 < sizeof words;) {
                char *end;
                long line;
                if (strncmp(r, "line ", 5) == 0 && (line = strtol(r + 5, &end, 10)) >= 1 && line <= k->n &&
                    end > r + 5) {
                        o += (size_t) snprintf(words + o, sizeof words - o, "%s", k->fields[line]);
                        if (o >= sizeof words)
                                o = sizeof words - 1;
                        r = end;
                } else
                        words[o++] = *r++;
        }
        words[o] = '\0';
        refuse(why, field, "%s", words);
}

void portal_pool_request_free(struct portal_pool_request *req) {
        pool_config_free(req->cfg);
        free(req->fields);
        *req = (struct portal_pool_request) { 0 };
}

/* The stored definition as the configuration's keys (those a patch may
 * replace are left to it). */
static int keys_from_pool(struct keys *k, const struct store_pool *p, json_t *patch) {
        const struct pool_def *d = &p->def;
        char buf[2 * POOL_IDENTITY_MAX + 16];
        int r = 0;
#define KEEP(member, value)                                                       \
        do {                                                                      \
                if (r == 0 && !json_object_get(patch, member))                    \
                        r = key_add(k, member, member, value);                    \
        } while (0)
        KEEP("kind", pool_kind_to_string(d->kind));
        snprintf(buf, sizeof buf, "%" PRId64, d->lease_ttl);
        KEEP("lease_ttl", buf);
        snprintf(buf, sizeof buf, "%" PRId64, d->quarantine);
        KEEP("quarantine", buf);
        snprintf(buf, sizeof buf, "%" PRId64, d->max_per_holder);
        KEEP("max_per_holder", buf);
        if (d->shared_impi[0])
                KEEP("impi", d->shared_impi);
        switch (d->source) {
        case POOL_SOURCE_LIST:
                /* A listed pool's entries are not part of its definition; one
                 * stand-in of the subscription's domain lets the definition's
                 * checks run. */
                snprintf(buf, sizeof buf, "sip:entry@%s%s%s", p->sub.domain,
                         p->sub.impi_mode == IMPI_MODE_SHARED ? "" : " entry@",
                         p->sub.impi_mode == IMPI_MODE_SHARED ? "" : p->sub.domain);
                if (r == 0)
                        r = key_add(k, "entry", "entry", buf);
                break;
        case POOL_SOURCE_RANGE:
                KEEP("impu_range", d->impu_tpl.text);
                if (d->impi_tpl.text[0])
                        KEEP("impi_range", d->impi_tpl.text);
                break;
        case POOL_SOURCE_WILDCARD:
                if (r == 0)
                        r = key_add(k, "impu_wildcard", "impu_wildcard", d->impu_tpl.text);
                if (r == 0 && d->impi_tpl.text[0])
                        r = key_add(k, "impi_wildcard", "impi_wildcard", d->impi_tpl.text);
                snprintf(buf, sizeof buf, "%" PRId64, d->size);
                KEEP("size", buf);
                snprintf(buf, sizeof buf, "%d", d->token_length);
                if (r == 0)
                        r = key_add(k, "token_length", "token_length", buf);
                break;
        }
#undef KEEP
        return r;
}

int portal_pool_request(json_t *body, const struct pool_subscription *sub, const char *name,
                        const struct store_pool *old, struct portal_pool_request *ret, struct portal_refusal *why) {
        struct keys k = { 0 };
        *ret = (struct portal_pool_request) { 0 };
        if (!(k.cfg = pool_config_new("request")))
                return -ENOMEM;
        pool_config_add_subscription(k.cfg, sub);
        k.pool = pool_config_add_pool(k.cfg, name);
        int r = key_add(&k, "subscription", "subscription", sub->name);
        if (r == 0 && old)
                r = keys_from_pool(&k, old, body);
        if (r == 0)
                r = keys_from_json(&k, body, old == NULL, why);
        if (r == 0 && pool_config_validate(k.cfg) < 0) {
                refusal_from_config(&k, k.cfg->errors[0], why);
                r = -EINVAL;
        }
        ret->cfg = k.cfg;
        ret->pool = k.pool;
        ret->fields = k.fields;
        if (r < 0)
                portal_pool_request_free(ret);
        return r;
}

json_t *portal_pool_json(const struct store_pool *p, const struct store_counts *c, int64_t free_count) {
        const struct pool_def *d = &p->def;
        char etag[32];
        portal_etag(p, etag, sizeof etag);
        json_t *j = json_pack("{s:I, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:I, s:s, s:s, s:s, s:{s:I, s:I, s:I, s:I, s:I},"
                              " s:I, s:I}",
                              "id", (json_int_t) p->id, "name", d->name, "subscription", d->subscription, "kind",
                              pool_kind_to_string(d->kind), "lease_ttl", (json_int_t) d->lease_ttl, "quarantine",
                              (json_int_t) d->quarantine, "max_per_holder", (json_int_t) d->max_per_holder, "source",
                              pool_source_to_string(d->source), "size", (json_int_t) d->size, "managed_by",
                              p->portal_id ? "api" : "config", "state", p->deleting ? "deleting" : "active", "etag",
                              etag, "counts", "leased", (json_int_t) c->leased, "quarantine", (json_int_t) c->quarantine,
                              "free", (json_int_t) free_count, "retired", (json_int_t) c->retired, "materialised",
                              (json_int_t) c->materialised, "created_at", (json_int_t) p->created_at, "updated_at",
                              (json_int_t) p->imported_at);
        if (!j)
                return NULL;
        if (d->source == POOL_SOURCE_RANGE) {
                json_object_set_new(j, "impu_range", json_string(d->impu_tpl.text));
                if (d->impi_tpl.text[0])
                        json_object_set_new(j, "impi_range", json_string(d->impi_tpl.text));
        } else if (d->source == POOL_SOURCE_WILDCARD) {
                json_object_set_new(j, "impu_wildcard", json_string(d->impu_tpl.text));
                if (d->impi_tpl.text[0])
                        json_object_set_new(j, "impi_wildcard", json_string(d->impi_tpl.text));
                json_object_set_new(j, "token_length", json_integer(d->token_length));
        }
        if (d->shared_impi[0])
                json_object_set_new(j, "impi", json_string(d->shared_impi));
        return j;
}

void portal_etag(const struct store_pool *p, char *buf, size_t size) {
        snprintf(buf, size, "\"%" PRId64 "\"", p->revision);
}

json_t *portal_subscription_json(const struct store_subscription *s) {
        return json_pack("{s:s, s:s, s:s, s:I}", "name", s->sub.name, "domain", s->sub.domain, "impi_mode",
                         impi_mode_to_string(s->sub.impi_mode), "pools", (json_int_t) s->pools);
}

json_t *portal_entry_json(const struct store_entry *e, int64_t now) {
        const char *state = e->expires_at > now ? "leased"
                            : e->retired        ? "retired"
                            : e->avail_at > now ? "quarantine"
                                                : "free";
        return json_pack("{s:s, s:s, s:s}", "impu", e->impu, "impi", e->impi, "state", state);
}

json_t *portal_lease_json(const struct store_history *h, int64_t now) {
        /* An open row past its time has ended by expiry, whether or not
         * reclaim has closed it yet. */
        bool live = h->open && h->ended_at > now;
        int64_t end = h->ended_at;      /* open: the lease's planned end */
        const char *state = live ? "leased" : end + h->hold > now ? "quarantine" : "ended";
        const char *reason = h->open ? (live ? NULL : "expired") : h->end_reason;
        json_t *j = json_pack("{s:I, s:I, s:s, s:s, s:s, s:s?, s:s, s:I, s:I, s:o, s:s?, s:I, s:o}", "id",
                              (json_int_t) h->id, "pool", (json_int_t) h->pool_id, "impu", h->impu, "impi", h->impi,
                              "holder", h->holder, "client_addr", h->client_addr[0] ? h->client_addr : NULL, "state",
                              state, "started_at", (json_int_t) h->started_at, "expires_at", (json_int_t) end,
                              "ended_at", live ? json_null() : json_integer(end), "end_reason", reason, "renewals",
                              (json_int_t) h->renewals, "quarantine_until",
                              live || end + h->hold > now ? json_integer(end + h->hold) : json_null());
        return j;
}
