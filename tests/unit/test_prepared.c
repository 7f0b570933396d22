/* Unit tests for prepared: statement identity by text and types, the per-server LRU
 * cache, and the queue of Parse/Close answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"
#include "prepared.h"

enum log_level log_min_level = LOG_ERROR;

/* query text with its NUL, then a parameter count of 0 */
static const uint8_t q1[] = "select $1::int\0\0";
static const uint8_t q2[] = "select $1::text\0\0";

static void test_same_text_same_statement_whatever_the_name(void **state)
{
	struct client_stmts a = {0}, b = {0};
	(void)state;

	struct pstmt *p = pstmts_add(&a, "P1", q1, sizeof(q1) - 1);
	struct pstmt *s = pstmts_add(&b, "S_1", q1, sizeof(q1) - 1);
	assert_int_equal(p->hash, s->hash);
	assert_int_not_equal(pstmts_add(&b, "S_2", q2, sizeof(q2) - 1)->hash, p->hash);

	char name[PREPARED_NAME_LEN];
	prepared_server_name(p->hash, name);
	assert_int_equal(strlen(name), PREPARED_NAME_LEN - 1);
	size_t len;
	uint8_t *m = prepared_parse_message(p, &len);
	assert_non_null(m);
	assert_int_equal(m[0], 'P');
	assert_int_equal(len, 5 + PREPARED_NAME_LEN + sizeof(q1) - 1);
	assert_string_equal((const char *)m + 5, name);
	assert_memory_equal(m + 5 + PREPARED_NAME_LEN, q1, sizeof(q1) - 1);
	free(m);

	/* replacing a name with another text changes its statement */
	uint64_t before = pstmts_find(&a, "P1")->hash;
	assert_int_not_equal(pstmts_add(&a, "P1", q2, sizeof(q2) - 1)->hash, before);
	pstmts_remove(&a, "P1");
	assert_null(pstmts_find(&a, "P1"));
	pstmts_free(&a);
	pstmts_free(&b);
}

static void test_close_message(void **state)
{
	uint8_t m[64];
	(void)state;

	size_t n = prepared_close_message(PREPARED_NO_NAME, m, sizeof(m));
	assert_int_equal(n, 6 + strlen(PREPARED_NO_NAME) + 1);
	assert_int_equal(m[0], 'C');
	assert_int_equal(m[4], n - 1);
	assert_int_equal(m[5], 'S');
	assert_int_equal(prepared_close_message(PREPARED_NO_NAME, m, 8), 0);
}

static void test_cache_evicts_least_recently_used(void **state)
{
	struct stmt_cache c = {0};
	(void)state;

	for (uint64_t h = 1; h <= 4; h++)
		stmt_cache_add(&c, h);
	assert_true(stmt_cache_touch(&c, 1)); /* 2 is now the oldest */
	assert_int_equal(stmt_cache_evict(&c, 0), 2);
	assert_false(stmt_cache_has(&c, 2));
	assert_int_equal(stmt_cache_evict(&c, 3), 4); /* 3 is kept */
	assert_int_equal(c.n, 2);
	stmt_cache_add(&c, 0); /* the unnamed statement is never cached */
	assert_int_equal(c.n, 2);
	stmt_cache_remove(&c, 1);
	assert_int_equal(stmt_cache_evict(&c, 0), 3);
	assert_int_equal(stmt_cache_evict(&c, 0), 0);
	stmt_cache_free(&c);
}

static void test_reply_queue_keeps_order_and_bounds(void **state)
{
	static struct reply_queue q;
	struct reply_entry e;
	(void)state;

	assert_null(reply_queue_peek(&q));
	assert_true(reply_queue_push(&q, '1', 7, 0, REPLY_PASS));
	assert_true(reply_queue_push(&q, '3', 7, 0, REPLY_CLOSE_PARSE));
	assert_int_equal(reply_queue_peek(&q)->type, '1');
	assert_true(reply_queue_pop(&q, &e));
	assert_int_equal(e.hash, 7);
	assert_true(reply_queue_pop(&q, &e));
	assert_int_equal(e.kind, REPLY_CLOSE_PARSE);
	assert_false(reply_queue_pop(&q, &e));
	/* a long pipeline: the ring grows (also while wrapped) and keeps the order */
	assert_true(reply_queue_push(&q, '1', 1, 1, REPLY_PASS));
	assert_true(reply_queue_pop(&q, &e));
	for (int i = 0; i < 5000; i++)
		assert_true(reply_queue_push(&q, '1', (uint64_t)i + 1, 1, REPLY_PARSE_DROP));
	for (int i = 0; i < 5000; i++) {
		assert_true(reply_queue_pop(&q, &e));
		assert_int_equal(e.hash, (uint64_t)i + 1);
	}
	assert_false(reply_queue_pop(&q, &e));
	free(q.items);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_same_text_same_statement_whatever_the_name),
	    cmocka_unit_test(test_close_message),
	    cmocka_unit_test(test_cache_evicts_least_recently_used),
	    cmocka_unit_test(test_reply_queue_keeps_order_and_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
