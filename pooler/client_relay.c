/* client_relay: while a client holds a server, its bytes are scanned for message
 * boundaries and sent on (named statements get their server-side names in
 * client_stmts.c); and at the start of each transaction the batch decides which node runs
 * it. See client.c for the states. */
#include "client_internal.h"

/* ---- relaying ---------------------------------------------------------------------- */

/* The largest message body this client may send (max_packet_size counts the length
 * field too): a longer one is refused from its header, before any body byte is read. */
static uint32_t client_max_body(const struct client *c)
{
	return (uint32_t)c->w->cfg->max_packet_size - 4;
}

static void log_pinned(const struct client *c, uint8_t reason)
{
	log_info("c=%llu user=%s db=%s keeps its server connection for the rest of the session "
	         "(%s)",
	         (unsigned long long)c->id, c->user, c->db, classify_pin_name(reason));
}

/* Session state the pooler cannot carry, met inside a transaction: keep this server until
 * the client leaves. In session mode every client keeps its server anyway: nothing to
 * say. */
static void pin(struct client *c, uint8_t reason)
{
	if (reason == PIN_NONE || c->route.pinned != PIN_NONE || c->pool->mode == POOL_MODE_SESSION)
		return;
	c->route.pinned = reason;
	c->w->metrics.pinned[reason]++;
	log_pinned(c, reason);
}

/* pin_action = error, inside a transaction: the batch at fwd (end bytes) becomes a query
 * that fails on the server with the refusal, so that the transaction is aborted exactly
 * as PostgreSQL aborts one after an error and nothing of the batch runs. */
static bool refuse_pin_in_transaction(struct client *c, uint8_t reason, size_t end)
{
	char msg[200];
	char sql[400];
	struct buf q;

	router_pin_refusal(reason, msg, sizeof(msg));
	if (buf_head(&c->conn.in)[c->conn.fwd + end - 5] == 'H') {
		client_fatal(c, SQLSTATE_FEATURE_NOT_SUPPORTED, msg); /* no Sync to answer */
		return false;
	}
	snprintf(sql, sizeof(sql),
	         "DO $pooler$BEGIN RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = '%s'; "
	         "END$pooler$",
	         msg);
	buf_init(&q);
	proto_write_query(&q, sql);
	bool ok = buf_splice(&c->conn.in, c->conn.fwd, end, buf_head(&q), buf_len(&q));
	buf_free(&q);
	if (!ok)
		client_fatal(c, SQLSTATE_INTERNAL_ERROR, "out of memory");
	c->w->metrics.pin_refused[reason]++;
	log_info(CLIENT_FMT " refused (pin_action = error): %s", CLIENT_ARGS(c),
	         classify_pin_name(reason));
	return ok;
}

static const struct db_conf *client_db(struct client *c);

/* Statement mode: a later batch while the client still holds its server means the last
 * statement left a transaction open. */
static bool statement_mode_violated(struct client *c)
{
	if (c->pool->mode != POOL_MODE_STATEMENT || c->route.pinned != PIN_NONE ||
	    c->server->tx_status == 'I')
		return false;
	c->w->metrics.statement_mode_refused++;
	client_fatal(c, SQLSTATE_FEATURE_NOT_SUPPORTED,
	             "transaction blocks not allowed in statement pooling mode");
	return true;
}

/* Advance the relay position by n bytes, using up the replica approval. */
static void advance(struct client *c, size_t n)
{
	c->conn.fwd += n;
	c->approved = c->approved > n ? c->approved - n : 0;
}

/* Whether the pooler may answer the client itself now: every earlier answer of the
 * server has been relayed, and the transaction is not aborted. */
static bool may_answer(const struct client *c)
{
	const struct server *s = c->server;
	return s->pending == 0 && s->swallow == 0 && s->conn.fwd == 0 && s->held == 0 &&
	       s->tx_status != 'E' && c->retry == RETRY_NONE && c->remain == 0;
}

/* Another batch follows one kept to be rerun on a stale statement. Once its stale error
 * has come, the rerun goes first and the new batch waits (false). Otherwise the kept
 * batch is let go: it may have opened a transaction, or the client pipelines, and
 * nothing may overtake a rerun; whatever its replies held back goes to the client. */
