/* The LDAP login pool of ldap_auth.h.
 *
 * Threads: ldap_pool_login() runs on the caller's thread (an HTTP thread),
 * checks what can be refused without LDAP and queues the login; `connections`
 * worker threads each own their LDAP handles (libldap handles are not shared
 * between threads) and take logins from the queue. Shared under `lock`: the
 * queue, the stop flag and the log rate limit. Everything in struct
 * ldap_worker belongs to its thread.
 *
 * Time bounds. One attempt (a login on one server: connect, StartTLS, the
 * service bind, the search, the user's bind) gets `timeout` in all: each
 * call is given what is left of it (LDAP_OPT_NETWORK_TIMEOUT for connect and
 * TLS handshakes, LDAP_OPT_TIMEOUT for the answers of the synchronous calls,
 * the search's own timeval; the TCP connect is asynchronous and waited for
 * with poll(), because libldap 2.5 bounds a TLS handshake only in that mode),
 * so a server that accepts connections but never answers (stopped,
 * overloaded) costs one timeout, then the next URI is tried. A login tries each URI once, plus one fresh connection when its
 * pooled connection turns out to have been closed meanwhile: at most
 * (URIs + 1) x timeout, about one timeout when one server hangs. A login that
 * waited longer than `timeout` in the queue (every worker stuck on a hung
 * server) is answered UNAVAILABLE without a try: its client has already waited
 * as long as one server may take.
 *
 * Connections: a worker connects on its first login, to the first URI that
 * works, and keeps two connections to it: one bound as the service account
 * for the searches, one for the users' binds (so a login costs the server a
 * search and a bind, not a third operation to rebind as the service). A
 * connection that breaks (LDAP_SERVER_DOWN, LDAP_TIMEOUT, LDAP_CONNECT_ERROR, or the
 * server answering busy/unavailable) is dropped, and the next connection
 * starts again from the first URI, so a worker comes back to the preferred
 * server after a failover as soon as its connection to the other one breaks.
 *
 * Passwords: the caller's password is copied once, into the queued login; the
 * copy is wiped with explicit_bzero() when the login is answered. The service
 * password is read once and wiped when the pool is freed. Neither is logged.
 * (libldap's own encoding buffers are beyond our reach.) */
#include "wwsfd/ldap_auth.h"

#include <errno.h>
#include <fcntl.h>
#include <ldap.h>
#include <pthread.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "wwsfd/log.h"

/* Logins waiting for a worker. Each holds a password copy and a client waiting
 * on a suspended connection; past this many the LDAP servers are far behind
 * (256 logins at a few ms each is already a second of work for one
 * connection), and BUSY with Retry-After serves the client better. */
#define LOGIN_QUEUE_MAX 256

/* Usernames are at most 255 bytes (struct ldap_user.uid), escaped at most
 * three bytes each in the filter. */
#define USERNAME_MAX 255

/* The service password file holds one line; a password longer than this is
 * a wrong file, not a password. */
#define SERVICE_PASSWORD_MAX 4096

/* At most this many warnings per minute from the login path (a client can
 * cause some of them at will: "several entries" for a duplicated username,
 * one per login while a server is down); the rest are counted and the count
 * is logged when the minute is over. */
#define LOG_BURST 10
#define LOG_WINDOW_MS 60000

struct login {
        char username[USERNAME_MAX + 1];
        char *password;                 /* wiped and freed by login_answer() */
        size_t password_len;
        ldap_done_fn done;
        void *userdata;
        int64_t queued_us;              /* monotonic */
};

struct ldap_pool;

struct ldap_worker {
        struct ldap_pool *pool;
        pthread_t thread;
        LDAP *ld;                       /* searches, as the service account; NULL: not connected */
        LDAP *user_ld;                  /* users' binds only; NULL: not connected */
        int uri_index;                  /* which URI both are connected to */
        bool reused;                    /* ld served an earlier login */
        bool bound_as_service;          /* (or anonymous without bind_dn) */
        int64_t deadline_us;            /* end of the current attempt */
        int last_error;                 /* the LDAP result code that ended the last call */
        struct ldap_user user;          /* the answer being built */
};

struct ldap_pool {
        /* Copied from the configuration, so that a reload cannot pull them
         * away from under the workers. */
        char *uris[DAEMON_MAX_LDAP_URIS];
        int n_uris;
        bool starttls;
        char *ca_file, *bind_dn, *base_dn;
        char *user_attribute, *impu_attribute, *impi_attribute, *group_attribute;
        int64_t timeout_us;
        struct berval service_password; /* empty without bind_dn */

