/* client_stmts: the client's statements and settings on their way to a server. Named
 * prepared statements get their shared server-side names, a server lacking one (or the
 * client's unnamed statement) gets its Parse first, its cache stays bounded; a DEALLOCATE
 * of a client's own statement is answered here; a SET the pooler can carry is remembered;
 * each server gets the client's parameters, and a RESET gives back its login values. See
 * include/prepared.h for the scheme and client.c for the states. */
#include "client_internal.h"

/* Write a new length into the message header at offset off of the client's buffer. */
static void set_length(struct client *c, size_t off, uint32_t body_len)
{
	uint8_t *p = buf_head(&c->conn.in) + off + 1;
	uint32_t len = body_len + 4;
	p[0] = (uint8_t)(len >> 24);
	p[1] = (uint8_t)(len >> 16);
	p[2] = (uint8_t)(len >> 8);
	p[3] = (uint8_t)len;
}

/* Note a Parse or Close whose answer the server owes, in the order it goes out. */
static bool expect_reply(struct client *c, struct server *s, char type, uint64_t hash, uint8_t kind)
{
	if (s->replies == NULL)
		s->replies = util_calloc(1, sizeof(*s->replies));
	if (reply_queue_push(s->replies, type, hash, s->segments_sent, kind))
		return true;
	client_fatal(c, SQLSTATE_PROGRAM_LIMIT_EXCEEDED,
	             "too many Parse and Close messages without Sync");
	return false;
}

/* Put a message of the pooler's own in front of the one at fwd. */
static bool inject(struct client *c, struct server *s, const uint8_t *msg, size_t len)
{
	if (!buf_splice(&c->conn.in, c->conn.fwd, 0, msg, len)) {
		client_fatal(c, SQLSTATE_INTERNAL_ERROR, "out of memory");
		return false;
	}
	s->unsynced = true;
	c->conn.fwd += len; /* already judged: the approval is not used up */
	return true;
}

/* Close least recently used statements until one more fits the server's cache. */
static bool make_room(struct client *c, struct server *s)
{
	while (s->prepared.n >= s->stmt_cache_size) {
		uint64_t victim = stmt_cache_evict(&s->prepared, 0);
		char name[PREPARED_NAME_LEN];
		uint8_t msg[64];
		if (victim == 0)
			break;
		prepared_server_name(victim, name);
		size_t len = prepared_close_message(name, msg, sizeof(msg));
		if (!inject(c, s, msg, len) || !expect_reply(c, s, '3', victim, REPLY_CLOSE_EVICT))
			return false;
		c->w->metrics.prepared_evictions++;
	}
	return true;
}

/* Make sure the server has pst before the message at fwd uses it: send its Parse ahead
 * of it. */
static bool ensure_prepared(struct client *c, struct server *s, const struct pstmt *pst)
{
	size_t len;

	if (stmt_cache_touch(&s->prepared, pst->hash))
		return true;
	if (!make_room(c, s))
		return false;
	uint8_t *msg = prepared_parse_message(pst, &len);
	bool ok = msg != NULL && inject(c, s, msg, len) &&
	          expect_reply(c, s, '1', pst->hash, REPLY_PARSE_DROP);
	free(msg);
	if (msg == NULL)
		client_fatal(c, SQLSTATE_INTERNAL_ERROR, "out of memory");
	if (!ok)
		return false;
	stmt_cache_add(&s->prepared, pst->hash);
	c->w->metrics.prepared_parses++;
	return true;
}

/* Replace old_len bytes at off inside the message at fwd with new_len bytes of data and
 * fix its length. */
static bool rewrite(struct client *c, struct proto_header *h, size_t off, size_t old_len,
                    const void *data, size_t new_len)
{
	if (!buf_splice(&c->conn.in, c->conn.fwd + off, old_len, data, new_len)) {
		client_fatal(c, SQLSTATE_INTERNAL_ERROR, "out of memory");
		return false;
	}
	h->len = (uint32_t)(h->len - old_len + new_len);
	set_length(c, c->conn.fwd, h->len);
	c->approved = c->approved ? c->approved + new_len - old_len : 0;
	return true;
}

