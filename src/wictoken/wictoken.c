/* libwictoken's public API (include/wictoken/wictoken.h): the context and
 * its configuration, the key set and its reload, the Origin check, the
 * REGISTER check of docs/DESIGN.md section 4 and the request to forward. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "sip.h"
#include "version.h"

#define DETAIL_MAX 512
#define REASON_MAX 160
/* Allowed Origins: a handful in practice (the WWSF's own, a staging one). */
#define ORIGINS_MAX 64
/* Configuration strings (issuer, audience, realm, Path, Origins). */
#define CONFIG_STRING_MAX 1024
/* Token binding remembers at most this many tokens at once (about 400 bytes
 * each): a million live tokens is far beyond one eP-CSCF process. */
#define BINDINGS_MAX (1u << 20)
#define CONNECTION_ID_MAX 128

struct issuer {
        char *name;
        char *jwks_file;                /* NULL: keys given in memory */
        char *jwks_mem;
        size_t jwks_len;
};

struct binding {
        char *jti;                      /* NULL: free slot */
        char *connection;
        int64_t until;
};

struct wictoken_ctx {
        pthread_mutex_t lock;           /* guards keys (the pointer and the refcounts) */
        struct wt_keyset *keys;

        struct issuer issuers[WT_ISSUERS_MAX];
        const char *issuer_names[WT_ISSUERS_MAX];
        size_t n_issuers;
        char *audience, *realm, *path;
        char *origins[ORIGINS_MAX];
        size_t n_origins;
        int64_t leeway;
        wictoken_clock_fn clock;
        void *clock_userdata;
        wictoken_log_fn log;
        void *log_userdata;

        bool binding;
        struct binding *bindings;       /* open addressing, linear probing */
        size_t bindings_cap, bindings_used;

        struct sip_msg *msg;            /* scratch for the checks: about 70 KiB */
};

/* The detail of the last failing call, per thread (as errno is): a reload in
 * one thread and checks in another each read their own. */
static __thread char detail[DETAIL_MAX];
static __thread const struct wictoken_ctx *detail_ctx;

struct wictoken_verdict {
        int status;
        char reason[REASON_MAX];
        char *www_authenticate;
        struct wt_claims claims;
        bool accepted;
        char *tna, *path;
        char *forward;
        size_t forward_len;
};

/* ---- errors and logging ------------------------------------------------- */

const char *wictoken_strerror(int code) {
        switch (code) {
        case WICTOKEN_OK:
                return "success";
        case WICTOKEN_E_INVALID_ARGUMENT:
                return "invalid argument";
        case WICTOKEN_E_NO_MEMORY:
                return "out of memory";
        case WICTOKEN_E_IO:
                return "cannot read a file";
        case WICTOKEN_E_JWKS:
                return "unacceptable JWKS";
        case WICTOKEN_E_CONFIG:
                return "incomplete configuration";
        case WICTOKEN_E_ORIGIN:
                return "Origin not allowed";
        case WICTOKEN_E_MALFORMED:
                return "malformed message";
        case WICTOKEN_E_NOT_REGISTER:
                return "not a REGISTER";
        case WICTOKEN_E_INTERNAL:
                return "internal error";
        default:
                return "unknown error";
        }
}

const char *wictoken_version(void) {
        return WWSF_VERSION;
}

