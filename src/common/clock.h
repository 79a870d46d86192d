/* Injectable wall clock: every piece of lease logic asks a wwsf_clock for the
 * time, so tests and `wwsfctl --now` can move or freeze it. */
#pragma once
#include <stdint.h>

struct wwsf_clock {
        /* Seconds since the Unix epoch. */
        int64_t (*now)(void *userdata);
        void *userdata;
};

/* The system clock (CLOCK_REALTIME). */
extern const struct wwsf_clock wwsf_clock_system;

/* A clock that answers *seconds; the caller owns the storage and may move it. */
struct wwsf_clock wwsf_clock_fixed(int64_t *seconds);

static inline int64_t wwsf_clock_now(const struct wwsf_clock *c) {
        return c->now(c->userdata);
}

/* Monotonic time in nanoseconds, for measuring how long work took. */
uint64_t wwsf_monotonic_ns(void);

/* The same in microseconds and milliseconds. */
static inline uint64_t wwsf_monotonic_us(void) {
        return wwsf_monotonic_ns() / 1000u;
}

static inline uint64_t wwsf_monotonic_ms(void) {
        return wwsf_monotonic_ns() / 1000000u;
}
