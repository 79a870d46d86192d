/* The anonymous-eligibility hook: a pool of persistent helper programs spoken
 * to with one JSON object per line on stdin/stdout, as Squid's external ACL
 * helpers are.
 *   request  {"id":"<n>","client_addr":"...","user_agent":"...","evidence":{...}}
 *   answer   {"id":"<n>","eligible":true|false,"reason":"...","pool":"..."}
 * ("pool" optional: the anonymous pool to lease from; "reason" shown to the
 * user when not eligible). Several helpers run at once; each carries one
 * request at a time; a request that finds them all busy waits in a bounded
 * queue. A helper that dies is restarted; a request that gets no answer
 * within the timeout is answered HOOK_TIMEOUT and its helper is killed and
 * restarted (a late answer can never be taken for another request's). */
#pragma once
#include <jansson.h>
#include <stdbool.h>

enum hook_status {
        HOOK_OK = 0,            /* the helper answered; see the verdict */
        HOOK_TIMEOUT = -1,      /* no answer in time */
        HOOK_UNAVAILABLE = -2,  /* no helper running (cannot start) or queue full */
        HOOK_BAD_ANSWER = -3,   /* the helper's line was not a valid answer */
};

struct hook_verdict {
        bool eligible;
        char reason[256];       /* "" if none */
        char pool[65];          /* "" if none */
};

struct hook_options {
        const char *const *argv;        /* program and arguments, NULL-terminated */
        int helpers;                    /* processes, >= 1 */
        int timeout_ms;                 /* per request */
        int queue_max;                  /* requests waiting for a helper */
};

/* Called once per request, from the pool's own thread; verdict is NULL unless
 * status is HOOK_OK. Must not block. */
typedef void (*hook_done_fn)(void *userdata, enum hook_status status, const struct hook_verdict *verdict);

struct hook_pool;

/* Starts the helpers and the pool's thread. Returns 0 or a negative errno. */
int hook_pool_new(const struct hook_options *opt, struct hook_pool **ret);
/* Stops the thread and the helpers (SIGTERM, then SIGKILL); accepts NULL. */
void hook_pool_free(struct hook_pool *p);

/* Queues a request; done is always called exactly once, also on failure
 * (HOOK_UNAVAILABLE) — possibly before hook_pool_ask() returns. evidence is
 * borrowed (copied as needed). */
void hook_pool_ask(struct hook_pool *p, const char *client_addr, const char *user_agent, const json_t *evidence,
                   hook_done_fn done, void *userdata);

struct hook_stats {
        unsigned long requests, eligible, refused, timeouts, failures, restarts;
};
void hook_pool_stats(struct hook_pool *p, struct hook_stats *ret);
