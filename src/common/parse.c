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

int wwsf_parse_bool(const char *s, bool *ret) {
        static const char *const yes[] = { "yes", "true", "on", "1" };
        static const char *const no[] = { "no", "false", "off", "0" };
        for (size_t i = 0; i < 4; i++) {
                if (strcasecmp(s, yes[i]) == 0) { *ret = true; return 0; }
                if (strcasecmp(s, no[i]) == 0) { *ret = false; return 0; }
        }
        return -EINVAL;
}

static bool printable_no_space(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s <= 0x20 || (unsigned char) *s == 0x7f)
                        return false;
        return true;
}

bool wwsf_is_public_identity(const char *s) {
        const char *rest;
        if (strncasecmp(s, "sip:", 4) == 0)
                rest = s + 4;
        else if (strncasecmp(s, "sips:", 5) == 0)
                rest = s + 5;
        else if (strncasecmp(s, "tel:", 4) == 0)
                return s[4] && printable_no_space(s + 4);
        else
                return false;
        const char *at = strchr(rest, '@');
        return at && at > rest && at[1] && printable_no_space(rest);
}

bool wwsf_is_private_identity(const char *s) {
        const char *at = strchr(s, '@');
        return at && at > s && at[1] && !strchr(at + 1, '@') && printable_no_space(s);
}

bool wwsf_is_ip_address(const char *s) {
        unsigned char buf[sizeof(struct in6_addr)];
        return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}
