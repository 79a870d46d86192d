/* wwsfd internals shared by its modules: the daemon state, the request
 * context, replies, jobs, sessions, throttling and logging. */
#pragma once
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/clock.h"
#include "config/daemon_config.h"
#include "lease/lease.h"
#include "tokens/tokens.h"
#include "wwsfd/hook.h"

struct wwsfd;
struct ldap_pool;

/* ---- logging ---------------------------------------------------------- */

enum log_level { LOG_ERROR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

void log_set_level(enum log_level level);
int log_level_from_string(const char *s, enum log_level *ret);
__attribute__((format(printf, 2, 3))) void log_msg(enum log_level level, const char *fmt, ...);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/* ---- jobs: blocking work off the HTTP threads --------------------------- */

struct worker;
typedef void (*job_fn)(struct worker *w, void *userdata);

struct job_queue;
/* n threads, each with its own lease store connection (SQLite connections are
 * not shared between threads). */
int job_queue_new(struct wwsfd *d, int n, struct job_queue **ret);
/* Returns false when the queue is full (the caller answers 503). */
bool job_queue_push(struct job_queue *q, job_fn fn, void *userdata);
void job_queue_free(struct job_queue *q);

/* Run after the batch the job was in committed (committed = true) or failed;
 * the place to reply when the job changed the store. */
typedef void (*after_commit_fn)(struct worker *w, void *userdata, bool committed);

#define WORKER_DEFER_MAX 64

struct deferred {
        after_commit_fn fn;
        void *userdata;
};

struct worker {
        struct wwsfd *d;
        struct store *store;
        struct lease_engine *engine;
        struct deferred deferred[WORKER_DEFER_MAX];
        size_t n_deferred;
};

/* From a job: call fn once the job's batch is committed (or has failed). */
void worker_defer(struct worker *w, after_commit_fn fn, void *userdata);

/* ---- sessions ----------------------------------------------------------- */

#define SESSION_ID_LEN 43       /* 32 random bytes, base64url */
/* One browser keeps one cookie for all its tabs; each tab has a session of
 * its own (alice in one tab, a visitor in another), so the cookie holds the
 * ids of the browser's newest sessions, joined by '.', and a tab names its
 * own by the session's tag in the X-WWSF-Request header. 8 sessions make a
 * 351-byte cookie. */
#define SESSIONS_PER_COOKIE 8
#define SESSION_COOKIE_VALUE_MAX (SESSIONS_PER_COOKIE * (SESSION_ID_LEN + 1))
#define SESSION_TAG_LEN 12      /* 72 bits of an HMAC of the id, base64url */

struct session {
        char id[SESSION_ID_LEN + 1];
        char holder[STORE_HOLDER_MAX];
        char sub[STORE_HOLDER_MAX];
        char pool[STORE_NAME_MAX];      /* "" for a user's own IMPU (no lease) */
        char impu[STORE_IDENTITY_MAX];
        char impi[STORE_IDENTITY_MAX];
        bool anon;
        int64_t expires_at;
};

struct session_table;
/* A table of at most max live sessions. */
int session_table_new(size_t max, struct session_table **ret);
void session_table_free(struct session_table *t);
/* Whether a new session would be refused now: checked before an admission
 * takes a lease, so that a full table does not cost leases and signatures
 * (session_create() still refuses in the rare race past the check). */
bool session_table_full(struct session_table *t);
/* Whether a session with this id is live. */
bool session_exists(struct session_table *t, const char *id, int64_t now);
/* Fills s->id with a fresh random id and stores a copy. */
int session_create(struct session_table *t, struct session *s);
/* Copies the live session into *ret; false if unknown or expired. */
bool session_get(struct session_table *t, const char *id, int64_t now, struct session *ret);
void session_remove(struct session_table *t, const char *id);
void session_expire(struct session_table *t, int64_t now);

/* ---- throttling ------------------------------------------------------- */

struct throttle;
int throttle_new(struct throttle **ret);
void throttle_free(struct throttle *t);
/* Token bucket per key: per_minute requests, burst as large. Returns 0 when
 * allowed, else the seconds until the next request would be (for Retry-After). */
int throttle_check(struct throttle *t, const char *key, int per_minute, uint64_t now_ms);
void throttle_expire(struct throttle *t, uint64_t now_ms);

/* ---- metrics ------------------------------------------------------------ */

#define HISTOGRAM_BUCKETS 10

struct histogram {
        _Atomic uint64_t buckets[HISTOGRAM_BUCKETS + 1];        /* last is +Inf */
        _Atomic uint64_t count;
        _Atomic uint64_t sum_us;
};

void histogram_observe(struct histogram *h, uint64_t us);
/* Upper bound of bucket i, in microseconds. */
uint64_t histogram_bound_us(int i);

struct metrics {
        _Atomic uint64_t tokens_anonymous, tokens_login, tokens_refresh;
        _Atomic uint64_t login_success, login_failure;
        _Atomic uint64_t anonymous_refused;
        _Atomic uint64_t throttled;
        _Atomic uint64_t requests, responses_4xx, responses_5xx;
        struct histogram hook_latency, ldap_latency;
};

/* ---- the daemon ---------------------------------------------------------- */

struct wwsfd {
        struct daemon_config *cfg;
        const struct wwsf_clock *clock;
        struct MHD_Daemon *mhd;
        uint16_t port;                  /* bound port */
        char *tls_cert_pem, *tls_key_pem;

