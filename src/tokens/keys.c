/* The keys directory: keys.json, one <kid>.pem per key, and the operations
 * of `wwsfctl keys` (generate, activate, retire, list). Changes take an
 * exclusive flock() on the directory, so two wwsfctl runs never lose each
 * other's edit; readers need no lock because keys.json is only ever replaced
 * by rename(). */
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tokens/tokens-internal.h"

#define KEYS_JSON "keys.json"
#define KEYS_JSON_TMP "keys.json.tmp"
/* keys.json grows by one entry (~150 bytes) per key: a new key every day for
 * twenty years is about 1 MB. Anything bigger was not written by us. */
#define KEYS_JSON_MAX (2u << 20)
/* A PKCS#8 PEM of an RSA-8192 key is about 6.4 KB. */
#define KEY_PEM_MAX (16u << 10)
/* RFC 7518 section 3.3: RS256 keys of 2048 bits or more. */
#define RSA_BITS_GENERATED 2048
#define RSA_BITS_MIN 2048

int tokens_fail(char *err, size_t errsize, int r, const char *fmt, ...) {
        if (err && errsize) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(err, errsize, fmt, ap);
                va_end(ap);
        }
        return r;
}

const char *token_alg_to_string(enum token_alg a) {
        switch (a) {
        case TOKEN_ALG_ES256:
                return "ES256";
        case TOKEN_ALG_RS256:
                return "RS256";
        }
        return "?";
}

int token_alg_from_string(const char *s, enum token_alg *ret) {
        /* JOSE algorithm names are case-sensitive (RFC 7515 section 4.1.1). */
        if (s && strcmp(s, "ES256") == 0)
                *ret = TOKEN_ALG_ES256;
        else if (s && strcmp(s, "RS256") == 0)
                *ret = TOKEN_ALG_RS256;
        else
                return -EINVAL;
        return 0;
}

static bool alg_is_valid(enum token_alg a) {
        return a == TOKEN_ALG_ES256 || a == TOKEN_ALG_RS256;
}

const char *key_state_to_string(enum key_state s) {
        switch (s) {
        case KEY_NEXT:
                return "next";
        case KEY_ACTIVE:
                return "active";
        case KEY_RETIRED:
                return "retired";
        }
        return "?";
}

static int key_state_from_string(const char *s, enum key_state *ret) {
        for (enum key_state k = KEY_NEXT; k <= KEY_RETIRED; k++)
                if (strcmp(s, key_state_to_string(k)) == 0) {
                        *ret = k;
                        return 0;
                }
        return -EINVAL;
}

/* The kid names the key file, so it may hold no '/' and may not start with a
 * dot; it also travels in every token header. */
static bool kid_is_valid(const char *s) {
        size_t n = strlen(s);
        if (n == 0 || n > TOKEN_KID_MAX || s[0] == '.')
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '-' ||
                      *s == '_' || *s == '.'))
                        return false;
        return true;
}

static const char tbl64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t tokens_b64url_encode(const uint8_t *in, size_t n, char *out) {
        size_t o = 0, i = 0;
        for (; i + 3 <= n; i += 3) {
                uint32_t v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8 | in[i + 2];
                out[o++] = tbl64url[v >> 18 & 63];
                out[o++] = tbl64url[v >> 12 & 63];
                out[o++] = tbl64url[v >> 6 & 63];
                out[o++] = tbl64url[v & 63];
        }
        if (n - i == 1) {
                uint32_t v = (uint32_t) in[i] << 16;
                out[o++] = tbl64url[v >> 18 & 63];
                out[o++] = tbl64url[v >> 12 & 63];
        } else if (n - i == 2) {
                uint32_t v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8;
                out[o++] = tbl64url[v >> 18 & 63];
                out[o++] = tbl64url[v >> 12 & 63];
                out[o++] = tbl64url[v >> 6 & 63];
        }
        out[o] = '\0';
        return o;
}

