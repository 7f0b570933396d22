/* proto: see include/proto.h. */
#include "proto.h"

#include <string.h>

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

enum proto_status proto_read_header(const uint8_t *p, size_t n, uint32_t max,
                                    struct proto_header *h)
{
	uint32_t len;

	if (n < 5)
		return PROTO_INCOMPLETE;
	len = get_u32(p + 1);
	if (len < 4 || len - 4 > max)
		return PROTO_BAD;
	h->type = (char)p[0];
	h->len = len - 4;
	return PROTO_OK;
}

void proto_reader_init(struct proto_reader *r, const uint8_t *p, size_t n)
{
	r->p = p;
	r->end = p + n;
	r->err = false;
}

const uint8_t *proto_get_bytes(struct proto_reader *r, size_t n)
{
	const uint8_t *p = r->p;

	if (r->err || (size_t)(r->end - r->p) < n) {
		r->err = true;
		return NULL;
	}
	r->p += n;
	return p;
}

uint8_t proto_get_u8(struct proto_reader *r)
{
	const uint8_t *p = proto_get_bytes(r, 1);
	return p ? p[0] : 0;
}

uint16_t proto_get_u16(struct proto_reader *r)
{
	const uint8_t *p = proto_get_bytes(r, 2);
	return p ? (uint16_t)(p[0] << 8 | p[1]) : 0;
}

uint32_t proto_get_u32(struct proto_reader *r)
{
	const uint8_t *p = proto_get_bytes(r, 4);
	return p ? get_u32(p) : 0;
}

const char *proto_get_str(struct proto_reader *r)
{
	const uint8_t *nul;
	const char *s;

	if (r->err)
		return NULL;
	nul = memchr(r->p, '\0', (size_t)(r->end - r->p));
	if (nul == NULL) {
		r->err = true;
		return NULL;
	}
	s = (const char *)r->p;
	r->p = nul + 1;
	return s;
}

enum startup_kind proto_parse_startup(const uint8_t *body, size_t len, struct startup *s)
{
	struct proto_reader r;

	memset(s, 0, sizeof(*s));
	proto_reader_init(&r, body, len);
	s->version = proto_get_u32(&r);
	if (r.err)
		return s->kind = STARTUP_MALFORMED;
	switch (s->version) {
	case PROTO_SSL_REQUEST:
		return s->kind = len == 4 ? STARTUP_SSL : STARTUP_MALFORMED;
	case PROTO_GSSENC_REQUEST:
		return s->kind = len == 4 ? STARTUP_GSSENC : STARTUP_MALFORMED;
	case PROTO_CANCEL_REQUEST:
		s->cancel_pid = proto_get_u32(&r);
		s->cancel_key = proto_get_u32(&r);
		return s->kind = (!r.err && r.p == r.end) ? STARTUP_CANCEL : STARTUP_MALFORMED;
	default:
		break;
	}
	if (s->version >> 16 != 3)
		return s->kind = STARTUP_BAD_VERSION;

	/* Name/value pairs, then one empty name. Minor versions above 0 are served as 3.0,
	 * as PostgreSQL does when it answers with NegotiateProtocolVersion; we simply
	 * ignore the minor number and any _pq_. options. */
	for (;;) {
		const char *name = proto_get_str(&r);
		if (name == NULL)
			return s->kind = STARTUP_MALFORMED;
		if (*name == '\0')
			break;
		const char *value = proto_get_str(&r);
		if (value == NULL)
			return s->kind = STARTUP_MALFORMED;
		if (s->nparams == PROTO_MAX_PARAMS)
			return s->kind = STARTUP_TOO_MANY_PARAMS;
		s->names[s->nparams] = name;
		s->values[s->nparams] = value;
		s->nparams++;
	}
	if (r.p != r.end)
		return s->kind = STARTUP_MALFORMED;
	return s->kind = STARTUP_V3;
}

const char *proto_startup_get(const struct startup *s, const char *name)
{
	for (int i = 0; i < s->nparams; i++)
		if (strcmp(s->names[i], name) == 0)
			return s->values[i];
	return NULL;
}

bool proto_valid_param_name(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '.'))
			return false;
	return true;
}

