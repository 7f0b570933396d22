/* breaker: a circuit breaker per backend node. Layer 1, pure (time is passed in).
 *
 * CLOSED: calls go through; threshold consecutive failures open it.
 * OPEN: calls fail at once (clients get a clear error instead of waiting) until
 *       recovery_ms have passed; then one trial is let through (HALF_OPEN).
 * HALF_OPEN: the trial's success closes the circuit, its failure opens it again. */
#ifndef POOLER_BREAKER_H
#define POOLER_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

enum breaker_state { BREAKER_CLOSED, BREAKER_OPEN, BREAKER_HALF_OPEN };

struct breaker {
	enum breaker_state state;
	uint32_t failures; /* consecutive */
	uint32_t threshold;
	uint32_t recovery_ms;
	uint64_t opened_us; /* when it last opened */
	uint64_t transitions;
};

void breaker_init(struct breaker *b, uint32_t threshold, uint32_t recovery_ms);
/* May a call go ahead now? In OPEN past the recovery time this moves to HALF_OPEN and
 * lets exactly one trial through. */
bool breaker_allow(struct breaker *b, uint64_t now_us);
void breaker_success(struct breaker *b);
/* Returns true when this failure opened the circuit. */
bool breaker_failure(struct breaker *b, uint64_t now_us);
const char *breaker_state_name(enum breaker_state s);

#endif
