/* SIP parsing for libwictoken (sip.h): a request's head, the URIs of its
 * To/From/Contact values and its Authorization credentials.
 *
 * Strict on purpose. The library decides from what is parsed here whether a
 * REGISTER may enter the IMS core, and the proxy and the S-CSCF parse the
 * same bytes again with their own parsers. Anything two parsers could read
 * two ways (a bare LF, a second Content-Length, a '<' in a display name read
 * as the start of the URI) is refused, so that what the validator checked is
 * what the core sees. Every scan is linear in the input and nothing is
 * allocated. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sip.h"

/* A DNS name is at most 253 characters (RFC 1035 section 2.3.4, written
 * out); 255 also covers a trailing dot. Longer hosts cannot name anything. */
#define SIP_HOST_MAX 255
/* "[" IPv6 "]" with an embedded IPv4 part: 47 characters at most. */
#define SIP_IPV6_REFERENCE_MAX 47
/* A port is 0 to 65535: five digits. */
#define SIP_PORT_DIGITS_MAX 5

static int fail(const char **why, const char *reason) {
        if (why)
                *why = reason;
        return -1;
}

static struct sip_str str_empty(void) {
        /* Never NULL, so that memcmp() and friends may always be given .s. */
        return (struct sip_str) { "", 0 };
}

static struct sip_str str_span(const char *from, const char *to) {
        return (struct sip_str) { from, (size_t) (to - from) };
}

/* ---- character classes (RFC 3261 section 25.1, RFC 3966, RFC 7235) ---- */

static bool is_alpha(unsigned char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c) {
        return c >= '0' && c <= '9';
}

static bool is_alnum(unsigned char c) {
        return is_alpha(c) || is_digit(c);
}

static bool is_hex(unsigned char c) {
        return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_wsp(unsigned char c) {
        return c == ' ' || c == '\t';
}

/* Bytes that never appear in a head: controls but HTAB, and DEL. */
static bool is_ctl(unsigned char c) {
        return (c < 0x20 && c != '\t') || c == 0x7f;
}

/* token: header names, methods, auth schemes, display names, parameters. */
static bool is_token_char(unsigned char c) {
        if (is_alnum(c))
                return true;
        switch (c) {
        case '-': case '.': case '!': case '%': case '*': case '_': case '+': case '`': case '\'': case '~':
                return true;
        default:
                return false;
        }
}

/* unreserved = alphanum / mark */
static bool is_unreserved(unsigned char c) {
        if (is_alnum(c))
                return true;
        switch (c) {
        case '-': case '_': case '.': case '!': case '~': case '*': case '\'': case '(': case ')':
                return true;
        default:
                return false;
        }
}

/* user = 1*( unreserved / escaped / user-unreserved ) */
static bool is_user_char(unsigned char c) {
        if (is_unreserved(c))
                return true;
        switch (c) {
        case '&': case '=': case '+': case '$': case ',': case ';': case '?': case '/':
                return true;
        default:
                return false;
        }
}

/* paramchar = param-unreserved / unreserved / escaped */
static bool is_param_char(unsigned char c) {
        if (is_unreserved(c))
                return true;
        switch (c) {
        case '[': case ']': case '/': case ':': case '&': case '+': case '$':
                return true;
        default:
                return false;
        }
}

/* hname and hvalue: hnv-unreserved / unreserved / escaped */
static bool is_hnv_char(unsigned char c) {
        if (is_unreserved(c))
                return true;
        switch (c) {
        case '[': case ']': case '/': case '?': case ':': case '+': case '$':
                return true;
        default:
                return false;
        }
}

/* token68 without its trailing '=' padding (RFC 7235 section 2.1). */
static bool is_token68_char(unsigned char c) {
        return is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

static unsigned char lower(unsigned char c) {
        return c >= 'A' && c <= 'Z' ? (unsigned char) (c + ('a' - 'A')) : c;
}

static bool eq_nocase(const char *a, size_t alen, const char *b, size_t blen) {
        if (alen != blen)
                return false;
        for (size_t i = 0; i < alen; i++)
                if (lower((unsigned char) a[i]) != lower((unsigned char) b[i]))
                        return false;
        return true;
}

/* Whether [s, s+len) is made of characters `allowed` accepts and of
 * "%" HEXDIG HEXDIG escapes. */
static bool escaped_run_valid(const char *s, size_t len, bool (*allowed)(unsigned char)) {
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) s[i];
                if (c == '%') {
                        if (len - i < 3 || !is_hex((unsigned char) s[i + 1]) || !is_hex((unsigned char) s[i + 2]))
                                return false;
                        i += 2;
                } else if (!allowed(c)) {
                        return false;
                }
        }
        return true;
}

