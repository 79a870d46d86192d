#include "common/parse.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int wwsf_parse_int(const char *s, int64_t min, int64_t max, int64_t *ret) {
        if (!s || !*s || isspace((unsigned char) *s))
                return -EINVAL;
        errno = 0;
        char *end;
        long long v = strtoll(s, &end, 10);
        if (*end)
                return -EINVAL;
        if (errno == ERANGE || v < min || v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}

int wwsf_parse_duration(const char *s, int64_t *ret_seconds) {
        if (!s || !*s || !isdigit((unsigned char) *s))
                return -EINVAL;
        errno = 0;
        char *end;
        long long v = strtoll(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        int64_t unit = 1;
        if (*end) {
                if (end[1])
                        return -EINVAL;
                switch (*end) {
                case 's': unit = 1; break;
                case 'm': unit = 60; break;
                case 'h': unit = 3600; break;
                case 'd': unit = 86400; break;
                default: return -EINVAL;
                }
        }
        /* Ten years is far beyond any lease or hold anyone means. */
        if (v > (int64_t) 315360000 / unit)
                return -ERANGE;
        *ret_seconds = v * unit;
        return 0;
}

int wwsf_parse_duration_ms(const char *s, int64_t *ret_ms) {
        size_t n = s ? strlen(s) : 0;
        if (n > 2 && strcmp(s + n - 2, "ms") == 0) {
                char buf[32];
                if (n - 2 >= sizeof buf)
                        return -ERANGE;
                memcpy(buf, s, n - 2);
                buf[n - 2] = '\0';
                return wwsf_parse_int(buf, 0, INT64_C(315360000000), ret_ms);
        }
        int64_t sec;
        int r = wwsf_parse_duration(s, &sec);
        if (r == 0)
                *ret_ms = sec * 1000;
        return r;
}

int wwsf_parse_bool(const char *s, bool *ret) {
        static const char *const yes[] = { "yes", "true", "on", "1" };
        static const char *const no[] = { "no", "false", "off", "0" };
        for (size_t i = 0; i < 4; i++) {
                if (strcasecmp(s, yes[i]) == 0) { *ret = true; return 0; }
                if (strcasecmp(s, no[i]) == 0) { *ret = false; return 0; }
        }
        return -EINVAL;
}

/* SIP URIs and NAIs are ASCII (anything else is %-escaped). */
static bool printable_no_space(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s <= 0x20 || (unsigned char) *s >= 0x7f)
                        return false;
        return true;
}

bool wwsf_is_utf8(const char *s) {
        const unsigned char *p = (const unsigned char *) s;
        while (*p) {
                unsigned c = *p++;
                int more;
                unsigned min;
                if (c < 0x80)
                        continue;
                else if ((c & 0xe0) == 0xc0) { more = 1; min = 0x80; c &= 0x1f; }
                else if ((c & 0xf0) == 0xe0) { more = 2; min = 0x800; c &= 0x0f; }
                else if ((c & 0xf8) == 0xf0) { more = 3; min = 0x10000; c &= 0x07; }
                else
                        return false;
                for (int i = 0; i < more; i++, p++) {
                        if ((*p & 0xc0) != 0x80)
                                return false;
                        c = (c << 6) | (*p & 0x3f);
                }
                /* Overlong forms, surrogates and code points past U+10FFFF. */
                if (c < min || (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
                        return false;
        }
        return true;
}

/* ---- SIP and tel URIs ---- */

static bool refuse_uri(const char **why, const char *words) {
        if (why)
                *why = words;
        return false;
}

/* unreserved = alphanum / mark (RFC 3261 section 25.1) */
static bool uri_unreserved(unsigned char c) {
        return isalnum(c) || (c && strchr("-_.!~*'()", c));
}

static bool uri_user_char(unsigned char c) {
        return uri_unreserved(c) || (c && strchr("&=+$,;?/", c));
}

static bool uri_param_char(unsigned char c) {
        return uri_unreserved(c) || (c && strchr("[]/:&+$", c));
}

static bool uri_header_char(unsigned char c) {
        return uri_unreserved(c) || (c && strchr("[]/?:+$", c));
}

/* n bytes at s, each of the set or an escape "%" HEXDIG HEXDIG. */
static bool escaped_run(const char *s, size_t n, bool (*ok)(unsigned char)) {
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) s[i];
                if (c == '%') {
                        if (i + 2 >= n || !isxdigit((unsigned char) s[i + 1]) || !isxdigit((unsigned char) s[i + 2]))
                                return false;
                        i += 2;
                } else if (!ok(c))
                        return false;
        }
        return true;
}

