/* Fuzz target of libwictoken's SIP parsing (src/wictoken/sip.h):
 * sip_parse() on any bytes; for an accepted message, every To/From/Contact
 * value through sip_name_addr_uri() and sip_uri_parse(), the URIs compared
 * with sip_uri_same_identity(), and every Authorization value through
 * sip_auth_parse(). The input itself also goes to the address and URI
 * parsers, which then see bytes no message would carry.
 *
 * Besides crashes, it checks what sip.h promises of an accepted message:
 * every span inside the message or the arena, the raw header spans tiling
 * the head, Content-Length framing the body, values unfolded and trimmed,
 * and the message rebuilt from its parsed values parsing to the same. */
#include <stdbool.h>
#include <string.h>

#include "wictoken/sip.h"

#include "fuzz.h"

/* Tokens are checked against this in the target, as the library does with
 * its own limit; a large one lets long inputs reach the token checks. */
#define FUZZ_TOKEN_MAX 65536

static struct sip_msg msg, again;
static char rebuilt[SIP_MESSAGE_MAX];

static bool inside(struct sip_str s, const char *base, size_t len) {
        return s.s && s.s >= base && s.len <= len && (size_t) (s.s - base) <= len - s.len;
}

static bool is_wsp(char c) {
        return c == ' ' || c == '\t';
}

/* What sip_uri_parse() promises of a URI it accepted from text. */
static void check_uri(const struct sip_uri *u, struct sip_str text) {
        const struct sip_str *parts[] = { &u->scheme, &u->user, &u->host, &u->port, &u->params, &u->headers };
        for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
                FUZZ_ASSERT(parts[i]->len == 0 ? parts[i]->s != NULL : inside(*parts[i], text.s, text.len));
        FUZZ_ASSERT(u->scheme.len == 3 || u->scheme.len == 4);
        bool tel = u->scheme.len == 3 && (u->scheme.s[0] | 0x20) == 't';
        FUZZ_ASSERT(tel ? u->host.len == 0 && u->port.len == 0 && u->user.len > 0 : u->host.len > 0);
        FUZZ_ASSERT(!memchr(u->user.s, ':', u->user.len));
        FUZZ_ASSERT(u->params.len == 0 || u->params.s[0] == ';');
        FUZZ_ASSERT(u->headers.len == 0 || u->headers.s[0] == '?');
        FUZZ_ASSERT(u->port.len <= 5);
        FUZZ_ASSERT(sip_uri_same_identity(u, u));
}

/* An address value: its URI, if it has one, parsed and compared with the
 * first URI of the message. */
static void check_address(const char *value, size_t len, struct sip_uri *first, bool *have_first) {
        struct sip_str text;
        struct sip_uri u;
        const char *why = NULL;
        if (sip_name_addr_uri(value, len, &text, &why) < 0) {
                FUZZ_ASSERT(why && *why);
                return;
        }
        FUZZ_ASSERT(text.len > 0 && inside(text, value, len));
        if (sip_uri_parse(text.s, text.len, &u, &why) < 0) {
                FUZZ_ASSERT(why && *why);
                return;
        }
        check_uri(&u, text);
        if (!*have_first) {
                *first = u;
                *have_first = true;
                return;
        }
        FUZZ_ASSERT(sip_uri_same_identity(first, &u) == sip_uri_same_identity(&u, first));
}

static void check_authorization(struct sip_str value) {
        struct sip_str token;
        const char *why = NULL;
        int r = sip_auth_parse(value.s, value.len, FUZZ_TOKEN_MAX, &token, &why);
        FUZZ_ASSERT(r == -1 || r == SIP_AUTH_OTHER || r == SIP_AUTH_BEARER);
        if (r < 0)
                FUZZ_ASSERT(why && *why);
        if (r == SIP_AUTH_BEARER)
                FUZZ_ASSERT(token.len > 0 && inside(token, value.s, value.len));
}

/* The message rebuilt as "name:value" lines parses, to the same values:
 * unfolding is idempotent, and nothing the parser accepted hides a second
 * reading in its whitespace. Never longer than the input. */
