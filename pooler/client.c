/* client: see include/client.h.
 *
 * A client moves STARTUP -> AUTH -> (LOGIN) -> IDLE, then IDLE -> WAITING -> ACTIVE -> IDLE
 * once per transaction (once per session in session mode), and finally CLOSED. Every
 * client is on worker->clients until it closes; a WAITING or LOGIN client is also on its
 * pool's waiting list through its waiter. Only client_set_state writes the state.
 *
 * While ACTIVE, bytes from the client are scanned for message boundaries only: a Query,
 * Sync or FunctionCall means one more ReadyForQuery is due, an extended-protocol message
 * means the server must not be released before the next Sync. The bytes themselves go to
 * the server as they arrive, large messages included, without being copied. */
#include "client.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin.h"
#include "auth.h"
#include "classify.h"
#include "config.h"
#include "conn.h"
#include "log.h"
#include "params.h"
#include "pool.h"
#include "prepared.h"
#include "proto.h"
#include "router.h"
#include "server.h"

enum client_state {
	CLIENT_STARTUP, /* worker->clients: reading the startup packet */
	CLIENT_AUTH,    /* worker->clients: password exchange */
	CLIENT_LOGIN,   /* + pool->waiting: authenticated, needs one server to learn parameters */
	CLIENT_IDLE,    /* worker->clients: between transactions, holds no server */
	CLIENT_WAITING, /* + pool->waiting: a transaction started, wants a server */
	CLIENT_ACTIVE,  /* worker->clients: linked to a server */
	CLIENT_ADMIN,   /* worker->clients: on the admin console, never holds a server */
	CLIENT_CLOSED,  /* worker->dead_clients: freed before the loop sleeps */
};

enum auth_step { STEP_MD5, STEP_SASL_INITIAL, STEP_SASL_FINAL };

/* What only the login needs; freed once the client is in, so that idle clients stay
 * small. */
struct client_auth {
	const struct auth_user *user; /* &copy, or NULL for an unknown user */
	struct auth_user copy;        /* survives a reload of the auth file */
	uint8_t md5_salt[4];
	struct scram_state scram;
};

#define AUTH_MAX_MESSAGE 8192

struct client {
	struct list node; /* worker->clients or worker->dead_clients */
	struct worker *w;
	struct pool *pool;
	struct server *server; /* while ACTIVE */
	enum client_state state;
	enum auth_step auth_step;
	uint64_t id;         /* for log lines: c=ID */
	uint32_t cancel_pid; /* BackendKeyData we handed out */
	uint32_t cancel_key;
	uint32_t remain; /* body bytes of the message passing through */
	char *user;
	char *db;
	char addr[64];
	struct client_auth *auth; /* during login only */
	struct params wants;      /* parameters this client asked for, as it believes them */

	/* routing */
	char *server_user; /* what the pooler logs in as for this client */
	char *server_password;
	bool on_replica;           /* the current transaction runs on a replica */
	bool ro_tx;                /* ...inside READ ONLY: nothing in it can write, no checks */
	bool held;                 /* a batch that writes waits for the replica to be let go */
	bool tx_wrote;             /* the current primary transaction may have written */
	int8_t session_ro;         /* default_transaction_read_only of the session (0/1) */
	uint8_t forced_route;      /* enum route_hint from the startup option pooler.route */
	size_t approved;           /* bytes from fwd on already judged fit for the replica */
	uint64_t ryw_since_us;     /* a write committed then; reads wait for replicas to catch up */
	uint64_t min_lsn;          /* replicas must have replayed this far to serve our reads */
	struct stmt_names *names;  /* verdicts of Parsed statements, for later Binds; lazily */
	struct client_stmts stmts; /* named statements, prepared again wherever needed */
	uint64_t parse_seq;        /* makes every Parse's server-side name new */
	uint8_t *retry_batch;      /* a replica-routed autocommit Query, kept until it runs */
	size_t retry_len;
	bool retry_now;      /* the replica refused it: run it again on the primary */
	uint8_t route_once;  /* enum route_hint for the next transaction only */
	uint8_t pinned;      /* enum pin_reason: keeps its server for the whole session */
	uint64_t linked_us;  /* when the current server was linked */
	uint64_t connect_us; /* accepted at */
	bool admin_writer;   /* admin console: in admin_users (else stats_users: SHOW only) */
	bool admin_skip;     /* admin console: discarding extended messages up to Sync */
	const struct db_conf *db_conf; /* from the config generation db_gen */
	unsigned db_gen;
	struct {
		struct node *node;
		struct pool *pool;
	} pool_cache[2];
	struct pool_waiter waiter;
	ev_timer timer; /* login timeout, then query_wait_timeout */
	struct conn conn;
};

static const struct server_ops client_server_ops;
static void on_conn_read(struct conn *cn);
static void process(struct client *c);
static void retry_on_primary(struct client *c);