static const char *skip_wsp(const char *p, const char *end) {
        while (p < end && is_wsp((unsigned char) *p))
                p++;
        return p;
}

static const char *skip_token(const char *p, const char *end) {
        while (p < end && is_token_char((unsigned char) *p))
                p++;
        return p;
}

/* ---- the message ---- */

static const struct {
        const char *name;
        enum sip_hdr id;
} header_names[] = {
        { "Via", SIP_HDR_VIA },
        { "v", SIP_HDR_VIA },
        { "To", SIP_HDR_TO },
        { "t", SIP_HDR_TO },
        { "From", SIP_HDR_FROM },
        { "f", SIP_HDR_FROM },
        { "Call-ID", SIP_HDR_CALL_ID },
        { "i", SIP_HDR_CALL_ID },
        { "CSeq", SIP_HDR_CSEQ },
        { "Contact", SIP_HDR_CONTACT },
        { "m", SIP_HDR_CONTACT },
        { "Content-Length", SIP_HDR_CONTENT_LENGTH },
        { "l", SIP_HDR_CONTENT_LENGTH },
        { "Content-Type", SIP_HDR_CONTENT_TYPE },
        { "c", SIP_HDR_CONTENT_TYPE },
        { "Authorization", SIP_HDR_AUTHORIZATION },
        { "Proxy-Authorization", SIP_HDR_PROXY_AUTHORIZATION },
        { "Max-Forwards", SIP_HDR_MAX_FORWARDS },
        { "Expires", SIP_HDR_EXPIRES },
        { "Path", SIP_HDR_PATH },
        { "Route", SIP_HDR_ROUTE },
        { "Supported", SIP_HDR_SUPPORTED },
        { "k", SIP_HDR_SUPPORTED },
};

static enum sip_hdr header_id(const char *name, size_t len) {
        for (size_t i = 0; i < sizeof header_names / sizeof header_names[0]; i++)
                if (eq_nocase(name, len, header_names[i].name, strlen(header_names[i].name)))
                        return header_names[i].id;
        return SIP_HDR_OTHER;
}

/* The end of the line starting at pos (the offset of its CR) in *ret.
 * Checks every byte on the way: the head is text, and a lone CR or LF is a
 * line end to some parsers and not to others. */
static int line_end(const char *buf, size_t len, size_t pos, size_t *ret, const char **why) {
        for (size_t i = pos; i < len; i++) {
                unsigned char c = (unsigned char) buf[i];
                if (!is_ctl(c))
                        continue;
                if (c == '\r') {
                        if (i + 1 < len && buf[i + 1] == '\n') {
                                *ret = i;
                                return 0;
                        }
                        return fail(why, i + 1 < len ? "a CR not followed by LF" : "the message ends inside the head");
                }
                if (c == '\n')
                        return fail(why, "bare LF");
                if (c == 0)
                        return fail(why, "a NUL byte in the head");
                return fail(why, "a control byte in the head");
        }
        return fail(why, "no blank line after the headers");
}