static void logf_(struct wictoken_ctx *ctx, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void logf_(struct wictoken_ctx *ctx, int level, const char *fmt, ...) {
        if (!ctx->log)
                return;
        char line[DETAIL_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(line, sizeof line, fmt, ap);
        va_end(ap);
        ctx->log(ctx->log_userdata, level, line);
}

static int set_error(struct wictoken_ctx *ctx, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int set_error(struct wictoken_ctx *ctx, int code, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof detail, fmt, ap);
        va_end(ap);
        detail_ctx = ctx;
        return code;
}

const char *wictoken_ctx_detail(const struct wictoken_ctx *ctx) {
        return ctx && ctx == detail_ctx ? detail : "";
}

/* ---- the context -------------------------------------------------------- */

static int64_t system_clock(void *userdata) {
        (void) userdata;
        return (int64_t) time(NULL);
}

int wictoken_ctx_new(struct wictoken_ctx **ret) {
        if (!ret)
                return WICTOKEN_E_INVALID_ARGUMENT;
        *ret = NULL;
        struct wictoken_ctx *ctx = calloc(1, sizeof *ctx);
        if (!ctx)
                return WICTOKEN_E_NO_MEMORY;
        ctx->msg = malloc(sizeof *ctx->msg);
        if (!ctx->msg) {
                free(ctx);
                return WICTOKEN_E_NO_MEMORY;
        }
        pthread_mutex_init(&ctx->lock, NULL);
        ctx->leeway = 60;
        ctx->clock = system_clock;
        *ret = ctx;
        return 0;
}

static void keyset_unref(struct wt_keyset *set) {
        if (set && --set->refs == 0) {
                wt_keys_free(set->keys, set->n);
                free(set);
        }
}

static void bindings_clear(struct wictoken_ctx *ctx) {
        for (size_t i = 0; i < ctx->bindings_cap; i++) {
                free(ctx->bindings[i].jti);
                free(ctx->bindings[i].connection);
        }
        free(ctx->bindings);
        ctx->bindings = NULL;
        ctx->bindings_cap = ctx->bindings_used = 0;
}

void wictoken_ctx_free(struct wictoken_ctx *ctx) {
        if (!ctx)
                return;
        if (detail_ctx == ctx)
                detail_ctx = NULL;
        keyset_unref(ctx->keys);
        for (size_t i = 0; i < ctx->n_issuers; i++) {
                free(ctx->issuers[i].name);
                free(ctx->issuers[i].jwks_file);
                free(ctx->issuers[i].jwks_mem);
        }
        for (size_t i = 0; i < ctx->n_origins; i++)
                free(ctx->origins[i]);
        free(ctx->audience);
        free(ctx->realm);
        free(ctx->path);
        bindings_clear(ctx);
        pthread_mutex_destroy(&ctx->lock);
        free(ctx->msg);
        free(ctx);
}

void wictoken_set_log(struct wictoken_ctx *ctx, wictoken_log_fn fn, void *userdata) {
        if (!ctx)
                return;
        ctx->log = fn;
        ctx->log_userdata = userdata;
}

void wictoken_set_clock(struct wictoken_ctx *ctx, wictoken_clock_fn fn, void *userdata) {
        if (!ctx)
                return;
        ctx->clock = fn ? fn : system_clock;
        ctx->clock_userdata = fn ? userdata : NULL;
}

/* A configuration string: 1 to CONFIG_STRING_MAX printable ASCII bytes
 * (they end up in SIP headers: a CR or LF would inject one). */
static bool config_string(const char *s) {
        size_t n = s ? strnlen(s, CONFIG_STRING_MAX + 1) : 0;
        if (n == 0 || n > CONFIG_STRING_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) s[i] < 0x20 || (unsigned char) s[i] > 0x7e)
                        return false;
        return true;
}

static int replace_string(struct wictoken_ctx *ctx, char **dst, const char *value, const char *what) {
        if (!ctx)
                return WICTOKEN_E_INVALID_ARGUMENT;
        if (!config_string(value))
                return set_error(ctx, WICTOKEN_E_INVALID_ARGUMENT, "%s must be 1 to %d printable ASCII characters", what,
                                 CONFIG_STRING_MAX);
        char *copy = strdup(value);
        if (!copy)
                return WICTOKEN_E_NO_MEMORY;
        free(*dst);
        *dst = copy;
        return 0;
}

int wictoken_set_audience(struct wictoken_ctx *ctx, const char *audience) {
        return replace_string(ctx, ctx ? &ctx->audience : NULL, audience, "the audience");
}

int wictoken_set_realm(struct wictoken_ctx *ctx, const char *realm) {
        if (ctx && realm && (strchr(realm, '"') || strchr(realm, '\\')))
                return set_error(ctx, WICTOKEN_E_INVALID_ARGUMENT, "the realm cannot hold '\"' or '\\'");
        return replace_string(ctx, ctx ? &ctx->realm : NULL, realm, "the realm");
}

int wictoken_set_path(struct wictoken_ctx *ctx, const char *path) {
        return replace_string(ctx, ctx ? &ctx->path : NULL, path, "the Path value");
}

/* An Origin as compared: without one trailing '/'. */
static size_t origin_length(const char *s) {
        size_t n = strlen(s);
        return n > 0 && s[n - 1] == '/' ? n - 1 : n;
}

int wictoken_allow_origin(struct wictoken_ctx *ctx, const char *origin) {
        if (!ctx)
                return WICTOKEN_E_INVALID_ARGUMENT;
        if (ctx->n_origins == ORIGINS_MAX)
                return set_error(ctx, WICTOKEN_E_INVALID_ARGUMENT, "at most %d Origins", ORIGINS_MAX);
        char *copy = NULL;
        int r = replace_string(ctx, &copy, origin, "an Origin");
        if (r < 0)
                return r;
        ctx->origins[ctx->n_origins++] = copy;
        return 0;
}

int wictoken_set_leeway(struct wictoken_ctx *ctx, int64_t seconds) {
        if (!ctx)
                return WICTOKEN_E_INVALID_ARGUMENT;
        if (seconds < 0 || seconds > 600)
                return set_error(ctx, WICTOKEN_E_INVALID_ARGUMENT, "leeway %lld s: 0 to 600 s", (long long) seconds);
        ctx->leeway = seconds;
        return 0;
}

int wictoken_set_token_binding(struct wictoken_ctx *ctx, int enabled) {
        if (!ctx)
                return WICTOKEN_E_INVALID_ARGUMENT;
        ctx->binding = enabled != 0;
        if (!ctx->binding)
                bindings_clear(ctx);
        return 0;
}

int wictoken_check_origin(struct wictoken_ctx *ctx, const char *origin) {
        if (!ctx)
                return WICTOKEN_E_INVALID_ARGUMENT;
        if (!origin || !*origin)
                return set_error(ctx, WICTOKEN_E_ORIGIN, "no Origin");
        size_t n = origin_length(origin);
        for (size_t i = 0; i < ctx->n_origins; i++)
                if (origin_length(ctx->origins[i]) == n && strncasecmp(ctx->origins[i], origin, n) == 0)
                        return 0;
        return set_error(ctx, WICTOKEN_E_ORIGIN, "Origin not in the allow-list");
}

/* ---- keys --------------------------------------------------------------- */

static int read_file(struct wictoken_ctx *ctx, const char *path, char **ret, size_t *ret_len) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return set_error(ctx, WICTOKEN_E_IO, "%s: %s", path, strerror(errno));
        char *buf = malloc(WT_JWKS_MAX + 1);
        size_t n = 0;
        int r = 0;
        if (!buf) {
                r = WICTOKEN_E_NO_MEMORY;
                goto out;
        }
        for (;;) {
                ssize_t k = read(fd, buf + n, WT_JWKS_MAX + 1 - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        r = set_error(ctx, WICTOKEN_E_IO, "%s: %s", path, strerror(errno));
                        goto out;
                }
                if (k == 0)
                        break;
                n += (size_t) k;
                if (n > WT_JWKS_MAX) {
                        r = set_error(ctx, WICTOKEN_E_JWKS, "%s: larger than %d bytes", path, WT_JWKS_MAX);
                        goto out;
                }
        }
        *ret = buf;
        *ret_len = n;
        buf = NULL;
out:
        free(buf);
        close(fd);
        return r;
}

