/* Unit tests for peer's cancel key layout: what the pid carries comes back out, and the
 * pid stays a positive 32-bit number whatever the random bits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "log.h"
#include "peer.h"

enum log_level log_min_level = LOG_ERROR;

static void test_layout(void **state)
{
	uint32_t pid, key;
	int peer_id, worker;
	(void)state;

	peer_key_make(3, 7, 0x12345678ab000000ULL, &pid, &key);
	assert_int_equal(pid, 3u << 16 | 7u << 8 | 0xab);
	assert_int_equal(key, 0x12345678u);
	peer_key_read(pid, &peer_id, &worker);
	assert_int_equal(peer_id, 3);
	assert_int_equal(worker, 7);
}

static void test_extremes(void **state)
{
	static const int ids[] = {0, 1, 2, 255, 256, 8191, CONFIG_PEER_ID_MAX};
	static const int workers[] = {0, 1, 128, PEER_WORKERS - 1};
	uint64_t rng = 0x9e3779b97f4a7c15ULL;
	(void)state;

	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
		for (size_t j = 0; j < sizeof(workers) / sizeof(workers[0]); j++) {
			uint32_t pid, key;
			int peer_id, worker;
			rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
			peer_key_make(ids[i], workers[j], rng | 0xff000000, &pid, &key);
			assert_true(pid < 1u << 30); /* bits 30 and 31 clear */
			assert_int_equal(pid & 0xff, 0xff);
			assert_int_equal(key, (uint32_t)(rng >> 32));
			peer_key_read(pid, &peer_id, &worker);
			assert_int_equal(peer_id, ids[i]);
			assert_int_equal(worker, workers[j]);
		}
}

/* With peering off on worker 0 only the random byte is left: never a pid of 0. */
static void test_never_zero(void **state)
{
	uint32_t pid, key;
	(void)state;

	peer_key_make(0, 0, 0x1234567800ffffffULL, &pid, &key);
	assert_int_equal(pid, 1);
	peer_key_make(0, 0, 0x1234567802000000ULL, &pid, &key);
	assert_int_equal(pid, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_layout),
	    cmocka_unit_test(test_extremes),
	    cmocka_unit_test(test_never_zero),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
