/* wictoken-check: libwictoken's verdict on one SIP message, from the command
 * line, as one JSON object. The contract (flags, fields, exit codes) is
 * relied on by other tools: extend it, never rename.
 *
 *   wictoken-check --issuer URL --jwks FILE --audience AUD --realm DOMAIN
 *                  [--allow-origin ORIGIN]... [--origin ORIGIN] [--leeway S]
 *                  [--now EPOCH] [--forward] [--path VALUE]
 *                  [--connection-id ID]... [MESSAGE_FILE|-]
 *
 * Exit 0: accept; 1: reject; 2: usage or configuration error (a bad JWKS
 * included). */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wictoken/wictoken.h"

/* The library refuses more; reading a little past it lets it say so. */
#define INPUT_MAX (65536 + 1)

static void usage(FILE *out) {
        fputs("usage: wictoken-check --issuer URL --jwks FILE [--issuer URL --jwks FILE]... --audience AUD\n"
              "                      --realm DOMAIN [--allow-origin ORIGIN]... [--origin ORIGIN]\n"
              "                      [--leeway SECONDS] [--now EPOCH] [--forward] [--path VALUE]\n"
              "                      [--connection-id ID]... [MESSAGE_FILE|-]\n"
              "\n"
              "Checks one SIP message as the eP-CSCF would (libwictoken) and prints one JSON object:\n"
              "verdict (\"accept\" or \"reject\"), status, reason, impu, impi, and with --forward the\n"
              "message to forward. --connection-id ID checks the message once per ID, in order, with\n"
              "token binding on (the last check is printed). Exit status: 0 accept, 1 reject,\n"
              "2 usage or configuration error.\n",
              out);
}

static int64_t fixed_clock(void *userdata) {
        return *(const int64_t *) userdata;
}

static int config_error(struct wictoken_ctx *ctx, const char *what, int r) {
        const char *detail = wictoken_ctx_detail(ctx);
        fprintf(stderr, "wictoken-check: %s: %s%s%s\n", what, wictoken_strerror(r), *detail ? ": " : "", detail);
        return 2;
}

static bool parse_int64(const char *s, int64_t *ret) {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno || end == s || *end)
                return false;
        *ret = v;
        return true;
}

static char *read_input(const char *path, size_t *len) {
        FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
        if (!f) {
                fprintf(stderr, "wictoken-check: %s: %s\n", path, strerror(errno));
                return NULL;
        }
        char *buf = malloc(INPUT_MAX);
        if (buf) {
                *len = fread(buf, 1, INPUT_MAX, f);
                if (ferror(f)) {
                        fprintf(stderr, "wictoken-check: %s: read error\n", path);
                        free(buf);
                        buf = NULL;
                }
        }
        if (f != stdin)
                fclose(f);
        return buf;
}

static void set_string(json_t *o, const char *key, const char *value) {
        json_object_set_new(o, key, value ? json_string(value) : json_null());
}

static int print(json_t *o) {
        char *text = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
        if (!text) {
                fprintf(stderr, "wictoken-check: out of memory\n");
                return -1;
        }
        puts(text);
        free(text);
        return 0;
}

static int print_reject(int status, const char *reason) {
        json_t *o = json_object();
        set_string(o, "verdict", "reject");
        json_object_set_new(o, "status", json_integer(status));
        set_string(o, "reason", reason);
        set_string(o, "impu", NULL);
        set_string(o, "impi", NULL);
        int r = print(o);
        json_decref(o);
        return r < 0 ? 2 : 1;
}