/* hostname = *( domainlabel "." ) toplabel [ "." ]: labels of letters,
 * digits and '-' that neither start nor end with '-' (IPv4 addresses too). */
static bool uri_hostname(const char *s, size_t n) {
        if (n == 0 || n > 255)
                return false;
        size_t label = 0;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) s[i];
                if (c == '.') {
                        if (label == 0 || s[i - 1] == '-')
                                return false;
                        label = 0;
                } else if (isalnum(c) || (c == '-' && label > 0))
                        label++;
                else
                        return false;
        }
        return s[n - 1] != '-';
}

/* uri-parameters = *( ";" pname [ "=" pvalue ] ), pname and pvalue of
 * 1*paramchar (the tel URI's pname: alphanum and '-'). */
static bool uri_params(const char *s, size_t n, bool tel) {
        const char *p = s, *end = s + n;
        while (p < end) {
                if (*p != ';')
                        return false;
                const char *seg = ++p;
                while (p < end && *p != ';')
                        p++;
                const char *eq = memchr(seg, '=', (size_t) (p - seg));
                const char *name_end = eq ? eq : p;
                if (name_end == seg || !escaped_run(seg, (size_t) (name_end - seg), uri_param_char))
                        return false;
                for (const char *q = seg; tel && q < name_end; q++)
                        if (!isalnum((unsigned char) *q) && *q != '-')
                                return false;
                if (eq && (eq + 1 == p || !escaped_run(eq + 1, (size_t) (p - eq - 1), uri_param_char)))
                        return false;
        }
        return true;
}

/* headers = "?" header *( "&" header ), header = hname "=" hvalue */
static bool uri_headers(const char *s, size_t n) {
        const char *p = s + 1, *end = s + n;
        for (;;) {
                const char *seg = p;
                while (p < end && *p != '&')
                        p++;
                const char *eq = memchr(seg, '=', (size_t) (p - seg));
                if (!eq || eq == seg || !escaped_run(seg, (size_t) (eq - seg), uri_header_char) ||
                    !escaped_run(eq + 1, (size_t) (p - eq - 1), uri_header_char))
                        return false;
                if (p == end)
                        return true;
                p++;
        }
}

