/* Signing keys, the JWKS and the tokens of docs/DESIGN.md section 3. Every token is
 * checked here without the code that made it: the compact JWS is split and
 * decoded by hand, the claims read with jansson, and the signature verified
 * with GnuTLS from the public JWK alone, and again with libjwt 1.10.2, a
 * second implementation that shares none of the token code (the only place
 * the project uses libjwt; README.md says why tokens are not signed with it). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <jansson.h>
#include <jwt.h>

#include "tokens/tokens.h"

#define T0 INT64_C(1790000000) /* 2026-09-21 */
#define TTL 300

struct fixture {
        char tmp[64];
        char dir[96]; /* the keys directory, created by the first generate */
        char err[512];
};

static int setup(void **state) {
        struct fixture *fx = calloc(1, sizeof *fx);
        strcpy(fx->tmp, "/tmp/wwsf-tokens-XXXXXX");
        assert_non_null(mkdtemp(fx->tmp));
        snprintf(fx->dir, sizeof fx->dir, "%s/keys", fx->tmp);
        *state = fx;
        return 0;
}

static int teardown(void **state) {
        struct fixture *fx = *state;
        char cmd[160];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->tmp);
        assert_int_equal(system(cmd), 0);
        free(fx);
        return 0;
}

/* ---- helpers ------------------------------------------------------------- */

static void write_file(const char *dir, const char *name, const void *data, size_t len) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        assert_int_equal(fwrite(data, 1, len, f), len);
        assert_int_equal(fclose(f), 0);
}

static char *read_file(const char *dir, const char *name) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        static char buf[1 << 16];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        return strdup(buf);
}

static mode_t mode_of(const char *dir, const char *name) {
        char path[512];
        snprintf(path, sizeof path, "%s%s%s", dir, name ? "/" : "", name ? name : "");
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        return st.st_mode & 07777;
}

static bool file_exists(const char *dir, const char *name) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        return access(path, F_OK) == 0;
}

static void generate(struct fixture *fx, enum token_alg alg, int64_t now, char kid[TOKEN_KID_MAX + 1]) {
        int r = tokens_keys_generate(fx->dir, alg, now, kid, fx->err, sizeof fx->err);
        if (r < 0)
                fail_msg("generate: %s", fx->err);
}

static void activate(struct fixture *fx, const char *kid, int64_t now) {
        int r = tokens_keys_activate(fx->dir, kid, now, fx->err, sizeof fx->err);
        if (r < 0)
                fail_msg("activate %s: %s", kid, fx->err);
}

static struct token_keyring *load(struct fixture *fx, int64_t now) {
        struct token_keyring *k = NULL;
        int r = tokens_keyring_load(fx->dir, now, TTL, &k, fx->err, sizeof fx->err);
        if (r < 0)
                fail_msg("load: %s", fx->err);
        assert_non_null(k);
        return k;
}

struct info_query {
        const char *kid;
        struct token_key_info info;
        int found, total;
};

static int info_cb(const struct token_key_info *k, void *userdata) {
        struct info_query *q = userdata;
        q->total++;
        if (strcmp(k->kid, q->kid) == 0) {
                q->info = *k;
                q->found++;
        }
        return 0;
}

static struct token_key_info info(struct fixture *fx, const char *kid, int64_t now) {
        struct info_query q = { .kid = kid };
        assert_int_equal(tokens_keys_list(fx->dir, now, TTL, info_cb, &q, fx->err, sizeof fx->err), 0);
        assert_int_equal(q.found, 1);
        return q.info;
}

/* Base64url without padding, decoded independently of src/tokens. */
static uint8_t *b64url_decode(const char *s, size_t n, size_t *ret_len) {
        static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        assert_true(n % 4 != 1);
        uint8_t *out = malloc(n * 3 / 4 + 3);
        uint32_t acc = 0;
        int bits = 0;
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
                const char *p = memchr(alphabet, s[i], 64);
                if (!p || !s[i])
                        fail_msg("'%c' is not base64url", s[i]);
                acc = acc << 6 | (uint32_t) (p - alphabet);
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        out[o++] = (uint8_t) (acc >> bits);
                }
        }
        /* No padding, and the spare bits are zero (canonical encoding). */
        assert_int_equal(acc & ((1u << bits) - 1), 0);
        *ret_len = o;
        return out;
}

static uint8_t *b64url_decode_str(const char *s, size_t *ret_len) {
        assert_non_null(s);
        return b64url_decode(s, strlen(s), ret_len);
}

static json_t *b64url_json(const char *s, size_t n) {
        size_t len;
        uint8_t *raw = b64url_decode(s, n, &len);
        json_error_t jerr;
        json_t *v = json_loadb((const char *) raw, len, JSON_REJECT_DUPLICATES, &jerr);
        free(raw);
        if (!v)
                fail_msg("segment is not JSON: %s", jerr.text);
        return v;
}

struct jws {
        json_t *header, *claims;
        uint8_t *sig;
        size_t sig_len;
        gnutls_datum_t input; /* header.payload, what was signed */
};

static struct jws split_jws(const char *token) {
        const char *d1 = strchr(token, '.');
        assert_non_null(d1);
        const char *d2 = strchr(d1 + 1, '.');
        assert_non_null(d2);
        assert_null(strchr(d2 + 1, '.'));
        struct jws j = {
                .header = b64url_json(token, (size_t) (d1 - token)),
                .claims = b64url_json(d1 + 1, (size_t) (d2 - d1 - 1)),
                .input = { (unsigned char *) token, (unsigned) (d2 - token) },
        };
        j.sig = b64url_decode(d2 + 1, strlen(d2 + 1), &j.sig_len);
        return j;
}

static void jws_done(struct jws *j) {
        json_decref(j->header);
        json_decref(j->claims);
        free(j->sig);
}

/* The JWK of kid in a JWKS text (a new reference), or NULL. */
static json_t *find_jwk(const char *jwks, const char *kid) {
        json_t *root = json_loads(jwks, 0, NULL);
        assert_non_null(root);
        json_t *keys = json_object_get(root, "keys"), *found = NULL;
        assert_true(json_is_array(keys));
        for (size_t i = 0; i < json_array_size(keys); i++) {
                json_t *k = json_array_get(keys, i);
                if (strcmp(json_string_value(json_object_get(k, "kid")), kid) == 0)
                        found = json_incref(k);
        }
        json_decref(root);
        return found;
}

