/* Unit tests for classify: a corpus of statements and where they may run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "classify.h"
#include "log.h"

enum log_level log_min_level = LOG_ERROR;

static struct classifier *new_classifier(void)
{
	static const char *const names[] = {
	    "count",     "sum",    "now",         "lower",   "abs",
	    "my_stable", "random", "my_volatile", "nextval", "generate_series"};
	static const char *const vol[] = {"random", "my_volatile", "nextval"};
	struct classifier *cl = classify_new(64);
	static const char *const unlogged[] = {"my_unlogged", "my_unlogged_view"};
	struct classify_catalog cat = {names, ARRAY_LEN(names), vol,      ARRAY_LEN(vol),
	                               NULL,  0,                unlogged, ARRAY_LEN(unlogged)};
	classify_set_catalog(cl, &cat);
	return cl;
}

static struct verdict run(struct classifier *cl, const char *sql)
{
	return classify_sql(cl, sql, strlen(sql));
}

static void test_reads(void **state)
{
	static const char *const reads[] = {
	    "select 1",
	    "SELECT * FROM t WHERE id = 42",
	    "  select\n\tcount(*) from t -- trailing comment",
	    "/* leading */ select abs(-1)",
	    "table t",
	    "values (1), (2)",
	    "show search_path",
	    "explain select * from t",
	    "with x as (select 1) select * from x",
	    "select now(), lower('A'), my_stable(3)",
	    "select random()", /* volatile, but only reads */
	    "select * from generate_series(1, 10)",
	    "select 1; select 2",
	    "select $1::int + 1",
	    "select 'it''s', E'\\'', $$dollar$$, $tag$x$tag$",
	    "begin read only",
	    "copy t to stdout",
	    "copy (select * from t) to stdout",
	    "begin transaction read only; select 1; commit",
	    "commit",
	    "select pg_is_in_recovery()",
	};
	struct classifier *cl = new_classifier();
	(void)state;

	for (size_t i = 0; i < ARRAY_LEN(reads); i++)
		if (!run(cl, reads[i]).read_only)
			fail_msg("should run on a replica: %s", reads[i]);
	classify_free(cl);
}

static void test_writes(void **state)
{
	static const char *const writes[] = {
	    "insert into t values (1)",
	    "update t set a = 1",
	    "delete from t",
	    "merge into t using s on t.id = s.id when matched then delete",
	    "select * from t for update",
	    "select * from t for share",
	    "select * from t for no key update skip locked",
	    "select * into t2 from t",
	    "with d as (delete from t returning *) select * from d",
	    "with i as (insert into t values (1) returning id) select id from i",
	    "select nextval('s')",
	    "select setval('s', 10)",
	    "select my_volatile(1)",
	    "select unknown_function()", /* not in the catalog: unsure */
	    "select pg_advisory_lock(1)",
	    "select pg_try_advisory_lock(1)",
	    "copy t from stdin",
	    "start transaction isolation level serializable, read only",
	    "copy t to '/tmp/x'",
	    "copy (insert into t values (1) returning *) to stdout",
	    "call p()",
	    "do $$ begin end $$",
	    "lock table t",
	    "create table x (a int)",
	    "drop table t",
	    "vacuum t",
	    "listen ch",
	    "notify ch",
	    "select 1; insert into t values (1)",
	    "begin",
	    "begin isolation level repeatable read",
	    "start transaction read write",
	    "set search_path = s1",
	    "reset all",
	    "prepare p as select 1",
	    "execute p",
	    "deallocate p",
	    "declare c cursor with hold for select 1",
	    "explain analyze insert into t values (1)",
	    "select * from t where id in (select nextval('s'))",
	    "select set_config('a.b', 'c', false)",
	    "this is not sql",
	    "",
	    "refresh materialized view m",
	    "truncate t",
	    "grant select on t to u",
	};
	struct classifier *cl = new_classifier();
	(void)state;

	for (size_t i = 0; i < ARRAY_LEN(writes); i++)
		if (run(cl, writes[i]).read_only)
			fail_msg("should run on the primary: %s", writes[i]);
	classify_free(cl);
}