/* "METHOD SP Request-URI SP SIP/2.0" in [line, line+len). */
static int parse_request_line(const char *line, size_t len, struct sip_msg *m, const char **why) {
        const char *p = line, *end = line + len;
        if (len >= 4 && eq_nocase(line, 4, "SIP/", 4))
                return fail(why, "a response, not a request");

        const char *method_end = skip_token(p, end);
        if (method_end == p)
                return fail(why, "no method in the request line");
        if (method_end == end || *method_end != ' ')
                return fail(why, "the method is not followed by one SP");
        m->method = str_span(p, method_end);

        /* absoluteURI (RFC 3261 section 25.1): a scheme, ':', then visible
         * ASCII; the SIP URI's own syntax is the proxy's business. */
        p = method_end + 1;
        const char *uri = p;
        if (p == end || !is_alpha((unsigned char) *p))
                return fail(why, "the Request-URI does not start with a scheme");
        while (p < end && (is_alnum((unsigned char) *p) || *p == '+' || *p == '-' || *p == '.'))
                p++;
        if (p == end || *p != ':')
                return fail(why, "the Request-URI does not start with a scheme");
        while (p < end && *p != ' ') {
                unsigned char c = (unsigned char) *p;
                if (c <= 0x20 || c >= 0x7f)
                        return fail(why, "a byte outside visible ASCII in the Request-URI");
                p++;
        }
        if (p == end)
                return fail(why, "no SIP version in the request line");
        m->request_uri = str_span(uri, p);

        /* The version is case-insensitive (RFC 3261 section 7.1). */
        p++;
        if (!eq_nocase(p, (size_t) (end - p), "SIP/2.0", 7))
                return fail(why, "the request line does not end with SP SIP/2.0");
        return 0;
}

/* Appends [s, s+len) to the arena (the value being built is at its end). */
static int arena_append(struct sip_msg *m, const char *s, size_t len, const char **why) {
        /* Cannot happen: unfolded values are never longer than the message,
         * and the arena is as large as the largest message. */
        if (len > SIP_ARENA_SIZE - m->arena_used)
                return fail(why, "header values overflow the arena");
        memcpy(m->arena + m->arena_used, s, len);
        m->arena_used += len;
        return 0;
}

/* Drops the whitespace at the end of h's value (the end of the arena). */
static void value_trim_end(struct sip_msg *m, struct sip_header *h) {
        while (h->value.len > 0 && is_wsp((unsigned char) h->value.s[h->value.len - 1])) {
                h->value.len--;
                m->arena_used--;
        }
}

/* Adds one line's text [s, e) to h's value: RFC 3261 section 7.3.1 makes
 * the whitespace around a line fold one SP. The value is kept trimmed. */
static int value_add_line(struct sip_msg *m, struct sip_header *h, const char *s, const char *e, const char **why) {
        s = skip_wsp(s, e);
        if (s == e)
                return 0;
        if (h->value.len > 0) {
                if (arena_append(m, " ", 1, why) < 0)
                        return -1;
                h->value.len++;
        }
        if (arena_append(m, s, (size_t) (e - s), why) < 0)
                return -1;
        h->value.len += (size_t) (e - s);
        value_trim_end(m, h);
        return 0;
}

/* The header line at [buf+pos, buf+eol): "name *WSP : value". */
static int header_start(const char *buf, size_t pos, size_t eol, struct sip_msg *m, const char **why) {
        const char *p = buf + pos, *end = buf + eol;
        /* A REGISTER needs about 12; past the limit the client is not one. */
        if (m->n_headers == SIP_HEADERS_MAX)
                return fail(why, "more than 128 headers");
        const char *name_end = skip_token(p, end);
        if (name_end == p)
                return fail(why, "a header line that does not start with a name");
        const char *colon = skip_wsp(name_end, end);
        if (colon == end || *colon != ':')
                return fail(why, "a header name not followed by ':'");

        struct sip_header *h = &m->headers[m->n_headers++];
        h->name = str_span(p, name_end);
        h->id = header_id(p, (size_t) (name_end - p));
        h->raw = (struct sip_str) { p, eol + 2 - pos };
        h->value = (struct sip_str) { m->arena + m->arena_used, 0 };
        return value_add_line(m, h, colon + 1, end, why);
}

static int check_content_length(const struct sip_msg *m, const char **why) {
        const struct sip_header *cl = NULL;
        for (size_t i = 0; i < m->n_headers; i++) {
                if (m->headers[i].id != SIP_HDR_CONTENT_LENGTH)
                        continue;
                /* Two lengths: which one frames the message depends on the
                 * parser, the start of request smuggling. */
                if (cl)
                        return fail(why, "Content-Length more than once");
                cl = &m->headers[i];
        }
        if (!cl) {
                if (m->body.len > 0)
                        return fail(why, "a body without Content-Length");
                return 0;
        }
        if (cl->value.len == 0)
                return fail(why, "Content-Length is not a number");
        size_t n = 0;
        for (size_t i = 0; i < cl->value.len; i++) {
                unsigned char c = (unsigned char) cl->value.s[i];
                if (!is_digit(c))
                        return fail(why, "Content-Length is not a number");
                n = n * 10 + (size_t) (c - '0');
                /* Stops long before size_t overflows: no body is larger
                 * than a message. */
                if (n > SIP_MESSAGE_MAX)
                        return fail(why, "Content-Length larger than a message");
        }
        if (n != m->body.len)
                return fail(why, "Content-Length does not match the body");
        return 0;
}

