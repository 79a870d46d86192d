/* The admission core: throttling, leasing, signing, the session and its
 * cookie, and the one way to fail. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lease/lease.h"
#include "wwsfd/admission.h"
#include "wwsfd/daemon.h"
#include "wwsfd/log.h"
#include "wwsfd/throttle.h"

bool admission_throttled(struct request *r, const char *kind, const char *key, int per_minute) {
        char k[320];
        snprintf(k, sizeof k, "%s:%s", kind, key);
        int wait = throttle_check(r->d->throttle, k, per_minute, wwsf_monotonic_ms());
        if (wait > 0) {
                r->retry_after = wait;
                r->d->metrics.throttled++;
        }
        return wait > 0;
}

json_t *admission_gate_pass(struct request *r, const struct admission_gate *g, enum MHD_Result *ret_result) {
        if (!g->offered)
                *ret_result = reply_error(r, WWSF_E_NOT_FOUND, "%s", g->not_offered);
        else if (admission_throttled(r, g->throttle_kind, r->client_addr, g->per_ip_per_minute))
                *ret_result = reply_error(r, WWSF_E_TOO_MANY_REQUESTS, "%s", g->throttled);
        else if (session_table_full(r->d->sessions))
                *ret_result = reply_error(r, WWSF_E_TOO_MANY_SESSIONS, TOO_MANY_SESSIONS_DETAIL);
        else
                return request_json_body(r, g->json_flags, ret_result);
        return NULL;
}

struct admission *admission_start(struct request *r, bool cookie_others) {
        struct admission *a = calloc(1, sizeof *a);
        if (!a)
                return NULL;
        a->r = r;
        a->d = r->d;
        if (cookie_others)
                session_cookie_others(a->d->sessions, request_cookie(r, SESSION_COOKIE), wwsf_clock_now(a->d->clock),
                                      a->other_sessions, sizeof a->other_sessions);
        request_suspend(r);
        return a;
}

void admission_fail(struct admission *a, enum wwsf_error e, const char *fmt, ...) {
        char detail[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof detail, fmt, ap);
        va_end(ap);
        request_finish_error(a->r, e, "%s", detail);
        free(a);
}

void admission_submit(struct admission *a, job_fn fn) {
        if (!job_queue_push(a->d->jobs, fn, a))
                admission_fail(a, WWSF_E_OVERLOADED, "the server is busy; try again");
}

void admission_fail_lease(struct worker *w, struct admission *a, int q) {
        switch (q) {
        case -ENOSPC: {
                int64_t after = lease_engine_retry_after(w->engine);
                if (after > 0 && after < 3600)
                        a->r->retry_after = (int) after;
                admission_fail(a, WWSF_E_POOL_EXHAUSTED, "no IMS identity is free right now; try again later");
                return;
        }
        case -EDQUOT:
                admission_fail(a, WWSF_E_TOO_MANY_LEASES, "%s", lease_engine_error(w->engine));
                return;
        case -EBUSY:
                admission_fail(a, WWSF_E_BUSY, "the lease store is busy; try again");
                return;
        case -EACCES:
        case -ENOENT:
                /* The configuration or the hook named a pool that does not
                 * exist or that anonymous visitors may not have. */
                if (a->anonymous) {
                        log_error("anonymous admission: %s", lease_engine_error(w->engine));
                        admission_fail(a, WWSF_E_LEASE_FAILED, "admission is misconfigured");
                        return;
                }
                /* fall through */
        default:
                log_error("lease for pool %s: %s", a->pool, lease_engine_error(w->engine));
                admission_fail(a, WWSF_E_LEASE_FAILED, "the server cannot lease an identity right now");
        }
}

bool admission_lease(struct worker *w, struct admission *a) {
        struct lease l;
        unsigned flags = a->anonymous ? LEASE_ACQUIRE_ANONYMOUS_ONLY : 0;
        int q = lease_acquire(w->engine, a->pool, a->session.holder, a->r->client_addr, flags, &l, NULL);
        if (q < 0) {
                admission_fail_lease(w, a, q);
                return false;
        }
        snprintf(a->session.pool, sizeof a->session.pool, "%s", l.pool);
        snprintf(a->session.impu, sizeof a->session.impu, "%s", l.impu);
        snprintf(a->session.impi, sizeof a->session.impi, "%s", l.impi);
        a->lease_expires_at = l.expires_at;
        return true;
}

/* Signs a token for a->session, opens the session if it is new, answers 200
 * with the token and frees a. */
static void issue_token(struct admission *a) {
        struct wwsfd *d = a->d;
        struct request *r = a->r;
        struct session *s = &a->session;
        int64_t now = wwsf_clock_now(d->clock);
        struct token_claims claims = {
                .iss = d->cfg->public_url,
                .aud = d->cfg->audience,
                .sub = s->sub,
                .impu = s->impu,
                .impi = s->impi,
                .wwsf = d->cfg->wwsf_id,
                .anon = s->anon,
                .iat = now,
                .nbf = now,
                .exp = now + d->cfg->token_ttl,
                .lease_exp = a->lease_expires_at,
        };
        char *token = NULL, *jti = NULL, err[256];
        pthread_rwlock_rdlock(&d->keyring_lock);
        int q = d->keyring ? tokens_sign(d->keyring, &claims, &token, &jti, err, sizeof err) : -ENOKEY;
        pthread_rwlock_unlock(&d->keyring_lock);
        if (q < 0) {
                log_error("cannot sign a token: %s", q == -ENOKEY ? "no active signing key" : err);
                admission_fail(a, WWSF_E_NO_SIGNING_KEY, "the server cannot issue tokens right now");
                return;
        }
        if (a->new_session) {
                s->expires_at = now + d->cfg->session_ttl;
                if (session_create(d->sessions, s) < 0) {
                        /* Only in the race past the check at the start (or
                         * out of memory): the lease stays until its TTL. */
                        free(token);
                        free(jti);
                        admission_fail(a, WWSF_E_TOO_MANY_SESSIONS, TOO_MANY_SESSIONS_DETAIL);
                        return;
                }
                session_cookie_format(r->set_cookie, sizeof r->set_cookie, a->other_sessions, s->id,
                                      d->cfg->session_ttl);
        }
        char tag[SESSION_TAG_LEN + 1];
        session_tag(d->sessions, s->id, tag);
        log_info("token %s for %s (%s) impu %s%s", jti, s->sub, s->anon ? "anonymous" : "user", s->impu,
                 a->lease_expires_at ? "" : " (own identity)");
        json_t *body = json_pack("{s:s, s:s, s:s, s:I, s:o, s:s, s:s, s:b, s:s}", "token", token, "impu", s->impu,
                                 "impi", s->impi, "expires_at", (json_int_t) tokens_claims_exp(&claims),
                                 "lease_expires_at", a->lease_expires_at ? json_integer(a->lease_expires_at) : json_null(),
                                 "epcscf_uri", d->cfg->epcscf_uri, "sub", s->sub, "anonymous", s->anon, "session_tag",
                                 tag);
        free(token);
        free(jti);
        request_finish_json(r, 200, body);
        free(a);
}

static void after_commit(struct worker *w, void *userdata, bool committed) {
        struct admission *a = userdata;
        (void) w;
        if (committed)
                issue_token(a);
        else
                admission_fail(a, WWSF_E_BUSY, "the lease store could not record this; try again");
}

void admission_succeed(struct worker *w, struct admission *a, bool new_session) {
        a->new_session = new_session;
        worker_defer(w, after_commit, a);
}
