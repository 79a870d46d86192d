/* The errors wwsfd answers, by name: each with its code, HTTP status and
 * Retry-After from one registry (errors.def). Replies take an enum
 * wwsf_error, never a code string, so no answer can carry a code the
 * registry, the README and the WIC do not know. */
#pragma once

enum wwsf_error {
#define WWSF_ERROR(name, code, status, retry_after, words) WWSF_E_##name,
#include "wwsfd/errors.def"
#undef WWSF_ERROR
        WWSF_E_COUNT
};

struct wwsf_error_info {
        const char *code;       /* the "error" member of the JSON body */
        unsigned status;
        int retry_after;        /* seconds, 0: no Retry-After */
        const char *words;      /* what the WIC shows; NULL: its generic message */
};

const struct wwsf_error_info *wwsf_error_info(enum wwsf_error e);