/* Loads the keys of every issuer into a new key set and, when all of them
 * load, makes it the context's. Returns the number of keys or a code. */
static int rebuild_keys(struct wictoken_ctx *ctx) {
        struct wt_key *keys = NULL;
        size_t n = 0;
        char why[DETAIL_MAX - 64];
        int r;
        for (size_t i = 0; i < ctx->n_issuers; i++) {
                struct issuer *is = &ctx->issuers[i];
                char *text = is->jwks_mem;
                size_t len = is->jwks_len;
                if (is->jwks_file && (r = read_file(ctx, is->jwks_file, &text, &len)) < 0)
                        goto fail;
                why[0] = '\0';
                r = wt_jwks_parse(text, len, (int) i, &keys, &n, why, sizeof why);
                if (text != is->jwks_mem)
                        free(text);
                if (r < 0) {
                        set_error(ctx, r, "JWKS %s of issuer %s: %s", is->jwks_file ? is->jwks_file : "(in memory)",
                                  is->name, r == WICTOKEN_E_NO_MEMORY ? "out of memory" : why);
                        goto fail;
                }
        }
        if ((r = wt_keys_finish(keys, n, why, sizeof why)) < 0) {
                set_error(ctx, r, "JWKS: %s", why);
                goto fail;
        }
        struct wt_keyset *set = calloc(1, sizeof *set);
        if (!set) {
                r = WICTOKEN_E_NO_MEMORY;
                goto fail;
        }
        set->refs = 1;
        set->keys = keys;
        set->n = n;
        pthread_mutex_lock(&ctx->lock);
        struct wt_keyset *old = ctx->keys;
        ctx->keys = set;
        keyset_unref(old);
        pthread_mutex_unlock(&ctx->lock);
        logf_(ctx, WICTOKEN_LOG_INFO, "%zu key%s loaded from %zu issuer%s", n, n == 1 ? "" : "s", ctx->n_issuers,
              ctx->n_issuers == 1 ? "" : "s");
        return (int) n;
fail:
        wt_keys_free(keys, n);
        if (ctx->keys)
                logf_(ctx, WICTOKEN_LOG_ERR, "keys not reloaded, the previous ones stay: %s", detail);
        else
                logf_(ctx, WICTOKEN_LOG_ERR, "keys not loaded: %s", detail);
        return r;
}

