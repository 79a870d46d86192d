/* libwictoken's checks other than the attacks: JWKS loading and its
 * refusals, reload that keeps the old keys when the new file is bad, the
 * Origin allow-list, the forwarded REGISTER (no Bearer, Path, the TNA
 * Digest), Bearer stripping on other requests, configuration errors, and
 * the error strings. The attack suite is test_wictoken_attacks.c. */
#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "wictoken/wictoken.h"
#include "wictoken_testkit.h"

static struct tk_key *ec, *ec2, *rsa;
static int64_t now = TK_NOW;

static int setup(void **state) {
        (void) state;
        ec = tk_key_new(TK_ES256, "ec-1");
        ec2 = tk_key_new(TK_ES256, "ec-2");
        rsa = tk_key_new(TK_RS256, "rsa-1");
        return 0;
}

static int teardown(void **state) {
        (void) state;
        tk_key_free(ec);
        tk_key_free(ec2);
        tk_key_free(rsa);
        return 0;
}

static struct wictoken_ctx *new_ctx(struct tk_key *const *keys, size_t n) {
        struct wictoken_ctx *ctx;
        char *jwks = tk_jwks(keys, n);
        assert_int_equal(wictoken_ctx_new(&ctx), 0);
        assert_int_equal(wictoken_add_issuer_jwks(ctx, TK_ISSUER, jwks, strlen(jwks)), 0);
        assert_int_equal(wictoken_set_audience(ctx, TK_AUDIENCE), 0);
        assert_int_equal(wictoken_set_realm(ctx, TK_REALM), 0);
        wictoken_set_clock(ctx, tk_clock, &now);
        free(jwks);
        return ctx;
}

static int status_of(struct wictoken_ctx *ctx, const char *msg) {
        struct wictoken_verdict *v;
        assert_int_equal(wictoken_check_register(ctx, msg, strlen(msg), NULL, &v), 0);
        int status = wictoken_verdict_status(v);
        wictoken_verdict_free(v);
        return status;
}

static int add_jwks(struct wictoken_ctx *ctx, const char *jwks) {
        return wictoken_add_issuer_jwks(ctx, TK_ISSUER, jwks, strlen(jwks));
}

/* A JWKS of one key with its members changed: `drop` removed (a member name
 * with its quotes, e.g. "\"alg\"") and `extra` members added. */
static char *one_key(const struct tk_key *k, const char *extra) {
        char *m = tk_jwk_members(k);
        char *s = tk_format("{\"keys\":[{%s%s%s}]}", m, extra ? "," : "", extra ? extra : "");
        free(m);
        return s;
}

static void expect_refused(const char *jwks, const char *detail_part) {
        struct wictoken_ctx *ctx;
        assert_int_equal(wictoken_ctx_new(&ctx), 0);
        int r = add_jwks(ctx, jwks);
        if (r != WICTOKEN_E_JWKS || !strstr(wictoken_ctx_detail(ctx), detail_part))
                fail_msg("JWKS %.80s...: %d %s (expected JWKS error with \"%s\")", jwks, r, wictoken_ctx_detail(ctx),
                         detail_part);
        assert_int_equal(wictoken_key_count(ctx), 0);
        wictoken_ctx_free(ctx);
}

