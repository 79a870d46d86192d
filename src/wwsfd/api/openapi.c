/* GET /api/v1/openapi.json: the portal API's OpenAPI document
 * (docs/openapi.json, compiled in), for anyone: it says what the API is,
 * nothing of anyone's data. */
#include <stddef.h>

#include "wwsfd/api/api.h"

extern const char wwsf_openapi_json[];
extern const size_t wwsf_openapi_json_len;

enum MHD_Result api_openapi(struct request *r, const char *url) {
        (void) url;
        struct MHD_Response *resp = MHD_create_response_from_buffer(wwsf_openapi_json_len, (void *) wwsf_openapi_json,
                                                                    MHD_RESPMEM_PERSISTENT);
        return reply_response(r, 200, resp, "application/json", "public, max-age=3600");
}
