/* libmicrohttpd glue: request bodies with limits, replies in one error
 * shape, suspend/resume for work done off the HTTP threads. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/clock.h"
#include "common/parse.h"
#include "wwsfd/daemon.h"
#include "wwsfd/http.h"

int page_csp_make(const char *epcscf_uri, char **ret) {
        /* The eP-CSCF's origin: wss://host[:port], without path or query
         * (the configuration checked that it has a host and nothing that
         * could end a directive). */
        size_t authority = strcspn(epcscf_uri + 6, "/?#");
        if (asprintf(ret,
                     "default-src 'self'; connect-src 'self' %.*s; media-src 'self' blob:; "
                     "img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                     "frame-ancestors 'none'; form-action 'self'",
                     (int) (6 + authority), epcscf_uri) < 0) {
                *ret = NULL;
                return -ENOMEM;
        }
        return 0;
}

void add_security_headers(struct wwsfd *d, struct MHD_Response *resp, bool html) {
        MHD_add_response_header(resp, "Strict-Transport-Security", "max-age=31536000");
        MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
        MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
        if (html) {
                /* The WIC loads its own script and talks to this origin (API)
                 * and to the configured eP-CSCF only; nothing may frame it. */
                MHD_add_response_header(resp, "Content-Security-Policy", d->page_csp);
                MHD_add_response_header(resp, "X-Frame-Options", "DENY");
        } else
                MHD_add_response_header(resp, "Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'");
}

static struct MHD_Response *json_response(struct request *r, unsigned status, json_t *body) {
        struct MHD_Response *resp;
        if (body) {
                char *text = json_dumps(body, JSON_COMPACT);
                json_decref(body);
                if (!text)
                        return NULL;
                resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
                if (!resp) {
                        free(text);
                        return NULL;
                }
                MHD_add_response_header(resp, "Content-Type", "application/json");
        } else if (!(resp = MHD_create_response_from_buffer(0, (void *) "", MHD_RESPMEM_PERSISTENT)))
                return NULL;
        MHD_add_response_header(resp, "Cache-Control", "no-store");
        add_security_headers(r->d, resp, false);
        if (r->retry_after > 0) {
                char buf[24];
                snprintf(buf, sizeof buf, "%d", r->retry_after);
                MHD_add_response_header(resp, "Retry-After", buf);
        }
        if (r->set_cookie[0])
                MHD_add_response_header(resp, "Set-Cookie", r->set_cookie);
        if (status == 405 && r->allow)
                MHD_add_response_header(resp, "Allow", r->allow);
        if (r->location[0])
                MHD_add_response_header(resp, "Location", r->location);
        if (r->etag[0])
                MHD_add_response_header(resp, "ETag", r->etag);
        if (status == 401 && r->bearer_challenge)
                MHD_add_response_header(resp, "WWW-Authenticate", "Bearer realm=\"wwsf-portal\"");
        metrics_count_status(&r->d->metrics, status);
        return resp;
}

static enum MHD_Result queue(struct request *r, unsigned status, struct MHD_Response *resp) {
        if (!resp)
                return MHD_NO;
        enum MHD_Result ret = MHD_queue_response(r->conn, status, resp);
        MHD_destroy_response(resp);
        return ret;
}

enum MHD_Result reply_response(struct request *r, unsigned status, struct MHD_Response *resp, const char *type,
                               const char *cache_control) {
        if (!resp)
                return MHD_NO;
        MHD_add_response_header(resp, "Content-Type", type);
        MHD_add_response_header(resp, "Cache-Control", cache_control);
        add_security_headers(r->d, resp, false);
        metrics_count_status(&r->d->metrics, status);
        return queue(r, status, resp);
}

enum MHD_Result reply_json(struct request *r, unsigned status, json_t *body) {
        return queue(r, status, json_response(r, status, body));
}

/* s as a JSON string: details and fields quote what a client sent (a query
 * parameter's name, a member's name cut to the size of a buffer), which need
 * not be UTF-8. A sequence cut at the end is dropped, any other byte that is
 * not UTF-8 becomes U+FFFD. */