static void test_jwks_refusals(void **state) {
        (void) state;
        char *s;
        expect_refused("", "not JSON");
        expect_refused("[]", "no \"keys\" array");
        expect_refused("{\"keys\":{}}", "no \"keys\" array");
        expect_refused("{\"keys\":[1]}", "not an object");
        /* Private members: a leaked private key is refused, not skipped. */
        s = one_key(ec, "\"d\":\"AAAA\"");
        expect_refused(s, "private member \"d\"");
        free(s);
        s = one_key(rsa, "\"p\":\"AAAA\"");
        expect_refused(s, "private member \"p\"");
        free(s);
        expect_refused("{\"keys\":[{\"kty\":\"oct\",\"kid\":\"h\",\"alg\":\"HS256\",\"k\":\"c2VjcmV0\"}]}",
                       "private member \"k\"");
        /* Algorithm pinning needs alg, and it must fit the key type. */
        expect_refused("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\",\"kid\":\"e\"}]}",
                       "needs kty and alg");
        expect_refused("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\",\"kid\":\"e\","
                       "\"alg\":\"RS256\"}]}",
                       "alg RS256 with kty EC");
        expect_refused("{\"keys\":[{\"kty\":\"EC\",\"kid\":\"e\",\"alg\":\"ES384\"}]}", "not accepted");
        expect_refused("{\"keys\":[{\"kty\":\"EC\",\"kid\":\"e\",\"alg\":\"none\"}]}", "not accepted");
        /* A point that is not on the curve. */
        expect_refused("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"e\",\"alg\":\"ES256\","
                       "\"x\":\"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
                       "\"y\":\"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}]}",
                       "not a point");
        expect_refused("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"e\",\"alg\":\"ES256\","
                       "\"x\":\"AQ\",\"y\":\"AQ\"}]}",
                       "32 bytes");
        /* A small RSA key (1024 bits). */
        char n1024[172];
        memset(n1024, 'w', 171);
        n1024[171] = '\0';
        s = tk_format("{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"r\",\"alg\":\"RS256\",\"n\":\"%s\",\"e\":\"AQAB\"}]}", n1024);
        expect_refused(s, "1024 bits");
        free(s);
        s = one_key(ec, NULL);
        memcpy(strstr(s, "\"use\":\"sig\"") + 7, "enc", 3);
        expect_refused(s, "use is not");
        free(s);
        /* A member given twice. */
        s = one_key(ec, "\"alg\":\"ES256\"");
        expect_refused(s, "duplicate");
        free(s);
        /* The same kid twice. */
        struct tk_key *twice[] = { ec, ec };
        s = tk_jwks(twice, 2);
        expect_refused(s, "used twice");
        free(s);
        expect_refused("{\"keys\":[{\"kty\":\"EC\",\"alg\":\"ES256\"}]}", "no kid");
        /* RSA exponents that make forgery easy or are not what key
         * generators make: 1, 3, an even one, a leading zero, 5 bytes. */
        char *m = tk_jwk_members(rsa);
        char *at = strstr(m, "\"e\":\"AQAB\"");
        assert_non_null(at);
        static const char *const exponents[] = { "AQ", "Aw", "AQAA", "AAEAAQ", "AQAAAAE" };
        for (size_t i = 0; i < sizeof exponents / sizeof *exponents; i++) {
                s = tk_format("{\"keys\":[{%.*s\"e\":\"%s\"%s}]}", (int) (at - m), m, exponents[i],
                           at + strlen("\"e\":\"AQAB\""));
                expect_refused(s, "e must be an odd number");
                free(s);
        }
        /* The usual one loads. */
        s = tk_format("{\"keys\":[{%s}]}", m);
        struct wictoken_ctx *ok;
        assert_int_equal(wictoken_ctx_new(&ok), 0);
        assert_int_equal(add_jwks(ok, s), 0);
        wictoken_ctx_free(ok);
        free(s);
        free(m);
}

