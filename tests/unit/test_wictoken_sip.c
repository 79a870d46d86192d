/* libwictoken's SIP parsing (src/wictoken/sip.h): requests, To/From/Contact
 * addresses, SIP/SIPS/tel URIs and their identity comparison, and Bearer
 * credentials. Most cases are the ones where a lax parser and a strict one
 * would disagree about what the message says. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wictoken/sip.h"

/* About 70 KiB: not on the stack. */
static struct sip_msg msg;

#define REGISTER_HEAD                                                          \
        "REGISTER sip:ims.example.com SIP/2.0\r\n"                             \
        "Via: SIP/2.0/WSS abc.invalid;branch=z9hG4bK4711\r\n"                  \
        "Max-Forwards: 69\r\n"                                                 \
        "To: <sip:+15550001234@ims.example.com>\r\n"                           \
        "From: <sip:+15550001234@ims.example.com>;tag=a1b2c3\r\n"              \
        "Call-ID: 8f3k2j1h0g9f8e7d\r\n"                                        \
        "CSeq: 1 REGISTER\r\n"                                                 \
        "Contact: <sip:k3j2h1@abc.invalid;transport=ws>;+sip.ice;reg-id=1;"    \
        "+sip.instance=\"<urn:uuid:0a1b2c3d-1111-2222-3333-444455556666>\";"   \
        "expires=600\r\n"                                                      \
        "Expires: 600\r\n"                                                     \
        "Authorization: Bearer eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln\r\n"  \
        "Supported: path,gruu,outbound\r\n"

static const char *why;

static int parse(const char *s) {
        why = NULL;
        int r = sip_parse(s, strlen(s), &msg, &why);
        if (r < 0)
                assert_non_null(why);
        return r;
}

static int parse_len(const char *s, size_t len) {
        why = NULL;
        int r = sip_parse(s, len, &msg, &why);
        if (r < 0)
                assert_non_null(why);
        return r;
}

/* Refused, and for the reason given (a substring of *why). */
static void expect_malformed(const char *s, size_t len, const char *reason) {
        if (parse_len(s, len) == 0)
                fail_msg("accepted: %.*s", (int) len, s);
        if (!strstr(why, reason))
                fail_msg("refused for \"%s\", expected \"%s\": %.*s", why, reason, (int) len, s);
}

static void expect_malformed_str(const char *s, const char *reason) {
        expect_malformed(s, strlen(s), reason);
}

static void assert_str(struct sip_str got, const char *want) {
        if (got.len != strlen(want) || memcmp(got.s, want, got.len) != 0)
                fail_msg("got \"%.*s\", want \"%s\"", (int) got.len, got.s, want);
}

static const struct sip_header *header(enum sip_hdr id, int nth) {
        int i = -1;
        for (int k = 0; k <= nth; k++) {
                i = sip_find(&msg, id, i + 1);
                assert_true(i >= 0);
        }
        return &msg.headers[i];
}

static void test_register(void **state) {
        const char *s = REGISTER_HEAD "Content-Length: 0\r\n\r\n";
        assert_int_equal(parse(s), 0);
        assert_str(msg.method, "REGISTER");
        assert_str(msg.request_uri, "sip:ims.example.com");
        assert_str(msg.start_line, "REGISTER sip:ims.example.com SIP/2.0\r\n");
        assert_int_equal(msg.n_headers, 11);
        assert_int_equal(msg.head.len, strlen(s) - 2);
        assert_ptr_equal(msg.head.s, s);
        assert_int_equal(msg.body.len, 0);
        assert_ptr_equal(msg.body.s, s + strlen(s));

        assert_int_equal(msg.headers[0].id, SIP_HDR_VIA);
        assert_str(msg.headers[0].name, "Via");
        assert_str(msg.headers[0].value, "SIP/2.0/WSS abc.invalid;branch=z9hG4bK4711");
        assert_str(msg.headers[0].raw, "Via: SIP/2.0/WSS abc.invalid;branch=z9hG4bK4711\r\n");
        assert_int_equal(msg.headers[1].id, SIP_HDR_MAX_FORWARDS);
        assert_int_equal(msg.headers[2].id, SIP_HDR_TO);
        assert_int_equal(msg.headers[3].id, SIP_HDR_FROM);
        assert_int_equal(msg.headers[4].id, SIP_HDR_CALL_ID);
        assert_int_equal(msg.headers[5].id, SIP_HDR_CSEQ);
        assert_int_equal(msg.headers[6].id, SIP_HDR_CONTACT);
        assert_int_equal(msg.headers[7].id, SIP_HDR_EXPIRES);
        assert_int_equal(msg.headers[8].id, SIP_HDR_AUTHORIZATION);
        assert_int_equal(msg.headers[9].id, SIP_HDR_SUPPORTED);
        assert_int_equal(msg.headers[10].id, SIP_HDR_CONTENT_LENGTH);
        assert_str(header(SIP_HDR_AUTHORIZATION, 0)->value,
                   "Bearer eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln");
        /* Values live in the arena, not in the message. */
        assert_true(msg.headers[2].value.s >= msg.arena &&
                    msg.headers[2].value.s + msg.headers[2].value.len <= msg.arena + msg.arena_used);

        assert_int_equal(sip_count(&msg, SIP_HDR_VIA), 1);
        assert_int_equal(sip_count(&msg, SIP_HDR_ROUTE), 0);
        assert_int_equal(sip_find(&msg, SIP_HDR_ROUTE, 0), -1);
        assert_int_equal(sip_find(&msg, SIP_HDR_VIA, 0), 0);
        assert_int_equal(sip_find(&msg, SIP_HDR_VIA, 1), -1);
        assert_int_equal(sip_find(&msg, SIP_HDR_TO, -5), 2);
        assert_int_equal(sip_find(&msg, SIP_HDR_TO, 1000), -1);

        /* The same without Content-Length: allowed when there is no body. */
        assert_int_equal(parse(REGISTER_HEAD "\r\n"), 0);
        assert_int_equal(msg.n_headers, 10);
}

