/* Unit tests for histogram: which bucket a duration lands in, at and around the bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "histogram.h"
#include "log.h"

enum log_level log_min_level = LOG_ERROR;

static int bucket_of(uint64_t micros)
{
	struct histogram h = {0};
	histogram_observe(&h, micros);
	for (int i = 0; i <= HISTOGRAM_BUCKETS; i++)
		if (h.counts[i] == 1)
			return i;
	return -1;
}

static void test_bounds_are_inclusive_upper_limits(void **state)
{
	(void)state;
	assert_int_equal(bucket_of(0), 0);
	assert_int_equal(bucket_of(100), 0);  /* 0.0001 s is <= the first bound */
	assert_int_equal(bucket_of(101), 1);  /* just above it */
	assert_int_equal(bucket_of(1000), 2); /* le="0.001" */
	assert_int_equal(bucket_of(30000), 7);
	assert_int_equal(bucket_of(5000000), HISTOGRAM_BUCKETS - 1);
	assert_int_equal(bucket_of(5000001), HISTOGRAM_BUCKETS); /* +Inf */
}

static void test_count_and_sum_add_up(void **state)
{
	struct histogram h = {0};
	(void)state;

	for (uint64_t us = 1; us <= 1000; us++)
		histogram_observe(&h, us);
	assert_int_equal(h.count, 1000);
	uint64_t total = 0;
	for (int i = 0; i <= HISTOGRAM_BUCKETS; i++)
		total += h.counts[i];
	assert_int_equal(total, 1000);
	assert_int_equal(h.counts[0], 100);            /* 1..100 us */
	assert_true(h.sum > 0.5004 && h.sum < 0.5006); /* 500500 us */
}

static void test_bounds_grow(void **state)
{
	(void)state;
	for (int i = 1; i < HISTOGRAM_BUCKETS; i++)
		assert_true(histogram_bounds[i] > histogram_bounds[i - 1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bounds_are_inclusive_upper_limits),
	    cmocka_unit_test(test_count_and_sum_add_up),
	    cmocka_unit_test(test_bounds_grow),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
