/* GET /.well-known/jwks.json, /healthz, /metrics and the WIC's static files. */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "wwsfd/wwsfd.h"

enum MHD_Result api_jwks(struct request *r, const char *url) {
        struct wwsfd *d = r->d;
        (void) url;
        pthread_rwlock_rdlock(&d->keyring_lock);
        const char *jwks = d->keyring ? tokens_keyring_jwks(d->keyring) : "{\"keys\":[]}";
        struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(jwks), (void *) jwks,
                                                                    MHD_RESPMEM_MUST_COPY);
        pthread_rwlock_unlock(&d->keyring_lock);
        /* Validators poll it; a new key is published well before it signs. */
        return reply_response(r, 200, resp, "application/json", "public, max-age=300");
}

enum MHD_Result api_healthz(struct request *r, const char *url) {
        struct wwsfd *d = r->d;
        (void) url;
        pthread_rwlock_rdlock(&d->keyring_lock);
        bool can_sign = d->keyring && tokens_keyring_can_sign(d->keyring);
        pthread_rwlock_unlock(&d->keyring_lock);
        json_t *body = json_pack("{s:s, s:b, s:b}", "status", can_sign ? "ok" : "degraded", "signing_key", can_sign,
                                 "anonymous", d->hook != NULL);
        return reply_json(r, can_sign ? 200 : 503, body);
}

/* ---- metrics, Prometheus text format ---- */

struct text {
        char *buf;
        size_t len, cap;
};

__attribute__((format(printf, 2, 3)))
static void append(struct text *t, const char *fmt, ...) {
        for (;;) {
                va_list ap;
                va_start(ap, fmt);
                int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
                va_end(ap);
                if (n < 0)
                        return;
                if ((size_t) n < t->cap - t->len) {
                        t->len += (size_t) n;
                        return;
                }
                size_t cap = t->cap * 2 + (size_t) n;
                char *b = realloc(t->buf, cap);
                if (!b)
                        return;
                t->buf = b;
                t->cap = cap;
        }
}

