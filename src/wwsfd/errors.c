/* The registry as a table, indexed by enum wwsf_error. */
#include <stddef.h>

#include "wwsfd/errors.h"

static const struct wwsf_error_info registry[WWSF_E_COUNT] = {
#define WWSF_ERROR(name, code, status, retry_after, words) [WWSF_E_##name] = { code, status, retry_after, words },
#include "wwsfd/errors.def"
#undef WWSF_ERROR
};

const struct wwsf_error_info *wwsf_error_info(enum wwsf_error e) {
        return &registry[e < WWSF_E_COUNT ? e : WWSF_E_INTERNAL_ERROR];
}