int sip_parse(const char *buf, size_t len, struct sip_msg *m, const char **why) {
        memset(m, 0, offsetof(struct sip_msg, arena));
        m->arena_used = 0;
        if (!buf || len == 0)
                return fail(why, "empty message");
        if (len > SIP_MESSAGE_MAX)
                return fail(why, "message larger than 64 KiB");

        size_t eol;
        if (line_end(buf, len, 0, &eol, why) < 0)
                return -1;
        if (parse_request_line(buf, eol, m, why) < 0)
                return -1;
        m->start_line = (struct sip_str) { buf, eol + 2 };

        struct sip_header *h = NULL;
        size_t pos = eol + 2;
        for (;;) {
                if (line_end(buf, len, pos, &eol, why) < 0)
                        return -1;
                if (eol == pos)
                        break;
                if (is_wsp((unsigned char) buf[pos])) {
                        /* A folded line continues the header above it. */
                        if (!h)
                                return fail(why, "a continuation line before any header");
                        if (value_add_line(m, h, buf + pos, buf + eol, why) < 0)
                                return -1;
                        h->raw.len = eol + 2 - (size_t) (h->raw.s - buf);
                } else {
                        if (header_start(buf, pos, eol, m, why) < 0)
                                return -1;
                        h = &m->headers[m->n_headers - 1];
                }
                pos = eol + 2;
        }
        m->head = (struct sip_str) { buf, pos };
        m->body = (struct sip_str) { buf + pos + 2, len - pos - 2 };
        return check_content_length(m, why);
}

int sip_find(const struct sip_msg *m, enum sip_hdr id, int from) {
        for (size_t i = from > 0 ? (size_t) from : 0; i < m->n_headers; i++)
                if (m->headers[i].id == id)
                        return (int) i;
        return -1;
}

int sip_count(const struct sip_msg *m, enum sip_hdr id) {
        int n = 0;
        for (size_t i = 0; i < m->n_headers; i++)
                if (m->headers[i].id == id)
                        n++;
        return n;
}

/* ---- URIs ---- */

/* hostname = *( domainlabel "." ) toplabel [ "." ], labels of alphanum and
 * '-' that neither start nor end with '-'; IPv4 addresses fit too. */
static bool hostname_valid(const char *s, size_t len) {
        size_t label = 0;
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) s[i];
                if (c == '.') {
                        if (label == 0 || s[i - 1] == '-')
                                return false;
                        label = 0;
                } else if (is_alnum(c) || (c == '-' && label > 0)) {
                        label++;
                } else {
                        return false;
                }
        }
        return len > 0 && s[len - 1] != '-';
}

/* The inside of an IPv6reference: hex digits, ':' and the dots of an
 * embedded IPv4 address; the address itself is the resolver's business. */
static bool ipv6_valid(const char *s, size_t len) {
        if (len < 2 || !memchr(s, ':', len))
                return false;
        for (size_t i = 0; i < len; i++)
                if (!is_hex((unsigned char) s[i]) && s[i] != ':' && s[i] != '.')
                        return false;
        return true;
}

/* uri-parameters = *( ";" pname [ "=" pvalue ] ), both 1*paramchar. */
static bool uri_params_valid(const char *s, size_t len) {
        const char *p = s, *end = s + len;
        while (p < end) {
                if (*p != ';')
                        return false;
                const char *seg = ++p;
                while (p < end && *p != ';')
                        p++;
                const char *eq = memchr(seg, '=', (size_t) (p - seg));
                const char *name_end = eq ? eq : p;
                if (name_end == seg || !escaped_run_valid(seg, (size_t) (name_end - seg), is_param_char))
                        return false;
                if (eq && (eq + 1 == p || !escaped_run_valid(eq + 1, (size_t) (p - eq - 1), is_param_char)))
                        return false;
        }
        return true;
}