/* Server parameters a client cannot set; reports of them are not client wishes. */
static const char *const server_owned[] = {"server_version",    "server_encoding",
                                           "integer_datetimes", "in_hot_standby",
                                           "is_superuser",      "session_authorization"};

static bool is_server_owned(const char *name)
{
	for (size_t i = 0; i < ARRAY_LEN(server_owned); i++)
		if (strcasecmp(server_owned[i], name) == 0)
			return true;
	return false;
}

static void client_set_state(struct client *c, enum client_state st)
{
	assert(c->state != CLIENT_CLOSED);
	if (st == CLIENT_CLOSED) {
		list_del(&c->node);
		list_append(&c->w->dead_clients, &c->node);
		c->w->n_clients--;
	}
	c->state = st;
}

static void auth_done(struct client *c)
{
	if (c->auth == NULL)
		return;
	scram_state_free(&c->auth->scram);
	if (c->auth->copy.plain != NULL) {
		memset(c->auth->copy.plain, 0, strlen(c->auth->copy.plain));
		free(c->auth->copy.plain);
	}
	free(c->auth);
	c->auth = NULL;
}

static struct stmt_names *names_of(struct client *c)
{
	if (c->names == NULL)
		c->names = util_calloc(1, sizeof(*c->names));
	return c->names;
}

/* Send what is queued; the caller checks c->state afterwards. */
static void flush(struct client *c)
{
	if (conn_flush(&c->conn) == CONN_ERROR)
		c->conn.eof = true;
}

static void release_server(struct client *c);

/* Close the client. Its server goes back to the pool when it is clean, is rolled back
 * when it idles inside a transaction, and is closed otherwise: never reused dirty. */
static void client_close(struct client *c, const char *why)
{
	if (c->state == CLIENT_CLOSED)
		return;
	log_debug("c=%llu user=%s db=%s closing: %s", (unsigned long long)c->id,
	          c->user ? c->user : "", c->db ? c->db : "", why);
	if (c->pool)
		pool_unwait(c->pool, &c->waiter);
	if (c->server)
		release_server(c);
	ev_timer_stop(c->w->loop, &c->timer);
	conn_close(&c->conn);
	auth_done(c);
	client_set_state(c, CLIENT_CLOSED);
	if (c->w->on_idle_client)
		c->w->on_idle_client(c->w);
}

/* A FATAL error the client can read, then close. */
static void client_fatal(struct client *c, const char *sqlstate, const char *message)
{
	if (c->state == CLIENT_CLOSED)
		return;
	log_info("c=%llu user=%s db=%s addr=%s error %s: %s", (unsigned long long)c->id,
	         c->user ? c->user : "", c->db ? c->db : "", c->addr, sqlstate, message);
	if (c->server)
		release_server(c);
	proto_write_error(&c->conn.out, "FATAL", sqlstate, message);
	flush(c);
	client_close(c, message);
}

static void release_server(struct client *c)
{
	struct server *s = c->server;
	struct pool *p = c->pool;
	bool mid_message = c->remain > 0 || s->remain > 0 || c->conn.fwd > 0 || s->conn.fwd > 0;

	c->server = NULL;
	conn_unlink(&c->conn);
	metrics_observe(&c->w->metrics.transaction_time, util_now_us() - c->linked_us);
	p->xact_us += util_now_us() - c->linked_us;
	if (!mid_message && server_is_clean(s)) {
		if (c->pinned != PIN_NONE)
			pool_reset(p, s,
			           p->reset_query[0] != '\0' ? p->reset_query : "DISCARD ALL");
		else if (p->mode == POOL_MODE_SESSION && p->reset_query[0] != '\0')
			pool_reset(p, s, p->reset_query);
		else
			pool_release(p, s);
	} else if (!mid_message && s->pending == 0 && s->swallow == 0 && !s->unsynced &&
	           (s->tx_status == 'T' || s->tx_status == 'E') &&
	           p->mode == POOL_MODE_TRANSACTION) {
		pool_reset(p, s, "ROLLBACK");
	} else {
		pool_discard(p, s, "client left while the server was busy");
	}
}

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
static void sync_params(struct client *c, struct server *s)
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
		if (ok) {
			bool known = params_find(&s->params, want->name) != NULL;
			params_set(&s->params, want->name, want->value);
			(void)known;
		}
	}
	for (int i = 0; i < s->params.n && ok; i++) {
		struct param *p = &s->params.items[i];
		if (params_find(&c->wants, p->name) != NULL || is_server_owned(p->name))
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

static void attach(struct client *c, struct server *s)
{
	c->server = s;
	s->owner = c;
	s->ops = &client_server_ops;
	s->pending = 0;
	s->unsynced = false;
	s->guard = c->retry_batch != NULL;
	c->linked_us = util_now_us();
	metrics_observe(&c->w->metrics.client_wait, c->linked_us - c->waiter.since_us);
	c->pool->backend->transactions++;
	c->pool->xact_count++;
	c->pool->wait_us += c->linked_us - c->waiter.since_us;
	if (s->parses != NULL)
		s->parses->len = 0; /* a clean server owes no answers */
	conn_link(&c->conn, &s->conn);
	client_set_state(c, CLIENT_ACTIVE);
	ev_timer_stop(c->w->loop, &c->timer);
	log_debug("c=%llu s=%llu linked", (unsigned long long)c->id, (unsigned long long)s->id);
	sync_params(c, s);
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
			router_scan_batch(c->w->classifier, p, avail, names_of(c), &b);
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
	router_scan_batch(c->w->classifier, p, avail, names_of(c), &b);
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
static void relay(struct client *c)
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
			s->pending++;
			s->segments_sent++;
			break;
		case 'S':
			s->pending++;
			s->segments_sent++;
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
	flush(c);
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
		                  names_of(c), &b);
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
static void start_transaction(struct client *c)
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
		client_fatal(c, SQLSTATE_ADMIN_SHUTDOWN, "pooler is shutting down");
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
	pool_acquire(c->pool, &c->waiter);
	/* Only a client that really queues needs its wait timed. */
	if (c->state == CLIENT_WAITING && c->w->cfg->query_wait_timeout_ms > 0) {
		ev_timer_set(&c->timer, c->w->cfg->query_wait_timeout_ms / 1000.0, 0);
		ev_timer_start(c->w->loop, &c->timer);
	}
}

