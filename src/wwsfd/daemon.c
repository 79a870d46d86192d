/* wwsfd lifecycle: start (TLS, store, pools, keys, hook, workers, HTTP),
 * reload on SIGHUP, periodic work, and a graceful stop. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/pool_config.h"
#include "lease/lease.h"
#include "portal/portal.h"
#include "wwsfd/daemon.h"
#include "wwsfd/hook.h"
#include "wwsfd/http.h"
#include "wwsfd/jobs.h"
#include "wwsfd/ldap_auth.h"
#include "wwsfd/log.h"
#include "wwsfd/sessions.h"
#include "wwsfd/throttle.h"

/* TLS certificate and key files are small; anything past this is a mistake. */
#define PEM_MAX (1024 * 1024)

static char *read_file(const char *path, char *err, size_t errsize) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0) {
                snprintf(err, errsize, "%s: %s", path, strerror(errno));
                if (fd >= 0)
                        close(fd);
                return NULL;
        }
        if (st.st_size > PEM_MAX) {
                snprintf(err, errsize, "%s: larger than %d bytes", path, PEM_MAX);
                close(fd);
                return NULL;
        }
        char *buf = calloc(1, (size_t) st.st_size + 1);
        ssize_t n = buf ? read(fd, buf, (size_t) st.st_size) : -1;
        close(fd);
        if (n != st.st_size) {
                snprintf(err, errsize, "%s: cannot read", path);
                free(buf);
                return NULL;
        }
        return buf;
}

/* The longest a token may be honoured after its key retires: its TTL plus
 * the validators' clock leeway (docs/DESIGN.md section 4: 60 s by default). */
static int64_t publish_window(const struct wwsfd *d) {
        return d->cfg->token_ttl + 60;
}

static int load_keyring(struct wwsfd *d) {
        char err[512];
        struct token_keyring *k = NULL;
        int r = tokens_keyring_load(d->cfg->keys_dir, wwsf_clock_now(d->clock), publish_window(d), &k, err, sizeof err);
        if (r < 0) {
                log_error("signing keys: %s", err);
                return r;
        }
        if (!tokens_keyring_can_sign(k))
                log_warning("signing keys: no active key in %s: tokens cannot be issued "
                            "(wwsfctl keys generate, then wwsfctl keys activate KID)",
                            d->cfg->keys_dir);
        pthread_rwlock_wrlock(&d->keyring_lock);
        struct token_keyring *old = d->keyring;
        d->keyring = k;
        pthread_rwlock_unlock(&d->keyring_lock);
        tokens_keyring_free(old);
        return 0;
}

static int import_pools(struct wwsfd *d) {
        struct pool_config *pc = NULL;
        int r = daemon_config_load_pools(d->cfg, &pc);
        if (r < 0) {
                for (size_t i = 0; pc && i < pc->n_errors; i++)
                        log_error("%s", pc->errors[i]);
                for (size_t i = 0; i < d->cfg->n_errors; i++)
                        log_error("%s", d->cfg->errors[i]);
                pool_config_free(pc);
                return r;
        }
        struct lease_import_result res;
        pthread_mutex_lock(&d->store_lock);
        r = lease_import(d->engine, pc, &res);
        if (r < 0)
                log_error("pool import: %s", lease_engine_error(d->engine));
        else
                log_info("pools: %d subscriptions, %d pools (%d entries added, %d retired)", res.subscriptions,
                         res.pools, res.entries_added, res.entries_retired);
        pthread_mutex_unlock(&d->store_lock);
        pool_config_free(pc);
        return r;
}

static void log_from_mhd(void *cls, const char *fmt, va_list ap) {
        (void) cls;
        char buf[512];
        vsnprintf(buf, sizeof buf, fmt, ap);
        buf[strcspn(buf, "\n")] = '\0';
        log_debug("http: %s", buf);
}