static void test_jwks_file_and_reload(void **state) {
        (void) state;
        char dir[] = "/tmp/wictoken-test-XXXXXX";
        assert_non_null(mkdtemp(dir));
        char *path = tk_format("%s/jwks.json", dir);
        struct tk_key *one[] = { ec }, *two[] = { ec, rsa };
        char *jwks1 = tk_jwks(one, 1), *jwks2 = tk_jwks(two, 2);
        FILE *f = fopen(path, "w");
        fputs(jwks1, f);
        fclose(f);

        struct wictoken_ctx *ctx;
        assert_int_equal(wictoken_ctx_new(&ctx), 0);
        assert_int_equal(wictoken_add_issuer(ctx, TK_ISSUER, "/nonexistent/jwks.json"), WICTOKEN_E_IO);
        assert_non_null(strstr(wictoken_ctx_detail(ctx), "/nonexistent/jwks.json"));
        assert_int_equal(wictoken_add_issuer(ctx, TK_ISSUER, path), 0);
        assert_int_equal(wictoken_add_issuer(ctx, TK_ISSUER, path), WICTOKEN_E_INVALID_ARGUMENT);
        assert_int_equal(wictoken_set_audience(ctx, TK_AUDIENCE), 0);
        assert_int_equal(wictoken_set_realm(ctx, TK_REALM), 0);
        wictoken_set_clock(ctx, tk_clock, &now);
        assert_int_equal(wictoken_key_count(ctx), 1);

        char *et = tk_token(ec, now), *es = tk_register_with(et), *rs = NULL;
        char *rt = tk_token(rsa, now);
        rs = tk_register_with(rt);
        assert_int_equal(status_of(ctx, es), 200);
        assert_int_equal(status_of(ctx, rs), 401);      /* rsa-1 not published yet */

        /* The next key is published: a reload picks it up. */
        f = fopen(path, "w");
        fputs(jwks2, f);
        fclose(f);
        assert_int_equal(wictoken_reload(ctx), 2);
        assert_int_equal(status_of(ctx, rs), 200);

        /* A broken file: the reload fails, says why, and the keys stay. */
        f = fopen(path, "w");
        fputs("{\"keys\":[{\"kty\":\"EC\",", f);
        fclose(f);
        assert_int_equal(wictoken_reload(ctx), WICTOKEN_E_JWKS);
        assert_non_null(strstr(wictoken_ctx_detail(ctx), path));
        assert_int_equal(wictoken_key_count(ctx), 2);
        assert_int_equal(status_of(ctx, es), 200);
        assert_int_equal(status_of(ctx, rs), 200);
        /* A missing file: the same. */
        unlink(path);
        assert_int_equal(wictoken_reload(ctx), WICTOKEN_E_IO);
        assert_int_equal(status_of(ctx, rs), 200);

        /* The key retired: its tokens are refused after the reload. */
        f = fopen(path, "w");
        fputs(jwks1, f);
        fclose(f);
        assert_int_equal(wictoken_reload(ctx), 1);
        assert_int_equal(status_of(ctx, rs), 401);
        assert_int_equal(status_of(ctx, es), 200);

        wictoken_ctx_free(ctx);
        unlink(path);
        rmdir(dir);
        free(path);
        free(jwks1);
        free(jwks2);
        free(es);
        free(rs);
        free(rt);
        free(et);
}

static void test_origin(void **state) {
        (void) state;
        struct wictoken_ctx *ctx;
        assert_int_equal(wictoken_ctx_new(&ctx), 0);
        assert_int_equal(wictoken_check_origin(ctx, "https://wwsf.example.com"), WICTOKEN_E_ORIGIN);
        assert_int_equal(wictoken_allow_origin(ctx, "https://wwsf.example.com"), 0);
        assert_int_equal(wictoken_allow_origin(ctx, "https://localhost:8443/"), 0);
        assert_int_equal(wictoken_check_origin(ctx, "https://wwsf.example.com"), 0);
        assert_int_equal(wictoken_check_origin(ctx, "https://WWSF.example.com/"), 0);
        assert_int_equal(wictoken_check_origin(ctx, "https://localhost:8443"), 0);
        assert_int_equal(wictoken_check_origin(ctx, "http://wwsf.example.com"), WICTOKEN_E_ORIGIN);
        assert_int_equal(wictoken_check_origin(ctx, "https://wwsf.example.com.evil.org"), WICTOKEN_E_ORIGIN);
        assert_int_equal(wictoken_check_origin(ctx, "https://wwsf.example.co"), WICTOKEN_E_ORIGIN);
        assert_int_equal(wictoken_check_origin(ctx, "null"), WICTOKEN_E_ORIGIN);
        assert_int_equal(wictoken_check_origin(ctx, ""), WICTOKEN_E_ORIGIN);
        assert_int_equal(wictoken_check_origin(ctx, NULL), WICTOKEN_E_ORIGIN);
        assert_int_equal(wictoken_allow_origin(ctx, "https://x\r\nInjected: 1"), WICTOKEN_E_INVALID_ARGUMENT);
        wictoken_ctx_free(ctx);
}