static gnutls_pubkey_t pubkey_from_jwk(json_t *jwk) {
        gnutls_pubkey_t pub;
        assert_int_equal(gnutls_pubkey_init(&pub), 0);
        const char *kty = json_string_value(json_object_get(jwk, "kty"));
        assert_non_null(kty);
        size_t alen, blen;
        if (strcmp(kty, "EC") == 0) {
                uint8_t *x = b64url_decode_str(json_string_value(json_object_get(jwk, "x")), &alen);
                uint8_t *y = b64url_decode_str(json_string_value(json_object_get(jwk, "y")), &blen);
                assert_int_equal(alen, 32);
                assert_int_equal(blen, 32);
                gnutls_datum_t dx = { x, 32 }, dy = { y, 32 };
                assert_int_equal(gnutls_pubkey_import_ecc_raw(pub, GNUTLS_ECC_CURVE_SECP256R1, &dx, &dy), 0);
                free(x);
                free(y);
        } else {
                assert_string_equal(kty, "RSA");
                uint8_t *n = b64url_decode_str(json_string_value(json_object_get(jwk, "n")), &alen);
                uint8_t *e = b64url_decode_str(json_string_value(json_object_get(jwk, "e")), &blen);
                gnutls_datum_t dn = { n, (unsigned) alen }, de = { e, (unsigned) blen };
                assert_int_equal(gnutls_pubkey_import_rsa_raw(pub, &dn, &de), 0);
                free(n);
                free(e);
        }
        return pub;
}

/* Verifies the JWS signature with GnuTLS from the JWKS; returns GnuTLS's
 * answer (0 = valid). ES256 is R||S in JOSE, DER for GnuTLS. */
static int verify_jws(const char *jwks, const char *kid, const struct jws *j) {
        json_t *jwk = find_jwk(jwks, kid);
        assert_non_null(jwk);
        gnutls_pubkey_t pub = pubkey_from_jwk(jwk);
        int rc;
        if (strcmp(json_string_value(json_object_get(jwk, "alg")), "ES256") == 0) {
                assert_int_equal(j->sig_len, 64);
                gnutls_datum_t r = { j->sig, 32 }, s = { j->sig + 32, 32 }, der = { 0 };
                assert_int_equal(gnutls_encode_rs_value(&der, &r, &s), 0);
                rc = gnutls_pubkey_verify_data2(pub, GNUTLS_SIGN_ECDSA_SHA256, 0, &j->input, &der);
                gnutls_free(der.data);
        } else {
                gnutls_datum_t sig = { j->sig, (unsigned) j->sig_len };
                rc = gnutls_pubkey_verify_data2(pub, GNUTLS_SIGN_RSA_SHA256, 0, &j->input, &sig);
        }
        gnutls_pubkey_deinit(pub);
        json_decref(jwk);
        return rc;
}

/* The independent check: libjwt 1.10.2 with the public key PEM made from the
 * JWK. Returns jwt_decode()'s answer; on success the token's alg must be alg,
 * as the JWK says, and its impu claim impu. */
static int libjwt_verify(const char *jwks, const char *kid, const char *token, jwt_alg_t alg,
                         const char *impu) {
        json_t *jwk = find_jwk(jwks, kid);
        gnutls_pubkey_t pub = pubkey_from_jwk(jwk);
        gnutls_datum_t pem = { 0 };
        assert_int_equal(gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_PEM, &pem), 0);
        jwt_t *jwt = NULL;
        int r = jwt_decode(&jwt, token, pem.data, (int) pem.size);
        if (r == 0) {
                assert_string_equal(jwt_get_grant(jwt, "impu"), impu);
                assert_int_equal(jwt_get_alg(jwt), alg);
                assert_int_equal(jwt_str_alg(json_string_value(json_object_get(jwk, "alg"))), alg);
        }
        jwt_free(jwt);
        gnutls_free(pem.data);
        gnutls_pubkey_deinit(pub);
        json_decref(jwk);
        return r;
}

static struct token_claims sample_claims(void) {
        return (struct token_claims) {
                .iss = "https://wwsf.example.com",
                .aud = "ims.example.com",
                .sub = "u-5f2c9a",
                .impu = "sip:+15550100007@ims.example.com",
                .impi = "+15550100007@ims.example.com",
                .wwsf = "wwsf.example.com",
                .anon = false,
                .iat = T0,
                .nbf = T0 - 30,
                .exp = T0 + TTL,
                .lease_exp = T0 + 3600,
        };
}

static char *sign(struct fixture *fx, const struct token_keyring *k, const struct token_claims *c) {
        char *token = NULL;
        int r = tokens_sign(k, c, &token, NULL, fx->err, sizeof fx->err);
        if (r < 0)
                fail_msg("sign: %s", fx->err);
        assert_non_null(token);
        return token;
}

static void assert_claim_string(json_t *claims, const char *name, const char *value) {
        const char *got = json_string_value(json_object_get(claims, name));
        if (!got)
                fail_msg("claim %s is missing or not a string", name);
        assert_string_equal(got, value);
}

static void assert_claim_int(json_t *claims, const char *name, int64_t value) {
        json_t *v = json_object_get(claims, name);
        if (!json_is_integer(v))
                fail_msg("claim %s is missing or not an integer", name);
        assert_int_equal(json_integer_value(v), value);
}

/* ---- key management ------------------------------------------------------ */

