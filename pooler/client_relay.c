/* client_relay: while a client holds a server, its bytes are scanned for message
 * boundaries and sent on; named statements get their server-side names; and at the start
 * of each transaction the batch decides which node runs it. See client.c for the states. */
#include "client_internal.h"

/* ---- relaying ---------------------------------------------------------------------- */

static bool quote_into(char *dst, size_t cap, size_t *len, const char *s)
{
	for (; *s; s++) {
		if (*len + 3 >= cap)
			return false;
		if (*s == '\'')
			dst[(*len)++] = '\'';
		dst[(*len)++] = *s;
	}
	return true;
}

static bool append(char *dst, size_t cap, size_t *len, const char *s)
{
	size_t n = strlen(s);
	if (*len + n + 1 >= cap)
		return false;
	memcpy(dst + *len, s, n);
	*len += n;
	dst[*len] = '\0';
	return true;
}

/* Make the server's parameters what this client expects: its own settings, and the
 * server's defaults for whatever an earlier client changed. One pooler query, whose reply
 * is swallowed, precedes the client's bytes on the same socket. */
void client_sync_params(struct client *c, struct server *s)
{
	char sql[4096];
	size_t len = 0;
	bool ok = true;

	/* Most clients of a pool ask for the same things: then there is nothing to do. */
	if (s->synced_fp == params_fingerprint(&c->wants))
		return;
	sql[0] = '\0';
	for (int i = 0; i < c->wants.n && ok; i++) {
		const struct param *want = &c->wants.items[i];
		const char *have = params_get(&s->params, want->name);
		if (have != NULL && strcmp(have, want->value) == 0)
			continue;
		ok = append(sql, sizeof(sql), &len, "SET ") &&
		     append(sql, sizeof(sql), &len, want->name) &&
		     append(sql, sizeof(sql), &len, " = '") &&
		     quote_into(sql, sizeof(sql), &len, want->value) &&
		     append(sql, sizeof(sql), &len, "';");
		if (ok)
			params_set(&s->params, want->name, want->value);
	}
	for (int i = 0; i < s->params.n && ok; i++) {
		struct param *p = &s->params.items[i];
		if (params_find(&c->wants, p->name) != NULL || client_param_server_owned(p->name))
			continue;
		if (p->base != NULL && strcmp(p->base, p->value) == 0)
			continue;
		ok = append(sql, sizeof(sql), &len, "RESET ") &&
		     append(sql, sizeof(sql), &len, p->name) && append(sql, sizeof(sql), &len, ";");
		if (ok && p->base == NULL) {
			params_remove(&s->params, p->name);
			i--;
		} else if (ok) {
			params_set(&s->params, p->name, p->base);
		}
	}
	if (!ok) {
		client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION, "startup parameters too long");
		return;
	}
	s->synced_fp = params_fingerprint(&c->wants);
	if (len > 0) {
		log_debug("c=%llu s=%llu %s", (unsigned long long)c->id, (unsigned long long)s->id,
		          sql);
		server_query(s, sql);
	}
}

/* ---- named statements -------------------------------------------------------------- */

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

/* Make sure the server has pst before the message at fwd uses it: send the stored Parse
 * ahead of it. Returns false when out of memory. */
static bool ensure_prepared(struct client *c, struct server *s, const struct pstmt *pst)
{
	if (stmt_set_has(&s->prepared, pst->server_name) ||
	    (s->parses != NULL && parse_queue_has(s->parses, pst->server_name)))
		return true;
	if (s->parses == NULL)
		s->parses = util_calloc(1, sizeof(*s->parses));
	if (!buf_splice(&c->conn.in, c->conn.fwd, 0, pst->parse, pst->parse_len))
		return false;
	if (!parse_queue_push(s->parses, pst->server_name, s->segments_sent, true))
		log_warning("s=%llu too many Parses in flight to track", (unsigned long long)s->id);
	s->unsynced = true;
	c->conn.fwd += pst->parse_len; /* already judged: the approval is not used up */
	return true;
}

/* Swap the client's statement name (at name_off inside the message at fwd, name_len
 * bytes without its NUL) for the server-side one and fix the length. */
