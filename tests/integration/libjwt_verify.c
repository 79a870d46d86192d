/* libjwt_verify PUBLIC.pem TOKEN: verifies a token wwsfd issued with libjwt
 * (Debian's libjwt 1.10.2 on GnuTLS), an implementation independent of the
 * GnuTLS code that signed it, and prints its algorithm and claims as one
 * JSON object {"alg": "...", "claims": {...}}. Exit status 0 when the
 * signature verifies, 1 when it does not, 2 on a usage error. Used by
 * test_wwsfd_tokens.py next to the openssl check. */
#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A public key PEM is a few hundred bytes; this is far past any. */
#define PEM_MAX 16384

int main(int argc, char **argv) {
        if (argc != 3) {
                fprintf(stderr, "usage: libjwt_verify PUBLIC.pem TOKEN\n");
                return 2;
        }
        FILE *f = fopen(argv[1], "rb");
        if (!f) {
                fprintf(stderr, "libjwt_verify: %s: %s\n", argv[1], strerror(errno));
                return 2;
        }
        static unsigned char pem[PEM_MAX];
        size_t n = fread(pem, 1, sizeof pem, f);
        fclose(f);
        if (n == 0 || n == sizeof pem) {
                fprintf(stderr, "libjwt_verify: %s: empty or too large\n", argv[1]);
                return 2;
        }
        jwt_t *jwt = NULL;
        int r = jwt_decode(&jwt, argv[2], pem, (int) n);
        if (r != 0) {
                fprintf(stderr, "libjwt_verify: jwt_decode: %s\n", strerror(r));
                return 1;
        }
        char *grants = jwt_get_grants_json(jwt, NULL);
        json_error_t jerr;
        json_t *claims = grants ? json_loads(grants, 0, &jerr) : NULL;
        json_t *out = json_pack("{s:s, s:o}", "alg", jwt_alg_str(jwt_get_alg(jwt)), "claims",
                                claims ? claims : json_null());
        char *text = out ? json_dumps(out, JSON_COMPACT) : NULL;
        if (text)
                puts(text);
        free(text);
        json_decref(out);
        free(grants);
        jwt_free(jwt);
        return text && claims ? 0 : 2;
}