static int b64url_value(unsigned char c) {
        const char *p = c ? strchr(tbl64url, c) : NULL;
        return p ? (int) (p - tbl64url) : -1;
}

bool tokens_b64url_decode_exact(const char *in, size_t len, uint8_t *out, size_t n) {
        if (len != TOKENS_B64URL_LEN(n))
                return false;
        uint32_t acc = 0;
        unsigned bits = 0;
        size_t o = 0;
        for (size_t i = 0; i < len; i++) {
                int v = b64url_value((unsigned char) in[i]);
                if (v < 0)
                        return false;
                acc = acc << 6 | (uint32_t) v;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        out[o++] = (uint8_t) (acc >> bits);
                        acc &= (UINT32_C(1) << bits) - 1;
                }
        }
        return o == n && acc == 0;
}

/* ---- files --------------------------------------------------------------- */

/* mkdir -p: the parents as 0750 (like the store's directory), the keys
 * directory itself 0700. */
static int make_dirs(const char *dir) {
        char *path = strdup(dir);
        if (!path)
                return -ENOMEM;
        int r = 0;
        for (char *p = path + 1; *p && r == 0; p++) {
                if (*p != '/')
                        continue;
                *p = '\0';
                if (mkdir(path, 0750) < 0 && errno != EEXIST)
                        r = -errno;
                *p = '/';
        }
        if (r == 0 && mkdir(path, 0700) < 0 && errno != EEXIST)
                r = -errno;
        free(path);
        return r;
}

int keys_dir_open(const char *dir, bool create, int *ret_fd, char *err, size_t errsize) {
        if (!dir || !*dir)
                return tokens_fail(err, errsize, -EINVAL, "no keys directory given");
        if (create) {
                int r = make_dirs(dir);
                if (r < 0)
                        return tokens_fail(err, errsize, r, "cannot create the keys directory %s: %s", dir,
                                           strerror(-r));
        }
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
                int r = -errno;
                if (r == -ENOENT)
                        return tokens_fail(err, errsize, r, "keys directory %s does not exist", dir);
                if (r == -ENOTDIR)
                        return tokens_fail(err, errsize, r, "keys directory %s is not a directory", dir);
                return tokens_fail(err, errsize, r, "cannot open the keys directory %s: %s", dir, strerror(-r));
        }
        *ret_fd = fd;
        return 0;
}

static int lock_dir(int dirfd, const char *dir, char *err, size_t errsize) {
        while (flock(dirfd, LOCK_EX) < 0)
                if (errno != EINTR)
                        return tokens_fail(err, errsize, -errno, "cannot lock the keys directory %s: %s", dir,
                                           strerror(errno));
        return 0;
}