static void put_complete(struct buf *out, const char *tag)
{
	buf_put_u8(out, 'C');
	buf_put_u32(out, (uint32_t)(4 + strlen(tag) + 1));
	buf_put_str(out, tag);
}

static void put_empty(struct buf *out, char type)
{
	buf_put_u8(out, (uint8_t)type);
	buf_put_u32(out, 4);
}

/* The text of the one statement of the batch at m (avail bytes): a simple Query, or an
 * unnamed Parse without parameter types followed by its Bind, Describe and Execute up to
 * Sync (what libpq's PQsendQueryParams and pgjdbc send). Sets *len to the bytes of the
 * batch. NULL for anything else. */
static const uint8_t *one_statement_batch(const uint8_t *m, size_t avail, size_t *len,
                                          size_t *text_len)
{
	struct proto_header h;

	if (proto_read_header(m, avail, PROTO_MAX_MESSAGE, &h) != PROTO_OK || h.len > 256 ||
	    avail < 5 + (size_t)h.len)
		return NULL;
	if (h.type == 'Q') {
		*len = 5 + h.len;
		*text_len = h.len;
		return m + 5;
	}
	if (h.type != 'P' || h.len < 4 || m[5] != '\0' || m[4 + h.len] != '\0' ||
	    m[3 + h.len] != '\0')
		return NULL; /* named, or with parameter types */
	for (size_t at = 5 + h.len; at < avail;) {
		struct proto_header n;
		if (proto_read_header(m + at, avail - at, PROTO_MAX_MESSAGE, &n) != PROTO_OK ||
		    avail - at < 5 + (size_t)n.len || !strchr("BDES", n.type))
			return NULL;
		at += 5 + n.len;
		if (n.type == 'S') {
			*len = at;
			*text_len = h.len - 3;
			return m + 6;
		}
	}
	return NULL;
}

/* A DEALLOCATE of one of the client's own protocol-level statements (psycopg deallocates
 * so): only the client's name goes, and the pooler answers as PostgreSQL would, since
 * other clients may share the statement on the server. The batch at the relay position
 * is consumed. tx_status is for the ReadyForQuery. Returns true when answered. */
bool client_deallocate_own(struct client *c, char tx_status)
{
	struct conn *cn = &c->conn;
	const uint8_t *m = buf_head(&cn->in) + cn->fwd;
	size_t len, text_len;
	char name[128];

	if (c->stmts == NULL || c->stmts->n == 0)
		return false;
	const uint8_t *text = one_statement_batch(m, buf_len(&cn->in) - cn->fwd, &len, &text_len);
	if (text == NULL ||
	    !classify_deallocate_name((const char *)text, text_len, name, sizeof(name)) ||
	    pstmts_find(c->stmts, name) == NULL)
		return false;
	pstmts_remove(c->stmts, name);
	if (m[0] == 'Q') {
		put_complete(&cn->out, "DEALLOCATE");
	} else {
		struct proto_header h;
		for (size_t at = 0; at < len; at += 5 + h.len) {
			if (proto_read_header(m + at, len - at, PROTO_MAX_MESSAGE, &h) != PROTO_OK)
				break;
			switch (m[at]) {
			case 'P':
				put_empty(&cn->out, '1');
				break;
			case 'B':
				put_empty(&cn->out, '2');
				break;
			case 'D':
				put_empty(&cn->out, 'n');
				break;
			case 'E':
				put_complete(&cn->out, "DEALLOCATE");
				break;
			default:
				break;
			}
		}
	}
	conn_cut(cn, cn->fwd, len);
	proto_write_ready(&cn->out, tx_status);
	client_flush(c);
	return true;
}

/* A named Parse: remember it for the client and give it the shared server-side name; a
 * server that has the statement already gets a Close of a name that does not exist
 * instead, whose answer reaches the client as ParseComplete. */