static bool rename_in_place(struct client *c, struct proto_header *h, size_t name_off,
                            size_t name_len, const char *server_name)
{
	size_t new_len = strlen(server_name);
	if (!buf_splice(&c->conn.in, c->conn.fwd + name_off, name_len, server_name, new_len))
		return false;
	h->len = (uint32_t)(h->len - name_len + new_len);
	set_length(c, c->conn.fwd, h->len);
	c->approved = c->approved ? c->approved + new_len - name_len : 0;
	return true;
}

/* Parse, Bind, Describe and Close of named statements get the server-side names, and a
 * server that lacks a statement gets its Parse first. Returns 1 to go on, 0 to wait for
 * more bytes, -1 when the client was closed. */
static int named_statements(struct client *c, struct server *s, struct proto_header *h)
{
	size_t avail = buf_len(&c->conn.in) - c->conn.fwd;
	const uint8_t *body = buf_head(&c->conn.in) + c->conn.fwd + 5;
	size_t have = avail - 5 < h->len ? avail - 5 : h->len;
	const char *name;
	size_t name_off = 5;

	switch (h->type) {
	case 'Q': {
		/* DISCARD ALL / DEALLOCATE ALL drop the server's statements behind our back:
		 * forget what it had, and prepare again as needed */
		size_t i = 0;
		while (i < have && (body[i] == ' ' || body[i] == '\t' || body[i] == '\n'))
			i++;
		if (have - i >= 7 && (!strncasecmp((const char *)body + i, "discard", 7) ||
		                      !strncasecmp((const char *)body + i, "dealloc", 7)))
			stmt_set_clear(&s->prepared);
		return 1;
	}
	case 'P': {
		if (have < h->len)
			return 0; /* a Parse is kept whole */
		name = (const char *)body;
		size_t nlen = strnlen(name, h->len);
		if (nlen == h->len)
			return 1; /* malformed: the server will say so */
		if (s->parses == NULL)
			s->parses = util_calloc(1, sizeof(*s->parses));
		if (nlen == 0) {
			parse_queue_push(s->parses, "", s->segments_sent, false);
			return 1;
		}
		uint64_t salt = c->id << 20 ^ ++c->parse_seq;
		struct pstmt *pst =
		    pstmts_add(&c->stmts, salt, name, body + nlen + 1, h->len - nlen - 1);
		if (!rename_in_place(c, h, name_off, nlen, pst->server_name))
			goto oom;
		parse_queue_push(s->parses, pst->server_name, s->segments_sent, false);
		return 1;
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
		if (have < 2)
			return have < h->len ? 0 : 1;
		if (body[0] != 'S')
			return 1; /* portals live and die inside one transaction */
		name_off = 6;
		name = (const char *)body + 1;
		if (memchr(name, '\0', have - 1) == NULL)
			return have < h->len ? 0 : 1;
		if (*name == '\0')
			return 1;
		break;
	}
	default:
		return 1;
	}
	struct pstmt *pst = pstmts_find(&c->stmts, name);
	if (pst == NULL)
		return 1; /* never prepared: the server answers as PostgreSQL would */
	char server_name[PREPARED_NAME_LEN];
	size_t nlen = strlen(name);
	util_strlcpy(server_name, pst->server_name, sizeof(server_name));
	if (h->type == 'C') {
		if (!rename_in_place(c, h, name_off, nlen, server_name))
			goto oom;
		stmt_set_remove(&s->prepared, server_name);
		pstmts_remove(&c->stmts, name);
		return 1;
	}
	if (!ensure_prepared(c, s, pst))
		goto oom;
	if (!rename_in_place(c, h, name_off, nlen, server_name))
		goto oom;
	return 1;
oom:
	client_fatal(c, SQLSTATE_INTERNAL_ERROR, "out of memory");
	return -1;
}

/* Session state the pooler cannot carry: keep this server until the client leaves. */
static void pin(struct client *c, uint8_t reason)
{
	if (reason == PIN_NONE || c->pinned != PIN_NONE)
		return;
	c->pinned = reason;
	c->w->pinned_clients++;
	log_info("c=%llu user=%s db=%s keeps its server connection for the rest of the session "
	         "(%s)",
	         (unsigned long long)c->id, c->user, c->db, classify_pin_name(reason));
}

/* Advance the relay position by n bytes, using up the replica approval. */
static void advance(struct client *c, size_t n)
{
	c->conn.fwd += n;
	c->approved = c->approved > n ? c->approved - n : 0;
}

