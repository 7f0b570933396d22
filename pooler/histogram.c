/* histogram: see include/histogram.h. */
#include "histogram.h"

const double histogram_bounds[HISTOGRAM_BUCKETS] = {0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                    0.025,  0.05,   0.1,   0.5,    1,     5};

void histogram_observe(struct histogram *h, uint64_t micros)
{
	double s = (double)micros / 1e6;
	int i = 0;
	while (i < HISTOGRAM_BUCKETS && s > histogram_bounds[i])
		i++;
	h->counts[i]++;
	h->count++;
	h->sum += s;
}

void histogram_add(struct histogram *dst, const struct histogram *src)
{
	for (int i = 0; i <= HISTOGRAM_BUCKETS; i++)
		dst->counts[i] += src->counts[i];
	dst->count += src->count;
	dst->sum += src->sum;
}
