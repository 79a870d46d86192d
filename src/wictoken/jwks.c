/* JWKS parsing (RFC 7517, RFC 7518 section 6): public keys only, each with
 * its kid and pinned to its algorithm, imported into GnuTLS once. */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Members that only a private key (or a symmetric one) has: a JWKS that
 * publishes them has leaked a secret, and one that mixes them in is not
 * what a WWSF publishes; refuse the file rather than skip the key. */
static const char *const PRIVATE_MEMBERS[] = { "d", "p", "q", "dp", "dq", "qi", "oth", "k" };

/* Largest decoded member: an 8192-bit RSA modulus. */
#define MEMBER_MAX (WT_RSA_BITS_MAX / 8 + 1)

static int fail(char *why, size_t why_size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *why, size_t why_size, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, why_size, fmt, ap);
        va_end(ap);
        return WICTOKEN_E_JWKS;
}

/* A base64url member decoded into out (MEMBER_MAX bytes). Returns its length
 * or -1. */
static long member(json_t *jwk, const char *name, unsigned char *out) {
        json_t *v = json_object_get(jwk, name);
        if (!json_is_string(v))
                return -1;
        size_t len = json_string_length(v);
        if (len == 0 || wt_b64url_decoded_max(len) > MEMBER_MAX)
                return -1;
        return wt_b64url_decode(json_string_value(v), len, out);
}

static int import_ec(json_t *jwk, struct wt_key *k, const char *kid, char *why, size_t why_size) {
        unsigned char x[MEMBER_MAX], y[MEMBER_MAX];
        const char *crv = json_string_value(json_object_get(jwk, "crv"));
        if (!crv || strcmp(crv, "P-256") != 0)
                return fail(why, why_size, "key %s: ES256 needs crv P-256", kid);
        long xl = member(jwk, "x", x), yl = member(jwk, "y", y);
        /* RFC 7518 section 6.2.1.2: the full 32 bytes, leading zeros kept. */
        if (xl != 32 || yl != 32)
                return fail(why, why_size, "key %s: x and y must be 32 bytes of base64url each", kid);
        gnutls_datum_t dx = { x, 32 }, dy = { y, 32 };
        if (gnutls_pubkey_init(&k->pub) < 0)
                return WICTOKEN_E_NO_MEMORY;
        if (gnutls_pubkey_import_ecc_raw(k->pub, GNUTLS_ECC_CURVE_SECP256R1, &dx, &dy) < 0 ||
            gnutls_pubkey_verify_params(k->pub) < 0)
                return fail(why, why_size, "key %s: not a point of P-256", kid);
        k->sig_len = 64;
        return 0;
}

static int import_rsa(json_t *jwk, struct wt_key *k, const char *kid, char *why, size_t why_size) {
        unsigned char n[MEMBER_MAX], e[MEMBER_MAX];
        long nl = member(jwk, "n", n), el = member(jwk, "e", e);
        if (nl <= 0 || el <= 0)
                return fail(why, why_size, "key %s: n and e must be base64url numbers", kid);
        /* An odd exponent of at least 65537 in at most 4 bytes, as key
         * generators make them: e = 1 (or another small one) would let
         * anyone compute a signature that verifies. */
        uint64_t ev = 0;
        for (long i = 0; i < el && el <= 4; i++)
                ev = ev << 8 | e[i];
        if (el > 4 || e[0] == 0 || ev < 65537 || !(ev & 1))
                return fail(why, why_size, "key %s: e must be an odd number of at least 65537 (4 bytes at most)", kid);
        if (n[0] == 0)
                return fail(why, why_size, "key %s: n has a leading zero byte", kid);
        unsigned bits = (unsigned) nl * 8;
        for (unsigned char top = n[0]; !(top & 0x80); top <<= 1)
                bits--;
        if (bits < WT_RSA_BITS_MIN || bits > WT_RSA_BITS_MAX)
                return fail(why, why_size, "key %s: RSA modulus of %u bits (%d to %d accepted)", kid, bits,
                            WT_RSA_BITS_MIN, WT_RSA_BITS_MAX);
        gnutls_datum_t dn = { n, (unsigned) nl }, de = { e, (unsigned) el };
        if (gnutls_pubkey_init(&k->pub) < 0)
                return WICTOKEN_E_NO_MEMORY;
        if (gnutls_pubkey_import_rsa_raw(k->pub, &dn, &de) < 0)
                return fail(why, why_size, "key %s: GnuTLS refuses the RSA key", kid);
        k->sig_len = (unsigned) nl;
        return 0;
}

