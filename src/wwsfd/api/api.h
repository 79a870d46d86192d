/* The endpoint handlers, one file per endpoint or family, each listed in the
 * route table of routes.c. A handler runs on an HTTP thread: it answers
 * there, or suspends the request and hands it to the admission core. */
#pragma once
#include "wwsfd/http.h"

enum MHD_Result api_anonymous(struct request *r, const char *url);     /* anonymous.c */
enum MHD_Result api_login(struct request *r, const char *url);         /* login.c */
enum MHD_Result api_refresh(struct request *r, const char *url);       /* session.c */
enum MHD_Result api_logout(struct request *r, const char *url);        /* session.c */
enum MHD_Result api_jwks(struct request *r, const char *url);          /* jwks.c */
enum MHD_Result api_healthz(struct request *r, const char *url);       /* health.c */
enum MHD_Result api_metrics(struct request *r, const char *url);       /* metrics.c */
enum MHD_Result api_static(struct request *r, const char *url);        /* static.c */
enum MHD_Result api_portal(struct request *r, const char *url);        /* portal.c: /api/v1/portal/... */
enum MHD_Result api_openapi(struct request *r, const char *url);       /* openapi.c */
