/* The attack suite of libwictoken: forged or wrong REGISTERs, each refused
 * with the status docs/DESIGN.md section 4 gives it (400 malformed, 401 with
 * error="invalid_token" for a bad token, 401 without it for no Bearer
 * credentials, 403 for a good token that does not grant the identity), and
 * never accepted. Keys are made with GnuTLS when the test starts; the clock
 * is fixed at TK_NOW. The last cases are the controls: the same builders
 * with nothing forged are accepted, so a refusal above is the check's doing
 * and not a broken fixture. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <gnutls/crypto.h>

#include "wictoken/wictoken.h"
#include "wictoken_testkit.h"

#define OTHER_ISSUER "https://other-wwsf.example.net"

static struct tk_key *ec, *rsa, *other, *attacker;
static struct wictoken_ctx *ctx;
static int64_t now = TK_NOW;

/* Claim text for signed_with(), which copies it. */
static const char *format_static(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *format_static(const char *fmt, ...) {
        static char buf[16384];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        return buf;
}

static int setup(void **state) {
        (void) state;
        ec = tk_key_new(TK_ES256, "ec-2026-11");
        rsa = tk_key_new(TK_RS256, "rsa-2026-11");
        other = tk_key_new(TK_ES256, "other-2026-11");
        attacker = tk_key_new(TK_ES256, "ec-2026-11");  /* same kid, not published */
        struct tk_key *ours[] = { ec, rsa }, *theirs[] = { other };
        char *jwks = tk_jwks(ours, 2), *jwks_other = tk_jwks(theirs, 1);
        if (wictoken_ctx_new(&ctx) < 0 || wictoken_add_issuer_jwks(ctx, TK_ISSUER, jwks, strlen(jwks)) < 0 ||
            wictoken_add_issuer_jwks(ctx, OTHER_ISSUER, jwks_other, strlen(jwks_other)) < 0 ||
            wictoken_set_audience(ctx, TK_AUDIENCE) < 0 || wictoken_set_realm(ctx, TK_REALM) < 0 ||
            wictoken_set_token_binding(ctx, 1) < 0)
                return -1;
        wictoken_set_clock(ctx, tk_clock, &now);
        free(jwks);
        free(jwks_other);
        return 0;
}

static int teardown(void **state) {
        (void) state;
        wictoken_ctx_free(ctx);
        tk_key_free(ec);
        tk_key_free(rsa);
        tk_key_free(other);
        tk_key_free(attacker);
        return 0;
}

/* ---- building forged requests --------------------------------------------- */

static char *signed_with(const struct tk_key *k, const char *omit, const char *extra) {
        char *h = tk_header(k), *c = tk_claims(now, TK_IMPU, TK_IMPI, omit, extra);
        char *t = tk_sign(k, h, c);
        free(h);
        free(c);
        return t;
}

static char *with_header(const struct tk_key *k, const char *header) {
        char *c = tk_claims(now, TK_IMPU, TK_IMPI, NULL, NULL);
        char *t = tk_sign(k, header, c);
        free(c);
        return t;
}

static char *reg(char *token) {
        char *m = tk_register_with(token);
        free(token);
        return m;
}

static char *reg_to_from(const char *to, const char *from) {
        char *t = tk_token(ec, now);
        char *auth = tk_format("Authorization: Bearer %s\r\n", t);
        char *m = tk_register(to, from, auth);
        free(t);
        free(auth);
        return m;
}

static char *unsigned_token(const char *header, const char *claims, const char *sig) {
        char *h = tk_b64url(header, strlen(header)), *c = tk_b64url(claims, strlen(claims));
        char *t = tk_format("%s.%s.%s", h, c, sig);
        free(h);
        free(c);
        return t;
}

static char *a_alg_none(void) {
        char *c = tk_claims(now, TK_IMPU, TK_IMPI, NULL, NULL);
        char *t = unsigned_token("{\"alg\":\"none\",\"kid\":\"ec-2026-11\",\"typ\":\"JWT\"}", c, "");
        char *t2 = tk_format("%sAA", t);   /* some signature bytes, in case an empty one is refused for that alone */
        free(c);
        free(t);
        return reg(t2);
}

static char *a_hs256_with_public_key(void) {
        /* The classic confusion: HMAC keyed with the public key's text. */
        char *jwk = tk_jwk_members(rsa);
        const char *header = "{\"alg\":\"HS256\",\"kid\":\"rsa-2026-11\",\"typ\":\"JWT\"}";
        char *c = tk_claims(now, TK_IMPU, TK_IMPI, NULL, NULL);
        char *h64 = tk_b64url(header, strlen(header)), *c64 = tk_b64url(c, strlen(c));
        char *input = tk_format("%s.%s", h64, c64);
        unsigned char mac[32];
        gnutls_hmac_fast(GNUTLS_MAC_SHA256, jwk, strlen(jwk), input, strlen(input), mac);
        char *m64 = tk_b64url(mac, 32);
        char *t = tk_format("%s.%s", input, m64);
        free(jwk);
        free(c);
        free(h64);
        free(c64);
        free(input);
        free(m64);
        return reg(t);
}

static char *a_unknown_kid(void) {
        return reg(with_header(ec, "{\"alg\":\"ES256\",\"kid\":\"no-such-key\",\"typ\":\"JWT\"}"));
}

static char *a_kid_of_other_alg(void) {
        /* Signed by the RSA key, but naming the EC key's kid with RS256. */
        return reg(with_header(rsa, "{\"alg\":\"RS256\",\"kid\":\"ec-2026-11\",\"typ\":\"JWT\"}"));
}

static char *a_flipped_signature_bit(void) {
        char *t = tk_token(ec, now);
        /* Flip a bit of the signature's first byte (the character after
         * the second dot holds its top 6 bits). */
        char *sig = strrchr(t, '.') + 1;
        static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        int v = (int) (strchr(A, sig[0]) - A);
        sig[0] = A[v ^ 0x20];
        return reg(t);
}

static char *a_changed_payload(void) {
        char *t = tk_token(ec, now);
        char *c = tk_claims(now, "sip:+15550009999@ims.example.com", TK_IMPI, NULL, NULL);
        char *c64 = tk_b64url(c, strlen(c));
        char *dot1 = strchr(t, '.'), *dot2 = strrchr(t, '.');
        char *forged = tk_format("%.*s.%s%s", (int) (dot1 - t), t, c64, dot2);
        free(t);
        free(c);
        free(c64);
        return reg(forged);
}

static char *a_der_signature(void) {
        char *h = tk_header(ec), *c = tk_claims(now, TK_IMPU, TK_IMPI, NULL, NULL);
        char *t = tk_sign_der(ec, h, c);
        free(h);
        free(c);
        return reg(t);
}

static char *a_truncated(void) {
        char *t = tk_token(ec, now);
        t[strlen(t) - 10] = '\0';
        return reg(t);
}

static char *a_extra_segment(void) {
        char *t = tk_token(ec, now);
        char *t2 = tk_format("%s.e30", t);
        free(t);
        return reg(t2);
}

static char *a_expired(void) {
        char *h = tk_header(ec), *c = tk_claims(now - 1000, TK_IMPU, TK_IMPI, NULL, NULL);
        char *t = tk_sign(ec, h, c);
        free(h);
        free(c);
        return reg(t);
}

static char *a_nbf_future(void) {
        return reg(signed_with(ec, "nbf", format_static("\"nbf\":%lld", (long long) now + 3600)));
}

static char *a_iat_future(void) {
        return reg(signed_with(ec, "iat", format_static("\"iat\":%lld", (long long) now + 86400)));
}

static char *a_wrong_iss(void) {
        return reg(signed_with(ec, "iss", "\"iss\":\"https://evil.example.org\""));
}

static char *a_iss_of_other_issuer(void) {
        /* A trusted issuer's name, signed with the key of the other one. */
        return reg(signed_with(other, NULL, NULL));
}

static char *a_wrong_aud(void) {
        return reg(signed_with(ec, "aud", "\"aud\":\"ims.other.example\""));
}

static char *a_aud_array_without_ours(void) {
        return reg(signed_with(ec, "aud", "\"aud\":[\"ims.other.example\",\"web.example.com\"]"));
}

static char *a_missing_exp(void) {
        return reg(signed_with(ec, "exp", NULL));
}

static char *a_missing_impu(void) {
        return reg(signed_with(ec, "impu", NULL));
}

static char *a_missing_impi(void) {
        return reg(signed_with(ec, "impi", NULL));
}

static char *a_missing_nbf(void) {
        return reg(signed_with(ec, "nbf", NULL));
}

static char *a_missing_iat(void) {
        return reg(signed_with(ec, "iat", NULL));
}

static char *a_to_not_token_impu(void) {
        return reg_to_from("<sip:+15550009999@ims.example.com>", "<sip:+15550009999@ims.example.com>");
}

static char *a_from_not_matching(void) {
        return reg_to_from("<" TK_IMPU ">", "<sip:+15550009999@ims.example.com>");
}

static char *a_display_name_trick(void) {
        return reg_to_from("\"" TK_IMPU "\" <sip:mallory@ims.example.com>", "<" TK_IMPU ">");
}

static char *a_user_case_trick(void) {
        char *t = signed_with(ec, "impu", "\"impu\":\"sip:alice@ims.example.com\"");
        char *auth = tk_format("Authorization: Bearer %s\r\n", t);
        char *m = tk_register("<sip:Alice@ims.example.com>", "<sip:Alice@ims.example.com>", auth);
        free(t);
        free(auth);
        return m;
}

static char *a_user_parameter_trick(void) {
        /* The granted IMPU hidden in a parameter of another one. */
        return reg_to_from("<sip:mallory@ims.example.com;x=sip:%2B15550001234%40ims.example.com>", "<" TK_IMPU ">");
}

static char *a_user_escape_trick(void) {
        /* "+" written %2B: the same character to RFC 3261 comparison, but
         * not byte for byte, and the core would see another user part. */
        return reg_to_from("<sip:%2B15550001234@ims.example.com>", "<sip:%2B15550001234@ims.example.com>");
}

static char *a_two_authorization(void) {
        char *t = tk_token(ec, now);
        char *auth = tk_format("Authorization: Bearer %s\r\nAuthorization: Bearer %s\r\n", t, t);
        char *m = tk_register("<" TK_IMPU ">", "<" TK_IMPU ">", auth);
        free(t);
        free(auth);
        return m;
}

static char *a_bearer_plus_digest(void) {
        char *t = tk_token(ec, now);
        char *auth = tk_format("Authorization: Bearer %s\r\nAuthorization: Digest username=\"" TK_IMPI "\", realm=\"" TK_REALM
                            "\", uri=\"sip:" TK_REALM "\", nonce=\"\", response=\"\", integrity-protected=\"auth-done\"\r\n",
                            t);
        char *m = tk_register("<" TK_IMPU ">", "<" TK_IMPU ">", auth);
        free(t);
        free(auth);
        return m;
}

static char *a_digest_auth_done_only(void) {
        /* The TNA header that only the eP-CSCF may add, sent by the client. */
        return tk_register("<" TK_IMPU ">", "<" TK_IMPU ">",
                           "Authorization: Digest username=\"" TK_IMPI "\", realm=\"" TK_REALM "\", uri=\"sip:" TK_REALM
                           "\", nonce=\"\", response=\"\", integrity-protected=\"auth-done\"\r\n");
}

static char *a_oversized_token(void) {
        char *pad = malloc(9001);
        memset(pad, 'A', 9000);
        pad[9000] = '\0';
        char *t = signed_with(ec, NULL, format_static("\"pad\":\"%s\"", pad));
        free(pad);
        return reg(t);
}

static char *a_outside_base64url(void) {
        char *t = tk_token(ec, now);
        char *dot = strchr(t, '.');
        dot[3] = '+';   /* base64, not base64url */
        return reg(t);
}

static char *a_padding(void) {
        char *t = tk_token(ec, now);
        char *t2 = tk_format("%s==", t);
        free(t);
        return reg(t2);
}

static char *a_unknown_crit(void) {
        return reg(with_header(ec, "{\"alg\":\"ES256\",\"kid\":\"ec-2026-11\",\"typ\":\"JWT\",\"crit\":[\"exp-ext\"],"
                                   "\"exp-ext\":1}"));
}

static char *a_jku_elsewhere(void) {
        return reg(with_header(attacker, "{\"alg\":\"ES256\",\"kid\":\"ec-2026-11\",\"typ\":\"JWT\","
                                         "\"jku\":\"https://evil.example.org/jwks.json\"}"));
}

static char *a_embedded_jwk(void) {
        char *jwk = tk_jwk_members(attacker);
        char *header = tk_format("{\"alg\":\"ES256\",\"kid\":\"ec-2026-11\",\"typ\":\"JWT\",\"jwk\":{%s}}", jwk);
        char *m = reg(with_header(attacker, header));
        free(jwk);
        free(header);
        return m;
}

static char *a_same_kid_other_key(void) {
        return reg(tk_token(attacker, now));
}

static char *a_typ_other(void) {
        return reg(with_header(ec, "{\"alg\":\"ES256\",\"kid\":\"ec-2026-11\",\"typ\":\"at+jwt\"}"));
}

static char *a_duplicate_claim(void) {
        /* Two impu members: a parser that keeps the last one would grant
         * another identity than the one a first-member reader checked. */
        return reg(signed_with(ec, NULL, "\"impu\":\"sip:mallory@ims.example.com\""));
}

static char *a_exp_as_string(void) {
        return reg(signed_with(ec, "exp", format_static("\"exp\":\"%lld\"", (long long) now + 300)));
}

static char *a_client_path(void) {
        char *t = tk_token(ec, now);
        char *auth = tk_format("Authorization: Bearer %s\r\nPath: <sip:evil.example.org;lr>\r\n", t);
        char *m = tk_register("<" TK_IMPU ">", "<" TK_IMPU ">", auth);
        free(t);
        free(auth);
        return m;
}

static char *a_no_authorization(void) {
        return tk_register("<" TK_IMPU ">", "<" TK_IMPU ">", "");
}

static char *a_content_length_lie(void) {
        char *m = reg(tk_token(ec, now));
        char *cl = strstr(m, "Content-Length: 0");
        cl[16] = '9';
        return m;
}

/* ---- the table --------------------------------------------------------- */

enum expect {
        MALFORMED,              /* 400 */
        NO_CREDENTIALS,         /* 401 without error= */
        INVALID_TOKEN,          /* 401 with error="invalid_token" */
        FORBIDDEN,              /* 403 */
        ACCEPTED,               /* controls */
};

struct attack {
        const char *name;
        char *(*build)(void);
        enum expect expect;
};

static const struct attack ATTACKS[] = {
        { "alg none", a_alg_none, INVALID_TOKEN },
        { "HS256 keyed with the public key", a_hs256_with_public_key, INVALID_TOKEN },
        { "unknown kid", a_unknown_kid, INVALID_TOKEN },
        { "kid of a key with another alg", a_kid_of_other_alg, INVALID_TOKEN },
        { "flipped signature bit", a_flipped_signature_bit, INVALID_TOKEN },
        { "changed payload", a_changed_payload, INVALID_TOKEN },
        { "ES256 signature in DER form", a_der_signature, INVALID_TOKEN },
        { "truncated token", a_truncated, INVALID_TOKEN },
        { "extra segment", a_extra_segment, INVALID_TOKEN },
        { "expired", a_expired, INVALID_TOKEN },
        { "nbf in the future", a_nbf_future, INVALID_TOKEN },
        { "iat far in the future", a_iat_future, INVALID_TOKEN },
        { "wrong iss", a_wrong_iss, INVALID_TOKEN },
        { "iss of one issuer, key of another", a_iss_of_other_issuer, INVALID_TOKEN },
        { "wrong aud", a_wrong_aud, INVALID_TOKEN },
        { "aud array without ours", a_aud_array_without_ours, INVALID_TOKEN },
        { "missing exp", a_missing_exp, INVALID_TOKEN },
        { "missing impu", a_missing_impu, INVALID_TOKEN },
        { "missing impi", a_missing_impi, INVALID_TOKEN },
        { "missing nbf", a_missing_nbf, INVALID_TOKEN },
        { "missing iat", a_missing_iat, INVALID_TOKEN },
        { "To is not the token's IMPU", a_to_not_token_impu, FORBIDDEN },
        { "From does not match", a_from_not_matching, FORBIDDEN },
        { "display-name trick", a_display_name_trick, FORBIDDEN },
        { "case trick in the user part", a_user_case_trick, FORBIDDEN },
        { "parameter trick in the URI", a_user_parameter_trick, FORBIDDEN },
        { "escape trick in the user part", a_user_escape_trick, FORBIDDEN },
        { "two Authorization headers", a_two_authorization, MALFORMED },
        { "Bearer plus Digest", a_bearer_plus_digest, MALFORMED },
        { "client's own auth-done Digest", a_digest_auth_done_only, NO_CREDENTIALS },
        { "oversized token", a_oversized_token, INVALID_TOKEN },
        { "characters outside base64url", a_outside_base64url, INVALID_TOKEN },
        { "base64 padding", a_padding, INVALID_TOKEN },
        { "unknown crit", a_unknown_crit, INVALID_TOKEN },
        { "jku pointing elsewhere", a_jku_elsewhere, INVALID_TOKEN },
        { "embedded jwk", a_embedded_jwk, INVALID_TOKEN },
        { "same kid, unpublished key", a_same_kid_other_key, INVALID_TOKEN },
        { "typ other than JWT", a_typ_other, INVALID_TOKEN },
        { "duplicate impu claim", a_duplicate_claim, INVALID_TOKEN },
        { "exp as a string", a_exp_as_string, INVALID_TOKEN },
        { "Path from the client", a_client_path, FORBIDDEN },
        { "no Authorization", a_no_authorization, NO_CREDENTIALS },
        { "Content-Length larger than the body", a_content_length_lie, MALFORMED },
};

static void check_one(const struct attack *a) {
        char *msg = a->build();
        struct wictoken_verdict *v = NULL;
        int r = wictoken_check_register(ctx, msg, strlen(msg), NULL, &v);
        if (r < 0)
                fail_msg("%s: no verdict: %s: %s", a->name, wictoken_strerror(r), wictoken_ctx_detail(ctx));
        int status = wictoken_verdict_status(v);
        const char *www = wictoken_verdict_www_authenticate(v);
        int expected = a->expect == MALFORMED ? 400 : a->expect == FORBIDDEN ? 403 : a->expect == ACCEPTED ? 200 : 401;
        print_message("  %-40s %d %s\n", a->name, status, wictoken_verdict_reason(v));
        if (status != expected)
                fail_msg("%s: status %d (%s), expected %d", a->name, status, wictoken_verdict_reason(v), expected);
        if (a->expect == ACCEPTED) {
                assert_true(wictoken_verdict_accepted(v));
        } else {
                assert_false(wictoken_verdict_accepted(v));
                assert_null(wictoken_verdict_forward(v, NULL));
                assert_null(wictoken_verdict_impu(v));
        }
        if (expected == 401) {
                assert_non_null(www);
                assert_non_null(strstr(www, "Bearer realm=\"" TK_REALM "\""));
                assert_non_null(strstr(www, "authz_server=\"" TK_ISSUER "\""));
                if ((strstr(www, "error=\"invalid_token\"") != NULL) != (a->expect == INVALID_TOKEN))
                        fail_msg("%s: WWW-Authenticate %s", a->name, www);
        } else
                assert_null(www);
        wictoken_verdict_free(v);
        free(msg);
}

static void test_attacks(void **state) {
        (void) state;
        size_t n = sizeof ATTACKS / sizeof *ATTACKS;
        assert_true(n >= 25);
        for (size_t i = 0; i < n; i++)
                check_one(&ATTACKS[i]);
}

/* ---- controls: the same builders, nothing forged ------------------------ */

static char *c_es256(void) {
        return reg(tk_token(ec, now));
}

static char *c_rs256(void) {
        return reg(tk_token(rsa, now));
}

static char *c_access_token_form(void) {
        char *t = tk_token(ec, now);
        char *auth = tk_format("Authorization: Bearer access_token=\"%s\"\r\n", t);
        char *m = tk_register("<" TK_IMPU ">", "<" TK_IMPU ">", auth);
        free(t);
        free(auth);
        return m;
}

static char *c_display_name_and_params(void) {
        return reg_to_from("\"Ann\" <" TK_IMPU ";user=phone>", "Ann <SIP:+15550001234@ims.example.com>");
}

static char *c_host_case(void) {
        return reg_to_from("<sip:+15550001234@IMS.Example.COM>", "<" TK_IMPU ">");
}

static char *c_aud_array_with_ours(void) {
        return reg(signed_with(ec, "aud", "\"aud\":[\"web.example.com\",\"" TK_AUDIENCE "\"]"));
}

static char *c_within_leeway(void) {
        /* Expired 30 s ago: inside the default 60 s leeway. */
        char *h = tk_header(ec), *c = tk_claims(now - 330, TK_IMPU, TK_IMPI, NULL, NULL);
        char *t = tk_sign(ec, h, c);
        free(h);
        free(c);
        return reg(t);
}

static char *c_exp_at_the_largest_integer(void) {
        /* Signed by the issuer, valid "for ever": accepted, and the expiry
         * check must not overflow on it (UBSan in the sanitizer build). */
        return reg(signed_with(ec, "exp", "\"exp\":9223372036854775807"));
}

static const struct attack CONTROLS[] = {
        { "ES256 token", c_es256, ACCEPTED },
        { "RS256 token", c_rs256, ACCEPTED },
        { "Bearer access_token=\"...\" (TS 24.371)", c_access_token_form, ACCEPTED },
        { "display names and URI parameters", c_display_name_and_params, ACCEPTED },
        { "host in another case", c_host_case, ACCEPTED },
        { "aud array with ours", c_aud_array_with_ours, ACCEPTED },
        { "expired within the leeway", c_within_leeway, ACCEPTED },
        { "exp at the largest integer", c_exp_at_the_largest_integer, ACCEPTED },
};

static void test_controls(void **state) {
        (void) state;
        for (size_t i = 0; i < sizeof CONTROLS / sizeof *CONTROLS; i++)
                check_one(&CONTROLS[i]);
}

/* A token replayed on another connection while token binding is on. */
static void test_token_bound_to_its_connection(void **state) {
        (void) state;
        char *msg = reg(tk_token(ec, now));
        struct wictoken_verdict *v;
        assert_int_equal(wictoken_check_register(ctx, msg, strlen(msg), "ws-1", &v), 0);
        assert_int_equal(wictoken_verdict_status(v), 200);
        wictoken_verdict_free(v);
        /* The same connection again (a re-REGISTER): fine. */
        assert_int_equal(wictoken_check_register(ctx, msg, strlen(msg), "ws-1", &v), 0);
        assert_int_equal(wictoken_verdict_status(v), 200);
        wictoken_verdict_free(v);
        assert_int_equal(wictoken_check_register(ctx, msg, strlen(msg), "ws-2", &v), 0);
        assert_int_equal(wictoken_verdict_status(v), 401);
        assert_non_null(strstr(wictoken_verdict_www_authenticate(v), "invalid_token"));
        wictoken_verdict_free(v);
        /* After it expires (and its leeway), the binding is gone, and so is
         * the token's validity. */
        int64_t saved = now;
        now += 300 + 61;
        assert_int_equal(wictoken_check_register(ctx, msg, strlen(msg), "ws-2", &v), 0);
        assert_int_equal(wictoken_verdict_status(v), 401);
        assert_non_null(strstr(wictoken_verdict_reason(v), "expired"));
        wictoken_verdict_free(v);
        now = saved;
        free(msg);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_attacks),
                cmocka_unit_test(test_controls),
                cmocka_unit_test(test_token_bound_to_its_connection),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
