/* util: see include/util.h. */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

uint64_t util_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

size_t util_strlcpy(char *dst, const char *src, size_t size)
{
	size_t len = strlen(src);
	if (size > 0) {
		size_t n = len < size - 1 ? len : size - 1;
		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}

bool util_parse_int(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	if (s == NULL || *s == '\0')
		return false;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

char *util_trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

uint64_t util_rand64(uint64_t *state)
{
	uint64_t x = *state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545F4914F6CDD1DULL;
}

bool util_random_bytes(void *buf, size_t len)
{
	unsigned char *p = buf;

	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		p += n;
		len -= (size_t)n;
	}
	return true;
}

bool util_split(const char *list, bool (*fn)(const char *name, void *arg), void *arg)
{
	char *copy = util_strdup(list), *save = NULL;
	bool ok = true;

	for (char *t = strtok_r(copy, ", \t", &save); t && ok; t = strtok_r(NULL, ", \t", &save))
		ok = fn(t, arg);
	free(copy);
	return ok;
}

char *util_strdup(const char *s)
{
	char *d = strdup(s);
	if (d == NULL) {
		fputs("pooler: out of memory\n", stderr);
		abort();
	}
	return d;
}

void *util_calloc(size_t n, size_t size)
{
	void *p = calloc(n, size);
	if (p == NULL) {
		fputs("pooler: out of memory\n", stderr);
		abort();
	}
	return p;
}

void *util_aligned_calloc(size_t n, size_t size)
{
	void *p = NULL;
	if (posix_memalign(&p, 64, n * size) != 0) {
		fputs("pooler: out of memory\n", stderr);
		abort();
	}
	memset(p, 0, n * size);
	return p;
}