static void test_other_methods_and_header_names(void **state) {
        /* Methods are tokens; which one is REGISTER is the caller's question. */
        assert_int_equal(parse("MESSAGE sip:bob@ims.example.com SIP/2.0\r\nX-Any.Thing_1!%*+`'~: v\r\n\r\n"), 0);
        assert_str(msg.method, "MESSAGE");
        assert_int_equal(msg.headers[0].id, SIP_HDR_OTHER);
        assert_str(msg.headers[0].name, "X-Any.Thing_1!%*+`'~");
        assert_int_equal(parse("register sip:x SIP/2.0\r\n\r\n"), 0);
        assert_str(msg.method, "register");
        /* WSP between the name and ':'. */
        assert_int_equal(parse("OPTIONS sip:x SIP/2.0\r\nTo \t : <sip:a@b>\r\n\r\n"), 0);
        assert_int_equal(msg.headers[0].id, SIP_HDR_TO);
        assert_str(msg.headers[0].name, "To");
        assert_str(msg.headers[0].value, "<sip:a@b>");
        /* Empty values, trimmed values. */
        assert_int_equal(parse("OPTIONS sip:x SIP/2.0\r\nSupported:\r\nSubject: \t  hi there \t\r\n\r\n"), 0);
        assert_str(msg.headers[0].value, "");
        assert_str(msg.headers[1].value, "hi there");
        /* The version is case-insensitive. */
        assert_int_equal(parse("OPTIONS sip:x sip/2.0\r\n\r\n"), 0);
        /* UTF-8 in values is text. */
        assert_int_equal(parse("OPTIONS sip:x SIP/2.0\r\nFrom: \"J\xc3\xbcrgen\" <sip:j@x>\r\n\r\n"), 0);

        expect_malformed_str("OPTIONS sip:x SIP/2.0\r\nBad Name: x\r\n\r\n", "':'");
        expect_malformed_str("OPTIONS sip:x SIP/2.0\r\n: x\r\n\r\n", "name");
        expect_malformed_str("OPTIONS sip:x SIP/2.0\r\nNoColon x\r\n\r\n", "':'");
        expect_malformed_str("OPTIONS sip:x SIP/2.0\r\nTo/x: y\r\n\r\n", "':'");
        expect_malformed_str("OPTIONS sip:x SIP/2.0\r\nT\xc3\xb6: y\r\n\r\n", "':'");
}

static void test_compact_forms(void **state) {
        const char *s = "REGISTER sip:ims.example.com SIP/2.0\r\n"
                        "v: SIP/2.0/WSS a.invalid;branch=z9hG4bK1\r\n"
                        "t: <sip:a@x>\r\n"
                        "f: <sip:a@x>;tag=1\r\n"
                        "i: abc\r\n"
                        "m: <sip:c@a.invalid;transport=ws>\r\n"
                        "c: text/plain\r\n"
                        "k: path\r\n"
                        "e: gzip\r\n"
                        "L: 2\r\n"
                        "\r\n"
                        "hi";
        assert_int_equal(parse(s), 0);
        static const enum sip_hdr want[] = {
                SIP_HDR_VIA,     SIP_HDR_TO,           SIP_HDR_FROM,      SIP_HDR_CALL_ID, SIP_HDR_CONTACT,
                SIP_HDR_CONTENT_TYPE, SIP_HDR_SUPPORTED, SIP_HDR_OTHER, SIP_HDR_CONTENT_LENGTH,
        };
        assert_int_equal(msg.n_headers, sizeof want / sizeof want[0]);
        for (size_t i = 0; i < msg.n_headers; i++)
                assert_int_equal(msg.headers[i].id, want[i]);
        assert_str(msg.headers[8].name, "L");
        assert_str(msg.body, "hi");

        /* Names are case-insensitive. */
        assert_int_equal(parse("OPTIONS sip:x SIP/2.0\r\nVIA: a\r\ncall-id: b\r\ncOnTaCt: <sip:c@d>\r\n"
                               "AUTHORIZATION: Bearer x\r\nproxy-authorization: Digest x\r\nmax-forwards: 1\r\n"
                               "EXPIRES: 1\r\npath: <sip:p>\r\nROUTE: <sip:r>\r\nCSEQ: 1 OPTIONS\r\nT: <sip:a@b>\r\n"
                               "F: <sip:a@b>\r\nV: b\r\n\r\n"),
                         0);
        static const enum sip_hdr want2[] = {
                SIP_HDR_VIA,   SIP_HDR_CALL_ID, SIP_HDR_CONTACT, SIP_HDR_AUTHORIZATION, SIP_HDR_PROXY_AUTHORIZATION,
                SIP_HDR_MAX_FORWARDS, SIP_HDR_EXPIRES, SIP_HDR_PATH, SIP_HDR_ROUTE, SIP_HDR_CSEQ,
                SIP_HDR_TO,    SIP_HDR_FROM,    SIP_HDR_VIA,
        };
        assert_int_equal(msg.n_headers, sizeof want2 / sizeof want2[0]);
        for (size_t i = 0; i < msg.n_headers; i++)
                assert_int_equal(msg.headers[i].id, want2[i]);
        assert_int_equal(sip_count(&msg, SIP_HDR_VIA), 2);

        /* Names that merely start like a known one are other headers. */
        assert_int_equal(parse("OPTIONS sip:x SIP/2.0\r\nTo-X: a\r\nvv: b\r\nContent-Lengths: 7\r\n\r\n"), 0);
        for (size_t i = 0; i < msg.n_headers; i++)
                assert_int_equal(msg.headers[i].id, SIP_HDR_OTHER);
}

