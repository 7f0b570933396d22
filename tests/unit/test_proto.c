/* Unit tests for proto: framing, startup packets, message writers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"
#include "proto.h"

enum log_level log_min_level = LOG_ERROR;

static size_t put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
	return 4;
}

static void test_header(void **state)
{
	uint8_t m[8] = {'Q', 0, 0, 0, 9, 'x', 0};
	struct proto_header h;
	(void)state;

	assert_int_equal(proto_read_header(m, 4, PROTO_MAX_MESSAGE, &h), PROTO_INCOMPLETE);
	assert_int_equal(proto_read_header(m, 5, PROTO_MAX_MESSAGE, &h), PROTO_OK);
	assert_int_equal(h.type, 'Q');
	assert_int_equal(h.len, 5);
	put32(m + 1, 3); /* shorter than the length word itself */
	assert_int_equal(proto_read_header(m, 5, PROTO_MAX_MESSAGE, &h), PROTO_BAD);
	put32(m + 1, 0x7fffffff); /* absurd */
	assert_int_equal(proto_read_header(m, 5, PROTO_MAX_MESSAGE, &h), PROTO_BAD);
	put32(m + 1, 0xffffffff); /* "negative" */
	assert_int_equal(proto_read_header(m, 5, PROTO_MAX_MESSAGE, &h), PROTO_BAD);
	put32(m + 1, 4 + 100);
	assert_int_equal(proto_read_header(m, 5, 99, &h), PROTO_BAD);
	assert_int_equal(proto_read_header(m, 5, 100, &h), PROTO_OK);
}

static size_t startup_body(uint8_t *b, uint32_t version, const char *const *kv, int n)
{
	size_t o = put32(b, version);
	for (int i = 0; i < n; i++) {
		size_t l = strlen(kv[i]) + 1;
		memcpy(b + o, kv[i], l);
		o += l;
	}
	b[o++] = 0;
	return o;
}

static void test_startup_v3(void **state)
{
	uint8_t b[256];
	const char *kv[] = {"user", "app", "database", "appdb", "application_name", "t"};
	struct startup st;
	(void)state;

	size_t n = startup_body(b, PROTO_V3, kv, 6);
	assert_int_equal(proto_parse_startup(b, n, &st), STARTUP_V3);
	assert_int_equal(st.nparams, 3);
	assert_string_equal(proto_startup_get(&st, "user"), "app");
	assert_string_equal(proto_startup_get(&st, "database"), "appdb");
	assert_null(proto_startup_get(&st, "options"));
	/* 3.2 is served as 3.0 */
	n = startup_body(b, 0x00030002, kv, 2);
	assert_int_equal(proto_parse_startup(b, n, &st), STARTUP_V3);
}

static void test_startup_special(void **state)
{
	uint8_t b[64];
	struct startup st;
	(void)state;

	put32(b, PROTO_SSL_REQUEST);
	assert_int_equal(proto_parse_startup(b, 4, &st), STARTUP_SSL);
	put32(b, PROTO_GSSENC_REQUEST);
	assert_int_equal(proto_parse_startup(b, 4, &st), STARTUP_GSSENC);
	put32(b, PROTO_CANCEL_REQUEST);
	put32(b + 4, 1234);
	put32(b + 8, 0xdeadbeef);
	assert_int_equal(proto_parse_startup(b, 12, &st), STARTUP_CANCEL);
	assert_int_equal(st.cancel_pid, 1234);
	assert_int_equal(st.cancel_key, 0xdeadbeef);
	assert_int_equal(proto_parse_startup(b, 10, &st), STARTUP_MALFORMED);
	put32(b, 0x00020000);
	assert_int_equal(proto_parse_startup(b, 4, &st), STARTUP_BAD_VERSION);
	put32(b, 0x00040000);
	assert_int_equal(proto_parse_startup(b, 4, &st), STARTUP_BAD_VERSION);
}

