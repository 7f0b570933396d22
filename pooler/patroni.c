/* patroni: see include/patroni.h. */
#include "patroni.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_DEPTH 16 /* Patroni's answer nests four deep; more is not that document */

/* A reader over the body: where it is, and the first error met. */
struct reader {
	const char *start, *p, *end;
	int depth;
	bool failed;
	char *err;
	size_t errlen;
};

static bool fail(struct reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(struct reader *r, const char *fmt, ...)
{
	va_list ap;

	if (!r->failed) {
		int n = snprintf(r->err, r->errlen, "byte %ld: ", (long)(r->p - r->start));
		va_start(ap, fmt);
		if (n > 0 && (size_t)n < r->errlen)
			vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	r->failed = true;
	return false;
}

static void skip_ws(struct reader *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
		r->p++;
}

/* The next character after white space is c: consume it. */
static bool eat(struct reader *r, char c)
{
	skip_ws(r);
	if (r->p < r->end && *r->p == c) {
		r->p++;
		return true;
	}
	return false;
}

static int hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Append code point cp as UTF-8 to out (at *n, capacity cap - 1); too long is an error. */
static bool put_utf8(struct reader *r, char *out, size_t cap, size_t *n, unsigned cp)
{
	char b[4];
	size_t len;

	if (cp < 0x80) {
		b[0] = (char)cp;
		len = 1;
	} else if (cp < 0x800) {
		b[0] = (char)(0xc0 | cp >> 6);
		b[1] = (char)(0x80 | (cp & 0x3f));
		len = 2;
	} else {
		b[0] = (char)(0xe0 | cp >> 12);
		b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (char)(0x80 | (cp & 0x3f));
		len = 3;
	}
	if (out == NULL)
		return true; /* skipping */
	if (*n + len >= cap)
		return fail(r, "string longer than %zu bytes", cap - 1);
	memcpy(out + *n, b, len);
	*n += len;
	return true;
}

/* One escape after the backslash: its code point. */
static bool read_escape(struct reader *r, unsigned *cp)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	const char *e;

	if (r->p >= r->end)
		return fail(r, "unterminated string");
	if (*r->p == 'u') {
		if (r->end - r->p < 5)
			return fail(r, "bad \\u escape");
		*cp = 0;
		for (int i = 1; i <= 4; i++) {
			int h = hex(r->p[i]);
			if (h < 0)
				return fail(r, "bad \\u escape");
			*cp = *cp << 4 | (unsigned)h;
		}
		r->p += 5;
		return true;
	}
	e = strchr(from, *r->p);
	if (e == NULL || *r->p == '\0')
		return fail(r, "bad escape \\%c", *r->p);
	*cp = (unsigned char)to[e - from];
	r->p++;
	return true;
}

/* A string into out (cap bytes with its NUL), or skipped when out is NULL. */
static bool read_string(struct reader *r, char *out, size_t cap)
{
	size_t n = 0;

	if (!eat(r, '"'))
		return fail(r, "expected a string");
	while (r->p < r->end && *r->p != '"') {
		unsigned char c = (unsigned char)*r->p++;
		unsigned cp = 0;
		if (c < 0x20)
			return fail(r, "control character in a string");
		if (c != '\\') { /* raw bytes, UTF-8 included, are copied as they are */
			if (out != NULL && n + 1 >= cap)
				return fail(r, "string longer than %zu bytes", cap - 1);
			if (out != NULL)
				out[n++] = (char)c;
			continue;
		}
		if (!read_escape(r, &cp) || !put_utf8(r, out, cap, &n, cp))
			return false;
	}
	if (r->p >= r->end)
		return fail(r, "unterminated string");
	r->p++;
	if (out != NULL)
		out[n] = '\0';
	return true;
}

/* A JSON number that is an integer (Patroni's port, lag, timeline). */
static bool read_int(struct reader *r, int64_t *out)
{
	bool neg = false;
	int64_t v = 0;
	int digits = 0;

	skip_ws(r);
	if (r->p < r->end && *r->p == '-') {
		neg = true;
		r->p++;
	}
	while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
		if (++digits > 18)
			return fail(r, "number too large");
		v = v * 10 + (*r->p++ - '0');
	}
	if (digits == 0)
		return fail(r, "expected a number");
	if (r->p < r->end && (*r->p == '.' || *r->p == 'e' || *r->p == 'E')) {
		/* a fraction or exponent: read over it, the value is not an integer field */
		r->p++;
		while (r->p < r->end && strchr("0123456789+-eE", *r->p) != NULL)
			r->p++;
	}
	*out = neg ? -v : v;
	return true;
}

