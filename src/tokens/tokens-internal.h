/* What keys.c (the keys directory) and keyring.c (signing) share. Not for
 * other components: they use tokens.h. */
#pragma once
#include <gnutls/abstract.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokens/tokens.h"

enum key_state { KEY_NEXT, KEY_ACTIVE, KEY_RETIRED };

/* One entry of keys.json. */
struct key_entry {
        char kid[TOKEN_KID_MAX + 1];
        enum token_alg alg;
        enum key_state state;
        int64_t created_at, activated_at, retired_at;   /* 0 = never (null in the file) */
};

struct key_table {
        struct key_entry *v;
        size_t n;
};

/* Writes one line into err (if any) and returns r. */
__attribute__((format(printf, 4, 5))) int tokens_fail(char *err, size_t errsize, int r, const char *fmt, ...);

const char *key_state_to_string(enum key_state s);

/* Opens the keys directory (O_DIRECTORY); -ENOENT with a clear line when it is
 * missing. With create, makes it (0700) and its missing parents (0750) first. */
int keys_dir_open(const char *dir, bool create, int *ret_fd, char *err, size_t errsize);

/* Reads keys.json; a missing keys.json is an empty table (a directory no key
 * was generated in yet). Anything malformed is -EBADMSG. */
int keys_table_read(int dirfd, const char *dir, struct key_table *ret, char *err, size_t errsize);
/* Replaces keys.json atomically and durably (temp file, fsync, rename, fsync
 * of the directory). The caller holds the directory lock. */
int keys_table_write(int dirfd, const char *dir, const struct key_table *t, char *err, size_t errsize);
void keys_table_done(struct key_table *t);

/* Whether the key is in the JWKS at now (docs/DESIGN.md section 3: "next" and
 * "active" always, "retired" until retired_at + max_token_ttl). */
bool key_is_published(const struct key_entry *e, int64_t now, int64_t max_token_ttl);

/* Reads and parses <kid>.pem, checking it is the key keys.json says it is
 * (ECDSA P-256 for ES256, RSA of at least 2048 bits for RS256). ret_key and
 * ret_jwk are optional; what they receive is the caller's. The JWK has the
 * public members only: kty, crv, x, y (EC) or kty, n, e (RSA), then kid,
 * use "sig", alg. */
int key_file_load(int dirfd, const char *dir, const struct key_entry *e, gnutls_privkey_t *ret_key,
                  json_t **ret_jwk, char *err, size_t errsize);