static void test_generate_files_and_modes(void **state) {
        struct fixture *fx = *state;
        char es[TOKEN_KID_MAX + 1], rs[TOKEN_KID_MAX + 1], name[256];
        assert_false(file_exists(fx->tmp, "keys"));
        generate(fx, TOKEN_ALG_ES256, T0, es);
        generate(fx, TOKEN_ALG_RS256, T0 + 1, rs);
        assert_string_not_equal(es, rs);
        assert_true(strncmp(es, "k-", 2) == 0);
        assert_int_equal(strlen(es), 18);

        assert_int_equal(mode_of(fx->dir, NULL), 0700);
        snprintf(name, sizeof name, "%s.pem", es);
        assert_int_equal(mode_of(fx->dir, name), 0600);
        char *pem = read_file(fx->dir, name);
        assert_true(strncmp(pem, "-----BEGIN PRIVATE KEY-----", 27) == 0);
        free(pem);
        snprintf(name, sizeof name, "%s.pem", rs);
        assert_int_equal(mode_of(fx->dir, name), 0600);
        assert_false(file_exists(fx->dir, "keys.json.tmp"));

        /* keys.json as tokens.h documents it. */
        char *text = read_file(fx->dir, "keys.json");
        json_t *root = json_loads(text, 0, NULL);
        free(text);
        assert_non_null(root);
        json_t *keys = json_object_get(root, "keys");
        assert_int_equal(json_array_size(keys), 2);
        json_t *k0 = json_array_get(keys, 0);
        assert_string_equal(json_string_value(json_object_get(k0, "kid")), es);
        assert_string_equal(json_string_value(json_object_get(k0, "alg")), "ES256");
        assert_string_equal(json_string_value(json_object_get(k0, "state")), "next");
        assert_int_equal(json_integer_value(json_object_get(k0, "created_at")), T0);
        assert_true(json_is_null(json_object_get(k0, "activated_at")));
        assert_true(json_is_null(json_object_get(k0, "retired_at")));
        assert_string_equal(json_string_value(json_object_get(json_array_get(keys, 1), "alg")), "RS256");
        json_decref(root);

        struct token_key_info i = info(fx, rs, T0 + 2);
        assert_int_equal(i.alg, TOKEN_ALG_RS256);
        assert_string_equal(i.state, "next");
        assert_int_equal(i.created_at, T0 + 1);
        assert_int_equal(i.activated_at, 0);
        assert_int_equal(i.retired_at, 0);
        assert_true(i.published);
}

static void test_state_transitions(void **state) {
        struct fixture *fx = *state;
        char a[TOKEN_KID_MAX + 1], b[TOKEN_KID_MAX + 1];
        generate(fx, TOKEN_ALG_ES256, T0, a);
        generate(fx, TOKEN_ALG_ES256, T0, b);

        activate(fx, a, T0 + 10);
        struct token_key_info i = info(fx, a, T0 + 10);
        assert_string_equal(i.state, "active");
        assert_int_equal(i.activated_at, T0 + 10);
        assert_string_equal(info(fx, b, T0 + 10).state, "next");

        /* Activating again changes nothing. */
        activate(fx, a, T0 + 15);
        assert_int_equal(info(fx, a, T0 + 15).activated_at, T0 + 10);

        /* The next key takes over; the active one retires at that moment. */
        activate(fx, b, T0 + 20);
        i = info(fx, a, T0 + 20);
        assert_string_equal(i.state, "retired");
        assert_int_equal(i.activated_at, T0 + 10);
        assert_int_equal(i.retired_at, T0 + 20);
        i = info(fx, b, T0 + 20);
        assert_string_equal(i.state, "active");
        assert_int_equal(i.activated_at, T0 + 20);

        /* A retired key never signs again. */
        fx->err[0] = '\0';
        assert_int_equal(tokens_keys_activate(fx->dir, a, T0 + 30, fx->err, sizeof fx->err), -EPERM);
        assert_non_null(strstr(fx->err, "retired"));
        assert_non_null(strstr(fx->err, a));
        assert_string_equal(info(fx, a, T0 + 30).state, "retired");
        assert_string_equal(info(fx, b, T0 + 30).state, "active");

        assert_int_equal(tokens_keys_retire(fx->dir, b, T0 + 40, fx->err, sizeof fx->err), 0);
        i = info(fx, b, T0 + 40);
        assert_string_equal(i.state, "retired");
        assert_int_equal(i.retired_at, T0 + 40);
        /* Retiring again keeps the first retirement time. */
        assert_int_equal(tokens_keys_retire(fx->dir, b, T0 + 50, fx->err, sizeof fx->err), 0);
        assert_int_equal(info(fx, b, T0 + 50).retired_at, T0 + 40);
        assert_int_equal(tokens_keys_activate(fx->dir, b, T0 + 50, fx->err, sizeof fx->err), -EPERM);

        /* A next key can be retired without ever signing. */
        char c[TOKEN_KID_MAX + 1];
        generate(fx, TOKEN_ALG_ES256, T0 + 60, c);
        assert_int_equal(tokens_keys_retire(fx->dir, c, T0 + 70, fx->err, sizeof fx->err), 0);
        i = info(fx, c, T0 + 70);
        assert_string_equal(i.state, "retired");
        assert_int_equal(i.activated_at, 0);

        /* Unknown kids. */
        fx->err[0] = '\0';
        assert_int_equal(tokens_keys_activate(fx->dir, "k-0000000000000000", T0, fx->err, sizeof fx->err), -ENOENT);
        assert_non_null(strstr(fx->err, "unknown key 'k-0000000000000000'"));
        fx->err[0] = '\0';
        assert_int_equal(tokens_keys_retire(fx->dir, "../keys", T0, fx->err, sizeof fx->err), -ENOENT);
        assert_non_null(strstr(fx->err, "unknown key"));
}

static int count_cb(const struct token_key_info *k, void *userdata) {
        (void) k;
        ++*(int *) userdata;
        return 0;
}

static void test_missing_directory(void **state) {
        struct fixture *fx = *state;
        struct token_keyring *k = NULL;
        int n = 0;
        fx->err[0] = '\0';
        assert_int_equal(tokens_keyring_load(fx->dir, T0, TTL, &k, fx->err, sizeof fx->err), -ENOENT);
        assert_null(k);
        assert_non_null(strstr(fx->err, "does not exist"));
        assert_non_null(strstr(fx->err, fx->dir));
        fx->err[0] = '\0';
        assert_int_equal(tokens_keys_list(fx->dir, T0, TTL, count_cb, &n, fx->err, sizeof fx->err), -ENOENT);
        assert_non_null(strstr(fx->err, "does not exist"));
        assert_int_equal(tokens_keys_activate(fx->dir, "k-1", T0, fx->err, sizeof fx->err), -ENOENT);
        assert_int_equal(tokens_keys_retire(fx->dir, "k-1", T0, fx->err, sizeof fx->err), -ENOENT);
        /* Only generate creates it. */
        assert_false(file_exists(fx->tmp, "keys"));

        /* An empty directory is an empty keyring. */
        assert_int_equal(mkdir(fx->dir, 0700), 0);
        k = load(fx, T0);
        assert_string_equal(tokens_keyring_jwks(k), "{\"keys\":[]}");
        assert_false(tokens_keyring_can_sign(k));
        tokens_keyring_free(k);
        assert_int_equal(tokens_keys_list(fx->dir, T0, TTL, count_cb, &n, fx->err, sizeof fx->err), 0);
        assert_int_equal(n, 0);
}

