/* Compact JWS verification (RFC 7515, RFC 7519, RFC 8725) for the token
 * profile of docs/DESIGN.md section 3, in the order of section 4: the header
 * first (the algorithm comes from the key the kid names, never from the
 * token), then the signature with GnuTLS, then the claims. */
#include <gnutls/crypto.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

/* Decoded header and payload bounds: ours are about 60 and 450 bytes. */
#define HEADER_MAX 1024
#define PAYLOAD_MAX 4096
/* The largest signature: an 8192-bit RSA one. */
#define SIGNATURE_MAX (WT_RSA_BITS_MAX / 8)

static int fail(char *why, size_t why_size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *why, size_t why_size, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, why_size, fmt, ap);
        va_end(ap);
        return -1;
}

/* Header members that would have us fetch or take a key from the token
 * itself (RFC 8725 section 3.10): we never follow them, and a token of ours
 * never carries them, so one that does is refused. */
static const char *const KEY_POINTERS[] = { "jku", "jwk", "x5u", "x5c" };

static int check_header(json_t *h, const struct wt_keyset *keys, const struct wt_key **key, char *why, size_t why_size) {
        if (!json_is_object(h))
                return fail(why, why_size, "header is not a JSON object");
        const char *alg = json_string_value(json_object_get(h, "alg"));
        if (!alg)
                return fail(why, why_size, "header has no alg");
        if (strcmp(alg, "none") == 0 || strncmp(alg, "HS", 2) == 0)
                return fail(why, why_size, "alg %.16s is never accepted", alg);
        if (json_object_get(h, "crit"))
                return fail(why, why_size, "header has crit: no extension is understood");
        for (size_t i = 0; i < sizeof KEY_POINTERS / sizeof *KEY_POINTERS; i++)
                if (json_object_get(h, KEY_POINTERS[i]))
                        return fail(why, why_size, "header has %s: keys come from the local JWKS only", KEY_POINTERS[i]);
        json_t *typ = json_object_get(h, "typ");
        if (typ && !(json_is_string(typ) && strcasecmp(json_string_value(typ), "JWT") == 0))
                return fail(why, why_size, "typ is not JWT");
        json_t *kid = json_object_get(h, "kid");
        if (!json_is_string(kid))
                return fail(why, why_size, "header has no kid");
        size_t kid_len = json_string_length(kid);
        if (kid_len == 0 || kid_len > WT_KID_MAX || memchr(json_string_value(kid), '\0', kid_len))
                return fail(why, why_size, "kid is empty, too long or holds a NUL");
        *key = wt_keys_find(keys, json_string_value(kid), kid_len);
        if (!*key)
                return fail(why, why_size, "unknown kid");
        const char *pinned = (*key)->alg == WT_ALG_ES256 ? "ES256" : "RS256";
        if (strcmp(alg, pinned) != 0)
                return fail(why, why_size, "alg %.16s but kid %s is an %s key", alg, (*key)->kid, pinned);
        return 0;
}

static int verify_signature(const struct wt_key *key, const char *signed_part, size_t signed_len,
                            const unsigned char *sig, size_t sig_len, char *why, size_t why_size) {
        gnutls_datum_t data = { (unsigned char *) signed_part, (unsigned) signed_len };
        if (sig_len != key->sig_len)
                return fail(why, why_size, "signature of %zu bytes, %u expected", sig_len, key->sig_len);
        if (key->alg == WT_ALG_ES256) {
                /* JWS carries R||S (RFC 7518 section 3.4); GnuTLS verifies
                 * the DER form. A DER signature sent as is has another length
                 * and was refused above. */
                gnutls_datum_t r = { (unsigned char *) sig, 32 }, s = { (unsigned char *) sig + 32, 32 }, der;
                if (gnutls_encode_rs_value(&der, &r, &s) < 0)
                        return fail(why, why_size, "cannot encode the signature");
                int rc = gnutls_pubkey_verify_data2(key->pub, GNUTLS_SIGN_ECDSA_SHA256, 0, &data, &der);
                gnutls_free(der.data);
                if (rc < 0)
                        return fail(why, why_size, "bad signature");
                return 0;
        }
        gnutls_datum_t d = { (unsigned char *) sig, (unsigned) sig_len };
        if (gnutls_pubkey_verify_data2(key->pub, GNUTLS_SIGN_RSA_SHA256, 0, &data, &d) < 0)
                return fail(why, why_size, "bad signature");
        return 0;
}

/* A NumericDate: a JSON integer (a fraction is refused: ours never have one). */
static int numeric_date(json_t *claims, const char *name, bool required, int64_t *ret, char *why, size_t why_size) {
        json_t *v = json_object_get(claims, name);
        if (!v) {
                if (required)
                        return fail(why, why_size, "no %s", name);
                *ret = 0;
                return 0;
        }
        if (!json_is_integer(v) || json_integer_value(v) < 0)
                return fail(why, why_size, "%s is not a non-negative integer", name);
        *ret = json_integer_value(v);
        return 0;
}

static int copy_claim(json_t *claims, const char *name, bool required, char *dst, char *why, size_t why_size) {
        json_t *v = json_object_get(claims, name);
        dst[0] = '\0';
        if (!v)
                return required ? fail(why, why_size, "no %s", name) : 0;
        if (!json_is_string(v))
                return fail(why, why_size, "%s is not a string", name);
        size_t len = json_string_length(v);
        if (len == 0 || len > WT_CLAIM_MAX || memchr(json_string_value(v), '\0', len))
                return fail(why, why_size, "%s is empty, longer than %d bytes or holds a NUL", name, WT_CLAIM_MAX);
        memcpy(dst, json_string_value(v), len + 1);
        return 0;
}