        int n_workers, n_started;
        struct ldap_worker *workers;

        pthread_mutex_t lock;
        pthread_cond_t cond;
        /* Under lock. */
        struct login *queue[LOGIN_QUEUE_MAX];
        size_t head, count;
        bool stopping;
        int64_t log_window_start;
        int log_count, log_suppressed;
};

/* Whether a warning caused by a login may be logged now (LOG_BURST per
 * LOG_WINDOW_MS); reports what was suppressed in the window before. */
static bool log_allowed(struct ldap_pool *p) {
        int64_t now = (int64_t) wwsf_monotonic_us() / 1000;
        int suppressed = 0;
        bool ok;
        pthread_mutex_lock(&p->lock);
        if (now - p->log_window_start >= LOG_WINDOW_MS) {
                suppressed = p->log_suppressed;
                p->log_window_start = now;
                p->log_count = 0;
                p->log_suppressed = 0;
        }
        ok = p->log_count < LOG_BURST;
        if (ok)
                p->log_count++;
        else
                p->log_suppressed++;
        pthread_mutex_unlock(&p->lock);
        if (suppressed)
                log_warning("ldap: %d similar messages suppressed in the last minute", suppressed);
        return ok;
}

#define log_limited(p, ...)                                                                       \
        do {                                                                                      \
                if (log_allowed(p))                                                               \
                        log_warning(__VA_ARGS__);                                                 \
        } while (0)

/* ---- filter escaping ---------------------------------------------------- */

int ldap_filter_escape(const char *in, char *out, int outsize) {
        static const char hex[] = "0123456789abcdef";
        int n = 0;
        if (!in || !out || outsize < 1)
                return -1;
        for (const unsigned char *s = (const unsigned char *) in; *s; s++) {
                bool escape = *s == '*' || *s == '(' || *s == ')' || *s == '\\' || *s < 0x20 || *s >= 0x80;
                int need = escape ? 3 : 1;
                if (n + need >= outsize) {
                        out[0] = '\0';         /* never half a value */
                        return -1;
                }
                if (escape) {
                        out[n++] = '\\';
                        out[n++] = hex[*s >> 4];
                        out[n++] = hex[*s & 0xf];
                } else
                        out[n++] = (char) *s;
        }
        out[n] = '\0';
        return n;
}

/* ---- answers ------------------------------------------------------------ */

static void login_answer(struct login *l, enum ldap_login_status status, const struct ldap_user *user) {
        int64_t elapsed = (int64_t) wwsf_monotonic_us() - l->queued_us;
        l->done(l->userdata, status, status == LDAP_LOGIN_OK ? user : NULL,
                elapsed > 0 ? (unsigned long) elapsed : 0);
        if (l->password) {
                explicit_bzero(l->password, l->password_len);
                free(l->password);
        }
        free(l);
}

/* ---- connections -------------------------------------------------------- */

static bool is_connection_error(int rc) {
        /* The connection is gone or hangs (the first three), or the server
         * says it cannot serve now: in every case another server may. */
        return rc == LDAP_SERVER_DOWN || rc == LDAP_TIMEOUT || rc == LDAP_CONNECT_ERROR || rc == LDAP_BUSY ||
               rc == LDAP_UNAVAILABLE;
}

static void drop_connection(struct ldap_worker *w) {
        /* Sends an unbind (a few bytes into an empty socket buffer: does not
         * block) and closes. */
        if (w->user_ld)
                ldap_unbind_ext_s(w->user_ld, NULL, NULL);
        w->user_ld = NULL;
        if (!w->ld)
                return;
        ldap_unbind_ext_s(w->ld, NULL, NULL);
        w->ld = NULL;
        w->bound_as_service = false;
        w->reused = false;
}

/* Gives the next call on ld (one of the worker's) what is left of the
 * attempt. Returns false (and sets last_error to LDAP_TIMEOUT) if nothing is
 * left. */