static int add_issuer(struct wictoken_ctx *ctx, const char *issuer, const char *file, const char *json, size_t len) {
        if (!ctx)
                return WICTOKEN_E_INVALID_ARGUMENT;
        if (!config_string(issuer))
                return set_error(ctx, WICTOKEN_E_INVALID_ARGUMENT, "the issuer must be 1 to %d printable ASCII characters",
                                 CONFIG_STRING_MAX);
        if (ctx->n_issuers == WT_ISSUERS_MAX)
                return set_error(ctx, WICTOKEN_E_INVALID_ARGUMENT, "at most %d issuers", WT_ISSUERS_MAX);
        for (size_t i = 0; i < ctx->n_issuers; i++)
                if (strcmp(ctx->issuers[i].name, issuer) == 0)
                        return set_error(ctx, WICTOKEN_E_INVALID_ARGUMENT, "issuer %s is already configured", issuer);
        struct issuer *is = &ctx->issuers[ctx->n_issuers];
        memset(is, 0, sizeof *is);
        is->name = strdup(issuer);
        if (file)
                is->jwks_file = strdup(file);
        else if ((is->jwks_mem = malloc(len ? len : 1)))
                memcpy(is->jwks_mem, json, len);
        is->jwks_len = len;
        int r = WICTOKEN_E_NO_MEMORY;
        if (!is->name || (file && !is->jwks_file) || (!file && !is->jwks_mem))
                goto undo;
        ctx->issuer_names[ctx->n_issuers] = is->name;
        ctx->n_issuers++;
        r = rebuild_keys(ctx);
        if (r >= 0)
                return 0;
        ctx->n_issuers--;
undo:
        free(is->name);
        free(is->jwks_file);
        free(is->jwks_mem);
        memset(is, 0, sizeof *is);
        return r;
}

int wictoken_add_issuer(struct wictoken_ctx *ctx, const char *issuer, const char *jwks_file) {
        if (ctx && !jwks_file)
                return set_error(ctx, WICTOKEN_E_INVALID_ARGUMENT, "no JWKS file");
        return add_issuer(ctx, issuer, jwks_file, NULL, 0);
}

int wictoken_add_issuer_jwks(struct wictoken_ctx *ctx, const char *issuer, const char *json, size_t len) {
        if (ctx && !json)
                return set_error(ctx, WICTOKEN_E_INVALID_ARGUMENT, "no JWKS");
        if (ctx && len > WT_JWKS_MAX)
                return set_error(ctx, WICTOKEN_E_JWKS, "JWKS larger than %d bytes", WT_JWKS_MAX);
        return add_issuer(ctx, issuer, NULL, json, len);
}

int wictoken_reload(struct wictoken_ctx *ctx) {
        if (!ctx)
                return WICTOKEN_E_INVALID_ARGUMENT;
        return rebuild_keys(ctx);
}

int wictoken_key_count(const struct wictoken_ctx *ctx) {
        if (!ctx)
                return WICTOKEN_E_INVALID_ARGUMENT;
        struct wictoken_ctx *c = (struct wictoken_ctx *) ctx;
        pthread_mutex_lock(&c->lock);
        int n = c->keys ? (int) c->keys->n : 0;
        pthread_mutex_unlock(&c->lock);
        return n;
}

static struct wt_keyset *keys_get(struct wictoken_ctx *ctx) {
        pthread_mutex_lock(&ctx->lock);
        struct wt_keyset *set = ctx->keys;
        if (set)
                set->refs++;
        pthread_mutex_unlock(&ctx->lock);
        return set;
}

static void keys_put(struct wictoken_ctx *ctx, struct wt_keyset *set) {
        pthread_mutex_lock(&ctx->lock);
        keyset_unref(set);
        pthread_mutex_unlock(&ctx->lock);
}

/* ---- token binding ------------------------------------------------------ */

