/* buf: see include/buf.h. */
#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b)
{
	memset(b, 0, sizeof(*b));
}

void buf_free(struct buf *b)
{
	free(b->data);
	buf_init(b);
}

void buf_reset(struct buf *b)
{
	b->start = b->end = 0;
}

uint8_t *buf_reserve(struct buf *b, size_t n)
{
	size_t len = buf_len(b);

	if (b->cap - b->end >= n)
		return b->data + b->end;
	if (b->start > 0) {
		memmove(b->data, b->data + b->start, len);
		b->start = 0;
		b->end = len;
		if (b->cap - b->end >= n)
			return b->data + b->end;
	}
	size_t cap = b->cap ? b->cap : 256;
	while (cap - len < n)
		cap *= 2;
	uint8_t *p = realloc(b->data, cap);
	if (p == NULL)
		return NULL;
	b->data = p;
	b->cap = cap;
	return b->data + b->end;
}

void buf_consume(struct buf *b, size_t n)
{
	b->start += n;
	if (b->start >= b->end)
		b->start = b->end = 0;
}

void buf_put(struct buf *b, const void *p, size_t n)
{
	if (n == 0 || p == NULL)
		return;
	uint8_t *dst = buf_reserve(b, n);
	if (dst == NULL) {
		fputs("pooler: out of memory\n", stderr);
		abort();
	}
	memcpy(dst, p, n);
	b->end += n;
}

void buf_put_u8(struct buf *b, uint8_t v)
{
	buf_put(b, &v, 1);
}

void buf_put_u16(struct buf *b, uint16_t v)
{
	uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
	buf_put(b, x, 2);
}

void buf_put_u32(struct buf *b, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	buf_put(b, x, 4);
}

void buf_put_str(struct buf *b, const char *s)
{
	buf_put(b, s, strlen(s) + 1);
}

bool buf_splice(struct buf *b, size_t off, size_t old_len, const void *data, size_t new_len)
{
	size_t tail = buf_len(b) - off - old_len;

	if (new_len > old_len && buf_reserve(b, new_len - old_len) == NULL)
		return false;
	uint8_t *at = b->data + b->start + off;
	memmove(at + new_len, at + old_len, tail);
	memcpy(at, data, new_len);
	b->end = b->end + new_len - old_len;
	return true;
}