static void check_rebuilt(size_t size) {
        size_t n = 0;
        memcpy(rebuilt, msg.start_line.s, msg.start_line.len);
        n += msg.start_line.len;
        for (size_t i = 0; i < msg.n_headers; i++) {
                const struct sip_header *h = &msg.headers[i];
                memcpy(rebuilt + n, h->name.s, h->name.len);
                n += h->name.len;
                rebuilt[n++] = ':';
                memcpy(rebuilt + n, h->value.s, h->value.len);
                n += h->value.len;
                memcpy(rebuilt + n, "\r\n", 2);
                n += 2;
        }
        memcpy(rebuilt + n, "\r\n", 2);
        n += 2;
        memcpy(rebuilt + n, msg.body.s, msg.body.len);
        n += msg.body.len;
        FUZZ_ASSERT(n <= size);

        const char *why = NULL;
        FUZZ_ASSERT(sip_parse(rebuilt, n, &again, &why) == 0);
        FUZZ_ASSERT(again.n_headers == msg.n_headers);
        for (size_t i = 0; i < msg.n_headers; i++) {
                FUZZ_ASSERT(again.headers[i].id == msg.headers[i].id);
                FUZZ_ASSERT(again.headers[i].value.len == msg.headers[i].value.len);
                FUZZ_ASSERT(memcmp(again.headers[i].value.s, msg.headers[i].value.s, msg.headers[i].value.len) == 0);
        }
        FUZZ_ASSERT(again.body.len == msg.body.len);
}

static void check_message(const char *buf, size_t size) {
        FUZZ_ASSERT(size <= SIP_MESSAGE_MAX);
        FUZZ_ASSERT(msg.n_headers <= SIP_HEADERS_MAX);
        FUZZ_ASSERT(msg.arena_used <= SIP_ARENA_SIZE && msg.arena_used <= size);

        FUZZ_ASSERT(msg.start_line.s == buf && msg.start_line.len >= 2);
        FUZZ_ASSERT(memcmp(msg.start_line.s + msg.start_line.len - 2, "\r\n", 2) == 0);
        FUZZ_ASSERT(msg.method.len > 0 && inside(msg.method, msg.start_line.s, msg.start_line.len));
        FUZZ_ASSERT(msg.request_uri.len > 0 && inside(msg.request_uri, msg.start_line.s, msg.start_line.len));
        FUZZ_ASSERT(msg.head.s == buf && msg.head.len + 2 + msg.body.len == size);
        FUZZ_ASSERT(msg.body.s == buf + msg.head.len + 2);
        FUZZ_ASSERT(memcmp(buf + msg.head.len, "\r\n", 2) == 0);
        FUZZ_ASSERT(!memchr(msg.head.s, '\0', msg.head.len));

        /* raw spans follow each other from the start line to the blank line. */
        const char *next = buf + msg.start_line.len;
        int n_content_length = 0;
        for (size_t i = 0; i < msg.n_headers; i++) {
                const struct sip_header *h = &msg.headers[i];
                FUZZ_ASSERT(h->raw.s == next && inside(h->raw, msg.head.s, msg.head.len));
                next += h->raw.len;
                FUZZ_ASSERT(memcmp(h->raw.s + h->raw.len - 2, "\r\n", 2) == 0);
                FUZZ_ASSERT(h->name.s == h->raw.s && h->name.len > 0 && h->name.len < h->raw.len);
                FUZZ_ASSERT(inside(h->value, msg.arena, msg.arena_used));
                FUZZ_ASSERT(h->value.len <= h->raw.len);
                FUZZ_ASSERT(!memchr(h->value.s, '\r', h->value.len) && !memchr(h->value.s, '\n', h->value.len));
                if (h->value.len > 0)
                        FUZZ_ASSERT(!is_wsp(h->value.s[0]) && !is_wsp(h->value.s[h->value.len - 1]));
                if (h->id == SIP_HDR_CONTENT_LENGTH)
                        n_content_length++;
                FUZZ_ASSERT(sip_find(&msg, h->id, (int) i) == (int) i);
        }
        FUZZ_ASSERT(next == msg.head.s + msg.head.len);
        FUZZ_ASSERT(n_content_length <= 1);
        FUZZ_ASSERT(sip_count(&msg, SIP_HDR_CONTENT_LENGTH) == n_content_length);
        if (n_content_length == 0)
                FUZZ_ASSERT(msg.body.len == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *buf = (const char *) data;
        const char *why = NULL;

        struct sip_uri first;
        bool have_first = false;
        check_address(buf, size, &first, &have_first);
        struct sip_uri u;
        if (sip_uri_parse(buf, size, &u, &why) == 0)
                check_uri(&u, (struct sip_str) { buf, size });

        if (sip_parse(buf, size, &msg, &why) < 0) {
                FUZZ_ASSERT(why && *why);
                return 0;
        }
        check_message(buf, size);
        check_rebuilt(size);

        have_first = false;
        for (size_t i = 0; i < msg.n_headers; i++) {
                const struct sip_header *h = &msg.headers[i];
                switch (h->id) {
                case SIP_HDR_TO:
                case SIP_HDR_FROM:
                case SIP_HDR_CONTACT:
                        check_address(h->value.s, h->value.len, &first, &have_first);
                        break;
                case SIP_HDR_AUTHORIZATION:
                case SIP_HDR_PROXY_AUTHORIZATION:
                        check_authorization(h->value);
                        break;
                default:
                        break;
                }
        }
        return 0;
}
