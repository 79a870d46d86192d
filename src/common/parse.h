/* Small parsers for values found in configuration files and on command lines. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

/* "90", "90s", "15m", "2h", "1d" -> seconds. Returns 0 or -EINVAL/-ERANGE. */
int wwsf_parse_duration(const char *s, int64_t *ret_seconds);

/* Like wwsf_parse_duration() but also "250ms"; the result in milliseconds. */
int wwsf_parse_duration_ms(const char *s, int64_t *ret_ms);

/* A decimal integer in [min, max]. Returns 0 or -EINVAL/-ERANGE. */
int wwsf_parse_int(const char *s, int64_t min, int64_t max, int64_t *ret);

/* "yes/no/true/false/1/0/on/off". Returns 0 or -EINVAL. */
int wwsf_parse_bool(const char *s, bool *ret);

/* Whether s is an IMPU: a SIP or SIPS URI with a user part (RFC 3261 section
 * 25.1: user, host name or IP address, port, URI parameters and headers, no
 * password) or a tel URI (RFC 3966 section 3: a global number "+DIGITS", or
 * a local number with its phone-context). If not, *why (when why is not
 * NULL) says what is wrong, in words. */
bool wwsf_public_identity_check(const char *s, const char **why);
bool wwsf_is_public_identity(const char *s);

/* Whether s looks like an IMPI (NAI form user@realm, no spaces or controls). */
bool wwsf_is_private_identity(const char *s);

/* Whether s is well-formed UTF-8 (no overlong forms or surrogates). */
bool wwsf_is_utf8(const char *s);

/* Whether s is a textual IPv4 or IPv6 address. */
bool wwsf_is_ip_address(const char *s);
