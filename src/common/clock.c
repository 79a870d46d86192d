#include "common/clock.h"

#include <time.h>

static int64_t system_now(void *userdata) {
        (void) userdata;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t) ts.tv_sec;
}

const struct wwsf_clock wwsf_clock_system = { .now = system_now, .userdata = NULL };

static int64_t fixed_now(void *userdata) {
        return *(const int64_t *) userdata;
}

struct wwsf_clock wwsf_clock_fixed(int64_t *seconds) {
        return (struct wwsf_clock) { .now = fixed_now, .userdata = seconds };
}

uint64_t wwsf_monotonic_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}
