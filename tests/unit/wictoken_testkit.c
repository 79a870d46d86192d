/* See wictoken_testkit.h. */
#include "wictoken_testkit.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what, int rc) {
        fprintf(stderr, "wictoken_testkit: %s: %s\n", what, gnutls_strerror(rc));
        abort();
}

char *tk_format(const char *fmt, ...) {
        va_list ap;
        char *s;
        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                abort();
        va_end(ap);
        return s;
}

int64_t tk_clock(void *userdata) {
        return *(const int64_t *) userdata;
}

char *tk_b64url(const void *data, size_t len) {
        static const char ALPHABET[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        const unsigned char *in = data;
        char *out = malloc(len / 3 * 4 + 5), *o = out;
        if (!out)
                abort();
        size_t i = 0;
        for (; i + 3 <= len; i += 3) {
                unsigned v = (unsigned) in[i] << 16 | (unsigned) in[i + 1] << 8 | in[i + 2];
                *o++ = ALPHABET[v >> 18];
                *o++ = ALPHABET[(v >> 12) & 63];
                *o++ = ALPHABET[(v >> 6) & 63];
                *o++ = ALPHABET[v & 63];
        }
        if (len - i == 1) {
                unsigned v = (unsigned) in[i] << 16;
                *o++ = ALPHABET[v >> 18];
                *o++ = ALPHABET[(v >> 12) & 63];
        } else if (len - i == 2) {
                unsigned v = (unsigned) in[i] << 16 | (unsigned) in[i + 1] << 8;
                *o++ = ALPHABET[v >> 18];
                *o++ = ALPHABET[(v >> 12) & 63];
                *o++ = ALPHABET[(v >> 6) & 63];
        }
        *o = '\0';
        return out;
}

struct tk_key *tk_key_new(enum tk_alg alg, const char *kid) {
        struct tk_key *k = calloc(1, sizeof *k);
        int rc;
        if (!k)
                abort();
        snprintf(k->kid, sizeof k->kid, "%s", kid);
        k->alg = alg;
        if ((rc = gnutls_privkey_init(&k->priv)) < 0)
                die("privkey_init", rc);
        if (alg == TK_ES256)
                rc = gnutls_privkey_generate(k->priv, GNUTLS_PK_ECDSA,
                                             GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
        else
                rc = gnutls_privkey_generate(k->priv, GNUTLS_PK_RSA, 2048, 0);
        if (rc < 0)
                die("privkey_generate", rc);
        if ((rc = gnutls_pubkey_init(&k->pub)) < 0 || (rc = gnutls_pubkey_import_privkey(k->pub, k->priv, 0, 0)) < 0)
                die("pubkey_import_privkey", rc);
        return k;
}

void tk_key_free(struct tk_key *k) {
        if (!k)
                return;
        gnutls_privkey_deinit(k->priv);
        gnutls_pubkey_deinit(k->pub);
        free(k);
}

/* An unsigned big-endian number as exactly `width` bytes (0: as is, without
 * leading zeros), base64url. */
static char *number(const gnutls_datum_t *d, size_t width) {
        const unsigned char *p = d->data;
        size_t n = d->size;
        while (n > 0 && *p == 0) {
                p++;
                n--;
        }
        if (width == 0)
                return tk_b64url(p, n);
        unsigned char buf[512] = { 0 };
        if (n > width || width > sizeof buf)
                abort();
        memcpy(buf + width - n, p, n);
        return tk_b64url(buf, width);
}

/* d as exactly width bytes into out (big-endian, leading zeros dropped or
 * added). */
static void pad(const gnutls_datum_t *d, unsigned char *out, size_t width) {
        const unsigned char *p = d->data;
        size_t n = d->size;
        while (n > 0 && *p == 0) {
                p++;
                n--;
        }
        if (n > width)
                abort();
        memset(out, 0, width - n);
        memcpy(out + width - n, p, n);
}

char *tk_jwk_members(const struct tk_key *k) {
        gnutls_datum_t a, b;
        int rc;
        char *s;
        if (k->alg == TK_ES256) {
                gnutls_ecc_curve_t curve;
                if ((rc = gnutls_pubkey_export_ecc_raw2(k->pub, &curve, &a, &b, 0)) < 0)
                        die("export_ecc_raw2", rc);
                char *x = number(&a, 32), *y = number(&b, 32);
                s = tk_format("\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\",\"kid\":\"%s\",\"use\":\"sig\","
                           "\"alg\":\"ES256\"",
                           x, y, k->kid);
                free(x);
                free(y);
        } else {
                if ((rc = gnutls_pubkey_export_rsa_raw2(k->pub, &a, &b, 0)) < 0)
                        die("export_rsa_raw2", rc);
                char *n = number(&a, 0), *e = number(&b, 0);
                s = tk_format("\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\",\"kid\":\"%s\",\"use\":\"sig\",\"alg\":\"RS256\"", n,
                           e, k->kid);
                free(n);
                free(e);
        }
        gnutls_free(a.data);
        gnutls_free(b.data);
        return s;
}

char *tk_jwks(struct tk_key *const *keys, size_t n) {
        char *s = tk_format("{\"keys\":[");
        for (size_t i = 0; i < n; i++) {
                char *m = tk_jwk_members(keys[i]);
                char *t = tk_format("%s%s{%s}", s, i ? "," : "", m);
                free(s);
                free(m);
                s = t;
        }
        char *t = tk_format("%s]}", s);
        free(s);
        return t;
}

static char *sign(const struct tk_key *k, const char *header_json, const char *payload_json, int der) {
        char *h = tk_b64url(header_json, strlen(header_json));
        char *p = tk_b64url(payload_json, strlen(payload_json));
        char *input = tk_format("%s.%s", h, p);
        gnutls_datum_t data = { (unsigned char *) input, (unsigned) strlen(input) }, sig;
        int rc = gnutls_privkey_sign_data2(k->priv, k->alg == TK_ES256 ? GNUTLS_SIGN_ECDSA_SHA256 : GNUTLS_SIGN_RSA_SHA256,
                                           0, &data, &sig);
        if (rc < 0)
                die("sign_data2", rc);
        char *s;
        if (k->alg == TK_ES256 && !der) {
                gnutls_datum_t r, ss;
                if ((rc = gnutls_decode_rs_value(&sig, &r, &ss)) < 0)
                        die("decode_rs_value", rc);
                /* R||S, each left-padded to 32 bytes. */
                unsigned char raw[64];
                pad(&r, raw, 32);
                pad(&ss, raw + 32, 32);
                s = tk_b64url(raw, 64);
                gnutls_free(r.data);
                gnutls_free(ss.data);
        } else
                s = tk_b64url(sig.data, sig.size);
        gnutls_free(sig.data);
        char *token = tk_format("%s.%s", input, s);
        free(h);
        free(p);
        free(input);
        free(s);
        return token;
}

char *tk_sign(const struct tk_key *k, const char *header_json, const char *payload_json) {
        return sign(k, header_json, payload_json, 0);
}

char *tk_sign_der(const struct tk_key *k, const char *header_json, const char *payload_json) {
        return sign(k, header_json, payload_json, 1);
}

char *tk_header(const struct tk_key *k) {
        return tk_format("{\"alg\":\"%s\",\"kid\":\"%s\",\"typ\":\"JWT\"}", k->alg == TK_ES256 ? "ES256" : "RS256", k->kid);
}

static int omitted(const char *omit, const char *name) {
        if (!omit)
                return 0;
        size_t n = strlen(name);
        for (const char *p = omit; *p;) {
                const char *end = strchr(p, ',');
                size_t len = end ? (size_t) (end - p) : strlen(p);
                if (len == n && strncmp(p, name, n) == 0)
                        return 1;
                p += len + (end ? 1 : 0);
        }
        return 0;
}

char *tk_claims(int64_t now, const char *impu, const char *impi, const char *omit, const char *extra) {
        char *s = tk_format("{");
        struct {
                const char *name;
                char *value;
        } members[] = {
                { "iss", tk_format("\"%s\"", TK_ISSUER) },
                { "aud", tk_format("\"%s\"", TK_AUDIENCE) },
                { "sub", tk_format("\"u-3f9a1c\"") },
                { "iat", tk_format("%lld", (long long) now) },
                { "nbf", tk_format("%lld", (long long) now) },
                { "exp", tk_format("%lld", (long long) now + 300) },
                { "jti", tk_format("\"jti-%lld-%d\"", (long long) now, rand()) },
                { "impu", tk_format("\"%s\"", impu) },
                { "impi", tk_format("\"%s\"", impi) },
                { "3gpp-wwsf", tk_format("\"%s\"", TK_ISSUER) },
                { "anon", tk_format("false") },
                { "lease_exp", tk_format("%lld", (long long) now + 3600) },
        };
        int first = 1;
        for (size_t i = 0; i < sizeof members / sizeof *members; i++) {
                if (!omitted(omit, members[i].name)) {
                        char *t = tk_format("%s%s\"%s\":%s", s, first ? "" : ",", members[i].name, members[i].value);
                        free(s);
                        s = t;
                        first = 0;
                }
                free(members[i].value);
        }
        char *t = tk_format("%s%s%s}", s, extra && !first ? "," : "", extra ? extra : "");
        free(s);
        return t;
}

char *tk_token(const struct tk_key *k, int64_t now) {
        char *h = tk_header(k), *c = tk_claims(now, TK_IMPU, TK_IMPI, NULL, NULL);
        char *t = tk_sign(k, h, c);
        free(h);
        free(c);
        return t;
}

char *tk_register(const char *to, const char *from, const char *auth_lines) {
        return tk_format("REGISTER sip:%s SIP/2.0\r\n"
                      "Via: SIP/2.0/WSS 4hd8s2k1mq0r.invalid;branch=z9hG4bK8812733\r\n"
                      "Max-Forwards: 69\r\n"
                      "To: %s\r\n"
                      "From: %s;tag=5k2sd0fi0u\r\n"
                      "Call-ID: 9ggmh5e0jqv4h6p8o3bt2r\r\n"
                      "CSeq: 1 REGISTER\r\n"
                      "%s"
                      "Contact: <sip:q1vd2d8u@4hd8s2k1mq0r.invalid;transport=ws>;+sip.ice;reg-id=1;"
                      "+sip.instance=\"<urn:uuid:0d7c8d53-4e4e-4c6f-9d2b-6a1b9c0e3f11>\";expires=600\r\n"
                      "Expires: 600\r\n"
                      "Allow: INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY\r\n"
                      "Supported: path,gruu,outbound\r\n"
                      "User-Agent: JsSIP 3.10.1\r\n"
                      "Content-Length: 0\r\n"
                      "\r\n",
                      TK_REALM, to, from, auth_lines);
}

char *tk_register_with(const char *token) {
        char *auth = tk_format("Authorization: Bearer %s\r\n", token);
        char *m = tk_register("<" TK_IMPU ">", "<" TK_IMPU ">", auth);
        free(auth);
        return m;
}