static void test_transactions_and_session(void **state)
{
	struct classifier *cl = new_classifier();
	struct verdict v;
	(void)state;

	v = run(cl, "BEGIN READ ONLY");
	assert_true(v.begin && v.begin_read_only && v.read_only);
	v = run(cl, "BEGIN");
	assert_true(v.begin);
	assert_false(v.begin_read_only);
	assert_false(v.read_only);
	v = run(cl, "start transaction read write");
	assert_false(v.begin_read_only);
	v = run(cl, "rollback");
	assert_true(v.ends);

	assert_int_equal(run(cl, "set default_transaction_read_only = on").session_ro, 1);
	assert_int_equal(run(cl, "SET default_transaction_read_only TO 'true'").session_ro, 1);
	assert_int_equal(run(cl, "set default_transaction_read_only = off").session_ro, 0);
	assert_int_equal(run(cl, "reset default_transaction_read_only").session_ro, 0);
	assert_int_equal(run(cl, "set session characteristics as transaction read only").session_ro,
	                 1);
	assert_int_equal(
	    run(cl, "set session characteristics as transaction read write").session_ro, 0);
	assert_int_equal(run(cl, "reset all").session_ro, 0);
	assert_int_equal(run(cl, "set local default_transaction_read_only = on").session_ro, -1);
	assert_int_equal(run(cl, "select 1").session_ro, -1);
	classify_free(cl);
}

static void test_hints(void **state)
{
	struct classifier *cl = new_classifier();
	(void)state;

	assert_int_equal(run(cl, "/* pooler:primary */ select 1").hint, HINT_PRIMARY);
	assert_int_equal(run(cl, "  /*pooler:replica*/ select now()").hint, HINT_REPLICA);
	assert_int_equal(run(cl, "/* app */ /* pooler:replica */ select 1").hint, HINT_REPLICA);
	assert_int_equal(run(cl, "select 1 /* pooler:replica */").hint, HINT_NONE);
	/* the cache keys without comments, but the hint is never taken from the cache */
	assert_int_equal(run(cl, "select 1").hint, HINT_NONE);
	classify_free(cl);
}

static void test_cache(void **state)
{
	struct classifier *cl = new_classifier();
	const struct classify_stats *st = classify_stats(cl);
	(void)state;

	assert_true(run(cl, "select * from t where id = 1").read_only);
	assert_int_equal(st->misses, 1);
	/* different literal, spacing and case: the same shape, a cache hit */
	assert_true(run(cl, "SELECT *   FROM t WHERE id = 977").read_only);
	assert_true(run(cl, "select * from t where id = 'x'").read_only);
	assert_int_equal(st->hits, 2);
	assert_int_equal(st->misses, 1);
	/* SET is never cached: its meaning hangs on a literal */
	run(cl, "set default_transaction_read_only = on");
	assert_int_equal(run(cl, "set default_transaction_read_only = off").session_ro, 0);
	assert_int_equal(st->uncacheable, 2);
	/* a catalog change forgets cached verdicts */
	assert_false(run(cl, "select f2()").read_only);
	const char *names[] = {"f2"};
	struct classify_catalog cat = {.names = names, .n_names = 1};
	classify_set_catalog(cl, &cat);
	assert_true(run(cl, "select f2()").read_only);
	/* many shapes: the cache stays bounded and verdicts stay right */
	char sql[64];
	for (int i = 0; i < 500; i++) {
		snprintf(sql, sizeof(sql), "select c%d from t", i);
		assert_true(run(cl, sql).read_only);
		snprintf(sql, sizeof(sql), "update t set c%d = 1", i);
		assert_false(run(cl, sql).read_only);
	}
	classify_free(cl);
}

