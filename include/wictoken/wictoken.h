/* libwictoken: the eP-CSCF's check of the WIC's tokens.
 *
 * A WIC (the browser's WebRTC IMS client) opens a WebSocket to the eP-CSCF
 * and sends SIP REGISTER with "Authorization: Bearer <JWT>", a token signed
 * by the WWSF (wwsfd). This library decides whether that REGISTER may enter
 * the IMS core and, when it may, builds the request to forward: the Bearer
 * credentials removed, a Path header for the edge, and the Trusted Node
 * Authentication header ("integrity-protected=auth-done") that makes the
 * S-CSCF skip its own authentication.
 *
 * Usage: make a context, configure it (issuers with their JWKS files, the
 * audience, the IMS domain, the allowed WebSocket Origins), then call
 * wictoken_check_origin() at each WebSocket handshake and
 * wictoken_check_register() for each REGISTER. Keys are parsed once, kept by
 * "kid" and pinned to their algorithm; wictoken_reload() re-reads the JWKS
 * files and swaps the keys atomically.
 *
 * Return values: 0 (or a positive count where a function says so) on
 * success, or a negative value of enum wictoken_error, which is never
 * renumbered. wictoken_strerror() names a code; wictoken_ctx_detail() says
 * what the last failing call on that context found. The library never prints:
 * give it a log callback to hear what it has to say.
 *
 * Threads: a context may be used from one thread at a time, except that
 * wictoken_reload() may run in another thread than the checks (the keys are
 * swapped under a lock and a check holds the key set it started with).
 * Contexts are independent of each other.
 *
 * Ownership: strings passed in are copied; strings returned by a verdict
 * belong to the verdict and live until wictoken_verdict_free(); buffers
 * returned through a `char **ret` are the caller's, to free() .
 *
 * The header compiles alone as C99 and as C++. */
#ifndef WICTOKEN_WICTOKEN_H
#define WICTOKEN_WICTOKEN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && defined(WICTOKEN_BUILDING)
#define WICTOKEN_EXPORT __attribute__((visibility("default")))
#else
#define WICTOKEN_EXPORT
#endif

#define WICTOKEN_VERSION_MAJOR 0
#define WICTOKEN_VERSION_MINOR 1
#define WICTOKEN_VERSION_PATCH 0

/* Error codes. Never renumbered; new ones are added at the end. */
enum wictoken_error {
        WICTOKEN_OK = 0,
        WICTOKEN_E_INVALID_ARGUMENT = -1,       /* a NULL or out-of-range argument */
        WICTOKEN_E_NO_MEMORY = -2,
        WICTOKEN_E_IO = -3,                     /* a file could not be read */
        WICTOKEN_E_JWKS = -4,                   /* a JWKS is malformed or holds an unacceptable key */
        WICTOKEN_E_CONFIG = -5,                 /* the context lacks what the call needs (issuer, realm...) */
        WICTOKEN_E_ORIGIN = -6,                 /* the WebSocket Origin is not allowed */
        WICTOKEN_E_MALFORMED = -7,              /* a message could not be parsed (SIP status 400) */
        WICTOKEN_E_NOT_REGISTER = -8,           /* wictoken_check_register() was given another method */
        WICTOKEN_E_INTERNAL = -9,               /* a library call failed where it should not */
};

/* The name of a code ("invalid argument", "malformed message"...); a static
 * string, never NULL (unknown codes get "unknown error"). */
WICTOKEN_EXPORT const char *wictoken_strerror(int code);

/* The library's version as "MAJOR.MINOR.PATCH" (static string). */
WICTOKEN_EXPORT const char *wictoken_version(void);

struct wictoken_ctx;

/* Log levels of the callback, as syslog's. */
enum wictoken_log_level {
        WICTOKEN_LOG_ERR = 3,
        WICTOKEN_LOG_WARNING = 4,
        WICTOKEN_LOG_INFO = 6,
        WICTOKEN_LOG_DEBUG = 7,
};

/* Called with one line of text (no newline; never a whole token, never key
 * material). `msg` is valid during the call only. */
typedef void (*wictoken_log_fn)(void *userdata, int level, const char *msg);

/* The current time in seconds since the epoch (tests move it). */
typedef int64_t (*wictoken_clock_fn)(void *userdata);