static void test_startup_malformed(void **state)
{
	uint8_t b[4096] = {0};
	struct startup st;
	(void)state;

	assert_int_equal(proto_parse_startup(b, 2, &st), STARTUP_MALFORMED);
	/* value without terminator */
	size_t o = put32(b, PROTO_V3);
	memcpy(b + o, "user\0app", 8);
	assert_int_equal(proto_parse_startup(b, o + 8, &st), STARTUP_MALFORMED);
	/* name without value */
	memcpy(b + o, "user\0", 5);
	assert_int_equal(proto_parse_startup(b, o + 5, &st), STARTUP_MALFORMED);
	/* trailing bytes after the final NUL */
	memcpy(b + o, "user\0app\0\0junk", 14);
	assert_int_equal(proto_parse_startup(b, o + 14, &st), STARTUP_MALFORMED);
	/* too many parameters */
	o = put32(b, PROTO_V3);
	for (int i = 0; i < PROTO_MAX_PARAMS + 1; i++) {
		memcpy(b + o, "a\0b\0", 4);
		o += 4;
	}
	b[o++] = 0;
	assert_int_equal(proto_parse_startup(b, o, &st), STARTUP_TOO_MANY_PARAMS);
}

static void test_write_error(void **state)
{
	struct buf b;
	struct proto_header h;
	struct proto_error e;
	(void)state;

	buf_init(&b);
	proto_write_error(&b, "FATAL", "28P01", "password authentication failed");
	assert_int_equal(proto_read_header(buf_head(&b), buf_len(&b), PROTO_MAX_MESSAGE, &h),
	                 PROTO_OK);
	assert_int_equal(h.type, 'E');
	assert_int_equal(h.len + 5, buf_len(&b));
	assert_true(proto_parse_error(buf_head(&b) + 5, h.len, &e));
	assert_string_equal(e.severity, "FATAL");
	assert_string_equal(e.sqlstate, "28P01");
	assert_string_equal(e.message, "password authentication failed");
	/* a truncated body is rejected, not over-read */
	assert_false(proto_parse_error(buf_head(&b) + 5, h.len - 3, &e));
	buf_free(&b);
}

static void test_writers(void **state)
{
	struct buf b;
	(void)state;
	static const uint8_t expect[] = {
	    'Z', 0, 0, 0, 5,  'I',                          /* ReadyForQuery */
	    'K', 0, 0, 0, 12, 0,   0, 0,   7,   0, 0, 0, 9, /* BackendKeyData */
	    'S', 0, 0, 0, 9,  'a', 0, 'b', 'c', 0,          /* ParameterStatus */
	    'R', 0, 0, 0, 12, 0,   0, 0,   5,   1, 2, 3, 4, /* MD5 request */
	    'Q', 0, 0, 0, 6,  'x', 0,                       /* Query */
	};
	const uint8_t salt[4] = {1, 2, 3, 4};

	buf_init(&b);
	proto_write_ready(&b, 'I');
	proto_write_key(&b, 7, 9);
	proto_write_param(&b, "a", "bc");
	proto_write_auth(&b, AUTH_MD5, salt, 4);
	proto_write_query(&b, "x");
	assert_int_equal(buf_len(&b), sizeof(expect));
	assert_memory_equal(buf_head(&b), expect, sizeof(expect));
	buf_free(&b);
}

static void test_reader_bounds(void **state)
{
	const uint8_t body[] = {0, 1, 'h', 'i', 0, 0xff};
	struct proto_reader r;
	(void)state;

	proto_reader_init(&r, body, sizeof(body));
	assert_int_equal(proto_get_u16(&r), 1);
	assert_string_equal(proto_get_str(&r), "hi");
	assert_int_equal(proto_get_u8(&r), 0xff);
	assert_false(r.err);
	assert_int_equal(proto_get_u32(&r), 0);
	assert_true(r.err);
	proto_reader_init(&r, body + 2, 2); /* "hi" without its NUL */
	assert_null(proto_get_str(&r));
	assert_true(r.err);
}

struct pairs {
	char text[256];
	int n;
};