static bool give_up_retry(struct client *c)
{
	struct server *s = c->server;

	if (c->retry == RETRY_STALE) {
		c->held = true;
		return false;
	}
	client_retry_drop(c);
	if (s->guard) {
		s->conn.fwd += s->held;
		s->held = 0;
		s->guard = false;
		client_flush(c);
	}
	return c->state == CLIENT_ACTIVE;
}

/* A later batch on the server already chosen: only its effect on the session matters.
 * A client that may still move between servers is judged in full (pins, read-only
 * switches, settings changed unseen); one that keeps its server (session mode, pinned) is
 * looked at only when its text may RESET, for the login values. Returns false to wait
 * for the rest of the batch, or when the batch was refused. */
static bool watch_session(struct client *c, const uint8_t *p, size_t avail)
{
	bool moves = c->route.pinned == PIN_NONE && c->pool->mode != POOL_MODE_SESSION;
	struct batch b;

	if (!moves) {
		router_note_batch(&c->route, NULL); /* not judged: may write */
		if (!batch_may_reset(p, avail))
			return true;
	}
	batch_scan(c->w->classifier, p, avail, client_names(c), &b);
	router_note_batch(&c->route, &b);
	if (!b.complete)
		return avail >= BATCH_LOOKAHEAD;
	if (moves) {
		const struct db_conf *db = client_db(c);
		if (b.pins != PIN_NONE && db != NULL && db->pin_action == PIN_ACTION_ERROR)
			return refuse_pin_in_transaction(c, b.pins, b.end);
		pin(c, b.pins);
	}
	if (b.restore)
		c->server->needs_restore = true;
	size_t added = client_restore_login_values(c, c->server, c->conn.fwd, &b);
	if (added > 0)
		c->approved = b.end + added; /* the pooler's query passes unjudged */
	return true;
}

/* The first batch after a lone BEGIN ... READ ONLY on a replica. One that asks for
 * serializable isolation (SET TRANSACTION ISOLATION LEVEL SERIALIZABLE), which a standby
 * cannot run, moves the transaction to the primary: nothing has run in it yet, so the
 * replica's is rolled back unseen, and the BEGIN runs again on the primary ahead of the
 * batch (client_first_batch_linked). Returns false to stop relaying for now. */
static bool first_after_begin(struct client *c, const uint8_t *p, size_t avail)
{
	struct batch b;

	batch_scan(c->w->classifier, p, avail, client_names(c), &b);
	if (!b.complete)
		return false;
	if (!b.serializable || !may_answer(c)) {
		free(c->begin_text);
		c->begin_text = NULL;
		return true; /* READ ONLY: nothing in it can write */
	}
	c->held = true;
	c->begin_moves = true;
	server_query(c->server, "ROLLBACK");
	log_info(CLIENT_FMT " a serializable transaction began on a replica: it moves to the "
	                    "primary",
	         CLIENT_ARGS(c));
	return false;
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

	if (statement_mode_violated(c))
		return false;
	if (type == 'Q' && may_answer(c) && client_deallocate_own(c, c->server->tx_status))
		return true;
	if (!c->route.on_replica && c->retry != RETRY_NONE && !give_up_retry(c))
		return false;
	if (!c->route.on_replica)
		return (type != 'Q' && type != 'P') || watch_session(c, p, avail);
	if (c->begin_text != NULL)
		return first_after_begin(c, p, avail);
	if (c->route.ro_tx)
		return true; /* nothing in it can write */
	if (c->retry != RETRY_NONE) {
		/* keep the order: nothing overtakes a statement that may be run again */
		c->held = true;
		return false;
	}
	batch_scan(c->w->classifier, p, avail, client_names(c), &b);
	if (!b.complete)
		return false;
	if (b.restore)
		c->server->needs_restore = true;
	if (!router_fits_replica(&c->route, &b)) {
		c->held = true;
		log_debug("c=%llu holds a batch for the primary until the replica is free",
		          (unsigned long long)c->id);
		return false;
	}
	c->approved = b.end;
	return true;
}

/* What one client message means for the server's answers: a Query, FunctionCall or Sync
 * is answered by a ReadyForQuery, an extended-protocol message leaves the server unsynced
 * until the next Sync. 1 for Terminate, -1 when the type is invalid (the client is
 * closed), else 0. */
