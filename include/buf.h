/* buf: a growable byte buffer with a read position, for socket I/O and message building.
 * Layer 0. Bytes live in data[start, end). */
#ifndef POOLER_BUF_H
#define POOLER_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct buf {
	uint8_t *data;
	size_t start; /* first unread byte */
	size_t end;   /* one past the last written byte */
	size_t cap;
};

void buf_init(struct buf *b);
void buf_free(struct buf *b);

static inline size_t buf_len(const struct buf *b)
{
	return b->end - b->start;
}
static inline uint8_t *buf_head(const struct buf *b)
{
	return b->data + b->start;
}

/* Make room for at least n more bytes at the end; returns the write pointer or NULL
 * when memory runs out. Moves unread bytes to the front first when that suffices. */
uint8_t *buf_reserve(struct buf *b, size_t n) MUST_USE;
void buf_consume(struct buf *b, size_t n);
/* Replace old_len bytes at offset off (from the read position) with new_len bytes. */
bool buf_splice(struct buf *b, size_t off, size_t old_len, const void *data,
                size_t new_len) MUST_USE;
void buf_reset(struct buf *b);

/* Appenders used by message builders; they abort on out-of-memory. */
void buf_put(struct buf *b, const void *p, size_t n);
void buf_put_u8(struct buf *b, uint8_t v);
void buf_put_u16(struct buf *b, uint16_t v);
void buf_put_u32(struct buf *b, uint32_t v);
void buf_put_str(struct buf *b, const char *s); /* with its terminating NUL */

#endif
