/* The daemon: its state, shared by the endpoints, and its lifecycle (start,
 * SIGHUP reload, periodic work, graceful stop). main.c drives it. */
#pragma once
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/clock.h"
#include "config/daemon_config.h"
#include "tokens/tokens.h"
#include "wwsfd/metrics.h"

struct hook_pool;
struct job_queue;
struct ldap_pool;
struct session_table;
struct throttle;

struct wwsfd {
        struct daemon_config *cfg;
        const struct wwsf_clock *clock;
        struct MHD_Daemon *mhd;
        uint16_t port;                  /* bound port */
        char *tls_cert_pem, *tls_key_pem;

        pthread_rwlock_t keyring_lock;  /* SIGHUP swaps the keyring */
        struct token_keyring *keyring;

        struct hook_pool *hook;         /* NULL: no anonymous admission */
        struct ldap_pool *ldap;         /* NULL: no password logins */
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
        char *page_csp;                 /* the pages' Content-Security-Policy */
};

int wwsfd_start(struct daemon_config *cfg, const struct wwsf_clock *clock, struct wwsfd **ret);
/* Reloads the keyring and the pool configuration (SIGHUP). */
int wwsfd_reload(struct wwsfd *d);
/* Periodic work: reclaim, session and throttle expiry, keyring refresh. */
void wwsfd_tick(struct wwsfd *d);
/* Moves the lease store's journal into the database (about once a second;
 * the store connections do no automatic checkpoints). */
void wwsfd_checkpoint(struct wwsfd *d);
/* Stops accepting, lets requests in flight finish (up to the grace), stops;
 * accepts NULL. */
void wwsfd_stop(struct wwsfd *d);
