/* Unit tests for tls: the client_tls_protocols parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <openssl/ssl.h>

#include "log.h"
#include "tls.h"

enum log_level log_min_level = LOG_ERROR;

static void expect_range(const char *s, int lo, int hi)
{
	int min = -1, max = -1;

	assert_true(tls_parse_protocols(s, &min, &max));
	assert_int_equal(min, lo);
	assert_int_equal(max, hi);
}

static void test_protocols(void **state)
{
	int min, max;
	(void)state;

	expect_range("secure", TLS1_2_VERSION, TLS1_3_VERSION);
	expect_range("all", TLS1_VERSION, TLS1_3_VERSION);
	expect_range("tlsv1.3", TLS1_3_VERSION, TLS1_3_VERSION);
	expect_range("tlsv1.2, tlsv1.3", TLS1_2_VERSION, TLS1_3_VERSION);
	expect_range("TLSv1.1,tlsv1.2", TLS1_1_VERSION, TLS1_2_VERSION);
	expect_range("tlsv1.0", TLS1_VERSION, TLS1_VERSION);
	assert_false(tls_parse_protocols("sslv3", &min, &max));
	assert_false(tls_parse_protocols("tlsv1.2,bogus", &min, &max));
	assert_false(tls_parse_protocols("", &min, &max));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_protocols),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