static bool audience_matches(json_t *aud, const char *audience) {
        if (json_is_string(aud))
                return strcmp(json_string_value(aud), audience) == 0;
        if (!json_is_array(aud))
                return false;
        size_t i;
        json_t *v;
        json_array_foreach(aud, i, v) if (json_is_string(v) && strcmp(json_string_value(v), audience) == 0) return true;
        return false;
}

static int check_claims(json_t *c, const struct wt_key *key, const struct wt_token_policy *p, struct wt_claims *out,
                        char *why, size_t why_size) {
        int64_t exp, nbf, iat;
        if (!json_is_object(c))
                return fail(why, why_size, "payload is not a JSON object");
        if (copy_claim(c, "iss", true, out->iss, why, why_size) < 0)
                return -1;
        /* The key's issuer, not just any trusted one: a key of one WWSF
         * cannot vouch for another. */
        if ((size_t) key->issuer >= p->n_issuers || strcmp(out->iss, p->issuers[key->issuer]) != 0)
                return fail(why, why_size, "iss is not the issuer of key %s", key->kid);
        json_t *aud = json_object_get(c, "aud");
        if (!aud)
                return fail(why, why_size, "no aud");
        if (!audience_matches(aud, p->audience))
                return fail(why, why_size, "aud does not name this IMS domain");
        /* All three present (docs/DESIGN.md section 4 step 4; wwsfd sets them). */
        if (numeric_date(c, "exp", true, &exp, why, why_size) < 0 ||
            numeric_date(c, "nbf", true, &nbf, why, why_size) < 0 ||
            numeric_date(c, "iat", true, &iat, why, why_size) < 0)
                return -1;
        /* Written so that nothing overflows: the dates are 0 or more and
         * the leeway at most 600, whatever the clock says. */
        if (exp <= p->now - p->leeway)
                return fail(why, why_size, "token expired");
        if (nbf - p->leeway > p->now)
                return fail(why, why_size, "token not valid yet (nbf)");
        if (iat - p->leeway > p->now)
                return fail(why, why_size, "token issued in the future (iat)");
        if (copy_claim(c, "impu", true, out->impu, why, why_size) < 0 ||
            copy_claim(c, "impi", true, out->impi, why, why_size) < 0 ||
            copy_claim(c, "jti", false, out->jti, why, why_size) < 0)
                return -1;
        out->exp = exp;
        return 0;
}

int wt_token_verify(const char *token, size_t len, const struct wt_keyset *keys, const struct wt_token_policy *policy,
                    struct wt_claims *claims, char *why, size_t why_size) {
        unsigned char header[wt_b64url_decoded_max(HEADER_MAX * 4 / 3 + 4)];
        unsigned char payload[wt_b64url_decoded_max(PAYLOAD_MAX * 4 / 3 + 4)];
        unsigned char sig[wt_b64url_decoded_max(SIGNATURE_MAX * 4 / 3 + 4)];
        const struct wt_key *key = NULL;
        json_t *h = NULL, *c = NULL;
        int r = -1;

        if (len > WT_TOKEN_MAX)
                return fail(why, why_size, "token longer than %d bytes", WT_TOKEN_MAX);
        const char *dot1 = memchr(token, '.', len);
        const char *dot2 = dot1 ? memchr(dot1 + 1, '.', (size_t) (token + len - dot1 - 1)) : NULL;
        if (!dot2 || memchr(dot2 + 1, '.', (size_t) (token + len - dot2 - 1)))
                return fail(why, why_size, "not three segments");
        size_t hl = (size_t) (dot1 - token), pl = (size_t) (dot2 - dot1 - 1), sl = (size_t) (token + len - dot2 - 1);
        if (hl == 0 || pl == 0 || sl == 0)
                return fail(why, why_size, "an empty segment");
        if (hl > HEADER_MAX * 4 / 3 + 4 || pl > PAYLOAD_MAX * 4 / 3 + 4 || sl > SIGNATURE_MAX * 4 / 3 + 4)
                return fail(why, why_size, "a segment is too long");
        long hn = wt_b64url_decode(token, hl, header);
        long pn = wt_b64url_decode(dot1 + 1, pl, payload);
        long sn = wt_b64url_decode(dot2 + 1, sl, sig);
        if (hn < 0 || pn < 0 || sn < 0)
                return fail(why, why_size, "a segment is not base64url");

        json_error_t err;
        h = json_loadb((const char *) header, (size_t) hn, JSON_REJECT_DUPLICATES, &err);
        if (!h) {
                fail(why, why_size, "header is not JSON: %s", err.text);
                goto out;
        }
        if (check_header(h, keys, &key, why, why_size) < 0)
                goto out;
        if (verify_signature(key, token, hl + 1 + pl, sig, (size_t) sn, why, why_size) < 0)
                goto out;
        c = json_loadb((const char *) payload, (size_t) pn, JSON_REJECT_DUPLICATES, &err);
        if (!c) {
                fail(why, why_size, "payload is not JSON: %s", err.text);
                goto out;
        }
        if (check_claims(c, key, policy, claims, why, why_size) < 0)
                goto out;
        r = 0;
out:
        json_decref(h);
        json_decref(c);
        return r;
}