/* headers = "?" hname "=" hvalue *( "&" hname "=" hvalue ) */
static bool uri_headers_valid(const char *s, size_t len) {
        const char *p = s + 1, *end = s + len;
        if (len == 0 || *s != '?')
                return false;
        for (;;) {
                const char *seg = p;
                while (p < end && *p != '&')
                        p++;
                const char *eq = memchr(seg, '=', (size_t) (p - seg));
                if (!eq || eq == seg || !escaped_run_valid(seg, (size_t) (eq - seg), is_hnv_char) ||
                    !escaped_run_valid(eq + 1, (size_t) (p - eq - 1), is_hnv_char))
                        return false;
                if (p == end)
                        return true;
                p++;
        }
}

static int parse_sip_uri(const char *s, const char *end, struct sip_uri *u, const char **why) {
        const char *p = s;
        /* No '@' may follow the userinfo (params and headers have none
         * unescaped), so the first one ends it. */
        const char *at = memchr(s, '@', (size_t) (end - s));
        if (at) {
                if (at == s)
                        return fail(why, "an empty user part");
                if (memchr(s, ':', (size_t) (at - s)))
                        return fail(why, "a password in the URI");
                if (!escaped_run_valid(s, (size_t) (at - s), is_user_char))
                        return fail(why, "a character outside the user part's set");
                u->user = str_span(s, at);
                p = at + 1;
        }

        const char *host = p;
        if (p < end && *p == '[') {
                const char *close = memchr(p, ']', (size_t) (end - p));
                if (!close || (size_t) (close + 1 - p) > SIP_IPV6_REFERENCE_MAX ||
                    !ipv6_valid(p + 1, (size_t) (close - p - 1)))
                        return fail(why, "a malformed IPv6 reference");
                p = close + 1;
        } else {
                while (p < end && *p != ':' && *p != ';' && *p != '?')
                        p++;
                if (p == host)
                        return fail(why, "an empty host");
                if ((size_t) (p - host) > SIP_HOST_MAX)
                        return fail(why, "a host longer than a DNS name");
                if (!hostname_valid(host, (size_t) (p - host)))
                        return fail(why, "a malformed host");
        }
        u->host = str_span(host, p);

        if (p < end && *p == ':') {
                const char *port = ++p;
                unsigned value = 0;
                while (p < end && is_digit((unsigned char) *p) && p - port < SIP_PORT_DIGITS_MAX)
                        value = value * 10 + (unsigned) (*p++ - '0');
                if (p == port || value > 65535 || (p < end && is_digit((unsigned char) *p)))
                        return fail(why, "a malformed port");
                u->port = str_span(port, p);
        }
        if (p < end && *p == ';') {
                const char *params = p;
                while (p < end && *p != '?')
                        p++;
                if (!uri_params_valid(params, (size_t) (p - params)))
                        return fail(why, "malformed URI parameters");
                u->params = str_span(params, p);
        }
        if (p < end && *p == '?') {
                if (!uri_headers_valid(p, (size_t) (end - p)))
                        return fail(why, "malformed URI headers");
                u->headers = str_span(p, end);
                p = end;
        }
        if (p != end)
                return fail(why, "unexpected characters after the host");
        return 0;
}

/* telephone-subscriber (RFC 3966 section 3): global-number "+" 1*phonedigit
 * or local-number 1*phonedigit-hex, then parameters. */
static int parse_tel_uri(const char *s, const char *end, struct sip_uri *u, const char **why) {
        const char *p = s;
        bool global = p < end && *p == '+';
        if (global)
                p++;
        bool digits = false;
        for (; p < end && *p != ';'; p++) {
                unsigned char c = (unsigned char) *p;
                if (c == '-' || c == '.' || c == '(' || c == ')')
                        continue;
                if (is_digit(c) || (!global && (is_hex(c) || c == '*' || c == '#')))
                        digits = true;
                else
                        return fail(why, "a character outside a telephone number");
        }
        if (!digits)
                return fail(why, "a tel URI without a number");
        u->user = str_span(s, p);
        if (p < end) {
                if (!uri_params_valid(p, (size_t) (end - p)))
                        return fail(why, "malformed tel URI parameters");
                u->params = str_span(p, end);
        }
        return 0;
}