static bool arm_timeouts(struct ldap_worker *w, LDAP *ld, struct timeval *tv) {
        int64_t left = w->deadline_us - (int64_t) wwsf_monotonic_us();
        if (left <= 0) {
                w->last_error = LDAP_TIMEOUT;
                return false;
        }
        if (left < 1000)
                left = 1000;    /* a zero timeval means "poll" to libldap */
        tv->tv_sec = (time_t) (left / 1000000);
        tv->tv_usec = (suseconds_t) (left % 1000000);
        ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, tv);
        ldap_set_option(ld, LDAP_OPT_TIMEOUT, tv);
        return true;
}

/* The server's diagnostic message, or "" (owned by the caller, ldap_memfree). */
static char *diagnostic(LDAP *ld) {
        char *msg = NULL;
        if (ld)
                ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &msg);
        return msg;
}

static void log_ldap_error_on(struct ldap_worker *w, LDAP *ld, const char *what, int rc) {
        struct ldap_pool *p = w->pool;
        if (!log_allowed(p))
                return;
        char *diag = diagnostic(ld);
        log_warning("ldap: %s: %s: %s%s%s", p->uris[w->uri_index], what, ldap_err2string(rc),
                    diag && *diag ? ": " : "", diag && *diag ? diag : "");
        ldap_memfree(diag);
}

static void log_ldap_error(struct ldap_worker *w, const char *what, int rc) {
        log_ldap_error_on(w, w->ld, what, rc);
}

/* Binds w->ld as the service account, or anonymously without bind_dn (which
 * also ends a user's authentication on the connection). */
static int bind_service(struct ldap_worker *w) {
        struct ldap_pool *p = w->pool;
        struct timeval tv;
        struct berval empty = { 0, NULL };
        if (!arm_timeouts(w, w->ld, &tv))
                return w->last_error;
        int rc = ldap_sasl_bind_s(w->ld, p->bind_dn ? p->bind_dn : "", LDAP_SASL_SIMPLE,
                                  p->bind_dn ? &p->service_password : &empty, NULL, NULL, NULL);
        w->last_error = rc;
        w->bound_as_service = rc == LDAP_SUCCESS;
        return rc;
}

/* Waits (what is left of the attempt) for the asynchronous TCP connect of
 * ld to complete. Returns an LDAP result code. */
static int wait_connected(struct ldap_worker *w, LDAP *ld) {
        int fd = -1, err = 0;
        socklen_t len = sizeof err;
        if (ldap_get_option(ld, LDAP_OPT_DESC, &fd) != LDAP_OPT_SUCCESS || fd < 0)
                return LDAP_CONNECT_ERROR;
        for (;;) {
                int64_t left = w->deadline_us - (int64_t) wwsf_monotonic_us();
                if (left <= 0)
                        return LDAP_TIMEOUT;
                struct pollfd pfd = { .fd = fd, .events = POLLOUT };
                int r = poll(&pfd, 1, (int) ((left + 999) / 1000));
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return LDAP_CONNECT_ERROR;
                if (r == 0)
                        return LDAP_TIMEOUT;
                break;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0)
                return LDAP_CONNECT_ERROR;
        return LDAP_SUCCESS;
}

/* Opens a connection to URI i into *ldp, with StartTLS when configured, not
 * bound. Returns an LDAP result code; on failure *ldp is NULL. */
static int open_handle(struct ldap_worker *w, int i, LDAP **ldp) {
        struct ldap_pool *p = w->pool;
        const char *uri = p->uris[i];
        bool ldaps = strncmp(uri, "ldaps://", 8) == 0;
        struct timeval tv;
        LDAP *ld = NULL;
        int rc;

        rc = ldap_initialize(&ld, uri);
        if (rc != LDAP_SUCCESS) {
                log_ldap_error_on(w, NULL, "bad URI", rc);
                return w->last_error = rc;
        }
        int version = LDAP_VERSION3;
        ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version);
        /* Referrals would take the user's password to a server not in the
         * configuration. */
        ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
        ldap_set_option(ld, LDAP_OPT_RESTART, LDAP_OPT_ON);
        if (ldaps || p->starttls) {
                int demand = LDAP_OPT_X_TLS_DEMAND, server = 0;
                if (p->ca_file && (rc = ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, p->ca_file)) != LDAP_OPT_SUCCESS)
                        goto setup_failed;
                if ((rc = ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand)) != LDAP_OPT_SUCCESS)
                        goto setup_failed;
                /* A TLS context of this handle's own, from the options above. */
                if ((rc = ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &server)) != LDAP_OPT_SUCCESS)
                        goto setup_failed;
        }

        /* Asynchronous connect: libldap 2.5 bounds a TLS handshake (ldaps://,
         * StartTLS) by NETWORK_TIMEOUT only in this mode; otherwise it spins
         * on its non-blocking socket for as long as the server does not
         * answer. The price is waiting for the TCP connect here. */
        ldap_set_option(ld, LDAP_OPT_CONNECT_ASYNC, LDAP_OPT_ON);

        if (!arm_timeouts(w, ld, &tv))
                goto failed;
        /* TCP (and the TLS handshake for ldaps:// when the connect completes
         * at once), then the connect's outcome. */
        if ((rc = ldap_connect(ld)) != LDAP_SUCCESS || (rc = wait_connected(w, ld)) != LDAP_SUCCESS) {
                w->last_error = rc;
                log_ldap_error_on(w, ld, "connect", rc);
                goto failed;
        }
        if (p->starttls && !ldaps) {
                if (!arm_timeouts(w, ld, &tv))
                        goto failed;
                if ((rc = ldap_start_tls_s(ld, NULL, NULL)) != LDAP_SUCCESS) {
                        w->last_error = rc;
                        log_ldap_error_on(w, ld, "StartTLS", rc);
                        goto failed;
                }
        }
        *ldp = ld;
        return LDAP_SUCCESS;

