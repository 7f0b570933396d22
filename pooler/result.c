/* result: see include/result.h. */
#include "result.h"

#include <assert.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "proto.h"

/* pg_type.typlen: fixed sizes, 0xffff (-1) for variable-length types. */
static uint16_t type_len(enum result_type type)
{
	switch (type) {
	case RESULT_INT8:
		return 8;
	case RESULT_INT4:
		return 4;
	default:
		return 0xffff;
	}
}

void result_begin(struct result *r, struct buf *out, const struct result_column *cols, int n)
{
	*r = (struct result){.out = out, .cols = cols, .n_cols = n, .cell = -1};
	size_t m = proto_begin(out, 'T');
	buf_put_u16(out, (uint16_t)n);
	for (int i = 0; i < n; i++) {
		buf_put_str(out, cols[i].name);
		buf_put_u32(out, 0); /* table oid */
		buf_put_u16(out, 0); /* column number */
		buf_put_u32(out, cols[i].type);
		buf_put_u16(out, type_len(cols[i].type));
		buf_put_u32(out, 0xffffffff); /* typmod */
		buf_put_u16(out, 0);          /* text format */
	}
	proto_end(out, m);
}

void result_row(struct result *r)
{
	assert(r->cell < 0);
	r->row = proto_begin(r->out, 'D');
	buf_put_u16(r->out, (uint16_t)r->n_cols);
	r->cell = 0;
}

static bool is_number(enum result_type type)
{
	return type == RESULT_INT8 || type == RESULT_INT4 || type == RESULT_NUMERIC;
}

/* The next field of the row; type is its column's, or 0 for a NULL of any type. */
static void put_cell(struct result *r, enum result_type type, const char *text, size_t len)
{
	assert(r->cell >= 0 && r->cell < r->n_cols);
	assert(type == 0 || r->cols[r->cell].type == type ||
	       (type == RESULT_INT8 && is_number(r->cols[r->cell].type)));
	r->cell++;
	if (text == NULL) {
		buf_put_u32(r->out, 0xffffffff);
		return;
	}
	buf_put_u32(r->out, (uint32_t)len);
	buf_put(r->out, text, len);
}

void result_text(struct result *r, const char *s)
{
	if (s == NULL)
		put_cell(r, 0, NULL, 0);
	else
		put_cell(r, RESULT_TEXT, s, strlen(s));
}

void result_int(struct result *r, int64_t v)
{
	char text[24];
	int n = snprintf(text, sizeof(text), "%" PRId64, v);
	put_cell(r, RESULT_INT8, text, (size_t)n);
}

void result_row_end(struct result *r)
{
	assert(r->cell == r->n_cols);
	proto_end(r->out, r->row);
	r->cell = -1;
}