static int named_parse(struct client *c, struct server *s, struct proto_header *h,
                       const uint8_t *body, size_t nlen)
{
	const char *name = (const char *)body;
	struct pstmt *pst =
	    pstmts_add(client_stmts_of(c), name, body + nlen + 1, h->len - nlen - 1);

	if (stmt_cache_touch(&s->prepared, pst->hash)) {
		uint8_t msg[64];
		size_t len = prepared_close_message(PREPARED_NO_NAME, msg, sizeof(msg));
		if (!rewrite(c, h, 0, 5 + h->len, msg, len))
			return -1;
		h->type = 'C';
		h->len = (uint32_t)(len - 5);
		c->w->metrics.prepared_shared++;
		return expect_reply(c, s, '3', pst->hash, REPLY_CLOSE_PARSE) ? 1 : -1;
	}
	if (!make_room(c, s) || !rewrite(c, h, 5, nlen, pst->server_name, PREPARED_NAME_LEN - 1))
		return -1;
	stmt_cache_add(&s->prepared, pst->hash);
	c->w->metrics.prepared_parses++;
	return expect_reply(c, s, '1', pst->hash, REPLY_PASS) ? 1 : -1;
}

/* The unnamed statement outlives its Sync (psql's \gdesc sends Parse, Sync, then Describe,
 * Sync), and in transaction mode the second part may land on another server: the
 * client's last unnamed Parse is kept whole and sent again ahead of a Bind or Describe of
 * it on a server that does not have it. A simple Query replaces the unnamed statement. */
static int unnamed_statement(struct client *c, struct server *s, const struct proto_header *h,
                             const uint8_t *body, size_t have)
{
	struct client_stmts *cs = c->stmts;
	uint64_t mine;

	switch (h->type) {
	case 'Q':
		s->unnamed_owner = 0;
		return 1;
	case 'P':
		if (have < h->len)
			return 0; /* a Parse is kept whole */
		if (body[0] != '\0')
			return 1;
		cs = client_stmts_of(c);
		buf_reset(&cs->unnamed);
		buf_put(&cs->unnamed, body - 5, 5 + (size_t)h->len);
		cs->unnamed_gen++;
		s->unnamed_owner = c->id << 32 | cs->unnamed_gen;
		return 1;
	case 'B': {
		/* portal name, then statement name */
		const uint8_t *nul = memchr(body, '\0', have);
		if (nul == NULL || nul + 1 >= body + have)
			return have < h->len ? 0 : 1;
		if (nul[1] != '\0')
			return 1;
		break;
	}
	case 'D':
		if (have < 2)
			return have < h->len ? 0 : 1;
		if (body[0] != 'S' || body[1] != '\0')
			return 1;
		break;
	default:
		return 1;
	}
	if (cs == NULL)
		return 1; /* no unnamed Parse kept */
	mine = c->id << 32 | cs->unnamed_gen;
	if (buf_len(&cs->unnamed) == 0 || s->unnamed_owner == mine)
		return 1;
	if (!inject(c, s, buf_head(&cs->unnamed), buf_len(&cs->unnamed)) ||
	    !expect_reply(c, s, '1', 0, REPLY_PARSE_DROP))
		return -1;
	s->unnamed_owner = mine;
	c->w->metrics.unnamed_replays++;
	return 1;
}

/* Parse, Bind, Describe and Close of named statements get the server-side names, and a
 * server that lacks a statement gets its Parse first. Returns 1 to go on, 0 to wait for
 * more bytes, -1 when the client was closed. */