/* ---- server events while linked ------------------------------------------------------ */

static void on_server_ready(struct server *s)
{
	struct client *c = s->owner;

	if ((c->pool->mode == POOL_MODE_SESSION || c->pinned != PIN_NONE) && !c->w->shutting_down)
		return;
	if (!c->on_replica && c->tx_wrote)
		c->ryw_since_us = util_now_us();
	metrics_observe(&c->w->metrics.transaction_time, util_now_us() - c->linked_us);
	c->pool->xact_us += util_now_us() - c->linked_us;
	c->server = NULL;
	conn_unlink(&c->conn);
	pool_release(c->pool, s);
	client_set_state(c, CLIENT_IDLE);
	if (c->retry_now)
		retry_on_primary(c);
	free(c->retry_batch);
	c->retry_batch = NULL;
	c->retry_len = 0;
	c->retry_now = false;
	if (c->w->shutting_down) {
		client_fatal(c, SQLSTATE_ADMIN_SHUTDOWN, "pooler is shutting down");
		return;
	}
	if (buf_len(&c->conn.in) > 0)
		process(c);
	else
		conn_trim(&c->conn);
}

/* Put the refused Query back in front of whatever the client sent since, for the
 * primary. */
static void retry_on_primary(struct client *c)
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

static void on_server_refused(struct server *s)
{
	struct client *c = s->owner;
	const char *sql = (const char *)c->retry_batch + 5;
	const char *end = (const char *)c->retry_batch + c->retry_len;

	if (c->retry_batch[0] == 'P') /* skip the statement name */
		sql += strnlen(sql, (size_t)(end - sql)) + 1;
	if (sql >= end)
		sql = end - 1;
	c->retry_now = true;
	c->w->replica_refusals++;
	classify_learn_write(c->w->classifier, sql, strnlen(sql, (size_t)(end - sql)));
	log_warning("c=%llu s=%llu a replica refused a statement classified as a read (25006); "
	            "running it on the primary: %.120s",
	            (unsigned long long)c->id, (unsigned long long)s->id, sql);
}

static void on_server_failed(struct server *s, const char *why)
{
	struct client *c = s->owner;
	bool mid_message = s->remain > 0 || s->conn.fwd > 0;
	char msg[400];

	log_warning("c=%llu s=%llu server connection lost: %s", (unsigned long long)c->id,
	            (unsigned long long)s->id, why);
	c->server = NULL;
	conn_unlink(&c->conn);
	pool_discard(c->pool, s, why);
	if (mid_message) {
		client_close(c, "server lost in the middle of a message");
		return;
	}
	snprintf(msg, sizeof(msg), "server connection lost: %s", why);
	client_fatal(c, SQLSTATE_CONNECTION_FAILURE, msg);
}

static void on_server_param(struct server *s, const char *name, const char *value, bool relayed)
{
	struct client *c = s->owner;

	if (is_server_owned(name))
		return;
	if (relayed && strcasecmp(name, "default_transaction_read_only") == 0)
		c->session_ro = strcmp(value, "on") == 0;
	/* The client changed it (relayed) or the server normalised what we set for it. */
	if (relayed || params_find(&c->wants, name) != NULL) {
		params_set(&c->wants, name, value);
		/* both sides now agree on it */
		s->synced_fp = params_fingerprint(&c->wants);
	}
}

static void on_server_query_error(struct server *s, const char *sqlstate, const char *message)
{
	struct client *c = s->owner;
	char msg[400];

	/* A parameter from the startup packet was refused, as PostgreSQL itself would at
	 * login. */
	snprintf(msg, sizeof(msg), "%s", message);
	client_fatal(c, sqlstate, msg);
}

