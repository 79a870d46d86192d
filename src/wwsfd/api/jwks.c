/* GET /.well-known/jwks.json: the published public keys, for validators. */
#include <pthread.h>
#include <string.h>

#include "tokens/tokens.h"
#include "wwsfd/api/api.h"
#include "wwsfd/daemon.h"

enum MHD_Result api_jwks(struct request *r, const char *url) {
        struct wwsfd *d = r->d;
        (void) url;
        pthread_rwlock_rdlock(&d->keyring_lock);
        const char *jwks = d->keyring ? tokens_keyring_jwks(d->keyring) : "{\"keys\":[]}";
        struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(jwks), (void *) jwks,
                                                                    MHD_RESPMEM_MUST_COPY);
        pthread_rwlock_unlock(&d->keyring_lock);
        /* Validators poll it; a new key is published well before it signs. */
        return reply_response(r, 200, resp, "application/json", "public, max-age=300");
}