/* Found by fuzzing: a cached verdict must never make a write look like a read. */
static void test_cache_keys_what_the_parser_saw(void **state)
{
	struct classifier *cl = new_classifier();
	static const char hidden[] = "select 1 --\0\n; delete from t";
	(void)state;

	/* the parser stops at the NUL and sees a read; the key must stop there too */
	assert_true(classify_sql(cl, hidden, sizeof(hidden) - 1).read_only);
	assert_false(run(cl, "select 1 ; delete from t").read_only);
	/* a text the parser refused shares its key with a valid one: not cached */
	assert_true(run(cl, "select x from t where a = 'abc").parse_error);
	struct verdict v = run(cl, "select x from t where a = 'abc'");
	assert_false(v.parse_error);
	assert_true(v.read_only);
	classify_free(cl);
}

static void test_pins(void **state)
{
	struct classifier *cl = new_classifier();
	(void)state;

	assert_int_equal(run(cl, "create temp table t (a int)").pins, PIN_TEMP_TABLE);
	assert_int_equal(run(cl, "create temporary table t as select 1").pins, PIN_TEMP_TABLE);
	assert_int_equal(run(cl, "select 1 into temp t2").pins, PIN_TEMP_TABLE);
	assert_int_equal(run(cl, "listen ch").pins, PIN_LISTEN);
	assert_int_equal(run(cl, "prepare p as select 1").pins, PIN_PREPARE);
	assert_int_equal(run(cl, "declare c cursor with hold for select 1").pins, PIN_HOLD_CURSOR);
	assert_int_equal(run(cl, "declare c cursor for select 1").pins, PIN_NONE);
	assert_int_equal(run(cl, "select pg_advisory_lock(1)").pins, PIN_ADVISORY_LOCK);
	assert_int_equal(run(cl, "select pg_advisory_xact_lock(1)").pins, PIN_NONE);
	assert_int_equal(run(cl, "set search_path = s1").pins, PIN_SET);
	assert_int_equal(run(cl, "set statement_timeout to 5000").pins, PIN_SET);
	assert_int_equal(run(cl, "set local statement_timeout to 5000").pins, PIN_NONE);
	assert_int_equal(run(cl, "set timezone = 'UTC'").pins, PIN_NONE); /* carried */
	assert_int_equal(run(cl, "set role app").pins, PIN_ROLE);
	assert_int_equal(run(cl, "create table t (a int)").pins, PIN_NONE);
	assert_int_equal(run(cl, "select * from t").pins, PIN_NONE);
	assert_string_equal(classify_pin_name(PIN_LISTEN), "listen");
	classify_free(cl);
}

static void reset_name(void *arg, const char *name)
{
	char *out = arg;
	strcat(out, name);
	strcat(out, ",");
}

/* Settings changed without SET: set_config, DO, functions that set, RESET. */
static void test_settings(void **state)
{
	static const char *const names[] = {"count", "my_setter", "my_proc"};
	static const char *const setters[] = {"my_setter", "my_proc"};
	struct classifier *cl = classify_new(64);
	struct classify_catalog cat = {names, 3, NULL, 0, setters, 2, NULL, 0};
	char got[128] = "";
	(void)state;

	classify_set_catalog(cl, &cat);
	assert_int_equal(run(cl, "select set_config('search_path', ' ', false)").pins, PIN_SET);
	/* the literal decides: never served from the cache of the other form */
	assert_int_equal(run(cl, "select set_config('search_path', ' ', true)").pins, PIN_NONE);
	assert_int_equal(run(cl, "select set_config('work_mem', '1MB', $1)").pins, PIN_SET);
	assert_int_equal(run(cl, "select set_config('application_name', 'x', false)").pins,
	                 PIN_NONE); /* reported by the server: carried */
	assert_int_equal(run(cl, "select my_setter()").pins, PIN_SET);
	assert_int_equal(run(cl, "call my_proc()").pins, PIN_SET);
	assert_false(run(cl, "select count(*) from t").restore);
	assert_true(run(cl, "select brand_new_function()").restore);
	assert_true(run(cl, "call brand_new_proc()").restore);
	struct verdict v = run(cl, "do $$ begin set enable_bitmapscan = 0; end $$");
	assert_int_equal(v.pins, PIN_SET);
	assert_true(v.restore);
	v = run(cl, "do $$ begin perform my_setter(); end $$");
	assert_int_equal(v.pins, PIN_SET);
	v = run(cl, "do $$ begin update t set a = 1; end $$");
	assert_int_equal(v.pins, PIN_NONE); /* an UPDATE's SET changes no setting */
	assert_true(v.restore);
	assert_int_equal(run(cl, "set session characteristics as transaction isolation level "
	                         "serializable")
	                     .pins,
	                 PIN_SET);
	assert_int_equal(run(cl, "set session characteristics as transaction read only").pins,
	                 PIN_NONE);
	assert_int_equal(run(cl, "reset datestyle").resets, RESETS_NAMED);
	assert_int_equal(run(cl, "set timezone to default").resets, RESETS_NAMED);
	assert_int_equal(run(cl, "reset all").resets, RESETS_ALL);
	assert_int_equal(run(cl, "discard all").resets, RESETS_ALL);
	assert_int_equal(run(cl, "discard plans").resets, RESETS_NONE);
	assert_int_equal(run(cl, "select 1").resets, RESETS_NONE);
	const char *sql = "reset DateStyle; set local x to default; set TimeZone to default";
	classify_reset_names(sql, strlen(sql), reset_name, got);
	assert_string_equal(got, "datestyle,timezone,");
	assert_true(classify_may_reset("RESET all", 9));
	assert_true(classify_may_reset("discard all", 11));
	assert_false(classify_may_reset("select abalance from pgbench_accounts", 37));
	classify_free(cl);
}