int wwsfd_start(struct daemon_config *cfg, const struct wwsf_clock *clock, struct wwsfd **ret) {
        struct wwsfd *d = calloc(1, sizeof *d);
        if (!d)
                return -ENOMEM;
        d->cfg = cfg;
        d->clock = clock;
        d->web_root_fd = -1;
        pthread_rwlock_init(&d->keyring_lock, NULL);
        pthread_mutex_init(&d->store_lock, NULL);
        metrics_init(&d->metrics);
        *ret = d;

        enum log_level level = LOG_INFO;
        (void) log_level_from_string(cfg->log_level, &level);
        log_set_level(level);

        char err[600];
        int r;
        if (!(d->tls_cert_pem = read_file(cfg->tls_cert, err, sizeof err)) ||
            !(d->tls_key_pem = read_file(cfg->tls_key, err, sizeof err))) {
                log_error("TLS: %s", err);
                return -EINVAL;
        }
        if ((r = page_csp_make(cfg->epcscf_uri, &d->page_csp)) < 0)
                return r;
        d->web_root_fd = open(cfg->web_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (d->web_root_fd < 0) {
                log_error("web_root %s: %s", cfg->web_root, strerror(errno));
                return -errno;
        }

        struct store_options opt = {
                .sync = strcmp(cfg->sync, "normal") == 0 ? STORE_SYNC_NORMAL : STORE_SYNC_FULL,
                .manual_checkpoint = true,
        };
        if ((r = store_sqlite_open(cfg->db, &opt, &d->store, err, sizeof err)) < 0) {
                log_error("cannot open the lease store %s", err);
                return r;
        }
        if ((r = lease_engine_new(d->store, clock, &d->engine)) < 0)
                return r;
        if ((r = import_pools(d)) < 0)
                return r;
        if ((r = load_keyring(d)) < 0)
                return r;
        uint8_t sub_key[SESSION_KEY_LEN];
        if ((r = session_key_load(cfg->keys_dir, sub_key)) < 0)
                return r;
        r = session_table_new((size_t) cfg->max_sessions, sub_key, &d->sessions);
        explicit_bzero(sub_key, sizeof sub_key);
        if (r < 0 || (r = throttle_new(&d->throttle)) < 0)
                return r;
        struct job_queue_options jo = {
                .db = cfg->db,
                .sync = opt.sync,
                .clock = clock,
                .threads = cfg->threads,
        };
        if ((r = job_queue_new(&jo, &d->jobs)) < 0)
                return r;
        if (cfg->anonymous_enabled) {
                struct hook_options ho = {
                        .argv = (const char *const *) cfg->hook_argv,
                        .helpers = cfg->hook_helpers,
                        .timeout_ms = (int) cfg->hook_timeout_ms,
                        /* Visitors waiting for a helper: a few seconds' worth. */
                        .queue_max = 64 * cfg->hook_helpers,
                };
                if ((r = hook_pool_new(&ho, &d->hook)) < 0) {
                        log_error("eligibility hook %s: cannot start: %s", cfg->hook_argv[0], strerror(-r));
                        return r;
                }
        }

        if (cfg->ldap_enabled && (r = ldap_pool_new(cfg, &d->ldap)) < 0) {
                log_error("LDAP: cannot set up the login pool: %s", strerror(-r));
                return r;
        }

        struct sockaddr_storage ss = { 0 };
        socklen_t sslen;
        if (strchr(cfg->listen_host, ':')) {
                struct sockaddr_in6 *s6 = (struct sockaddr_in6 *) &ss;
                s6->sin6_family = AF_INET6;
                s6->sin6_port = htons(cfg->listen_port);
                inet_pton(AF_INET6, cfg->listen_host, &s6->sin6_addr);
                sslen = sizeof *s6;
        } else {
                struct sockaddr_in *s4 = (struct sockaddr_in *) &ss;
                s4->sin_family = AF_INET;
                s4->sin_port = htons(cfg->listen_port);
                inet_pton(AF_INET, cfg->listen_host, &s4->sin_addr);
                sslen = sizeof *s4;
        }
        (void) sslen;
        /* poll(), not epoll: with epoll, libmicrohttpd 0.9.75 spins a core on
         * a TLS handshake that stalls after its ClientHello (docs/BENCHMARKS.md,
         * finding W6); poll() waits, at the same token rate. */
        unsigned flags = MHD_USE_TLS | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_ALLOW_SUSPEND_RESUME |
                         MHD_USE_ERROR_LOG | (strchr(cfg->listen_host, ':') ? MHD_USE_IPv6 : 0);
        d->mhd = MHD_start_daemon(
                flags, cfg->listen_port, NULL, NULL, http_on_request, d,
                /* First, so that every later option's complaint goes through it. */
                MHD_OPTION_EXTERNAL_LOGGER, log_from_mhd, NULL,
                MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &ss,
                MHD_OPTION_UNESCAPE_CALLBACK, http_unescape, NULL,
                MHD_OPTION_HTTPS_MEM_CERT, d->tls_cert_pem,
                MHD_OPTION_HTTPS_MEM_KEY, d->tls_key_pem,
                MHD_OPTION_HTTPS_PRIORITIES, cfg->tls_priorities,
                MHD_OPTION_THREAD_POOL_SIZE, (unsigned) cfg->threads,
                MHD_OPTION_CONNECTION_LIMIT, (unsigned) cfg->max_connections,
                MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned) cfg->max_connections_per_ip,
                /* Seconds a connection may sit idle, mid-request or between
                 * requests: a slow client holds only its own slot this long. */
                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) cfg->connection_timeout,
                /* The request head (line and headers) must fit in this. */
                MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) cfg->header_limit,
                MHD_OPTION_NOTIFY_COMPLETED, http_on_completed, d,
                MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
                MHD_OPTION_END);
        if (!d->mhd) {
                log_error("cannot listen on %s:%u (address in use, or a bad TLS certificate/key or priority string)",
                          cfg->listen_host, cfg->listen_port);
                return -EADDRINUSE;
        }
        const union MHD_DaemonInfo *info = MHD_get_daemon_info(d->mhd, MHD_DAEMON_INFO_BIND_PORT);
        d->port = info ? info->port : cfg->listen_port;
        log_info("listening on https://%s%s%s:%u (public URL %s)", strchr(cfg->listen_host, ':') ? "[" : "",
                 cfg->listen_host, strchr(cfg->listen_host, ':') ? "]" : "", d->port, cfg->public_url);
        return 0;
}