static int count_message(struct client *c, struct server *s, char type)
{
	char msg[80];

	switch (type) {
	case 'Q':
	case 'F':
		server_segment_sent(s);
		return 0;
	case 'S':
		server_segment_sent(s);
		s->unsynced = false;
		return 0;
	case 'P':
	case 'B':
	case 'D':
	case 'E':
	case 'C':
		s->unsynced = true;
		return 0;
	case 'H':
	case 'd':
	case 'c':
	case 'f':
		return 0;
	case 'X':
		return 1;
	default:
		snprintf(msg, sizeof(msg), "invalid frontend message type %d", (unsigned char)type);
		client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION, msg);
		return -1;
	}
}

/* Scan client bytes while linked: count what the server will answer, then send. */
void client_relay(struct client *c)
{
	struct conn *cn = &c->conn;
	struct server *s = c->server;
	struct proto_header h;
	bool terminate = false;
	size_t need = 0; /* bytes from fwd on that must arrive before we can go on */

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
		    proto_read_header(buf_head(&cn->in) + cn->fwd, avail, client_max_body(c), &h);
		if (st == PROTO_INCOMPLETE)
			break;
		if (st == PROTO_BAD) {
			client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION, "invalid message length");
			return;
		}
		if (c->approved == 0 && !s->unsynced && h.type != 'X') {
			client_forget_stale_statements(s);
			if (!check_batch(c, h.type))
				break;
			/* the batch may have been rewritten */
			avail = buf_len(&cn->in) - cn->fwd;
			if (proto_read_header(buf_head(&cn->in) + cn->fwd, avail, PROTO_MAX_MESSAGE,
			                      &h) != PROTO_OK)
				break;
		}
		int named = client_named_statements(c, s, &h);
		if (named < 0)
			return;
		if (named == 0) {
			need = 5 + (size_t)h.len;
			break;
		}
		int counted = count_message(c, s, h.type);
		if (counted < 0)
			return;
		terminate = counted > 0;
		if (terminate)
			break;
		advance(c, 5);
		c->remain = h.len;
	}
	/* A message kept whole may be larger than the socket's high-water mark: read on until
	 * it is in (set before the flush, which decides whether the socket reads again). */
	cn->want = need > 0 ? cn->fwd + need : 0;
	if (conn_flush(&s->conn) == CONN_ERROR) {
		/* the server's own read watcher reports the failure */
		log_debug("c=%llu s=%llu write to server failed", (unsigned long long)c->id,
		          (unsigned long long)s->id);
	}
	cn->want = need > 0 ? cn->fwd + need : 0; /* the flush consumed what went out */
	/* PostgreSQL answers everything it read before a Terminate: a goodbye behind queries
	 * still running waits for their answers (client.c looks at it again once the server
	 * is quiet: on_server_ready, on_server_tx_idle). */
	if (terminate && c->state == CLIENT_ACTIVE && cn->fwd == 0 && s->pending == 0)
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

struct pool *client_pool_get(struct client *c, const struct db_conf *db, struct node *n)
{
	const char *password = db->server_password;

	if (password == NULL && db->server_user == NULL)
		password = c->own_password;
	return pool_get(c->w, db, c->user, n, db->server_user ? db->server_user : c->user,
	                password);
}

/* The pool for this client on node n; a small per-client cache spares the lookup. */
static struct pool *pool_for(struct client *c, const struct db_conf *db, struct node *n)
{
	size_t i;

	for (i = 0; i < ARRAY_LEN(c->pool_cache); i++)
		if (c->pool_cache[i].node == n)
			return c->pool_cache[i].pool;
	struct pool *p = client_pool_get(c, db, n);
	i = (size_t)(n->port) % ARRAY_LEN(c->pool_cache);
	c->pool_cache[i].node = n;
	c->pool_cache[i].pool = p;
	return p;
}

/* Drop the client's first end bytes, a batch that ends with Sync or is a Query, and answer
 * it with an ordinary error: the client stays, outside a transaction. */
static void answer_error(struct client *c, size_t end, const char *sqlstate, const char *message)
{
	log_info(CLIENT_FMT " error %s: %s", CLIENT_ARGS(c), sqlstate, message);
	buf_consume(&c->conn.in, end);
	proto_write_error(&c->conn.out, "ERROR", sqlstate, message);
	proto_write_ready(&c->conn.out, 'I');
	client_flush(c);
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
	answer_error(c, b->end, sqlstate, message);
}