/* Reads a regular file of at most max bytes; *ret is NUL-terminated, to free(). */
static int read_file_at(int dirfd, const char *name, size_t max, char **ret, size_t *ret_len) {
        int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        char *buf = NULL;
        struct stat st;
        int r = 0;
        if (fstat(fd, &st) < 0) {
                r = -errno;
                goto out;
        }
        if (!S_ISREG(st.st_mode)) {
                r = -EISDIR;
                goto out;
        }
        if ((uint64_t) st.st_size > max) {
                r = -EFBIG;
                goto out;
        }
        size_t size = (size_t) st.st_size, len = 0;
        buf = malloc(size + 1);
        if (!buf) {
                r = -ENOMEM;
                goto out;
        }
        while (len < size) {
                ssize_t n = read(fd, buf + len, size - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        r = -errno;
                        goto out;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
        }
        buf[len] = '\0';
        *ret = buf;
        *ret_len = len;
        buf = NULL;
out:
        free(buf);
        close(fd);
        return r;
}

static int write_all(int fd, const void *data, size_t len) {
        const char *p = data;
        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

/* Creates name (which must not exist) with mode 0600, writes it and makes it
 * durable; on failure nothing is left behind. */
static int create_file_at(int dirfd, const char *name, const void *data, size_t len) {
        int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        int r = write_all(fd, data, len);
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r < 0)
                unlinkat(dirfd, name, 0);
        return r;
}

/* ---- keys.json ----------------------------------------------------------- */

void keys_table_done(struct key_table *t) {
        free(t->v);
        *t = (struct key_table) { 0 };
}

static struct key_entry *table_find(const struct key_table *t, const char *kid) {
        for (size_t i = 0; i < t->n; i++)
                if (strcmp(t->v[i].kid, kid) == 0)
                        return &t->v[i];
        return NULL;
}

/* An optional time member: absent or null is 0 ("never"). */
static const char *parse_time(json_t *o, const char *name, bool optional, int64_t *ret) {
        json_t *v = json_object_get(o, name);
        *ret = 0;
        if (optional && (!v || json_is_null(v)))
                return NULL;
        if (!json_is_integer(v) || json_integer_value(v) < 0)
                return optional ? "must be epoch seconds or null" : "must be epoch seconds";
        *ret = (int64_t) json_integer_value(v);
        return NULL;
}

/* Returns NULL, or why the entry is not valid (with *ret_member naming the member). */
static const char *parse_entry(json_t *o, struct key_entry *e, const char **ret_member) {
        const char *why;
        if (!json_is_object(o))
                return *ret_member = "", "not an object";
        const char *kid = json_string_value(json_object_get(o, "kid"));
        if (!kid || !kid_is_valid(kid))
                return *ret_member = "kid", "must be 1 to 64 characters of A-Z a-z 0-9 - _ . not starting with a dot";
        snprintf(e->kid, sizeof e->kid, "%s", kid);
        const char *alg = json_string_value(json_object_get(o, "alg"));
        if (!alg || token_alg_from_string(alg, &e->alg) < 0)
                return *ret_member = "alg", "must be \"ES256\" or \"RS256\"";
        const char *state = json_string_value(json_object_get(o, "state"));
        if (!state || key_state_from_string(state, &e->state) < 0)
                return *ret_member = "state", "must be \"next\", \"active\" or \"retired\"";
        if ((why = parse_time(o, *ret_member = "created_at", false, &e->created_at)) ||
            (why = parse_time(o, *ret_member = "activated_at", true, &e->activated_at)) ||
            (why = parse_time(o, *ret_member = "retired_at", true, &e->retired_at)))
                return why;
        if (e->state == KEY_RETIRED && e->retired_at == 0)
                return *ret_member = "retired_at", "must be set on a retired key";
        return NULL;
}

int keys_table_read(int dirfd, const char *dir, struct key_table *ret, char *err, size_t errsize) {
        *ret = (struct key_table) { 0 };
        char *buf = NULL;
        size_t len = 0;
        int r = read_file_at(dirfd, KEYS_JSON, KEYS_JSON_MAX, &buf, &len);
        if (r == -ENOENT)
                return 0; /* no key generated yet */
        if (r == -EFBIG)
                return tokens_fail(err, errsize, -EBADMSG, "%s/" KEYS_JSON ": larger than %u bytes", dir,
                                   KEYS_JSON_MAX);
        if (r < 0)
                return tokens_fail(err, errsize, r, "cannot read %s/" KEYS_JSON ": %s", dir, strerror(-r));

        json_error_t jerr;
        json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
        free(buf);
        if (!root)
                return tokens_fail(err, errsize, -EBADMSG, "%s/" KEYS_JSON ": corrupt: line %d: %s", dir, jerr.line,
                                   jerr.text);
        struct key_table t = { 0 };
        json_t *keys = json_object_get(root, "keys");
        if (!json_is_object(root) || !json_is_array(keys)) {
                r = tokens_fail(err, errsize, -EBADMSG, "%s/" KEYS_JSON ": corrupt: not an object with a \"keys\" array",
                                dir);
                goto out;
        }
        size_t n = json_array_size(keys);
        t.v = calloc(n ? n : 1, sizeof *t.v);
        if (!t.v) {
                r = tokens_fail(err, errsize, -ENOMEM, "out of memory");
                goto out;
        }
        size_t active = 0;
        for (size_t i = 0; i < n; i++) {
                struct key_entry *e = &t.v[i];
                const char *member = "";
                const char *why = parse_entry(json_array_get(keys, i), e, &member);
                if (why) {
                        r = tokens_fail(err, errsize, -EBADMSG, "%s/" KEYS_JSON ": corrupt: key %zu: %s%s%s", dir,
                                        i + 1, member, *member ? " " : "", why);
                        goto out;
                }
                if (table_find(&t, e->kid)) {
                        r = tokens_fail(err, errsize, -EBADMSG, "%s/" KEYS_JSON ": corrupt: kid '%s' appears twice",
                                        dir, e->kid);
                        goto out;
                }
                t.n++;
                if (e->state == KEY_ACTIVE && ++active > 1) {
                        r = tokens_fail(err, errsize, -EBADMSG,
                                        "%s/" KEYS_JSON ": corrupt: more than one active key ('%s' is the second)", dir,
                                        e->kid);
                        goto out;
                }
        }
        *ret = t;
        t = (struct key_table) { 0 };
        r = 0;
out:
        keys_table_done(&t);
        json_decref(root);
        return r;
}

static json_t *time_json(int64_t t) {
        return t ? json_integer((json_int_t) t) : json_null();
}

int keys_table_write(int dirfd, const char *dir, const struct key_table *t, char *err, size_t errsize) {
        json_t *keys = json_array(), *root = json_object();
        char *text = NULL;
        int r = -ENOMEM;
        if (!keys || !root || json_object_set(root, "keys", keys) < 0)
                goto out;
        for (size_t i = 0; i < t->n; i++) {
                const struct key_entry *e = &t->v[i];
                json_t *o = json_object();
                /* Each set_new consumes its value, even on failure. */
                if (!o || json_array_append_new(keys, o) < 0 ||
                    json_object_set_new(o, "kid", json_string(e->kid)) < 0 ||
                    json_object_set_new(o, "alg", json_string(token_alg_to_string(e->alg))) < 0 ||
                    json_object_set_new(o, "state", json_string(key_state_to_string(e->state))) < 0 ||
                    json_object_set_new(o, "created_at", json_integer((json_int_t) e->created_at)) < 0 ||
                    json_object_set_new(o, "activated_at", time_json(e->activated_at)) < 0 ||
                    json_object_set_new(o, "retired_at", time_json(e->retired_at)) < 0)
                        goto out;
        }
        text = json_dumps(root, JSON_INDENT(2));
        if (!text)
                goto out;

        /* The directory lock makes the fixed temp name safe; O_TRUNC clears
         * what a crashed writer may have left. */
        int fd = openat(dirfd, KEYS_JSON_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
                r = -errno;
                goto fail;
        }
        r = write_all(fd, text, strlen(text));
        if (r == 0)
                r = write_all(fd, "\n", 1);
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0 && renameat(dirfd, KEYS_JSON_TMP, dirfd, KEYS_JSON) < 0)
                r = -errno;
        if (r < 0) {
                unlinkat(dirfd, KEYS_JSON_TMP, 0);
                goto fail;
        }
        /* The rename itself must survive a power cut. */
        if (fsync(dirfd) < 0) {
                r = -errno;
                goto fail;
        }
        r = 0;
        goto out;
fail:
        tokens_fail(err, errsize, r, "cannot write %s/" KEYS_JSON ": %s", dir, strerror(-r));
out:
        if (r == -ENOMEM)
                tokens_fail(err, errsize, r, "out of memory");
        free(text);
        json_decref(keys);
        json_decref(root);
        return r;
}