setup_failed:
        /* An option libldap refuses (a ca_file it cannot load, say): no URI
         * can work, but the next ones are tried all the same. */
        w->last_error = LDAP_LOCAL_ERROR;
        if (log_allowed(p))
                log_warning("ldap: %s: libldap refuses the TLS options (ca_file %s)", uri,
                            p->ca_file ? p->ca_file : "not set");
failed:
        ldap_unbind_ext_s(ld, NULL, NULL);
        return w->last_error;
}

/* Opens the worker's search connection to URI i, bound as the service
 * account (the users' bind connection is opened at the first bind). Returns
 * an LDAP result code; on failure w->ld is NULL. */
static int connect_uri(struct ldap_worker *w, int i) {
        struct ldap_pool *p = w->pool;
        int rc;

        w->uri_index = i;
        w->reused = false;
        w->bound_as_service = false;
        if ((rc = open_handle(w, i, &w->ld)) != LDAP_SUCCESS)
                return rc;
        if (p->bind_dn) {
                if ((rc = bind_service(w)) != LDAP_SUCCESS) {
                        log_ldap_error(w, "bind as the service account", rc);
                        drop_connection(w);
                        return rc;
                }
        } else
                w->bound_as_service = true;     /* LDAPv3: anonymous until a bind */
        log_debug("ldap: connected to %s", p->uris[i]);
        return LDAP_SUCCESS;
}

/* ---- one login on one connection ---------------------------------------- */

/* The outcome of a login attempt on the worker's current connection. */
enum attempt {
        ATTEMPT_ANSWERED,       /* *status is the answer */
        ATTEMPT_BROKEN,         /* the connection failed: try another */
};

/* Copies the first value of attr into dst[size]; "" if absent, or if it does
 * not fit or holds a NUL (cutting or mangling an identity would name
 * another one). */
static void first_value(struct ldap_worker *w, LDAPMessage *entry, const char *attr, char *dst, size_t size) {
        dst[0] = '\0';
        struct berval **vals = ldap_get_values_len(w->ld, entry, attr);
        if (!vals)
                return;
        if (vals[0]) {
                if (vals[0]->bv_len < size && !memchr(vals[0]->bv_val, '\0', vals[0]->bv_len)) {
                        memcpy(dst, vals[0]->bv_val, vals[0]->bv_len);
                        dst[vals[0]->bv_len] = '\0';
                } else
                        log_limited(w->pool, "ldap: %s of %s is longer than %zu bytes or holds a NUL: ignored",
                                    attr, w->user.dn, size - 1);
        }
        ldap_value_free_len(vals);
}