static void on_server_login(struct server *s, const char *error)
{
	(void)s;
	(void)error;
	assert(!"a linked server is already logged in");
}

static const struct server_ops client_server_ops = {
    .login_done = on_server_login,
    .ready = on_server_ready,
    .failed = on_server_failed,
    .param = on_server_param,
    .query_error = on_server_query_error,
    .refused = on_server_refused,
};

/* ---- login ------------------------------------------------------------------------- */

static const char *canonical_value(const char *name, const char *value)
{
	if (strcasecmp(name, "client_encoding") == 0 &&
	    (strcasecmp(value, "utf8") == 0 || strcasecmp(value, "utf-8") == 0 ||
	     strcasecmp(value, "unicode") == 0))
		return "UTF8";
	return value;
}

/* ParameterStatus for every reported parameter, BackendKeyData, ReadyForQuery. */
static void send_welcome(struct client *c)
{
	const struct params *base = &c->pool->welcome;

	for (int i = 0; i < base->n; i++) {
		const char *name = base->items[i].name;
		const char *v = params_get(&c->wants, name);
		proto_write_param(&c->conn.out, name,
		                  v ? canonical_value(name, v) : base->items[i].value);
	}
	proto_write_key(&c->conn.out, c->cancel_pid, c->cancel_key);
	proto_write_ready(&c->conn.out, 'I');
	ev_timer_stop(c->w->loop, &c->timer);
	client_set_state(c, CLIENT_IDLE);
	log_info("c=%llu user=%s db=%s addr=%s login", (unsigned long long)c->id, c->user, c->db,
	         c->addr);
	flush(c);
	if (c->state == CLIENT_IDLE && buf_len(&c->conn.in) == 0)
		conn_trim(&c->conn);
}

static void on_grant(struct pool_waiter *wt, struct server *s)
{
	struct client *c = container_of(wt, struct client, waiter);

	if (c->state == CLIENT_LOGIN) {
		/* The pool has now seen a server's parameters; give the server straight back. */
		s->owner = c->pool;
		pool_release(c->pool, s);
		send_welcome(c);
		if (c->state == CLIENT_IDLE && buf_len(&c->conn.in) > 0)
			process(c);
		return;
	}
	attach(c, s);
	if (c->state == CLIENT_ACTIVE)
		relay(c);
}

static void on_wait_failed(struct pool_waiter *wt, const char *sqlstate, const char *message)
{
	client_fatal(container_of(wt, struct client, waiter), sqlstate, message);
}

/* The admin console answers itself: no pool, no server. */
static void admin_login(struct client *c)
{
	const struct config *cfg = c->w->cfg;
	static const char *const params[][2] = {
	    {"server_version", "15.0 (pooler " POOLER_VERSION ")"},
	    {"server_encoding", "UTF8"},
	    {"client_encoding", "UTF8"},
	    {"DateStyle", "ISO, MDY"},
	    {"integer_datetimes", "on"},
	    {"standard_conforming_strings", "on"},
	    {"TimeZone", "UTC"},
	    {"is_superuser", "off"},
	};

	c->admin_writer = config_list_has(cfg->admin_users, c->user);
	if (!c->admin_writer && !config_list_has(cfg->stats_users, c->user)) {
		client_fatal(c, SQLSTATE_INVALID_AUTH_SPEC,
		             "not allowed on the admin console (admin_users, stats_users)");
		return;
	}
	auth_done(c);
	for (size_t i = 0; i < ARRAY_LEN(params); i++)
		proto_write_param(&c->conn.out, params[i][0], params[i][1]);
	proto_write_key(&c->conn.out, c->cancel_pid, c->cancel_key);
	proto_write_ready(&c->conn.out, 'I');
	ev_timer_stop(c->w->loop, &c->timer);
	client_set_state(c, CLIENT_ADMIN);
	log_info("c=%llu user=%s addr=%s admin console login", (unsigned long long)c->id, c->user,
	         c->addr);
	flush(c);
}

