/* wwsfd's HTTP layer on libmicrohttpd: the request context, the route type,
 * replies (every error through the registry of errors.h, in one shape:
 * {"error": "<code>", "detail": "..."}), and suspend/resume for work done
 * off the HTTP threads. The route table is in routes.c. */
#pragma once
#include <jansson.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>

#include "wwsfd/errors.h"
#include "wwsfd/sessions.h"

struct wwsfd;

/* Auth endpoints take a small JSON object; nothing legitimate comes near. */
#define AUTH_BODY_MAX (16 * 1024)
/* The portal API: a pool of listed entries in one request (up to 100,000
 * entries of two identities each would be more; such a pool is a range). */
#define PORTAL_BODY_MAX (1024 * 1024)

struct request {
        struct wwsfd *d;
        struct MHD_Connection *conn;
        const struct route *route;
        char client_addr[64];
        char *body;
        size_t body_len;
        bool body_too_large;
        bool method_not_allowed;
        const char *method;             /* libmicrohttpd's, for the request's life */
        const char *allow;              /* the Allow header of a 405 */
        char allow_buf[64];             /* where a handler writes its Allow */
        bool suspended;
        int retry_after;                /* seconds; overrides the registry's when > 0 */
        char set_cookie[SESSION_SET_COOKIE_MAX];        /* adds Set-Cookie when not empty */
        char location[512];             /* adds Location when not empty */
        char etag[32];                  /* adds ETag when not empty */
        bool bearer_challenge;          /* a 401 adds WWW-Authenticate: Bearer */
        /* Set by a job before it resumes the connection. */
        struct MHD_Response *response;
        unsigned status;
        uint64_t started_us;
};

typedef enum MHD_Result (*route_fn)(struct request *r, const char *url);

struct route {
        const char *method;
        const char *path;       /* exact, or a prefix when it ends with '/' */
        /* method "*": any method, the handler answers 405 itself */
        route_fn handler;
        size_t body_max;        /* 0: no body accepted */
};

/* The route for url, or NULL; *ret_allow names the methods when the path
 * exists for another one (405 rather than 404). HEAD is served as GET. */
const struct route *route_find(const char *method, const char *url, const char **ret_allow);

/* Replies from the HTTP thread. Each queues the response and counts it. */
enum MHD_Result reply_json(struct request *r, unsigned status, json_t *body);   /* body consumed; NULL: none */
enum MHD_Result reply_error(struct request *r, enum wwsf_error e, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* Queues resp (consumed; NULL = out of memory) with its type, cache policy
 * and the security headers. */
enum MHD_Result reply_response(struct request *r, unsigned status, struct MHD_Response *resp, const char *type,
                               const char *cache_control);
/* Adds the headers every response carries. */
void add_security_headers(struct wwsfd *d, struct MHD_Response *resp, bool html);
/* The pages' Content-Security-Policy for the eP-CSCF at epcscf_uri (a
 * checked wss:// URI), in *ret (the caller frees it). */
int page_csp_make(const char *epcscf_uri, char **ret);

/* Suspends the connection before handing the request to other threads. */
void request_suspend(struct request *r);
/* From any thread: the reply for a suspended request, then resume it. */
void request_finish_json(struct request *r, unsigned status, json_t *body);
void request_finish_error(struct request *r, enum wwsf_error e, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
void request_finish_with(struct request *r, unsigned status, struct MHD_Response *resp);

const char *request_header(struct request *r, const char *name);
const char *request_cookie(struct request *r, const char *name);
/* The error body of the registry's code e: {"error", "detail"}, and "field"
 * when field is not NULL; sets the registry's Retry-After unless the
 * request has one. */
json_t *error_json(struct request *r, enum wwsf_error e, const char *field, const char *detail);

/* The body as a JSON object (json_loadb flags; Content-Type must be
 * application/json), or NULL with a reply queued in *ret_result. */
json_t *request_json_body(struct request *r, size_t flags, enum MHD_Result *ret_result);

/* libmicrohttpd callbacks. */
enum MHD_Result http_on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                const char *version, const char *upload_data, size_t *upload_data_size,
                                void **con_cls);
void http_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe);
size_t http_unescape(void *cls, struct MHD_Connection *conn, char *s);
