/* POST /api/v1/anonymous, /login, /refresh, /logout: admission, leases and
 * tokens. Parsing happens on the HTTP thread; the hook answers on its own
 * thread; lease store writes and signing run on a worker. */
#include <ctype.h>
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/parse.h"
#include "wwsfd/api.h"

#define SESSION_COOKIE "wwsf_session"
/* refresh and logout need this header: a cross-site form cannot send it, and
 * a cross-site fetch() that sets it needs a CORS preflight we never answer. */
#define CSRF_HEADER "X-WWSF-Request"

static bool json_content_type(struct request *r) {
        const char *ct = request_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
        if (!ct)
                return false;
        size_t n = strcspn(ct, ";");
        return n == 16 && strncasecmp(ct, "application/json", 16) == 0;
}

json_t *admission_parse_body(struct request *r, size_t flags, enum MHD_Result *ret_result) {
        if (!json_content_type(r)) {
                *ret_result = reply_error(r, 415, "unsupported_media_type", "send Content-Type: application/json");
                return NULL;
        }
        json_error_t jerr;
        json_t *body = r->body ? json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES | flags, &jerr) : NULL;
        if (!body || !json_is_object(body)) {
                json_decref(body);
                *ret_result = reply_error(r, 400, "bad_request", "the body must be a JSON object");
                return NULL;
        }
        return body;
}

/* Whether s[0..n) is all base64url characters (session ids and tags). */
static bool b64url_chars(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char) s[i]) && s[i] != '-' && s[i] != '_')
                        return false;
        return true;
}

/* The session ids of the request's cookie, oldest first: at most max of the
 * newest well-formed ones (anything else in the cookie is ignored). */
static size_t cookie_sessions(struct request *r, char ids[][SESSION_ID_LEN + 1], size_t max) {
        const char *v = request_cookie(r, SESSION_COOKIE);
        size_t n = 0;
        while (v && *v) {
                size_t len = strcspn(v, ".");
                if (len == SESSION_ID_LEN && b64url_chars(v, len)) {
                        if (n == max) {
                                memmove(ids[0], ids[1], (max - 1) * sizeof ids[0]);
                                n--;
                        }
                        memcpy(ids[n], v, SESSION_ID_LEN);
                        ids[n][SESSION_ID_LEN] = '\0';
                        n++;
                }
                v += len + (v[len] == '.');
        }
        return n;
}

static void join_sessions(char ids[][SESSION_ID_LEN + 1], size_t n, size_t skip, char *out, size_t size) {
        size_t o = 0;
        out[0] = '\0';
        for (size_t i = 0; i < n; i++)
                if (i != skip)
                        o += (size_t) snprintf(out + o, size - o, "%s%s", o ? "." : "", ids[i]);
}

void admission_take_cookie(struct admission *a) {
        struct wwsfd *d = a->r->d;
        char ids[SESSIONS_PER_COOKIE][SESSION_ID_LEN + 1];
        size_t n = cookie_sessions(a->r, ids, SESSIONS_PER_COOKIE), k = 0;
        int64_t now = wwsf_clock_now(d->clock);
        /* The live ones, in order... */
        for (size_t i = 0; i < n; i++)
                if (session_exists(d->sessions, ids[i], now))
                        memmove(ids[k++], ids[i], sizeof ids[0]);
        /* ...the newest SESSIONS_PER_COOKIE - 1 of them: the new session
         * makes the cookie full. */
        size_t first = k > SESSIONS_PER_COOKIE - 1 ? k - (SESSIONS_PER_COOKIE - 1) : 0;
        join_sessions(ids + first, k - first, (size_t) -1, a->other_sessions, sizeof a->other_sessions);
}

bool admission_throttled(struct request *r, const char *kind, const char *key, int per_minute) {
        char k[320];
        snprintf(k, sizeof k, "%s:%s", kind, key);
        int wait = throttle_check(r->d->throttle, k, per_minute, wwsfd_now_ms());
        if (wait > 0) {
                r->retry_after = wait;
                r->d->metrics.throttled++;
        }
        return wait > 0;
}