bool key_is_published(const struct key_entry *e, int64_t now, int64_t max_token_ttl) {
        if (e->state != KEY_RETIRED)
                return true;
        if (max_token_ttl <= 0)
                return false;
        if (e->retired_at > INT64_MAX - max_token_ttl)
                return true;
        return now < e->retired_at + max_token_ttl;
}

/* ---- key files ------------------------------------------------------------ */

static json_t *b64url_json(const uint8_t *data, size_t n) {
        char *s = malloc(TOKENS_B64URL_LEN(n) + 1);
        if (!s)
                return NULL;
        tokens_b64url_encode(data, n, s);
        json_t *v = json_string(s);
        free(s);
        return v;
}

/* An unsigned big-endian integer in exactly width bytes (JWK x and y, RFC
 * 7518 section 6.2.1.2), or without leading zeros (width 0: n and e). */
static json_t *uint_json(const gnutls_datum_t *v, size_t width) {
        const uint8_t *p = v->data;
        size_t n = v->size;
        while (n > 1 && *p == 0) {
                p++;
                n--;
        }
        if (width == 0)
                return b64url_json(p, n);
        if (n > width)
                return NULL;
        uint8_t buf[66] = { 0 };
        if (width > sizeof buf)
                return NULL;
        memcpy(buf + width - n, p, n);
        return b64url_json(buf, width);
}