/* Admin console messages: simple Query only. */
static void admin_read(struct client *c)
{
	struct buf *in = &c->conn.in;
	struct proto_header h;

	while (c->state == CLIENT_ADMIN) {
		enum proto_status st = proto_read_header(buf_head(in), buf_len(in), 1 << 20, &h);
		if (st == PROTO_INCOMPLETE)
			break;
		if (st == PROTO_BAD) {
			client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION, "invalid message length");
			return;
		}
		if (buf_len(in) < 5 + (size_t)h.len)
			break;
		const uint8_t *body = buf_head(in) + 5;
		switch (h.type) {
		case 'Q': {
			const char *sql = memchr(body, '\0', h.len) ? (const char *)body : "";
			admin_run(c->w, sql, c->admin_writer, &c->conn.out);
			proto_write_ready(&c->conn.out, 'I');
			break;
		}
		case 'X':
			client_close(c, "client said goodbye");
			return;
		case 'S':
			c->admin_skip = false;
			proto_write_ready(&c->conn.out, 'I');
			break;
		case 'P':
		case 'B':
		case 'D':
		case 'E':
		case 'C':
		case 'H':
			if (!c->admin_skip)
				proto_write_error(
				    &c->conn.out, "ERROR", SQLSTATE_FEATURE_NOT_SUPPORTED,
				    "the admin console speaks the simple query protocol only");
			c->admin_skip = true;
			break;
		default:
			client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION,
			             "invalid frontend message type");
			return;
		}
		buf_consume(in, 5 + h.len);
	}
	if (c->state == CLIENT_ADMIN)
		flush(c);
	if (c->w->shutdown_requested && c->w->on_shutdown != NULL) {
		c->w->shutdown_requested = false;
		c->w->on_shutdown(c->w);
	}
}

static void auth_ok(struct client *c)
{
	const struct config *cfg = c->w->cfg;
	const struct db_conf *db;
	const char *server_user, *server_password;
	char msg[200];

	proto_write_auth(&c->conn.out, AUTH_OK, NULL, 0);
	if (strcmp(c->db, cfg->admin_db) == 0) {
		admin_login(c);
		return;
	}
	db = config_find_db(cfg, c->db);
	if (db == NULL) {
		snprintf(msg, sizeof(msg), "database \"%s\" does not exist", c->db);
		client_fatal(c, SQLSTATE_UNKNOWN_DATABASE, msg);
		return;
	}
	server_user = db->server_user ? db->server_user : c->user;
	server_password = db->server_password;
	if (server_password == NULL && db->server_user == NULL && c->auth->user != NULL)
		server_password = c->auth->user->plain;
	c->server_user = util_strdup(server_user);
	c->server_password = server_password ? util_strdup(server_password) : NULL;
	auth_done(c);
	const char *ro = params_get(&c->wants, "default_transaction_read_only");
	c->session_ro = ro != NULL && (!strcasecmp(ro, "on") || !strcasecmp(ro, "true") ||
	                               !strcasecmp(ro, "1") || !strcasecmp(ro, "yes"));
	struct node *node = router_primary(c->w, db);
	if (node == NULL)
		node = router_node(c->w, db->node_list[0]);
	c->pool = pool_get(c->w, db, c->user, node, c->server_user, c->server_password);
	if (c->pool->have_welcome) {
		send_welcome(c);
		return;
	}
	client_set_state(c, CLIENT_LOGIN);
	flush(c);
	if (c->state == CLIENT_LOGIN)
		pool_acquire(c->pool, &c->waiter);
}

static void auth_failed(struct client *c)
{
	c->w->metrics.login_failures++;
	char msg[200];
	snprintf(msg, sizeof(msg), "password authentication failed for user \"%s\"", c->user);
	client_fatal(c, SQLSTATE_INVALID_PASSWORD, msg);
}

static void auth_begin(struct client *c)
{
	int method = c->w->cfg->auth_type;
	const struct auth_user *found = auth_file_find(c->w->auth, c->user);
	const struct auth_user *u = NULL;

	c->auth = util_calloc(1, sizeof(*c->auth));
	if (found != NULL) {
		c->auth->copy = *found;
		c->auth->copy.name = NULL;
		c->auth->copy.plain = found->plain ? util_strdup(found->plain) : NULL;
		u = c->auth->user = &c->auth->copy;
	}
	if (method == AUTH_TYPE_TRUST) {
		auth_ok(c);
		return;
	}
	/* The stored secret decides when it cannot serve the configured method. */
	if (u != NULL && method == AUTH_TYPE_SCRAM && u->kind == SECRET_MD5)
		method = AUTH_TYPE_MD5;
	else if (u != NULL && method == AUTH_TYPE_MD5 && u->kind == SECRET_SCRAM)
		method = AUTH_TYPE_SCRAM;
	client_set_state(c, CLIENT_AUTH);
	if (method == AUTH_TYPE_MD5) {
		if (!util_random_bytes(c->auth->md5_salt, sizeof(c->auth->md5_salt))) {
			client_fatal(c, SQLSTATE_INTERNAL_ERROR, "no random bytes for a salt");
			return;
		}
		c->auth_step = STEP_MD5;
		proto_write_auth(&c->conn.out, AUTH_MD5, c->auth->md5_salt, 4);
	} else {
		static const char mechs[] = "SCRAM-SHA-256\0";
		c->auth_step = STEP_SASL_INITIAL;
		proto_write_auth(&c->conn.out, AUTH_SASL, mechs, sizeof(mechs));
	}
	flush(c);
}

