/* server: see include/server.h. */
#include "server.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "proto.h"
#include "util.h"
#include "worker.h"

/* Parameters the server reports (GUC_REPORT in PostgreSQL 15) that a client sees at login. */
static const char *const reported_params[] = {
    "application_name",
    "client_encoding",
    "DateStyle",
    "default_transaction_read_only",
    "in_hot_standby",
    "integer_datetimes",
    "IntervalStyle",
    "is_superuser",
    "server_encoding",
    "server_version",
    "session_authorization",
    "standard_conforming_strings",
    "TimeZone",
};

/* The largest message the server may send that the pooler must read whole. */
#define SERVER_MAX_INSPECTED (1024 * 1024)

static void fail(struct server *s, const char *why)
{
	if (s->state == SERVER_CLOSED)
		return;
	s->ops->failed(s, why);
}

static void on_conn_read(struct conn *c);
static void on_conn_drain(struct conn *c);

/* Logged in: from now on the pooler relays raw protocol on libpq's socket (through
 * libpq's TLS session, if any); libpq keeps the connection for cancel and PQfinish. */
static void on_login_ok(struct pgconn *pc)
{
	struct server *s = container_of(pc, struct server, pq);

	pgconn_stop(pc);
	for (size_t i = 0; i < ARRAY_LEN(reported_params); i++) {
		const char *v = PQparameterStatus(pc->pg, reported_params[i]);
		if (v != NULL)
			params_set(&s->params, reported_params[i], v);
	}
	params_set_base(&s->params); /* the login values, for RESET */
	s->be_pid = (uint32_t)PQbackendPID(pc->pg);
	s->tx_status = 'I';
	struct ev_loop *loop = s->conn.loop;
	conn_init(&s->conn, loop, PQsocket(pc->pg), s, on_conn_read, on_conn_drain);
	s->conn.bytes = &s->tally->bytes;
	s->conn.borrowed = true;
	/* On TLS the bytes must go through libpq's session; PQfinish still ends it. */
	if (PQsslInUse(pc->pg))
		conn_tls_borrow(&s->conn, PQsslStruct(pc->pg, "OpenSSL"));
	conn_start_read(&s->conn);
	log_debug("s=%llu login done, backend pid %u", (unsigned long long)s->id, s->be_pid);
	s->ops->login_done(s, NULL);
}

static void on_login_failed(struct pgconn *pc, const char *why)
{
	struct server *s = container_of(pc, struct server, pq);

	s->ops->login_done(s, why);
}

static const struct pgconn_ops login_ops = {
    .connected = on_login_ok,
    .failed = on_login_failed,
};

bool server_connect(struct server *s, struct ev_loop *loop, const struct server_login *l)
{
	struct pgconn_target target = {
	    .host = l->host,
	    .port = l->port,
	    .dbname = l->dbname,
	    .user = l->user,
	    .password = l->password,
	    .tls = l->tls,
	    .notice_label = "server login",
	    .timeout_why = "timed out connecting to the server (server_connect_timeout)",
	    .timeout_ms = l->timeout_ms,
	};

	conn_init(&s->conn, loop, -1, s, on_conn_read, on_conn_drain);
	params_init(&s->params);
	s->created_us = s->used_us = util_now_us();
	pgconn_init(&s->pq, loop, &login_ops);
	if (!pgconn_connect(&s->pq, &target)) {
		pgconn_close(&s->pq); /* the caller frees the server: no report may follow */
		return false;
	}
	return true;
}

void server_query(struct server *s, const char *sql)
{
	proto_write_query(&s->conn.out, sql);
	s->swallow++;
	s->tx_status = '?';
	if (conn_flush(&s->conn) == CONN_ERROR)
		fail(s, "write to server failed");
}

static void segment_done(struct server *s);

void server_forget_settings(struct server *s)
{
	for (int i = 0; i < s->params.n; i++) {
		struct param *p = &s->params.items[i];
		if (p->base == NULL) {
			params_remove(&s->params, p->name);
			i--;
		} else {
			params_set(&s->params, p->name, p->base);
		}
	}
	s->synced_fp = 0;
}

void server_restore_after_next(struct server *s)
{
	s->restore_seg = s->segments_sent + 2;
	s->restoring = false;
}

/* While a restore query follows a client request (server_restore_after_next): cut the
 * request's ReadyForQuery and the restore's replies but ParameterStatus. Returns 1 when
 * the message at `at` was cut, 0 when it goes on as usual, -1 when more bytes must come. */
