/* The admission core: what anonymous admission, login, refresh and logout
 * share once a request is suspended. An admission moves between threads
 * (HTTP, hook or LDAP, worker) and ends exactly once: with a token
 * (admission_after_commit) or a refusal (admission_fail), which both answer
 * the request and free the admission. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "wwsfd/errors.h"
#include "wwsfd/http.h"
#include "wwsfd/jobs.h"
#include "wwsfd/sessions.h"

struct admission {
        struct request *r;
        struct wwsfd *d;
        char pool[STORE_NAME_MAX];      /* to lease from; "" for the user's own identity */
        bool anonymous;                 /* lease only from an anonymous pool */
        struct session session;         /* filled as we go */
        uint64_t hook_started_us;
        int64_t lease_expires_at;       /* 0 without a lease */
        bool new_session;
        /* The other sessions of the browser's cookie (ids joined by '.'),
         * kept in the cookie an admission or a logout sets. */
        char other_sessions[SESSION_COOKIE_VALUE_MAX];
};

/* The session table is full ([session] max_sessions): answered before
 * anything is leased or signed. */
#define TOO_MANY_SESSIONS_DETAIL "the server has too many sessions open; try again later"

/* Whether key is over per_minute for kind; sets Retry-After and counts it
 * when it is (the caller answers WWSF_E_TOO_MANY_REQUESTS). */
bool admission_throttled(struct request *r, const char *kind, const char *key, int per_minute);

/* What a new admission (anonymous, login) passes on the HTTP thread, in
 * order: the kind is offered here (else 404 with not_offered as detail), the
 * client address is under per_ip_per_minute (else 429 with throttled), the
 * session table has room, the body is a JSON object (json_loadb flags). */
struct admission_gate {
        bool offered;
        const char *not_offered;
        const char *throttle_kind;
        int per_ip_per_minute;
        const char *throttled;
        size_t json_flags;
};
/* The body past the gate, or NULL with the refusal queued in *ret_result. */
json_t *admission_gate_pass(struct request *r, const struct admission_gate *g, enum MHD_Result *ret_result);

/* A new admission for r, suspending r; NULL when out of memory (then r is
 * not suspended and the caller returns MHD_NO). With cookie_others, the
 * browser's other live sessions are read for the cookie a new session sets. */
struct admission *admission_start(struct request *r, bool cookie_others);

/* Answers e (the registry's status and Retry-After, unless the request set
 * its own) with the detail, and frees a. */
void admission_fail(struct admission *a, enum wwsf_error e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Hands a to a worker; fails it with WWSF_E_OVERLOADED when the queue is full. */
void admission_submit(struct admission *a, job_fn fn);

/* From a worker: leases from a->pool for a->session.holder and fills the
 * session's identities and a->lease_expires_at. On failure the admission is
 * failed (and freed) and false returned. */
bool admission_lease(struct worker *w, struct admission *a);
/* From a worker: fails a with the answer to a lease operation's error q. */
void admission_fail_lease(struct worker *w, struct admission *a, int q);
/* From a worker, last step of a job that succeeded: the reply waits for the
 * batch's commit (a token when it is durable, 503 busy when not). */
void admission_succeed(struct worker *w, struct admission *a, bool new_session);