int client_named_statements(struct client *c, struct server *s, struct proto_header *h)
{
	size_t avail = buf_len(&c->conn.in) - c->conn.fwd;
	const uint8_t *body = buf_head(&c->conn.in) + c->conn.fwd + 5;
	size_t have = avail - 5 < h->len ? avail - 5 : h->len;
	const char *name;
	size_t name_off = 5;

	int unnamed = unnamed_statement(c, s, h, body, have);
	if (unnamed <= 0)
		return unnamed;
	body = buf_head(&c->conn.in) + c->conn.fwd + 5; /* a Parse may have gone in front */
	if (s->stmt_cache_size == 0)
		return 1; /* prepared_statement_cache_size = 0: not tracked */
	switch (h->type) {
	case 'Q':
		if (classify_drops_statements((const char *)body, have))
			stmt_cache_clear(&s->prepared);
		return 1;
	case 'P': {
		if (have < h->len)
			return 0; /* a Parse is kept whole */
		size_t nlen = strnlen((const char *)body, h->len);
		if (nlen == h->len)
			return 1; /* malformed: the server will say so */
		if (nlen == 0) {
			if (classify_drops_statements((const char *)body + 1, h->len - 1))
				stmt_cache_clear(&s->prepared);
			return expect_reply(c, s, '1', 0, REPLY_PASS) ? 1 : -1;
		}
		return named_parse(c, s, h, body, nlen);
	}
	case 'B': {
		/* portal name, then statement name */
		const uint8_t *nul = memchr(body, '\0', have);
		if (nul == NULL)
			return have < h->len ? 0 : 1;
		name_off = 5 + (size_t)(nul - body) + 1;
		name = (const char *)nul + 1;
		const uint8_t *end = memchr(nul + 1, '\0', have - (size_t)(nul + 1 - body));
		if (end == NULL)
			return have < h->len ? 0 : 1;
		if (*name == '\0')
			return 1;
		break;
	}
	case 'D':
	case 'C': {
		if (have < 2 || memchr(body + 1, '\0', have - 1) == NULL)
			return have < h->len ? 0 : 1;
		if (h->type == 'C' && !expect_reply(c, s, '3', 0, REPLY_PASS))
			return -1;
		if (body[0] != 'S')
			return 1; /* portals live and die inside one transaction */
		name_off = 6;
		name = (const char *)body + 1;
		if (*name == '\0')
			return 1;
		break;
	}
	default:
		return 1;
	}
	struct pstmt *pst = pstmts_find(c->stmts, name);
	if (pst == NULL)
		return 1; /* never prepared: the server answers as PostgreSQL would */
	size_t nlen = strlen(name);
	if (h->type == 'C') {
		/* only the client's own name goes: others may share the statement */
		pstmts_remove(c->stmts, name);
		return rewrite(c, h, name_off, nlen, PREPARED_NO_NAME, strlen(PREPARED_NO_NAME))
		           ? 1
		           : -1;
	}
	if (!ensure_prepared(c, s, pst))
		return -1;
	return rewrite(c, h, name_off, nlen, pst->server_name, PREPARED_NAME_LEN - 1) ? 1 : -1;
}

/* A session that keeps its server (session mode, pinned) clears stale statements when
 * the server is between transactions; other servers do it on their way back to the
 * pool. */
void client_forget_stale_statements(struct server *s)
{
	if (!s->stmts_stale || s->pending > 0 || s->swallow > 0 || s->tx_status != 'I')
		return;
	s->stmts_stale = false;
	stmt_cache_clear(&s->prepared);
	server_query(s, "DEALLOCATE ALL");
}

/* A first batch (batch_end bytes) that is just "SET [SESSION] name {= | TO} value", alone
 * in its own autocommit transaction: carried like a startup parameter instead of pinning
 * the client. The value becomes the client's wish, set on every server it gets from now on
 * (client_sync_params) and taken back for the next client; RESET, RESET ALL and DISCARD
 * ALL forget it. A value the server refuses is refused to the client by its own SET, and
 * the pooler's later attempts to set it fail quietly, as the client's session expects. */
bool client_carry_set(struct client *c, size_t batch_end)
{
	size_t len, text_len;
	char name[64], value[256];
	const char *canonical = NULL;
	const uint8_t *text =
	    one_statement_batch(buf_head(&c->conn.in), batch_end, &len, &text_len);

	if (text == NULL || len != batch_end ||
	    !classify_plain_set((const char *)text, text_len, name, sizeof(name), value,
	                        sizeof(value)) ||
	    strchr(value, '$') != NULL) /* set again inside a dollar-quoted DO block */
		return false;
	enum param_kind kind = classify_param(name, &canonical);
	if (kind == PARAM_SERVER_OWNED || kind == PARAM_PINS)
		return false;
	params_set(&c->wants, canonical != NULL ? canonical : name, value);
	c->w->metrics.settings_carried++;
	return true;
}