static uint64_t hash_string(const char *s) {
        uint64_t h = 1469598103934665603ull;    /* FNV-1a */
        for (; *s; s++)
                h = (h ^ (unsigned char) *s) * 1099511628211ull;
        return h;
}

static void bindings_insert_slot(struct binding *table, size_t cap, struct binding b) {
        size_t i = hash_string(b.jti) & (cap - 1);
        while (table[i].jti)
                i = (i + 1) & (cap - 1);
        table[i] = b;
}

/* Rebuilds the table at the size that fits the live entries (dropping those
 * expired), doubling when more than half would be used. */
static int bindings_rebuild(struct wictoken_ctx *ctx, int64_t now) {
        size_t live = 0;
        for (size_t i = 0; i < ctx->bindings_cap; i++)
                if (ctx->bindings[i].jti && ctx->bindings[i].until > now)
                        live++;
        size_t cap = 1024;
        while (cap < (live + 1) * 2)
                cap *= 2;
        if (cap > BINDINGS_MAX * 2)
                return -1;
        struct binding *table = calloc(cap, sizeof *table);
        if (!table)
                return -1;
        for (size_t i = 0; i < ctx->bindings_cap; i++) {
                struct binding *b = &ctx->bindings[i];
                if (!b->jti)
                        continue;
                if (b->until > now)
                        bindings_insert_slot(table, cap, *b);
                else {
                        free(b->jti);
                        free(b->connection);
                }
        }
        free(ctx->bindings);
        ctx->bindings = table;
        ctx->bindings_cap = cap;
        ctx->bindings_used = live;
        return 0;
}

/* 1: the token may be used on this connection (it is now bound to it), 0: it
 * is bound to another, -1: no memory or the table is full. */
static int binding_check(struct wictoken_ctx *ctx, const char *jti, const char *connection, int64_t until,
                         int64_t now) {
        if (ctx->bindings_cap) {
                size_t i = hash_string(jti) & (ctx->bindings_cap - 1);
                for (; ctx->bindings[i].jti; i = (i + 1) & (ctx->bindings_cap - 1)) {
                        struct binding *b = &ctx->bindings[i];
                        if (strcmp(b->jti, jti) != 0)
                                continue;
                        if (b->until <= now || strcmp(b->connection, connection) == 0) {
                                /* Expired (a replay after the leeway is
                                 * refused by the claims check anyway): rebind. */
                                if (strcmp(b->connection, connection) != 0) {
                                        char *c = strdup(connection);
                                        if (!c)
                                                return -1;
                                        free(b->connection);
                                        b->connection = c;
                                }
                                b->until = until;
                                return 1;
                        }
                        return 0;
                }
        }
        if ((ctx->bindings_used + 1) * 2 > ctx->bindings_cap && bindings_rebuild(ctx, now) < 0)
                return -1;
        if (ctx->bindings_used >= BINDINGS_MAX)
                return -1;
        struct binding b = { strdup(jti), strdup(connection), until };
        if (!b.jti || !b.connection) {
                free(b.jti);
                free(b.connection);
                return -1;
        }
        bindings_insert_slot(ctx->bindings, ctx->bindings_cap, b);
        ctx->bindings_used++;
        return 1;
}

/* ---- verdicts ----------------------------------------------------------- */

static const char *phrase_of(int status) {
        switch (status) {
        case 200:
                return "OK";
        case 400:
                return "Bad Request";
        case 401:
                return "Unauthorized";
        case 403:
                return "Forbidden";
        default:
                return "Server Internal Error";
        }
}

/* The reason, with anything that could not go into a log line or a SIP
 * reason phrase replaced: parts of it may come from the client. */