static int restore_step(struct server *s, const struct proto_header *h, size_t at, size_t avail)
{
	bool request_done =
	    h->type == 'Z' && !s->restoring && s->segments_done + 2 == s->restore_seg;

	if (!request_done && !s->restoring)
		return 0;
	if (s->restoring && h->type == 'Z') {
		s->restoring = false; /* the restore's: it ends the client's request */
		s->restore_seg = 0;
		return 0;
	}
	if (s->restoring && h->type == 'S')
		return 0;
	if (avail < 5 + (size_t)h->len) {
		s->conn.want = at + 5 + h->len;
		return -1;
	}
	if (request_done) {
		s->tx_status = (char)buf_head(&s->conn.in)[at + 5];
		segment_done(s);
		s->restoring = true;
	}
	conn_cut(&s->conn, at, 5 + h->len);
	return 1;
}

/* Nothing outstanding in either direction: every request answered, no message half
 * relayed, no reply of the pooler's own still to come. */
static bool quiet(const struct server *s)
{
	return s->pending == 0 && s->swallow == 0 && !s->unsynced && s->remain == 0 &&
	       s->held == 0 && !s->dropping;
}

bool server_is_clean(const struct server *s)
{
	return quiet(s) && s->tx_status == 'I';
}

void server_check_ready(struct server *s)
{
	const struct conn *c = &s->conn;

	if (s->state != SERVER_ACTIVE && s->state != SERVER_RESET)
		return;
	if (c->fwd > 0 || conn_unsent(c) > 0 || (c->peer != NULL && c->peer->fwd > 0) || !quiet(s))
		return;
	if (s->tx_status == 'I')
		s->ops->ready(s);
	else if (s->ops->tx_idle != NULL)
		s->ops->tx_idle(s);
}

/* The clock of the worker whose loop the server is on (worker_now_us). */
static uint64_t now_us(const struct server *s)
{
	return worker_now_us(ev_userdata(s->conn.loop));
}

void server_segment_sent(struct server *s)
{
	if (s->pending++ == 0)
		s->segment_start_us = now_us(s);
	s->segments_sent++;
}

/* A client request got its ReadyForQuery: one query done; the next, if any was pipelined
 * behind it, starts now. */
static void segment_done(struct server *s)
{
	if (s->pending > 0) {
		uint64_t now = now_us(s);
		uint64_t us = util_elapsed_us(now, s->segment_start_us);
		s->tally->queries++;
		s->tally->query_us += us;
		histogram_observe(s->tally->query_time, us);
		s->segment_start_us = now;
		s->pending--;
	}
	s->segments_done++;
}

/* A statement's result columns changed under it (DDL): PostgreSQL refuses to run it
 * again until it is prepared anew. */
static bool stale_plan(const struct proto_error *e)
{
	static const char stale[] = "cached plan must not change result type";

	return e->sqlstate != NULL && strcmp(e->sqlstate, "0A000") == 0 && e->message != NULL &&
	       strncmp(e->message, stale, sizeof(stale) - 1) == 0;
}

/* The pooler cannot tell which of its shared statements went stale, so the connection
 * deallocates them all before its next client; each is then prepared again on first
 * use. */
static void note_stale_plan(struct server *s, const struct proto_error *e)
{
	if (stale_plan(e) && s->prepared.n > 0) {
		s->stmts_stale = true;
		log_debug("s=%llu a prepared statement went stale; deallocating before reuse",
		          (unsigned long long)s->id);
	}
}

/* An error made the server skip to the end of this segment: the Parses and Closes left
 * in it get no answer and never happened. */
static void skip_segment(struct server *s)
{
	const struct reply_entry *head;
	struct reply_entry e;

	while ((head = reply_queue_peek(s->replies)) != NULL && head->segment == s->segments_done) {
		if (!reply_queue_pop(s->replies, &e))
			break;
		if (e.type == '1' && e.hash != 0)
			stmt_cache_remove(&s->prepared, e.hash);
		else if (e.kind == REPLY_CLOSE_EVICT)
			stmt_cache_add(&s->prepared, e.hash); /* still there */
	}
}

/* Keep the reply queue in step with a ParseComplete, CloseComplete or ErrorResponse at
 * offset at. Returns true when the message was the pooler's own and has been cut. */
static bool track_reply(struct server *s, char type, uint32_t len, size_t at, bool relay)
{
	const struct reply_entry *head = reply_queue_peek(s->replies);
	struct reply_entry e;

	if (type == 'E') {
		skip_segment(s);
		return false;
	}
	if ((type != '1' && type != '3') || len != 0 || head == NULL || head->type != type)
		return false;
	if (!reply_queue_pop(s->replies, &e) || !relay)
		return false;
	switch (e.kind) {
	case REPLY_PARSE_DROP:
	case REPLY_CLOSE_EVICT:
		/* the client never sent this message: not its answer either */
		conn_cut(&s->conn, at, 5);
		return true;
	case REPLY_CLOSE_PARSE:
		buf_head(&s->conn.in)[at] = '1';
		return false;
	default:
		return false;
	}
}

