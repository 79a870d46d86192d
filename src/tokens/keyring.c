/* The keyring wwsfd signs with: the keys of a directory parsed once, the
 * JWKS built once, and the compact JWS of each token.
 *
 * Signing is done here with GnuTLS rather than through libjwt: libjwt 1.10.2's
 * GnuTLS backend pads each half of an ECDSA signature to 66 bytes whatever the
 * curve (jwt-gnutls.c tests `if (JWT_ALG_ES256)`, a constant, instead of the
 * token's algorithm), so its ES256 signatures are 132 bytes, not the 64 bytes
 * of R||S that RFC 7518 section 3.4 and every validator require. It would also
 * parse the PEM again for every token. */
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tokens/tokens-internal.h"

/* Bytes of R and of S in an ES256 signature (RFC 7518 section 3.4). */
#define ES256_HALF 32
/* Random bits of a generated jti: collisions are out of reach (2^64 tokens
 * for an even chance) and the value cannot be guessed. */
#define JTI_BYTES 16

struct token_keyring {
        char *jwks;                     /* {"keys":[...]}, compact */
        size_t n_published;
        int64_t next_change;            /* when a retired key leaves the JWKS; 0 = never */
        /* The active key, if any: */
        gnutls_privkey_t key;
        char kid[TOKEN_KID_MAX + 1];
        enum token_alg alg;
        char *header_b64;               /* the first segment of every token */
};

void tokens_keyring_free(struct token_keyring *k) {
        if (!k)
                return;
        free(k->jwks);
        free(k->header_b64);
        gnutls_privkey_deinit(k->key);
        free(k);
}

static char *b64url_string(const char *s) {
        size_t n = strlen(s);
        char *out = malloc(TOKENS_B64URL_LEN(n) + 1);
        if (out)
                tokens_b64url_encode((const uint8_t *) s, n, out);
        return out;
}

/* The protected header, in the order alg, kid, typ. */
static char *make_header(const char *kid, enum token_alg alg) {
        json_t *h = json_object();
        char *text = NULL, *b64 = NULL;
        if (h && json_object_set_new(h, "alg", json_string(token_alg_to_string(alg))) == 0 &&
            json_object_set_new(h, "kid", json_string(kid)) == 0 && json_object_set_new(h, "typ", json_string("JWT")) == 0)
                text = json_dumps(h, JSON_COMPACT);
        if (text)
                b64 = b64url_string(text);
        free(text);
        json_decref(h);
        return b64;
}

int tokens_keyring_load(const char *dir, int64_t now, int64_t max_token_ttl, struct token_keyring **ret, char *err,
                        size_t errsize) {
        *ret = NULL;
        int dirfd = -1;
        struct key_table t = { 0 };
        json_t *root = NULL, *keys = NULL;
        struct token_keyring *k = calloc(1, sizeof *k);
        int r = -ENOMEM;
        if (!k || !(root = json_object()) || !(keys = json_array()) || json_object_set(root, "keys", keys) < 0)
                goto oom;
        if ((r = keys_dir_open(dir, false, &dirfd, err, errsize)) < 0 ||
            (r = keys_table_read(dirfd, dir, &t, err, errsize)) < 0)
                goto out;
        for (size_t i = 0; i < t.n; i++) {
                const struct key_entry *e = &t.v[i];
                if (!key_is_published(e, now, max_token_ttl))
                        continue; /* its tokens have all expired: its file is not even read */
                gnutls_privkey_t key = NULL;
                json_t *jwk = NULL;
                if ((r = key_file_load(dirfd, dir, e, e->state == KEY_ACTIVE ? &key : NULL, &jwk, err, errsize)) < 0)
                        goto out;
                if (json_array_append_new(keys, jwk) < 0) {
                        gnutls_privkey_deinit(key);
                        goto oom;
                }
                k->n_published++;
                if (e->state == KEY_RETIRED && max_token_ttl > 0 && e->retired_at <= INT64_MAX - max_token_ttl) {
                        int64_t leaves = e->retired_at + max_token_ttl;
                        if (k->next_change == 0 || leaves < k->next_change)
                                k->next_change = leaves;
                }
                if (key) {
                        k->key = key;
                        k->alg = e->alg;
                        snprintf(k->kid, sizeof k->kid, "%s", e->kid);
                        if (!(k->header_b64 = make_header(e->kid, e->alg)))
                                goto oom;
                }
        }
        if (!(k->jwks = json_dumps(root, JSON_COMPACT)))
                goto oom;
        *ret = k;
        k = NULL;
        r = 0;
        goto out;
oom:
        r = tokens_fail(err, errsize, -ENOMEM, "out of memory");
out:
        tokens_keyring_free(k);
        keys_table_done(&t);
        json_decref(keys);
        json_decref(root);
        if (dirfd >= 0)
                close(dirfd);
        return r;
}