static json_t *text_json(const char *s) {
        if (wwsf_is_utf8(s))
                return json_string(s);
        size_t n = strlen(s), o = 0;
        char *out = malloc(3 * n + 1);
        if (!out)
                return NULL;
        const unsigned char *p = (const unsigned char *) s;
        while (*p) {
                size_t len = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 : (*p & 0xf8) == 0xf0 ? 4 : 0;
                size_t k = 1;
                while (len > 1 && k < len && (p[k] & 0xc0) == 0x80)
                        k++;
                char one[5] = "";
                if (len > 0 && k == len) {
                        memcpy(one, p, len);
                        one[len] = '\0';
                }
                if (len > 0 && k == len && wwsf_is_utf8(one)) {
                        memcpy(out + o, p, len);
                        o += len;
                        p += len;
                } else if (len > 1 && !p[k]) {
                        break;          /* cut at the end */
                } else {
                        memcpy(out + o, "\xef\xbf\xbd", 3);
                        o += 3;
                        p++;
                }
        }
        out[o] = '\0';
        json_t *j = json_string(out);
        free(out);
        return j;
}

/* The one error body; sets the registry's Retry-After unless the handler
 * set its own. */
static json_t *error_info_json(struct request *r, const struct wwsf_error_info *info, const char *field,
                               const char *detail) {
        if (r->retry_after <= 0)
                r->retry_after = info->retry_after;
        json_t *body = json_pack("{s:s, s:o}", "error", info->code, "detail", text_json(detail));
        if (body && field)
                json_object_set_new(body, "field", text_json(field));
        return body;
}

json_t *error_json(struct request *r, enum wwsf_error e, const char *field, const char *detail) {
        return error_info_json(r, wwsf_error_info(e), field, detail);
}

static json_t *error_body(struct request *r, const struct wwsf_error_info *info, const char *fmt, va_list ap) {
        char detail[512];
        vsnprintf(detail, sizeof detail, fmt, ap);
        return error_info_json(r, info, NULL, detail);
}

enum MHD_Result reply_error(struct request *r, enum wwsf_error e, const char *fmt, ...) {
        const struct wwsf_error_info *info = wwsf_error_info(e);
        va_list ap;
        va_start(ap, fmt);
        json_t *body = error_body(r, info, fmt, ap);
        va_end(ap);
        return reply_json(r, info->status, body);
}

void request_suspend(struct request *r) {
        r->suspended = true;
        MHD_suspend_connection(r->conn);
}

void request_finish_with(struct request *r, unsigned status, struct MHD_Response *resp) {
        r->status = status;
        r->response = resp;
        r->suspended = false;
        /* The access handler runs again and queues r->response. */
        MHD_resume_connection(r->conn);
}

void request_finish_json(struct request *r, unsigned status, json_t *body) {
        request_finish_with(r, status, json_response(r, status, body));
}

void request_finish_error(struct request *r, enum wwsf_error e, const char *fmt, ...) {
        const struct wwsf_error_info *info = wwsf_error_info(e);
        va_list ap;
        va_start(ap, fmt);
        json_t *body = error_body(r, info, fmt, ap);
        va_end(ap);
        request_finish_json(r, info->status, body);
}

const char *request_header(struct request *r, const char *name) {
        return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *request_cookie(struct request *r, const char *name) {
        return MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, name);
}

static bool json_content_type(struct request *r) {
        const char *ct = request_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
        if (!ct)
                return false;
        size_t n = strcspn(ct, ";");
        return n == 16 && strncasecmp(ct, "application/json", 16) == 0;
}

json_t *request_json_body(struct request *r, size_t flags, enum MHD_Result *ret_result) {
        if (!json_content_type(r)) {
                *ret_result = reply_error(r, WWSF_E_UNSUPPORTED_MEDIA_TYPE, "send Content-Type: application/json");
                return NULL;
        }
        json_error_t jerr;
        if (!r->body || r->body_len == 0) {
                *ret_result = reply_error(r, WWSF_E_BAD_REQUEST, "the body must be a JSON object, and there is none");
                return NULL;
        }
        json_t *body = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | flags, &jerr);
        if (!body) {
                /* jansson's words, and where: "duplicate object key near
                 * '"name"'", "maximum parsing depth reached", "invalid UTF-8". */
                *ret_result = reply_error(r, WWSF_E_BAD_REQUEST, "the body is not JSON: %s (at byte %d)", jerr.text,
                                          jerr.position);
                return NULL;
        }
        if (!json_is_object(body)) {
                static const char *const kinds[] = { [JSON_ARRAY] = "an array", [JSON_STRING] = "a string",
                                                     [JSON_INTEGER] = "a number", [JSON_REAL] = "a number",
                                                     [JSON_TRUE] = "true", [JSON_FALSE] = "false",
                                                     [JSON_NULL] = "null", [JSON_OBJECT] = "an object" };
                *ret_result = reply_error(r, WWSF_E_BAD_REQUEST, "the body must be a JSON object, not %s",
                                          kinds[json_typeof(body)]);
                json_decref(body);
                return NULL;
        }
        return body;
}

