/* wwsfd's counters and latency histograms, updated lock-free from any
 * thread and rendered by GET /metrics (api/metrics.c). */
#pragma once
#include <stdatomic.h>
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

struct metrics {
        _Atomic uint64_t tokens_anonymous, tokens_login, tokens_refresh;
        _Atomic uint64_t login_success, login_failure;
        _Atomic uint64_t anonymous_refused;
        _Atomic uint64_t throttled;
        _Atomic uint64_t requests, responses_4xx, responses_5xx;
        struct histogram hook_latency, ldap_latency;
};

/* Counts a response by its status class. */
void metrics_count_status(struct metrics *m, unsigned status);
