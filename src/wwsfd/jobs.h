/* Worker threads for blocking work (lease store writes, signing), so that
 * the HTTP threads only parse, route and reply. Each worker owns a
 * connection to the lease store and a lease engine on it; jobs arrive with
 * whatever context they need in their userdata. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "common/clock.h"
#include "store/store.h"

struct worker;
typedef void (*job_fn)(struct worker *w, void *userdata);
/* Run after the batch the job was in committed (committed = true) or failed;
 * the place to reply when the job changed the store. */
typedef void (*after_commit_fn)(struct worker *w, void *userdata, bool committed);

#define WORKER_DEFER_MAX 64

struct deferred {
        after_commit_fn fn;
        void *userdata;
};

struct job_queue;

struct worker {
        struct job_queue *queue;
        struct store *store;
        struct lease_engine *engine;
        struct deferred deferred[WORKER_DEFER_MAX];
        size_t n_deferred;
};

struct job_queue_options {
        const char *db;                 /* the lease store each worker opens */
        enum store_sync sync;
        const struct wwsf_clock *clock; /* borrowed; outlives the queue */
        int threads;
};

int job_queue_new(const struct job_queue_options *opt, struct job_queue **ret);
/* Returns false when the queue is full or stopping (the caller answers 503). */
bool job_queue_push(struct job_queue *q, job_fn fn, void *userdata);
/* Runs what is queued, then stops the workers; accepts NULL. */
void job_queue_free(struct job_queue *q);

/* From a job: call fn once the job's batch is committed (or has failed). */
void worker_defer(struct worker *w, after_commit_fn fn, void *userdata);