static void test_folding(void **state) {
        const char *s = "REGISTER sip:x SIP/2.0\r\n"
                        "Subject: first  \r\n"
                        "   second\r\n"
                        "\t third\t\r\n"
                        "To:\r\n"
                        " <sip:alice@x>\r\n"
                        "Via: a\r\n"
                        " \r\n"
                        "\r\n";
        assert_int_equal(parse(s), 0);
        assert_int_equal(msg.n_headers, 3);
        /* Each CRLF with the whitespace around it becomes one SP. */
        assert_str(msg.headers[0].value, "first second third");
        assert_str(msg.headers[0].raw, "Subject: first  \r\n   second\r\n\t third\t\r\n");
        assert_int_equal(msg.headers[1].id, SIP_HDR_TO);
        assert_str(msg.headers[1].value, "<sip:alice@x>");
        assert_str(msg.headers[1].raw, "To:\r\n <sip:alice@x>\r\n");
        /* A line of whitespace alone continues the header and adds nothing. */
        assert_str(msg.headers[2].value, "a");
        assert_str(msg.headers[2].raw, "Via: a\r\n \r\n");
        /* raw spans are what a caller removes: they tile the head. */
        const char *p = msg.start_line.s + msg.start_line.len;
        for (size_t i = 0; i < msg.n_headers; i++) {
                assert_ptr_equal(msg.headers[i].raw.s, p);
                p += msg.headers[i].raw.len;
        }
        assert_ptr_equal(p, msg.head.s + msg.head.len);

        /* Folding inside a Bearer credential: the value is what the
         * Authorization check reads. */
        assert_int_equal(parse("REGISTER sip:x SIP/2.0\r\nAuthorization: Bearer\r\n  abc.def\r\n\r\n"), 0);
        assert_str(msg.headers[0].value, "Bearer abc.def");

        expect_malformed_str("REGISTER sip:x SIP/2.0\r\n continued\r\n\r\n", "continuation line before any header");
        expect_malformed_str("REGISTER sip:x SIP/2.0\r\n\tTo: <sip:a@b>\r\n\r\n", "continuation line before any header");
}

static void test_repeated_headers(void **state) {
        const char *s = "REGISTER sip:x SIP/2.0\r\n"
                        "Via: SIP/2.0/WSS a;branch=z9hG4bK1\r\n"
                        "Authorization: Bearer one\r\n"
                        "Via: SIP/2.0/WSS b;branch=z9hG4bK2, SIP/2.0/WSS c;branch=z9hG4bK3\r\n"
                        "authorization: Bearer two\r\n"
                        "Contact: <sip:a@b>, <sip:c@d>\r\n"
                        "\r\n";
        assert_int_equal(parse(s), 0);
        assert_int_equal(sip_count(&msg, SIP_HDR_VIA), 2);
        assert_int_equal(sip_count(&msg, SIP_HDR_AUTHORIZATION), 2);
        assert_int_equal(sip_find(&msg, SIP_HDR_AUTHORIZATION, 0), 1);
        assert_int_equal(sip_find(&msg, SIP_HDR_AUTHORIZATION, 2), 3);
        assert_int_equal(sip_find(&msg, SIP_HDR_AUTHORIZATION, 4), -1);
        assert_str(header(SIP_HDR_AUTHORIZATION, 1)->value, "Bearer two");
        /* Comma-separated values stay one header. */
        assert_str(header(SIP_HDR_VIA, 1)->value, "SIP/2.0/WSS b;branch=z9hG4bK2, SIP/2.0/WSS c;branch=z9hG4bK3");
        assert_int_equal(sip_count(&msg, SIP_HDR_CONTACT), 1);
}

