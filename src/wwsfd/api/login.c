/* POST /api/v1/login: a password login against LDAP, then the user's own IMS
 * identity (scenario 2) or a lease from the pool of the user's group
 * (scenario 3), and a token. */
#include <ctype.h>
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "wwsfd/admission.h"
#include "wwsfd/api/api.h"
#include "wwsfd/daemon.h"
#include "wwsfd/ldap_auth.h"

/* The same answer for an unknown user, a wrong password, an empty one or a
 * username that cannot be one: nothing tells them apart. */
#define INVALID_DETAIL "wrong username or password"

/* The pool a user without an IMPU of their own leases from. */
static const char *pool_for(const struct daemon_config *cfg, const struct ldap_user *u) {
        for (size_t i = 0; i < cfg->n_group_pools; i++)
                for (int g = 0; g < u->n_groups; g++)
                        if (strcasecmp(cfg->group_pools[i].group_dn, u->groups[g]) == 0)
                                return cfg->group_pools[i].pool;
        return cfg->ldap_pool;
}

static void login_job(struct worker *w, void *userdata) {
        struct admission *a = userdata;
        /* No pool: the user's own identity, nothing to lease. */
        if (a->pool[0] && !admission_lease(w, a))
                return;
        a->d->metrics.tokens_login++;
        admission_succeed(w, a, true);
}

static void on_ldap_answer(void *userdata, enum ldap_login_status status, const struct ldap_user *u,
                           unsigned long elapsed_us) {
        struct admission *a = userdata;
        struct wwsfd *d = a->d;
        histogram_observe(&d->metrics.ldap_latency, elapsed_us);
        switch (status) {
        case LDAP_LOGIN_OK:
                break;
        case LDAP_LOGIN_INVALID:
                d->metrics.login_failure++;
                admission_fail(a, WWSF_E_INVALID_CREDENTIALS, INVALID_DETAIL);
                return;
        case LDAP_LOGIN_BUSY:
                admission_fail(a, WWSF_E_OVERLOADED, "too many logins at once; try again");
                return;
        default:
                admission_fail(a, WWSF_E_LDAP_UNAVAILABLE, "logins are not available right now");
                return;
        }
        d->metrics.login_success++;
        struct session *s = &a->session;
        /* LDAP matched the username without regard to case or spacing, so
         * the entry's DN, not the typed name, says who this is. */
        char dn[sizeof u->dn];
        size_t n = 0;
        for (; u->dn[n] && n + 1 < sizeof dn; n++)
                dn[n] = (char) tolower((unsigned char) u->dn[n]);
        dn[n] = '\0';
        if (n + 5 < sizeof s->holder)
                snprintf(s->holder, sizeof s->holder, "user:%.250s", dn);
        else {
                /* A DN too long to be a holder: its digest stands for it. */
                uint8_t digest[32];
                gnutls_hash_fast(GNUTLS_DIG_SHA256, dn, n, digest);
                int k = snprintf(s->holder, sizeof s->holder, "user:sha256:");
                for (int i = 0; i < 32; i++)
                        k += snprintf(s->holder + k, sizeof s->holder - (size_t) k, "%02x", digest[i]);
        }
        session_sub_for(d->sessions, s->holder, s->sub, sizeof s->sub);
        s->anon = false;
        if (u->impu[0] && u->impi[0]) {
                /* Scenario 2: the user's own identities, no lease. */
                snprintf(s->impu, sizeof s->impu, "%s", u->impu);
                snprintf(s->impi, sizeof s->impi, "%s", u->impi);
                a->pool[0] = '\0';
        } else {
                const char *pool = pool_for(d->cfg, u);
                if (!pool) {
                        admission_fail(a, WWSF_E_NO_IDENTITY, "your account has no IMS identity here");
                        return;
                }
                snprintf(a->pool, sizeof a->pool, "%s", pool);
        }
        admission_submit(a, login_job);
}

enum MHD_Result api_login(struct request *r, const char *url) {
        struct wwsfd *d = r->d;
        (void) url;
        const struct admission_gate gate = {
                .offered = d->ldap != NULL,
                .not_offered = "password login is not offered here",
                .throttle_kind = "login-ip",
                .per_ip_per_minute = d->cfg->login_per_ip_per_minute,
                .throttled = "too many login attempts from your address",
                /* NUL is allowed in, so that a username carrying one is
                 * refused like any wrong login instead of being cut short. */
                .json_flags = JSON_ALLOW_NUL,
        };
        enum MHD_Result res;
        json_t *body = admission_gate_pass(r, &gate, &res);
        if (!body)
                return res;
        json_t *ju = json_object_get(body, "username"), *jp = json_object_get(body, "password");
        if (!json_is_string(ju) || !json_is_string(jp)) {
                json_decref(body);
                return reply_error(r, WWSF_E_BAD_REQUEST, "send {\"username\": \"...\", \"password\": \"...\"}");
        }
        const char *username = json_string_value(ju), *password = json_string_value(jp);
        bool has_nul = strlen(username) != json_string_length(ju) || strlen(password) != json_string_length(jp);
        /* The per-account limit counts "Alice" and " alice " as one. */
        char account[256];
        size_t k = 0;
        for (const char *p = username; *p && k + 1 < sizeof account; p++)
                if (*p != ' ')
                        account[k++] = (char) tolower((unsigned char) *p);
        account[k] = '\0';
        if (admission_throttled(r, "login-user", account, d->cfg->login_per_user_per_minute)) {
                json_decref(body);
                return reply_error(r, WWSF_E_TOO_MANY_REQUESTS, "too many login attempts for this account");
        }
        /* Usernames are printable ASCII. LDAP's caseIgnoreMatch folds far
         * more than ASCII case (full-width letters, a dotted capital I,
         * no-break spaces), so a name outside ASCII could be another
         * spelling of an account and slip past that account's limit above:
         * it is refused like any failed login, without asking LDAP. */
        bool ascii = true;
        for (const unsigned char *p = (const unsigned char *) username; *p; p++)
                if (*p < 0x20 || *p >= 0x7f)
                        ascii = false;
        if (has_nul || !ascii) {
                d->metrics.login_failure++;
                json_decref(body);
                return reply_error(r, WWSF_E_INVALID_CREDENTIALS, INVALID_DETAIL);
        }
        struct admission *a = admission_start(r, true);
        if (!a) {
                json_decref(body);
                return MHD_NO;
        }
        ldap_pool_login(d->ldap, username, password, on_ldap_answer, a);
        /* The body held the password: wipe it before it goes back to the heap. */
        explicit_bzero((char *) password, json_string_length(jp));
        json_decref(body);
        explicit_bzero(r->body, r->body_len);
        return MHD_YES;
}
