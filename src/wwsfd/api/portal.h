/* The portal API's JSON (portal_json.c), shared by its endpoints (portal.c). */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/pool_config.h"
#include "store/store.h"

#define PORTAL_FIELD_MAX 48

/* Why a request was refused: the words, and the member they are about ("" if none). */
struct portal_refusal {
        char field[PORTAL_FIELD_MAX];
        char detail[512];
};

/* A pool definition a request describes, checked by the pool
 * configuration's rules: cfg holds the one subscription and the one pool. */
struct portal_pool_request {
        struct pool_config *cfg;
        struct pool_config_pool *pool;
        char (*fields)[PORTAL_FIELD_MAX];
};

/* The pool of body: a new one named name in subscription sub (old NULL), or
 * old with body's changes. -EINVAL with *why filled for a refused request,
 * -ENOMEM. */
int portal_pool_request(json_t *body, const struct pool_subscription *sub, const char *name,
                        const struct store_pool *old, struct portal_pool_request *ret, struct portal_refusal *why);
void portal_pool_request_free(struct portal_pool_request *req);

/* The answers' shapes (docs/openapi.json). */
json_t *portal_pool_json(const struct store_pool *p, const struct store_counts *c, int64_t free_count);
json_t *portal_subscription_json(const struct store_subscription *s);
json_t *portal_entry_json(const struct store_entry *e, int64_t now);
json_t *portal_lease_json(const struct store_history *h, int64_t now);
/* The pool's ETag header value, quotes included. */
void portal_etag(const struct store_pool *p, char *buf, size_t size);