static void test_content_length(void **state) {
        static const char head[] = "MESSAGE sip:bob@x SIP/2.0\r\nContent-Type: text/plain\r\n";
        char buf[512];

        snprintf(buf, sizeof buf, "%sContent-Length: 5\r\n\r\nhello", head);
        assert_int_equal(parse(buf), 0);
        assert_str(msg.body, "hello");
        assert_str(msg.head, "MESSAGE sip:bob@x SIP/2.0\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n");
        /* Leading zeros are digits; folded whitespace around the number is not part of it. */
        snprintf(buf, sizeof buf, "%sContent-Length:\r\n 0005 \r\n\r\nhello", head);
        assert_int_equal(parse(buf), 0);
        snprintf(buf, sizeof buf, "%sl: 5\r\n\r\nhello", head);
        assert_int_equal(parse(buf), 0);
        /* A body may hold anything, NUL and bare LF included. */
        static const char nul_body[] = "MESSAGE sip:bob@x SIP/2.0\r\nl: 4\r\n\r\na\0\nb";
        assert_int_equal(parse_len(nul_body, sizeof nul_body - 1), 0);
        assert_int_equal(msg.body.len, 4);

        snprintf(buf, sizeof buf, "%sContent-Length: 4\r\n\r\nhello", head);
        expect_malformed_str(buf, "does not match the body");
        snprintf(buf, sizeof buf, "%sContent-Length: 6\r\n\r\nhello", head);
        expect_malformed_str(buf, "does not match the body");
        snprintf(buf, sizeof buf, "%sContent-Length: 0\r\n\r\nhello", head);
        expect_malformed_str(buf, "does not match the body");
        /* A body and no length: over a stream the length is required. */
        snprintf(buf, sizeof buf, "%s\r\nhello", head);
        expect_malformed_str(buf, "a body without Content-Length");
        /* Twice, even when both agree: request smuggling starts here. */
        snprintf(buf, sizeof buf, "%sContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", head);
        expect_malformed_str(buf, "more than once");
        snprintf(buf, sizeof buf, "%sContent-Length: 5\r\nl: 5\r\n\r\nhello", head);
        expect_malformed_str(buf, "more than once");
        snprintf(buf, sizeof buf, "%sContent-Length: 0\r\ncontent-length: 5\r\n\r\nhello", head);
        expect_malformed_str(buf, "more than once");

        static const char *const not_numbers[] = { "", "abc", "-1", "+5", "5 0", "0x5", "5;x", "5.0", "\t" };
        for (size_t i = 0; i < sizeof not_numbers / sizeof not_numbers[0]; i++) {
                snprintf(buf, sizeof buf, "%sContent-Length: %s\r\n\r\nhello", head, not_numbers[i]);
                expect_malformed_str(buf, "not a number");
        }
        /* Numbers that wrap a 64-bit counter, or exceed any message. */
        static const char *const too_large[] = {
                "18446744073709551621", "99999999999999999999999999999999999999", "65537", "000000000000065537",
        };
        for (size_t i = 0; i < sizeof too_large / sizeof too_large[0]; i++) {
                snprintf(buf, sizeof buf, "%sContent-Length: %s\r\n\r\nhello", head, too_large[i]);
                expect_malformed_str(buf, "larger than a message");
        }
}

static void test_line_ends(void **state) {
        expect_malformed_str("REGISTER sip:x SIP/2.0\n\r\n", "bare LF");
        expect_malformed_str("REGISTER sip:x SIP/2.0\r\nTo: <sip:a@b>\n\r\n", "bare LF");
        expect_malformed_str("REGISTER sip:x SIP/2.0\r\nTo: <sip:a@b>\r\n\n", "bare LF");
        expect_malformed_str("REGISTER sip:x SIP/2.0\r\nTo: <sip:a@b>\nFrom: <sip:m@b>\r\n\r\n", "bare LF");
        expect_malformed_str("REGISTER sip:x SIP/2.0\r\nTo: <sip:a@b>\rFrom: <sip:m@b>\r\n\r\n", "CR not followed by LF");
        expect_malformed_str("REGISTER sip:x SIP/2.0\r\r\n\r\n", "CR not followed by LF");
        /* Truncated heads. */
        expect_malformed_str("REGISTER sip:x SIP/2.0", "no blank line");
        expect_malformed_str("REGISTER sip:x SIP/2.0\r\nTo: <sip:a@b>\r\n", "no blank line");
        expect_malformed_str("REGISTER sip:x SIP/2.0\r\nTo: <sip:a@b>\r\n\r", "ends inside the head");
        /* No leading CRLF before the start line (a keep-alive is not a request). */
        expect_malformed_str("\r\n\r\n", "method");
        expect_malformed_str("\r\nREGISTER sip:x SIP/2.0\r\n\r\n", "method");
}

static void test_control_bytes(void **state) {
        static const char nul_value[] = "REGISTER sip:x SIP/2.0\r\nTo: <sip:alice@x>\0<sip:mallory@x>\r\n\r\n";
        expect_malformed(nul_value, sizeof nul_value - 1, "NUL");
        static const char nul_line[] = "REGISTER sip:x\0 SIP/2.0\r\n\r\n";
        expect_malformed(nul_line, sizeof nul_line - 1, "NUL");
        static const char nul_name[] = "REGISTER sip:x SIP/2.0\r\nT\0o: <sip:a@b>\r\n\r\n";
        expect_malformed(nul_name, sizeof nul_name - 1, "NUL");
        expect_malformed_str("REGISTER sip:x SIP/2.0\r\nSubject: a\x01z\r\n\r\n", "control byte");
        expect_malformed_str("REGISTER sip:x SIP/2.0\r\nSubject: a\x1bz\r\n\r\n", "control byte");
        expect_malformed_str("REGISTER sip:x SIP/2.0\r\nSubject: a\x7fz\r\n\r\n", "control byte");
        expect_malformed_str("REGISTER sip:x SIP/2.0\r\nSubject: a\x0bz\r\n\r\n", "control byte");
        /* HTAB is whitespace. */
        assert_int_equal(parse("REGISTER sip:x SIP/2.0\r\nSubject: a\tz\r\n\r\n"), 0);
        assert_str(msg.headers[0].value, "a\tz");
}

