/* POST /api/v1/anonymous: the eligibility hook decides on the visitor's
 * evidence (on its own thread), then a worker leases from an anonymous pool
 * and signs a token. */
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lease/lease.h"
#include "wwsfd/admission.h"
#include "wwsfd/api/api.h"
#include "wwsfd/daemon.h"
#include "wwsfd/hook.h"
#include "wwsfd/log.h"

static void anonymous_lease_job(struct worker *w, void *userdata) {
        struct admission *a = userdata;
        if (!admission_lease(w, a))
                return;
        a->d->metrics.tokens_anonymous++;
        admission_succeed(w, a, true);
}

static void on_hook_answer(void *userdata, enum hook_status status, const struct hook_verdict *v) {
        struct admission *a = userdata;
        struct wwsfd *d = a->d;
        histogram_observe(&d->metrics.hook_latency, wwsf_monotonic_us() - a->hook_started_us);
        if (status != HOOK_OK) {
                log_warning("eligibility hook: %s", status == HOOK_TIMEOUT ? "no answer in time"
                                                    : status == HOOK_BAD_ANSWER ? "a malformed answer"
                                                                                : "unavailable");
                admission_fail(a, WWSF_E_HOOK_UNAVAILABLE, "admission is not available right now");
                return;
        }
        if (!v->eligible) {
                d->metrics.anonymous_refused++;
                admission_fail(a, WWSF_E_NOT_ELIGIBLE, "%s", v->reason[0] ? v->reason : "not eligible");
                return;
        }
        /* The hook may only pick anonymous pools (the lease checks). */
        if (v->pool[0])
                snprintf(a->pool, sizeof a->pool, "%s", v->pool);
        admission_submit(a, anonymous_lease_job);
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

enum MHD_Result api_anonymous(struct request *r, const char *url) {
        struct wwsfd *d = r->d;
        (void) url;
        const struct admission_gate gate = {
                .offered = d->hook != NULL,
                .not_offered = "anonymous admission is not offered here",
                .throttle_kind = "anonymous-ip",
                .per_ip_per_minute = d->cfg->anonymous_per_ip_per_minute,
                .throttled = "too many attempts from your address; wait a little",
        };
        enum MHD_Result res;
        json_t *body = admission_gate_pass(r, &gate, &res);
        if (!body)
                return res;
        json_t *evidence = json_object_get(body, "evidence");
        if (!json_is_object(evidence)) {
                json_decref(body);
                return reply_error(r, WWSF_E_BAD_REQUEST, "'evidence' must be a JSON object");
        }
        char holder[STORE_HOLDER_MAX];
        if (random_handle("anon-", holder, sizeof holder) < 0) {
                json_decref(body);
                return reply_error(r, WWSF_E_INTERNAL_ERROR, "no random numbers");
        }
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
        struct admission *a = admission_start(r, true);
        if (!a) {
                json_decref(body);
                return MHD_NO;
        }
        snprintf(a->pool, sizeof a->pool, "%s", d->cfg->anonymous_pool);
        a->anonymous = true;
        a->session.anon = true;
        snprintf(a->session.holder, sizeof a->session.holder, "%s", holder);
        snprintf(a->session.sub, sizeof a->session.sub, "%s", holder);
        a->hook_started_us = wwsf_monotonic_us();
        hook_pool_ask(d->hook, r->client_addr, agent, evidence, on_hook_answer, a);
        json_decref(body);
        return MHD_YES;
}
