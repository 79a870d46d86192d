/* Fuzz target of the JWKS parser of libwictoken, through the public API:
 * per input a fresh context, wictoken_add_issuer_jwks() with the input as
 * the JWKS, then the context freed. A JWKS is read from a file an operator
 * may have fetched from elsewhere, so it is untrusted input too. Checks for
 * crashes and leaks, and that a refusal says why. */
#include <string.h>

#include "wictoken/wictoken.h"

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct wictoken_ctx *ctx = NULL;
        FUZZ_ASSERT(wictoken_ctx_new(&ctx) == 0 && ctx);
        int r = wictoken_add_issuer_jwks(ctx, "https://i", (const char *) data, size);
        if (r == 0) {
                FUZZ_ASSERT(wictoken_key_count(ctx) >= 0);
        } else {
                FUZZ_ASSERT(r < 0 && wictoken_strerror(r) != NULL);
                FUZZ_ASSERT(wictoken_ctx_detail(ctx) != NULL);
        }
        wictoken_ctx_free(ctx);
        return 0;
}
