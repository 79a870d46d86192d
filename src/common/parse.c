#include "common/parse.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "wictoken/sip.h"

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

/* The grammar is libwictoken's (src/wictoken/sip.c, RFC 3261 section 25.1
 * and RFC 3966 section 3), the one the eP-CSCF applies to a REGISTER; an
 * IMPU asks for a little more, checked here: plain ASCII, a user part, a
 * well-formed IPv6 address, tel parameter names of RFC 3966 and a local
 * number's phone-context. */

static bool refuse_uri(const char **why, const char *words) {
        if (why)
                *why = words;
        return false;
}

static bool tel_params_ok(struct sip_str params, bool local) {
        bool context = false;
        const char *p = params.s, *end = params.s + params.len;
        while (p < end) {
                const char *name = ++p;         /* after the ';' */
                while (p < end && *p != ';' && *p != '=')
                        p++;
                for (const char *q = name; q < p; q++)
                        if (!isalnum((unsigned char) *q) && *q != '-')
                                return false;
                context |= (size_t) (p - name) == 13 && memcmp(name, "phone-context", 13) == 0 && p < end &&
                           *p == '=';
                while (p < end && *p != ';')
                        p++;
        }
        return !local || context;
}

bool wwsf_public_identity_check(const char *s, const char **why) {
        for (const unsigned char *p = (const unsigned char *) s; *p; p++)
                if (*p <= 0x20 || *p >= 0x7f)
                        return refuse_uri(why, *p <= 0x20 || *p == 0x7f ? "a space or control character"
                                                                        : "a character outside ASCII (escape it as %XX)");
        bool tel = strncasecmp(s, "tel:", 4) == 0;
        if (!tel) {
                const char *at = strchr(s, '@');
                if (at && strchr(at + 1, '@'))
                        return refuse_uri(why, "more than one '@' (one in the user part is written %40)");
        }
        struct sip_uri u;
        const char *words;
        if (sip_uri_parse(s, strlen(s), &u, &words) < 0)
                return refuse_uri(why, words);
        if (tel) {
                bool local = u.user.s[0] != '+';
                if (!tel_params_ok(u.params, local))
                        return refuse_uri(why, local ? "a number without '+' (a local number) and no ;phone-context="
                                                     : "malformed parameters (;name or ;name=value)");
                return true;
        }
        if (!u.user.len)
                return refuse_uri(why, "no user part (user@host)");
        if (u.host.s[0] == '[') {
                char addr[64];
                struct in6_addr a6;
                if (u.host.len - 2 >= sizeof addr)
                        return refuse_uri(why, "a malformed IPv6 reference");
                memcpy(addr, u.host.s + 1, u.host.len - 2);
                addr[u.host.len - 2] = '\0';
                if (inet_pton(AF_INET6, addr, &a6) != 1)
                        return refuse_uri(why, "a malformed IPv6 reference");
        }
        return true;
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