/* ---- settings: the client's parameters on each server, its login values after RESET ---- */

/* Append s as the body of a single-quoted SQL literal. */
static void put_quoted(struct buf *sql, const char *s)
{
	for (; *s; s++) {
		if (*s == '\'')
			buf_put_u8(sql, '\'');
		buf_put_u8(sql, (uint8_t)*s);
	}
}

static void put_text(struct buf *sql, const char *s)
{
	buf_put(sql, s, strlen(s));
}

/* Append a statement that sets name to value for the session. set_config reads the value
 * as a startup packet's is read, so a list such as search_path = a,b stays a list (SET
 * would take the quoted text for one name). */
static void put_set(struct buf *sql, const char *name, const char *value)
{
	put_text(sql, "SELECT pg_catalog.set_config('");
	put_quoted(sql, name);
	put_text(sql, "', '");
	put_quoted(sql, value);
	put_text(sql, "', false);");
}

/* Append a statement that sets name to value for the session, or does nothing if the
 * server refuses the value: for what the client set during its session, whose own SET
 * already told it whether the value was accepted. */
static void put_set_quietly(struct buf *sql, const char *name, const char *value)
{
	put_text(sql, "DO $pooler$BEGIN PERFORM pg_catalog.set_config('");
	put_quoted(sql, name);
	put_text(sql, "', '");
	put_quoted(sql, value);
	put_text(sql, "', false); EXCEPTION WHEN OTHERS THEN NULL; END$pooler$;");
}

/* Make the server's parameters what this client expects: its own settings, and the
 * server's defaults for whatever an earlier client changed. One pooler query, whose reply
 * is swallowed, precedes the client's bytes on the same socket. The query grows with the
 * parameters: a startup packet may carry values of up to 10000 bytes. */
void client_sync_params(struct client *c, struct server *s)
{
	struct buf sql;

	/* Most clients of a pool ask for the same things: then there is nothing to do. */
	if (s->synced_fp == params_fingerprint(&c->wants))
		return;
	buf_init(&sql);
	for (int i = 0; i < c->wants.n; i++) {
		const struct param *want = &c->wants.items[i];
		const char *have = params_get(&s->params, want->name);
		if (have != NULL && strcmp(have, want->value) == 0)
			continue;
		/* a startup value the server refuses fails the login, as in PostgreSQL */
		if (want->base != NULL && strcmp(want->base, want->value) == 0)
			put_set(&sql, want->name, want->value);
		else
			put_set_quietly(&sql, want->name, want->value);
		params_set(&s->params, want->name, want->value);
	}
	for (int i = 0; i < s->params.n; i++) {
		struct param *p = &s->params.items[i];
		if (params_find(&c->wants, p->name) != NULL || client_param_server_owned(p->name))
			continue;
		if (p->base != NULL && strcmp(p->base, p->value) == 0)
			continue;
		put_text(&sql, "RESET ");
		put_text(&sql, p->name);
		put_text(&sql, ";");
		if (p->base == NULL) {
			params_remove(&s->params, p->name);
			i--;
		} else {
			params_set(&s->params, p->name, p->base);
		}
	}
	s->synced_fp = params_fingerprint(&c->wants);
	if (buf_len(&sql) > 0) {
		buf_put_u8(&sql, '\0');
		log_debug("c=%llu s=%llu %.200s", (unsigned long long)c->id,
		          (unsigned long long)s->id, (const char *)buf_head(&sql));
		server_query(s, (const char *)buf_head(&sql));
	}
	buf_free(&sql);
}

/* One setting a client's RESET (or SET ... TO DEFAULT) took back: the client's login value
 * returns, by a SET the pooler adds to sql; for a setting it did not log in with, the
 * server's own default stands and the client's value is forgotten. */
