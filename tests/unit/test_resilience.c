/* Unit tests for backoff (full jitter, growth, cap), breaker (open, recover, trial) and
 * ratelimit (token buckets per address, bounded table, allow-lists). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "backoff.h"
#include "breaker.h"
#include "ratelimit.h"
#include <stdio.h>
#include "log.h"

enum log_level log_min_level = LOG_ERROR;

static void test_backoff_grows_to_cap_with_jitter(void **state)
{
	struct backoff b;
	uint64_t rng = 12345;
	(void)state;

	backoff_init(&b, 100, 1000);
	uint32_t caps[] = {100, 200, 400, 800, 1000, 1000, 1000};
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		/* many draws at this attempt stay within [0, cap] and are not all alike */
		uint32_t lo = UINT32_MAX, hi = 0;
		for (int k = 0; k < 200; k++) {
			struct backoff t = b;
			uint32_t d = backoff_next(&t, &rng);
			assert_true(d <= caps[i]);
			lo = d < lo ? d : lo;
			hi = d > hi ? d : hi;
		}
		assert_true(hi > lo);
		assert_true(hi > caps[i] / 2); /* full jitter reaches the top half */
		backoff_next(&b, &rng);
	}
	backoff_reset(&b);
	for (int k = 0; k < 50; k++) {
		struct backoff t = b;
		assert_true(backoff_next(&t, &rng) <= 100);
	}
}

static void test_breaker_opens_after_threshold_and_recovers(void **state)
{
	struct breaker b;
	(void)state;

	breaker_init(&b, 3, 1000);
	assert_true(breaker_allow(&b, 0));
	assert_false(breaker_failure(&b, 10));
	assert_false(breaker_failure(&b, 20));
	breaker_success(&b); /* a success resets the count */
	assert_false(breaker_failure(&b, 30));
	assert_false(breaker_failure(&b, 40));
	assert_true(breaker_failure(&b, 50)); /* third in a row opens */
	assert_int_equal(b.state, BREAKER_OPEN);
	assert_false(breaker_allow(&b, 50 + 999 * 1000));
	/* after recovery_ms: one trial */
	assert_true(breaker_allow(&b, 50 + 1000 * 1000));
	assert_int_equal(b.state, BREAKER_HALF_OPEN);
	assert_false(breaker_allow(&b, 50 + 1000 * 1000 + 1));
	/* the trial fails: open again, for another recovery period */
	assert_true(breaker_failure(&b, 2000000));
	assert_false(breaker_allow(&b, 2000000 + 500 * 1000));
	assert_true(breaker_allow(&b, 3000000));
	breaker_success(&b);
	assert_int_equal(b.state, BREAKER_CLOSED);
	assert_true(breaker_allow(&b, 3000001));
	assert_string_equal(breaker_state_name(b.state), "closed");
	assert_true(b.transitions >= 5);
}

static void test_ratelimit_buckets(void **state)
{
	struct ratelimit rl;
	(void)state;

	ratelimit_init(&rl, 64);
	assert_true(ratelimit_take(&rl, "10.0.0.1", 0)); /* rate 0: no limit */
	ratelimit_set(&rl, 5, 10);                       /* 5 per second, bursts of 10 */
	for (int i = 0; i < 10; i++)
		assert_true(ratelimit_take(&rl, "10.0.0.1", 1000));
	assert_false(ratelimit_take(&rl, "10.0.0.1", 1000));
	assert_false(ratelimit_allows(&rl, "10.0.0.1", 1000));
	assert_int_equal(rl.throttled, 2);
	/* another address is untouched */
	assert_true(ratelimit_take(&rl, "10.0.0.2", 1000));
	/* 200 ms later one token is back, and only one */
	assert_true(ratelimit_allows(&rl, "10.0.0.1", 201000));
	assert_true(ratelimit_take(&rl, "10.0.0.1", 201000));
	assert_false(ratelimit_take(&rl, "10.0.0.1", 201000));
	/* an unknown address is allowed without taking a slot */
	size_t used = rl.used;
	assert_true(ratelimit_allows(&rl, "10.9.9.9", 201000));
	assert_int_equal(rl.used, used);
	ratelimit_free(&rl);
}

static void test_ratelimit_table_stays_bounded(void **state)
{
	struct ratelimit rl;
	char key[32];
	(void)state;

	ratelimit_init(&rl, 16);
	ratelimit_set(&rl, 1, 2);
	/* addresses that came once and went refill and make room for new ones */
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "10.1.%d.%d", i / 256, i % 256);
		assert_true(ratelimit_take(&rl, key, (uint64_t)i * 2000000));
		assert_true(rl.used <= rl.cap);
	}
	assert_int_equal(rl.cap, 16);
	/* a table full of busy addresses lets newcomers through instead of refusing them */
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "10.2.0.%d", i);
		ratelimit_take(&rl, key, 5000000000ULL);
		ratelimit_take(&rl, key, 5000000000ULL);
	}
	assert_true(rl.used <= rl.cap);
	assert_true(ratelimit_take(&rl, "10.3.0.1", 5000000000ULL));
	ratelimit_free(&rl);
}

static void test_ratelimit_addresses(void **state)
{
	char host[64];
	(void)state;

	ratelimit_host("10.0.0.7:51234", host, sizeof(host));
	assert_string_equal(host, "10.0.0.7");
	ratelimit_host("::1:6000", host, sizeof(host));
	assert_string_equal(host, "::1");
	assert_true(ratelimit_listed("10.0.0.0/8, ::1", "10.200.3.4"));
	assert_true(ratelimit_listed("10.0.0.0/8, ::1", "::1"));
	assert_false(ratelimit_listed("10.0.0.0/8, ::1", "11.0.0.1"));
	assert_true(ratelimit_listed("127.0.0.2", "127.0.0.2"));
	assert_false(ratelimit_listed("127.0.0.2", "127.0.0.1"));
	assert_true(ratelimit_listed("fd00::/8", "fd12::1"));
	assert_false(ratelimit_listed("fd00::/8", "10.0.0.1"));
	assert_false(ratelimit_listed("10.0.0.0/99, junk", "10.0.0.1"));
	assert_false(ratelimit_listed(NULL, "10.0.0.1"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_backoff_grows_to_cap_with_jitter),
	    cmocka_unit_test(test_breaker_opens_after_threshold_and_recovers),
	    cmocka_unit_test(test_ratelimit_buckets),
	    cmocka_unit_test(test_ratelimit_table_stays_bounded),
	    cmocka_unit_test(test_ratelimit_addresses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