/* One PasswordMessage / SASLInitialResponse / SASLResponse. */
static void auth_message(struct client *c, const uint8_t *body, uint32_t len)
{
	struct proto_reader r;
	char out[512];

	proto_reader_init(&r, body, len);
	switch (c->auth_step) {
	case STEP_MD5: {
		const char *resp = proto_get_str(&r);
		if (r.err) {
			client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION, "malformed password message");
			return;
		}
		if (c->auth->user == NULL ||
		    !auth_md5_check(c->auth->user->md5, c->auth->md5_salt, resp)) {
			auth_failed(c);
			return;
		}
		auth_ok(c);
		return;
	}
	case STEP_SASL_INITIAL: {
		const char *mech = proto_get_str(&r);
		int32_t n = (int32_t)proto_get_u32(&r);
		const uint8_t *data = n >= 0 ? proto_get_bytes(&r, (size_t)n) : NULL;
		if (r.err || n < 0 || data == NULL) {
			client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION, "malformed SASL message");
			return;
		}
		if (strcmp(mech, "SCRAM-SHA-256") != 0) {
			client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION,
			             "client selected an invalid SASL authentication mechanism");
			return;
		}
		if (!scram_server_first(&c->auth->scram, c->auth->user, (const char *)data,
		                        (size_t)n, out, sizeof(out))) {
			client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION, "malformed SCRAM message");
			return;
		}
		c->auth_step = STEP_SASL_FINAL;
		proto_write_auth(&c->conn.out, AUTH_SASL_CONTINUE, out, strlen(out));
		flush(c);
		return;
	}
	case STEP_SASL_FINAL:
		if (!scram_server_final(&c->auth->scram, (const char *)body, len, out,
		                        sizeof(out))) {
			auth_failed(c);
			return;
		}
		proto_write_auth(&c->conn.out, AUTH_SASL_FINAL, out, strlen(out));
		scram_state_free(&c->auth->scram);
		auth_ok(c);
		return;
	}
}

static void handle_cancel(struct client *c, uint32_t pid, uint32_t key)
{
	struct list *pos, *tmp;

	list_for_each_safe (pos, tmp, &c->w->clients) {
		struct client *t = container_of(pos, struct client, node);
		if (t == c || t->cancel_pid != pid || t->cancel_key != key)
			continue;
		if (t->state == CLIENT_ACTIVE && t->server != NULL) {
			log_info("c=%llu cancel request for c=%llu forwarded to s=%llu",
			         (unsigned long long)c->id, (unsigned long long)t->id,
			         (unsigned long long)t->server->id);
			server_cancel(t->server);
		}
		break;
	}
	client_close(c, "cancel request handled");
}

/* Startup parameters meant for the pooler itself; true when consumed. */
static bool pooler_param(struct client *c, const char *name, const char *value, bool *ok)
{
	*ok = true;
	if (strcasecmp(name, "pooler.route") != 0)
		return false;
	if (strcasecmp(value, "primary") == 0)
		c->forced_route = HINT_PRIMARY;
	else if (strcasecmp(value, "replica") == 0)
		c->forced_route = HINT_REPLICA;
	else if (strcasecmp(value, "auto") == 0 || value[0] == '\0')
		c->forced_route = HINT_NONE;
	else
		*ok = false;
	return true;
}

static bool valid_param_name(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '.'))
			return false;
	return true;
}

/* "-c name=value" and "--name=value" in the startup `options`, with backslash escapes. */
static bool parse_options(struct client *c, const char *opts)
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
		const char *kv;
		if (expect_c) {
			kv = tok;
			expect_c = false;
		} else if (strcmp(tok, "-c") == 0) {
			expect_c = true;
			continue;
		} else if (strncmp(tok, "-c", 2) == 0) {
			kv = tok + 2;
		} else if (strncmp(tok, "--", 2) == 0) {
			kv = tok + 2;
		} else {
			return false;
		}
		char *eq = strchr(kv, '=');
		if (eq == NULL)
			return false;
		*eq = '\0';
		for (char *d = (char *)kv; *d; d++)
			if (*d == '-')
				*d = '_';
		if (!valid_param_name(kv))
			return false;
		bool ok;
		if (pooler_param(c, kv, eq + 1, &ok)) {
			if (!ok)
				return false;
			continue;
		}
		params_set(&c->wants, kv, eq + 1);
	}
	return !expect_c;
}