/* A new, empty context in *ret. Returns 0 or WICTOKEN_E_NO_MEMORY. */
WICTOKEN_EXPORT int wictoken_ctx_new(struct wictoken_ctx **ret);

/* Frees the context and everything it holds; NULL is accepted. */
WICTOKEN_EXPORT void wictoken_ctx_free(struct wictoken_ctx *ctx);

/* What the last failing call on ctx from this thread found ("kid k1 of
 * issuer ... is an EC key with alg RS256"), or "" (never NULL; valid until
 * the thread's next call into the library). Kept per thread, as errno is, so
 * that a wictoken_reload() in another thread cannot garble it. */
WICTOKEN_EXPORT const char *wictoken_ctx_detail(const struct wictoken_ctx *ctx);

WICTOKEN_EXPORT void wictoken_set_log(struct wictoken_ctx *ctx, wictoken_log_fn fn, void *userdata);
WICTOKEN_EXPORT void wictoken_set_clock(struct wictoken_ctx *ctx, wictoken_clock_fn fn, void *userdata);

/* Trusts tokens whose "iss" is `issuer` (the WWSF's HTTPS origin, compared
 * exactly), verified with the keys of the JWKS file `jwks_file`, read and
 * parsed now. Every key must carry "kid", "kty" and "alg" (ES256 with an EC
 * P-256 key or RS256 with an RSA key of 2048 bits or more); a key with private
 * members ("d", "p", "q"...), an unknown algorithm or a "kid" used twice makes
 * the whole file refused (WICTOKEN_E_JWKS, the reason in the detail). At most
 * 16 issuers. */
WICTOKEN_EXPORT int wictoken_add_issuer(struct wictoken_ctx *ctx, const char *issuer, const char *jwks_file);

/* The same with the JWKS given in memory (`json`, `len` bytes); such an
 * issuer keeps these keys across wictoken_reload(). */
WICTOKEN_EXPORT int wictoken_add_issuer_jwks(struct wictoken_ctx *ctx, const char *issuer, const char *json,
                                             size_t len);

/* The "aud" a token must carry (a string equal to it, or an array holding
 * it). Required. */
WICTOKEN_EXPORT int wictoken_set_audience(struct wictoken_ctx *ctx, const char *audience);

/* The IMS domain: the realm of the WWW-Authenticate challenge and of the
 * forwarded Digest header. Required. */
WICTOKEN_EXPORT int wictoken_set_realm(struct wictoken_ctx *ctx, const char *realm);

/* Adds an allowed WebSocket Origin ("https://wwsf.example.com", compared
 * exactly, case-insensitively, without a trailing slash). With none,
 * every Origin is refused. */
WICTOKEN_EXPORT int wictoken_allow_origin(struct wictoken_ctx *ctx, const char *origin);

/* Clock leeway for exp, nbf and iat, in seconds (0 to 600; default 60). */
WICTOKEN_EXPORT int wictoken_set_leeway(struct wictoken_ctx *ctx, int64_t seconds);

/* The Path header value added to a forwarded REGISTER (RFC 3327), e.g.
 * "<sip:ep-cscf.ims.example.com;lr;ob>". Default: "<sip:ep-cscf.REALM;lr>". */
WICTOKEN_EXPORT int wictoken_set_path(struct wictoken_ctx *ctx, const char *path);

/* Token binding: when on, a token first seen on one connection (the
 * `connection_id` of wictoken_check_register()) is refused on any other
 * until it expires. Off by default. */
WICTOKEN_EXPORT int wictoken_set_token_binding(struct wictoken_ctx *ctx, int enabled);

/* Re-reads the JWKS file of every issuer and swaps all the keys at once.
 * When any file fails, nothing changes (the old keys stay) and the error
 * says which file and why. Returns the number of keys now loaded, or a
 * negative code. */
WICTOKEN_EXPORT int wictoken_reload(struct wictoken_ctx *ctx);

/* The number of keys loaded, over all issuers. */
WICTOKEN_EXPORT int wictoken_key_count(const struct wictoken_ctx *ctx);

/* 0 when `origin` (the WebSocket handshake's Origin header value) is
 * allowed, WICTOKEN_E_ORIGIN when it is not (or is NULL: browsers always
 * send one): answer the handshake 403. */