static size_t count(const char *hay, size_t len, const char *needle) {
        size_t n = 0, k = strlen(needle);
        for (size_t i = 0; i + k <= len; i++)
                if (memcmp(hay + i, needle, k) == 0)
                        n++;
        return n;
}

static void test_forward(void **state) {
        (void) state;
        struct tk_key *keys[] = { ec };
        struct wictoken_ctx *ctx = new_ctx(keys, 1);
        char *token = tk_token(ec, now);
        char *msg = tk_register_with(token);
        struct wictoken_verdict *v;
        assert_int_equal(wictoken_check_register(ctx, msg, strlen(msg), NULL, &v), 0);
        assert_true(wictoken_verdict_accepted(v));
        assert_string_equal(wictoken_verdict_impu(v), TK_IMPU);
        assert_string_equal(wictoken_verdict_impi(v), TK_IMPI);
        assert_int_equal(wictoken_verdict_exp(v), now + 300);
        assert_non_null(wictoken_verdict_jti(v));
        assert_null(wictoken_verdict_www_authenticate(v));
        assert_string_equal(wictoken_verdict_path(v), "<sip:ep-cscf." TK_REALM ";lr>");
        assert_string_equal(wictoken_verdict_tna_authorization(v),
                            "Digest username=\"" TK_IMPI "\", realm=\"" TK_REALM "\", uri=\"sip:" TK_REALM
                            "\", nonce=\"\", response=\"\", integrity-protected=\"auth-done\"");
        size_t len;
        const char *f = wictoken_verdict_forward(v, &len);
        assert_non_null(f);
        assert_int_equal(strlen(f), len);
        /* The token never reaches the core. */
        assert_null(strstr(f, "Bearer"));
        assert_int_equal(count(f, len, strchr(token, '.') + 1), 0);
        assert_int_equal(count(f, len, "\r\nAuthorization: Digest username=\"" TK_IMPI "\""), 1);
        assert_int_equal(count(f, len, "\r\nAuthorization:"), 1);
        assert_int_equal(count(f, len, "\r\nPath: <sip:ep-cscf." TK_REALM ";lr>\r\n"), 1);
        /* The rest is as received: the request line, the other headers, the
         * end of the head and the (empty) body. */
        assert_memory_equal(f, "REGISTER sip:" TK_REALM " SIP/2.0\r\nVia: ", 33);
        assert_int_equal(count(f, len, "\r\nContact: <sip:q1vd2d8u@4hd8s2k1mq0r.invalid;transport=ws>"), 1);
        assert_int_equal(count(f, len, "\r\nContent-Length: 0\r\n"), 1);
        assert_memory_equal(f + len - 4, "\r\n\r\n", 4);
        assert_int_equal(len, strlen(msg) - strlen("Authorization: Bearer \r\n") - strlen(token) +
                                      strlen("Path: <sip:ep-cscf." TK_REALM ";lr>\r\n") + strlen("Authorization: \r\n") +
                                      strlen(wictoken_verdict_tna_authorization(v)));
        wictoken_verdict_free(v);

        /* Bearer credentials in a Proxy-Authorization go too. */
        char *auth = tk_format("Authorization: Bearer %s\r\nProxy-Authorization: Bearer %s\r\n", token, token);
        char *both = tk_register("<" TK_IMPU ">", "<" TK_IMPU ">", auth);
        assert_int_equal(wictoken_check_register(ctx, both, strlen(both), NULL, &v), 0);
        assert_int_equal(wictoken_verdict_status(v), 200);
        f = wictoken_verdict_forward(v, &len);
        assert_null(strstr(f, "Bearer"));
        assert_null(strstr(f, "Proxy-Authorization"));
        assert_int_equal(count(f, len, "\r\nAuthorization:"), 1);
        wictoken_verdict_free(v);
        free(auth);
        free(both);

        /* A configured Path value is used as is. */
        assert_int_equal(wictoken_set_path(ctx, "<sip:edge-1.ims.example.com:5061;lr;ob>"), 0);
        assert_int_equal(wictoken_check_register(ctx, msg, strlen(msg), NULL, &v), 0);
        f = wictoken_verdict_forward(v, &len);
        assert_int_equal(count(f, len, "\r\nPath: <sip:edge-1.ims.example.com:5061;lr;ob>\r\n"), 1);
        wictoken_verdict_free(v);
        free(token);
        free(msg);
        wictoken_ctx_free(ctx);
}