static bool collect(void *arg, const char *name, const char *value)
{
	struct pairs *p = arg;
	size_t len = strlen(p->text);
	snprintf(p->text + len, sizeof(p->text) - len, "%s=%s;", name, value);
	p->n++;
	return strcmp(value, "refuse") != 0;
}

static void test_options(void **state)
{
	static const struct {
		const char *opts;
		bool ok;
		const char *pairs;
	} cases[] = {
	    {"-c search_path=a", true, "search_path=a;"},
	    {"-csearch_path=a  --statement-timeout=5s", true,
	     "search_path=a;statement_timeout=5s;"},
	    {"-c application_name=two\\ words", true, "application_name=two words;"},
	    {"  ", true, ""},
	    {"-c", false, NULL},         /* -c with nothing after it */
	    {"-x foo=1", false, NULL},   /* not an option we pass on */
	    {"-c novalue", false, NULL}, /* no '=' */
	    {"-c bad;name=1", false, NULL},
	    {"-c a=refuse -c b=1", false, NULL}, /* the callback's no stops the walk */
	};
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pairs p = {.n = 0};
		bool ok = proto_parse_options(cases[i].opts, collect, &p);
		if (ok != cases[i].ok)
			fail_msg("case %zu (%s): %d", i, cases[i].opts, ok);
		if (ok)
			assert_string_equal(p.text, cases[i].pairs);
	}
	/* a word over the limit is refused, not truncated */
	char big[1200];
	memset(big, 'x', sizeof(big) - 1);
	memcpy(big, "-ca=", 4);
	big[sizeof(big) - 1] = '\0';
	struct pairs p = {.n = 0};
	assert_false(proto_parse_options(big, collect, &p));
	assert_int_equal(p.n, 0);
}

static void test_sasl_initial(void **state)
{
	static const uint8_t good[] = "SCRAM-SHA-256\0\0\0\0\3n,,";
	static const uint8_t none[] = "SCRAM-SHA-256\0\xff\xff\xff\xff";
	static const uint8_t negative[] = "SCRAM-SHA-256\0\x80\0\0\0";
	static const uint8_t overrun[] = "SCRAM-SHA-256\0\0\0\0\x09n,,";
	struct sasl_initial si;
	(void)state;

	assert_true(proto_parse_sasl_initial(good, sizeof(good) - 1, &si));
	assert_string_equal(si.mechanism, "SCRAM-SHA-256");
	assert_int_equal(si.len, 3);
	assert_memory_equal(si.data, "n,,", 3);
	assert_false(proto_parse_sasl_initial(none, sizeof(none) - 1, &si));
	assert_false(proto_parse_sasl_initial(negative, sizeof(negative) - 1, &si));
	assert_false(proto_parse_sasl_initial(overrun, sizeof(overrun) - 1, &si));
	assert_false(proto_parse_sasl_initial(good, 5, &si)); /* no NUL after the name */
}

static void test_buf_growth(void **state)
{
	struct buf b;
	uint8_t chunk[1000];
	(void)state;

	memset(chunk, 7, sizeof(chunk));
	buf_init(&b);
	for (int i = 0; i < 100; i++)
		buf_put(&b, chunk, sizeof(chunk));
	assert_int_equal(buf_len(&b), 100000);
	buf_consume(&b, 99000);
	assert_int_equal(buf_len(&b), 1000);
	assert_non_null(buf_reserve(&b, 50000));
	assert_int_equal(buf_len(&b), 1000);
	assert_int_equal(buf_head(&b)[999], 7);
	buf_consume(&b, 1000);
	assert_int_equal(buf_len(&b), 0);
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_header),          cmocka_unit_test(test_startup_v3),
	    cmocka_unit_test(test_startup_special), cmocka_unit_test(test_startup_malformed),
	    cmocka_unit_test(test_write_error),     cmocka_unit_test(test_writers),
	    cmocka_unit_test(test_reader_bounds),   cmocka_unit_test(test_buf_growth),
	    cmocka_unit_test(test_options),         cmocka_unit_test(test_sasl_initial),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
