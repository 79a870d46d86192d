/* Drives the LDAP login pool of src/wwsfd/ldap_auth.h for the integration
 * tests (test_ldap_login.py), outside the daemon.
 *
 *   ldap_login_probe CONFIG            requests on stdin, one JSON object a line
 *   ldap_login_probe CONFIG USERNAME   one login; password from $WWSF_PROBE_PASSWORD
 *
 * CONFIG is a wwsfd configuration; its [ldap] section is what counts. A
 * request is {"username": "...", "password": "..."} with optionally
 * "count": N (the same login queued N times at once) and "free": true (free
 * the pool right after queueing, then make a new one). Each request is
 * answered with one line:
 *   {"status": "ok"|"invalid"|"unavailable"|"busy",   (of the first login)
 *    "user": {"uid", "dn", "impu", "impi", "groups": [...]} | null,
 *    "statuses": {"ok": N, ...}, "max_elapsed_ms": X, "wall_ms": Y}
 * One pool serves every request, so its connections live from one request
 * to the next as in the daemon. Logs (log_level of the configuration, or
 * $WWSF_PROBE_LOG_LEVEL) go to stderr. Exit status: 0, 1 when the pool
 * cannot be made, 2 for a bad configuration or usage. */
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "config/daemon_config.h"
#include "wwsfd/ldap_auth.h"
#include "wwsfd/log.h"

/* More than the pool's queue holds, to see it answer BUSY. */
#define COUNT_MAX 1000

struct answer {
        bool done;
        enum ldap_login_status status;
        struct ldap_user user;
        unsigned long elapsed_us;
};

struct batch {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        int pending;
        struct answer answers[COUNT_MAX];
};

static struct batch batch = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, { { 0 } } };

static void on_done(void *userdata, enum ldap_login_status status, const struct ldap_user *user,
                    unsigned long elapsed_us) {
        struct answer *a = userdata;
        pthread_mutex_lock(&batch.lock);
        if (a->done) {
                fprintf(stderr, "ldap_login_probe: a login was answered twice\n");
                abort();
        }
        if ((status == LDAP_LOGIN_OK) != (user != NULL)) {
                fprintf(stderr, "ldap_login_probe: user is %s with status %d\n", user ? "set" : "NULL", status);
                abort();
        }
        a->done = true;
        a->status = status;
        a->elapsed_us = elapsed_us;
        if (user)
                a->user = *user;
        batch.pending--;
        pthread_cond_broadcast(&batch.cond);
        pthread_mutex_unlock(&batch.lock);
}

static const char *status_name(enum ldap_login_status s) {
        switch (s) {
        case LDAP_LOGIN_OK:
                return "ok";
        case LDAP_LOGIN_INVALID:
                return "invalid";
        case LDAP_LOGIN_UNAVAILABLE:
                return "unavailable";
        case LDAP_LOGIN_BUSY:
                return "busy";
        }
        return "?";
}

static json_t *user_json(const struct ldap_user *u) {
        json_t *groups = json_array();
        for (int i = 0; i < u->n_groups; i++)
                json_array_append_new(groups, json_string(u->groups[i]));
        return json_pack("{s:s, s:s, s:s, s:s, s:o}", "uid", u->uid, "dn", u->dn, "impu", u->impu, "impi", u->impi,
                         "groups", groups);
}

