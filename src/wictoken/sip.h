/* The SIP parsing libwictoken needs: strict and bounded (RFC 3261 section
 * 7 and 25, RFC 8898 for Bearer). Internal to the library; the fuzz targets
 * and unit tests call it too.
 *
 * Nothing here allocates: a parsed message points into the caller's buffer,
 * and unfolded header values are copied into the fixed arena of struct
 * sip_msg. Every limit below answers "malformed" (SIP 400) when exceeded. */
#ifndef WICTOKEN_SIP_H
#define WICTOKEN_SIP_H

#include <stdbool.h>
#include <stddef.h>

/* A REGISTER with a token is about 1.5 KiB; 64 KiB is the most a SIP message
 * over a WebSocket frame sensibly holds (and what the library accepts). */
#define SIP_MESSAGE_MAX 65536
/* A REGISTER has about 12 headers; 128 leaves room without letting a client
 * make the parser walk thousands. */
#define SIP_HEADERS_MAX 128
/* Unfolded header values of one message, all together. */
#define SIP_ARENA_SIZE SIP_MESSAGE_MAX

/* Headers the library looks at, by their canonical id; compact forms map to
 * the same id (RFC 3261 section 7.3.3: i, m, e, l, c, f, s, k, t, v; RFC 3515
 * r; RFC 4028 x... only those it uses). */
enum sip_hdr {
        SIP_HDR_OTHER = 0,
        SIP_HDR_VIA,                    /* v */
        SIP_HDR_TO,                     /* t */
        SIP_HDR_FROM,                   /* f */
        SIP_HDR_CALL_ID,                /* i */
        SIP_HDR_CSEQ,
        SIP_HDR_CONTACT,                /* m */
        SIP_HDR_CONTENT_LENGTH,         /* l */
        SIP_HDR_CONTENT_TYPE,           /* c */
        SIP_HDR_AUTHORIZATION,
        SIP_HDR_PROXY_AUTHORIZATION,
        SIP_HDR_MAX_FORWARDS,
        SIP_HDR_EXPIRES,
        SIP_HDR_PATH,
        SIP_HDR_ROUTE,
        SIP_HDR_SUPPORTED,              /* k */
};

struct sip_str {
        const char *s;
        size_t len;
};

struct sip_header {
        enum sip_hdr id;
        struct sip_str name;            /* as written */
        struct sip_str value;           /* unfolded (CRLF + WSP -> one SP), trimmed; in the arena */
        struct sip_str raw;             /* the whole header as received, from its name to its CRLF
                                         * (continuation lines included), for removal */
};

struct sip_msg {
        struct sip_str method;          /* "REGISTER", case-sensitive as RFC 3261 says */
        struct sip_str request_uri;
        struct sip_str start_line;      /* the request line with its CRLF */
        struct sip_header headers[SIP_HEADERS_MAX];
        size_t n_headers;
        struct sip_str head;            /* start line and headers, up to the blank line (excluded) */
        struct sip_str body;            /* after the blank line: exactly Content-Length bytes */
        char arena[SIP_ARENA_SIZE];
        size_t arena_used;
};

/* Parses a SIP request (not a response) of len bytes. Strict: CRLF line
 * ends (a bare LF is malformed), a request line "METHOD SP Request-URI SP
 * SIP/2.0", header names as tokens followed by optional WSP and ':', folded
 * continuation lines, no NUL or other control bytes but HTAB in the head, a
 * blank line; Content-Length (or l) at most once, a decimal number equal to
 * the bytes after the blank line (with no Content-Length the body must be
 * empty: over a stream transport it is required). Returns 0, or -1 with *why set to a short static reason
 * ("bare LF", "Content-Length does not match the body"...). */
int sip_parse(const char *buf, size_t len, struct sip_msg *m, const char **why);

/* The index of the first header with that id at or after index `from`
 * (0 to start), or -1. */
int sip_find(const struct sip_msg *m, enum sip_hdr id, int from);

/* How many headers have that id. */
int sip_count(const struct sip_msg *m, enum sip_hdr id);

/* A parsed SIP, SIPS or tel URI (RFC 3261 section 19.1, RFC 3966), pointing
 * into the string it came from. */
struct sip_uri {
        struct sip_str scheme;          /* "sip", "sips" or "tel", lower-cased comparison */
        struct sip_str user;            /* sip/sips: before '@' (no password part allowed); tel: the number */
        struct sip_str host;            /* sip/sips only; "" for tel */
        struct sip_str port;            /* "" when absent */
        struct sip_str params;          /* ";..." after host[:port] (or the number), "" when none */
        struct sip_str headers;         /* "?..." , "" when none */
};

/* Parses an addr-spec URI of len bytes. Returns 0 or -1 with *why. A user
 * part with ':' (a password), an empty host, a scheme other than sip, sips or
 * tel, or characters outside RFC 3261's sets are refused. */
int sip_uri_parse(const char *s, size_t len, struct sip_uri *u, const char **why);

/* The URI of a To/From/Contact value: a name-addr (optional display name,
 * a token sequence or a quoted string with escapes, then <URI>) or an
 * addr-spec (then the URI ends at the first ';', whose parameters are the
 * header's). Header parameters after '>' (tag=...) are not the URI's.
 * Sets *uri to the URI text. Returns 0 or -1 with *why. */
int sip_name_addr_uri(const char *value, size_t len, struct sip_str *uri, const char **why);

/* Whether two URIs name the same public identity for the validator (docs/DESIGN.md
 * section 4, step 5): the same scheme (case-insensitive), the user part
 * byte for byte, the host case-insensitive, the same port (absent equals
 * absent only), URI parameters and headers ignored. */
bool sip_uri_same_identity(const struct sip_uri *a, const struct sip_uri *b);

/* The credentials of an Authorization header value. */
enum sip_auth_scheme {
        SIP_AUTH_OTHER = 0,             /* Digest or anything else */
        SIP_AUTH_BEARER,
};

/* Reads an Authorization value: "Bearer <token68>" (RFC 6750 / RFC 8898), or
 * 24.371's form "Bearer access_token=\"<token>\"" (the token still only
 * token68 characters). The scheme name is case-insensitive. For Bearer, sets
 * *token to the token text (inside value) and returns SIP_AUTH_BEARER; for
 * another scheme returns SIP_AUTH_OTHER; returns -1 with *why for a Bearer
 * value that is malformed (no token, characters outside token68, anything
 * after it). Tokens longer than max_token are malformed too. */
int sip_auth_parse(const char *value, size_t len, size_t max_token, struct sip_str *token, const char **why);

#endif
