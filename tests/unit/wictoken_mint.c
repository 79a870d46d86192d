/* wictoken-mint: signing keys, tokens and REGISTERs for the tests of
 * libwictoken that run as processes (wictoken-check, Kamailio). A test tool,
 * not installed: wwsfd issues the real tokens.
 *
 *   wictoken-mint keys DIR
 *       DIR/es256.pem and DIR/rs256.pem (private keys, PKCS#8 PEM), and
 *       DIR/jwks.json with their public halves (kids "es-1" and "rs-1").
 *   wictoken-mint token DIR [OPTIONS]
 *   wictoken-mint register DIR [OPTIONS]
 *       a token, or a REGISTER carrying it (To and From the token's IMPU
 *       unless --to/--from), on stdout. OPTIONS: --alg ES256|RS256,
 *       --now EPOCH (default: the clock), --impu URI, --impi ID,
 *       --to NAME-ADDR, --from NAME-ADDR, --omit CLAIM[,CLAIM...],
 *       --extra 'JSON MEMBERS', --tamper (flip a signature bit). */
#include <errno.h>
#include <getopt.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wictoken_testkit.h"

/* fmt holds one %s for arg. */
static void die(const char *fmt, const char *arg) {
        char line[512];
        snprintf(line, sizeof line, "%s", fmt);
        char *at = strstr(line, "%s");
        if (at)
                fprintf(stderr, "wictoken-mint: %.*s%s%s\n", (int) (at - line), line, arg, at + 2);
        else
                fprintf(stderr, "wictoken-mint: %s\n", line);
        exit(2);
}

static char *path_in(const char *dir, const char *name) {
        char *p;
        if (asprintf(&p, "%s/%s", dir, name) < 0)
                exit(2);
        return p;
}

static void write_file(const char *path, const void *data, size_t len) {
        FILE *f = fopen(path, "w");
        if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0)
                die("cannot write %s", path);
}

static void save_key(const struct tk_key *k, const char *path) {
        gnutls_x509_privkey_t x;
        gnutls_datum_t pem;
        if (gnutls_privkey_export_x509(k->priv, &x) < 0 ||
            gnutls_x509_privkey_export2_pkcs8(x, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN, &pem) < 0)
                die("cannot export %s", path);
        write_file(path, pem.data, pem.size);
        gnutls_free(pem.data);
        gnutls_x509_privkey_deinit(x);
}

static struct tk_key *load_key(const char *dir, enum tk_alg alg) {
        char *path = path_in(dir, alg == TK_ES256 ? "es256.pem" : "rs256.pem");
        gnutls_datum_t pem;
        if (gnutls_load_file(path, &pem) < 0)
                die("cannot read %s (run: wictoken-mint keys DIR)", path);
        struct tk_key *k = calloc(1, sizeof *k);
        snprintf(k->kid, sizeof k->kid, "%s", alg == TK_ES256 ? "es-1" : "rs-1");
        k->alg = alg;
        if (gnutls_privkey_init(&k->priv) < 0 ||
            gnutls_privkey_import_x509_raw(k->priv, &pem, GNUTLS_X509_FMT_PEM, NULL, 0) < 0 ||
            gnutls_pubkey_init(&k->pub) < 0 || gnutls_pubkey_import_privkey(k->pub, k->priv, 0, 0) < 0)
                die("cannot load %s", path);
        gnutls_free(pem.data);
        free(path);
        return k;
}

static int cmd_keys(const char *dir) {
        struct tk_key *keys[] = { tk_key_new(TK_ES256, "es-1"), tk_key_new(TK_RS256, "rs-1") };
        char *p = path_in(dir, "es256.pem");
        save_key(keys[0], p);
        free(p);
        p = path_in(dir, "rs256.pem");
        save_key(keys[1], p);
        free(p);
        char *jwks = tk_jwks(keys, 2);
        p = path_in(dir, "jwks.json");
        write_file(p, jwks, strlen(jwks));
        free(p);
        free(jwks);
        tk_key_free(keys[0]);
        tk_key_free(keys[1]);
        return 0;
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "alg", required_argument, NULL, 'a' },   { "now", required_argument, NULL, 'n' },
                { "impu", required_argument, NULL, 'u' },  { "impi", required_argument, NULL, 'i' },
                { "to", required_argument, NULL, 't' },    { "from", required_argument, NULL, 'f' },
                { "omit", required_argument, NULL, 'o' },  { "extra", required_argument, NULL, 'e' },
                { "tamper", no_argument, NULL, 'x' },      { NULL, 0, NULL, 0 },
        };
        enum tk_alg alg = TK_ES256;
        long long now = (long long) time(NULL);
        const char *impu = TK_IMPU, *impi = TK_IMPI, *to = NULL, *from = NULL, *omit = NULL, *extra = NULL;
        int tamper = 0, opt;

        if (argc < 3)
                die("%s", "usage: wictoken-mint keys|token|register DIR [OPTIONS]");
        const char *cmd = argv[1], *dir = argv[2];
        if (strcmp(cmd, "keys") == 0)
                return cmd_keys(dir);
        optind = 3;
        while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
                switch (opt) {
                case 'a':
                        if (strcmp(optarg, "ES256") == 0)
                                alg = TK_ES256;
                        else if (strcmp(optarg, "RS256") == 0)
                                alg = TK_RS256;
                        else
                                die("--alg %s: ES256 or RS256", optarg);
                        break;
                case 'n':
                        now = strtoll(optarg, NULL, 10);
                        break;
                case 'u':
                        impu = optarg;
                        break;
                case 'i':
                        impi = optarg;
                        break;
                case 't':
                        to = optarg;
                        break;
                case 'f':
                        from = optarg;
                        break;
                case 'o':
                        omit = optarg;
                        break;
                case 'e':
                        extra = optarg;
                        break;
                case 'x':
                        tamper = 1;
                        break;
                default:
                        die("%s", "unknown option");
                }
        }
        struct tk_key *k = load_key(dir, alg);
        char *h = tk_header(k), *c = tk_claims(now, impu, impi, omit, extra);
        char *token = tk_sign(k, h, c);
        if (tamper) {
                char *sig = strrchr(token, '.') + 1;
                sig[0] = sig[0] == 'A' ? 'B' : 'A';
        }
        if (strcmp(cmd, "token") == 0)
                printf("%s\n", token);
        else if (strcmp(cmd, "register") == 0) {
                char *own, *auth;
                if (asprintf(&own, "<%s>", impu) < 0 || asprintf(&auth, "Authorization: Bearer %s\r\n", token) < 0)
                        return 2;
                char *m = tk_register(to ? to : own, from ? from : own, auth);
                fputs(m, stdout);
                free(m);
                free(own);
                free(auth);
        } else
                die("unknown command %s", cmd);
        free(h);
        free(c);
        free(token);
        tk_key_free(k);
        return 0;
}