bool proto_parse_options(const char *opts, proto_option_fn fn, void *arg)
{
	char tok[1024];
	const char *p = opts;
	bool expect_c = false;

	for (;;) {
		size_t n = 0;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		while (*p && *p != ' ' && *p != '\t') {
			if (*p == '\\' && p[1])
				p++;
			if (n + 1 >= sizeof(tok))
				return false;
			tok[n++] = *p++;
		}
		tok[n] = '\0';
		char *kv;
		if (expect_c) {
			kv = tok;
			expect_c = false;
		} else if (strcmp(tok, "-c") == 0) {
			expect_c = true;
			continue;
		} else if (strncmp(tok, "-c", 2) == 0 || strncmp(tok, "--", 2) == 0) {
			kv = tok + 2;
		} else {
			return false;
		}
		char *eq = strchr(kv, '=');
		if (eq == NULL)
			return false;
		*eq = '\0';
		for (char *d = kv; *d; d++)
			if (*d == '-')
				*d = '_';
		if (!proto_valid_param_name(kv) || !fn(arg, kv, eq + 1))
			return false;
	}
	return !expect_c;
}

bool proto_parse_sasl_initial(const uint8_t *body, size_t len, struct sasl_initial *out)
{
	struct proto_reader r;

	proto_reader_init(&r, body, len);
	out->mechanism = proto_get_str(&r);
	int32_t n = (int32_t)proto_get_u32(&r);
	if (r.err || n < 0)
		return false;
	out->data = proto_get_bytes(&r, (size_t)n);
	out->len = (size_t)n;
	return !r.err && out->data != NULL;
}

size_t proto_begin(struct buf *b, char type)
{
	size_t start = b->end;
	buf_put_u8(b, (uint8_t)type);
	buf_put_u32(b, 0);
	return start;
}

void proto_end(struct buf *b, size_t start)
{
	uint32_t len = (uint32_t)(b->end - start - 1);
	uint8_t *p = b->data + start + 1;
	p[0] = (uint8_t)(len >> 24);
	p[1] = (uint8_t)(len >> 16);
	p[2] = (uint8_t)(len >> 8);
	p[3] = (uint8_t)len;
}

void proto_write_error(struct buf *b, const char *severity, const char *sqlstate,
                       const char *message)
{
	size_t m = proto_begin(b, 'E');
	buf_put_u8(b, 'S');
	buf_put_str(b, severity);
	buf_put_u8(b, 'V');
	buf_put_str(b, severity);
	buf_put_u8(b, 'C');
	buf_put_str(b, sqlstate);
	buf_put_u8(b, 'M');
	buf_put_str(b, message);
	buf_put_u8(b, 0);
	proto_end(b, m);
}

void proto_write_auth(struct buf *b, uint32_t code, const void *data, size_t len)
{
	size_t m = proto_begin(b, 'R');
	buf_put_u32(b, code);
	if (len > 0)
		buf_put(b, data, len);
	proto_end(b, m);
}

void proto_write_param(struct buf *b, const char *name, const char *value)
{
	size_t m = proto_begin(b, 'S');
	buf_put_str(b, name);
	buf_put_str(b, value);
	proto_end(b, m);
}

void proto_write_key(struct buf *b, uint32_t pid, uint32_t key)
{
	size_t m = proto_begin(b, 'K');
	buf_put_u32(b, pid);
	buf_put_u32(b, key);
	proto_end(b, m);
}

void proto_write_ready(struct buf *b, char status)
{
	size_t m = proto_begin(b, 'Z');
	buf_put_u8(b, (uint8_t)status);
	proto_end(b, m);
}

void proto_write_query(struct buf *b, const char *sql)
{
	size_t m = proto_begin(b, 'Q');
	buf_put_str(b, sql);
	proto_end(b, m);
}

bool proto_parse_error(const uint8_t *body, size_t len, struct proto_error *e)
{
	struct proto_reader r;

	memset(e, 0, sizeof(*e));
	proto_reader_init(&r, body, len);
	for (;;) {
		uint8_t code = proto_get_u8(&r);
		if (r.err)
			return false;
		if (code == 0)
			return true;
		const char *v = proto_get_str(&r);
		if (v == NULL)
			return false;
		if (code == 'S' && e->severity == NULL)
			e->severity = v;
		else if (code == 'V')
			e->severity = v;
		else if (code == 'C')
			e->sqlstate = v;
		else if (code == 'M')
			e->message = v;
	}
}
