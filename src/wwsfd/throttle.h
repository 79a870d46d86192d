/* Token buckets keyed by a string ("login-ip:192.0.2.7"): the per-address,
 * per-account and per-session limits of the admission endpoints. */
#pragma once
#include <stdint.h>

struct throttle;
int throttle_new(struct throttle **ret);
void throttle_free(struct throttle *t);
/* per_minute requests, with a burst as large. Returns 0 when allowed, else
 * the seconds until the next request would be (for Retry-After). */
int throttle_check(struct throttle *t, const char *key, int per_minute, uint64_t now_ms);
/* Forgets keys idle long enough to be full again. */
void throttle_expire(struct throttle *t, uint64_t now_ms);