WICTOKEN_EXPORT int wictoken_check_origin(struct wictoken_ctx *ctx, const char *origin);

/* ---- REGISTER ------------------------------------------------------------ */

struct wictoken_verdict;

/* Checks a REGISTER: `msg` the raw SIP message (`len` bytes, at most 64 KiB),
 * `connection_id` an identifier of the connection it came on (NULL if none:
 * then token binding does not apply). Fills *ret with a verdict (accept or
 * reject; a malformed message is a reject with status 400) and returns 0; a
 * negative code only when no verdict could be made (no memory, a context
 * without issuer/audience/realm, NULL arguments), or WICTOKEN_E_NOT_REGISTER
 * for another method (see wictoken_strip_bearer()). */
WICTOKEN_EXPORT int wictoken_check_register(struct wictoken_ctx *ctx, const char *msg, size_t len,
                                            const char *connection_id, struct wictoken_verdict **ret);

WICTOKEN_EXPORT void wictoken_verdict_free(struct wictoken_verdict *v);

/* 1 when the REGISTER may be forwarded, 0 when it must be answered. */
WICTOKEN_EXPORT int wictoken_verdict_accepted(const struct wictoken_verdict *v);

/* The SIP status: 200 on accept (nothing to answer: forward), else 400, 401
 * or 403 to answer the REGISTER with. */
WICTOKEN_EXPORT int wictoken_verdict_status(const struct wictoken_verdict *v);

/* Why, in a few words ("token expired", "To is not the token's IMPU"...);
 * "ok" on accept. Never NULL. Safe to log: holds no token. */
WICTOKEN_EXPORT const char *wictoken_verdict_reason(const struct wictoken_verdict *v);

/* The reason phrase for the status line ("Unauthorized"...). Never NULL. */
WICTOKEN_EXPORT const char *wictoken_verdict_phrase(const struct wictoken_verdict *v);

/* The WWW-Authenticate header value of a 401 (`Bearer realm="...",
 * authz_server="...", error="invalid_token"` when a token was given and
 * refused), or NULL for other statuses. */
WICTOKEN_EXPORT const char *wictoken_verdict_www_authenticate(const struct wictoken_verdict *v);

/* On accept: the token's impu, impi, jti, and exp (seconds since the epoch);
 * NULL / 0 otherwise. */
WICTOKEN_EXPORT const char *wictoken_verdict_impu(const struct wictoken_verdict *v);
WICTOKEN_EXPORT const char *wictoken_verdict_impi(const struct wictoken_verdict *v);
WICTOKEN_EXPORT const char *wictoken_verdict_jti(const struct wictoken_verdict *v);
WICTOKEN_EXPORT int64_t wictoken_verdict_exp(const struct wictoken_verdict *v);

/* On accept: the value of the Authorization header to put in place of the
 * Bearer one (Digest username="<impi>", realm=..., integrity-protected=
 * "auth-done"); NULL otherwise. For proxies that edit the message
 * themselves (Kamailio). */
WICTOKEN_EXPORT const char *wictoken_verdict_tna_authorization(const struct wictoken_verdict *v);

/* On accept: the Path header value added to the forwarded request. */
WICTOKEN_EXPORT const char *wictoken_verdict_path(const struct wictoken_verdict *v);

/* On accept: the request to forward (every Authorization header removed, Path
 * and the TNA Authorization added at the end of the headers; the rest as
 * received, Content-Length unchanged since the body is), `*len` its length;
 * owned by the verdict. NULL otherwise. (A REGISTER that arrives with a
 * Path header of its own is refused with 403: only proxies add Path.) */
WICTOKEN_EXPORT const char *wictoken_verdict_forward(const struct wictoken_verdict *v, size_t *len);

/* ---- other requests ------------------------------------------------------ */

/* For a request other than REGISTER: the message with every Authorization
 * header that carries Bearer credentials removed (the token never reaches
 * the core), in *ret (malloc'd, the caller frees it) and *ret_len. Returns
 * the number of headers removed (0: *ret is a copy), or WICTOKEN_E_MALFORMED
 * for a message that does not parse. */
WICTOKEN_EXPORT int wictoken_strip_bearer(struct wictoken_ctx *ctx, const char *msg, size_t len, char **ret,
                                          size_t *ret_len);

#ifdef __cplusplus
}
#endif

#endif
