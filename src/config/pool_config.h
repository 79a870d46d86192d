/* Subscriptions and IMPU pools, read from the INI files in pool-config/.
 * The format is documented in pool-config/README.md and README.md. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum pool_kind { POOL_KIND_AUTHENTICATED, POOL_KIND_ANONYMOUS };
enum impi_mode { IMPI_MODE_SHARED, IMPI_MODE_PER_ENTRY };
enum pool_source { POOL_SOURCE_LIST, POOL_SOURCE_RANGE, POOL_SOURCE_WILDCARD };
/* Characters a wildcard pool draws its generated part from. */
enum token_alphabet { TOKEN_ALPHABET_BASE32, TOKEN_ALPHABET_DIGITS };

/* Longest IMPU or IMPI the store keeps (bytes, without the NUL). */
#define POOL_IDENTITY_MAX 255

/* Longest wildcard token; also bounds the generated IMPU's length. */
#define POOL_TOKEN_MAX 32

struct pool_subscription {
        char *name;
        char *owner;            /* portal tenant, NULL when operator-owned ("none") */
        char *domain;           /* IMS home domain */
        enum impi_mode impi_mode;
        const char *file;       /* borrowed from pool_config.files */
        int line;
};

struct pool_list_entry {
        char *impu;
        char *impi;             /* NULL in shared mode */
        int line;
};

/* A templated identity: prefix, a generated middle, suffix. For a range the
 * middle is the decimal index start+i zero-padded to width digits; for a
 * wildcard it is a random token that must match regex. */
struct pool_template {
        char *text;             /* as written in the file */
        char *prefix;
        char *suffix;
        int64_t start;          /* range only */
        int width;              /* range only */
        int64_t count;          /* range only: LAST - FIRST + 1 */
        char *regex;            /* wildcard only, without the ! marks */
};

struct pool_def {
        char *name;
        char *subscription_name;
        const struct pool_subscription *subscription;  /* resolved */
        enum pool_kind kind;
        int64_t lease_ttl;      /* seconds */
        int64_t quarantine;     /* seconds */
        int64_t max_per_holder;
        enum pool_source source;
        int64_t size;           /* number of IMPUs the pool can hand out */

        struct pool_list_entry *entries;        /* list */
        size_t n_entries;
        struct pool_template impu_tpl;          /* range, wildcard */
        struct pool_template impi_tpl;          /* range, wildcard, per-entry IMPI */
        int token_length;                       /* wildcard */
        enum token_alphabet token_alphabet;     /* wildcard */
        char *shared_impi;                      /* shared IMPI mode */

        const char *file;
        int line;               /* the section header */
        int key_lines[5];       /* indexed by enum pool_line; 0 when the key is absent */
};

enum pool_line { POOL_LINE_SUBSCRIPTION, POOL_LINE_IMPI, POOL_LINE_SOURCE, POOL_LINE_QUARANTINE, POOL_LINE_SIZE };

struct pool_config {
        char **files;
        size_t n_files;
        struct pool_subscription *subs;
        size_t n_subs;
        struct pool_def *pools;
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

const struct pool_def *pool_config_find_pool(const struct pool_config *cfg, const char *name);

/* Writes the identity at index i of a range template into buf. Returns the
 * length, or -ENOBUFS. */
int pool_template_format_index(const struct pool_template *t, int64_t i, char *buf, size_t size);

/* Writes prefix + token + suffix into buf. Returns the length, or -ENOBUFS. */
int pool_template_format_token(const struct pool_template *t, const char *token, char *buf, size_t size);

/* If s is an identity of range template t, stores its index. */
bool pool_template_match_index(const struct pool_template *t, int64_t size, const char *s, int64_t *ret_index);

/* Fills buf (length+1 bytes) with a random token from the alphabet. */
int pool_token_random(enum token_alphabet a, int length, char *buf);

const char *pool_kind_to_string(enum pool_kind k);
const char *pool_source_to_string(enum pool_source s);
const char *impi_mode_to_string(enum impi_mode m);
const char *token_alphabet_to_string(enum token_alphabet a);
