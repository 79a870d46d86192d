/* Test kit for libwictoken: signing keys made with GnuTLS, their JWKS,
 * tokens signed (or forged) from any header and payload text, and REGISTER
 * messages as JsSIP sends them. Used by the unit tests, the attack suite,
 * the benchmark and wictoken-mint. Everything returned is malloc'd: the
 * caller frees it. Aborts on failures of its own (a test kit that fails
 * quietly would make tests pass for the wrong reason). */
#ifndef WICTOKEN_TESTKIT_H
#define WICTOKEN_TESTKIT_H

#include <gnutls/abstract.h>
#include <stddef.h>
#include <stdint.h>

#define TK_ISSUER "https://wwsf.example.com"
#define TK_AUDIENCE "ims.example.com"
#define TK_REALM "ims.example.com"
#define TK_IMPU "sip:+15550001234@ims.example.com"
#define TK_IMPI "+15550001234@ims.example.com"
#define TK_NOW 1800000000

enum tk_alg {
        TK_ES256,
        TK_RS256,
};

struct tk_key {
        char kid[64];
        enum tk_alg alg;
        gnutls_privkey_t priv;
        gnutls_pubkey_t pub;
};

/* vasprintf that aborts instead of failing. */
char *tk_format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A wictoken_clock_fn reading the int64_t seconds userdata points to. */
int64_t tk_clock(void *userdata);

/* A new key (RSA: 2048 bits). */
struct tk_key *tk_key_new(enum tk_alg alg, const char *kid);
void tk_key_free(struct tk_key *k);

/* The public JWK of k as JSON text members, without braces:
 * "kty":...,"kid":...,"use":"sig","alg":... */
char *tk_jwk_members(const struct tk_key *k);
/* {"keys":[...]} of the given keys. */
char *tk_jwks(struct tk_key *const *keys, size_t n);

/* base64url without padding. */
char *tk_b64url(const void *data, size_t len);

/* header.payload.signature, signed by k with its algorithm (ES256: R||S). */
char *tk_sign(const struct tk_key *k, const char *header_json, const char *payload_json);
/* The same with the ES256 signature left in DER form. */
char *tk_sign_der(const struct tk_key *k, const char *header_json, const char *payload_json);
/* The standard header {"alg":..,"kid":..,"typ":"JWT"} for k. */
char *tk_header(const struct tk_key *k);
/* The standard claims of docs/DESIGN.md section 3 at time `now`, for impu/impi,
 * with `extra` JSON members appended (or NULL) and members named in `omit`
 * (comma-separated, or NULL) left out. */
char *tk_claims(int64_t now, const char *impu, const char *impi, const char *omit, const char *extra);
/* A valid token for TK_IMPU at `now` signed by k. */
char *tk_token(const struct tk_key *k, int64_t now);

/* A REGISTER as JsSIP sends it over WSS, To and From the given URIs (as
 * name-addr values, e.g. "<sip:a@b>"), with `auth_lines` (whole header lines
 * with CRLF, or "") among the headers. */
char *tk_register(const char *to, const char *from, const char *auth_lines);
/* The same for TK_IMPU with "Authorization: Bearer <token>". */
char *tk_register_with(const char *token);

#endif