static void client_address(struct MHD_Connection *conn, char *buf, size_t size) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        buf[0] = '\0';
        if (!ci || !ci->client_addr)
                return;
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
                inet_ntop(AF_INET, &((const struct sockaddr_in *) sa)->sin_addr, buf, (socklen_t) size);
        else if (sa->sa_family == AF_INET6) {
                const struct in6_addr *a6 = &((const struct sockaddr_in6 *) sa)->sin6_addr;
                if (IN6_IS_ADDR_V4MAPPED(a6))
                        inet_ntop(AF_INET, &a6->s6_addr[12], buf, (socklen_t) size);
                else
                        inet_ntop(AF_INET6, a6, buf, (socklen_t) size);
        }
}

enum MHD_Result http_on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                const char *version, const char *upload_data, size_t *upload_data_size,
                                void **con_cls) {
        struct wwsfd *d = cls;
        struct request *r = *con_cls;
        (void) version;

        if (!r) {
                r = calloc(1, sizeof *r);
                if (!r)
                        return MHD_NO;
                r->d = d;
                r->conn = conn;
                r->started_us = wwsf_monotonic_us();
                r->method = method;
                client_address(conn, r->client_addr, sizeof r->client_addr);
                r->route = route_find(method, url, &r->allow);
                r->method_not_allowed = !r->route && r->allow;
                d->in_flight++;
                d->metrics.requests++;
                *con_cls = r;
                /* Refuse an announced oversized body before reading any of it:
                 * libmicrohttpd sends the answer and closes the connection. */
                const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
                size_t max = r->route ? r->route->body_max : 0;
                if (cl && strtoull(cl, NULL, 10) > max && r->route && !r->method_not_allowed)
                        return reply_error(r, WWSF_E_PAYLOAD_TOO_LARGE, "request bodies here are limited to %zu bytes",
                                           max);
                /* A body of unannounced length could go on for ever, and
                 * libmicrohttpd cannot answer in the middle of one: routes
                 * that take a body want Content-Length (browsers send it). */
                const char *te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
                if (te && max > 0 && !r->method_not_allowed)
                        return reply_error(r, WWSF_E_LENGTH_REQUIRED, "send the body with a Content-Length");
                return MHD_YES;
        }

        if (r->response) {
                struct MHD_Response *resp = r->response;
                r->response = NULL;
                return queue(r, r->status, resp);
        }

        if (*upload_data_size) {
                size_t n = *upload_data_size;
                size_t max = r->route ? r->route->body_max : 0;
                if (!r->body_too_large && r->body_len + n <= max) {
                        char *b = realloc(r->body, r->body_len + n + 1);
                        if (!b)
                                return MHD_NO;
                        memcpy(b + r->body_len, upload_data, n);
                        r->body = b;
                        r->body_len += n;
                        r->body[r->body_len] = '\0';
                } else {
                        /* Past the limit (a body to a route that takes none):
                         * dropped, and answered at the end. */
                        *upload_data_size = 0;
                        free(r->body);
                        r->body = NULL;
                        r->body_len = 0;
                        if (r->body_too_large)
                                return MHD_YES;
                        r->body_too_large = true;
                        return MHD_YES;
                }
                *upload_data_size = 0;
                return MHD_YES;
        }
        if (r->suspended)
                return MHD_YES;

        if (d->stopping)
                return reply_error(r, WWSF_E_SHUTTING_DOWN, "the server is restarting; try again in a moment");
        if (r->method_not_allowed)
                return reply_error(r, WWSF_E_METHOD_NOT_ALLOWED, "%s is not allowed on %s", method, url);
        if (!r->route)
                return reply_error(r, WWSF_E_NOT_FOUND, "no such resource");
        if (r->body_too_large)
                return MHD_YES; /* answered 413 already */
        return r->route->handler(r, url);
}

/* %-decoding of the URL with libmicrohttpd's rules, except that a decoded
 * control byte (%00 above all) becomes DEL, which no route matches and the
 * static file rules refuse: "/index.html%00.txt" must not become
 * "/index.html". */
size_t http_unescape(void *cls, struct MHD_Connection *conn, char *s) {
        (void) cls;
        (void) conn;
        size_t n = MHD_http_unescape(s);
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) s[i] < 0x20)
                        s[i] = 0x7f;
        return n;
}

void http_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
        struct wwsfd *d = cls;
        struct request *r = *con_cls;
        (void) conn;
        (void) toe;
        if (!r)
                return;
        if (r->response)
                MHD_destroy_response(r->response);
        free(r->body);
        free(r);
        *con_cls = NULL;
        d->in_flight--;
}