static void set_reason(struct wictoken_verdict *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_reason(struct wictoken_verdict *v, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(v->reason, sizeof v->reason, fmt, ap);
        va_end(ap);
        for (char *c = v->reason; *c; c++)
                if ((unsigned char) *c < 0x20 || (unsigned char) *c > 0x7e || *c == '"' || *c == '\\')
                        *c = '?';
}

static int reject(struct wictoken_ctx *ctx, struct wictoken_verdict *v, int status, bool invalid_token) {
        v->status = status;
        v->accepted = false;
        if (status == 401) {
                const char *server = ctx->n_issuers ? ctx->issuers[0].name : "";
                if (asprintf(&v->www_authenticate, "Bearer realm=\"%s\", authz_server=\"%s\"%s", ctx->realm, server,
                             invalid_token ? ", error=\"invalid_token\"" : "") < 0) {
                        v->www_authenticate = NULL;
                        return WICTOKEN_E_NO_MEMORY;
                }
        }
        logf_(ctx, WICTOKEN_LOG_INFO, "REGISTER refused with %d: %s", status, v->reason);
        return 0;
}

void wictoken_verdict_free(struct wictoken_verdict *v) {
        if (!v)
                return;
        free(v->www_authenticate);
        free(v->tna);
        free(v->path);
        free(v->forward);
        free(v);
}

int wictoken_verdict_accepted(const struct wictoken_verdict *v) {
        return v && v->accepted;
}

int wictoken_verdict_status(const struct wictoken_verdict *v) {
        return v ? v->status : 0;
}

const char *wictoken_verdict_reason(const struct wictoken_verdict *v) {
        return v ? v->reason : "";
}

const char *wictoken_verdict_phrase(const struct wictoken_verdict *v) {
        return phrase_of(v ? v->status : 500);
}

const char *wictoken_verdict_www_authenticate(const struct wictoken_verdict *v) {
        return v ? v->www_authenticate : NULL;
}

const char *wictoken_verdict_impu(const struct wictoken_verdict *v) {
        return v && v->accepted ? v->claims.impu : NULL;
}

const char *wictoken_verdict_impi(const struct wictoken_verdict *v) {
        return v && v->accepted ? v->claims.impi : NULL;
}

const char *wictoken_verdict_jti(const struct wictoken_verdict *v) {
        return v && v->accepted && v->claims.jti[0] ? v->claims.jti : NULL;
}

int64_t wictoken_verdict_exp(const struct wictoken_verdict *v) {
        return v && v->accepted ? v->claims.exp : 0;
}

const char *wictoken_verdict_tna_authorization(const struct wictoken_verdict *v) {
        return v && v->accepted ? v->tna : NULL;
}

const char *wictoken_verdict_path(const struct wictoken_verdict *v) {
        return v && v->accepted ? v->path : NULL;
}

const char *wictoken_verdict_forward(const struct wictoken_verdict *v, size_t *len) {
        if (!v || !v->accepted) {
                if (len)
                        *len = 0;
                return NULL;
        }
        if (len)
                *len = v->forward_len;
        return v->forward;
}

/* ---- building messages -------------------------------------------------- */

/* The message's head with the headers for which drop() is true left out,
 * then `extra` (whole header lines, CRLF-terminated, or NULL), the blank
 * line and the body. Returns the number of headers dropped, or -1 for no
 * memory. */
static int rebuild_message(const struct sip_msg *m, bool (*drop)(const struct sip_header *), const char *extra,
                           char **ret, size_t *ret_len) {
        size_t extra_len = extra ? strlen(extra) : 0;
        size_t cap = m->head.len + extra_len + 2 + m->body.len + 1;
        char *out = malloc(cap), *o = out;
        int dropped = 0;
        if (!out)
                return -1;
        const char *from = m->head.s;
        for (size_t i = 0; i < m->n_headers; i++) {
                const struct sip_header *h = &m->headers[i];
                if (!drop(h))
                        continue;
                memcpy(o, from, (size_t) (h->raw.s - from));
                o += h->raw.s - from;
                from = h->raw.s + h->raw.len;
                dropped++;
        }
        memcpy(o, from, (size_t) (m->head.s + m->head.len - from));
        o += m->head.s + m->head.len - from;
        if (extra_len) {
                memcpy(o, extra, extra_len);
                o += extra_len;
        }
        memcpy(o, "\r\n", 2);
        o += 2;
        memcpy(o, m->body.s, m->body.len);
        o += m->body.len;
        *o = '\0';
        *ret = out;
        *ret_len = (size_t) (o - out);
        return dropped;
}

static bool is_bearer(const struct sip_header *h);

/* What an accepted REGISTER loses: every Authorization (the Bearer one, in
 * place of which the TNA header goes), and Bearer credentials in a
 * Proxy-Authorization too: no token reaches the core. */
static bool is_credentials(const struct sip_header *h) {
        return h->id == SIP_HDR_AUTHORIZATION || is_bearer(h);
}

static bool is_bearer(const struct sip_header *h) {
        struct sip_str token;
        const char *why;
        if (h->id != SIP_HDR_AUTHORIZATION && h->id != SIP_HDR_PROXY_AUTHORIZATION)
                return false;
        /* A malformed Bearer value is credentials all the same. */
        return sip_auth_parse(h->value.s, h->value.len, WT_TOKEN_MAX * 2, &token, &why) != SIP_AUTH_OTHER;
}

/* impi goes into a quoted-string, impu into a header: printable ASCII
 * without the quote and backslash. */
static bool quotable(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || (unsigned char) *s > 0x7e || *s == '"' || *s == '\\')
                        return false;
        return true;
}