static void describe_key(int pk, unsigned bits, gnutls_ecc_curve_t curve, char *buf, size_t size) {
        if (pk == GNUTLS_PK_ECDSA)
                snprintf(buf, size, "an ECDSA %s key", gnutls_ecc_curve_get_name(curve));
        else if (pk == GNUTLS_PK_RSA)
                snprintf(buf, size, "an RSA-%u key", bits);
        else
                snprintf(buf, size, "a %s key", gnutls_pk_get_name((gnutls_pk_algorithm_t) pk));
}

int key_file_load(int dirfd, const char *dir, const struct key_entry *e, gnutls_privkey_t *ret_key,
                  json_t **ret_jwk, char *err, size_t errsize) {
        char name[TOKEN_KID_MAX + 8];
        snprintf(name, sizeof name, "%s.pem", e->kid);
        gnutls_x509_privkey_t x509 = NULL;
        gnutls_privkey_t key = NULL;
        gnutls_pubkey_t pub = NULL;
        gnutls_datum_t a = { 0 }, b = { 0 };
        json_t *jwk = NULL;
        char *pem = NULL;
        size_t len = 0;
        int rc, r = read_file_at(dirfd, name, KEY_PEM_MAX, &pem, &len);
        if (r == -ENOENT)
                return tokens_fail(err, errsize, r, "%s/%s: missing (keys.json lists key %s)", dir, name, e->kid);
        if (r == -EFBIG)
                return tokens_fail(err, errsize, -EBADMSG, "%s/%s: larger than %u bytes, not a private key", dir,
                                   name, KEY_PEM_MAX);
        if (r < 0)
                return tokens_fail(err, errsize, r, "cannot read %s/%s: %s", dir, name, strerror(-r));

        if ((rc = gnutls_x509_privkey_init(&x509)) < 0)
                goto gnutls_failed;
        gnutls_datum_t pem_datum = { (unsigned char *) pem, (unsigned) len };
        rc = gnutls_x509_privkey_import(x509, &pem_datum, GNUTLS_X509_FMT_PEM);
        explicit_bzero(pem, len);
        if (rc < 0) {
                r = tokens_fail(err, errsize, -EBADMSG, "%s/%s: not a PEM private key (%s)", dir, name,
                                gnutls_strerror(rc));
                goto out;
        }
        if ((rc = gnutls_privkey_init(&key)) < 0 ||
            (rc = gnutls_privkey_import_x509(key, x509, GNUTLS_PRIVKEY_IMPORT_AUTO_RELEASE)) < 0)
                goto gnutls_failed;
        x509 = NULL; /* key owns it now */
        if ((rc = gnutls_pubkey_init(&pub)) < 0 || (rc = gnutls_pubkey_import_privkey(pub, key, 0, 0)) < 0)
                goto gnutls_failed;

        unsigned bits = 0;
        int pk = gnutls_pubkey_get_pk_algorithm(pub, &bits);
        gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;
        if (pk == GNUTLS_PK_ECDSA &&
            (rc = gnutls_pubkey_export_ecc_raw2(pub, &curve, &a, &b, GNUTLS_EXPORT_FLAG_NO_LZ)) < 0)
                goto gnutls_failed;
        bool ok = e->alg == TOKEN_ALG_ES256 ? pk == GNUTLS_PK_ECDSA && curve == GNUTLS_ECC_CURVE_SECP256R1
                                            : pk == GNUTLS_PK_RSA && bits >= RSA_BITS_MIN;
        if (!ok) {
                char what[64];
                describe_key(pk, bits, curve, what, sizeof what);
                r = tokens_fail(err, errsize, -EBADMSG, "%s/%s holds %s, but keys.json says %s (%s)", dir, name, what,
                                token_alg_to_string(e->alg),
                                e->alg == TOKEN_ALG_ES256 ? "ECDSA P-256" : "RSA of 2048 bits or more");
                goto out;
        }
        if (ret_jwk) {
                jwk = json_object();
                if (!jwk)
                        goto oom;
                if (e->alg == TOKEN_ALG_ES256) {
                        if (json_object_set_new(jwk, "kty", json_string("EC")) < 0 ||
                            json_object_set_new(jwk, "crv", json_string("P-256")) < 0 ||
                            json_object_set_new(jwk, "x", uint_json(&a, 32)) < 0 ||
                            json_object_set_new(jwk, "y", uint_json(&b, 32)) < 0)
                                goto oom;
                } else {
                        if ((rc = gnutls_pubkey_export_rsa_raw2(pub, &a, &b, GNUTLS_EXPORT_FLAG_NO_LZ)) < 0)
                                goto gnutls_failed;
                        if (json_object_set_new(jwk, "kty", json_string("RSA")) < 0 ||
                            json_object_set_new(jwk, "n", uint_json(&a, 0)) < 0 ||
                            json_object_set_new(jwk, "e", uint_json(&b, 0)) < 0)
                                goto oom;
                }
                if (json_object_set_new(jwk, "kid", json_string(e->kid)) < 0 ||
                    json_object_set_new(jwk, "use", json_string("sig")) < 0 ||
                    json_object_set_new(jwk, "alg", json_string(token_alg_to_string(e->alg))) < 0)
                        goto oom;
                *ret_jwk = jwk;
                jwk = NULL;
        }
        if (ret_key) {
                *ret_key = key;
                key = NULL;
        }
        r = 0;
        goto out;
oom:
        r = tokens_fail(err, errsize, -ENOMEM, "out of memory");
        goto out;
gnutls_failed:
        r = tokens_fail(err, errsize, -EIO, "%s/%s: %s", dir, name, gnutls_strerror(rc));
out:
        gnutls_free(a.data);
        gnutls_free(b.data);
        json_decref(jwk);
        gnutls_pubkey_deinit(pub);
        gnutls_privkey_deinit(key);
        gnutls_x509_privkey_deinit(x509);
        free(pem);
        return r;
}