/* A first batch holding nothing but BEGIN ... READ ONLY (one Query, or an unnamed Parse
 * with its Bind, Execute and Sync): its text, in case the transaction must move to the
 * primary (first_after_begin). */
static void keep_lone_begin(struct client *c, const struct batch *b)
{
	const uint8_t *in = buf_head(&c->conn.in);
	struct proto_header h;
	size_t len;

	if (proto_read_header(in, b->end, PROTO_MAX_MESSAGE, &h) != PROTO_OK || h.len > 256 ||
	    !((in[0] == 'Q' && b->end == 5 + (size_t)h.len) ||
	      (in[0] == 'P' && in[5] == '\0' && b->last == 'S')))
		return;
	const char *text = batch_sql_text((char)in[0], in + 5, h.len, &len);
	if (text == NULL)
		return;
	len = strnlen(text, len);
	const char *semi = memchr(text, ';', len);
	for (const char *q = semi; q != NULL && q < text + len; q++)
		if (!strchr("; \t\r\n", *q))
			return; /* more than the BEGIN: a SET TRANSACTION after it would fail anyway
			         */
	c->begin_text = strndup(text, len);
}

/* Keep a copy of the batch's first end bytes until it has run, to run it again. */
static void keep_for_retry(struct client *c, size_t end)
{
	c->retry_batch = malloc(end);
	if (c->retry_batch == NULL)
		return; /* no retry then: the client sees the error */
	memcpy(c->retry_batch, buf_head(&c->conn.in), end);
	c->retry_len = end;
	c->retry = RETRY_KEPT;
}

/* Whether the first batch (end bytes, alone in the buffer) ends with Sync and binds a
 * named statement: one the pooler prepares, so it may prepare it again and retry when
 * the statement's result type changed under it (DDL). A pipelining client, with more
 * bytes behind the batch, is left alone: holding its later batches would cost more. */
static bool binds_named(struct client *c, size_t end)
{
	const uint8_t *p = buf_head(&c->conn.in);
	struct proto_header h;

	if (end < 5 || end != buf_len(&c->conn.in) || p[end - 5] != 'S' ||
	    c->w->cfg->prepared_statement_cache_size == 0)
		return false;
	for (size_t at = 0; at + 5 <= end; at += 5 + h.len) {
		if (proto_read_header(p + at, end - at, PROTO_MAX_MESSAGE, &h) != PROTO_OK)
			return false;
		if (h.type != 'B')
			continue;
		const uint8_t *nul = memchr(p + at + 5, '\0', h.len);
		if (nul != NULL && nul + 1 < p + at + 5 + h.len && nul[1] != '\0')
			return true;
	}
	return false;
}

/* The worker's held clients: route each again (after a probe, which may have found the
 * new primary). One that still finds none is held again. */
static void retry_held(struct worker *w)
{
	struct list again;

	list_take(&again, &w->held_clients); /* one held again joins the worker's list */
	while (!list_empty(&again)) {
		struct client *c = container_of(again.next, struct client, waiter.node);
		client_set_state(c, CLIENT_IDLE); /* leaving HOLD unlinks it from again */
		client_process(c);
	}
}

/* No primary is known for a write (a failover under way: the old one in recovery, the
 * new one not promoted yet): rather than an error, the transaction waits, up to
 * query_wait_timeout, and is routed again after each probe. Nothing of it has run. */
static bool hold(struct client *c, const struct db_conf *db, const struct batch *b)
{
	uint64_t now = util_now_us(), limit = (uint64_t)c->w->cfg->query_wait_timeout_ms * 1000;

	if (limit == 0 || db->pool_mode == POOL_MODE_SESSION || !b->complete || b->end == 0 ||
	    (b->last != 'Q' && b->last != 'S'))
		return false;
	if (c->hold_since_us == 0) {
		c->hold_since_us = now;
		log_info(CLIENT_FMT " no primary is available: the transaction waits for one",
		         CLIENT_ARGS(c));
	}
	if (now - c->hold_since_us >= limit)
		return false;
	c->w->retry_held = retry_held;
	client_set_state(c, CLIENT_HOLD);
	ev_timer_stop(c->w->loop, &c->timer);
	ev_timer_set(&c->timer, (double)(limit - (now - c->hold_since_us)) / 1e6, 0);
	ev_timer_start(c->w->loop, &c->timer);
	return true;
}