static void test_strip_bearer(void **state) {
        (void) state;
        struct tk_key *keys[] = { ec };
        struct wictoken_ctx *ctx = new_ctx(keys, 1);
        char *token = tk_token(ec, now);
        char *invite = tk_format("INVITE sip:+15550005678@" TK_REALM " SIP/2.0\r\n"
                              "Via: SIP/2.0/WSS h.invalid;branch=z9hG4bK77\r\n"
                              "Max-Forwards: 70\r\n"
                              "To: <sip:+15550005678@" TK_REALM ">\r\n"
                              "From: <" TK_IMPU ">;tag=1\r\n"
                              "Call-ID: c1\r\n"
                              "CSeq: 1 INVITE\r\n"
                              "Authorization: Bearer %s\r\n"
                              "Proxy-Authorization: bearer %s\r\n"
                              "Content-Type: application/sdp\r\n"
                              "Content-Length: 4\r\n"
                              "\r\n"
                              "v=0\n",
                              token, token);
        char *out;
        size_t len;
        assert_int_equal(wictoken_strip_bearer(ctx, invite, strlen(invite), &out, &len), 2);
        assert_null(strstr(out, "earer"));
        assert_int_equal(count(out, len, "\r\nContent-Length: 4\r\n\r\nv=0\n"), 1);
        assert_int_equal(len, strlen(out));
        free(out);
        /* A check_register() of it says: not a REGISTER. */
        struct wictoken_verdict *v = (struct wictoken_verdict *) 1;
        assert_int_equal(wictoken_check_register(ctx, invite, strlen(invite), NULL, &v), WICTOKEN_E_NOT_REGISTER);
        assert_null(v);
        /* Nothing to strip: a copy. */
        const char *bye = "BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/WSS h.invalid;branch=z9hG4bK1\r\nCall-ID: c\r\n"
                          "Content-Length: 0\r\n\r\n";
        assert_int_equal(wictoken_strip_bearer(ctx, bye, strlen(bye), &out, &len), 0);
        assert_int_equal(len, strlen(bye));
        assert_memory_equal(out, bye, len);
        free(out);
        assert_int_equal(wictoken_strip_bearer(ctx, "garbage", 7, &out, &len), WICTOKEN_E_MALFORMED);
        assert_null(out);
        free(invite);
        free(token);
        wictoken_ctx_free(ctx);
}