static bool read_literal(struct reader *r, const char *word, size_t len)
{
	skip_ws(r);
	if ((size_t)(r->end - r->p) < len || memcmp(r->p, word, len) != 0)
		return fail(r, "unexpected character '%c'", r->p < r->end ? *r->p : '?');
	r->p += len;
	return true;
}

/* The items of an object or an array, each handed to fn with its key (NULL in an array);
 * fn reads the value, or skips it with skip_value. */
typedef bool (*item_fn)(struct reader *r, const char *key, void *arg);

static bool read_container(struct reader *r, char open, item_fn fn, void *arg)
{
	char close = open == '{' ? '}' : ']';
	char key[128];

	if (!eat(r, open))
		return fail(r, "expected '%c'", open);
	if (++r->depth > MAX_DEPTH)
		return fail(r, "nested deeper than %d", MAX_DEPTH);
	if (!eat(r, close)) {
		do {
			if (open == '{' && (!read_string(r, key, sizeof(key)) || !eat(r, ':')))
				return fail(r, "expected \"key\": value");
			if (!fn(r, open == '{' ? key : NULL, arg))
				return false;
		} while (eat(r, ','));
		if (!eat(r, close))
			return fail(r, "expected ',' or '%c'", close);
	}
	r->depth--;
	return true;
}

static bool skip_item(struct reader *r, const char *key, void *arg);

/* Any value, read and dropped. */
static bool skip_value(struct reader *r)
{
	int64_t n;

	skip_ws(r);
	if (r->p >= r->end)
		return fail(r, "unexpected end");
	switch (*r->p) {
	case '{':
	case '[':
		return read_container(r, *r->p, skip_item, NULL);
	case '"':
		return read_string(r, NULL, 0);
	case 't':
		return read_literal(r, "true", 4);
	case 'f':
		return read_literal(r, "false", 5);
	case 'n':
		return read_literal(r, "null", 4);
	default:
		return read_int(r, &n);
	}
}

static bool skip_item(struct reader *r, const char *key, void *arg)
{
	(void)key;
	(void)arg;
	return skip_value(r);
}

/* true, false, or (Patroni writes tags as users typed them) "true"/"false". */
static bool read_bool(struct reader *r, bool *out)
{
	char s[8];

	skip_ws(r);
	if (r->p < r->end && *r->p == '"') {
		if (!read_string(r, s, sizeof(s)))
			return false;
		*out = strcasecmp(s, "true") == 0 || strcasecmp(s, "on") == 0 ||
		       strcasecmp(s, "yes") == 0;
		return true;
	}
	if (r->p < r->end && *r->p == 't') {
		*out = true;
		return read_literal(r, "true", 4);
	}
	*out = false;
	if (r->p < r->end && *r->p == 'n')
		return read_literal(r, "null", 4);
	return read_literal(r, "false", 5);
}

static bool on_tag(struct reader *r, const char *key, void *arg)
{
	struct patroni_member *m = arg;

	if (strcmp(key, "nofailover") == 0)
		return read_bool(r, &m->nofailover);
	if (strcmp(key, "noloadbalance") == 0)
		return read_bool(r, &m->noloadbalance);
	return skip_value(r);
}

static const char *const role_names[] = {
    [PATRONI_LEADER] = "leader",
    [PATRONI_SYNC_STANDBY] = "sync_standby",
    [PATRONI_REPLICA] = "replica",
    [PATRONI_OTHER] = "other",
};

const char *patroni_role_name(int role)
{
	return role >= 0 && role <= PATRONI_OTHER ? role_names[role] : "other";
}

static void set_role(struct patroni_member *m, const char *role)
{
	m->role = PATRONI_OTHER;
	m->standby = strcmp(role, "standby_leader") == 0;
	if (m->standby)
		m->role = PATRONI_LEADER;
	for (int i = 0; i < PATRONI_OTHER; i++)
		if (strcmp(role, role_names[i]) == 0)
			m->role = i;
}