/* ---- publication and the JWKS -------------------------------------------- */

static bool jwks_has(const struct token_keyring *k, const char *kid) {
        json_t *jwk = find_jwk(tokens_keyring_jwks(k), kid);
        json_decref(jwk);
        return jwk != NULL;
}

static void test_published_rules(void **state) {
        struct fixture *fx = *state;
        char a[TOKEN_KID_MAX + 1], b[TOKEN_KID_MAX + 1], c[TOKEN_KID_MAX + 1];
        generate(fx, TOKEN_ALG_ES256, T0, a);
        activate(fx, a, T0);
        generate(fx, TOKEN_ALG_ES256, T0 + 50, b);
        activate(fx, b, T0 + 100); /* a retires at T0 + 100 */
        generate(fx, TOKEN_ALG_RS256, T0 + 200, c);

        /* a stays published while tokens it signed may be live. */
        int64_t moments[] = { T0 + 100, T0 + 100 + TTL - 1, T0 + 100 + TTL, T0 + 100000 };
        bool a_published[] = { true, true, false, false };
        for (size_t i = 0; i < 4; i++) {
                int64_t now = moments[i];
                assert_int_equal(info(fx, a, now).published, a_published[i]);
                assert_true(info(fx, b, now).published); /* active: always */
                assert_true(info(fx, c, now).published); /* next: always */
                struct token_keyring *k = load(fx, now);
                assert_int_equal(jwks_has(k, a), a_published[i]);
                assert_true(jwks_has(k, b));
                assert_true(jwks_has(k, c));
                assert_int_equal(tokens_keyring_published(k), a_published[i] ? 3 : 2);
                assert_int_equal(tokens_keyring_next_change(k), a_published[i] ? T0 + 100 + TTL : 0);
                assert_string_equal(tokens_keyring_active_kid(k), b);
                tokens_keyring_free(k);
        }

        /* A key that is no longer published is not even read. */
        char name[256];
        snprintf(name, sizeof name, "%s/%s.pem", fx->dir, a);
        assert_int_equal(unlink(name), 0);
        tokens_keyring_free(load(fx, T0 + 100 + TTL));
        struct token_keyring *k = NULL;
        fx->err[0] = '\0';
        assert_int_equal(tokens_keyring_load(fx->dir, T0 + 100 + TTL - 1, TTL, &k, fx->err, sizeof fx->err), -ENOENT);
        assert_non_null(strstr(fx->err, "missing"));

        /* With no token lifetime, a retired key leaves at once. */
        struct info_query q = { .kid = a };
        assert_int_equal(tokens_keys_list(fx->dir, T0 + 100, 0, info_cb, &q, fx->err, sizeof fx->err), 0);
        assert_false(q.info.published);
        assert_int_equal(q.total, 3);
}

static void test_jwks_public_members_only(void **state) {
        struct fixture *fx = *state;
        char es[TOKEN_KID_MAX + 1], rs[TOKEN_KID_MAX + 1];
        generate(fx, TOKEN_ALG_ES256, T0, es);
        generate(fx, TOKEN_ALG_RS256, T0, rs);
        activate(fx, es, T0);
        struct token_keyring *k = load(fx, T0);
        json_t *root = json_loads(tokens_keyring_jwks(k), 0, NULL);
        assert_non_null(root);
        assert_int_equal(json_object_size(root), 1);
        json_t *keys = json_object_get(root, "keys");
        assert_int_equal(json_array_size(keys), 2);
        static const char *const private_members[] = { "d", "p", "q", "dp", "dq", "qi", "k", "oth" };
        for (size_t i = 0; i < 2; i++) {
                json_t *jwk = json_array_get(keys, i);
                const char *kid = json_string_value(json_object_get(jwk, "kid"));
                assert_non_null(kid);
                assert_string_equal(json_string_value(json_object_get(jwk, "use")), "sig");
                for (size_t m = 0; m < sizeof private_members / sizeof private_members[0]; m++)
                        assert_null(json_object_get(jwk, private_members[m]));
                size_t len;
                if (strcmp(kid, es) == 0) {
                        /* kty, crv, x, y, kid, use, alg and nothing else */
                        assert_int_equal(json_object_size(jwk), 7);
                        assert_string_equal(json_string_value(json_object_get(jwk, "kty")), "EC");
                        assert_string_equal(json_string_value(json_object_get(jwk, "crv")), "P-256");
                        assert_string_equal(json_string_value(json_object_get(jwk, "alg")), "ES256");
                        free(b64url_decode_str(json_string_value(json_object_get(jwk, "x")), &len));
                        assert_int_equal(len, 32);
                        free(b64url_decode_str(json_string_value(json_object_get(jwk, "y")), &len));
                        assert_int_equal(len, 32);
                } else {
                        assert_string_equal(kid, rs);
                        /* kty, n, e, kid, use, alg and nothing else */
                        assert_int_equal(json_object_size(jwk), 6);
                        assert_string_equal(json_string_value(json_object_get(jwk, "kty")), "RSA");
                        assert_string_equal(json_string_value(json_object_get(jwk, "alg")), "RS256");
                        assert_string_equal(json_string_value(json_object_get(jwk, "e")), "AQAB");
                        uint8_t *n = b64url_decode_str(json_string_value(json_object_get(jwk, "n")), &len);
                        assert_int_equal(len, 256); /* 2048 bits, no leading zero byte */
                        assert_true(n[0] & 0x80);
                        free(n);
                }
        }
        json_decref(root);
        tokens_keyring_free(k);
}