int sip_uri_parse(const char *s, size_t len, struct sip_uri *u, const char **why) {
        u->scheme = u->user = u->host = u->port = u->params = u->headers = str_empty();
        if (!s)
                return fail(why, "no URI");
        const char *colon = memchr(s, ':', len);
        if (!colon)
                return fail(why, "a URI without a scheme");
        struct sip_str scheme = str_span(s, colon);
        const char *end = s + len;
        int r;
        if (eq_nocase(scheme.s, scheme.len, "sip", 3) || eq_nocase(scheme.s, scheme.len, "sips", 4))
                r = parse_sip_uri(colon + 1, end, u, why);
        else if (eq_nocase(scheme.s, scheme.len, "tel", 3))
                r = parse_tel_uri(colon + 1, end, u, why);
        else
                return fail(why, "a scheme other than sip, sips or tel");
        if (r < 0)
                return -1;
        u->scheme = scheme;
        return 0;
}

static bool bytes_eq(struct sip_str a, struct sip_str b) {
        return a.len == b.len && (a.len == 0 || memcmp(a.s, b.s, a.len) == 0);
}

bool sip_uri_same_identity(const struct sip_uri *a, const struct sip_uri *b) {
        return eq_nocase(a->scheme.s, a->scheme.len, b->scheme.s, b->scheme.len) && bytes_eq(a->user, b->user) &&
               eq_nocase(a->host.s, a->host.len, b->host.s, b->host.len) && bytes_eq(a->port, b->port);
}

/* ---- To, From, Contact ---- */

/* quoted-string from its opening DQUOTE at p: the position after the closing
 * one, or NULL. Escapes of controls (but HTAB) are refused like the controls
 * themselves. */
static const char *skip_quoted(const char *p, const char *end) {
        for (p++; p < end; p++) {
                unsigned char c = (unsigned char) *p;
                if (c == '"')
                        return p + 1;
                if (c == '\\') {
                        if (++p == end)
                                return NULL;
                        c = (unsigned char) *p;
                        if (is_ctl(c) || c >= 0x80)
                                return NULL;
                } else if (is_ctl(c)) {
                        return NULL;
                }
        }
        return NULL;
}

/* What may follow the address: *( SEMI generic-param ), generic-param =
 * token [ EQUAL ( token / host / quoted-string ) ]. Anything else (a second
 * '<', a comma starting another value) is refused rather than guessed at. */
static int header_params(const char *p, const char *end, const char **why) {
        for (;;) {
                p = skip_wsp(p, end);
                if (p == end)
                        return 0;
                if (*p == ',')
                        return fail(why, "more than one value (a comma-separated list)");
                if (*p != ';')
                        return fail(why, "unexpected text after the address");
                p = skip_wsp(p + 1, end);
                const char *name = p;
                p = skip_token(p, end);
                if (p == name)
                        return fail(why, "a header parameter without a name");
                p = skip_wsp(p, end);
                if (p == end || *p != '=')
                        continue;
                p = skip_wsp(p + 1, end);
                if (p < end && *p == '"') {
                        p = skip_quoted(p, end);
                        if (!p)
                                return fail(why, "a malformed quoted parameter value");
                } else if (p < end && *p == '[') {
                        const char *close = memchr(p, ']', (size_t) (end - p));
                        if (!close || !ipv6_valid(p + 1, (size_t) (close - p - 1)))
                                return fail(why, "a malformed IPv6 parameter value");
                        p = close + 1;
                } else {
                        const char *value = p;
                        p = skip_token(p, end);
                        if (p == value)
                                return fail(why, "a header parameter without a value");
                }
        }
}

/* "<" URI ">" at p, then the header's parameters. */
static int bracketed_uri(const char *p, const char *end, struct sip_str *uri, const char **why) {
        const char *s = ++p;
        for (; p < end && *p != '>'; p++) {
                unsigned char c = (unsigned char) *p;
                if (c <= 0x20 || c >= 0x7f || c == '<' || c == '"')
                        return fail(why, "a character not allowed in a URI inside <>");
        }
        if (p == end)
                return fail(why, "no '>' after the URI");
        if (p == s)
                return fail(why, "an empty URI in <>");
        *uri = str_span(s, p);
        return header_params(p + 1, end, why);
}