void admission_finish_with_token(struct worker *w, struct admission *a, int64_t lease_expires_at, bool new_session) {
        struct wwsfd *d = w->d;
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
                .lease_exp = lease_expires_at,
        };
        char *token = NULL, *jti = NULL, err[256];
        pthread_rwlock_rdlock(&d->keyring_lock);
        int q = d->keyring ? tokens_sign(d->keyring, &claims, &token, &jti, err, sizeof err) : -ENOKEY;
        pthread_rwlock_unlock(&d->keyring_lock);
        if (q < 0) {
                log_error("cannot sign a token: %s", q == -ENOKEY ? "no active signing key" : err);
                r->retry_after = 30;
                request_finish_error(r, 503, "no_signing_key", "the server cannot issue tokens right now");
                return;
        }
        int64_t exp = claims.exp;
        if (lease_expires_at && lease_expires_at < exp)
                exp = lease_expires_at;
        if (new_session) {
                s->expires_at = now + d->cfg->session_ttl;
                if (session_create(d->sessions, s) < 0) {
                        /* Only in the race past the check at the start (or
                         * out of memory): the lease stays until its TTL. */
                        free(token);
                        free(jti);
                        r->retry_after = TOO_MANY_SESSIONS_RETRY;
                        request_finish_error(r, 503, "too_many_sessions", TOO_MANY_SESSIONS_DETAIL);
                        return;
                }
                snprintf(r->set_cookie, sizeof r->set_cookie,
                         SESSION_COOKIE "=%s%s%s; Path=/api/v1/; Max-Age=%lld; HttpOnly; Secure; SameSite=Strict",
                         a->other_sessions, a->other_sessions[0] ? "." : "", s->id, (long long) d->cfg->session_ttl);
        }
        char tag[SESSION_TAG_LEN + 1];
        wwsfd_session_tag(d, s->id, tag);
        log_info("token %s for %s (%s) impu %s%s", jti, s->sub, s->anon ? "anonymous" : "user", s->impu,
                 lease_expires_at ? "" : " (own identity)");
        json_t *body = json_pack("{s:s, s:s, s:s, s:I, s:o, s:s, s:s, s:b, s:s}", "token", token, "impu", s->impu,
                                 "impi", s->impi, "expires_at", (json_int_t) exp, "lease_expires_at",
                                 lease_expires_at ? json_integer(lease_expires_at) : json_null(), "epcscf_uri",
                                 d->cfg->epcscf_uri, "sub", s->sub, "anonymous", s->anon, "session_tag", tag);
        free(token);
        free(jti);
        request_finish_json(r, 200, body);
}

void admission_after_commit(struct worker *w, void *userdata, bool committed) {
        struct admission *a = userdata;
        if (committed)
                admission_finish_with_token(w, a, a->lease_expires_at, a->new_session);
        else {
                a->r->retry_after = 1;
                request_finish_error(a->r, 503, "busy", "the lease store could not record this; try again");
        }
        free(a);
}

bool admission_lease(struct worker *w, struct admission *a) {
        struct lease l;
        int q = lease_acquire(w->engine, a->pool, a->session.holder, a->r->client_addr, 0, &l, NULL);
        if (q < 0) {
                admission_lease_error(w, a, q);
                free(a);
                return false;
        }
        snprintf(a->session.pool, sizeof a->session.pool, "%s", l.pool);
        snprintf(a->session.impu, sizeof a->session.impu, "%s", l.impu);
        snprintf(a->session.impi, sizeof a->session.impi, "%s", l.impi);
        a->lease_expires_at = l.expires_at;
        return true;
}