static void histogram_text(struct text *t, const char *name, const char *help, struct histogram *h) {
        append(t, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
        uint64_t cumulative = 0;
        for (int i = 0; i < HISTOGRAM_BUCKETS; i++) {
                cumulative += h->buckets[i];
                append(t, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name, (double) histogram_bound_us(i) / 1e6, cumulative);
        }
        cumulative += h->buckets[HISTOGRAM_BUCKETS];
        append(t, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, cumulative);
        append(t, "%s_sum %g\n%s_count %" PRIu64 "\n", name, (double) h->sum_us / 1e6, name, (uint64_t) h->count);
}

static int pool_metrics(const struct lease_pool_stats *s, void *userdata) {
        struct text *t = userdata;
        const char *n = s->pool.def.name, *k = pool_kind_to_string(s->pool.def.kind);
        append(t, "wwsf_pool_impus{pool=\"%s\",kind=\"%s\",state=\"free\"} %" PRId64 "\n", n, k, s->free);
        append(t, "wwsf_pool_impus{pool=\"%s\",kind=\"%s\",state=\"leased\"} %" PRId64 "\n", n, k, s->leased);
        append(t, "wwsf_pool_impus{pool=\"%s\",kind=\"%s\",state=\"quarantine\"} %" PRId64 "\n", n, k,
               s->quarantine);
        return 0;
}

enum MHD_Result api_metrics(struct request *r, const char *url) {
        struct wwsfd *d = r->d;
        struct metrics *m = &d->metrics;
        (void) url;
        struct text t = { .cap = 4096 };
        t.buf = malloc(t.cap);
        if (!t.buf)
                return MHD_NO;
        t.buf[0] = '\0';
        append(&t, "# HELP wwsf_tokens_issued_total Tokens issued, by how they were obtained.\n"
                   "# TYPE wwsf_tokens_issued_total counter\n");
        append(&t, "wwsf_tokens_issued_total{kind=\"anonymous\"} %" PRIu64 "\n", (uint64_t) m->tokens_anonymous);
        append(&t, "wwsf_tokens_issued_total{kind=\"login\"} %" PRIu64 "\n", (uint64_t) m->tokens_login);
        append(&t, "wwsf_tokens_issued_total{kind=\"refresh\"} %" PRIu64 "\n", (uint64_t) m->tokens_refresh);
        append(&t, "# HELP wwsf_logins_total Password logins, by outcome.\n# TYPE wwsf_logins_total counter\n");
        append(&t, "wwsf_logins_total{outcome=\"success\"} %" PRIu64 "\n", (uint64_t) m->login_success);
        append(&t, "wwsf_logins_total{outcome=\"failure\"} %" PRIu64 "\n", (uint64_t) m->login_failure);
        append(&t, "# HELP wwsf_anonymous_refused_total Anonymous visitors the hook found not eligible.\n"
                   "# TYPE wwsf_anonymous_refused_total counter\nwwsf_anonymous_refused_total %" PRIu64 "\n",
               (uint64_t) m->anonymous_refused);
        append(&t, "# HELP wwsf_throttled_total Requests answered 429.\n# TYPE wwsf_throttled_total counter\n"
                   "wwsf_throttled_total %" PRIu64 "\n",
               (uint64_t) m->throttled);
        append(&t, "# HELP wwsf_http_requests_total HTTP requests.\n# TYPE wwsf_http_requests_total counter\n"
                   "wwsf_http_requests_total %" PRIu64 "\n",
               (uint64_t) m->requests);
        append(&t, "# HELP wwsf_http_errors_total HTTP error responses by class.\n"
                   "# TYPE wwsf_http_errors_total counter\n"
                   "wwsf_http_errors_total{class=\"4xx\"} %" PRIu64 "\nwwsf_http_errors_total{class=\"5xx\"} %" PRIu64 "\n",
               (uint64_t) m->responses_4xx, (uint64_t) m->responses_5xx);
        histogram_text(&t, "wwsf_hook_latency_seconds", "Eligibility hook answer time.", &m->hook_latency);
        histogram_text(&t, "wwsf_ldap_latency_seconds", "LDAP login time.", &m->ldap_latency);
        append(&t, "# HELP wwsf_pool_impus IMPUs of each pool by state.\n# TYPE wwsf_pool_impus gauge\n");
        pthread_mutex_lock(&d->store_lock);
        int q = lease_pools_busy(d->engine, pool_metrics, &t);
        pthread_mutex_unlock(&d->store_lock);
        if (q < 0)
                log_warning("metrics: %s", lease_engine_error(d->engine));

        struct MHD_Response *resp = MHD_create_response_from_buffer(t.len, t.buf, MHD_RESPMEM_MUST_FREE);
        if (!resp)
                free(t.buf);
        return reply_response(r, 200, resp, "text/plain; version=0.0.4", "no-store");
}

/* ---- static files ---- */

static const struct {
        const char *ext, *type;
} mime_types[] = {
        { ".html", "text/html; charset=utf-8" }, { ".js", "text/javascript; charset=utf-8" },
        { ".mjs", "text/javascript; charset=utf-8" }, { ".css", "text/css; charset=utf-8" },
        { ".json", "application/json" }, { ".map", "application/json" }, { ".svg", "image/svg+xml" },
        { ".png", "image/png" }, { ".ico", "image/x-icon" }, { ".txt", "text/plain; charset=utf-8" },
        { ".wav", "audio/wav" }, { ".ogg", "audio/ogg" }, { ".woff2", "font/woff2" },
};

static const char *mime_type(const char *path) {
        const char *dot = strrchr(path, '.');
        if (dot && !strchr(dot, '/'))
                for (size_t i = 0; i < sizeof mime_types / sizeof mime_types[0]; i++)
                        if (strcasecmp(dot, mime_types[i].ext) == 0)
                                return mime_types[i].type;
        return "application/octet-stream";
}

/* Paths with "..", "." or empty segments, backslashes or control bytes are
 * refused outright (the URL is already %-decoded by libmicrohttpd); the rest
 * are opened with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) below the web
 * root's directory descriptor, so nothing outside it can be reached, not even
 * through a symbolic link inside it. */
static bool safe_path(const char *url) {
        if (url[0] != '/' || strlen(url) > 1024)
                return false;
        for (const char *p = url; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f || *p == '\\')
                        return false;
        for (const char *seg = url + 1; *seg;) {
                size_t n = strcspn(seg, "/");
                if (n == 0 && seg[n] == '/')
                        return false;
                if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
                        return false;
                seg += n;
                if (*seg == '/')
                        seg++;
        }
        return true;
}

/* If-None-Match (RFC 9110 section 13.1.2): "*", or a list of tags compared
 * weakly (W/ ignored). */
static bool etag_matches(const char *header, const char *etag) {
        size_t elen = strlen(etag);
        for (const char *p = header; *p;) {
                while (*p == ' ' || *p == '\t' || *p == ',')
                        p++;
                if (*p == '*')
                        return true;
                if (strncmp(p, "W/", 2) == 0)
                        p += 2;
                size_t n = strcspn(p, ",");
                while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
                        n--;
                if (n == elen && strncmp(p, etag, n) == 0)
                        return true;
                p += strcspn(p, ",");
        }
        return false;
}

enum MHD_Result api_static(struct request *r, const char *url) {
        struct wwsfd *d = r->d;
        if (!safe_path(url))
                return reply_error(r, 404, "not_found", "no such file");
        char path[1100];
        size_t n = strlen(url);
        snprintf(path, sizeof path, "%s%s", url + 1, n == 1 || url[n - 1] == '/' ? "index.html" : "");
        struct open_how how = {
                .flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW,
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        };
        int fd = (int) syscall(SYS_openat2, d->web_root_fd, path, &how, sizeof how);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                if (fd >= 0)
                        close(fd);
                return reply_error(r, 404, "not_found", "no such file");
        }
        char etag[64];
        snprintf(etag, sizeof etag, "\"%llx-%llx\"", (unsigned long long) st.st_size,
                 (unsigned long long) st.st_mtim.tv_sec * 1000000000ull + (unsigned long long) st.st_mtim.tv_nsec);
        const char *inm = request_header(r, "If-None-Match");
        struct MHD_Response *resp;
        unsigned status = 200;
        if (inm && etag_matches(inm, etag)) {
                close(fd);
                resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
                status = 304;
        } else
                resp = MHD_create_response_from_fd((size_t) st.st_size, fd);
        if (!resp) {
                if (status == 200)
                        close(fd);
                return MHD_NO;
        }
        const char *type = mime_type(path);
        MHD_add_response_header(resp, "Content-Type", type);
        MHD_add_response_header(resp, "ETag", etag);
        /* Pages revalidate every time (they name the current scripts); the
         * rest may be cached for an hour. */
        bool html = strncmp(type, "text/html", 9) == 0;
        MHD_add_response_header(resp, "Cache-Control", html ? "no-cache" : "public, max-age=3600");
        add_security_headers(r->d, resp, html);
        enum MHD_Result ret = MHD_queue_response(r->conn, status, resp);
        MHD_destroy_response(resp);
        return ret;
}
