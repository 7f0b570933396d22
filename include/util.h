/* util: intrusive lists, a cached clock, small string helpers (list parsing among them) and
 * a jittered RNG.
 * Layer 0: depends on nothing else in the project. */
#ifndef POOLER_UTIL_H
#define POOLER_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POOLER_VERSION "0.1.0"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define MUST_USE __attribute__((warn_unused_result))

/* A circular doubly linked list; a struct joins a list by embedding a node. */
struct list {
	struct list *next;
	struct list *prev;
};

static inline void list_init(struct list *l)
{
	l->next = l->prev = l;
}
static inline bool list_empty(const struct list *l)
{
	return l->next == l;
}

static inline void list_append(struct list *head, struct list *n)
{
	n->prev = head->prev;
	n->next = head;
	head->prev->next = n;
	head->prev = n;
}

static inline void list_del(struct list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->next = n->prev = n;
}

/* dst (empty) takes every entry of src, which is left empty. */
static inline void list_take(struct list *dst, struct list *src)
{
	list_init(dst);
	if (list_empty(src))
		return;
	dst->next = src->next;
	dst->prev = src->prev;
	dst->next->prev = dst;
	dst->prev->next = dst;
	list_init(src);
}

static inline struct list *list_pop(struct list *head)
{
	struct list *n = head->next;
	if (n == head)
		return NULL;
	list_del(n);
	return n;
}

#define list_for_each_safe(pos, tmp, head)                                                         \
	for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head);                           \
	     (pos) = (tmp), (tmp) = (pos)->next)

/* Monotonic microseconds. */
uint64_t util_now_us(void);

/* Microseconds from then to now; 0 when then is the later one (two reads of the clock that
 * are not in order: a worker's cached now against a stamp another read took). */
static inline uint64_t util_elapsed_us(uint64_t now, uint64_t then)
{
	return now > then ? now - then : 0;
}

/* Copy at most size-1 bytes and always terminate; returns strlen(src). */
size_t util_strlcpy(char *dst, const char *src, size_t size);

/* Parse a whole string as a base-10 integer within [min, max]. */
bool util_parse_int(const char *s, long min, long max, long *out) MUST_USE;

/* Trim ASCII whitespace at both ends, in place; returns s. */
char *util_trim(char *s);

/* xorshift64* generator; state must be non-zero. */
uint64_t util_rand64(uint64_t *state);

/* Fill buf with cryptographically strong random bytes; false when the kernel refuses. */
bool util_random_bytes(void *buf, size_t len) MUST_USE;

/* Call fn on each name of a list written "a, b c" (commas, spaces and tabs separate; empty
 * names are skipped), in order. Stops at the first fn that returns false and returns false;
 * true when fn took every name, or there was none. */
bool util_split(const char *list, bool (*fn)(const char *name, void *arg), void *arg);

/* strdup that aborts on allocation failure (config and login paths only). */
/* FNV-1a, the one hash of the daemon: util_fnv1a(UTIL_FNV1A_INIT, p, n) hashes n bytes;
 * util_fnv1a_step adds one byte to h. */
#define UTIL_FNV1A_INIT 1469598103934665603ULL
static inline uint64_t util_fnv1a_step(uint64_t h, uint8_t byte)
{
	return (h ^ byte) * 1099511628211ULL;
}
static inline uint64_t util_fnv1a(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		h = util_fnv1a_step(h, b[i]);
	return h;
}

char *util_strdup(const char *s);
void *util_calloc(size_t n, size_t size);
/* Zeroed, on a cache line of its own (64 bytes): for what each thread writes. */
void *util_aligned_calloc(size_t n, size_t size);

#endif