void admission_lease_error(struct worker *w, struct admission *a, int q) {
        struct request *r = a->r;
        switch (q) {
        case -ENOSPC: {
                int64_t after = lease_engine_retry_after(w->engine);
                r->retry_after = after > 0 && after < 3600 ? (int) after : 60;
                request_finish_error(r, 503, "pool_exhausted", "no IMS identity is free right now; try again later");
                break;
        }
        case -EDQUOT:
                request_finish_error(r, 429, "too_many_leases", "%s", lease_engine_error(w->engine));
                break;
        case -EBUSY:
                r->retry_after = 1;
                request_finish_error(r, 503, "busy", "the lease store is busy; try again");
                break;
        default:
                log_error("lease for pool %s: %s", a->pool, lease_engine_error(w->engine));
                r->retry_after = 30;
                request_finish_error(r, 503, "lease_failed", "the server cannot lease an identity right now");
        }
}

/* ---- anonymous ---- */

static void anonymous_lease_job(struct worker *w, void *userdata) {
        struct admission *a = userdata;
        struct wwsfd *d = w->d;
        struct request *r = a->r;

        /* The hook may only pick anonymous pools. */
        struct store_pool pool;
        if (lease_pool_get(w->engine, a->pool, &pool) < 0 || pool.def.kind != POOL_KIND_ANONYMOUS) {
                log_error("anonymous admission: '%s' is not an anonymous pool", a->pool);
                r->retry_after = 30;
                request_finish_error(r, 503, "lease_failed", "admission is misconfigured");
                free(a);
                return;
        }
        if (!admission_lease(w, a))
                return;
        d->metrics.tokens_anonymous++;
        a->new_session = true;
        worker_defer(w, admission_after_commit, a);
}

static void on_hook_answer(void *userdata, enum hook_status status, const struct hook_verdict *v) {
        struct admission *a = userdata;
        struct request *r = a->r;
        struct wwsfd *d = r->d;
        histogram_observe(&d->metrics.hook_latency, wwsf_monotonic_ns() / 1000 - a->hook_started_us);
        if (status != HOOK_OK) {
                log_warning("eligibility hook: %s", status == HOOK_TIMEOUT ? "no answer in time"
                                                    : status == HOOK_BAD_ANSWER ? "a malformed answer"
                                                                                : "unavailable");
                r->retry_after = 5;
                request_finish_error(r, 503, "hook_unavailable", "admission is not available right now");
                free(a);
                return;
        }
        if (!v->eligible) {
                d->metrics.anonymous_refused++;
                request_finish_error(r, 403, "not_eligible", "%s", v->reason[0] ? v->reason : "not eligible");
                free(a);
                return;
        }
        if (v->pool[0])
                snprintf(a->pool, sizeof a->pool, "%s", v->pool);
        if (!job_queue_push(d->jobs, anonymous_lease_job, a)) {
                r->retry_after = 1;
                request_finish_error(r, 503, "overloaded", "the server is busy; try again");
                free(a);
        }
}

/* A fresh random handle: the holder of an anonymous lease and its `sub`. */
static int random_handle(const char *prefix, char *buf, size_t size) {
        uint8_t rnd[16];
        char b64[32];
        if (gnutls_rnd(GNUTLS_RND_NONCE, rnd, sizeof rnd) < 0)
                return -EIO;
        tokens_b64url_encode(rnd, sizeof rnd, b64);
        snprintf(buf, size, "%s%s", prefix, b64);
        return 0;
}

enum MHD_Result reply_too_many_sessions(struct request *r) {
        r->retry_after = TOO_MANY_SESSIONS_RETRY;
        return reply_error(r, 503, "too_many_sessions", TOO_MANY_SESSIONS_DETAIL);
}

