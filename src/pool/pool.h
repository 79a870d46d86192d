/* The pool model: what a subscription and a pool of IMPUs are, whoever
 * describes them (a pool configuration file, an API) and whoever keeps them
 * (the lease store). Plain data in fixed-size buffers, the bounds every
 * producer enforces, and the pure logic of identity templates. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum pool_kind { POOL_KIND_AUTHENTICATED, POOL_KIND_ANONYMOUS };
enum impi_mode { IMPI_MODE_SHARED, IMPI_MODE_PER_ENTRY };
enum pool_source { POOL_SOURCE_LIST, POOL_SOURCE_RANGE, POOL_SOURCE_WILDCARD };
/* Characters a wildcard pool draws its generated part from. */
enum token_alphabet { TOKEN_ALPHABET_BASE32, TOKEN_ALPHABET_DIGITS };

/* Sizes of the model's strings, the NUL included. A producer refuses longer
 * input; the store keeps what it is given. Names end up in URLs, logs and SQL
 * rows: short and plain. */
#define POOL_NAME_MAX 65        /* pool, subscription and tenant names: 64 bytes */
#define POOL_IDENTITY_MAX 256   /* IMPU, IMPI, domain, a template's fixed parts: 255 bytes */
#define POOL_TEXT_MAX 512       /* a template as written, the file a pool came from */

/* Longest wildcard token (characters); also bounds the generated IMPU's
 * length. The shortest is POOL_TOKEN_MIN, the default POOL_TOKEN_DEFAULT. */
#define POOL_TOKEN_MAX 32
#define POOL_TOKEN_MIN 4
#define POOL_TOKEN_DEFAULT 12
/* Sanity bound on one pool: ten thousand million entries. */
#define POOL_SIZE_MAX INT64_C(10000000000)
/* Digits of a range's FIRST and LAST, read into an int64_t: 15 keep it far
 * from overflow. */
#define POOL_RANGE_WIDTH_MAX 15
/* Largest max_per_holder: the engine counts a holder's live leases on every
 * acquire. */
#define POOL_HOLDER_LIMIT_MAX 1000
/* Listed entries of one pool: beyond this, a range says it shorter. */
#define POOL_LIST_ENTRIES_MAX 100000

struct pool_subscription {
        char name[POOL_NAME_MAX];
        char owner[POOL_NAME_MAX];      /* portal tenant; "" when operator-owned */
        char domain[POOL_IDENTITY_MAX]; /* IMS home domain */
        enum impi_mode impi_mode;
};

/* A templated identity: prefix, a generated middle, suffix. For a range the
 * middle is the decimal index start+i zero-padded to width digits; for a
 * wildcard it is a random token that must match regex. text "" means no
 * template. */
struct pool_template {
        char text[POOL_TEXT_MAX];       /* as written */
        char prefix[POOL_IDENTITY_MAX];
        char suffix[POOL_IDENTITY_MAX];
        bool wildcard;                  /* prefix!regex!suffix rather than prefix{FIRST..LAST}suffix */
        int64_t start;                  /* range: FIRST */
        int width;                      /* range: digits of FIRST and LAST */
        int64_t count;                  /* range: LAST - FIRST + 1 */
        char regex[POOL_IDENTITY_MAX];  /* wildcard, without the ! marks */
};

/* A pool's definition. The IMPUs of a listed pool are not part of it: they
 * become the pool's entries one by one. */
struct pool_def {
        char name[POOL_NAME_MAX];
        char subscription[POOL_NAME_MAX];       /* the subscription's name */
        enum pool_kind kind;
        int64_t lease_ttl;              /* seconds */
        int64_t quarantine;             /* seconds */
        int64_t max_per_holder;
        enum pool_source source;
        int64_t size;                   /* number of IMPUs the pool can hand out */
        struct pool_template impu_tpl;  /* range, wildcard */
        struct pool_template impi_tpl;  /* range, wildcard, per-entry IMPI */
        char shared_impi[POOL_IDENTITY_MAX];    /* shared IMPI mode; "" otherwise */
        int token_length;                       /* wildcard */
        enum token_alphabet token_alphabet;     /* wildcard */
        char source_file[POOL_TEXT_MAX];        /* where it was defined; "" when not in a file */
};

/* Writes the identity at index i of a range template into buf. Returns the
 * length, or -ENOBUFS. */
int pool_template_format_index(const struct pool_template *t, int64_t i, char *buf, size_t size);

/* Writes prefix + token + suffix into buf. Returns the length, or -ENOBUFS. */
int pool_template_format_token(const struct pool_template *t, const char *token, char *buf, size_t size);

/* If s is an identity of range template t, stores its index. */
bool pool_template_match_index(const struct pool_template *t, int64_t size, const char *s, int64_t *ret_index);

/* Whether two range templates generate a common identity (exactly). */
bool pool_ranges_overlap(const struct pool_template *a, const struct pool_template *b);

/* Fills buf (length+1 bytes) with a random token from the alphabet. Returns
 * 0, -EINVAL (length out of 1..POOL_TOKEN_MAX) or -EIO (no random bytes). */
int pool_token_random(enum token_alphabet a, int length, char *buf);

/* The words the configuration, the store and the API use for each value.
 * The from_string functions return 0, or -EINVAL for any other word. */
/* Whether s is a name of the model (pool, subscription, tenant or portal):
 * 1..POOL_NAME_MAX-1 bytes of ASCII letters, digits, '.', '_' and '-'. Names
 * end up in URLs, file names, logs and SQL rows, so nothing that needs
 * quoting in any of them. */
#define POOL_NAME_CHARS (POOL_NAME_MAX - 1)
bool pool_name_valid(const char *s);

const char *pool_kind_to_string(enum pool_kind k);
int pool_kind_from_string(const char *s, enum pool_kind *ret);
const char *pool_source_to_string(enum pool_source s);
int pool_source_from_string(const char *s, enum pool_source *ret);
const char *impi_mode_to_string(enum impi_mode m);
int impi_mode_from_string(const char *s, enum impi_mode *ret);
const char *token_alphabet_to_string(enum token_alphabet a);
int token_alphabet_from_string(const char *s, enum token_alphabet *ret);