static void read_groups(struct ldap_worker *w, LDAPMessage *entry) {
        struct ldap_user *u = &w->user;
        const char *attr = w->pool->group_attribute;
        struct berval **vals = ldap_get_values_len(w->ld, entry, attr);
        u->n_groups = 0;
        if (!vals)
                return;
        for (size_t i = 0; vals[i]; i++) {
                struct berval *v = vals[i];
                if (u->n_groups == LDAP_LOGIN_MAX_GROUPS) {
                        log_limited(w->pool, "ldap: %s has more than %d %s values: the first %d are used", u->dn,
                                    LDAP_LOGIN_MAX_GROUPS, attr, LDAP_LOGIN_MAX_GROUPS);
                        break;
                }
                /* A group cut short could name another group: skip it. */
                if (v->bv_len >= sizeof u->groups[0] || memchr(v->bv_val, '\0', v->bv_len)) {
                        log_limited(w->pool, "ldap: a %s value of %s is longer than %zu bytes: ignored", attr, u->dn,
                                    sizeof u->groups[0] - 1);
                        continue;
                }
                memcpy(u->groups[u->n_groups], v->bv_val, v->bv_len);
                u->groups[u->n_groups][v->bv_len] = '\0';
                u->n_groups++;
        }
        ldap_value_free_len(vals);
}

/* Search, then the user's bind. The connection is bound as the service
 * account on entry. */
static enum attempt attempt_login(struct ldap_worker *w, struct login *l, enum ldap_login_status *status) {
        struct ldap_pool *p = w->pool;
        struct ldap_user *u = &w->user;
        char escaped[USERNAME_MAX * 3 + 1];
        char *filter = NULL;
        char *attrs[] = { p->impu_attribute, p->impi_attribute, p->group_attribute, NULL };
        LDAPMessage *res = NULL;
        struct timeval tv;
        enum attempt outcome = ATTEMPT_ANSWERED;
        int rc;

        *status = LDAP_LOGIN_UNAVAILABLE;
        if (ldap_filter_escape(l->username, escaped, sizeof escaped) < 0 ||
            asprintf(&filter, "(%s=%s)", p->user_attribute, escaped) < 0) {
                filter = NULL;
                log_error("ldap: out of memory");
                goto out;
        }

        if (!arm_timeouts(w, w->ld, &tv)) {
                outcome = ATTEMPT_BROKEN;
                goto out;
        }
        /* Size limit 2: one entry is the answer, a second one is enough to
         * refuse. */
        rc = ldap_search_ext_s(w->ld, p->base_dn, LDAP_SCOPE_SUBTREE, filter, attrs, 0, NULL, NULL, &tv, 2, &res);
        w->last_error = rc;
        if (is_connection_error(rc)) {
                log_ldap_error(w, "search", rc);
                outcome = ATTEMPT_BROKEN;
                goto out;
        }
        int entries = res ? ldap_count_entries(w->ld, res) : 0;
        if (rc == LDAP_SIZELIMIT_EXCEEDED || (rc == LDAP_SUCCESS && entries > 1)) {
                log_limited(p, "ldap: several entries under %s match %s: login refused", p->base_dn, filter);
                *status = LDAP_LOGIN_INVALID;
                goto out;
        }
        if (rc == LDAP_NO_SUCH_OBJECT) {
                log_limited(p, "ldap: %s: base_dn %s does not exist or the service account cannot see it",
                            p->uris[w->uri_index], p->base_dn);
                goto out;
        }
        if (rc != LDAP_SUCCESS) {
                log_ldap_error(w, "search", rc);
                goto out;
        }
        if (entries == 0) {
                *status = LDAP_LOGIN_INVALID;
                goto out;
        }

        LDAPMessage *entry = ldap_first_entry(w->ld, res);
        char *dn = entry ? ldap_get_dn(w->ld, entry) : NULL;
        if (!dn) {
                log_ldap_error(w, "reading the entry's DN", LDAP_DECODING_ERROR);
                goto out;
        }
        size_t dn_len = strlen(dn);
        if (dn_len >= sizeof u->dn) {
                log_limited(p, "ldap: the DN of user %s is longer than %zu bytes: login refused", escaped,
                            sizeof u->dn - 1);
                ldap_memfree(dn);
                *status = LDAP_LOGIN_INVALID;
                goto out;
        }
        memset(u, 0, sizeof *u);
        memcpy(u->uid, l->username, strlen(l->username) + 1);
        memcpy(u->dn, dn, dn_len + 1);
        ldap_memfree(dn);
        first_value(w, entry, p->impu_attribute, u->impu, sizeof u->impu);
        first_value(w, entry, p->impi_attribute, u->impi, sizeof u->impi);
        read_groups(w, entry);
        ldap_msgfree(res);
        res = NULL;