int wwsfd_reload(struct wwsfd *d) {
        log_info("reloading signing keys and pool configuration");
        int r1 = load_keyring(d);
        int r2 = import_pools(d);
        return r1 < 0 ? r1 : r2;
}

void wwsfd_tick(struct wwsfd *d) {
        int64_t now = wwsf_clock_now(d->clock);
        int total = 0;
        pthread_mutex_lock(&d->store_lock);
        for (;;) {
                struct lease_reclaim_result res;
                if (lease_reclaim_batch(d->engine, 100, 250, &res) < 0) {
                        log_warning("reclaim: %s", lease_engine_error(d->engine));
                        break;
                }
                total += res.reclaimed;
                if (!res.more || d->stopping)
                        break;
        }
        /* What deletions through the portal API leave, and the answers kept
         * for retried requests once they are a day old. */
        int purged = 0;
        if (lease_purge(d->engine, 1000, &purged) < 0)
                log_warning("purge: %s", lease_engine_error(d->engine));
        if (d->store->ops->idempotency_expire(d->store, now - PORTAL_IDEMPOTENCY_TTL) < 0)
                log_warning("idempotency keys: %s", d->store->ops->error(d->store));
        pthread_mutex_unlock(&d->store_lock);
        if (total)
                log_info("reclaimed %d expired leases", total);
        if (purged)
                log_info("purged %d entries and pools of deletions", purged);
        session_expire(d->sessions, now);
        throttle_expire(d->throttle, wwsf_monotonic_ms());
        /* A retired key drops out of the JWKS once its tokens are gone. */
        pthread_rwlock_rdlock(&d->keyring_lock);
        int64_t change = d->keyring ? tokens_keyring_next_change(d->keyring) : 0;
        pthread_rwlock_unlock(&d->keyring_lock);
        if (change > 0 && change <= now)
                (void) load_keyring(d);
}

void wwsfd_checkpoint(struct wwsfd *d) {
        pthread_mutex_lock(&d->store_lock);
        if (lease_checkpoint(d->engine) < 0)
                log_warning("%s", lease_engine_error(d->engine));
        pthread_mutex_unlock(&d->store_lock);
}

void wwsfd_stop(struct wwsfd *d) {
        if (!d)
                return;
        d->stopping = true;
        if (d->mhd) {
                /* Stop accepting; let the requests in flight finish. */
                MHD_socket s = MHD_quiesce_daemon(d->mhd);
                if (s != MHD_INVALID_SOCKET)
                        close(s);
                uint64_t deadline = wwsf_monotonic_ms() + (uint64_t) d->cfg->shutdown_grace * 1000;
                while (d->in_flight > 0 && wwsf_monotonic_ms() < deadline)
                        usleep(20000);
                if (d->in_flight > 0)
                        log_warning("stopping with %d requests unfinished", (int) d->in_flight);
        }
        /* The hook, LDAP and the workers finish what they hold (answering
         * it; hook and LDAP answers may still queue jobs), then the HTTP side
         * goes. */
        hook_pool_free(d->hook);
        ldap_pool_free(d->ldap);
        job_queue_free(d->jobs);
        if (d->mhd)
                MHD_stop_daemon(d->mhd);
        session_table_free(d->sessions);
        throttle_free(d->throttle);
        tokens_keyring_free(d->keyring);
        lease_engine_free(d->engine);
        store_close(d->store);
        if (d->web_root_fd >= 0)
                close(d->web_root_fd);
        if (d->tls_key_pem)
                explicit_bzero(d->tls_key_pem, strlen(d->tls_key_pem));
        free(d->tls_key_pem);
        free(d->tls_cert_pem);
        free(d->page_csp);
        pthread_rwlock_destroy(&d->keyring_lock);
        pthread_mutex_destroy(&d->store_lock);
        metrics_done(&d->metrics);
        free(d);
}