static void test_request_line(void **state) {
        expect_malformed_str("SIP/2.0 200 OK\r\nVia: SIP/2.0/WSS a;branch=z9hG4bK1\r\n\r\n", "a response");
        expect_malformed_str("sip/2.0 401 Unauthorized\r\n\r\n", "a response");
        expect_malformed_str("REGISTER  sip:x SIP/2.0\r\n\r\n", "scheme");
        expect_malformed_str("REGISTER sip:x  SIP/2.0\r\n\r\n", "SIP/2.0");
        expect_malformed_str("REGISTER sip:x SIP/2.0 \r\n\r\n", "SIP/2.0");
        expect_malformed_str("REGISTER\tsip:x SIP/2.0\r\n\r\n", "one SP");
        expect_malformed_str("REGISTER sip:x\tSIP/2.0\r\n\r\n", "Request-URI");
        expect_malformed_str("REGISTER sip:x SIP/2.1\r\n\r\n", "SIP/2.0");
        expect_malformed_str("REGISTER sip:x\r\n\r\n", "no SIP version");
        expect_malformed_str("REGISTER\r\n\r\n", "one SP");
        expect_malformed_str("REGISTER x SIP/2.0\r\n\r\n", "scheme");
        expect_malformed_str("REGISTER :x SIP/2.0\r\n\r\n", "scheme");
        expect_malformed_str("REGISTER sip:\xc3\xa4 SIP/2.0\r\n\r\n", "visible ASCII");
        expect_malformed_str("REG/ISTER sip:x SIP/2.0\r\n\r\n", "one SP");
        expect_malformed_str(" REGISTER sip:x SIP/2.0\r\n\r\n", "method");
        expect_malformed(NULL, 0, "empty");
        expect_malformed("", 0, "empty");

        /* 64 KiB at most: one byte more is refused before it is read. */
        size_t big = SIP_MESSAGE_MAX + 1;
        char *s = malloc(big);
        assert_non_null(s);
        memset(s, 'a', big);
        expect_malformed(s, big, "larger than 64 KiB");
        free(s);
}

static void test_header_limit(void **state) {
        char *s = malloc(SIP_MESSAGE_MAX);
        assert_non_null(s);
        for (int n = SIP_HEADERS_MAX; n <= SIP_HEADERS_MAX + 1; n++) {
                size_t len = (size_t) snprintf(s, SIP_MESSAGE_MAX, "REGISTER sip:x SIP/2.0\r\n");
                for (int i = 0; i < n; i++)
                        len += (size_t) snprintf(s + len, SIP_MESSAGE_MAX - len, "X-%d: %d\r\n", i, i);
                len += (size_t) snprintf(s + len, SIP_MESSAGE_MAX - len, "\r\n");
                if (n == SIP_HEADERS_MAX) {
                        assert_int_equal(parse_len(s, len), 0);
                        assert_int_equal(msg.n_headers, SIP_HEADERS_MAX);
                } else {
                        expect_malformed(s, len, "more than 128 headers");
                }
        }
        free(s);
}

/* The largest message, made of folded lines, fills the arena no further
 * than its own size. */
static void test_arena_bound(void **state) {
        char *s = malloc(SIP_MESSAGE_MAX);
        assert_non_null(s);
        size_t len = (size_t) snprintf(s, SIP_MESSAGE_MAX, "REGISTER sip:x SIP/2.0\r\nSubject: a\r\n");
        while (len + 5 + 2 <= SIP_MESSAGE_MAX) {
                memcpy(s + len, " b\r\n", 4);
                len += 4;
        }
        memcpy(s + len, "\r\n", 2);
        len += 2;
        assert_int_equal(parse_len(s, len), 0);
        assert_true(msg.arena_used <= len);
        /* "a", then " b" for each of the (len - 38) / 4 continuation lines. */
        assert_int_equal(msg.headers[0].value.len, 1 + (len - 38) / 2);

        /* One long value. */
        size_t prefix = (size_t) snprintf(s, SIP_MESSAGE_MAX, "REGISTER sip:x SIP/2.0\r\nSubject: ");
        memset(s + prefix, 'v', SIP_MESSAGE_MAX - prefix - 4);
        memcpy(s + SIP_MESSAGE_MAX - 4, "\r\n\r\n", 4);
        assert_int_equal(parse_len(s, SIP_MESSAGE_MAX), 0);
        assert_int_equal(msg.headers[0].value.len, SIP_MESSAGE_MAX - prefix - 4);
        free(s);
}

/* ---- To, From, Contact ---- */

static void expect_addr(const char *value, const char *want_uri) {
        struct sip_str uri;
        why = NULL;
        int r = sip_name_addr_uri(value, strlen(value), &uri, &why);
        if (!want_uri) {
                if (r == 0)
                        fail_msg("accepted %s as %.*s", value, (int) uri.len, uri.s);
                assert_non_null(why);
                return;
        }
        if (r != 0)
                fail_msg("refused %s: %s", value, why);
        assert_str(uri, want_uri);
}