static int accept_register(struct wictoken_ctx *ctx, struct wictoken_verdict *v, const struct sip_msg *m) {
        char *extra = NULL;
        if (ctx->path)
                v->path = strdup(ctx->path);
        else if (asprintf(&v->path, "<sip:ep-cscf.%s;lr>", ctx->realm) < 0)
                v->path = NULL;
        if (!v->path)
                return WICTOKEN_E_NO_MEMORY;
        if (asprintf(&v->tna,
                     "Digest username=\"%s\", realm=\"%s\", uri=\"sip:%s\", nonce=\"\", response=\"\", "
                     "integrity-protected=\"auth-done\"",
                     v->claims.impi, ctx->realm, ctx->realm) < 0) {
                v->tna = NULL;
                return WICTOKEN_E_NO_MEMORY;
        }
        if (asprintf(&extra, "Path: %s\r\nAuthorization: %s\r\n", v->path, v->tna) < 0)
                return WICTOKEN_E_NO_MEMORY;
        int r = rebuild_message(m, is_credentials, extra, &v->forward, &v->forward_len);
        free(extra);
        if (r < 0)
                return WICTOKEN_E_NO_MEMORY;
        v->status = 200;
        v->accepted = true;
        set_reason(v, "ok");
        logf_(ctx, WICTOKEN_LOG_DEBUG, "REGISTER of %s accepted", v->claims.impu);
        return 0;
}

/* The URI of the one To or From header into *uri; 0, or -1 with the reason
 * set. */
static int identity_header(const struct sip_msg *m, enum sip_hdr id, const char *name, struct sip_uri *uri,
                           struct wictoken_verdict *v) {
        const char *why = "";
        struct sip_str text;
        if (sip_count(m, id) != 1) {
                set_reason(v, "%s header missing or repeated", name);
                return -1;
        }
        const struct sip_header *h = &m->headers[sip_find(m, id, 0)];
        if (sip_name_addr_uri(h->value.s, h->value.len, &text, &why) < 0 ||
            sip_uri_parse(text.s, text.len, uri, &why) < 0) {
                set_reason(v, "%s: %s", name, why);
                return -1;
        }
        return 0;
}