enum { OPT_ISSUER = 256, OPT_JWKS, OPT_AUDIENCE, OPT_REALM, OPT_ALLOW_ORIGIN, OPT_ORIGIN, OPT_LEEWAY, OPT_NOW,
       OPT_FORWARD, OPT_PATH, OPT_CONNECTION_ID, OPT_HELP };

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "issuer", required_argument, NULL, OPT_ISSUER },
                { "jwks", required_argument, NULL, OPT_JWKS },
                { "audience", required_argument, NULL, OPT_AUDIENCE },
                { "realm", required_argument, NULL, OPT_REALM },
                { "allow-origin", required_argument, NULL, OPT_ALLOW_ORIGIN },
                { "origin", required_argument, NULL, OPT_ORIGIN },
                { "leeway", required_argument, NULL, OPT_LEEWAY },
                { "now", required_argument, NULL, OPT_NOW },
                { "forward", no_argument, NULL, OPT_FORWARD },
                { "path", required_argument, NULL, OPT_PATH },
                { "connection-id", required_argument, NULL, OPT_CONNECTION_ID },
                { "help", no_argument, NULL, OPT_HELP },
                { NULL, 0, NULL, 0 },
        };
        struct wictoken_ctx *ctx = NULL;
        struct wictoken_verdict *v = NULL;
        const char *issuer = NULL, *origin = NULL, *connections[64];
        size_t n_connections = 0;
        bool forward = false, have_jwks = false, have_audience = false, have_realm = false;
        int64_t now = 0, leeway;
        char *input = NULL;
        size_t len = 0;
        int r, status = 2, opt;

        if ((r = wictoken_ctx_new(&ctx)) < 0) {
                fprintf(stderr, "wictoken-check: %s\n", wictoken_strerror(r));
                return 2;
        }
        while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
                switch (opt) {
                case OPT_ISSUER:
                        if (issuer) {
                                fprintf(stderr, "wictoken-check: --issuer %s has no --jwks\n", issuer);
                                goto out;
                        }
                        issuer = optarg;
                        break;
                case OPT_JWKS:
                        if (!issuer) {
                                fprintf(stderr, "wictoken-check: --jwks must follow its --issuer\n");
                                goto out;
                        }
                        if ((r = wictoken_add_issuer(ctx, issuer, optarg)) < 0) {
                                status = config_error(ctx, "--jwks", r);
                                goto out;
                        }
                        issuer = NULL;
                        have_jwks = true;
                        break;
                case OPT_AUDIENCE:
                        if ((r = wictoken_set_audience(ctx, optarg)) < 0) {
                                status = config_error(ctx, "--audience", r);
                                goto out;
                        }
                        have_audience = true;
                        break;
                case OPT_REALM:
                        if ((r = wictoken_set_realm(ctx, optarg)) < 0) {
                                status = config_error(ctx, "--realm", r);
                                goto out;
                        }
                        have_realm = true;
                        break;
                case OPT_ALLOW_ORIGIN:
                        if ((r = wictoken_allow_origin(ctx, optarg)) < 0) {
                                status = config_error(ctx, "--allow-origin", r);
                                goto out;
                        }
                        break;
                case OPT_ORIGIN:
                        origin = optarg;
                        break;
                case OPT_LEEWAY:
                        if (!parse_int64(optarg, &leeway) || (r = wictoken_set_leeway(ctx, leeway)) < 0) {
                                fprintf(stderr, "wictoken-check: --leeway %s: 0 to 600 seconds\n", optarg);
                                goto out;
                        }
                        break;
                case OPT_NOW:
                        if (!parse_int64(optarg, &now) || now < 0) {
                                fprintf(stderr, "wictoken-check: --now %s: seconds since the epoch\n", optarg);
                                goto out;
                        }
                        wictoken_set_clock(ctx, fixed_clock, &now);
                        break;
                case OPT_FORWARD:
                        forward = true;
                        break;
                case OPT_PATH:
                        if ((r = wictoken_set_path(ctx, optarg)) < 0) {
                                status = config_error(ctx, "--path", r);
                                goto out;
                        }
                        break;
                case OPT_CONNECTION_ID:
                        if (n_connections == sizeof connections / sizeof *connections) {
                                fprintf(stderr, "wictoken-check: at most 64 --connection-id\n");
                                goto out;
                        }
                        connections[n_connections++] = optarg;
                        break;
                case OPT_HELP:
                case 'h':
                        usage(stdout);
                        status = 0;
                        goto out;
                default:
                        usage(stderr);
                        goto out;
                }
        }
        if (issuer) {
                fprintf(stderr, "wictoken-check: --issuer %s has no --jwks\n", issuer);
                goto out;
        }
        if (!have_jwks || !have_audience || !have_realm || argc - optind > 1) {
                usage(stderr);
                goto out;
        }
        input = read_input(optind < argc ? argv[optind] : "-", &len);
        if (!input)
                goto out;

        if (origin && wictoken_check_origin(ctx, origin) < 0) {
                status = print_reject(403, "Origin not allowed");
                goto out;
        }
        if (n_connections)
                wictoken_set_token_binding(ctx, 1);
        size_t rounds = n_connections ? n_connections : 1;
        for (size_t i = 0; i < rounds; i++) {
                wictoken_verdict_free(v);
                v = NULL;
                r = wictoken_check_register(ctx, input, len, n_connections ? connections[i] : NULL, &v);
                if (r < 0)
                        break;
        }
        json_t *o = json_object();
        if (r == WICTOKEN_E_NOT_REGISTER) {
                /* Another request: forwarded with any Bearer credentials
                 * removed. */
                char *stripped = NULL;
                size_t stripped_len = 0;
                int removed = wictoken_strip_bearer(ctx, input, len, &stripped, &stripped_len);
                if (removed < 0) {
                        json_decref(o);
                        status = print_reject(400, wictoken_ctx_detail(ctx));
                        goto out;
                }
                set_string(o, "verdict", "accept");
                json_object_set_new(o, "status", json_integer(200));
                set_string(o, "reason", removed ? "not a REGISTER: Bearer credentials removed" : "not a REGISTER");
                set_string(o, "impu", NULL);
                set_string(o, "impi", NULL);
                if (forward)
                        json_object_set_new(o, "forward", json_stringn(stripped, stripped_len));
                free(stripped);
                status = print(o) < 0 ? 2 : 0;
                json_decref(o);
                goto out;
        }
        if (r < 0) {
                json_decref(o);
                status = config_error(ctx, "check", r);
                goto out;
        }
        bool accepted = wictoken_verdict_accepted(v);
        set_string(o, "verdict", accepted ? "accept" : "reject");
        json_object_set_new(o, "status", json_integer(wictoken_verdict_status(v)));
        set_string(o, "reason", wictoken_verdict_reason(v));
        set_string(o, "impu", wictoken_verdict_impu(v));
        set_string(o, "impi", wictoken_verdict_impi(v));
        if (accepted) {
                set_string(o, "jti", wictoken_verdict_jti(v));
                json_object_set_new(o, "exp", json_integer(wictoken_verdict_exp(v)));
        }
        if (wictoken_verdict_www_authenticate(v))
                set_string(o, "www_authenticate", wictoken_verdict_www_authenticate(v));
        if (forward && accepted) {
                size_t flen;
                const char *f = wictoken_verdict_forward(v, &flen);
                json_object_set_new(o, "forward", json_stringn(f, flen));
        }
        status = print(o) < 0 ? 2 : accepted ? 0 : 1;
        json_decref(o);
out:
        wictoken_verdict_free(v);
        wictoken_ctx_free(ctx);
        free(input);
        return status;
}