        /* The user's bind, on the connection kept for them: the search
         * connection stays bound as the service account, which spares the
         * server a rebind per login (a third of its work for a login). The
         * bind connection is left bound as the last user, or anonymous after
         * a failure, and is used for nothing but the next bind. */
        struct berval cred = { l->password_len, l->password };
        if (!w->user_ld && open_handle(w, w->uri_index, &w->user_ld) != LDAP_SUCCESS) {
                outcome = is_connection_error(w->last_error) ? ATTEMPT_BROKEN : ATTEMPT_ANSWERED;
                goto out;
        }
        if (!arm_timeouts(w, w->user_ld, &tv)) {
                outcome = ATTEMPT_BROKEN;
                goto out;
        }
        rc = ldap_sasl_bind_s(w->user_ld, u->dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
        w->last_error = rc;
        switch (rc) {
        case LDAP_SUCCESS:
                *status = LDAP_LOGIN_OK;
                break;
        case LDAP_INVALID_CREDENTIALS:
        case LDAP_INAPPROPRIATE_AUTH:   /* the entry has no password */
        case LDAP_UNWILLING_TO_PERFORM: /* e.g. a locked account */
                *status = LDAP_LOGIN_INVALID;
                break;
        default:
                if (is_connection_error(rc))
                        outcome = ATTEMPT_BROKEN;
                log_ldap_error_on(w, w->user_ld, "bind as the user", rc);
                break;
        }
out:
        ldap_msgfree(res);
        free(filter);
        return outcome;
}

/* ---- workers ------------------------------------------------------------ */

static void serve_login(struct ldap_worker *w, struct login *l) {
        struct ldap_pool *p = w->pool;
        enum ldap_login_status status = LDAP_LOGIN_UNAVAILABLE;
        int skip = -1;

        if ((int64_t) wwsf_monotonic_us() - l->queued_us > p->timeout_us) {
                log_limited(p, "ldap: a login waited more than the timeout for a connection: answered unavailable");
                login_answer(l, LDAP_LOGIN_UNAVAILABLE, NULL);
                return;
        }
        if (w->ld) {
                w->deadline_us = (int64_t) wwsf_monotonic_us() + p->timeout_us;
                bool was_reused = w->reused;
                if ((w->bound_as_service || bind_service(w) == LDAP_SUCCESS) &&
                    attempt_login(w, l, &status) == ATTEMPT_ANSWERED)
                        goto answered;
                if (!is_connection_error(w->last_error)) {
                        /* The service bind was refused on a live connection. */
                        log_ldap_error(w, "bind as the service account", w->last_error);
                        goto answered;
                }
                /* A connection that served before and now reads as closed was
                 * most likely closed while idle (server restart, idle
                 * timeout): its server is worth a fresh try. One that hangs
                 * is not. */
                if (!(was_reused && w->last_error == LDAP_SERVER_DOWN))
                        skip = w->uri_index;
                drop_connection(w);
        }
        for (int i = 0; i < p->n_uris; i++) {
                if (i == skip)
                        continue;
                w->deadline_us = (int64_t) wwsf_monotonic_us() + p->timeout_us;
                if (connect_uri(w, i) != LDAP_SUCCESS)
                        continue;
                if (attempt_login(w, l, &status) == ATTEMPT_ANSWERED)
                        goto answered;
                drop_connection(w);
        }
        status = LDAP_LOGIN_UNAVAILABLE;

answered:
        login_answer(l, status, &w->user);
        explicit_bzero(&w->user, sizeof w->user);
        if (w->ld)
                w->reused = true;
}

static void *worker_main(void *arg) {
        struct ldap_worker *w = arg;
        struct ldap_pool *p = w->pool;
        for (;;) {
                pthread_mutex_lock(&p->lock);
                while (!p->count && !p->stopping)
                        pthread_cond_wait(&p->cond, &p->lock);
                if (p->stopping) {
                        pthread_mutex_unlock(&p->lock);
                        break;
                }
                struct login *l = p->queue[p->head];
                p->head = (p->head + 1) % LOGIN_QUEUE_MAX;
                p->count--;
                pthread_mutex_unlock(&p->lock);
                serve_login(w, l);
        }
        drop_connection(w);
        return NULL;
}

/* ---- life cycle --------------------------------------------------------- */

static int read_service_password(const char *path, struct berval *ret) {
        char *buf = NULL;
        ssize_t n = 0;
        int r;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
                r = -errno;
                log_error("ldap: cannot open bind_password_file %s: %s", path, strerror(-r));
                return r;
        }
        buf = malloc(SERVICE_PASSWORD_MAX + 2);
        if (!buf) {
                r = -ENOMEM;
                goto out;
        }
        for (;;) {
                ssize_t k = read(fd, buf + n, (size_t) (SERVICE_PASSWORD_MAX + 1 - n));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        r = -errno;
                        log_error("ldap: cannot read bind_password_file %s: %s", path, strerror(-r));
                        goto out;
                }
                if (k == 0)
                        break;
                n += k;
                if (n > SERVICE_PASSWORD_MAX) {
                        r = -EFBIG;
                        log_error("ldap: bind_password_file %s is longer than %d bytes", path, SERVICE_PASSWORD_MAX);
                        goto out;
                }
        }
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
                n--;
        if (n == 0) {
                /* A simple bind with a DN and no password is an unauthenticated
                 * bind that "succeeds" as anonymous: never what was meant. */
                r = -EINVAL;
                log_error("ldap: bind_password_file %s is empty", path);
                goto out;
        }
        buf[n] = '\0';
        ret->bv_val = buf;
        ret->bv_len = (ber_len_t) n;
        buf = NULL;
        r = 0;
