/* The job queue and its workers.
 *
 * Group commit: a worker takes every job waiting (up to BATCH_MAX) and runs
 * them in one store transaction, one savepoint each; a job that changed the
 * store defers its reply (worker_defer), and the replies go out after the
 * commit, so nobody is told of a lease before it is durable, and many leases
 * share one flush. One worker holds the store at a time (writer_lock); jobs
 * pile up meanwhile and the next worker takes them all. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lease/lease.h"
#include "wwsfd/jobs.h"
#include "wwsfd/log.h"

/* Work waiting for a worker. Past this the daemon is overloaded and says so
 * (503) rather than queueing requests nobody will wait for. */
#define JOB_QUEUE_MAX 4096
/* Jobs in one transaction: enough to share a flush among a burst, few enough
 * that the first of them does not wait long for the last. */
#define BATCH_MAX 64

struct job {
        job_fn fn;
        void *userdata;
};

struct job_queue {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        pthread_mutex_t writer_lock;
        struct job ring[JOB_QUEUE_MAX];
        size_t head, count;
        bool stop;
        int n_threads, n_workers;
        pthread_t *threads;
        struct worker *workers;
};

void worker_defer(struct worker *w, after_commit_fn fn, void *userdata) {
        /* Each job defers at most once, and a batch has at most BATCH_MAX. */
        if (w->n_deferred < WORKER_DEFER_MAX)
                w->deferred[w->n_deferred++] = (struct deferred) { fn, userdata };
        else
                fn(w, userdata, false);
}

static void *worker_main(void *arg) {
        struct worker *w = arg;
        struct job_queue *q = w->queue;
        struct job batch[BATCH_MAX];
        for (;;) {
                pthread_mutex_lock(&q->lock);
                while (!q->count && !q->stop)
                        pthread_cond_wait(&q->cond, &q->lock);
                bool done = !q->count && q->stop;
                pthread_mutex_unlock(&q->lock);
                if (done)
                        return NULL;

                pthread_mutex_lock(&q->writer_lock);
                pthread_mutex_lock(&q->lock);
                size_t n = 0;
                while (q->count && n < BATCH_MAX) {
                        batch[n++] = q->ring[q->head];
                        q->head = (q->head + 1) % JOB_QUEUE_MAX;
                        q->count--;
                }
                pthread_mutex_unlock(&q->lock);
                if (n == 0) {
                        /* Another worker took them while we waited. */
                        pthread_mutex_unlock(&q->writer_lock);
                        continue;
                }
                w->n_deferred = 0;
                bool batched = lease_batch_begin(w->engine) == 0;
                if (!batched)
                        log_warning("lease store: %s; running %zu jobs one by one", lease_engine_error(w->engine), n);
                for (size_t i = 0; i < n; i++)
                        batch[i].fn(w, batch[i].userdata);
                bool committed = true;
                if (batched && lease_batch_commit(w->engine) < 0) {
                        log_error("lease store: %s", lease_engine_error(w->engine));
                        lease_batch_rollback(w->engine);
                        committed = false;
                }
                pthread_mutex_unlock(&q->writer_lock);
                /* Replies after the commit, signing outside the store lock. */
                for (size_t i = 0; i < w->n_deferred; i++)
                        w->deferred[i].fn(w, w->deferred[i].userdata, committed);
                w->n_deferred = 0;
        }
}

int job_queue_new(const struct job_queue_options *opt, struct job_queue **ret) {
        int n = opt->threads;
        struct job_queue *q = calloc(1, sizeof *q);
        if (!q)
                return -ENOMEM;
        pthread_mutex_init(&q->lock, NULL);
        pthread_cond_init(&q->cond, NULL);
        pthread_mutex_init(&q->writer_lock, NULL);
        q->threads = calloc((size_t) n, sizeof *q->threads);
        q->workers = calloc((size_t) n, sizeof *q->workers);
        if (!q->threads || !q->workers) {
                job_queue_free(q);
                return -ENOMEM;
        }
        struct store_options so = {
                .sync = opt->sync,
                .manual_checkpoint = true,
        };
        for (int i = 0; i < n; i++) {
                struct worker *w = &q->workers[i];
                w->queue = q;
                char err[600];
                int r = store_sqlite_open(opt->db, &so, &w->store, err, sizeof err);
                if (r < 0) {
                        log_error("cannot open the lease store %s", err);
                        job_queue_free(q);
                        return r;
                }
                q->n_workers++;
                if ((r = lease_engine_new(w->store, opt->clock, &w->engine)) < 0) {
                        job_queue_free(q);
                        return r;
                }
        }
        for (int i = 0; i < n; i++) {
                if (pthread_create(&q->threads[i], NULL, worker_main, &q->workers[i]) != 0) {
                        job_queue_free(q);
                        return -EAGAIN;
                }
                q->n_threads++;
        }
        *ret = q;
        return 0;
}

bool job_queue_push(struct job_queue *q, job_fn fn, void *userdata) {
        pthread_mutex_lock(&q->lock);
        bool ok = !q->stop && q->count < JOB_QUEUE_MAX;
        if (ok) {
                q->ring[(q->head + q->count) % JOB_QUEUE_MAX] = (struct job) { fn, userdata };
                q->count++;
                pthread_cond_signal(&q->cond);
        }
        pthread_mutex_unlock(&q->lock);
        return ok;
}

void job_queue_free(struct job_queue *q) {
        if (!q)
                return;
        pthread_mutex_lock(&q->lock);
        q->stop = true;
        pthread_cond_broadcast(&q->cond);
        pthread_mutex_unlock(&q->lock);
        for (int i = 0; i < q->n_threads; i++)
                pthread_join(q->threads[i], NULL);
        for (int i = 0; i < q->n_workers; i++) {
                lease_engine_free(q->workers[i].engine);
                store_close(q->workers[i].store);
        }
        pthread_mutex_destroy(&q->lock);
        pthread_cond_destroy(&q->cond);
        pthread_mutex_destroy(&q->writer_lock);
        free(q->threads);
        free(q->workers);
        free(q);
}