/* One field of a member. "lag" is a number of bytes, or the string "unknown". */
static bool on_member_field(struct reader *r, const char *key, void *arg)
{
	struct patroni_member *m = arg;
	char role[32];
	int64_t v;

	if (strcmp(key, "name") == 0)
		return read_string(r, m->name, sizeof(m->name));
	if (strcmp(key, "host") == 0)
		return read_string(r, m->host, sizeof(m->host));
	if (strcmp(key, "state") == 0)
		return read_string(r, m->state, sizeof(m->state));
	if (strcmp(key, "role") == 0) {
		if (!read_string(r, role, sizeof(role)))
			return false;
		set_role(m, role);
		return true;
	}
	if (strcmp(key, "port") == 0) {
		if (!read_int(r, &v))
			return false;
		if (v < 1 || v > 65535)
			return fail(r, "port %lld out of range", (long long)v);
		m->port = (int)v;
		return true;
	}
	if (strcmp(key, "lag") == 0) {
		skip_ws(r);
		if (r->p < r->end && *r->p == '"')
			return read_string(r, NULL, 0); /* "unknown" */
		return read_int(r, &m->lag);
	}
	if (strcmp(key, "tags") == 0)
		return read_container(r, '{', on_tag, m);
	return skip_value(r);
}

static bool on_member(struct reader *r, const char *key, void *arg)
{
	struct patroni_cluster *c = arg;
	struct patroni_member *m;

	(void)key;
	if (c->n_members == PATRONI_MAX_MEMBERS)
		return fail(r, "more than %d members", PATRONI_MAX_MEMBERS);
	m = &c->members[c->n_members];
	memset(m, 0, sizeof(*m));
	m->lag = -1;
	m->role = PATRONI_OTHER;
	if (!read_container(r, '{', on_member_field, m))
		return false;
	if (m->name[0] == '\0' || m->host[0] == '\0' || m->port == 0)
		return fail(r, "a member without a name, host or port");
	for (int i = 0; i < c->n_members; i++)
		if (strcmp(c->members[i].name, m->name) == 0)
			return fail(r, "member %s listed twice", m->name);
	m->running = strcmp(m->state, "running") == 0 || strcmp(m->state, "streaming") == 0;
	c->n_members++;
	return true;
}

static bool on_top_field(struct reader *r, const char *key, void *arg)
{
	struct patroni_cluster *c = arg;

	if (strcmp(key, "members") == 0)
		return read_container(r, '[', on_member, c);
	if (strcmp(key, "pause") == 0)
		return read_bool(r, &c->paused);
	return skip_value(r);
}

bool patroni_parse(const char *body, size_t len, struct patroni_cluster *out, char *err,
                   size_t errlen)
{
	struct reader r = {
	    .start = body, .p = body, .end = body + len, .err = err, .errlen = errlen};

	memset(out, 0, sizeof(*out));
	skip_ws(&r);
	if (r.p >= r.end || *r.p != '{')
		return fail(&r, "not a JSON object");
	if (!read_container(&r, '{', on_top_field, out))
		return false;
	skip_ws(&r);
	if (r.p != r.end)
		return fail(&r, "text after the document");
	return true;
}

const struct patroni_member *patroni_leader(const struct patroni_cluster *c)
{
	for (int i = 0; i < c->n_members; i++)
		if (c->members[i].role == PATRONI_LEADER && !c->members[i].standby)
			return &c->members[i];
	return NULL;
}

bool patroni_url(const char *url, char *host, size_t hostlen, int *port)
{
	static const char scheme[] = "http://";
	const char *h, *colon, *end;
	char *stop;
	long v;

	if (strncmp(url, scheme, sizeof(scheme) - 1) != 0)
		return false;
	h = url + sizeof(scheme) - 1;
	end = h + strcspn(h, "/");
	if (*h == '[') { /* [IPv6]:port */
		const char *close = memchr(h, ']', (size_t)(end - h));
		if (close == NULL || close[1] != ':')
			return false;
		colon = close + 1;
		h++;
		end = close;
	} else {
		colon = memchr(h, ':', (size_t)(end - h));
		if (colon == NULL)
			return false;
		end = colon;
	}
	if (end == h || (size_t)(end - h) >= hostlen)
		return false;
	v = strtol(colon + 1, &stop, 10);
	if (stop == colon + 1 || (*stop != '\0' && *stop != '/') || v < 1 || v > 65535)
		return false;
	memcpy(host, h, (size_t)(end - h));
	host[end - h] = '\0';
	if (strcmp(host, "localhost") == 0)
		snprintf(host, hostlen, "127.0.0.1");
	*port = (int)v;
	return true;
}
