/* ratelimit: token buckets keyed by client address. Layer 1, pure (time is passed in).
 *
 * Each address has a bucket that refills at `rate` tokens per second up to `burst`. A
 * connection or a failed login takes a token; an empty bucket means the address is
 * throttled. A full bucket carries no information, so full buckets are dropped whenever
 * the table needs room: memory follows the addresses that are actually busy, up to a
 * fixed number of slots. When every slot holds a busy address, new addresses are let
 * through rather than throttled (fail open: the limit protects against a few noisy
 * sources, not against a spoofed flood, which the kernel's SYN handling meets). */
#ifndef POOLER_RATELIMIT_H
#define POOLER_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RATELIMIT_KEY 48 /* room for any IPv6 text form */

struct rl_bucket {
	char key[RATELIMIT_KEY]; /* "" = free slot */
	double tokens;
	uint64_t last_us; /* when tokens was last brought up to date */
};

struct ratelimit {
	struct rl_bucket *slots;
	size_t cap;  /* power of two */
	size_t used; /* slots holding a key */
	double rate; /* tokens per second; 0 = no limit */
	double burst;
	uint64_t throttled; /* refusals, for metrics */
};

void ratelimit_init(struct ratelimit *rl, size_t cap);
/* Change the rate (reload); existing buckets keep their tokens, capped at the new burst. */
void ratelimit_set(struct ratelimit *rl, double rate, double burst);
void ratelimit_free(struct ratelimit *rl);

/* Take one token for key; false (and counted) when its bucket is empty. */
bool ratelimit_take(struct ratelimit *rl, const char *key, uint64_t now_us);
/* True when key holds at least one token; takes nothing. */
bool ratelimit_allows(struct ratelimit *rl, const char *key, uint64_t now_us);

/* "10.0.0.7:51234" / "::1:51234" -> "10.0.0.7" / "::1" (the address without its port). */
void ratelimit_host(const char *addr_port, char *out, size_t len);
/* True when addr (no port) matches an entry of a comma-separated list of addresses and
 * CIDR blocks ("10.0.0.0/8, ::1"). */
bool ratelimit_listed(const char *list, const char *addr);

#endif
