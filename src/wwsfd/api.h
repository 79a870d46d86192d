/* What the admission handlers (api_auth.c, api_login.c) share. */
#pragma once
#include "wwsfd/wwsfd.h"

/* The state of one admission while it moves between threads. */
struct admission {
        struct request *r;
        char pool[STORE_NAME_MAX];      /* to lease from; "" for the user's own identity */
        struct session session;         /* filled as we go */
        uint64_t hook_started_us;
        int64_t lease_expires_at;       /* 0 without a lease */
        bool new_session;
        /* The other sessions of the browser's cookie (ids joined by '.'),
         * read on the HTTP thread: kept in the cookie an admission or a
         * logout sets. */
        char other_sessions[SESSION_COOKIE_VALUE_MAX];
};

/* Reads the browser's session cookie into a->other_sessions (for an
 * admission: every live session in it). */
void admission_take_cookie(struct admission *a);

/* The body as a JSON object (json_loadb flags), or NULL with a reply queued. */
json_t *admission_parse_body(struct request *r, size_t flags, enum MHD_Result *ret_result);
/* Whether key is over per_minute for kind; sets Retry-After when it is. */
bool admission_throttled(struct request *r, const char *kind, const char *key, int per_minute);

/* The session table is full ([session] max_sessions): 503 before anything is
 * leased or signed. Sessions expire, so the client may retry in a minute. */
#define TOO_MANY_SESSIONS_RETRY 60
#define TOO_MANY_SESSIONS_DETAIL "the server has too many sessions open; try again later"
enum MHD_Result reply_too_many_sessions(struct request *r);
/* From a worker: sign a token for a->session and answer 200 with it. */
void admission_finish_with_token(struct worker *w, struct admission *a, int64_t lease_expires_at, bool new_session);
/* After the job's batch: the token if the lease is durable, else 503; frees a.
 * Jobs that leased hand it to worker_defer(). */
void admission_after_commit(struct worker *w, void *userdata, bool committed);
/* From a worker: leases from a->pool for a->session.holder and fills the
 * session's identities and a->lease_expires_at. On failure answers, frees a
 * and returns false. */
bool admission_lease(struct worker *w, struct admission *a);
/* From a worker: the answer to a failed lease operation. */
void admission_lease_error(struct worker *w, struct admission *a, int q);
