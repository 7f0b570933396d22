/* breaker: see include/breaker.h. */
#include "breaker.h"

void breaker_init(struct breaker *b, uint32_t threshold, uint32_t recovery_ms)
{
	b->state = BREAKER_CLOSED;
	b->failures = 0;
	b->threshold = threshold ? threshold : 1;
	b->recovery_ms = recovery_ms;
	b->opened_us = 0;
	b->transitions = 0;
}

static void move(struct breaker *b, enum breaker_state s)
{
	if (b->state != s) {
		b->state = s;
		b->transitions++;
	}
}

bool breaker_allow(struct breaker *b, uint64_t now_us)
{
	switch (b->state) {
	case BREAKER_CLOSED:
		return true;
	case BREAKER_OPEN:
		if (now_us - b->opened_us < (uint64_t)b->recovery_ms * 1000)
			return false;
		move(b, BREAKER_HALF_OPEN);
		return true; /* the one trial */
	case BREAKER_HALF_OPEN:
		return false; /* a trial is already out */
	}
	return false;
}

void breaker_success(struct breaker *b)
{
	b->failures = 0;
	move(b, BREAKER_CLOSED);
}

bool breaker_failure(struct breaker *b, uint64_t now_us)
{
	if (b->failures < UINT32_MAX)
		b->failures++;
	if (b->state == BREAKER_HALF_OPEN ||
	    (b->state == BREAKER_CLOSED && b->failures >= b->threshold)) {
		move(b, BREAKER_OPEN);
		b->opened_us = now_us;
		return true;
	}
	return false;
}

const char *breaker_state_name(enum breaker_state s)
{
	return s == BREAKER_CLOSED ? "closed" : s == BREAKER_OPEN ? "open" : "half-open";
}
