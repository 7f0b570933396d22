/* backoff: see include/backoff.h. */
#include "backoff.h"

#include "util.h"

void backoff_init(struct backoff *b, uint32_t base_ms, uint32_t max_ms)
{
	b->base_ms = base_ms ? base_ms : 1;
	b->max_ms = max_ms > b->base_ms ? max_ms : b->base_ms;
	b->attempt = 0;
}

uint32_t backoff_next(struct backoff *b, uint64_t *rng)
{
	uint64_t cap = b->base_ms;
	for (uint32_t i = 0; i < b->attempt && cap < b->max_ms; i++)
		cap *= 2;
	if (cap > b->max_ms)
		cap = b->max_ms;
	if (b->attempt < 64)
		b->attempt++;
	return (uint32_t)(util_rand64(rng) % (cap + 1));
}

void backoff_reset(struct backoff *b)
{
	b->attempt = 0;
}
