/* Worker threads for blocking work (lease store writes, signing), so that the
 * HTTP threads only parse, route and reply. Each worker owns a connection to
 * the lease store. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "wwsfd/wwsfd.h"

/* Work waiting for a worker. Past this the daemon is overloaded and says so
 * (503) rather than queueing requests nobody will wait for. */
#define JOB_QUEUE_MAX 4096

struct job {
        job_fn fn;
        void *userdata;
};

struct job_queue {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        struct job ring[JOB_QUEUE_MAX];
        size_t head, count;
        bool stop;
        int n_threads, n_workers;
        pthread_t *threads;
        struct worker *workers;
};

static void *worker_main(void *arg) {
        struct worker *w = arg;
        struct job_queue *q = w->d->jobs;
        for (;;) {
                pthread_mutex_lock(&q->lock);
                while (!q->count && !q->stop)
                        pthread_cond_wait(&q->cond, &q->lock);
                if (!q->count) {
                        pthread_mutex_unlock(&q->lock);
                        return NULL;
                }
                struct job j = q->ring[q->head];
                q->head = (q->head + 1) % JOB_QUEUE_MAX;
                q->count--;
                pthread_mutex_unlock(&q->lock);
                j.fn(w, j.userdata);
        }
}

int job_queue_new(struct wwsfd *d, int n, struct job_queue **ret) {
        struct job_queue *q = calloc(1, sizeof *q);
        if (!q)
                return -ENOMEM;
        pthread_mutex_init(&q->lock, NULL);
        pthread_cond_init(&q->cond, NULL);
        q->threads = calloc((size_t) n, sizeof *q->threads);
        q->workers = calloc((size_t) n, sizeof *q->workers);
        if (!q->threads || !q->workers) {
                job_queue_free(q);
                return -ENOMEM;
        }
        struct store_options opt = {
                .sync = strcmp(d->cfg->sync, "normal") == 0 ? STORE_SYNC_NORMAL : STORE_SYNC_FULL,
                .manual_checkpoint = true,
        };
        for (int i = 0; i < n; i++) {
                struct worker *w = &q->workers[i];
                w->d = d;
                char err[600];
                int r = store_sqlite_open(d->cfg->db, &opt, &w->store, err, sizeof err);
                if (r < 0) {
                        log_error("cannot open the lease store %s", err);
                        job_queue_free(q);
                        return r;
                }
                q->n_workers++;
                if ((r = lease_engine_new(w->store, d->clock, &w->engine)) < 0) {
                        job_queue_free(q);
                        return r;
                }
        }
        d->jobs = q;
        for (int i = 0; i < n; i++) {
                if (pthread_create(&q->threads[i], NULL, worker_main, &q->workers[i]) != 0) {
                        d->jobs = NULL;
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

/* Runs what is queued, then stops the workers. */
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
        free(q->threads);
        free(q->workers);
        free(q);
}
