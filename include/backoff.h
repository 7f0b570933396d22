/* backoff: exponential backoff with full jitter, for retrying backend connects. Layer 1,
 * pure. The n-th retry waits a random time in [0, min(max, base * 2^n)], so that many
 * pools retrying one node spread out instead of arriving together. */
#ifndef POOLER_BACKOFF_H
#define POOLER_BACKOFF_H

#include <stdint.h>

struct backoff {
	uint32_t base_ms;
	uint32_t max_ms;
	uint32_t attempt; /* failures since the last success */
};

void backoff_init(struct backoff *b, uint32_t base_ms, uint32_t max_ms);
/* Record a failure and return how long to wait before the next try; rng is the caller's
 * xorshift state. */
uint32_t backoff_next(struct backoff *b, uint64_t *rng);
void backoff_reset(struct backoff *b);

#endif