/* Scan the transaction whose first bytes wait in the buffer and have the router choose
 * its node. Returns NULL when it must wait for more bytes or the client was answered. */
static struct node *route(struct client *c, const struct db_conf *db)
{
	struct batch b = {.read_only = false, .session_ro = -1};
	struct route_decision d;

	c->held = false;
	c->approved = 0;
	if (db->pool_mode != POOL_MODE_SESSION) {
		batch_scan(c->w->classifier, buf_head(&c->conn.in), buf_len(&c->conn.in),
		           client_names(c), &b);
		if (!b.complete)
			return NULL; /* the rest of the batch is on its way */
		if (b.pins == PIN_SET && client_carry_set(c, b.end))
			b.pins = PIN_NONE;
		c->first = b;
	}
	router_route(c->w, db, &b, &c->route, &d);
	if (c->begin_text != NULL && (!c->begin_moves || d.node == NULL || c->route.on_replica)) {
		free(c->begin_text); /* a moved transaction's BEGIN is for the primary only */
		c->begin_text = NULL;
		c->begin_moves = false;
	}
	if (d.pinned != PIN_NONE)
		log_pinned(c, d.pinned);
	if (d.node == NULL && d.reason == ROUTE_REFUSED_NO_PRIMARY && hold(c, db, &b))
		return NULL;
	c->hold_since_us = 0;
	if (d.node == NULL) {
		refuse_batch(c, &b, d.sqlstate, d.message);
		return NULL;
	}
	c->approved = b.end;
	/* An autocommit read on a replica: keep a copy, so that if the replica refuses it (a
	 * write the classifier let through, or what a standby cannot do) it runs on the
	 * primary instead. On the primary, a batch binding named statements is kept to be
	 * prepared again if DDL changed their result type. */
	const uint8_t *in = buf_head(&c->conn.in);
	if (d.reason == ROUTE_REPLICA) {
		if (!c->route.ro_tx && b.end >= 5 &&
		    (in[0] == 'Q' || (in[0] == 'P' && in[b.end - 5] == 'S')))
			keep_for_retry(c, b.end);
		if (b.begin_ro && c->begin_text == NULL)
			keep_lone_begin(c, &b);
	} else if (!c->route.on_replica && binds_named(c, b.end)) {
		keep_for_retry(c, b.end);
	}
	return d.node;
}

bool client_refuse_waiting(struct client *c, const char *sqlstate, const char *message)
{
	size_t end = c->first.end;

	if ((c->state != CLIENT_WAITING && c->state != CLIENT_HOLD) || end == 0 ||
	    end > buf_len(&c->conn.in) || (c->first.last != 'Q' && c->first.last != 'S'))
		return false; /* logging in, session mode, or no Sync the client waits on */
	client_unqueue(c);
	c->first.end = 0;
	answer_error(c, end, sqlstate, message);
	return true;
}

/* Between transactions: the first bytes of the next one ask for a server. */
void client_start_transaction(struct client *c)
{
	struct proto_header h;
again:;
	enum proto_status st =
	    proto_read_header(buf_head(&c->conn.in), buf_len(&c->conn.in), client_max_body(c), &h);
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
	if (client_deallocate_own(c, 'I')) {
		if (buf_len(&c->conn.in) > 0)
			client_start_transaction(c);
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
	client_set_state(c, CLIENT_WAITING); /* the session limits pause while it queues */
	c->acquiring = true;
	pool_acquire(c->pool, &c->waiter);
	c->acquiring = false;
	if (c->state == CLIENT_IDLE && c->conn.fd >= 0 && buf_len(&c->conn.in) > 0)
		goto again; /* refused at once (an outage): the next batch, without recursion */
	/* Only a client that really queues needs its wait timed. */
	if (c->state == CLIENT_WAITING && c->w->cfg->query_wait_timeout_ms > 0) {
		ev_timer_set(&c->timer, c->w->cfg->query_wait_timeout_ms / 1000.0, 0);
		ev_timer_start(c->w->loop, &c->timer);
	}
}

/* Put the kept batch back in front of whatever the client sent since. */
void client_requeue_batch(struct client *c)
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
}
