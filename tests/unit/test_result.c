/* Unit tests for result: the RowDescription from a column table, DataRows from typed
 * cells, one field per cell whatever the text holds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"
#include "result.h"

enum log_level log_min_level = LOG_ERROR;

static const struct result_column cols[] = {
    {"name", RESULT_TEXT}, {"port", RESULT_INT8}, {"note", RESULT_TEXT}};

/* Reads big-endian words from a message. */
struct reader {
	const uint8_t *p;
};

static uint32_t get32(struct reader *rd)
{
	const uint8_t *p = rd->p;
	rd->p += 4;
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint16_t get16(struct reader *rd)
{
	const uint8_t *p = rd->p;
	rd->p += 2;
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* The message at rd: checks its type, returns its end. */
static const uint8_t *message(struct reader *rd, char type)
{
	assert_int_equal(*rd->p, type);
	rd->p++;
	const uint8_t *start = rd->p;
	return start + get32(rd);
}

static void test_row_description_carries_names_and_types(void **state)
{
	struct buf b;
	struct result r;
	(void)state;

	buf_init(&b);
	result_begin(&r, &b, RESULT_COLUMNS(cols));
	struct reader rd = {buf_head(&b)};
	const uint8_t *end = message(&rd, 'T');
	assert_int_equal(get16(&rd), 3);
	const uint32_t oids[] = {25, 20, 25};
	const uint16_t lens[] = {0xffff, 8, 0xffff};
	for (int i = 0; i < 3; i++) {
		assert_string_equal((const char *)rd.p, cols[i].name);
		rd.p += strlen(cols[i].name) + 1;
		assert_int_equal(get32(&rd), 0); /* table */
		assert_int_equal(get16(&rd), 0); /* column number */
		assert_int_equal(get32(&rd), oids[i]);
		assert_int_equal(get16(&rd), lens[i]);
		assert_int_equal(get32(&rd), 0xffffffff); /* typmod */
		assert_int_equal(get16(&rd), 0);          /* text format */
	}
	assert_ptr_equal(rd.p, end);
	assert_ptr_equal(end, buf_head(&b) + buf_len(&b));
	buf_free(&b);
}

/* Check the next field of a DataRow against want (NULL: SQL NULL). */
static void field(struct reader *rd, const char *want)
{
	uint32_t len = get32(rd);
	if (want == NULL) {
		assert_int_equal(len, 0xffffffff);
		return;
	}
	assert_int_equal(len, strlen(want));
	assert_memory_equal(rd->p, want, len);
	rd->p += len;
}

static void test_each_cell_is_one_field(void **state)
{
	struct buf b;
	struct result r;
	(void)state;

	buf_init(&b);
	result_begin(&r, &b, RESULT_COLUMNS(cols));
	size_t described = buf_len(&b);
	result_row(&r);
	result_text(&r, "tab\there\tand\nthere");
	result_int(&r, INT64_MIN);
	result_text(&r, NULL);
	result_row_end(&r);
	result_row(&r);
	result_text(&r, "");
	result_int(&r, 6432);
	result_text(&r, "%s\\");
	result_row_end(&r);

	struct reader rd = {buf_head(&b) + described};
	const uint8_t *end = message(&rd, 'D');
	assert_int_equal(get16(&rd), 3);
	field(&rd, "tab\there\tand\nthere");
	field(&rd, "-9223372036854775808");
	field(&rd, NULL);
	assert_ptr_equal(rd.p, end);
	end = message(&rd, 'D');
	assert_int_equal(get16(&rd), 3);
	field(&rd, "");
	field(&rd, "6432");
	field(&rd, "%s\\");
	assert_ptr_equal(rd.p, end);
	assert_ptr_equal(end, buf_head(&b) + buf_len(&b));
	buf_free(&b);
}

/* PgBouncer's number types: int4 (typlen 4) and numeric (variable length) columns take
 * result_int as int8 columns do. */
static void test_int4_and_numeric_columns(void **state)
{
	static const struct result_column nums[] = {
	    {"items", RESULT_INT4}, {"xact_count", RESULT_NUMERIC}, {"key", RESULT_BYTEA}};
	struct buf b;
	struct result r;
	(void)state;

	buf_init(&b);
	result_begin(&r, &b, RESULT_COLUMNS(nums));
	struct reader rd = {buf_head(&b)};
	message(&rd, 'T');
	assert_int_equal(get16(&rd), 3);
	const uint32_t oids[] = {23, 1700, 17};
	const uint16_t lens[] = {4, 0xffff, 0xffff};
	for (int i = 0; i < 3; i++) {
		rd.p += strlen(nums[i].name) + 1 + 4 + 2;
		assert_int_equal(get32(&rd), oids[i]);
		assert_int_equal(get16(&rd), lens[i]);
		rd.p += 4 + 2;
	}
	size_t described = buf_len(&b);
	result_row(&r);
	result_int(&r, 12);
	result_int(&r, 9007199254740993);
	result_text(&r, NULL); /* NULL fits any type */
	result_row_end(&r);
	rd.p = buf_head(&b) + described;
	const uint8_t *end = message(&rd, 'D');
	assert_int_equal(get16(&rd), 3);
	field(&rd, "12");
	field(&rd, "9007199254740993");
	field(&rd, NULL);
	assert_ptr_equal(rd.p, end);
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_row_description_carries_names_and_types),
	    cmocka_unit_test(test_each_cell_is_one_field),
	    cmocka_unit_test(test_int4_and_numeric_columns),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