static bool sip_uri_check(const char *s, const char **why) {
        const char *end = s + strlen(s);
        /* No '@' may follow the userinfo (parameters and headers have none
         * unescaped), so the first one ends it. */
        const char *at = strchr(s, '@');
        if (!at)
                return refuse_uri(why, "no user part (user@host)");
        if (at == s)
                return refuse_uri(why, "an empty user part");
        if (strchr(at + 1, '@'))
                return refuse_uri(why, "more than one '@' (one in the user part is written %40)");
        if (memchr(s, ':', (size_t) (at - s)))
                return refuse_uri(why, "a password in the user part");
        if (!escaped_run(s, (size_t) (at - s), uri_user_char))
                return refuse_uri(why, "a character the user part may not have (or a malformed %-escape)");
        const char *p = at + 1, *host = p;
        if (*p == '[') {
                const char *close = strchr(p, ']');
                char addr[64];
                struct in6_addr a6;
                if (!close || (size_t) (close - p - 1) >= sizeof addr)
                        return refuse_uri(why, "a malformed IPv6 reference");
                memcpy(addr, p + 1, (size_t) (close - p - 1));
                addr[close - p - 1] = '\0';
                if (inet_pton(AF_INET6, addr, &a6) != 1)
                        return refuse_uri(why, "a malformed IPv6 reference");
                p = close + 1;
        } else {
                while (p < end && *p != ':' && *p != ';' && *p != '?')
                        p++;
                if (p == host)
                        return refuse_uri(why, "an empty host");
                if (!uri_hostname(host, (size_t) (p - host)))
                        return refuse_uri(why, "a malformed host name (labels of letters, digits and '-')");
        }
        if (*p == ':') {
                const char *port = ++p;
                long v = 0;
                while (isdigit((unsigned char) *p) && p - port < 5)
                        v = v * 10 + (*p++ - '0');
                if (p == port || v > 65535 || isdigit((unsigned char) *p))
                        return refuse_uri(why, "a malformed port (1 to 65535)");
        }
        if (*p == ';') {
                const char *params = p;
                while (p < end && *p != '?')
                        p++;
                if (!uri_params(params, (size_t) (p - params), false))
                        return refuse_uri(why, "malformed URI parameters (;name or ;name=value)");
        }
        if (*p == '?') {
                if (!uri_headers(p, (size_t) (end - p)))
                        return refuse_uri(why, "malformed URI headers (?name=value&...)");
                p = end;
        }
        if (p != end)
                return refuse_uri(why, "unexpected characters after the host");
        return true;
}

/* telephone-subscriber = global-number / local-number, global-number =
 * "+" *phonedigit DIGIT *phonedigit *par, local-number =
 * *phonedigit-hex (HEXDIG / "*" / "#") *phonedigit-hex *par context *par. */
static bool tel_uri_check(const char *s, const char **why) {
        const char *p = s;
        bool global = *p == '+';
        if (global)
                p++;
        bool digits = false;
        for (; *p && *p != ';'; p++) {
                unsigned char c = (unsigned char) *p;
                if (c == '-' || c == '.' || c == '(' || c == ')')
                        continue;
                if (isdigit(c) || (!global && (isxdigit(c) || c == '*' || c == '#')))
                        digits = true;
                else
                        return refuse_uri(why, global ? "a character other than a digit or a visual separator "
                                                        "(- . ( )) in the number"
                                                      : "a character outside a telephone number");
        }
        if (!digits)
                return refuse_uri(why, "no digits in the number");
        if (*p && !uri_params(p, strlen(p), true))
                return refuse_uri(why, "malformed parameters (;name or ;name=value)");
        if (!global) {
                bool context = false;
                for (const char *q = p; (q = strstr(q, ";phone-context=")) != NULL; q++)
                        context = true;
                if (!context)
                        return refuse_uri(why, "a number without '+' (a local number) and no ;phone-context=");
        }
        return true;
}

bool wwsf_public_identity_check(const char *s, const char **why) {
        for (const unsigned char *p = (const unsigned char *) s; *p; p++)
                if (*p <= 0x20 || *p >= 0x7f)
                        return refuse_uri(why, *p <= 0x20 || *p == 0x7f ? "a space or control character"
                                                                        : "a character outside ASCII (escape it as %XX)");
        if (strncasecmp(s, "sip:", 4) == 0)
                return sip_uri_check(s + 4, why);
        if (strncasecmp(s, "sips:", 5) == 0)
                return sip_uri_check(s + 5, why);
        if (strncasecmp(s, "tel:", 4) == 0)
                return tel_uri_check(s + 4, why);
        return refuse_uri(why, "no sip:, sips: or tel: scheme");
}

bool wwsf_is_public_identity(const char *s) {
        return wwsf_public_identity_check(s, NULL);
}

bool wwsf_is_private_identity(const char *s) {
        const char *at = strchr(s, '@');
        return at && at > s && at[1] && !strchr(at + 1, '@') && printable_no_space(s);
}

bool wwsf_is_ip_address(const char *s) {
        unsigned char buf[sizeof(struct in6_addr)];
        return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}
