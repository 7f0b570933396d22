/* Unit tests for patroni: reading Patroni's GET /cluster answer, as Patroni 3 writes it,
 * and refusing what is not that document. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"
#include "patroni.h"

enum log_level log_min_level = LOG_ERROR;

/* Taken from a three-member cluster in synchronous mode, with tags added on pg3. */
static const char real[] =
    "{\"members\": [{\"name\": \"pg1\", \"role\": \"leader\", \"state\": \"running\", "
    "\"api_url\": \"http://127.0.0.1:8008/patroni\", \"host\": \"127.0.0.1\", \"port\": 5432, "
    "\"timeline\": 3}, {\"name\": \"pg2\", \"role\": \"sync_standby\", \"state\": "
    "\"streaming\", \"api_url\": \"http://127.0.0.1:8009/patroni\", \"host\": \"127.0.0.1\", "
    "\"port\": 5433, \"timeline\": 3, \"lag\": 0}, {\"name\": \"pg3\", \"role\": \"replica\", "
    "\"state\": \"stopped\", \"api_url\": \"http://127.0.0.1:8010/patroni\", \"host\": "
    "\"127.0.0.1\", \"port\": 5434, \"tags\": {\"nofailover\": true, \"noloadbalance\": "
    "\"true\", \"clonefrom\": false, \"replicatefrom\": \"pg2\"}, \"pending_restart\": true, "
    "\"scheduled_restart\": {\"schedule\": \"2026-01-01T00:00:00+00:00\"}, \"lag\": "
    "\"unknown\"}], \"scheduled_switchover\": {\"at\": \"x\", \"from\": \"pg1\"}}\n";

static void test_real_answer(void **state)
{
	struct patroni_cluster c;
	char err[200] = "";

	(void)state;
	assert_true(patroni_parse(real, strlen(real), &c, err, sizeof(err)));
	assert_int_equal(c.n_members, 3);
	assert_false(c.paused);
	assert_string_equal(c.members[0].name, "pg1");
	assert_int_equal(c.members[0].role, PATRONI_LEADER);
	assert_true(c.members[0].running);
	assert_int_equal(c.members[0].port, 5432);
	assert_int_equal(c.members[0].lag, -1);
	assert_int_equal(c.members[1].role, PATRONI_SYNC_STANDBY);
	assert_true(c.members[1].running);
	assert_int_equal(c.members[1].lag, 0);
	assert_false(c.members[1].noloadbalance);
	assert_string_equal(c.members[2].host, "127.0.0.1");
	assert_int_equal(c.members[2].role, PATRONI_REPLICA);
	assert_false(c.members[2].running);
	assert_string_equal(c.members[2].state, "stopped");
	assert_true(c.members[2].nofailover);
	assert_true(c.members[2].noloadbalance);
	assert_int_equal(c.members[2].lag, -1);
	assert_string_equal(patroni_leader(&c)->name, "pg1");
}

static void test_no_leader_and_pause(void **state)
{
	static const char body[] =
	    "{\"members\":[{\"name\":\"a\",\"role\":\"replica\",\"state\":\"running\","
	    "\"host\":\"10.0.0.1\",\"port\":6000,\"lag\":123456789012}],\"pause\":true}";
	struct patroni_cluster c;
	char err[200];

	(void)state;
	assert_true(patroni_parse(body, strlen(body), &c, err, sizeof(err)));
	assert_true(c.paused);
	assert_null(patroni_leader(&c));
	assert_int_equal(c.members[0].lag, 123456789012LL);
}

/* A standby cluster's leader replicates from elsewhere: it must never take writes. */
static void test_standby_leader_is_no_leader(void **state)
{
	static const char body[] = "{\"members\":[{\"name\":\"a\",\"role\":\"standby_leader\","
	                           "\"state\":\"running\",\"host\":\"h\",\"port\":1}]}";
	struct patroni_cluster c;
	char err[200];

	(void)state;
	assert_true(patroni_parse(body, strlen(body), &c, err, sizeof(err)));
	assert_true(c.members[0].standby);
	assert_null(patroni_leader(&c));
}

static void test_escapes(void **state)
{
	static const char body[] = "{\"members\":[{\"name\":\"p\\u00e9\\\"1\",\"host\":\"h\","
	                           "\"port\":1,\"role\":\"leader\"}],\"x\":[1,-2.5e3,null,[{}]]}";
	struct patroni_cluster c;
	char err[200];

	(void)state;
	assert_true(patroni_parse(body, strlen(body), &c, err, sizeof(err)));
	assert_string_equal(c.members[0].name, "p\xc3\xa9\"1");
}

static void test_empty_members(void **state)
{
	struct patroni_cluster c;
	char err[200];

	(void)state;
	assert_true(patroni_parse("{\"members\": []}", 15, &c, err, sizeof(err)));
	assert_int_equal(c.n_members, 0);
}

static void test_refused(void **state)
{
	static const char *const bad[] = {
	    "",
	    "[]",
	    "{\"members\": [",
	    "{\"members\": [{\"name\": \"a\", \"host\": \"h\"}]}",              /* no port */
	    "{\"members\": [{\"name\": \"a\", \"host\": \"h\", \"port\": 0}]}", /* bad port */
	    "{\"members\": [{\"name\": \"a\", \"host\": \"h\", \"port\": \"5432\"}]}",
	    "{\"members\": [{\"name\": 1, \"host\": \"h\", \"port\": 5}]}",
	    "{\"members\": [{\"name\": \"a\", \"host\": \"h\", \"port\": 5},"
	    " {\"name\": \"a\", \"host\": \"h\", \"port\": 6}]}", /* twice */
	    "{\"members\": []} trailing",
	    "{\"members\": [] ,}",
	    "{\"a\": tru}",
	    "{\"a\": \"unterminated}",
	    "{\"a\": \"bad \\q escape\"}",
	    "{\"a\": [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}", /* too deep */
	    "<html>502 Bad Gateway</html>",
	};
	struct patroni_cluster c;
	char err[200];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (patroni_parse(bad[i], strlen(bad[i]), &c, err, sizeof(err)))
			fail_msg("accepted: %s", bad[i]);
		assert_true(err[0] != '\0');
	}
}

/* A name longer than the parser keeps is an error, never a silent cut. */
static void test_long_name(void **state)
{
	char body[400];
	struct patroni_cluster c;
	char err[200];

	(void)state;
	snprintf(body, sizeof(body),
	         "{\"members\":[{\"name\":\"%0100d\",\"host\":\"h\",\"port\":1}]}", 0);
	assert_false(patroni_parse(body, strlen(body), &c, err, sizeof(err)));
	assert_non_null(strstr(err, "longer"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_real_answer),
	    cmocka_unit_test(test_no_leader_and_pause),
	    cmocka_unit_test(test_standby_leader_is_no_leader),
	    cmocka_unit_test(test_escapes),
	    cmocka_unit_test(test_empty_members),
	    cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_long_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