/* At the start of each later batch of a held server: on a replica, only batches fit for
 * it go through (a write waits until the replica is let go, then takes the primary); on
 * the primary, note possible writes and session-wide read-only switches. Returns false
 * to stop relaying for now. */
static bool check_batch(struct client *c, char type)
{
	struct conn *cn = &c->conn;
	const uint8_t *p = buf_head(&cn->in) + cn->fwd;
	size_t avail = buf_len(&cn->in) - cn->fwd;
	struct batch b;

	if (!c->on_replica) {
		if (type == 'Q' || type == 'P')
			c->tx_wrote = true;
		if (c->pinned == PIN_NONE && (type == 'Q' || type == 'P')) {
			/* only session-state detection: the server is chosen already */
			router_scan_batch(c->w->classifier, p, avail, client_names(c), &b);
			if (!b.complete)
				return avail < ROUTER_LOOKAHEAD ? false : true;
			if (b.session_ro >= 0)
				c->session_ro = b.session_ro;
			pin(c, b.pins);
		}
		return true;
	}
	if (c->ro_tx)
		return true;
	if (c->retry_batch != NULL) {
		/* keep the order: nothing overtakes a statement that may be run again */
		c->held = true;
		return false;
	}
	router_scan_batch(c->w->classifier, p, avail, client_names(c), &b);
	if (!b.complete)
		return false;
	if (!b.read_only || b.begin || b.hint == HINT_PRIMARY || b.session_ro >= 0) {
		c->held = true;
		log_debug("c=%llu holds a batch for the primary until the replica is free",
		          (unsigned long long)c->id);
		return false;
	}
	c->approved = b.end;
	return true;
}

/* Scan client bytes while linked: count what the server will answer, then send. */
void client_relay(struct client *c)
{
	struct conn *cn = &c->conn;
	struct server *s = c->server;
	struct proto_header h;
	bool terminate = false;

	while (!c->held) {
		size_t avail = buf_len(&cn->in) - cn->fwd;
		if (c->remain > 0) {
			size_t n = avail < c->remain ? avail : c->remain;
			if (n == 0)
				break;
			advance(c, n);
			c->remain -= (uint32_t)n;
			continue;
		}
		enum proto_status st =
		    proto_read_header(buf_head(&cn->in) + cn->fwd, avail, PROTO_MAX_MESSAGE, &h);
		if (st == PROTO_INCOMPLETE)
			break;
		if (st == PROTO_BAD) {
			client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION, "invalid message length");
			return;
		}
		if (c->approved == 0 && !s->unsynced && h.type != 'X' && !check_batch(c, h.type))
			break;
		int named = named_statements(c, s, &h);
		if (named < 0)
			return;
		if (named == 0)
			break;
		switch (h.type) {
		case 'Q':
		case 'F':
			server_segment_sent(s);
			break;
		case 'S':
			server_segment_sent(s);
			s->unsynced = false;
			break;
		case 'P':
		case 'B':
		case 'D':
		case 'E':
		case 'C':
			s->unsynced = true;
			break;
		case 'H':
		case 'd':
		case 'c':
		case 'f':
			break;
		case 'X':
			terminate = true;
			break;
		default: {
			char msg[80];
			snprintf(msg, sizeof(msg), "invalid frontend message type %d",
			         (unsigned char)h.type);
			client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION, msg);
			return;
		}
		}
		if (terminate)
			break;
		advance(c, 5);
		c->remain = h.len;
	}
	if (conn_flush(&s->conn) == CONN_ERROR) {
		/* the server's own read watcher reports the failure */
		log_debug("c=%llu s=%llu write to server failed", (unsigned long long)c->id,
		          (unsigned long long)s->id);
	}
	if (terminate && c->state == CLIENT_ACTIVE && cn->fwd == 0)
		client_close(c, "client said goodbye");
}

/* ---- routing ------------------------------------------------------------------------ */

/* The client's database section, looked up again only after a reload. */
static const struct db_conf *client_db(struct client *c)
{
	if (c->db_conf == NULL || c->db_gen != c->w->cfg_gen) {
		c->db_conf = config_find_db(c->w->cfg, c->db);
		c->db_gen = c->w->cfg_gen;
		memset(c->pool_cache, 0, sizeof(c->pool_cache));
	}
	return c->db_conf;
}