bool tokens_keyring_can_sign(const struct token_keyring *k) {
        return k && k->key;
}

const char *tokens_keyring_jwks(const struct token_keyring *k) {
        return k ? k->jwks : NULL;
}

const char *tokens_keyring_active_kid(const struct token_keyring *k) {
        return k && k->key ? k->kid : NULL;
}

size_t tokens_keyring_published(const struct token_keyring *k) {
        return k ? k->n_published : 0;
}

int64_t tokens_keyring_next_change(const struct token_keyring *k) {
        return k ? k->next_change : 0;
}

/* DER (ASN.1 SEQUENCE of two INTEGERs, what GnuTLS returns) to JOSE's fixed
 * R||S: each integer without its sign byte, left-padded to 32 bytes. */
static int ecdsa_der_to_jose(const gnutls_datum_t *der, uint8_t out[2 * ES256_HALF]) {
        gnutls_datum_t rs[2] = { { 0 }, { 0 } };
        int r = gnutls_decode_rs_value(der, &rs[0], &rs[1]) < 0 ? -EIO : 0;
        for (int i = 0; i < 2 && r == 0; i++) {
                const uint8_t *p = rs[i].data;
                size_t n = rs[i].size;
                while (n > ES256_HALF && *p == 0) {
                        p++;
                        n--;
                }
                if (n > ES256_HALF) {
                        r = -EIO;
                        break;
                }
                memset(out + i * ES256_HALF, 0, ES256_HALF - n);
                memcpy(out + i * ES256_HALF + ES256_HALF - n, p, n);
        }
        gnutls_free(rs[0].data);
        gnutls_free(rs[1].data);
        return r;
}

/* Appends a member, failing on a string that is not UTF-8 (json_string()
 * answers NULL then). */
static int add_string(json_t *o, const char *name, const char *value) {
        json_t *v = json_string(value);
        return v ? json_object_set_new(o, name, v) : -EILSEQ;
}

int64_t tokens_claims_exp(const struct token_claims *c) {
        return c->lease_exp && c->lease_exp < c->exp ? c->lease_exp : c->exp;
}