/* A new private key as an unencrypted PKCS#8 PEM ("BEGIN PRIVATE KEY"), the
 * form GnuTLS, OpenSSL and libjwt all read. */
static int generate_pem(enum token_alg alg, gnutls_datum_t *ret_pem, char *err, size_t errsize) {
        gnutls_x509_privkey_t x509 = NULL;
        int rc = gnutls_x509_privkey_init(&x509);
        if (rc >= 0)
                rc = alg == TOKEN_ALG_ES256
                             ? gnutls_x509_privkey_generate(x509, GNUTLS_PK_ECDSA,
                                                            GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0)
                             : gnutls_x509_privkey_generate(x509, GNUTLS_PK_RSA, RSA_BITS_GENERATED, 0);
        if (rc >= 0)
                rc = gnutls_x509_privkey_export2_pkcs8(x509, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN, ret_pem);
        gnutls_x509_privkey_deinit(x509);
        if (rc < 0)
                return tokens_fail(err, errsize, -EIO, "cannot generate an %s key: %s", token_alg_to_string(alg),
                                   gnutls_strerror(rc));
        return 0;
}

/* ---- the operations of wwsfctl keys ------------------------------------- */

int tokens_keys_generate(const char *dir, enum token_alg alg, int64_t now, char ret_kid[TOKEN_KID_MAX + 1],
                         char *err, size_t errsize) {
        if (!alg_is_valid(alg))
                return tokens_fail(err, errsize, -EINVAL, "unknown algorithm %d", (int) alg);
        if (now <= 0)
                return tokens_fail(err, errsize, -EINVAL, "the time must be after 1970");
        int dirfd = -1;
        struct key_table t = { 0 };
        gnutls_datum_t pem = { 0 };
        char kid[TOKEN_KID_MAX + 1] = "", name[TOKEN_KID_MAX + 8] = "";
        int r = keys_dir_open(dir, true, &dirfd, err, errsize);
        if (r < 0)
                return r;
        /* RSA generation takes a while: do it before taking the lock. */
        if ((r = generate_pem(alg, &pem, err, errsize)) < 0 || (r = lock_dir(dirfd, dir, err, errsize)) < 0 ||
            (r = keys_table_read(dirfd, dir, &t, err, errsize)) < 0)
                goto out;

        /* "k-" and 64 random bits: unique in the directory (checked against
         * keys.json and by O_EXCL on the file), unguessable, short in headers. */
        r = -EEXIST;
        for (int attempt = 0; attempt < 8 && r == -EEXIST; attempt++) {
                uint8_t rnd[8];
                int rc = gnutls_rnd(GNUTLS_RND_RANDOM, rnd, sizeof rnd);
                if (rc < 0) {
                        r = tokens_fail(err, errsize, -EIO, "no randomness: %s", gnutls_strerror(rc));
                        goto out;
                }
                snprintf(kid, sizeof kid, "k-%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3], rnd[4],
                         rnd[5], rnd[6], rnd[7]);
                snprintf(name, sizeof name, "%s.pem", kid);
                if (table_find(&t, kid))
                        continue;
                r = create_file_at(dirfd, name, pem.data, pem.size);
        }
        if (r < 0) {
                r = tokens_fail(err, errsize, r, "cannot create %s/%s: %s", dir, name, strerror(-r));
                goto out;
        }
        struct key_entry *v = realloc(t.v, (t.n + 1) * sizeof *v);
        if (!v) {
                unlinkat(dirfd, name, 0);
                r = tokens_fail(err, errsize, -ENOMEM, "out of memory");
                goto out;
        }
        t.v = v;
        struct key_entry *e = &t.v[t.n++];
        *e = (struct key_entry) { .alg = alg, .state = KEY_NEXT, .created_at = now };
        snprintf(e->kid, sizeof e->kid, "%s", kid);
        if ((r = keys_table_write(dirfd, dir, &t, err, errsize)) < 0) {
                unlinkat(dirfd, name, 0);
                goto out;
        }
        snprintf(ret_kid, TOKEN_KID_MAX + 1, "%s", kid);
out:
        if (pem.data) {
                explicit_bzero(pem.data, pem.size);
                gnutls_free(pem.data);
        }
        keys_table_done(&t);
        close(dirfd); /* releases the lock */
        return r;
}