static void restore_setting(struct client *c, struct server *s, const char *name, struct buf *sql)
{
	struct param *want = params_find(&c->wants, name);
	struct param *have = params_find(&s->params, name);

	if (want != NULL && want->base != NULL) {
		put_set(sql, want->name, want->base);
		params_set(&s->params, want->name, want->base);
		params_set(&c->wants, want->name, want->base);
		return;
	}
	if (want != NULL)
		params_remove(&c->wants, name);
	if (have != NULL && have->base == NULL)
		params_remove(&s->params, name);
	else if (have != NULL)
		params_set(&s->params, name, have->base);
}

struct reset_names {
	struct client *c;
	struct server *s;
	struct buf *sql;
};

static void on_reset_name(void *arg, const char *name)
{
	struct reset_names *x = arg;
	restore_setting(x->c, x->s, name, x->sql);
}

/* The SQL that gives back the login values a batch [start, end) took back, and the
 * bookkeeping of both sides to match. */
static void login_values_sql(struct client *c, struct server *s, uint8_t resets, size_t start,
                             size_t end, struct buf *sql)
{
	const uint8_t *in = buf_head(&c->conn.in);
	struct proto_header h;

	if (resets == RESETS_ALL) {
		server_forget_settings(s);
		for (int i = c->wants.n - 1; i >= 0; i--)
			restore_setting(c, s, c->wants.items[i].name, sql);
	} else {
		struct reset_names x = {c, s, sql};
		size_t len;
		for (size_t at = start; at + 5 <= end; at += 5 + h.len) {
			if (proto_read_header(in + at, end - at, PROTO_MAX_MESSAGE, &h) != PROTO_OK)
				break;
			const char *text = batch_sql_text(h.type, in + at + 5, h.len, &len);
			if (text != NULL)
				classify_reset_names(text, len, on_reset_name, &x);
		}
	}
	s->synced_fp = params_fingerprint(&c->wants);
}

/* The batch at [start, start + b->end) RESETs settings, RESET ALL or DISCARD ALL: PostgreSQL
 * brings back what the client logged in with, the server would bring back its own login's.
 * A query of the pooler's right behind the batch sets the client's values again; the client
 * sees its ParameterStatus and one ReadyForQuery (server_restore_after_next). Returns the
 * bytes put into the client's buffer. */
size_t client_restore_login_values(struct client *c, struct server *s, size_t start,
                                   const struct batch *b)
{
	size_t end = start + b->end;
	struct buf sql, q;

	if (b->resets == RESETS_NONE)
		return 0;
	/* the bookkeeping below assumes the batch commits: a rollback would undo the RESET */
	s->needs_restore = true;
	if (c->retry != RETRY_NONE || s->guard || (b->last != 'Q' && b->last != 'S'))
		return 0; /* a kept batch, or no ReadyForQuery to stand in for */
	buf_init(&sql);
	login_values_sql(c, s, b->resets, start, end, &sql);
	size_t len = 0;
	if (buf_len(&sql) > 0) {
		buf_put_u8(&sql, '\0');
		buf_init(&q);
		proto_write_query(&q, (const char *)buf_head(&sql));
		if (buf_splice(&c->conn.in, end, 0, buf_head(&q), buf_len(&q))) {
			len = buf_len(&q);
			server_restore_after_next(s);
			c->w->metrics.login_restores++;
			log_debug("c=%llu s=%llu login settings back: %.200s",
			          (unsigned long long)c->id, (unsigned long long)s->id,
			          (const char *)buf_head(&sql));
		}
		buf_free(&q);
	}
	buf_free(&sql);
	return len;
}

/* Facts of the batch that opened the transaction, for the server that runs it: settings
 * it may change unseen, login values to give back after it. Called once linked; the
 * batch is still at the head of the client's buffer. */
void client_first_batch_linked(struct client *c, struct server *s)
{
	if (c->begin_moves) {
		/* a transaction moved from a replica: its BEGIN runs here first, unseen */
		server_query(s, c->begin_text);
		free(c->begin_text);
		c->begin_text = NULL;
		c->begin_moves = false;
	}
	if (c->first.restore)
		s->needs_restore = true;
	c->approved += client_restore_login_values(c, s, 0, &c->first);
	c->first.restore = false;
	c->first.resets = RESETS_NONE;
}