static int parse_key(json_t *jwk, size_t index, struct wt_key *k, char *why, size_t why_size) {
        if (!json_is_object(jwk))
                return fail(why, why_size, "keys[%zu] is not an object", index);
        const char *kid = json_string_value(json_object_get(jwk, "kid"));
        if (!kid || !*kid || strlen(kid) > WT_KID_MAX)
                return fail(why, why_size, "keys[%zu] has no kid (1 to %d characters)", index, WT_KID_MAX);
        for (const char *c = kid; *c; c++)
                if ((unsigned char) *c < 0x21 || (unsigned char) *c > 0x7e)
                        return fail(why, why_size, "keys[%zu]: kid with a space, control or non-ASCII byte", index);
        for (size_t i = 0; i < sizeof PRIVATE_MEMBERS / sizeof *PRIVATE_MEMBERS; i++)
                if (json_object_get(jwk, PRIVATE_MEMBERS[i]))
                        return fail(why, why_size, "key %s has the private member \"%s\": a JWKS must hold public keys only",
                                    kid, PRIVATE_MEMBERS[i]);
        json_t *use = json_object_get(jwk, "use");
        if (use && !(json_is_string(use) && strcmp(json_string_value(use), "sig") == 0))
                return fail(why, why_size, "key %s: use is not \"sig\"", kid);
        const char *kty = json_string_value(json_object_get(jwk, "kty"));
        const char *alg = json_string_value(json_object_get(jwk, "alg"));
        if (!kty || !alg)
                return fail(why, why_size, "key %s needs kty and alg (the algorithm is pinned per key)", kid);
        memcpy(k->kid, kid, strlen(kid) + 1);
        if (strcmp(alg, "ES256") == 0) {
                if (strcmp(kty, "EC") != 0)
                        return fail(why, why_size, "key %s: alg ES256 with kty %s", kid, kty);
                k->alg = WT_ALG_ES256;
                return import_ec(jwk, k, kid, why, why_size);
        }
        if (strcmp(alg, "RS256") == 0) {
                if (strcmp(kty, "RSA") != 0)
                        return fail(why, why_size, "key %s: alg RS256 with kty %s", kid, kty);
                k->alg = WT_ALG_RS256;
                return import_rsa(jwk, k, kid, why, why_size);
        }
        return fail(why, why_size, "key %s: algorithm %s is not accepted (ES256, RS256)", kid, alg);
}

int wt_jwks_parse(const char *text, size_t len, int issuer, struct wt_key **keys, size_t *n, char *why,
                  size_t why_size) {
        json_error_t err;
        int r;
        if (len > WT_JWKS_MAX)
                return fail(why, why_size, "larger than %d bytes", WT_JWKS_MAX);
        json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
        if (!root)
                return fail(why, why_size, "not JSON: line %d: %s", err.line, err.text);
        json_t *list = json_object_get(root, "keys");
        if (!json_is_object(root) || !json_is_array(list)) {
                r = fail(why, why_size, "not a JWKS: no \"keys\" array");
                goto out;
        }
        size_t count = json_array_size(list);
        if (count > WT_KEYS_PER_ISSUER_MAX) {
                r = fail(why, why_size, "%zu keys: at most %d per issuer", count, WT_KEYS_PER_ISSUER_MAX);
                goto out;
        }
        struct wt_key *grown = realloc(*keys, (*n + count + 1) * sizeof **keys);
        if (!grown) {
                r = WICTOKEN_E_NO_MEMORY;
                goto out;
        }
        *keys = grown;
        for (size_t i = 0; i < count; i++) {
                struct wt_key *k = &(*keys)[*n];
                memset(k, 0, sizeof *k);
                k->issuer = issuer;
                r = parse_key(json_array_get(list, i), i, k, why, why_size);
                if (r < 0) {
                        if (k->pub)
                                gnutls_pubkey_deinit(k->pub);
                        goto out;
                }
                (*n)++;
        }
        r = 0;
out:
        json_decref(root);
        return r;
}

static int by_kid(const void *a, const void *b) {
        return strcmp(((const struct wt_key *) a)->kid, ((const struct wt_key *) b)->kid);
}

int wt_keys_finish(struct wt_key *keys, size_t n, char *why, size_t why_size) {
        if (n > 1)
                qsort(keys, n, sizeof *keys, by_kid);
        for (size_t i = 1; i < n; i++)
                if (strcmp(keys[i - 1].kid, keys[i].kid) == 0)
                        return fail(why, why_size, "kid %s is used twice (a kid must name one key of one issuer)",
                                    keys[i].kid);
        return 0;
}

const struct wt_key *wt_keys_find(const struct wt_keyset *set, const char *kid, size_t kid_len) {
        size_t lo = 0, hi = set ? set->n : 0;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                const char *k = set->keys[mid].kid;
                int c = strncmp(k, kid, kid_len);
                if (c == 0 && k[kid_len] != '\0')
                        c = 1;
                if (c == 0)
                        return &set->keys[mid];
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

void wt_keys_free(struct wt_key *keys, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (keys[i].pub)
                        gnutls_pubkey_deinit(keys[i].pub);
        free(keys);
}