/* x and y are exactly 32 bytes even when the coordinate is smaller (RFC 7518
 * section 6.2.1.2). About one P-256 key in 128 has such a coordinate: make
 * keys until one does, and load it as an operator-provided key. */
static void test_jwk_coordinates_left_padded(void **state) {
        struct fixture *fx = *state;
        assert_int_equal(mkdir(fx->dir, 0700), 0);
        gnutls_datum_t pem = { 0 }, x = { 0 }, y = { 0 }, d = { 0 };
        bool short_x = false;
        for (int attempt = 0; attempt < 5000 && !pem.data; attempt++) {
                gnutls_x509_privkey_t key;
                gnutls_ecc_curve_t curve;
                assert_int_equal(gnutls_x509_privkey_init(&key), 0);
                assert_int_equal(gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
                                                              GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0),
                                 0);
                assert_int_equal(gnutls_x509_privkey_export_ecc_raw(key, &curve, &x, &y, &d), 0);
                /* Without a sign byte, is either coordinate under 32 bytes? */
                size_t xs = x.size, ys = y.size;
                for (unsigned i = 0; i < x.size && x.data[i] == 0; i++)
                        xs--;
                for (unsigned i = 0; i < y.size && y.data[i] == 0; i++)
                        ys--;
                if (xs < 32 || ys < 32) {
                        short_x = xs < 32;
                        assert_int_equal(gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &pem), 0);
                }
                gnutls_free(d.data);
                if (!pem.data) {
                        gnutls_free(x.data);
                        gnutls_free(y.data);
                }
                gnutls_x509_privkey_deinit(key);
        }
        assert_non_null(pem.data);
        /* SEC 1 "EC PRIVATE KEY" PEM, as OpenSSL writes it. */
        write_file(fx->dir, "k-small.pem", pem.data, pem.size);
        static const char keys_json[] =
                "{\"keys\":[{\"kid\":\"k-small\",\"alg\":\"ES256\",\"state\":\"active\",\"created_at\":1,"
                "\"activated_at\":1,\"retired_at\":null}]}";
        write_file(fx->dir, "keys.json", keys_json, strlen(keys_json));
        struct token_keyring *k = load(fx, T0);
        json_t *jwk = find_jwk(tokens_keyring_jwks(k), "k-small");
        assert_non_null(jwk);
        /* The same number, left-padded with zeros to 32 bytes. */
        const gnutls_datum_t *coord = short_x ? &x : &y;
        uint8_t expected[32] = { 0 };
        unsigned skip = 0;
        while (skip < coord->size && coord->data[skip] == 0)
                skip++;
        memcpy(expected + 32 - (coord->size - skip), coord->data + skip, coord->size - skip);
        size_t len;
        uint8_t *got = b64url_decode_str(json_string_value(json_object_get(jwk, short_x ? "x" : "y")), &len);
        assert_int_equal(len, 32);
        assert_int_equal(got[0], 0);
        assert_memory_equal(got, expected, 32);
        free(got);

        /* And a token signed with it verifies from that JWK. */
        struct token_claims c = sample_claims();
        char *token = sign(fx, k, &c);
        struct jws j = split_jws(token);
        assert_int_equal(verify_jws(tokens_keyring_jwks(k), "k-small", &j), 0);
        jws_done(&j);
        free(token);
        json_decref(jwk);
        tokens_keyring_free(k);
        gnutls_free(x.data);
        gnutls_free(y.data);
        gnutls_free(pem.data);
}

/* ---- tokens ---------------------------------------------------------------- */

static void check_token(struct fixture *fx, enum token_alg alg) {
        char kid[TOKEN_KID_MAX + 1];
        generate(fx, alg, T0 - 1000, kid);
        activate(fx, kid, T0 - 900);
        struct token_keyring *k = load(fx, T0);
        assert_true(tokens_keyring_can_sign(k));
        assert_string_equal(tokens_keyring_active_kid(k), kid);

        struct token_claims c = sample_claims();
        char *token = NULL, *jti = NULL;
        assert_int_equal(tokens_sign(k, &c, &token, &jti, fx->err, sizeof fx->err), 0);
        assert_non_null(token);
        assert_non_null(jti);
        struct jws j = split_jws(token);

        /* Header: alg, kid, typ and nothing else. */
        assert_int_equal(json_object_size(j.header), 3);
        assert_string_equal(json_string_value(json_object_get(j.header, "alg")), token_alg_to_string(alg));
        assert_string_equal(json_string_value(json_object_get(j.header, "kid")), kid);
        assert_string_equal(json_string_value(json_object_get(j.header, "typ")), "JWT");

        /* Every claim of docs/DESIGN.md section 3. */
        assert_int_equal(json_object_size(j.claims), 12);
        assert_claim_string(j.claims, "iss", c.iss);
        assert_claim_string(j.claims, "aud", c.aud);
        assert_claim_string(j.claims, "sub", c.sub);
        assert_claim_string(j.claims, "impu", c.impu);
        assert_claim_string(j.claims, "impi", c.impi);
        assert_claim_string(j.claims, "3gpp-wwsf", c.wwsf);
        assert_claim_string(j.claims, "jti", jti);
        assert_claim_int(j.claims, "iat", c.iat);
        assert_claim_int(j.claims, "nbf", c.nbf);
        assert_claim_int(j.claims, "exp", c.exp);
        assert_claim_int(j.claims, "lease_exp", c.lease_exp);
        assert_true(json_is_false(json_object_get(j.claims, "anon")));

        /* The signature, from the JWKS alone. */
        const char *jwks = tokens_keyring_jwks(k);
        assert_int_equal(j.sig_len, alg == TOKEN_ALG_ES256 ? 64 : 256);
        assert_int_equal(verify_jws(jwks, kid, &j), 0);
        for (size_t bit = 0; bit < j.sig_len * 8; bit += j.sig_len * 8 / 5 + 3) {
                j.sig[bit / 8] ^= (uint8_t) (1u << bit % 8);
                assert_int_not_equal(verify_jws(jwks, kid, &j), 0);
                j.sig[bit / 8] ^= (uint8_t) (1u << bit % 8);
        }
        assert_int_equal(verify_jws(jwks, kid, &j), 0);
        /* A changed payload byte fails too. */
        char *forged = strdup(token);
        size_t at = strchr(token, '.') - token + 5;
        forged[at] = forged[at] == 'A' ? 'B' : 'A';
        struct jws f = j;
        f.input.data = (unsigned char *) forged;
        assert_int_not_equal(verify_jws(jwks, kid, &f), 0);

        /* libjwt 1.10.2, the second implementation, accepts the token as an
         * ES256 or RS256 JWT, and refuses the forged payload and a changed
         * signature. */
        jwt_alg_t jwt_alg = alg == TOKEN_ALG_ES256 ? JWT_ALG_ES256 : JWT_ALG_RS256;
        assert_int_equal(libjwt_verify(jwks, kid, token, jwt_alg, c.impu), 0);
        assert_int_not_equal(libjwt_verify(jwks, kid, forged, jwt_alg, c.impu), 0);
        free(forged);
        char *bad_sig = strdup(token);
        size_t sig_at = strrchr(token, '.') - token + 1 + strlen(strrchr(token, '.') + 1) / 2;
        bad_sig[sig_at] = bad_sig[sig_at] == 'A' ? 'B' : 'A';
        assert_int_not_equal(libjwt_verify(jwks, kid, bad_sig, jwt_alg, c.impu), 0);
        free(bad_sig);

        jws_done(&j);
        free(token);
        free(jti);
        tokens_keyring_free(k);
}

