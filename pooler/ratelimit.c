/* ratelimit: see include/ratelimit.h. */
#include "ratelimit.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void ratelimit_init(struct ratelimit *rl, size_t cap)
{
	size_t n = 16;
	while (n < cap)
		n *= 2;
	memset(rl, 0, sizeof(*rl));
	rl->cap = n;
	rl->slots = util_calloc(n, sizeof(*rl->slots));
}

void ratelimit_set(struct ratelimit *rl, double rate, double burst)
{
	rl->rate = rate;
	rl->burst = burst < 1 ? 1 : burst;
}

void ratelimit_free(struct ratelimit *rl)
{
	free(rl->slots);
	rl->slots = NULL;
}

static size_t hash(const char *s)
{
	return (size_t)util_fnv1a(UTIL_FNV1A_INIT, s, strlen(s));
}

static void refill(const struct ratelimit *rl, struct rl_bucket *b, uint64_t now_us)
{
	if (now_us > b->last_us) {
		b->tokens += (double)(now_us - b->last_us) / 1e6 * rl->rate;
		if (b->tokens > rl->burst)
			b->tokens = rl->burst;
	}
	b->last_us = now_us;
}

/* Drop the buckets that have refilled: they say nothing a missing bucket would not. Open
 * addressing has no cheap delete, so the table is rebuilt. */
static void purge(struct ratelimit *rl, uint64_t now_us)
{
	struct rl_bucket *old = rl->slots;
	size_t mask = rl->cap - 1;

	rl->slots = util_calloc(rl->cap, sizeof(*rl->slots));
	rl->used = 0;
	for (size_t i = 0; i < rl->cap; i++) {
		struct rl_bucket *b = &old[i];
		if (b->key[0] == '\0')
			continue;
		refill(rl, b, now_us);
		if (b->tokens >= rl->burst)
			continue;
		size_t j = hash(b->key) & mask;
		while (rl->slots[j].key[0] != '\0')
			j = (j + 1) & mask;
		rl->slots[j] = *b;
		rl->used++;
	}
	free(old);
}

/* The bucket for key, created full; NULL when the table is full of busy addresses. */
static struct rl_bucket *find(struct ratelimit *rl, const char *key, bool create, uint64_t now_us)
{
	size_t mask = rl->cap - 1;
	size_t i = hash(key) & mask;

	for (; rl->slots[i].key[0] != '\0'; i = (i + 1) & mask)
		if (strcmp(rl->slots[i].key, key) == 0)
			return &rl->slots[i];
	if (!create)
		return NULL;
	if (rl->used * 4 >= rl->cap * 3) { /* keep probes short */
		purge(rl, now_us);
		if (rl->used * 4 >= rl->cap * 3)
			return NULL;
		for (i = hash(key) & mask; rl->slots[i].key[0] != '\0'; i = (i + 1) & mask)
			;
	}
	struct rl_bucket *b = &rl->slots[i];
	util_strlcpy(b->key, key, sizeof(b->key));
	b->tokens = rl->burst;
	b->last_us = now_us;
	rl->used++;
	return b;
}

/* Whether key has a token; take spends it (and makes the key's bucket if it has none). */
static bool has_token(struct ratelimit *rl, const char *key, bool take, uint64_t now_us)
{
	if (rl->rate <= 0)
		return true;
	struct rl_bucket *b = find(rl, key, take, now_us);
	if (b == NULL)
		return true;
	refill(rl, b, now_us);
	if (b->tokens < 1) {
		rl->throttled++;
		return false;
	}
	if (take)
		b->tokens -= 1;
	return true;
}

bool ratelimit_take(struct ratelimit *rl, const char *key, uint64_t now_us)
{
	return has_token(rl, key, true, now_us);
}

bool ratelimit_allows(struct ratelimit *rl, const char *key, uint64_t now_us)
{
	return has_token(rl, key, false, now_us);
}

void ratelimit_host(const char *addr_port, char *out, size_t len)
{
	const char *colon = strrchr(addr_port, ':');
	size_t n = colon ? (size_t)(colon - addr_port) : strlen(addr_port);

	if (n >= len)
		n = len - 1;
	memcpy(out, addr_port, n);
	out[n] = '\0';
}

/* Does addr fall in "net" or "net/bits"? */
static bool in_block(const char *entry, const char *addr)
{
	char net[64];
	const char *slash = strchr(entry, '/');
	size_t n = slash ? (size_t)(slash - entry) : strlen(entry);
	uint8_t a[16], b[16];
	int family, bits, max;

	if (n >= sizeof(net))
		return false;
	memcpy(net, entry, n);
	net[n] = '\0';
	family = strchr(net, ':') ? AF_INET6 : AF_INET;
	max = family == AF_INET6 ? 128 : 32;
	if ((strchr(addr, ':') ? AF_INET6 : AF_INET) != family || inet_pton(family, net, a) != 1 ||
	    inet_pton(family, addr, b) != 1)
		return false;
	bits = max;
	if (slash) {
		char *end;
		long v = strtol(slash + 1, &end, 10);
		if (*end != '\0' || v < 0 || v > max)
			return false;
		bits = (int)v;
	}
	for (int i = 0; i < bits; i++) {
		uint8_t bit = (uint8_t)(0x80 >> (i % 8));
		if ((a[i / 8] & bit) != (b[i / 8] & bit))
			return false;
	}
	return true;
}

bool ratelimit_listed(const char *list, const char *addr)
{
	char entry[80];
	const char *p = list;

	if (list == NULL)
		return false;
	while (*p) {
		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		const char *e = p;
		while (*e && *e != ',' && *e != ' ' && *e != '\t')
			e++;
		size_t n = (size_t)(e - p);
		if (n > 0 && n < sizeof(entry)) {
			memcpy(entry, p, n);
			entry[n] = '\0';
			if (in_block(entry, addr))
				return true;
		}
		p = e;
	}
	return false;
}
