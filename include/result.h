/* result: a query's answer as v3 messages, built from typed cells. Layer 1, pure (no I/O).
 * The columns are a static table of {name, type}, from which result_begin writes the
 * RowDescription; each row is then written cell by cell, each cell one DataRow field, so
 * no value (a tab in a name, a newline in an error text) can spill into the next column.
 * The cells of a row must follow the columns in number and type: that is asserted, so a
 * row that drifts from its table fails the first time it is written, not in a dashboard.
 * The admin console writes its SHOW answers with it. */
#ifndef POOLER_RESULT_H
#define POOLER_RESULT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* A column's type, as the OID the RowDescription carries. Where PgBouncer has the column,
 * the type is the one it sends (int4 for SHOW POOLS' counts, numeric for SHOW STATS, int8
 * elsewhere), so that drivers and exporters read the same values as from PgBouncer. */
enum result_type {
	RESULT_BYTEA = 17,
	RESULT_INT8 = 20,
	RESULT_INT4 = 23,
	RESULT_TEXT = 25,
	RESULT_NUMERIC = 1700,
};

struct result_column {
	const char *name;
	enum result_type type;
};

/* A column table and its length, as result_begin takes them. */
#define RESULT_COLUMNS(table) (table), (int)ARRAY_LEN(table)

/* An answer being written into out. */
struct result {
	struct buf *out;
	const struct result_column *cols;
	int n_cols;
	int cell;   /* cells of the row in progress written so far; -1 between rows */
	size_t row; /* proto_begin mark of that row */
};

/* Write the RowDescription of the n columns cols (which must outlive r). */
void result_begin(struct result *r, struct buf *out, const struct result_column *cols, int n);
/* Start a row; end it with result_row_end once every column has its cell. */
void result_row(struct result *r);
void result_text(struct result *r, const char *s); /* NULL: SQL NULL */
/* A number in a column of any of the number types (int4, int8, numeric). */
void result_int(struct result *r, int64_t v);
void result_row_end(struct result *r);

#endif
