/* histogram: latency buckets in the Prometheus sense, filled on the hot path with a few
 * compares and increments (no locks, no allocation). Layer 0, so that any module may
 * own one (a node its connect latency, the worker its waits). */
#ifndef POOLER_HISTOGRAM_H
#define POOLER_HISTOGRAM_H

#include <stdint.h>

#define HISTOGRAM_BUCKETS 12

/* Upper bounds in seconds, shared by every histogram: sub-millisecond pooling up to slow
 * transactions. */
extern const double histogram_bounds[HISTOGRAM_BUCKETS];

struct histogram {
	uint64_t counts[HISTOGRAM_BUCKETS + 1]; /* the last one is +Inf */
	uint64_t count;
	double sum; /* seconds */
};

void histogram_observe(struct histogram *h, uint64_t micros);
/* dst += src: the sum of two workers' histograms. */
void histogram_add(struct histogram *dst, const struct histogram *src);

#endif
