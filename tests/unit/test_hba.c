/* Unit tests for hba: the auth_hba_file parser and the first-match rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hba.h"
#include "log.h"

enum log_level log_min_level = LOG_ERROR;

static const char rules[] = "# comment line\n"
                            "local   all        all                   trust\n"
                            "hostssl all        certuser  all         cert\n"
                            "host    pooler     admin     127.0.0.1/32 md5   # admin console\n"
                            "host    app,other  app,bob   10.0.0.0/8  scram-sha-256\n"
                            "hostnossl all      mallory   all         reject\n"
                            "host    all        all       ::1/128     scram-sha-256\n"
                            "host    all        all       192.168.1.7 trust\n";

static struct hba *parse_ok(const char *text)
{
	char err[256] = "";
	struct hba *h = hba_parse(text, "hba.conf", err, sizeof(err));
	if (h == NULL)
		fail_msg("parse failed: %s", err);
	return h;
}

static void test_first_match_decides(void **state)
{
	struct hba *h = parse_ok(rules);
	int line;
	(void)state;

	assert_int_equal(h->n_rules, 7);
	assert_int_equal(hba_match(h, NULL, false, "app", "anyone", &line), HBA_TRUST);
	assert_int_equal(line, 2);
	assert_int_equal(hba_match(h, "10.1.2.3", false, "app", "bob", &line), HBA_SCRAM);
	assert_int_equal(line, 5);
	assert_int_equal(hba_match(h, "10.1.2.3", false, "other", "app", &line), HBA_SCRAM);
	assert_int_equal(hba_match(h, "127.0.0.1", false, "pooler", "admin", &line), HBA_MD5);
	assert_int_equal(hba_match(h, "192.168.1.7", false, "app", "x", &line), HBA_TRUST);
	assert_int_equal(hba_match(h, "::1", true, "app", "x", &line), HBA_SCRAM);
	assert_int_equal(line, 7);
	hba_free(h);
}

static void test_no_match_and_reject(void **state)
{
	struct hba *h = parse_ok(rules);
	int line;
	(void)state;

	/* outside every network, another database, a user not listed */
	assert_int_equal(hba_match(h, "11.0.0.1", false, "app", "bob", &line), HBA_NO_MATCH);
	assert_int_equal(line, 0);
	assert_int_equal(hba_match(h, "10.0.0.1", false, "third", "bob", &line), HBA_NO_MATCH);
	assert_int_equal(hba_match(h, "10.0.0.1", false, "app", "carol", &line), HBA_NO_MATCH);
	assert_int_equal(hba_match(h, "192.168.1.8", false, "app", "x", &line), HBA_NO_MATCH);
	/* prefixes of names are not names */
	assert_int_equal(hba_match(h, "10.0.0.1", false, "ap", "bo", &line), HBA_NO_MATCH);
	assert_int_equal(hba_match(h, "8.8.8.8", false, "app", "mallory", &line), HBA_REJECT);
	/* an IPv4 client never matches an IPv6 network */
	assert_int_equal(hba_match(h, "127.0.0.1", false, "app", "x", &line), HBA_NO_MATCH);
	hba_free(h);
}

static void test_ssl_types(void **state)
{
	struct hba *h = parse_ok(rules);
	int line;
	(void)state;

	assert_int_equal(hba_match(h, "8.8.8.8", true, "app", "certuser", &line), HBA_CERT);
	assert_int_equal(hba_match(h, "8.8.8.8", false, "app", "certuser", &line), HBA_NO_MATCH);
	/* hostnossl: only plain connections */
	assert_int_equal(hba_match(h, "8.8.8.8", true, "app", "mallory", &line), HBA_NO_MATCH);
	/* local lines never match TCP, host lines never match the unix socket */
	assert_int_equal(hba_match(h, NULL, true, "app", "certuser", &line), HBA_TRUST);
	hba_free(h);
}

static void test_ipv6_prefix(void **state)
{
	struct hba *h = parse_ok("host all all fd00::/8 md5\nhost all all 0.0.0.0/0 reject\n");
	int line;
	(void)state;

	assert_int_equal(hba_match(h, "fd12:3456::1", false, "d", "u", &line), HBA_MD5);
	assert_int_equal(hba_match(h, "fe80::1", false, "d", "u", &line), HBA_NO_MATCH);
	assert_int_equal(hba_match(h, "1.2.3.4", false, "d", "u", &line), HBA_REJECT);
	hba_free(h);
}

static void expect_error(const char *text, const char *needle)
{
	char err[256] = "";
	struct hba *h = hba_parse(text, "hba.conf", err, sizeof(err));
	assert_null(h);
	if (strstr(err, needle) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", err, needle);
}

static void test_parse_errors_name_file_and_line(void **state)
{
	(void)state;
	expect_error("local all all trust\nhosts all all all md5\n",
	             "hba.conf:2: unknown connection type");
	expect_error("\n\nhost all all 10.0.0.0/33 md5\n", "hba.conf:3: invalid address");
	expect_error("host all all 10.0.0.0/8 password\n",
	             "hba.conf:1: unknown method \"password\"");
	expect_error("host all all md5\n", "hba.conf:1: expected 5 fields");
	expect_error("local all all all trust\n", "expected 4 fields");
	expect_error("host all all all cert\n", "cert needs a hostssl line");
	expect_error("host all all nothost md5\n", "invalid address \"nothost\"");
}

static void test_empty_file_rejects_everyone(void **state)
{
	struct hba *h = parse_ok("# nothing allowed\n\n");
	int line;
	(void)state;

	assert_int_equal(hba_match(h, "127.0.0.1", false, "app", "app", &line), HBA_NO_MATCH);
	assert_int_equal(hba_match(h, NULL, false, "app", "app", &line), HBA_NO_MATCH);
	hba_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_first_match_decides),
	    cmocka_unit_test(test_no_match_and_reject),
	    cmocka_unit_test(test_ssl_types),
	    cmocka_unit_test(test_ipv6_prefix),
	    cmocka_unit_test(test_parse_errors_name_file_and_line),
	    cmocka_unit_test(test_empty_file_rejects_everyone),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
