/* libwictoken's internals, shared by its files, the unit tests and the fuzz
 * targets. Nothing here is exported from the shared library. */
#ifndef WICTOKEN_INTERNAL_H
#define WICTOKEN_INTERNAL_H

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wictoken/wictoken.h"

/* ---- base64url (RFC 4648 section 5, no padding, as JWS uses it) ---------- */

/* Decodes len characters of unpadded base64url into out (room for
 * wt_b64url_decoded_max(len) bytes). Returns the decoded length, or -1 for a
 * character outside the alphabet, a '=' (JWS never pads), a length that no
 * encoding has (len % 4 == 1) or stray bits in the last character. */
long wt_b64url_decode(const char *in, size_t len, unsigned char *out);
static inline size_t wt_b64url_decoded_max(size_t len) {
        return len / 4 * 3 + 2;
}

/* ---- keys (jwks.c) ------------------------------------------------------ */

enum wt_alg {
        WT_ALG_ES256 = 1,
        WT_ALG_RS256 = 2,
};

/* "kid" values are at most this long: ours are 16 to 32 characters; 128
 * leaves room for other naming schemes without letting a JWKS or a token
 * hand us kilobytes to compare. */
#define WT_KID_MAX 128
/* A JWKS file of more than 1 MiB is not a key set. */
#define WT_JWKS_MAX (1024 * 1024)
/* Keys per issuer: a current, a next and retired keys; 64 is plenty. */
#define WT_KEYS_PER_ISSUER_MAX 64
#define WT_ISSUERS_MAX 16
/* RSA keys below 2048 bits are refused (RFC 7518 section 3.3); above 8192
 * bits verification becomes a CPU lever for whoever publishes the key. */
#define WT_RSA_BITS_MIN 2048
#define WT_RSA_BITS_MAX 8192

struct wt_key {
        char kid[WT_KID_MAX + 1];
        enum wt_alg alg;
        int issuer;                     /* index into the context's issuers */
        unsigned sig_len;               /* ES256: 64; RS256: the modulus' bytes */
        gnutls_pubkey_t pub;
};

/* An immutable set of keys, sorted by kid; shared by reference so that a
 * reload can swap it while a check still holds the old one. */
struct wt_keyset {
        int refs;                       /* under the context's lock */
        size_t n;
        struct wt_key *keys;
};

/* Parses one JWKS (json, len bytes) for issuer index `issuer` and appends its
 * keys to *keys / *n (growing the array). Returns 0, or WICTOKEN_E_JWKS or
 * WICTOKEN_E_NO_MEMORY with the reason in why[why_size]. */
int wt_jwks_parse(const char *json, size_t len, int issuer, struct wt_key **keys, size_t *n, char *why,
                  size_t why_size);

/* Sorts keys by kid and refuses a kid used twice. Returns 0 or
 * WICTOKEN_E_JWKS with why. */
int wt_keys_finish(struct wt_key *keys, size_t n, char *why, size_t why_size);

const struct wt_key *wt_keys_find(const struct wt_keyset *set, const char *kid, size_t kid_len);
void wt_keys_free(struct wt_key *keys, size_t n);

/* ---- tokens (jws.c) ----------------------------------------------------- */

/* A token of more than 8 KiB is not ours: ours are about 700 bytes (ES256)
 * or 1 KiB (RS256); the bound keeps decoding and verification cheap for
 * whatever a client sends. */
#define WT_TOKEN_MAX 8192
/* Identities (impu, impi) and other claim strings we copy. */
#define WT_CLAIM_MAX 256

struct wt_token_policy {
        const char *const *issuers;     /* by index, as struct wt_key.issuer */
        size_t n_issuers;
        const char *audience;
        int64_t now, leeway;
};

struct wt_claims {
        char iss[WT_CLAIM_MAX + 1];
        char impu[WT_CLAIM_MAX + 1];
        char impi[WT_CLAIM_MAX + 1];
        char jti[WT_CLAIM_MAX + 1];     /* "" when absent */
        int64_t exp;
};

/* Verifies a compact JWS (docs/DESIGN.md section 4 steps 2 to 4): header (alg
 * pinned by kid, no none/HS*, no jku/x5u/jwk/x5c, no crit), signature, claims.
 * Returns 0 with *claims filled, or -1 with a short reason in why[why_size]
 * (safe to log: no token). */
int wt_token_verify(const char *token, size_t len, const struct wt_keyset *keys,
                    const struct wt_token_policy *policy, struct wt_claims *claims, char *why, size_t why_size);

#endif