/* A complete message the pooler reads itself. Returns false when the server failed. */
static bool inspect(struct server *s, char type, const uint8_t *body, uint32_t len, bool relay)
{
	struct proto_reader r;

	switch (type) {
	case 'Z':
		if (len != 1)
			return fail(s, "malformed ReadyForQuery from server"), false;
		s->tx_status = (char)body[0];
		if (s->swallow > 0) {
			s->swallow--;
		} else {
			segment_done(s);
		}
		return true;
	case 'S': {
		proto_reader_init(&r, body, len);
		const char *name = proto_get_str(&r);
		const char *value = proto_get_str(&r);
		if (r.err)
			return fail(s, "malformed ParameterStatus from server"), false;
		params_set(&s->params, name, value);
		s->ops->param(s, name, value, relay);
		return true;
	}
	case 'E': {
		struct proto_error e;
		if (!proto_parse_error(body, len, &e))
			return fail(s, "malformed ErrorResponse from server"), false;
		if (relay) {
			note_stale_plan(s, &e);
			return true;
		}
		if (s->swallow > 0 && e.severity && strcmp(e.severity, "ERROR") == 0) {
			s->ops->query_error(s, e.sqlstate ? e.sqlstate : "XX000",
			                    e.message ? e.message : "");
			return s->state != SERVER_CLOSED;
		}
		char why[300];
		snprintf(why, sizeof(why), "server says: %s %s", e.sqlstate ? e.sqlstate : "",
		         e.message ? e.message : "");
		return fail(s, why), false;
	}
	default:
		return true;
	}
}

/* The guard ends: what it held, and extra bytes after it, go to the client. */
static void let_go(struct server *s, size_t extra)
{
	s->conn.fwd += s->held + extra;
	s->held = 0;
	s->guard = false;
}

/* Under guard: decide on one complete reply message. Returns false when the server
 * failed. The guard ends with the first row, completion or other error; a 25006 refusal
 * or a stale prepared statement before that may drop everything held, when the owner
 * runs the batch again (elsewhere, or prepared anew). */
static bool guard_message(struct server *s, char type, const uint8_t *body, uint32_t len)
{
	struct conn *c = &s->conn;
	struct proto_error e;

	switch (type) {
	case 'T': /* RowDescription */
	case 'N': /* NoticeResponse */
	case 'S': /* ParameterStatus */
	case 'A': /* NotificationResponse */
	case '1': /* ParseComplete */
	case '2': /* BindComplete */
	case 't': /* ParameterDescription */
	case 'n': /* NoData */
		s->held += 5 + len;
		return true;
	case 'E':
		if (!proto_parse_error(body, len, &e) || e.sqlstate == NULL ||
		    (strcmp(e.sqlstate, "25006") != 0 && strcmp(e.sqlstate, "0A000") != 0))
			break;
		if (!s->ops->refused(s, e.sqlstate, stale_plan(&e))) {
			if (s->state == SERVER_CLOSED)
				return false;
			break; /* the client sees the error */
		}
		conn_cut(c, c->fwd, s->held + 5 + len);
		s->held = 0;
		s->guard = false;
		s->dropping = true;
		return true;
	default:
		break;
	}
	let_go(s, 5 + len);
	return true;
}

/* A whole message, inspected: relayed, held back under guard, or cut (an answer to the
 * pooler's own query). False when the server failed. */
static bool place_message(struct server *s, const struct proto_header *h, const uint8_t *body,
                          size_t at, bool relay)
{
	if (relay && s->guard)
		return guard_message(s, h->type, body, h->len);
	if (relay) {
		s->conn.fwd += 5 + h->len;
	} else {
		conn_cut(&s->conn, at, 5 + h->len);
		if (h->type == 'Z')
			s->dropping = false;
	}
	return true;
}