static void test_name_addr(void **state) {
        expect_addr("<sip:+15550001234@ims.example.com>", "sip:+15550001234@ims.example.com");
        expect_addr("  <sip:a@x>  ", "sip:a@x");
        expect_addr("<sip:a@x;transport=ws>;tag=abc", "sip:a@x;transport=ws");
        expect_addr("<sip:a@x?subject=hi>;tag=abc", "sip:a@x?subject=hi");
        expect_addr("Alice <sip:alice@x>", "sip:alice@x");
        expect_addr("Alice  Liddell\t<sip:alice@x> ; tag = 1 ;lr", "sip:alice@x");
        expect_addr("Alice<sip:alice@x>", "sip:alice@x");
        expect_addr("\"Alice Liddell\" <sip:alice@x>", "sip:alice@x");
        expect_addr("\"\"<sip:alice@x>", "sip:alice@x");
        expect_addr("\"J\xc3\xbcrgen\" <sip:j@x>", "sip:j@x");
        /* What a naive first-'<' or first-"sip:" search gets wrong. */
        expect_addr("\"sip:alice@x\" <sip:mallory@x>", "sip:mallory@x");
        expect_addr("\"<sip:alice@x>\" <sip:mallory@x>", "sip:mallory@x");
        expect_addr("\"a\\\"<sip:alice@x>\" <sip:mallory@x>", "sip:mallory@x");
        expect_addr("\"a\\\\\" <sip:mallory@x>", "sip:mallory@x");
        expect_addr("\"a\\\" <sip:alice@x>\" <sip:mallory@x>", "sip:mallory@x");
        /* addr-spec: the URI ends at the first ';'. */
        expect_addr("sip:alice@x", "sip:alice@x");
        expect_addr("sip:alice@x;tag=1", "sip:alice@x");
        expect_addr("sip:alice@x ;tag=1", "sip:alice@x");
        expect_addr("tel:+15550001234;tag=1", "tel:+15550001234");
        /* Contact's parameters, quoted values holding '<' and '>'. */
        expect_addr("<sip:k3@a.invalid;transport=ws>;+sip.ice;reg-id=1;"
                    "+sip.instance=\"<urn:uuid:0a1b2c3d-1111-2222-3333-444455556666>\";expires=600",
                    "sip:k3@a.invalid;transport=ws");
        expect_addr("<sip:a@x>;received=[2001:db8::1]", "sip:a@x");

        /* Refused rather than guessed at. */
        expect_addr("", NULL);
        expect_addr("   ", NULL);
        expect_addr("*", NULL);
        expect_addr("<>", NULL);
        expect_addr("<sip:a@x", NULL);
        expect_addr("< sip:a@x>", NULL);
        expect_addr("<sip:a@x >", NULL);
        expect_addr("<sip:a@x<sip:m@x>>", NULL);
        expect_addr("<sip:a\"@x>", NULL);
        expect_addr("\"unterminated <sip:a@x>", NULL);
        expect_addr("\"a\\\" <sip:a@x>", NULL);
        expect_addr("\"a\" \"b\" <sip:a@x>", NULL);
        expect_addr("Alice \"B\" <sip:a@x>", NULL);
        expect_addr("\"Alice\" sip:a@x", NULL);
        expect_addr("\"a\x01\" <sip:a@x>", NULL);
        expect_addr("\"a\\\x01\" <sip:a@x>", NULL);
        expect_addr("J\xc3\xbcrgen <sip:j@x>", NULL);
        expect_addr("sip:alice@x <sip:mallory@x>", NULL);
        expect_addr("sip:alice@x;tag=1 <sip:mallory@x>", NULL);
        expect_addr("<sip:alice@x> <sip:mallory@x>", NULL);
        expect_addr("<sip:alice@x>;tag=<sip:mallory@x>", NULL);
        expect_addr("<sip:alice@x>junk", NULL);
        expect_addr("<sip:alice@x>;", NULL);
        expect_addr("<sip:alice@x>;tag=", NULL);
        expect_addr("<sip:alice@x>;tag=\"open", NULL);
        expect_addr("<sip:a@x>, <sip:b@x>", NULL);
        expect_addr("sip:a@x, sip:b@x", NULL);
        expect_addr("sip:a@x?subject=hi", NULL);
        expect_addr(";tag=1", NULL);
        expect_addr("sip:a@x>", NULL);
}

/* ---- URIs ---- */

struct uri_want {
        const char *in;
        const char *scheme, *user, *host, *port, *params, *headers;
};

