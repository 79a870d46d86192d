/* Subscriptions and IMPU pools, read from the INI files in pool-config/.
 * The format is documented in pool-config/README.md and README.md. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pool/pool.h"

/* A [subscription NAME] section. */
struct pool_config_subscription {
        struct pool_subscription sub;
        const char *file;       /* borrowed from pool_config.files */
        int line;
};

struct pool_list_entry {
        char *impu;
        char *impi;             /* NULL in shared mode */
        int line;
};

/* A [pool NAME] section: the definition it makes (def.subscription is set
 * once the subscription is found), the IMPUs it lists, and where each part of
 * it was written. */
struct pool_config_pool {
        struct pool_def def;
        char *subscription_name;        /* as written */
        const struct pool_config_subscription *subscription;  /* resolved */
        struct pool_list_entry *entries;        /* list */
        size_t n_entries;

        const char *file;       /* borrowed from pool_config.files */
        int line;               /* the section header */
        int key_lines[6];       /* indexed by enum pool_line; 0 when the key is absent */
};

enum pool_line {
        POOL_LINE_SUBSCRIPTION,
        POOL_LINE_IMPI,
        POOL_LINE_SOURCE,
        POOL_LINE_QUARANTINE,
        POOL_LINE_SIZE,
        POOL_LINE_TOKEN_LENGTH,
};

struct pool_config {
        char **files;
        size_t n_files;
        struct pool_config_subscription *subs;
        size_t n_subs;
        struct pool_config_pool *pools;
        size_t n_pools;
        /* "FILE:LINE: reason" for every problem found, in file order. */
        char **errors;
        size_t n_errors;
};

/* Parses every file into one configuration (pools may name subscriptions from
 * another of the files) and validates it. Returns 0 when the files were read
 * and are valid, -EINVAL when cfg->errors says what is wrong, or another
 * negative errno. *ret is filled in either case; free it with
 * pool_config_free(). */
int pool_config_load(const char *const *files, size_t n_files, struct pool_config **ret);

void pool_config_free(struct pool_config *cfg);

/* A configuration built key by key rather than read from files (the portal
 * API's requests): errors read "ORIGIN:POSITION: reason", where the position
 * is the number (1 or more) the caller gave the key. */
struct pool_config *pool_config_new(const char *origin);        /* NULL when out of memory */
/* A subscription known already (from the store). */
void pool_config_add_subscription(struct pool_config *cfg, const struct pool_subscription *sub);
/* A pool of that name (pool_name_valid(), which the caller checked). */
struct pool_config_pool *pool_config_add_pool(struct pool_config *cfg, const char *name);
/* One key of the pool with its value, as a file would have written it. */
void pool_config_pool_key(struct pool_config *cfg, struct pool_config_pool *p, int position, const char *name,
                          const char *value);
/* The checks pool_config_load() makes once the files are read: required keys,
 * the pools against their subscriptions, no IMPU in two pools. 0 or -EINVAL
 * with cfg->errors filled. */
int pool_config_validate(struct pool_config *cfg);

const struct pool_config_pool *pool_config_find_pool(const struct pool_config *cfg, const char *name);
