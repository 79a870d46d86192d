/* wwsfd's counters and latency histograms, updated lock-free from any
 * thread and rendered by GET /metrics (api/metrics.c). */
#pragma once
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define HISTOGRAM_BUCKETS 10

struct histogram {
        _Atomic uint64_t buckets[HISTOGRAM_BUCKETS + 1];        /* last is +Inf */
        _Atomic uint64_t count;
        _Atomic uint64_t sum_us;
};

void histogram_observe(struct histogram *h, uint64_t us);
/* Upper bound of bucket i, in microseconds. */
uint64_t histogram_bound_us(int i);

/* Portals counted by name; beyond this many, the rest share "other". */
#define METRICS_PORTALS_MAX 256

struct metrics_portal {
        char name[65];
        _Atomic uint64_t reads, writes, responses_4xx, responses_5xx, throttled;
};

struct metrics {
        _Atomic uint64_t tokens_anonymous, tokens_login, tokens_refresh;
        _Atomic uint64_t login_success, login_failure;
        _Atomic uint64_t anonymous_refused;
        _Atomic uint64_t throttled;
        _Atomic uint64_t requests, responses_4xx, responses_5xx;
        struct histogram hook_latency, ldap_latency;
        /* Portal API requests by portal (name set once, under portals_lock). */
        pthread_mutex_t portals_lock;
        struct metrics_portal portals[METRICS_PORTALS_MAX + 1];  /* the last is "other" */
        _Atomic size_t n_portals;
};

void metrics_init(struct metrics *m);
void metrics_done(struct metrics *m);
/* Counts a portal API request of a portal (NULL: not authenticated). */
void metrics_count_portal(struct metrics *m, const char *portal, bool write, unsigned status);

/* Counts a response by its status class. */
void metrics_count_status(struct metrics *m, unsigned status);
