/* GET /metrics: the counters, histograms and per-pool IMPU states in the
 * Prometheus text format. */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "lease/lease.h"
#include "wwsfd/api/api.h"
#include "wwsfd/daemon.h"
#include "wwsfd/log.h"

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
        append(&t, "# HELP wwsf_portal_requests_total Portal API requests by portal, kind and outcome.\n"
                   "# TYPE wwsf_portal_requests_total counter\n");
        size_t np = m->n_portals;
        for (size_t i = 0; i <= METRICS_PORTALS_MAX; i++) {
                if (i >= np && i != METRICS_PORTALS_MAX)
                        continue;
                struct metrics_portal *p = &m->portals[i];
                uint64_t reads = p->reads, writes = p->writes;
                if (i == METRICS_PORTALS_MAX && !reads && !writes)
                        continue;
                append(&t, "wwsf_portal_requests_total{portal=\"%s\",kind=\"read\"} %" PRIu64 "\n", p->name, reads);
                append(&t, "wwsf_portal_requests_total{portal=\"%s\",kind=\"write\"} %" PRIu64 "\n", p->name, writes);
                append(&t, "wwsf_portal_requests_total{portal=\"%s\",kind=\"4xx\"} %" PRIu64 "\n", p->name,
                       (uint64_t) p->responses_4xx);
                append(&t, "wwsf_portal_requests_total{portal=\"%s\",kind=\"5xx\"} %" PRIu64 "\n", p->name,
                       (uint64_t) p->responses_5xx);
                append(&t, "wwsf_portal_requests_total{portal=\"%s\",kind=\"throttled\"} %" PRIu64 "\n", p->name,
                       (uint64_t) p->throttled);
        }
        histogram_text(&t, "wwsf_hook_latency_seconds", "Eligibility hook answer time.", &m->hook_latency);
        histogram_text(&t, "wwsf_ldap_latency_seconds", "LDAP login time.", &m->ldap_latency);
        append(&t, "# HELP wwsf_pool_impus IMPUs of each pool by state.\n# TYPE wwsf_pool_impus gauge\n");
        pthread_mutex_lock(&d->store_lock);
        int q = lease_pools(d->engine, NULL, pool_metrics, &t);
        pthread_mutex_unlock(&d->store_lock);
        if (q < 0)
                log_warning("metrics: %s", lease_engine_error(d->engine));

        struct MHD_Response *resp = MHD_create_response_from_buffer(t.len, t.buf, MHD_RESPMEM_MUST_FREE);
        if (!resp)
                free(t.buf);
        return reply_response(r, 200, resp, "text/plain; version=0.0.4", "no-store");
}
