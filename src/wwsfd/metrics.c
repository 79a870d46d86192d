/* Latency histograms (buckets in microseconds) and response counting. */
#include "wwsfd/metrics.h"

#include <stdio.h>
#include <string.h>

static const uint64_t bucket_bounds_us[HISTOGRAM_BUCKETS] = {
        1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000, 5000000,
};

void histogram_observe(struct histogram *h, uint64_t us) {
        int i = 0;
        while (i < HISTOGRAM_BUCKETS && us > bucket_bounds_us[i])
                i++;
        h->buckets[i]++;
        h->count++;
        h->sum_us += us;
}

uint64_t histogram_bound_us(int i) {
        return bucket_bounds_us[i];
}

void metrics_count_status(struct metrics *m, unsigned status) {
        if (status >= 500)
                m->responses_5xx++;
        else if (status >= 400)
                m->responses_4xx++;
}

void metrics_init(struct metrics *m) {
        pthread_mutex_init(&m->portals_lock, NULL);
        snprintf(m->portals[METRICS_PORTALS_MAX].name, sizeof m->portals[0].name, "%s", "other");
}

void metrics_done(struct metrics *m) {
        pthread_mutex_destroy(&m->portals_lock);
}

static struct metrics_portal *portal_slot(struct metrics *m, const char *name) {
        size_t n = m->n_portals;
        for (size_t i = 0; i < n; i++)
                if (strcmp(m->portals[i].name, name) == 0)
                        return &m->portals[i];
        pthread_mutex_lock(&m->portals_lock);
        struct metrics_portal *slot = &m->portals[METRICS_PORTALS_MAX];
        n = m->n_portals;
        for (size_t i = 0; i < n; i++)
                if (strcmp(m->portals[i].name, name) == 0)
                        slot = &m->portals[i];
        if (slot == &m->portals[METRICS_PORTALS_MAX] && n < METRICS_PORTALS_MAX) {
                slot = &m->portals[n];
                snprintf(slot->name, sizeof slot->name, "%s", name);
                m->n_portals = n + 1;   /* published after the name */
        }
        pthread_mutex_unlock(&m->portals_lock);
        return slot;
}

void metrics_count_portal(struct metrics *m, const char *portal, bool write, unsigned status) {
        struct metrics_portal *p = portal_slot(m, portal && *portal ? portal : "unauthenticated");
        if (write)
                p->writes++;
        else
                p->reads++;
        if (status == 429)
                p->throttled++;
        if (status >= 500)
                p->responses_5xx++;
        else if (status >= 400)
                p->responses_4xx++;
}