/* What may write moves read-your-writes; learned writes outlive a new catalog. */
static void test_wal_and_learned(void **state)
{
	struct classifier *cl = new_classifier();
	static const char *const names[] = {"count", "my_stable"};
	struct classify_catalog cat = {.names = names, .n_names = 2};
	(void)state;

	assert_false(run(cl, "set application_name = 'x'").wal);
	assert_false(run(cl, "show work_mem").wal);
	assert_false(run(cl, "begin").wal);
	assert_false(run(cl, "listen ch").wal);
	assert_false(run(cl, "select 1").wal);
	assert_true(run(cl, "insert into t values (1)").wal);
	assert_true(run(cl, "select nextval('s')").wal);
	assert_true(run(cl, "select * from t for update").wal);
	assert_true(run(cl, "create table t2 (a int)").wal);
	assert_true(run(cl, "this is not sql").wal);
	assert_true(run(cl, "select my_stable()").read_only);
	classify_learn_write(cl, "select my_stable()", 18);
	assert_false(run(cl, "select my_stable()").read_only);
	classify_set_catalog(cl, &cat); /* read again: still a write */
	assert_false(run(cl, "select my_stable()").read_only);
	assert_true(run(cl, "select my_stable()").wal);
	classify_clear_cache(cl); /* a reload forgets it */
	assert_true(run(cl, "select my_stable()").read_only);
	classify_free(cl);
}

static void test_normalize(void **state)
{
	char out[128];
	(void)state;

	assert_int_equal(classify_normalize("SELECT  a, 'x''y', 12.5e3 -- c\n FROM \"T\" /* z */",
	                                    100, out, sizeof(out)),
	                 strlen("select a, ?, ? from \"T\""));
	assert_string_equal(out, "select a, ?, ? from \"T\"");
	classify_normalize("select $1, col1, $q$a$q$", 24, out, sizeof(out));
	assert_string_equal(out, "select $1, col1, ?"); /* parameters are not literals */
	assert_int_equal(classify_normalize("select 1", 8, out, 4), 0); /* does not fit */
}

#define TXT(s) (s), strlen(s)

/* Relations a standby cannot read (unlogged, and views over them) send a read to the
 * primary without marking it as a write. */
static void test_unlogged(void **state)
{
	struct classifier *cl = new_classifier();
	struct verdict v = run(cl, "select * from public.My_Unlogged where a = 1");
	(void)state;

	assert_false(v.read_only);
	assert_false(v.wal); /* nothing written: read-your-writes does not move */
	assert_false(run(cl, "select count(*) from my_unlogged_view").read_only);
	assert_false(run(cl, "select 1 from t join my_unlogged u on true").read_only);
	assert_true(run(cl, "select * from my_logged").read_only);
	classify_free(cl);
}