static void startup(struct client *c, const struct startup *st)
{
	const char *user = proto_startup_get(st, "user");
	const char *db = proto_startup_get(st, "database");
	char msg[200];

	if (user == NULL || user[0] == '\0') {
		client_fatal(c, SQLSTATE_INVALID_AUTH_SPEC,
		             "no PostgreSQL user name specified in startup packet");
		return;
	}
	c->user = util_strdup(user);
	c->db = util_strdup(db && db[0] ? db : user);
	for (int i = 0; i < st->nparams; i++) {
		const char *name = st->names[i], *value = st->values[i];
		if (strcmp(name, "user") == 0 || strcmp(name, "database") == 0 ||
		    strncmp(name, "_pq_.", 5) == 0)
			continue;
		if (strcmp(name, "replication") == 0) {
			if (strcasecmp(value, "false") == 0 || strcasecmp(value, "off") == 0 ||
			    strcmp(value, "0") == 0)
				continue;
			client_fatal(c, SQLSTATE_FEATURE_NOT_SUPPORTED,
			             "replication connections are not supported by the pooler");
			return;
		}
		if (strcmp(name, "options") == 0) {
			if (!parse_options(c, value)) {
				client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION,
				             "unsupported startup options (only -c name=value and "
				             "--name=value are allowed)");
				return;
			}
			continue;
		}
		bool ok;
		if (pooler_param(c, name, value, &ok)) {
			if (!ok) {
				client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION,
				             "pooler.route must be primary, replica or auto");
				return;
			}
			continue;
		}
		if (!valid_param_name(name) || is_server_owned(name)) {
			snprintf(msg, sizeof(msg), "invalid startup parameter \"%.60s\"", name);
			client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION, msg);
			return;
		}
		params_set(&c->wants, name, value);
	}
	auth_begin(c);
}

/* Startup packets: SSLRequest and GSSENCRequest get 'N', then the real one follows. */
static void read_startup(struct client *c)
{
	struct buf *in = &c->conn.in;

	while (c->state == CLIENT_STARTUP && buf_len(in) >= 4) {
		const uint8_t *p = buf_head(in);
		uint32_t len =
		    (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
		struct startup st;
		char msg[160];

		if (len < 8 || len > PROTO_MAX_STARTUP) {
			client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION,
			             "invalid length of startup packet");
			return;
		}
		if (buf_len(in) < len)
			return;
		proto_parse_startup(p + 4, len - 4, &st);
		switch (st.kind) {
		case STARTUP_SSL:
		case STARTUP_GSSENC:
			buf_consume(in, len);
			buf_put_u8(&c->conn.out, 'N');
			flush(c);
			continue;
		case STARTUP_CANCEL:
			handle_cancel(c, st.cancel_pid, st.cancel_key);
			return;
		case STARTUP_BAD_VERSION:
			snprintf(msg, sizeof(msg),
			         "unsupported frontend protocol %u.%u: server supports 3.0 to 3.0",
			         st.version >> 16, st.version & 0xffff);
			client_fatal(c, SQLSTATE_FEATURE_NOT_SUPPORTED, msg);
			return;
		case STARTUP_MALFORMED:
			client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION,
			             "invalid startup packet layout");
			return;
		case STARTUP_V3:
			startup(c, &st); /* st points into the buffer: consume afterwards */
			if (c->state != CLIENT_CLOSED)
				buf_consume(in, len);
			return;
		}
	}
}

static void read_auth(struct client *c)
{
	struct buf *in = &c->conn.in;
	struct proto_header h;
	enum proto_status st = proto_read_header(buf_head(in), buf_len(in), AUTH_MAX_MESSAGE, &h);

	if (st == PROTO_INCOMPLETE)
		return;
	if (st == PROTO_BAD || h.type != 'p') {
		client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION,
		             "expected a password message during authentication");
		return;
	}
	if (buf_len(in) < 5 + (size_t)h.len)
		return;
	/* Copy out: answering may grow buffers. */
	uint8_t body[AUTH_MAX_MESSAGE];
	memcpy(body, buf_head(in) + 5, h.len);
	buf_consume(in, 5 + h.len);
	auth_message(c, body, h.len);
}

static void process(struct client *c)
{
	enum client_state before;

	do {
		before = c->state;
		switch (c->state) {
		case CLIENT_STARTUP:
			read_startup(c);
			break;
		case CLIENT_AUTH:
			read_auth(c);
			break;
		case CLIENT_IDLE:
			start_transaction(c);
			break;
		case CLIENT_ACTIVE:
			relay(c);
			break;
		case CLIENT_ADMIN:
			admin_read(c);
			break;
		case CLIENT_LOGIN:
		case CLIENT_WAITING:
		case CLIENT_CLOSED:
			return;
		}
		/* A state change may leave bytes the new state must look at. */
	} while (c->state != before && c->state != CLIENT_CLOSED && buf_len(&c->conn.in) > 0);
}

static void on_conn_read(struct conn *cn)
{
	struct client *c = cn->owner;

	if (cn->eof) {
		client_close(c, "client closed the connection");
		return;
	}
	process(c);
}

static void on_conn_drain(struct conn *cn)
{
	struct client *c = cn->owner;
	if (c->server != NULL)
		server_check_ready(c->server);
}

static void on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct client *c = t->data;
	char msg[160];
	(void)loop;
	(void)revents;

	if (c->state == CLIENT_WAITING) {
		snprintf(msg, sizeof(msg),
		         "query_wait_timeout: no server connection became free within %d ms",
		         c->w->cfg->query_wait_timeout_ms);
		client_fatal(c, SQLSTATE_QUERY_CANCELED, msg);
	} else if (c->state == CLIENT_STARTUP || c->state == CLIENT_AUTH ||
	           c->state == CLIENT_LOGIN) {
		client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION,
		             "client_login_timeout: login did not finish in time");
	}
}

