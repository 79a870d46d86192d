/* GET /healthz: 200 while a signing key is active, else 503. */
#include <pthread.h>

#include "tokens/tokens.h"
#include "wwsfd/api/api.h"
#include "wwsfd/daemon.h"

enum MHD_Result api_healthz(struct request *r, const char *url) {
        struct wwsfd *d = r->d;
        (void) url;
        pthread_rwlock_rdlock(&d->keyring_lock);
        bool can_sign = d->keyring && tokens_keyring_can_sign(d->keyring);
        pthread_rwlock_unlock(&d->keyring_lock);
        json_t *body = json_pack("{s:s, s:b, s:b}", "status", can_sign ? "ok" : "degraded", "signing_key", can_sign,
                                 "anonymous", d->hook != NULL);
        return reply_json(r, can_sign ? 200 : 503, body);
}
