/* Latency histograms (buckets in microseconds) and response counting. */
#include "wwsfd/metrics.h"

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