enum MHD_Result api_anonymous(struct request *r, const char *url) {
        struct wwsfd *d = r->d;
        (void) url;
        if (!d->hook)
                return reply_error(r, 404, "not_found", "anonymous admission is not offered here");
        if (admission_throttled(r, "anonymous-ip", r->client_addr, d->cfg->anonymous_per_ip_per_minute))
                return reply_error(r, 429, "too_many_requests", "too many attempts from your address; wait a little");
        if (session_table_full(d->sessions))
                return reply_too_many_sessions(r);
        enum MHD_Result res;
        json_t *body = admission_parse_body(r, 0, &res);
        if (!body)
                return res;
        json_t *evidence = json_object_get(body, "evidence");
        if (!json_is_object(evidence)) {
                json_decref(body);
                return reply_error(r, 400, "bad_request", "'evidence' must be a JSON object");
        }
        struct admission *a = calloc(1, sizeof *a);
        if (!a) {
                json_decref(body);
                return MHD_NO;
        }
        a->r = r;
        admission_take_cookie(a);
        snprintf(a->pool, sizeof a->pool, "%s", d->cfg->anonymous_pool);
        a->session.anon = true;
        if (random_handle("anon-", a->session.holder, sizeof a->session.holder) < 0) {
                free(a);
                json_decref(body);
                return reply_error(r, 500, "internal_error", "no random numbers");
        }
        snprintf(a->session.sub, sizeof a->session.sub, "%s", a->session.holder);
        a->hook_started_us = wwsf_monotonic_ns() / 1000;
        /* The helper gets the start of the User-Agent: enough to tell
         * browsers apart, and a bound on what a client can make it read. */
        const char *ua = request_header(r, MHD_HTTP_HEADER_USER_AGENT);
        char agent[513];
        size_t n = ua ? strlen(ua) : 0;
        if (n >= sizeof agent) {
                n = sizeof agent - 1;
                while (n > 0 && ((unsigned char) ua[n] & 0xc0) == 0x80)
                        n--;    /* do not cut a UTF-8 sequence */
        }
        memcpy(agent, ua ? ua : "", n);
        agent[n] = '\0';
        request_suspend(r);
        hook_pool_ask(d->hook, r->client_addr, agent, evidence, on_hook_answer, a);
        json_decref(body);
        return MHD_YES;
}

/* ---- refresh and logout ---- */

/* The session of a refresh/logout request, or a reply already queued. */
static struct admission *session_request(struct request *r, const char *what, enum MHD_Result *ret_result) {
        struct wwsfd *d = r->d;
        /* "1", or the tag of the session meant, among those of the cookie
         * (from the admission's session_tag; "1" means the newest). */
        const char *csrf = request_header(r, CSRF_HEADER);
        bool tagged = csrf && strlen(csrf) == SESSION_TAG_LEN && b64url_chars(csrf, SESSION_TAG_LEN);
        if (!csrf || (!tagged && strcmp(csrf, "1") != 0)) {
                *ret_result = reply_error(r, 403, "forbidden", "%s needs the header " CSRF_HEADER ": 1 (or the session_tag)",
                                          what);
                return NULL;
        }
        const char *origin = request_header(r, "Origin");
        if (origin && strcmp(origin, d->cfg->public_url) != 0) {
                *ret_result = reply_error(r, 403, "forbidden", "requests from another origin are refused");
                return NULL;
        }
        char ids[SESSIONS_PER_COOKIE][SESSION_ID_LEN + 1];
        size_t n = cookie_sessions(r, ids, SESSIONS_PER_COOKIE), pick = n ? n - 1 : 0;
        if (tagged) {
                char tag[SESSION_TAG_LEN + 1];
                for (pick = 0; pick < n; pick++) {
                        wwsfd_session_tag(d, ids[pick], tag);
                        if (strcmp(tag, csrf) == 0)
                                break;
                }
        }
        const char *id = pick < n ? ids[pick] : NULL;
        struct admission *a = calloc(1, sizeof *a);
        if (!a) {
                *ret_result = MHD_NO;
                return NULL;
        }
        a->r = r;
        join_sessions(ids, n, pick, a->other_sessions, sizeof a->other_sessions);
        if (!id || !session_get(d->sessions, id, wwsf_clock_now(d->clock), &a->session)) {
                free(a);
                *ret_result = reply_error(r, 401, "no_session", "log in again: the session is missing or has ended");
                return NULL;
        }
        snprintf(a->pool, sizeof a->pool, "%s", a->session.pool);
        return a;
}