static void test_uri_parse(void **state) {
        static const struct uri_want ok[] = {
                { "sip:+15550001234@ims.example.com", "sip", "+15550001234", "ims.example.com", "", "", "" },
                { "sip:ims.example.com", "sip", "", "ims.example.com", "", "", "" },
                { "sips:alice@x.example:5061;transport=tls?subject=hi&priority=urgent", "sips", "alice", "x.example",
                  "5061", ";transport=tls", "?subject=hi&priority=urgent" },
                { "SIP:Alice@X.Example.COM", "SIP", "Alice", "X.Example.COM", "", "", "" },
                { "sip:alice@192.0.2.1:5060", "sip", "alice", "192.0.2.1", "5060", "", "" },
                { "sip:alice@[2001:db8::1]:5060;lr", "sip", "alice", "[2001:db8::1]", "5060", ";lr", "" },
                { "sip:[::ffff:192.0.2.1]", "sip", "", "[::ffff:192.0.2.1]", "", "", "" },
                { "sip:example.com.", "sip", "", "example.com.", "", "", "" },
                { "sip:+15550001234;phone-context=ims.example.com@ims.example.com;user=phone", "sip",
                  "+15550001234;phone-context=ims.example.com", "ims.example.com", "", ";user=phone", "" },
                { "sip:a%40b@x", "sip", "a%40b", "x", "", "", "" },
                { "sip:a&=+$,;?/-_.!~*'()@x", "sip", "a&=+$,;?/-_.!~*'()", "x", "", "", "" },
                { "sip:a@x;maddr=[2001:db8::1];p=%41", "sip", "a", "x", "", ";maddr=[2001:db8::1];p=%41", "" },
                { "sip:a@x:65535", "sip", "a", "x", "65535", "", "" },
                { "sip:a@x:0", "sip", "a", "x", "0", "", "" },
                { "tel:+1-555-000-1234", "tel", "+1-555-000-1234", "", "", "", "" },
                { "tel:+15550001234;ext=12", "tel", "+15550001234", "", "", ";ext=12", "" },
                { "tel:7042;phone-context=example.com", "tel", "7042", "", "", ";phone-context=example.com", "" },
                { "TEL:*31#", "TEL", "*31#", "", "", "", "" },
        };
        for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
                struct sip_uri u;
                why = NULL;
                if (sip_uri_parse(ok[i].in, strlen(ok[i].in), &u, &why) != 0)
                        fail_msg("refused %s: %s", ok[i].in, why);
                assert_str(u.scheme, ok[i].scheme);
                assert_str(u.user, ok[i].user);
                assert_str(u.host, ok[i].host);
                assert_str(u.port, ok[i].port);
                assert_str(u.params, ok[i].params);
                assert_str(u.headers, ok[i].headers);
        }

        static const char *const bad[] = {
                "",
                "sip",
                "sip:",
                "sip:@x",
                "sip:alice@",
                "sip:alice:secret@x",           /* a password */
                "sip:alice:@x",
                "sips:alice:secret@x:5061",
                "sip:alice@x:",
                "sip:alice@x:65536",
                "sip:alice@x:123456",
                "sip:alice@x:5060x",
                "sip:alice@x:-1",
                "sip:al ice@x",
                "sip:al\"ice@x",
                "sip:al<ice@x",
                "sip:alice@x@y",
                "sip:a%4@x",
                "sip:a%zz@x",
                "sip:a@-x",
                "sip:a@x-",
                "sip:a@x..y",
                "sip:a@.x",
                "sip:a@x_y",
                "sip:a@x;",
                "sip:a@x;;lr",
                "sip:a@x;p=",
                "sip:a@x;=v",
                "sip:a@x;p=a b",
                "sip:a@x?",
                "sip:a@x?h",
                "sip:a@x?=v",
                "sip:a@x?h=v&",
                "sip:a@[2001:db8::1",
                "sip:a@[]",
                "sip:a@[zz::1]",
                "sip:a@[2001:db8::1]x",
                "sip:a@x>",
                "sip:a@x\r\n",
                "http://x",
                "mailto:a@x",
                "sipx:a@x",
                "tel:",
                "tel:+",
                "tel:+-",
                "tel:+1a",
                "tel:+1 555",
                "tel:+1555?x=y",
                "tel:+1555;",
                "tel:+1555@x",
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                struct sip_uri u;
                why = NULL;
                if (sip_uri_parse(bad[i], strlen(bad[i]), &u, &why) == 0)
                        fail_msg("accepted %s", bad[i]);
                assert_non_null(why);
        }
        /* A 255-character host is a DNS name, 256 are not. */
        char host[300] = "sip:a@";
        memset(host + 6, 'a', 255);
        host[6 + 255] = '\0';
        struct sip_uri u;
        assert_int_equal(sip_uri_parse(host, strlen(host), &u, &why), 0);
        strcat(host, "a");
        assert_int_equal(sip_uri_parse(host, strlen(host), &u, &why), -1);
        /* NUL inside the length is a byte like any other: refused. */
        assert_int_equal(sip_uri_parse("sip:a@x\0y", 9, &u, &why), -1);
}

static bool same(const char *a, const char *b) {
        struct sip_uri ua, ub;
        if (sip_uri_parse(a, strlen(a), &ua, &why) != 0)
                fail_msg("refused %s: %s", a, why);
        if (sip_uri_parse(b, strlen(b), &ub, &why) != 0)
                fail_msg("refused %s: %s", b, why);
        bool r = sip_uri_same_identity(&ua, &ub);
        /* Symmetric, and every URI names itself. */
        assert_int_equal(r, sip_uri_same_identity(&ub, &ua));
        assert_true(sip_uri_same_identity(&ua, &ua));
        return r;
}

static void test_same_identity(void **state) {
        assert_true(same("sip:+15550001234@ims.example.com", "sip:+15550001234@ims.example.com"));
        /* Host and scheme case-insensitive, user part exact. */
        assert_true(same("sip:alice@X.Example.com", "sip:alice@x.example.COM"));
        assert_true(same("SIP:alice@x", "sip:alice@x"));
        assert_false(same("sip:Alice@X", "sip:alice@x"));
        assert_false(same("sip:Alice@x", "sip:alice@x"));
        assert_true(same("sip:Alice@X", "sip:Alice@x"));
        /* Escapes are compared as written: a different spelling is refused,
         * never decoded into a match. */
        assert_false(same("sip:%61lice@x", "sip:alice@x"));
        /* Parameters and headers ignored. */
        assert_true(same("sip:alice@x;transport=ws", "sip:alice@x"));
        assert_true(same("sip:alice@x;user=phone;lr", "sip:alice@x;transport=tcp"));
        assert_true(same("sip:alice@x?subject=a", "sip:alice@x"));
        /* Ports: absent equals absent only. */
        assert_false(same("sip:alice@x:5060", "sip:alice@x"));
        assert_false(same("sip:alice@x:5060", "sip:alice@x:5061"));
        assert_true(same("sip:alice@x:5060", "sip:alice@x:5060"));
        /* Schemes. */
        assert_false(same("sips:alice@x", "sip:alice@x"));
        assert_false(same("tel:+15550001234", "sip:+15550001234@x"));
        assert_true(same("tel:+15550001234", "TEL:+15550001234;phone-context=x"));
        assert_false(same("tel:+15550001234", "tel:+15550001235"));
        assert_false(same("tel:+1-555-000-1234", "tel:+15550001234"));
        /* Users and hosts. */
        assert_false(same("sip:alice@x", "sip:alice@y"));
        assert_false(same("sip:alice@x", "sip:x"));
        assert_false(same("sip:alice@x", "sip:alicex@x"));
        assert_false(same("sip:alice@x", "sip:alice@x."));
        assert_false(same("sip:+15550001234;phone-context=a@x", "sip:+15550001234@x"));
}

