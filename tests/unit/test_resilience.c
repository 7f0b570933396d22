/* Unit tests for backoff (full jitter, growth, cap) and breaker (open, recover, trial). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "backoff.h"
#include "breaker.h"
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_backoff_grows_to_cap_with_jitter),
	    cmocka_unit_test(test_breaker_opens_after_threshold_and_recovers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