static void refresh_job(struct worker *w, void *userdata) {
        struct admission *a = userdata;
        int64_t lease_expires_at = 0;
        if (a->session.pool[0]) {
                struct lease l;
                int q = lease_renew(w->engine, a->session.impu, a->session.holder, &l);
                if (q == -ESTALE || q == -EPERM || q == -ENOENT) {
                        /* Revoked or handed on: this session cannot keep its IMPU. */
                        session_remove(w->d->sessions, a->session.id);
                        request_finish_error(a->r, 401, "lease_lost", "your IMS identity was withdrawn; log in again");
                        free(a);
                        return;
                }
                if (q < 0) {
                        admission_lease_error(w, a, q);
                        free(a);
                        return;
                }
                lease_expires_at = l.expires_at;
        }
        w->d->metrics.tokens_refresh++;
        a->lease_expires_at = lease_expires_at;
        a->new_session = false;
        worker_defer(w, admission_after_commit, a);
}

enum MHD_Result api_refresh(struct request *r, const char *url) {
        (void) url;
        enum MHD_Result res;
        struct admission *a = session_request(r, "refresh", &res);
        if (!a)
                return res;
        if (admission_throttled(r, "refresh", a->session.id, r->d->cfg->refresh_per_session_per_minute)) {
                free(a);
                return reply_error(r, 429, "too_many_requests", "refreshing too often");
        }
        request_suspend(r);
        if (!job_queue_push(r->d->jobs, refresh_job, a)) {
                r->retry_after = 1;
                request_finish_error(r, 503, "overloaded", "the server is busy; try again");
                free(a);
        }
        return MHD_YES;
}

static void logout_after_commit(struct worker *w, void *userdata, bool committed) {
        struct admission *a = userdata;
        struct request *r = a->r;
        if (!committed) {
                r->retry_after = 1;
                request_finish_error(r, 503, "busy", "the lease store could not record this; try again");
                free(a);
                return;
        }
        session_remove(w->d->sessions, a->session.id);
        /* The browser's other sessions (other tabs) stay in the cookie. */
        if (a->other_sessions[0])
                snprintf(r->set_cookie, sizeof r->set_cookie,
                         SESSION_COOKIE "=%s; Path=/api/v1/; Max-Age=%lld; HttpOnly; Secure; SameSite=Strict",
                         a->other_sessions, (long long) w->d->cfg->session_ttl);
        else
                snprintf(r->set_cookie, sizeof r->set_cookie,
                         SESSION_COOKIE "=; Path=/api/v1/; Max-Age=0; HttpOnly; Secure; SameSite=Strict");
        log_info("logout of %s, impu %s released", a->session.sub, a->session.impu);
        request_finish_json(r, 200, json_pack("{s:b}", "ok", 1));
        free(a);
}

static void logout_job(struct worker *w, void *userdata) {
        struct admission *a = userdata;
        if (a->session.pool[0]) {
                int q = lease_release(w->engine, a->session.impu, a->session.holder, NULL);
                if (q < 0 && q != -ESTALE && q != -EPERM && q != -ENOENT) {
                        admission_lease_error(w, a, q);
                        free(a);
                        return;
                }
        }
        worker_defer(w, logout_after_commit, a);
}

enum MHD_Result api_logout(struct request *r, const char *url) {
        (void) url;
        enum MHD_Result res;
        struct admission *a = session_request(r, "logout", &res);
        if (!a)
                return res;
        request_suspend(r);
        if (!job_queue_push(r->d->jobs, logout_job, a)) {
                r->retry_after = 1;
                request_finish_error(r, 503, "overloaded", "the server is busy; try again");
                free(a);
        }
        return MHD_YES;
}