void server_scan(struct server *s)
{
	struct conn *c = &s->conn;
	struct proto_header h;

	c->want = 0;
	while (s->state != SERVER_CLOSED) {
		size_t at = c->fwd + s->held; /* where unscanned bytes start */
		size_t avail = buf_len(&c->in) - at;
		bool relay = c->peer != NULL && s->swallow == 0 && !s->dropping;

		if (s->remain > 0) {
			/* Passing through the body of a large message. */
			size_t n = avail < s->remain ? avail : s->remain;
			if (n == 0)
				break;
			c->fwd += n;
			s->remain -= (uint32_t)n;
			continue;
		}
		enum proto_status st =
		    proto_read_header(buf_head(&c->in) + at, avail, PROTO_MAX_MESSAGE, &h);
		if (st == PROTO_INCOMPLETE)
			break;
		if (st == PROTO_BAD) {
			fail(s, "malformed message length from server");
			return;
		}
		if (relay && s->guard && h.len > SERVER_MAX_INSPECTED)
			let_go(s, 0); /* too big to hold: it and everything held go */
		if ((relay || s->dropping) && s->replies != NULL && s->replies->len > 0 &&
		    track_reply(s, h.type, h.len, at, relay))
			continue; /* the pooler's own answer: cut */
		int cut = relay && s->restore_seg != 0 ? restore_step(s, &h, at, avail) : 0;
		if (cut < 0)
			break;
		if (cut > 0)
			continue;
		bool whole = !relay || s->guard || h.type == 'Z' || h.type == 'S' ||
		             (h.type == 'E' && h.len <= SERVER_MAX_INSPECTED);
		if (!whole) {
			c->fwd += 5;
			s->remain = h.len;
			continue;
		}
		if (h.len > SERVER_MAX_INSPECTED) {
			fail(s, "unexpectedly large message from server");
			return;
		}
		if (avail < 5 + (size_t)h.len) {
			c->want = at + 5 + h.len; /* up to 1 MB: may exceed the high-water mark */
			break;
		}
		const uint8_t *body = buf_head(&c->in) + at + 5;
		if (!inspect(s, h.type, body, h.len, relay || s->dropping))
			return;
		if (!place_message(s, &h, body, at, relay))
			return;
		/* Clean now: later bytes (only asynchronous messages can follow) are for
		 * whoever holds the server next. While the client still owes a Sync, answers
		 * to its Flush may follow in the same read and must go through now. */
		if (h.type == 'Z' && server_is_clean(s))
			break;
	}
	if (s->state == SERVER_CLOSED)
		return;
	if (c->peer != NULL && c->fwd > 0) {
		struct conn *peer = c->peer;
		if (conn_flush(peer) == CONN_ERROR) {
			peer->on_read(peer); /* the client sees its own eof */
			return;
		}
	}
	server_check_ready(s);
}

static void on_conn_read(struct conn *c)
{
	struct server *s = c->owner;

	if (c->eof) {
		fail(s, "server closed the connection");
		return;
	}
	server_scan(s);
}

static void on_conn_drain(struct conn *c)
{
	server_check_ready(c->owner);
}

struct cancel_job {
	PGcancel *cancel;
	struct server *s;
	struct worker *w; /* the server's: the answer is handled there */
};

/* On the server's worker, once the postmaster has answered (or the request failed). The
 * server is still there: a closed one waits on dead_servers for this (main.c). */
static void cancel_answered(struct worker *w, void *arg)
{
	struct server *s = arg;
	(void)w;

	if (--s->cancels == 0 && s->state != SERVER_CLOSED && s->ops->cancel_done != NULL)
		s->ops->cancel_done(s);
}

static void *cancel_thread(void *arg)
{
	struct cancel_job job = *(struct cancel_job *)arg;
	struct team *team = job.w->team;
	char err[256];

	free(arg);
	if (!PQcancel(job.cancel, err, sizeof(err)))
		log_warning("forwarding a cancel request failed: %s", err);
	PQfreeCancel(job.cancel);
	worker_post(job.w, cancel_answered, job.s);
	team_helper_end(team);
	return NULL;
}

void server_cancel(struct server *s)
{
	pthread_t t;
	pthread_attr_t attr;
	PGcancel *cancel;

	if (s->pq.pg == NULL || s->cancels == UINT8_MAX || (cancel = PQgetCancel(s->pq.pg)) == NULL)
		return;
	struct cancel_job *job = util_calloc(1, sizeof(*job));
	*job = (struct cancel_job){cancel, s, ev_userdata(s->conn.loop)};
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	team_helper_begin(job->w->team);
	if (pthread_create(&t, &attr, cancel_thread, job) != 0) {
		log_warning("s=%llu cannot start a thread to forward a cancel request",
		            (unsigned long long)s->id);
		team_helper_end(job->w->team);
		PQfreeCancel(cancel);
		free(job);
	} else {
		s->cancels++;
	}
	pthread_attr_destroy(&attr);
}

void server_close(struct server *s)
{
	conn_close(&s->conn);
	pgconn_close(&s->pq);
}

void server_free(struct server *s)
{
	server_close(s);
	conn_free(&s->conn);
	params_free(&s->params);
	stmt_cache_free(&s->prepared);
	reply_queue_free(s->replies);
	free(s);
}