/* The pool for this client on node n; a small per-client cache spares the lookup. */
static struct pool *pool_for(struct client *c, const struct db_conf *db, struct node *n)
{
	size_t i;

	for (i = 0; i < ARRAY_LEN(c->pool_cache); i++)
		if (c->pool_cache[i].node == n)
			return c->pool_cache[i].pool;
	struct pool *p = pool_get(c->w, db, c->user, n, c->server_user, c->server_password);
	i = (size_t)(n->port) % ARRAY_LEN(c->pool_cache);
	c->pool_cache[i].node = n;
	c->pool_cache[i].pool = p;
	return p;
}

static bool has_replicas(const struct db_conf *db)
{
	for (int i = 0; i < db->n_nodes; i++)
		if (db->node_list[i]->role != NODE_ROLE_PRIMARY)
			return true;
	return false;
}

/* Answer a batch the pooler will not run with an ordinary error, so the session goes on;
 * FATAL when the batch has no end the client waits on. */
static void refuse_batch(struct client *c, const struct batch *b, const char *sqlstate,
                         const char *message)
{
	if (!b->complete || b->end == 0 || buf_head(&c->conn.in)[b->end - 5] == 'H') {
		client_fatal(c, sqlstate, message);
		return;
	}
	log_info("c=%llu user=%s db=%s error %s: %s", (unsigned long long)c->id, c->user, c->db,
	         sqlstate, message);
	buf_consume(&c->conn.in, b->end);
	proto_write_error(&c->conn.out, "ERROR", sqlstate, message);
	proto_write_ready(&c->conn.out, 'I');
	client_flush(c);
}

/* Whether reads may go to a replica yet after this client's last write. */
static bool caught_up(struct client *c, const struct db_conf *db)
{
	const struct config *cfg = c->w->cfg;

	if (c->ryw_since_us == 0 || cfg->read_your_writes == RYW_OFF)
		return true;
	if (cfg->read_your_writes == RYW_WINDOW) {
		if (util_now_us() <
		    c->ryw_since_us + (uint64_t)cfg->read_your_writes_window_ms * 1000)
			return false;
		c->ryw_since_us = 0;
		return true;
	}
	/* lsn: a primary probe sent after the commit knows a position covering it */
	uint64_t lsn = router_primary_lsn_since(c->w, db, c->ryw_since_us);
	if (lsn == 0)
		return false;
	if (lsn > c->min_lsn)
		c->min_lsn = lsn;
	c->ryw_since_us = 0;
	return true;
}

/* Choose the node for the transaction whose first bytes wait in the buffer. Returns NULL
 * when it must wait for more bytes or has answered the client itself. */
static struct node *route(struct client *c, const struct db_conf *db)
{
	struct batch b = {.read_only = false, .session_ro = -1};
	bool want_replica = false;
	struct node *n = NULL;