void client_accept(struct worker *w, int fd, const char *addr)
{
	struct client *c = util_calloc(1, sizeof(*c));
	uint64_t r = util_rand64(&w->rng);

	c->w = w;
	c->id = ++w->next_id;
	c->state = CLIENT_STARTUP;
	c->connect_us = util_now_us();
	c->cancel_pid = (uint32_t)(r >> 32) & 0x7fffffff;
	c->cancel_key = (uint32_t)r;
	util_strlcpy(c->addr, addr, sizeof(c->addr));
	c->waiter.grant = on_grant;
	c->waiter.fail = on_wait_failed;
	params_init(&c->wants);
	list_append(&w->clients, &c->node);
	w->n_clients++;
	conn_init(&c->conn, w->loop, fd, c, on_conn_read, on_conn_drain);
	ev_timer_init(&c->timer, on_timer, 0, 0);
	c->timer.data = c;
	if (w->n_clients > w->cfg->max_client_conn) {
		w->metrics.clients_rejected++;
		client_fatal(c, SQLSTATE_TOO_MANY_CONNECTIONS,
		             "too many client connections (max_client_conn)");
		return;
	}
	if (w->cfg->client_login_timeout_ms > 0) {
		ev_timer_set(&c->timer, w->cfg->client_login_timeout_ms / 1000.0, 0);
		ev_timer_start(w->loop, &c->timer);
	}
	conn_start_read(&c->conn);
}

void client_shutdown_idle(struct worker *w)
{
	struct list *pos, *tmp;

	list_for_each_safe (pos, tmp, &w->clients) {
		struct client *c = container_of(pos, struct client, node);
		if (c->state == CLIENT_ACTIVE)
			continue;
		client_fatal(c, SQLSTATE_ADMIN_SHUTDOWN,
		             "terminating connection due to administrator command");
	}
}

static const char *const state_names[] = {"login",   "login",  "login", "idle",
                                          "waiting", "active", "admin", "closed"};

void client_foreach(struct worker *w, void (*fn)(const struct client_info *ci, void *arg),
                    void *arg)
{
	struct list *pos, *tmp;

	list_for_each_safe (pos, tmp, &w->clients) {
		struct client *c = container_of(pos, struct client, node);
		struct client_info ci = {
		    .id = c->id,
		    .user = c->user,
		    .db = c->db,
		    .state = state_names[c->state],
		    .addr = c->addr,
		    .connect_us = c->connect_us,
		    .server_id = c->server ? c->server->id : 0,
		    .pinned = c->pinned != PIN_NONE ? classify_pin_name(c->pinned) : NULL,
		};
		fn(&ci, arg);
	}
}

int client_kill_db(struct worker *w, const char *db)
{
	struct list *pos, *tmp;
	int n = 0;

	list_for_each_safe (pos, tmp, &w->clients) {
		struct client *c = container_of(pos, struct client, node);
		if (c->db == NULL || strcmp(c->db, db) != 0 || c->state == CLIENT_ADMIN)
			continue;
		client_fatal(c, SQLSTATE_ADMIN_SHUTDOWN, "terminated by the admin console (KILL)");
		n++;
	}
	return n;
}

void client_count(const struct worker *w, struct client_counts *cc)
{
	const struct list *pos;

	memset(cc, 0, sizeof(*cc));
	for (pos = w->clients.next; pos != &w->clients; pos = pos->next) {
		switch (container_of(pos, struct client, node)->state) {
		case CLIENT_STARTUP:
		case CLIENT_AUTH:
		case CLIENT_LOGIN:
			cc->login++;
			break;
		case CLIENT_IDLE:
		case CLIENT_ADMIN:
			cc->idle++;
			break;
		case CLIENT_WAITING:
			cc->waiting++;
			break;
		case CLIENT_ACTIVE:
			cc->active++;
			break;
		case CLIENT_CLOSED:
			break;
		}
	}
}

int client_count_active(const struct worker *w)
{
	const struct list *pos;
	int n = 0;

	for (pos = w->clients.next; pos != &w->clients; pos = pos->next)
		if (container_of(pos, struct client, node)->state == CLIENT_ACTIVE)
			n++;
	return n;
}

void client_close_all(struct worker *w)
{
	while (!list_empty(&w->clients))
		client_close(container_of(w->clients.next, struct client, node), "exiting");
}

void client_reap(struct worker *w)
{
	struct list *n;

	while ((n = list_pop(&w->dead_clients)) != NULL) {
		struct client *c = container_of(n, struct client, node);
		conn_free(&c->conn);
		params_free(&c->wants);
		free(c->names);
		free(c->retry_batch);
		pstmts_free(&c->stmts);
		free(c->server_user);
		free(c->server_password);
		free(c->user);
		free(c->db);
		free(c);
	}
}
