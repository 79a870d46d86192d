/* Fuzz target of sip_auth_parse() (src/wictoken/sip.h): the whole input is
 * one Authorization header value. Besides crashes, it checks that a Bearer
 * token is a token68 inside the value and that it reads back the same when
 * written in either accepted form. */
#include <stdbool.h>
#include <string.h>

#include "wictoken/sip.h"

#include "fuzz.h"

/* The library's limit is a few KiB; a large one here lets long inputs reach
 * the checks after it. The limit itself is tried on every token too. */
#define FUZZ_TOKEN_MAX 65536

static char written[FUZZ_TOKEN_MAX + 64];

static bool token_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
               c == '_' || c == '~' || c == '+' || c == '/' || c == '=';
}

static void read_back(const char *prefix, const char *suffix, struct sip_str token) {
        size_t n = (size_t) snprintf(written, sizeof written, "%s", prefix);
        memcpy(written + n, token.s, token.len);
        n += token.len;
        n += (size_t) snprintf(written + n, sizeof written - n, "%s", suffix);
        struct sip_str again;
        const char *why = NULL;
        FUZZ_ASSERT(sip_auth_parse(written, n, FUZZ_TOKEN_MAX, &again, &why) == SIP_AUTH_BEARER);
        FUZZ_ASSERT(again.len == token.len && memcmp(again.s, token.s, token.len) == 0);
        /* One byte under the token's length is over the limit. */
        FUZZ_ASSERT(sip_auth_parse(written, n, token.len - 1, &again, &why) == -1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *value = (const char *) data;
        struct sip_str token;
        const char *why = NULL;
        int r = sip_auth_parse(value, size, FUZZ_TOKEN_MAX, &token, &why);
        FUZZ_ASSERT(r == -1 || r == SIP_AUTH_OTHER || r == SIP_AUTH_BEARER);
        if (r < 0) {
                FUZZ_ASSERT(why && *why);
                return 0;
        }
        if (r == SIP_AUTH_OTHER)
                return 0;
        FUZZ_ASSERT(token.len > 0 && token.len <= FUZZ_TOKEN_MAX);
        FUZZ_ASSERT(token.s >= value && (size_t) (token.s - value) <= size - token.len);
        for (size_t i = 0; i < token.len; i++)
                FUZZ_ASSERT(token_char(token.s[i]));
        /* '=' only as padding at the end. */
        const char *eq = memchr(token.s, '=', token.len);
        if (eq) {
                FUZZ_ASSERT(eq > token.s);
                for (const char *p = eq; p < token.s + token.len; p++)
                        FUZZ_ASSERT(*p == '=');
        }
        read_back("Bearer ", "", token);
        read_back("bearer\taccess_token=\"", "\"", token);
        return 0;
}