static void test_configuration_errors(void **state) {
        (void) state;
        struct wictoken_ctx *ctx;
        struct wictoken_verdict *v;
        const char *msg = "REGISTER sip:x SIP/2.0\r\n\r\n";
        assert_int_equal(wictoken_ctx_new(NULL), WICTOKEN_E_INVALID_ARGUMENT);
        assert_int_equal(wictoken_ctx_new(&ctx), 0);
        assert_int_equal(wictoken_check_register(ctx, msg, strlen(msg), NULL, &v), WICTOKEN_E_CONFIG);
        assert_int_equal(wictoken_set_leeway(ctx, -1), WICTOKEN_E_INVALID_ARGUMENT);
        assert_int_equal(wictoken_set_leeway(ctx, 601), WICTOKEN_E_INVALID_ARGUMENT);
        assert_int_equal(wictoken_set_leeway(ctx, 0), 0);
        assert_int_equal(wictoken_set_realm(ctx, "ims\"x"), WICTOKEN_E_INVALID_ARGUMENT);
        assert_int_equal(wictoken_set_realm(ctx, ""), WICTOKEN_E_INVALID_ARGUMENT);
        assert_int_equal(wictoken_set_audience(ctx, "a\nb"), WICTOKEN_E_INVALID_ARGUMENT);
        assert_int_equal(wictoken_add_issuer_jwks(ctx, "", "{}", 2), WICTOKEN_E_INVALID_ARGUMENT);
        assert_int_equal(wictoken_key_count(ctx), 0);
        wictoken_ctx_free(ctx);
        wictoken_ctx_free(NULL);
        wictoken_verdict_free(NULL);
        assert_int_equal(wictoken_verdict_status(NULL), 0);
        /* Every code has a name; unknown ones too. */
        for (int code = 0; code >= WICTOKEN_E_INTERNAL; code--)
                assert_string_not_equal(wictoken_strerror(code), "unknown error");
        assert_string_equal(wictoken_strerror(-1000), "unknown error");
        /* project()'s version, passed in by the build. */
        assert_string_equal(wictoken_version(), WWSF_VERSION);
}

static void test_leeway_zero(void **state) {
        (void) state;
        struct tk_key *keys[] = { ec };
        struct wictoken_ctx *ctx = new_ctx(keys, 1);
        char *h = tk_header(ec), *c = tk_claims(now - 301, TK_IMPU, TK_IMPI, NULL, NULL);
        char *t = tk_sign(ec, h, c);
        char *msg = tk_register_with(t);
        assert_int_equal(status_of(ctx, msg), 200);     /* 1 s late, 60 s leeway */
        assert_int_equal(wictoken_set_leeway(ctx, 0), 0);
        assert_int_equal(status_of(ctx, msg), 401);
        free(h);
        free(c);
        free(t);
        free(msg);
        wictoken_ctx_free(ctx);
}

static void test_malformed_is_400(void **state) {
        (void) state;
        struct tk_key *keys[] = { ec };
        struct wictoken_ctx *ctx = new_ctx(keys, 1);
        char *token = tk_token(ec, now), *msg = tk_register_with(token);
        char *lf = strdup(msg);
        /* A bare LF in the head. */
        *strstr(lf, "\r\nCSeq") = ' ';
        assert_int_equal(status_of(ctx, lf), 400);
        /* No To. */
        char *noto = strdup(msg);
        memcpy(strstr(noto, "\r\nTo:") + 2, "Xy", 2);
        assert_int_equal(status_of(ctx, noto), 400);
        /* Over 64 KiB. */
        size_t big = 70000;
        char *huge = malloc(big);
        memset(huge, 'a', big);
        struct wictoken_verdict *v;
        assert_int_equal(wictoken_check_register(ctx, huge, big, NULL, &v), 0);
        assert_int_equal(wictoken_verdict_status(v), 400);
        wictoken_verdict_free(v);
        free(huge);
        free(lf);
        free(noto);
        free(msg);
        free(token);
        wictoken_ctx_free(ctx);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_jwks_refusals),
                cmocka_unit_test(test_jwks_file_and_reload),
                cmocka_unit_test(test_origin),
                cmocka_unit_test(test_forward),
                cmocka_unit_test(test_strip_bearer),
                cmocka_unit_test(test_configuration_errors),
                cmocka_unit_test(test_leeway_zero),
                cmocka_unit_test(test_malformed_is_400),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