        pthread_rwlock_t keyring_lock;  /* SIGHUP swaps the keyring */
        struct token_keyring *keyring;

        struct hook_pool *hook;
        struct ldap_pool *ldap;
        struct job_queue *jobs;
        struct session_table *sessions;
        struct throttle *throttle;
        struct metrics metrics;

        struct store *store;            /* main thread: import, reclaim, metrics */
        struct lease_engine *engine;
        pthread_mutex_t store_lock;

        _Atomic int in_flight;          /* requests between first call and completion */
        _Atomic bool stopping;
        int web_root_fd;
        uint8_t sub_key[32];            /* turns holders into opaque `sub` handles */
        char *page_csp;                 /* the pages' Content-Security-Policy */
};

/* ---- requests --------------------------------------------------------- */

/* Auth endpoints take a small JSON object; nothing legitimate comes near. */
#define AUTH_BODY_MAX (16 * 1024)

struct request {
        struct wwsfd *d;
        struct MHD_Connection *conn;
        const struct route *route;
        char client_addr[64];
        char *body;
        size_t body_len;
        bool body_too_large;
        bool method_not_allowed;
        const char *allow;              /* the Allow header of a 405 */
        bool suspended;
        int retry_after;                /* seconds; adds Retry-After when > 0 */
        char set_cookie[SESSION_COOKIE_VALUE_MAX + 160];     /* adds Set-Cookie when not empty */
        /* Set by a job before it resumes the connection. */
        struct MHD_Response *response;
        unsigned status;
        uint64_t started_us;
};

typedef enum MHD_Result (*route_fn)(struct request *r, const char *url);

struct route {
        const char *method;
        const char *path;       /* exact, or a prefix when it ends with '/' */
        route_fn handler;
        size_t body_max;        /* 0: no body accepted */
};

/* Replies. Each queues the response on the connection (or, from a job, stores
 * it for the resumed connection) and counts it. */
enum MHD_Result reply_json(struct request *r, unsigned status, json_t *body);   /* body consumed */
enum MHD_Result reply_error(struct request *r, unsigned status, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
/* Queues resp (consumed; NULL = out of memory) with its type, cache policy
 * and the security headers. */
enum MHD_Result reply_response(struct request *r, unsigned status, struct MHD_Response *resp, const char *type,
                               const char *cache_control);
/* Adds the headers every response carries. */
void add_security_headers(struct wwsfd *d, struct MHD_Response *resp, bool html);
/* The pages' Content-Security-Policy for the eP-CSCF at epcscf_uri (a
 * checked wss:// URI), in *ret (the caller frees it). */
int page_csp_make(const char *epcscf_uri, char **ret);

/* From a job: the reply for a suspended request, then resume it. */
void request_finish_json(struct request *r, unsigned status, json_t *body);
void request_finish_error(struct request *r, unsigned status, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
void request_finish_with(struct request *r, unsigned status, struct MHD_Response *resp);
/* Suspends the connection before handing the request to a job. */
void request_suspend(struct request *r);

const char *request_header(struct request *r, const char *name);
const char *request_cookie(struct request *r, const char *name);

/* libmicrohttpd callbacks (http.c). */
enum MHD_Result wwsfd_on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_data_size,
                                 void **con_cls);
void wwsfd_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe);
size_t wwsfd_unescape(void *cls, struct MHD_Connection *conn, char *s);

/* Handlers (api_*.c). */
enum MHD_Result api_anonymous(struct request *r, const char *url);
enum MHD_Result api_login(struct request *r, const char *url);
enum MHD_Result api_refresh(struct request *r, const char *url);
enum MHD_Result api_logout(struct request *r, const char *url);
enum MHD_Result api_jwks(struct request *r, const char *url);
enum MHD_Result api_healthz(struct request *r, const char *url);
enum MHD_Result api_metrics(struct request *r, const char *url);
enum MHD_Result api_static(struct request *r, const char *url);

/* ---- lifecycle (daemon.c) ------------------------------------------------ */

int wwsfd_start(struct daemon_config *cfg, const struct wwsf_clock *clock, struct wwsfd **ret);
/* Reloads the keyring and the pool configuration (SIGHUP). */
int wwsfd_reload(struct wwsfd *d);
/* Periodic work: reclaim, session and throttle expiry, keyring refresh. */
void wwsfd_tick(struct wwsfd *d);
/* Moves the lease store's journal into the database (about once a second;
 * the store connections do no automatic checkpoints). */
void wwsfd_checkpoint(struct wwsfd *d);
/* Stops accepting, lets requests in flight finish (up to the grace), stops. */
void wwsfd_stop(struct wwsfd *d);

uint64_t wwsfd_now_ms(void);

/* The opaque `sub` of a holder: HMAC-SHA256 under a key kept in keys_dir
 * (sub.key), so the same user gets the same handle across restarts and
 * nobody can turn it back into a username. */
void wwsfd_sub_for(const struct wwsfd *d, const char *holder, char *buf, size_t size);
/* The tag of session id (SESSION_TAG_LEN characters and a NUL into buf):
 * what a tab sends to name its session among those of the cookie, without
 * the page ever holding the id itself (the cookie is HttpOnly). */
void wwsfd_session_tag(const struct wwsfd *d, const char *id, char buf[SESSION_TAG_LEN + 1]);
