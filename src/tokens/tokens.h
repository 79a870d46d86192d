/* Signing keys and the tokens wwsfd issues (docs/DESIGN.md section 3).
 *
 * Keys live in a directory (the daemon's [tokens] keys_dir): one PEM private
 * key per key, <kid>.pem, mode 0600, and keys.json, the state of every key:
 *   {"keys":[{"kid":"...","alg":"ES256","state":"next|active|retired",
 *             "created_at":N,"activated_at":N|null,"retired_at":N|null}]}
 * At most one key is active (it signs); "next" keys are published before they
 * sign; a retired key stays published until every token it signed has
 * expired (retired_at + the longest token TTL), then drops out of the JWKS.
 *
 * Functions return 0 or a negative errno; err/errsize receive one line saying
 * what went wrong. Nothing here prints. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum token_alg { TOKEN_ALG_ES256, TOKEN_ALG_RS256 };

#define TOKEN_KID_MAX 64

struct token_key_info {
        char kid[TOKEN_KID_MAX + 1];
        enum token_alg alg;
        const char *state;      /* "next", "active", "retired" */
        int64_t created_at, activated_at, retired_at;   /* 0 = never */
        bool published;         /* in the JWKS at the time asked */
};

/* Key management, for `wwsfctl keys ...`. The directory is created (0700)
 * if missing by generate(); the others answer -ENOENT for it. generate()
 * makes a new key in state "next" and returns its kid; activate() makes kid
 * the signing key and retires the key that was active (-EPERM for a retired
 * kid; the key file is checked first); retire() retires a key. Activating the
 * active key or retiring a retired one changes nothing. Unknown kid: -ENOENT;
 * corrupt keys.json or key file: -EBADMSG. */
int tokens_keys_generate(const char *dir, enum token_alg alg, int64_t now, char ret_kid[TOKEN_KID_MAX + 1],
                         char *err, size_t errsize);
int tokens_keys_activate(const char *dir, const char *kid, int64_t now, char *err, size_t errsize);
int tokens_keys_retire(const char *dir, const char *kid, int64_t now, char *err, size_t errsize);
/* Calls cb for every key, oldest first; published is judged at now with
 * max_token_ttl. A negative answer from cb stops the listing and is returned. */
int tokens_keys_list(const char *dir, int64_t now, int64_t max_token_ttl,
                     int (*cb)(const struct token_key_info *k, void *userdata), void *userdata, char *err,
                     size_t errsize);

/* The keys of a directory loaded for signing: parsed once, kept in memory.
 * Only the keys published at now are read (a directory without keys.json is
 * an empty keyring); the JWKS is built at load and changes only by loading
 * again. The keyring is read-only after load: tokens_sign() may run in
 * several threads at once. tokens_keyring_free() accepts NULL. */
struct token_keyring;

int tokens_keyring_load(const char *dir, int64_t now, int64_t max_token_ttl, struct token_keyring **ret, char *err,
                        size_t errsize);
void tokens_keyring_free(struct token_keyring *k);
/* Whether there is an active key to sign with. */
bool tokens_keyring_can_sign(const struct token_keyring *k);
/* The JWKS document ({"keys":[...]}, public members only: kty, crv, x, y or
 * n, e; kid, use "sig", alg) of the published keys. Owned by the keyring. */
const char *tokens_keyring_jwks(const struct token_keyring *k);
/* The kid of the active key, or NULL. Owned by the keyring. */
const char *tokens_keyring_active_kid(const struct token_keyring *k);
/* How many keys the JWKS holds. */
size_t tokens_keyring_published(const struct token_keyring *k);
/* The first time after the load at which a retired key leaves the JWKS (the
 * keyring should be loaded again then), or 0 if none will. */
int64_t tokens_keyring_next_change(const struct token_keyring *k);

/* The longest string claim tokens_sign() accepts: the token travels in one
 * HTTP response and in the Authorization header of every REGISTER; real IMS
 * identities and origins are far shorter. */
#define TOKEN_CLAIM_MAX 1024

struct token_claims {
        const char *iss;        /* the WWSF's HTTPS origin */
        const char *aud;        /* the eP-CSCF / IMS domain */
        const char *sub;        /* opaque user handle */
        const char *jti;        /* unique; NULL = generate 128 random bits, base64url */
        const char *impu, *impi;
        const char *wwsf;       /* the 3gpp-wwsf claim */
        bool anon;
        int64_t iat, nbf, exp;
        int64_t lease_exp;      /* 0 = no lease (scenario 2): claim omitted */
};

/* The exp claim a token of these claims carries: exp, or lease_exp when a
 * lease is given and ends first (a token never outlives its lease). */
int64_t tokens_claims_exp(const struct token_claims *c);

/* Signs the claims with the active key (header alg, kid, typ "JWT"), with
 * exp as tokens_claims_exp() says. *ret_token is the compact JWS,
 * to free(); *ret_jti (optional, to free()) the jti used. -ENOKEY without an
 * active key; -EINVAL for a missing or overlong string claim, or a token that
 * would expire by its nbf; -EILSEQ for a claim that is not UTF-8. */
int tokens_sign(const struct token_keyring *k, const struct token_claims *c, char **ret_token, char **ret_jti,
                char *err, size_t errsize);

/* Base64url without padding (RFC 7515 section 2). out holds at least
 * TOKENS_B64URL_LEN(n) + 1 bytes; returns the length written. */
#define TOKENS_B64URL_LEN(n) ((n) / 3 * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))
size_t tokens_b64url_encode(const uint8_t *in, size_t n, char *out);
/* Decodes exactly n bytes from len characters of unpadded base64url into
 * out; false for any other length, a character outside the alphabet, or
 * bits set past the last byte (so that a value has one spelling and any
 * changed character changes what is decoded). */
bool tokens_b64url_decode_exact(const char *in, size_t len, uint8_t *out, size_t n);

const char *token_alg_to_string(enum token_alg a);
int token_alg_from_string(const char *s, enum token_alg *ret);