out:
        if (buf) {
                explicit_bzero(buf, SERVICE_PASSWORD_MAX + 2);
                free(buf);
        }
        close(fd);
        return r;
}

static void pool_release(struct ldap_pool *p) {
        for (int i = 0; i < p->n_uris; i++)
                free(p->uris[i]);
        free(p->ca_file);
        free(p->bind_dn);
        free(p->base_dn);
        free(p->user_attribute);
        free(p->impu_attribute);
        free(p->impi_attribute);
        free(p->group_attribute);
        if (p->service_password.bv_val) {
                explicit_bzero(p->service_password.bv_val, p->service_password.bv_len);
                free(p->service_password.bv_val);
        }
        free(p->workers);
        free(p);
}

static bool copy_string(char **dst, const char *src) {
        if (!src) {
                *dst = NULL;
                return true;
        }
        *dst = strdup(src);
        return *dst != NULL;
}

int ldap_pool_new(const struct daemon_config *cfg, struct ldap_pool **ret) {
        struct ldap_pool *p;
        sigset_t all, old;
        int r = -ENOMEM;

        if (!cfg || !ret || cfg->n_ldap_uris == 0 || cfg->n_ldap_uris > DAEMON_MAX_LDAP_URIS || !cfg->ldap_base_dn ||
            !cfg->ldap_user_attribute || !cfg->ldap_impu_attribute || !cfg->ldap_impi_attribute ||
            !cfg->ldap_group_attribute || cfg->ldap_connections < 1 || cfg->ldap_timeout_ms < 1 ||
            (cfg->ldap_bind_dn && !cfg->ldap_bind_password_file))
                return -EINVAL;
        p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        for (size_t i = 0; i < cfg->n_ldap_uris; i++) {
                if (!copy_string(&p->uris[i], cfg->ldap_uris[i]))
                        goto fail;
                p->n_uris++;
        }
        if (!copy_string(&p->ca_file, cfg->ldap_ca_file) || !copy_string(&p->bind_dn, cfg->ldap_bind_dn) ||
            !copy_string(&p->base_dn, cfg->ldap_base_dn) ||
            !copy_string(&p->user_attribute, cfg->ldap_user_attribute) ||
            !copy_string(&p->impu_attribute, cfg->ldap_impu_attribute) ||
            !copy_string(&p->impi_attribute, cfg->ldap_impi_attribute) ||
            !copy_string(&p->group_attribute, cfg->ldap_group_attribute))
                goto fail;
        p->starttls = cfg->ldap_starttls;
        p->timeout_us = cfg->ldap_timeout_ms * 1000;
        if (p->bind_dn && (r = read_service_password(cfg->ldap_bind_password_file, &p->service_password)) < 0)
                goto fail;
        r = -ENOMEM;
        p->n_workers = cfg->ldap_connections;
        p->workers = calloc((size_t) p->n_workers, sizeof *p->workers);
        if (!p->workers)
                goto fail;

        /* libldap initialises its global state (ldap.conf, TLS defaults) on
         * first use, which is not safe from several threads at once: do it
         * here, before the workers exist. */
        int version;
        ldap_get_option(NULL, LDAP_OPT_PROTOCOL_VERSION, &version);
        bool tls = p->starttls;
        for (int i = 0; i < p->n_uris; i++)
                tls = tls || strncmp(p->uris[i], "ldaps://", 8) == 0;
        if (tls) {
                /* The same for the TLS library, which libldap initialises
                 * when it makes its first context: make the global one now
                 * (failures are for the handles' own contexts to report). */
                int client = 0;
                ldap_set_option(NULL, LDAP_OPT_X_TLS_NEWCTX, &client);
        }

        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->cond, NULL);
        p->log_window_start = (int64_t) wwsf_monotonic_us() / 1000;
        /* Workers start with every signal blocked: signals meant for the
         * daemon go to its other threads, and SIGPIPE from a server that
         * closed the connection becomes EPIPE. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        for (int i = 0; i < p->n_workers; i++) {
                struct ldap_worker *w = &p->workers[i];
                w->pool = p;
                r = -pthread_create(&w->thread, NULL, worker_main, w);
                if (r < 0)
                        break;
                p->n_started++;
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r < 0) {
                log_error("ldap: cannot start the LDAP worker threads: %s", strerror(-r));
                ldap_pool_free(p);
                return r;
        }
        *ret = p;
        return 0;

fail:
        if (r == -ENOMEM)
                log_error("ldap: out of memory");
        pool_release(p);
        return r;
}

void ldap_pool_free(struct ldap_pool *p) {
        if (!p)
                return;
        struct login *queued[LOGIN_QUEUE_MAX];
        size_t n = 0;
        pthread_mutex_lock(&p->lock);
        p->stopping = true;
        while (p->count) {
                queued[n++] = p->queue[p->head];
                p->head = (p->head + 1) % LOGIN_QUEUE_MAX;
                p->count--;
        }
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
        for (size_t i = 0; i < n; i++)
                login_answer(queued[i], LDAP_LOGIN_UNAVAILABLE, NULL);
        /* Logins in progress finish first: each is bounded by the timeouts. */
        for (int i = 0; i < p->n_started; i++)
                pthread_join(p->workers[i].thread, NULL);
        pthread_mutex_destroy(&p->lock);
        pthread_cond_destroy(&p->cond);
        pool_release(p);
}