/* ---- Authorization ---- */

static void expect_bearer(const char *value, const char *want) {
        struct sip_str tok;
        why = NULL;
        int r = sip_auth_parse(value, strlen(value), 4096, &tok, &why);
        if (r != SIP_AUTH_BEARER)
                fail_msg("not a Bearer token (%d, %s): %s", r, why ? why : "", value);
        assert_str(tok, want);
}

static void expect_auth(const char *value, int want) {
        struct sip_str tok;
        why = NULL;
        int r = sip_auth_parse(value, strlen(value), 4096, &tok, &why);
        if (r != want)
                fail_msg("got %d (%s), want %d: %s", r, why ? why : "", want, value);
        if (r < 0)
                assert_non_null(why);
}

static void test_auth(void **state) {
        static const char jwt[] = "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0.eyJpc3MiOiJodHRwczovL3d3c2YifQ."
                                  "MEUCIQD-abc_def~+/==";
        char buf[512];
        snprintf(buf, sizeof buf, "Bearer %s", jwt);
        expect_bearer(buf, jwt);
        expect_bearer("Bearer abc", "abc");
        expect_bearer("bearer abc", "abc");
        expect_bearer("BEARER abc", "abc");
        expect_bearer("Bearer    abc", "abc");
        expect_bearer("Bearer\tabc", "abc");
        expect_bearer("  Bearer abc  ", "abc");
        expect_bearer("Bearer abc==", "abc==");
        expect_bearer("Bearer a-b.c_d~e+f/g", "a-b.c_d~e+f/g");
        /* 24.371's form. */
        expect_bearer("Bearer access_token=\"abc.def.ghi\"", "abc.def.ghi");
        expect_bearer("Bearer ACCESS_TOKEN=\"abc\"", "abc");
        expect_bearer("Bearer access_token = \"abc\" ", "abc");
        expect_bearer("Bearer access_token=\"abc==\"", "abc==");
        /* A token68 that looks like the parameter's name is a token. */
        expect_bearer("Bearer access_token", "access_token");
        expect_bearer("Bearer access_token==", "access_token==");

        expect_auth("Digest username=\"alice\", realm=\"x\"", SIP_AUTH_OTHER);
        expect_auth("Basic YWxpY2U6cw==", SIP_AUTH_OTHER);
        expect_auth("Bearerx abc", SIP_AUTH_OTHER);
        expect_auth("XBearer abc", SIP_AUTH_OTHER);

        static const char *const bad[] = {
                "",
                "   ",
                "\"Bearer\" abc",
                "Bearer",
                "Bearer ",
                "Bearer,abc",
                "Bearer:abc",
                "Bearer\"abc\"",
                "Bearer abc def",
                "Bearer abc,",
                "Bearer abc, realm=\"x\"",
                "Bearer abc=def",
                "Bearer =abc",
                "Bearer ==",
                "Bearer a*b",
                "Bearer a%2Eb",
                "Bearer a\"b",
                "Bearer abc\x01",
                "Bearer ab\xc3\xa4",
                "Bearer access_token=abc",
                "Bearer access_token=\"\"",
                "Bearer access_token=\"abc",
                "Bearer access_token=\"abc def\"",
                "Bearer access_token=\"a\\\"b\"",
                "Bearer access_token=\"abc\", x=y",
                "Bearer access_token=\"abc\"x",
                "Bearer access_token=\"abc\" \"def\"",
                "Bearer access_token=\"abc\";",
                "Bearer token=\"abc\"",
                "Bearer abc access_token=\"def\"",
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
                expect_auth(bad[i], -1);

        /* The length limit is on the token, in either form. */
        struct sip_str tok;
        assert_int_equal(sip_auth_parse("Bearer abcd", 11, 4, &tok, &why), SIP_AUTH_BEARER);
        assert_int_equal(sip_auth_parse("Bearer abcde", 12, 4, &tok, &why), -1);
        assert_non_null(strstr(why, "longer"));
        assert_int_equal(sip_auth_parse("Bearer access_token=\"abcd\"", 26, 4, &tok, &why), SIP_AUTH_BEARER);
        assert_int_equal(sip_auth_parse("Bearer access_token=\"abcde\"", 27, 4, &tok, &why), -1);
        /* The value's length bounds the scan: what follows is not read. */
        assert_int_equal(sip_auth_parse("Bearer abc def", 10, 4096, &tok, &why), SIP_AUTH_BEARER);
        assert_str(tok, "abc");
        /* An embedded NUL is a byte after the token. */
        assert_int_equal(sip_auth_parse("Bearer abc\0def", 14, 4096, &tok, &why), -1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_register),
                cmocka_unit_test(test_other_methods_and_header_names),
                cmocka_unit_test(test_compact_forms),
                cmocka_unit_test(test_folding),
                cmocka_unit_test(test_repeated_headers),
                cmocka_unit_test(test_content_length),
                cmocka_unit_test(test_line_ends),
                cmocka_unit_test(test_control_bytes),
                cmocka_unit_test(test_request_line),
                cmocka_unit_test(test_header_limit),
                cmocka_unit_test(test_arena_bound),
                cmocka_unit_test(test_name_addr),
                cmocka_unit_test(test_uri_parse),
                cmocka_unit_test(test_same_identity),
                cmocka_unit_test(test_auth),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