/* Runs count logins at once and prints the answer line. */
static int run(const struct daemon_config *cfg, struct ldap_pool **pool, const char *username, const char *password,
               int count, bool free_pool) {
        pthread_mutex_lock(&batch.lock);
        memset(batch.answers, 0, sizeof batch.answers);
        batch.pending = count;
        pthread_mutex_unlock(&batch.lock);

        double start = ((double) wwsf_monotonic_ns() / 1e6);
        for (int i = 0; i < count; i++)
                ldap_pool_login(*pool, username, password, on_done, &batch.answers[i]);
        if (free_pool) {
                ldap_pool_free(*pool);
                *pool = NULL;
        }
        pthread_mutex_lock(&batch.lock);
        while (batch.pending > 0)
                pthread_cond_wait(&batch.cond, &batch.lock);
        pthread_mutex_unlock(&batch.lock);
        double wall = ((double) wwsf_monotonic_ns() / 1e6) - start;
        if (free_pool) {
                int r = ldap_pool_new(cfg, pool);
                if (r < 0) {
                        fprintf(stderr, "ldap_login_probe: cannot make the pool again: %s\n", strerror(-r));
                        return 1;
                }
        }

        int counts[4] = { 0 };
        unsigned long max_us = 0;
        for (int i = 0; i < count; i++) {
                counts[-batch.answers[i].status]++;
                if (batch.answers[i].elapsed_us > max_us)
                        max_us = batch.answers[i].elapsed_us;
        }
        const struct answer *first = &batch.answers[0];
        json_t *out = json_pack("{s:s, s:o, s:{s:i, s:i, s:i, s:i}, s:f, s:f}", "status", status_name(first->status),
                                "user", first->status == LDAP_LOGIN_OK ? user_json(&first->user) : json_null(),
                                "statuses", "ok", counts[0], "invalid", counts[1], "unavailable", counts[2], "busy",
                                counts[3], "max_elapsed_ms", (double) max_us / 1000.0, "wall_ms", wall);
        char *line = json_dumps(out, JSON_COMPACT);
        printf("%s\n", line);
        fflush(stdout);
        free(line);
        json_decref(out);
        return 0;
}

static int serve_stdin(const struct daemon_config *cfg, struct ldap_pool **pool) {
        char *line = NULL;
        size_t cap = 0;
        int r = 0;
        while (r == 0 && getline(&line, &cap, stdin) > 0) {
                json_error_t error;
                json_t *req = json_loads(line, 0, &error);
                const char *username = NULL, *password = NULL;
                int count = 1, free_pool = 0;
                if (!req || json_unpack_ex(req, &error, 0, "{s:s, s:s, s?:i, s?:b}", "username", &username,
                                           "password", &password, "count", &count, "free", &free_pool) < 0 ||
                    count < 1 || count > COUNT_MAX) {
                        printf("{\"error\": \"bad request\"}\n");
                        fflush(stdout);
                } else
                        r = run(cfg, pool, username, password, count, free_pool);
                json_decref(req);
        }
        if (line)
                explicit_bzero(line, cap);
        free(line);
        return r;
}

int main(int argc, char **argv) {
        struct daemon_config *cfg = NULL;
        struct ldap_pool *pool = NULL;
        int r;

        if (argc != 2 && argc != 3) {
                fprintf(stderr, "usage: ldap_login_probe CONFIG [USERNAME]   (password in $WWSF_PROBE_PASSWORD)\n");
                return 2;
        }
        signal(SIGPIPE, SIG_IGN);
        r = daemon_config_load(argv[1], &cfg);
        if (r < 0) {
                for (size_t i = 0; i < cfg->n_errors; i++)
                        fprintf(stderr, "%s\n", cfg->errors[i]);
                daemon_config_free(cfg);
                return 2;
        }
        enum log_level level;
        const char *level_name = getenv("WWSF_PROBE_LOG_LEVEL");
        if (log_level_from_string(level_name ? level_name : cfg->log_level, &level) == 0)
                log_set_level(level);
        if ((r = ldap_pool_new(cfg, &pool)) < 0) {
                fprintf(stderr, "ldap_login_probe: ldap_pool_new: %s\n", strerror(-r));
                daemon_config_free(cfg);
                return 1;
        }
        if (argc == 3) {
                const char *password = getenv("WWSF_PROBE_PASSWORD");
                r = run(cfg, &pool, argv[2], password ? password : "", 1, false);
        } else
                r = serve_stdin(cfg, &pool);
        ldap_pool_free(pool);
        daemon_config_free(cfg);
        return r;
}