static void test_sign_es256(void **state) {
        check_token(*state, TOKEN_ALG_ES256);
}

static void test_sign_rs256(void **state) {
        check_token(*state, TOKEN_ALG_RS256);
}

static void test_exp_and_lease_exp(void **state) {
        struct fixture *fx = *state;
        char kid[TOKEN_KID_MAX + 1];
        generate(fx, TOKEN_ALG_ES256, T0, kid);
        activate(fx, kid, T0);
        struct token_keyring *k = load(fx, T0);

        /* The lease ends before the token would: exp is clamped to it. */
        struct token_claims c = sample_claims();
        c.lease_exp = T0 + 120;
        c.anon = true;
        char *token = sign(fx, k, &c);
        struct jws j = split_jws(token);
        assert_claim_int(j.claims, "exp", T0 + 120);
        assert_claim_int(j.claims, "lease_exp", T0 + 120);
        assert_true(json_is_true(json_object_get(j.claims, "anon")));
        assert_int_equal(verify_jws(tokens_keyring_jwks(k), kid, &j), 0);
        jws_done(&j);
        free(token);

        /* A lease that outlives the token leaves exp alone. */
        c.lease_exp = T0 + TTL + 1;
        token = sign(fx, k, &c);
        j = split_jws(token);
        assert_claim_int(j.claims, "exp", T0 + TTL);
        assert_claim_int(j.claims, "lease_exp", T0 + TTL + 1);
        jws_done(&j);
        free(token);

        /* No lease (scenario 2): no lease_exp claim at all. */
        c.lease_exp = 0;
        token = sign(fx, k, &c);
        j = split_jws(token);
        assert_claim_int(j.claims, "exp", T0 + TTL);
        assert_null(json_object_get(j.claims, "lease_exp"));
        assert_int_equal(json_object_size(j.claims), 11);
        jws_done(&j);
        free(token);

        /* A lease that has ended by nbf would make a dead token. */
        c.lease_exp = c.nbf;
        char *t = NULL;
        fx->err[0] = '\0';
        assert_int_equal(tokens_sign(k, &c, &t, NULL, fx->err, sizeof fx->err), -EINVAL);
        assert_null(t);
        assert_non_null(strstr(fx->err, "expire"));
        tokens_keyring_free(k);
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static void test_jti_unique(void **state) {
        struct fixture *fx = *state;
        char kid[TOKEN_KID_MAX + 1];
        generate(fx, TOKEN_ALG_ES256, T0, kid);
        activate(fx, kid, T0);
        struct token_keyring *k = load(fx, T0);
        struct token_claims c = sample_claims();
        enum { N = 1000 };
        char **jtis = calloc(N, sizeof *jtis);
        for (int i = 0; i < N; i++) {
                char *token = NULL;
                assert_int_equal(tokens_sign(k, &c, &token, &jtis[i], fx->err, sizeof fx->err), 0);
                /* 128 bits in base64url: 22 characters. */
                assert_int_equal(strlen(jtis[i]), 22);
                assert_int_equal(strspn(jtis[i], "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                                 22);
                if (i % 100 == 0) {
                        struct jws j = split_jws(token);
                        assert_claim_string(j.claims, "jti", jtis[i]);
                        jws_done(&j);
                }
                free(token);
        }
        qsort(jtis, N, sizeof *jtis, cmp_str);
        for (int i = 1; i < N; i++)
                assert_string_not_equal(jtis[i - 1], jtis[i]);
        for (int i = 0; i < N; i++)
                free(jtis[i]);
        free(jtis);

        /* A jti given by the caller (the lease's) is used as it is. */
        c.jti = "lease-42";
        char *token = NULL, *jti = NULL;
        assert_int_equal(tokens_sign(k, &c, &token, &jti, fx->err, sizeof fx->err), 0);
        assert_string_equal(jti, "lease-42");
        struct jws j = split_jws(token);
        assert_claim_string(j.claims, "jti", "lease-42");
        jws_done(&j);
        free(token);
        free(jti);
        tokens_keyring_free(k);
}

static void test_bad_claims(void **state) {
        struct fixture *fx = *state;
        char kid[TOKEN_KID_MAX + 1];
        generate(fx, TOKEN_ALG_ES256, T0, kid);
        activate(fx, kid, T0);
        struct token_keyring *k = load(fx, T0);
        char *token = NULL;

        struct token_claims c = sample_claims();
        c.impu = NULL;
        assert_int_equal(tokens_sign(k, &c, &token, NULL, fx->err, sizeof fx->err), -EINVAL);
        assert_non_null(strstr(fx->err, "impu"));
        c = sample_claims();
        c.wwsf = "";
        assert_int_equal(tokens_sign(k, &c, &token, NULL, fx->err, sizeof fx->err), -EINVAL);
        assert_non_null(strstr(fx->err, "3gpp-wwsf"));
        c = sample_claims();
        c.sub = "\xff\xfe";
        assert_int_equal(tokens_sign(k, &c, &token, NULL, fx->err, sizeof fx->err), -EILSEQ);
        assert_non_null(strstr(fx->err, "UTF-8"));
        char *long_value = malloc(TOKEN_CLAIM_MAX + 2);
        memset(long_value, 'a', TOKEN_CLAIM_MAX + 1);
        long_value[TOKEN_CLAIM_MAX + 1] = '\0';
        c = sample_claims();
        c.aud = long_value;
        assert_int_equal(tokens_sign(k, &c, &token, NULL, fx->err, sizeof fx->err), -EINVAL);
        assert_non_null(strstr(fx->err, "aud"));
        free(long_value);
        c = sample_claims();
        c.exp = 0;
        assert_int_equal(tokens_sign(k, &c, &token, NULL, fx->err, sizeof fx->err), -EINVAL);
        assert_null(token);
        tokens_keyring_free(k);
}

static void test_no_active_key(void **state) {
        struct fixture *fx = *state;
        char kid[TOKEN_KID_MAX + 1];
        generate(fx, TOKEN_ALG_ES256, T0, kid);
        struct token_keyring *k = load(fx, T0);
        assert_false(tokens_keyring_can_sign(k));
        assert_null(tokens_keyring_active_kid(k));
        assert_true(jwks_has(k, kid)); /* published before it signs */
        struct token_claims c = sample_claims();
        char *token = NULL, *jti = NULL;
        fx->err[0] = '\0';
        assert_int_equal(tokens_sign(k, &c, &token, &jti, fx->err, sizeof fx->err), -ENOKEY);
        assert_null(token);
        assert_null(jti);
        assert_non_null(strstr(fx->err, "no active signing key"));
        tokens_keyring_free(k);

        /* Nor after the active key is retired. */
        activate(fx, kid, T0);
        assert_int_equal(tokens_keys_retire(fx->dir, kid, T0 + 10, fx->err, sizeof fx->err), 0);
        k = load(fx, T0 + 10);
        assert_false(tokens_keyring_can_sign(k));
        assert_true(jwks_has(k, kid));
        assert_int_equal(tokens_sign(k, &c, &token, NULL, fx->err, sizeof fx->err), -ENOKEY);
        tokens_keyring_free(k);
        tokens_keyring_free(NULL);
        assert_false(tokens_keyring_can_sign(NULL));
}

/* ---- damaged directories --------------------------------------------------- */

static void expect_corrupt(struct fixture *fx, const char *keys_json, const char *words) {
        write_file(fx->dir, "keys.json", keys_json, strlen(keys_json));
        struct token_keyring *k = NULL;
        fx->err[0] = '\0';
        assert_int_equal(tokens_keyring_load(fx->dir, T0, TTL, &k, fx->err, sizeof fx->err), -EBADMSG);
        assert_null(k);
        if (!strstr(fx->err, "keys.json") || !strstr(fx->err, words) || strchr(fx->err, '\n'))
                fail_msg("for %s: expected one line naming keys.json and '%s', got: %s", keys_json, words, fx->err);
        int n = 0;
        assert_int_equal(tokens_keys_list(fx->dir, T0, TTL, count_cb, &n, fx->err, sizeof fx->err), -EBADMSG);
        assert_int_equal(n, 0);
        char kid[TOKEN_KID_MAX + 1];
        assert_int_equal(tokens_keys_generate(fx->dir, TOKEN_ALG_ES256, T0, kid, fx->err, sizeof fx->err), -EBADMSG);
}

#define ENTRY(kid, alg, state, extra) \
        "{\"kid\":\"" kid "\",\"alg\":\"" alg "\",\"state\":\"" state "\",\"created_at\":1" extra "}"

static void test_corrupt_keys_json(void **state) {
        struct fixture *fx = *state;
        assert_int_equal(mkdir(fx->dir, 0700), 0);
        expect_corrupt(fx, "{\"keys\":[", "corrupt");
        expect_corrupt(fx, "", "corrupt");
        expect_corrupt(fx, "[]", "\"keys\" array");
        expect_corrupt(fx, "{\"keys\":{}}", "\"keys\" array");
        expect_corrupt(fx, "{\"keys\":[7]}", "key 1");
        expect_corrupt(fx, "{\"keys\":[" ENTRY("k-1", "HS256", "next", "") "]}", "alg");
        expect_corrupt(fx, "{\"keys\":[" ENTRY("k-1", "ES256", "old", "") "]}", "state");
        expect_corrupt(fx, "{\"keys\":[" ENTRY("../k-1", "ES256", "next", "") "]}", "kid");
        expect_corrupt(fx, "{\"keys\":[" ENTRY(".hidden", "ES256", "next", "") "]}", "kid");
        expect_corrupt(fx, "{\"keys\":[" ENTRY("k-1", "ES256", "retired", "") "]}", "retired_at");
        expect_corrupt(fx, "{\"keys\":[" ENTRY("k-1", "ES256", "next", ",\"activated_at\":\"soon\"") "]}",
                       "activated_at");
        expect_corrupt(fx, "{\"keys\":[{\"kid\":\"k-1\",\"alg\":\"ES256\",\"state\":\"next\"}]}", "created_at");
        expect_corrupt(fx, "{\"keys\":[" ENTRY("k-1", "ES256", "next", "") "," ENTRY("k-1", "ES256", "next", "") "]}",
                       "appears twice");
        expect_corrupt(fx,
                       "{\"keys\":[" ENTRY("k-1", "ES256", "active", "") "," ENTRY("k-2", "ES256", "active", "") "]}",
                       "more than one active");
        expect_corrupt(fx, "{\"keys\":[], \"keys\":[]}", "corrupt");
}

static void replace_key_file(struct fixture *fx, const char *kid, const char *from_file, const char *text) {
        char name[256];
        snprintf(name, sizeof name, "%s.pem", kid);
        char *content = from_file ? read_file(fx->dir, from_file) : strdup(text);
        write_file(fx->dir, name, content, strlen(content));
        free(content);
}

static void expect_load_error(struct fixture *fx, int expected, const char *words) {
        struct token_keyring *k = NULL;
        fx->err[0] = '\0';
        assert_int_equal(tokens_keyring_load(fx->dir, T0, TTL, &k, fx->err, sizeof fx->err), expected);
        assert_null(k);
        if (!strstr(fx->err, words) || strchr(fx->err, '\n'))
                fail_msg("expected one line with '%s', got: %s", words, fx->err);
}

static void test_bad_key_files(void **state) {
        struct fixture *fx = *state;
        char es[TOKEN_KID_MAX + 1], rs[TOKEN_KID_MAX + 1], name[256];
        generate(fx, TOKEN_ALG_ES256, T0, es);
        generate(fx, TOKEN_ALG_RS256, T0, rs);
        snprintf(name, sizeof name, "%s.pem", es);
        char *es_pem = read_file(fx->dir, name);
        snprintf(name, sizeof name, "%s.pem", rs);
        char *rs_pem = read_file(fx->dir, name);

        /* An RSA key where keys.json says ES256. */
        replace_key_file(fx, es, name, NULL);
        expect_load_error(fx, -EBADMSG, "holds an RSA-2048 key, but keys.json says ES256");
        /* Activation checks the file first. */
        assert_int_equal(tokens_keys_activate(fx->dir, es, T0, fx->err, sizeof fx->err), -EBADMSG);
        assert_non_null(strstr(fx->err, "RSA-2048"));
        assert_string_equal(info(fx, es, T0).state, "next");

        /* And the other way round. */
        replace_key_file(fx, rs, NULL, es_pem);
        replace_key_file(fx, es, NULL, es_pem);
        expect_load_error(fx, -EBADMSG, "holds an ECDSA SECP256R1 key, but keys.json says RS256");

        /* Not a private key at all: a public key, a certificate request, noise. */
        gnutls_x509_privkey_t x;
        gnutls_privkey_t priv;
        gnutls_pubkey_t pub;
        gnutls_datum_t d = { (unsigned char *) es_pem, (unsigned) strlen(es_pem) }, pub_pem = { 0 };
        assert_int_equal(gnutls_x509_privkey_init(&x), 0);
        assert_int_equal(gnutls_x509_privkey_import(x, &d, GNUTLS_X509_FMT_PEM), 0);
        assert_int_equal(gnutls_privkey_init(&priv), 0);
        assert_int_equal(gnutls_privkey_import_x509(priv, x, GNUTLS_PRIVKEY_IMPORT_AUTO_RELEASE), 0);
        assert_int_equal(gnutls_pubkey_init(&pub), 0);
        assert_int_equal(gnutls_pubkey_import_privkey(pub, priv, 0, 0), 0);
        assert_int_equal(gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_PEM, &pub_pem), 0);
        char *pub_text = strndup((const char *) pub_pem.data, pub_pem.size);
        assert_non_null(strstr(pub_text, "BEGIN PUBLIC KEY"));
        replace_key_file(fx, es, NULL, pub_text);
        replace_key_file(fx, rs, NULL, es_pem);
        expect_load_error(fx, -EBADMSG, "not a PEM private key");
        replace_key_file(fx, es, NULL, "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n");
        expect_load_error(fx, -EBADMSG, "not a PEM private key");
        replace_key_file(fx, es, NULL, "hello\n");
        expect_load_error(fx, -EBADMSG, "not a PEM private key");

        /* A missing file. */
        snprintf(name, sizeof name, "%s/%s.pem", fx->dir, es);
        assert_int_equal(unlink(name), 0);
        expect_load_error(fx, -ENOENT, "missing");
        assert_int_equal(tokens_keys_activate(fx->dir, es, T0, fx->err, sizeof fx->err), -ENOENT);

        /* Restored, everything works again. */
        replace_key_file(fx, es, NULL, es_pem);
        replace_key_file(fx, rs, NULL, rs_pem);
        activate(fx, es, T0);
        tokens_keyring_free(load(fx, T0));

        free(pub_text);
        gnutls_free(pub_pem.data);
        gnutls_pubkey_deinit(pub);
        gnutls_privkey_deinit(priv);
        free(es_pem);
        free(rs_pem);
}

static void test_alg_strings(void **state) {
        (void) state;
        enum token_alg a;
        assert_int_equal(token_alg_from_string("ES256", &a), 0);
        assert_int_equal(a, TOKEN_ALG_ES256);
        assert_string_equal(token_alg_to_string(a), "ES256");
        assert_int_equal(token_alg_from_string("RS256", &a), 0);
        assert_int_equal(a, TOKEN_ALG_RS256);
        assert_string_equal(token_alg_to_string(a), "RS256");
        assert_int_equal(token_alg_from_string("HS256", &a), -EINVAL);
        assert_int_equal(token_alg_from_string("none", &a), -EINVAL);
        assert_int_equal(token_alg_from_string("es256", &a), -EINVAL);
        assert_int_equal(token_alg_from_string(NULL, &a), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_generate_files_and_modes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_state_transitions, setup, teardown),
                cmocka_unit_test_setup_teardown(test_missing_directory, setup, teardown),
                cmocka_unit_test_setup_teardown(test_published_rules, setup, teardown),
                cmocka_unit_test_setup_teardown(test_jwks_public_members_only, setup, teardown),
                cmocka_unit_test_setup_teardown(test_jwk_coordinates_left_padded, setup, teardown),
                cmocka_unit_test_setup_teardown(test_sign_es256, setup, teardown),
                cmocka_unit_test_setup_teardown(test_sign_rs256, setup, teardown),
                cmocka_unit_test_setup_teardown(test_exp_and_lease_exp, setup, teardown),
                cmocka_unit_test_setup_teardown(test_jti_unique, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_claims, setup, teardown),
                cmocka_unit_test_setup_teardown(test_no_active_key, setup, teardown),
                cmocka_unit_test_setup_teardown(test_corrupt_keys_json, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_key_files, setup, teardown),
                cmocka_unit_test(test_alg_strings),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