int tokens_sign(const struct token_keyring *k, const struct token_claims *c, char **ret_token, char **ret_jti,
                char *err, size_t errsize) {
        *ret_token = NULL;
        if (ret_jti)
                *ret_jti = NULL;
        if (!k || !c)
                return tokens_fail(err, errsize, -EINVAL, "no keyring or no claims");
        if (!k->key)
                return tokens_fail(err, errsize, -ENOKEY, "no active signing key (wwsfctl keys activate KID)");

        char jti_buf[TOKENS_B64URL_LEN(JTI_BYTES) + 1];
        const char *jti = c->jti;
        if (!jti) {
                uint8_t rnd[JTI_BYTES];
                int rc = gnutls_rnd(GNUTLS_RND_NONCE, rnd, sizeof rnd);
                if (rc < 0)
                        return tokens_fail(err, errsize, -EIO, "no randomness for the jti: %s", gnutls_strerror(rc));
                tokens_b64url_encode(rnd, sizeof rnd, jti_buf);
                jti = jti_buf;
        }
        const struct {
                const char *name, *value;
        } strings[] = {
                { "iss", c->iss },   { "aud", c->aud },   { "sub", c->sub },        { "jti", jti },
                { "impu", c->impu }, { "impi", c->impi }, { "3gpp-wwsf", c->wwsf },
        };
        for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
                if (!strings[i].value || !*strings[i].value)
                        return tokens_fail(err, errsize, -EINVAL, "claim %s is missing", strings[i].name);
                if (strlen(strings[i].value) > TOKEN_CLAIM_MAX)
                        return tokens_fail(err, errsize, -EINVAL, "claim %s is longer than %d bytes", strings[i].name,
                                           TOKEN_CLAIM_MAX);
        }
        if (c->iat <= 0 || c->nbf <= 0 || c->exp <= 0 || c->lease_exp < 0)
                return tokens_fail(err, errsize, -EINVAL, "iat, nbf, exp and lease_exp must be epoch seconds");
        int64_t exp = tokens_claims_exp(c);
        if (exp <= c->nbf)
                return tokens_fail(err, errsize, -EINVAL, "the token would expire (at %lld) before it is valid (at %lld)",
                                   (long long) exp, (long long) c->nbf);

        json_t *p = json_object();
        char *payload = NULL, *token = NULL;
        gnutls_datum_t sig = { 0 };
        int r = -ENOMEM;
        if (!p)
                goto fail;
        /* Claims in the order of docs/DESIGN.md section 3. */
        if ((r = add_string(p, "iss", c->iss)) < 0 || (r = add_string(p, "aud", c->aud)) < 0 ||
            (r = add_string(p, "sub", c->sub)) < 0 ||
            (r = json_object_set_new(p, "iat", json_integer((json_int_t) c->iat))) < 0 ||
            (r = json_object_set_new(p, "nbf", json_integer((json_int_t) c->nbf))) < 0 ||
            (r = json_object_set_new(p, "exp", json_integer((json_int_t) exp))) < 0 ||
            (r = add_string(p, "jti", jti)) < 0 || (r = add_string(p, "impu", c->impu)) < 0 ||
            (r = add_string(p, "impi", c->impi)) < 0 || (r = add_string(p, "3gpp-wwsf", c->wwsf)) < 0 ||
            (r = json_object_set_new(p, "anon", json_boolean(c->anon))) < 0 ||
            (c->lease_exp && (r = json_object_set_new(p, "lease_exp", json_integer((json_int_t) c->lease_exp))) < 0))
                goto fail;
        if (!(payload = json_dumps(p, JSON_COMPACT))) {
                r = -ENOMEM;
                goto fail;
        }

        /* header.payload.signature, each base64url (RFC 7515 section 7.1). */
        size_t hlen = strlen(k->header_b64), plen = strlen(payload);
        size_t input_len = hlen + 1 + TOKENS_B64URL_LEN(plen);
        size_t max_sig = 512; /* RSA-4096 */
        token = malloc(input_len + 1 + TOKENS_B64URL_LEN(max_sig) + 1);
        if (!token) {
                r = -ENOMEM;
                goto fail;
        }
        memcpy(token, k->header_b64, hlen);
        token[hlen] = '.';
        tokens_b64url_encode((const uint8_t *) payload, plen, token + hlen + 1);

        gnutls_datum_t input = { (unsigned char *) token, (unsigned) input_len };
        int rc = gnutls_privkey_sign_data(k->key, GNUTLS_DIG_SHA256, 0, &input, &sig);
        if (rc < 0) {
                r = tokens_fail(err, errsize, -EIO, "signing with key %s failed: %s", k->kid, gnutls_strerror(rc));
                goto out;
        }
        token[input_len] = '.';
        if (k->alg == TOKEN_ALG_ES256) {
                uint8_t rs[2 * ES256_HALF];
                if (ecdsa_der_to_jose(&sig, rs) < 0) {
                        r = tokens_fail(err, errsize, -EIO, "key %s made an ECDSA signature that is not P-256", k->kid);
                        goto out;
                }
                tokens_b64url_encode(rs, sizeof rs, token + input_len + 1);
        } else {
                if (sig.size > max_sig) {
                        r = tokens_fail(err, errsize, -EIO, "key %s made a %u-byte signature", k->kid, sig.size);
                        goto out;
                }
                tokens_b64url_encode(sig.data, sig.size, token + input_len + 1);
        }
        if (ret_jti && !(*ret_jti = strdup(jti))) {
                r = -ENOMEM;
                goto fail;
        }
        *ret_token = token;
        token = NULL;
        r = 0;
        goto out;
fail:
        /* jansson answers -1 for any failure but a string that is not UTF-8. */
        if (r == -EILSEQ)
                tokens_fail(err, errsize, r, "a claim is not valid UTF-8");
        else
                r = tokens_fail(err, errsize, -ENOMEM, "out of memory");
out:
        gnutls_free(sig.data);
        free(token);
        free(payload);
        json_decref(p);
        return r;
}
