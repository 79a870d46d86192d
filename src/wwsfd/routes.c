/* The route table: every endpoint wwsfd serves, its method, its handler
 * and the largest body it takes. */
#include <stdbool.h>
#include <string.h>

#include "wwsfd/api/api.h"
#include "wwsfd/http.h"

static const struct route routes[] = {
        { "POST", "/api/v1/anonymous", api_anonymous, AUTH_BODY_MAX },
        { "POST", "/api/v1/login", api_login, AUTH_BODY_MAX },
        { "POST", "/api/v1/refresh", api_refresh, AUTH_BODY_MAX },
        { "POST", "/api/v1/logout", api_logout, AUTH_BODY_MAX },
        { "GET", "/.well-known/jwks.json", api_jwks, 0 },
        { "GET", "/healthz", api_healthz, 0 },
        { "GET", "/metrics", api_metrics, 0 },
        { "GET", "/api/v1/openapi.json", api_openapi, 0 },
        { "*", "/api/v1/portal/", api_portal, PORTAL_BODY_MAX },
        { "GET", "/", api_static, 0 },  /* everything else: files under web_root */
};

const struct route *route_find(const char *method, const char *url, const char **ret_allow) {
        const char *m = strcmp(method, "HEAD") == 0 ? "GET" : method;
        *ret_allow = NULL;
        const struct route *prefix = NULL;
        for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
                const struct route *rt = &routes[i];
                size_t n = strlen(rt->path);
                bool is_prefix = rt->path[n - 1] == '/';
                bool match = is_prefix ? strncmp(url, rt->path, n) == 0 : strcmp(url, rt->path) == 0;
                if (!match)
                        continue;
                if (!is_prefix) {
                        if (strcmp(rt->method, m) == 0)
                                return rt;
                        *ret_allow = strcmp(rt->method, "GET") == 0 ? "GET, HEAD" : rt->method;
                } else if ((strcmp(rt->method, m) == 0 || strcmp(rt->method, "*") == 0) && !prefix)
                        prefix = rt;
        }
        return *ret_allow ? NULL : prefix;
}