/* A username is 1 to USERNAME_MAX bytes without control characters: what
 * fits struct ldap_user and can be logged; anything else cannot be a user. */
static bool valid_username(const char *s) {
        size_t n = strnlen(s, USERNAME_MAX + 1);
        if (n == 0 || n > USERNAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f)
                        return false;
        return true;
}

void ldap_pool_login(struct ldap_pool *p, const char *username, const char *password, ldap_done_fn done,
                     void *userdata) {
        if (!done)
                return;         /* nobody to tell: a caller bug, and nothing to do */
        if (!username || !password || !valid_username(username) || !*password) {
                /* An empty password would make an unauthenticated bind, which
                 * "succeeds": never ask. */
                done(userdata, LDAP_LOGIN_INVALID, NULL, 0);
                return;
        }
        if (!p) {
                done(userdata, LDAP_LOGIN_UNAVAILABLE, NULL, 0);
                return;
        }
        struct login *l = calloc(1, sizeof *l);
        if (!l) {
                done(userdata, LDAP_LOGIN_UNAVAILABLE, NULL, 0);
                return;
        }
        l->queued_us = (int64_t) wwsf_monotonic_us();
        l->done = done;
        l->userdata = userdata;
        memcpy(l->username, username, strlen(username) + 1);
        l->password_len = strlen(password);
        l->password = malloc(l->password_len + 1);
        if (!l->password) {
                login_answer(l, LDAP_LOGIN_UNAVAILABLE, NULL);
                return;
        }
        memcpy(l->password, password, l->password_len + 1);

        enum ldap_login_status refused = LDAP_LOGIN_OK;
        pthread_mutex_lock(&p->lock);
        if (p->stopping)
                refused = LDAP_LOGIN_UNAVAILABLE;
        else if (p->count == LOGIN_QUEUE_MAX)
                refused = LDAP_LOGIN_BUSY;
        else {
                p->queue[(p->head + p->count) % LOGIN_QUEUE_MAX] = l;
                p->count++;
                pthread_cond_signal(&p->cond);
        }
        pthread_mutex_unlock(&p->lock);
        if (refused != LDAP_LOGIN_OK)
                login_answer(l, refused, NULL);
}
