/* Fuzz target of libwictoken's public API for SIP requests
 * (include/wictoken/wictoken.h): wictoken_check_register() and
 * wictoken_strip_bearer() on any bytes, with a context configured once like
 * an eP-CSCF's (one issuer, one ES256 key, an audience and a realm).
 *
 * The clock is fixed at the instant the tokens of corpus/register/ were made
 * for, so that they keep reaching the signature, claim and IMPU checks
 * whatever today's date; their private key was not kept.
 *
 * Besides crashes and leaks, it checks what the header promises of a
 * verdict, and that what would be forwarded parses and carries no Bearer
 * credentials. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "wictoken/sip.h"
#include "wictoken/wictoken.h"

#include "fuzz.h"

#define ISSUER "https://wwsf.example.com"
#define IMS_DOMAIN "ims.example.com"
/* 2026-01-01T00:00:00Z: inside every corpus token's nbf..exp but the
 * expired one's. */
#define FUZZ_NOW 1767225600

static const char jwks[] = "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\","
                           "\"x\":\"6P0QjcJBXjNCNm2QYo99o-n6QoPvigZ5-GzVu4NDmSs\","
                           "\"y\":\"5ctrr4TuvZ55ihVV1qZteZhotXTFbhHI_4tPfwJGZTk\","
                           "\"kid\":\"k1\",\"use\":\"sig\",\"alg\":\"ES256\"}]}";

static struct wictoken_ctx *ctx;
static struct sip_msg forwarded;

static int64_t fixed_clock(void *userdata) {
        (void) userdata;
        return FUZZ_NOW;
}

static void setup(void) {
        FUZZ_ASSERT(wictoken_ctx_new(&ctx) == 0);
        wictoken_set_clock(ctx, fixed_clock, NULL);
        int r = wictoken_add_issuer_jwks(ctx, ISSUER, jwks, sizeof jwks - 1);
        if (r < 0) {
                fprintf(stderr, "the fuzz target's JWKS is refused: %s: %s\n", wictoken_strerror(r),
                        wictoken_ctx_detail(ctx));
                abort();
        }
        FUZZ_ASSERT(wictoken_set_audience(ctx, IMS_DOMAIN) == 0);
        FUZZ_ASSERT(wictoken_set_realm(ctx, IMS_DOMAIN) == 0);
}

/* A request the library hands on: it parses (when it fits a message), and
 * no Authorization in it is a Bearer one, well-formed or not. */
static void check_forwardable(const char *msg, size_t len) {
        if (len > SIP_MESSAGE_MAX)
                return;
        const char *why = NULL;
        FUZZ_ASSERT(sip_parse(msg, len, &forwarded, &why) == 0);
        for (int i = sip_find(&forwarded, SIP_HDR_AUTHORIZATION, 0); i >= 0;
             i = sip_find(&forwarded, SIP_HDR_AUTHORIZATION, i + 1)) {
                struct sip_str token;
                const struct sip_str *value = &forwarded.headers[i].value;
                FUZZ_ASSERT(sip_auth_parse(value->s, value->len, SIZE_MAX, &token, &why) == SIP_AUTH_OTHER);
        }
}

static void check_verdict(const struct wictoken_verdict *v) {
        int status = wictoken_verdict_status(v);
        int accepted = wictoken_verdict_accepted(v);
        FUZZ_ASSERT(status == 200 || status == 400 || status == 401 || status == 403);
        FUZZ_ASSERT(accepted == (status == 200));
        FUZZ_ASSERT(wictoken_verdict_reason(v) != NULL);
        FUZZ_ASSERT(wictoken_verdict_phrase(v) != NULL);
        FUZZ_ASSERT((wictoken_verdict_www_authenticate(v) != NULL) == (status == 401));
        size_t len = 0;
        const char *forward = wictoken_verdict_forward(v, &len);
        if (!accepted) {
                FUZZ_ASSERT(!forward && !wictoken_verdict_impu(v) && !wictoken_verdict_tna_authorization(v));
                return;
        }
        FUZZ_ASSERT(wictoken_verdict_impu(v) && wictoken_verdict_impi(v) && wictoken_verdict_jti(v));
        FUZZ_ASSERT(wictoken_verdict_exp(v) > 0);
        FUZZ_ASSERT(wictoken_verdict_tna_authorization(v) && wictoken_verdict_path(v));
        FUZZ_ASSERT(forward && len > 0);
        check_forwardable(forward, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (!ctx)
                setup();
        const char *msg = (const char *) data;

        struct wictoken_verdict *v = NULL;
        int r = wictoken_check_register(ctx, msg, size, "ws-1", &v);
        if (r == 0) {
                FUZZ_ASSERT(v);
                check_verdict(v);
                wictoken_verdict_free(v);
        } else {
                /* The context is complete and memory is there: only another
                 * method has no verdict. */
                FUZZ_ASSERT(r == WICTOKEN_E_NOT_REGISTER);
        }

        char *stripped = NULL;
        size_t stripped_len = 0;
        r = wictoken_strip_bearer(ctx, msg, size, &stripped, &stripped_len);
        if (r >= 0) {
                FUZZ_ASSERT(stripped);
                check_forwardable(stripped, stripped_len);
                free(stripped);
        } else {
                FUZZ_ASSERT(r == WICTOKEN_E_MALFORMED);
        }
        return 0;
}