static void test_text_facts(void **state)
{
	char name[64], value[64];
	const char *canonical = NULL;
	(void)state;

	assert_true(classify_drops_statements(TXT("DISCARD ALL")));
	assert_true(classify_drops_statements(TXT("  deallocate\n  prepare ALL ; ")));
	assert_true(classify_drops_statements(TXT("SET a = 1; DISCARD ALL"))); /* a list */
	assert_false(classify_drops_statements(TXT("DISCARD PLANS")));
	assert_false(classify_drops_statements(TXT("select 'discard'")));
	assert_false(classify_drops_statements("DISCARD ALL", 7)); /* only n bytes count */

	assert_true(classify_deallocate_name(TXT(" DEALLOCATE PREPARE \"My\" ;"), name, 64));
	assert_string_equal(name, "My");
	assert_true(classify_deallocate_name(TXT("deallocate S_1"), name, 64));
	assert_string_equal(name, "s_1"); /* folded, as PostgreSQL folds it */
	assert_true(classify_deallocate_name(TXT("deallocate prepare"), name, 64));
	assert_string_equal(name, "prepare"); /* a statement called prepare */
	assert_false(classify_deallocate_name(TXT("DEALLOCATE ALL"), name, 64));
	assert_false(classify_deallocate_name(TXT("DEALLOCATE a; select 1"), name, 64));
	assert_false(classify_deallocate_name(TXT("deallocated a"), name, 64));

	assert_true(classify_plain_set(TXT("SET extra_float_digits = 3"), name, 64, value, 64));
	assert_string_equal(name, "extra_float_digits");
	assert_string_equal(value, "3");
	assert_true(classify_plain_set(TXT("set session x TO 'a b';"), name, 64, value, 64));
	assert_string_equal(name, "x");
	assert_string_equal(value, "a b");
	assert_true(classify_plain_set(TXT("SET Search_Path = MySchema"), name, 64, value, 64));
	assert_string_equal(name, "search_path"); /* folded, as PostgreSQL folds them */
	assert_string_equal(value, "myschema");
	assert_true(classify_plain_set(TXT("set x = 'Mixed'"), name, 64, value, 64));
	assert_string_equal(value, "Mixed"); /* a literal keeps its case */
	assert_true(classify_plain_set(TXT("set x = ''"), name, 64, value, 64));
	assert_string_equal(value, "");
	assert_false(classify_plain_set(TXT("SET x TO DEFAULT"), name, 64, value, 64));
	assert_false(classify_plain_set(TXT("SET x = a, b"), name, 64, value, 64)); /* a list */
	assert_false(classify_plain_set(TXT("SET LOCAL x = 1"), name, 64, value, 64));
	assert_false(classify_plain_set(TXT("SET x = 1; SET y = 2"), name, 64, value, 64));

	assert_int_equal(classify_param("Server_Version", NULL), PARAM_SERVER_OWNED);
	assert_int_equal(classify_param("TimeZone", &canonical), PARAM_REPORTED);
	assert_string_equal(canonical, "timezone");
	assert_int_equal(classify_param("EXTRA_FLOAT_DIGITS", NULL), PARAM_CARRIED_BY_VALUE);
	assert_int_equal(classify_param("work_mem", NULL), PARAM_OTHER);
	assert_int_equal(classify_param("Default_Transaction_Isolation", NULL), PARAM_PINS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reads),
	    cmocka_unit_test(test_writes),
	    cmocka_unit_test(test_transactions_and_session),
	    cmocka_unit_test(test_hints),
	    cmocka_unit_test(test_cache),
	    cmocka_unit_test(test_cache_keys_what_the_parser_saw),
	    cmocka_unit_test(test_pins),
	    cmocka_unit_test(test_settings),
	    cmocka_unit_test(test_wal_and_learned),
	    cmocka_unit_test(test_normalize),
	    cmocka_unit_test(test_text_facts),
	    cmocka_unit_test(test_unlogged),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