int sip_name_addr_uri(const char *value, size_t len, struct sip_str *uri, const char **why) {
        *uri = str_empty();
        if (!value)
                return fail(why, "no value");
        const char *end = value + len;
        const char *p = skip_wsp(value, end);
        if (p == end)
                return fail(why, "an empty address");
        if (*p == '*')
                return fail(why, "a wildcard, not an address");
        if (*p == '"') {
                p = skip_quoted(p, end);
                if (!p)
                        return fail(why, "a malformed quoted display name");
                p = skip_wsp(p, end);
                if (p == end || *p != '<')
                        return fail(why, "a display name not followed by <URI>");
                return bracketed_uri(p, end, uri, why);
        }

        /* A display name of tokens before '<', or the URI itself, whose
         * scheme ends with ':', a character no token holds. */
        const char *q = p;
        while (q < end && (is_token_char((unsigned char) *q) || is_wsp((unsigned char) *q)))
                q++;
        if (q < end && *q == '<')
                return bracketed_uri(q, end, uri, why);

        /* addr-spec: RFC 3261 section 20 puts a URI holding ',', '?' or ';'
         * in <>, so the first ';' starts the header's parameters. */
        const char *s = p;
        for (; p < end && *p != ';' && !is_wsp((unsigned char) *p); p++) {
                unsigned char c = (unsigned char) *p;
                if (c < 0x20 || c >= 0x7f || c == '<' || c == '>' || c == '"' || c == ',' || c == '?')
                        return fail(why, "a character not allowed in a URI outside <>");
        }
        if (p == s)
                return fail(why, "no URI before the parameters");
        *uri = str_span(s, p);
        return header_params(p, end, why);
}

/* ---- Authorization ---- */

/* token68 at p: returns its end (after any '=' padding), p when none. */
static const char *skip_token68(const char *p, const char *end) {
        const char *s = p;
        while (p < end && is_token68_char((unsigned char) *p))
                p++;
        if (p == s)
                return s;
        while (p < end && *p == '=')
                p++;
        return p;
}

int sip_auth_parse(const char *value, size_t len, size_t max_token, struct sip_str *token, const char **why) {
        *token = str_empty();
        if (!value)
                return fail(why, "no value");
        const char *end = value + len;
        const char *p = skip_wsp(value, end);
        const char *scheme = p;
        p = skip_token(p, end);
        if (p == scheme)
                return fail(why, "no authentication scheme");
        if (!eq_nocase(scheme, (size_t) (p - scheme), "Bearer", 6))
                return SIP_AUTH_OTHER;

        /* auth-scheme 1*SP credentials (RFC 7235 section 2.1; SIP's LWS
         * allows HTAB too). */
        const char *after_scheme = p;
        p = skip_wsp(p, end);
        if (p == end)
                return fail(why, "Bearer without a token");
        if (p == after_scheme)
                return fail(why, "Bearer not followed by a space");

        /* 24.371's access_token="..." form, told apart from a token68 by the
         * DQUOTE no token68 holds. */
        const char *tok, *tok_end;
        static const char name[] = "access_token";
        const size_t name_len = sizeof name - 1;
        const char *q = p + name_len;
        bool quoted = false;
        if ((size_t) (end - p) > name_len && eq_nocase(p, name_len, name, name_len)) {
                q = skip_wsp(q, end);
                if (q < end && *q == '=') {
                        q = skip_wsp(q + 1, end);
                        quoted = q < end && *q == '"';
                }
        }
        if (quoted) {
                tok = q + 1;
                tok_end = skip_token68(tok, end);
                if (tok_end == end || *tok_end != '"')
                        return fail(why, "a Bearer access_token that is not a quoted token68");
                p = tok_end + 1;
        } else {
                tok = p;
                tok_end = skip_token68(tok, end);
                p = tok_end;
        }
        if (tok_end == tok)
                return fail(why, "Bearer without a token");
        if (skip_wsp(p, end) != end)
                return fail(why, "characters after the Bearer token");
        if ((size_t) (tok_end - tok) > max_token)
                return fail(why, "a Bearer token longer than the limit");
        *token = str_span(tok, tok_end);
        return SIP_AUTH_BEARER;
}