/* Opens and locks dir, reads keys.json and finds kid. */
static int begin_change(const char *dir, const char *kid, int *ret_fd, struct key_table *t, struct key_entry **ret,
                        char *err, size_t errsize) {
        if (!kid)
                return tokens_fail(err, errsize, -EINVAL, "no kid given");
        int r = keys_dir_open(dir, false, ret_fd, err, errsize);
        if (r < 0)
                return r;
        if ((r = lock_dir(*ret_fd, dir, err, errsize)) < 0 || (r = keys_table_read(*ret_fd, dir, t, err, errsize)) < 0)
                return r;
        if (!(*ret = table_find(t, kid)))
                return tokens_fail(err, errsize, -ENOENT, "unknown key '%s' in %s", kid, dir);
        return 0;
}

int tokens_keys_activate(const char *dir, const char *kid, int64_t now, char *err, size_t errsize) {
        int dirfd = -1;
        struct key_table t = { 0 };
        struct key_entry *e = NULL;
        int r = begin_change(dir, kid, &dirfd, &t, &e, err, errsize);
        if (r < 0)
                goto out;
        if (e->state == KEY_ACTIVE)
                goto out; /* already done */
        if (e->state == KEY_RETIRED) {
                /* A retired key drops out of the JWKS; signing with it again
                 * would make tokens that validators cannot check. */
                r = tokens_fail(err, errsize, -EPERM, "key %s is retired and cannot be activated again; generate a new key",
                                kid);
                goto out;
        }
        /* Refuse a key wwsfd could not load, before it becomes the signing key. */
        if ((r = key_file_load(dirfd, dir, e, NULL, NULL, err, errsize)) < 0)
                goto out;
        for (size_t i = 0; i < t.n; i++)
                if (t.v[i].state == KEY_ACTIVE) {
                        t.v[i].state = KEY_RETIRED;
                        t.v[i].retired_at = now;
                }
        e->state = KEY_ACTIVE;
        e->activated_at = now;
        r = keys_table_write(dirfd, dir, &t, err, errsize);
out:
        keys_table_done(&t);
        if (dirfd >= 0)
                close(dirfd);
        return r;
}