int wictoken_check_register(struct wictoken_ctx *ctx, const char *msg, size_t len, const char *connection_id,
                            struct wictoken_verdict **ret) {
        if (!ctx || !msg || !ret)
                return WICTOKEN_E_INVALID_ARGUMENT;
        *ret = NULL;
        if (!ctx->n_issuers || !ctx->audience || !ctx->realm)
                return set_error(ctx, WICTOKEN_E_CONFIG, "an issuer, the audience and the realm are required");
        if (connection_id && (!*connection_id || strlen(connection_id) > CONNECTION_ID_MAX))
                return set_error(ctx, WICTOKEN_E_INVALID_ARGUMENT, "connection id of 1 to %d bytes",
                                 CONNECTION_ID_MAX);
        struct wictoken_verdict *v = calloc(1, sizeof *v);
        if (!v)
                return WICTOKEN_E_NO_MEMORY;
        struct sip_msg *m = ctx->msg;
        struct sip_uri to, from, granted;
        const char *why = "";
        int r = 0;

        if (len > SIP_MESSAGE_MAX) {
                set_reason(v, "message larger than %d bytes", SIP_MESSAGE_MAX);
                r = reject(ctx, v, 400, false);
                goto out;
        }
        if (sip_parse(msg, len, m, &why) < 0) {
                set_reason(v, "malformed: %s", why);
                r = reject(ctx, v, 400, false);
                goto out;
        }
        if (m->method.len != 8 || memcmp(m->method.s, "REGISTER", 8) != 0) {
                wictoken_verdict_free(v);
                return set_error(ctx, WICTOKEN_E_NOT_REGISTER, "not a REGISTER");
        }
        if (identity_header(m, SIP_HDR_TO, "To", &to, v) < 0 || identity_header(m, SIP_HDR_FROM, "From", &from, v) < 0) {
                r = reject(ctx, v, 400, false);
                goto out;
        }

        /* Step 1: exactly one Authorization, with Bearer credentials. */
        int n_auth = sip_count(m, SIP_HDR_AUTHORIZATION);
        if (n_auth > 1) {
                set_reason(v, "%d Authorization headers", n_auth);
                r = reject(ctx, v, 400, false);
                goto out;
        }
        if (n_auth == 0) {
                set_reason(v, "no Authorization header");
                r = reject(ctx, v, 401, false);
                goto out;
        }
        const struct sip_header *auth = &m->headers[sip_find(m, SIP_HDR_AUTHORIZATION, 0)];
        struct sip_str token;
        int scheme = sip_auth_parse(auth->value.s, auth->value.len, WT_TOKEN_MAX, &token, &why);
        if (scheme < 0) {
                set_reason(v, "Bearer credentials: %s", why);
                r = reject(ctx, v, 401, true);
                goto out;
        }
        if (scheme != SIP_AUTH_BEARER) {
                set_reason(v, "Authorization is not Bearer");
                r = reject(ctx, v, 401, false);
                goto out;
        }

        /* Steps 2 to 4: the token. */
        struct wt_keyset *keys = keys_get(ctx);
        struct wt_token_policy policy = {
                .issuers = ctx->issuer_names,
                .n_issuers = ctx->n_issuers,
                .audience = ctx->audience,
                .now = ctx->clock(ctx->clock_userdata),
                .leeway = ctx->leeway,
        };
        char reason[REASON_MAX];
        int verified = wt_token_verify(token.s, token.len, keys, &policy, &v->claims, reason, sizeof reason);
        keys_put(ctx, keys);
        if (verified < 0) {
                set_reason(v, "%s", reason);
                r = reject(ctx, v, 401, true);
                goto out;
        }

        /* Step 5: the identity being registered is the one granted. */
        if (!quotable(v->claims.impu) || !quotable(v->claims.impi) ||
            sip_uri_parse(v->claims.impu, strlen(v->claims.impu), &granted, &why) < 0) {
                set_reason(v, "the token's impu or impi is not a usable identity");
                r = reject(ctx, v, 403, false);
                goto out;
        }
        if (!sip_uri_same_identity(&to, &granted)) {
                set_reason(v, "To is not the token's IMPU");
                r = reject(ctx, v, 403, false);
                goto out;
        }
        if (!sip_uri_same_identity(&from, &granted)) {
                set_reason(v, "From is not the token's IMPU");
                r = reject(ctx, v, 403, false);
                goto out;
        }
        /* A Path from the client would route the user's incoming requests
         * wherever the client says: only proxies add Path, and the eP-CSCF
         * is the first one. */
        if (sip_count(m, SIP_HDR_PATH) > 0) {
                set_reason(v, "the client sent a Path header");
                r = reject(ctx, v, 403, false);
                goto out;
        }
        if (ctx->binding && connection_id) {
                if (!v->claims.jti[0]) {
                        set_reason(v, "token without jti cannot be bound to a connection");
                        r = reject(ctx, v, 401, true);
                        goto out;
                }
                int b = binding_check(ctx, v->claims.jti, connection_id, v->claims.exp + ctx->leeway, policy.now);
                if (b < 0) {
                        r = WICTOKEN_E_NO_MEMORY;
                        goto out;
                }
                if (b == 0) {
                        set_reason(v, "token bound to another connection");
                        r = reject(ctx, v, 401, true);
                        goto out;
                }
        }
        r = accept_register(ctx, v, m);
out:
        if (r < 0) {
                wictoken_verdict_free(v);
                return r == WICTOKEN_E_NO_MEMORY ? set_error(ctx, r, "out of memory") : r;
        }
        *ret = v;
        return 0;
}

int wictoken_strip_bearer(struct wictoken_ctx *ctx, const char *msg, size_t len, char **ret, size_t *ret_len) {
        if (!ctx || !msg || !ret || !ret_len)
                return WICTOKEN_E_INVALID_ARGUMENT;
        *ret = NULL;
        *ret_len = 0;
        const char *why = "";
        if (len > SIP_MESSAGE_MAX)
                return set_error(ctx, WICTOKEN_E_MALFORMED, "message larger than %d bytes", SIP_MESSAGE_MAX);
        if (sip_parse(msg, len, ctx->msg, &why) < 0)
                return set_error(ctx, WICTOKEN_E_MALFORMED, "malformed: %s", why);
        int r = rebuild_message(ctx->msg, is_bearer, NULL, ret, ret_len);
        if (r < 0)
                return set_error(ctx, WICTOKEN_E_NO_MEMORY, "out of memory");
        return r;
}
