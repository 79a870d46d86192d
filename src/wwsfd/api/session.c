/* POST /api/v1/refresh and /api/v1/logout: a session of the browser's
 * cookie gets a new token (its lease renewed) or ends (its lease released
 * into quarantine). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lease/lease.h"
#include "wwsfd/admission.h"
#include "wwsfd/api/api.h"
#include "wwsfd/daemon.h"
#include "wwsfd/log.h"

/* refresh and logout need this header: a cross-site form cannot send it, and
 * a cross-site fetch() that sets it needs a CORS preflight we never answer. */
#define CSRF_HEADER "X-WWSF-Request"

/* The session a refresh or logout means, into *ret and the cookie's other
 * ids into others; or false with a reply queued in *ret_result. */
static bool session_of(struct request *r, const char *what, struct session *ret, char *others, size_t size,
                       enum MHD_Result *ret_result) {
        struct wwsfd *d = r->d;
        /* "1", or the tag of the session meant, among those of the cookie
         * (from the admission's session_tag; "1" means the newest). */
        const char *csrf = request_header(r, CSRF_HEADER);
        bool tagged = csrf && session_tag_well_formed(csrf);
        if (!csrf || (!tagged && strcmp(csrf, "1") != 0)) {
                *ret_result = reply_error(r, WWSF_E_FORBIDDEN, "%s needs the header " CSRF_HEADER ": 1 (or the session_tag)",
                                          what);
                return false;
        }
        const char *origin = request_header(r, "Origin");
        if (origin && strcmp(origin, d->cfg->public_url) != 0) {
                *ret_result = reply_error(r, WWSF_E_FORBIDDEN, "requests from another origin are refused");
                return false;
        }
        if (!session_cookie_pick(d->sessions, request_cookie(r, SESSION_COOKIE), tagged ? csrf : NULL,
                                 wwsf_clock_now(d->clock), ret, others, size)) {
                *ret_result = reply_error(r, WWSF_E_NO_SESSION, "log in again: the session is missing or has ended");
                return false;
        }
        return true;
}

/* An admission for the session the request names (throttled: at most
 * [throttle] refresh_per_session_per_minute), or NULL with a reply queued in
 * *ret_result. */
static struct admission *session_admission(struct request *r, const char *what, bool throttled,
                                           enum MHD_Result *ret_result) {
        struct session s;
        char others[SESSION_COOKIE_VALUE_MAX];
        if (!session_of(r, what, &s, others, sizeof others, ret_result))
                return NULL;
        if (throttled && admission_throttled(r, what, s.id, r->d->cfg->refresh_per_session_per_minute)) {
                *ret_result = reply_error(r, WWSF_E_TOO_MANY_REQUESTS, "refreshing too often");
                return NULL;
        }
        struct admission *a = admission_start(r, false);
        if (!a) {
                *ret_result = MHD_NO;
                return NULL;
        }
        a->session = s;
        memcpy(a->other_sessions, others, sizeof a->other_sessions);
        snprintf(a->pool, sizeof a->pool, "%s", s.pool);
        return a;
}

static void refresh_job(struct worker *w, void *userdata) {
        struct admission *a = userdata;
        if (a->session.pool[0]) {
                struct lease l;
                int q = lease_renew(w->engine, a->session.impu, a->session.holder, &l);
                if (q == -ESTALE || q == -EPERM || q == -ENOENT) {
                        /* Revoked or handed on: this session cannot keep its IMPU. */
                        session_remove(a->d->sessions, a->session.id);
                        admission_fail(a, WWSF_E_LEASE_LOST, "your IMS identity was withdrawn; log in again");
                        return;
                }
                if (q < 0) {
                        admission_fail_lease(w, a, q);
                        return;
                }
                a->lease_expires_at = l.expires_at;
        }
        a->d->metrics.tokens_refresh++;
        admission_succeed(w, a, false);
}

/* The session's admission handed to job, or the refusal. */
static enum MHD_Result session_endpoint(struct request *r, const char *what, bool throttled, job_fn job) {
        enum MHD_Result res;
        struct admission *a = session_admission(r, what, throttled, &res);
        if (!a)
                return res;
        admission_submit(a, job);
        return MHD_YES;
}

enum MHD_Result api_refresh(struct request *r, const char *url) {
        (void) url;
        return session_endpoint(r, "refresh", true, refresh_job);
}

static void logout_after_commit(struct worker *w, void *userdata, bool committed) {
        struct admission *a = userdata;
        (void) w;
        if (!committed) {
                admission_fail(a, WWSF_E_BUSY, "the lease store could not record this; try again");
                return;
        }
        session_remove(a->d->sessions, a->session.id);
        /* The browser's other sessions (other tabs) stay in the cookie. */
        session_cookie_format(a->r->set_cookie, sizeof a->r->set_cookie, a->other_sessions, NULL,
                              a->d->cfg->session_ttl);
        log_info("logout of %s, impu %s released", a->session.sub, a->session.impu);
        request_finish_json(a->r, 200, json_pack("{s:b}", "ok", 1));
        free(a);
}

static void logout_job(struct worker *w, void *userdata) {
        struct admission *a = userdata;
        if (a->session.pool[0]) {
                int q = lease_release(w->engine, a->session.impu, a->session.holder, NULL);
                if (q < 0 && q != -ESTALE && q != -EPERM && q != -ENOENT) {
                        admission_fail_lease(w, a, q);
                        return;
                }
        }
        worker_defer(w, logout_after_commit, a);
}

enum MHD_Result api_logout(struct request *r, const char *url) {
        (void) url;
        return session_endpoint(r, "logout", false, logout_job);
}