	c->on_replica = c->ro_tx = c->held = false;
	c->approved = 0;
	if (db->pool_mode == POOL_MODE_TRANSACTION) {
		router_scan_batch(c->w->classifier, buf_head(&c->conn.in), buf_len(&c->conn.in),
		                  client_names(c), &b);
		if (!b.complete)
			return NULL; /* the rest of the batch is on its way */
		pin(c, b.pins);
	}
	if (db->pool_mode == POOL_MODE_TRANSACTION && has_replicas(db) && c->pinned == PIN_NONE) {
		uint8_t hint = b.hint != HINT_NONE ? b.hint : c->forced_route;
		if (c->route_once != HINT_NONE) {
			hint = c->route_once;
			c->route_once = HINT_NONE;
		}
		if (hint != HINT_NONE)
			want_replica = hint == HINT_REPLICA;
		else if (c->session_ro == 1)
			want_replica = b.session_ro != 0; /* every transaction is read-only */
		else
			want_replica = b.read_only;
		if (b.session_ro >= 0)
			c->session_ro = b.session_ro;
		if (want_replica && hint != HINT_REPLICA && !caught_up(c, db))
			want_replica = false;
	}
	if (want_replica) {
		/* What asked for a replica by name (hint, pooler.route, READ ONLY) gets one
		 * while any is usable; plain reads share the load with the primary. */
		bool explicit = b.hint == HINT_REPLICA || c->forced_route == HINT_REPLICA ||
		                b.begin_ro || c->session_ro == 1;
		bool with_primary = c->w->cfg->replica_fallback == FALLBACK_PRIMARY;
		n = router_reader(c->w, db, c->min_lsn, with_primary && !explicit);
		if (n == NULL && explicit && with_primary)
			n = router_reader(c->w, db, c->min_lsn, true);
		if (n == NULL && c->w->cfg->replica_fallback == FALLBACK_ERROR) {
			refuse_batch(
			    c, &b, SQLSTATE_CANNOT_CONNECT_NOW,
			    "no replica is available for this read (replica_fallback = error)");
			return NULL;
		}
	}
	if (n != NULL && n->role == NODE_ROLE_PRIMARY) {
		c->w->metrics.routed_primary_read++;
		c->tx_wrote = false;
		c->approved = b.end;
		return n;
	}
	if (n != NULL) {
		c->w->metrics.routed_replica++;
		c->on_replica = true;
		c->ro_tx = b.begin_ro || c->session_ro == 1 || b.hint == HINT_REPLICA ||
		           c->forced_route == HINT_REPLICA;
		c->approved = b.end;
		/* An autocommit Query the classifier let through: keep a copy, so that if the
		 * replica refuses it as a write (25006) it runs on the primary instead. */
		const uint8_t *in = buf_head(&c->conn.in);
		if (!c->ro_tx && b.end >= 5 &&
		    (in[0] == 'Q' || (in[0] == 'P' && in[b.end - 5] == 'S'))) {
			c->retry_batch = malloc(b.end);
			if (c->retry_batch != NULL) {
				memcpy(c->retry_batch, buf_head(&c->conn.in), b.end);
				c->retry_len = b.end;
			}
		}
		return n;
	}
	n = router_primary(c->w, db);
	if (n == NULL) {
		refuse_batch(c, &b, SQLSTATE_CANNOT_CONNECT_NOW, "no primary server is available");
		return NULL;
	}
	c->tx_wrote = !(b.read_only && b.complete);
	if (c->tx_wrote)
		c->w->metrics.routed_primary_write++;
	else
		c->w->metrics.routed_primary_read++;
	c->approved = b.end;
	return n;
}

/* Between transactions: the first bytes of the next one ask for a server. */
void client_start_transaction(struct client *c)
{
	struct proto_header h;
	enum proto_status st =
	    proto_read_header(buf_head(&c->conn.in), buf_len(&c->conn.in), PROTO_MAX_MESSAGE, &h);
	if (st == PROTO_INCOMPLETE)
		return;
	if (st == PROTO_BAD) {
		client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION, "invalid message length");
		return;
	}
	if (h.type == 'X') {
		client_close(c, "client said goodbye");
		return;
	}
	if (c->w->shutting_down) {
		client_fatal(c, SQLSTATE_ADMIN_SHUTDOWN,
		             "terminating connection due to administrator command");
		return;
	}
	const struct db_conf *db = client_db(c);
	if (db == NULL) {
		client_fatal(c, SQLSTATE_UNKNOWN_DATABASE, "database was removed from the config");
		return;
	}
	struct node *n = route(c, db);
	if (n == NULL)
		return;
	c->pool = pool_for(c, db, n);
	client_set_state(c, CLIENT_WAITING);
	ev_timer_stop(c->w->loop, &c->timer); /* the session limits pause while it queues */
	pool_acquire(c->pool, &c->waiter);
	/* Only a client that really queues needs its wait timed. */
	if (c->state == CLIENT_WAITING && c->w->cfg->query_wait_timeout_ms > 0) {
		ev_timer_set(&c->timer, c->w->cfg->query_wait_timeout_ms / 1000.0, 0);
		ev_timer_start(c->w->loop, &c->timer);
	}
}

/* Put the refused Query back in front of whatever the client sent since, for the
 * primary. */
void client_retry_on_primary(struct client *c)
{
	struct buf *in = &c->conn.in;
	size_t rest = buf_len(in);

	if (buf_reserve(in, c->retry_len) == NULL) {
		client_fatal(c, SQLSTATE_INTERNAL_ERROR, "out of memory");
		return;
	}
	memmove(in->data + in->start + c->retry_len, in->data + in->start, rest);
	memcpy(in->data + in->start, c->retry_batch, c->retry_len);
	in->end += c->retry_len;
	c->route_once = HINT_PRIMARY;
}