int tokens_keys_retire(const char *dir, const char *kid, int64_t now, char *err, size_t errsize) {
        int dirfd = -1;
        struct key_table t = { 0 };
        struct key_entry *e = NULL;
        int r = begin_change(dir, kid, &dirfd, &t, &e, err, errsize);
        if (r < 0 || e->state == KEY_RETIRED)
                goto out; /* failed, or already done */
        e->state = KEY_RETIRED;
        e->retired_at = now;
        r = keys_table_write(dirfd, dir, &t, err, errsize);
out:
        keys_table_done(&t);
        if (dirfd >= 0)
                close(dirfd);
        return r;
}

int tokens_keys_list(const char *dir, int64_t now, int64_t max_token_ttl,
                     int (*cb)(const struct token_key_info *k, void *userdata), void *userdata, char *err,
                     size_t errsize) {
        int dirfd = -1;
        struct key_table t = { 0 };
        int r = keys_dir_open(dir, false, &dirfd, err, errsize);
        if (r < 0)
                return r;
        if ((r = keys_table_read(dirfd, dir, &t, err, errsize)) < 0)
                goto out;
        /* Oldest first; keys.json is in creation order unless edited by hand,
         * and an insertion sort keeps that order among equal times. */
        for (size_t i = 1; i < t.n; i++)
                for (size_t j = i; j > 0 && t.v[j - 1].created_at > t.v[j].created_at; j--) {
                        struct key_entry tmp = t.v[j];
                        t.v[j] = t.v[j - 1];
                        t.v[j - 1] = tmp;
                }
        for (size_t i = 0; i < t.n && r == 0; i++) {
                const struct key_entry *e = &t.v[i];
                struct token_key_info info = {
                        .alg = e->alg,
                        .state = key_state_to_string(e->state),
                        .created_at = e->created_at,
                        .activated_at = e->activated_at,
                        .retired_at = e->retired_at,
                        .published = key_is_published(e, now, max_token_ttl),
                };
                snprintf(info.kid, sizeof info.kid, "%s", e->kid);
                if (cb) {
                        int q = cb(&info, userdata);
                        if (q < 0)
                                r = q;
                }
        }
out:
        keys_table_done(&t);
        close(dirfd);
        return r;
}
