/* client_internal: what the files of the client module share (client.c: lifecycle and
 * server events; client_login.c: startup, authentication, the admin console login;
 * client_relay.c: relaying, routing; client_stmts.c: statements, carried settings, RESET;
 * client_limits.c: the session limits and the client's timer).
 * Private to those files: other modules use include/client.h. */
#ifndef POOLER_CLIENT_INTERNAL_H
#define POOLER_CLIENT_INTERNAL_H

#include "client.h"

#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin.h"
#include "auth.h"
#include "authq.h"
#include "classify.h"
#include "config.h"
#include "conn.h"
#include "hba.h"
#include "log.h"
#include "params.h"
#include "peer.h"
#include "pool.h"
#include "prepared.h"
#include "ratelimit.h"
#include "proto.h"
#include "router.h"
#include "server.h"
#include "tls.h"

enum client_state {
	CLIENT_STARTUP, /* worker->clients: reading the startup packet */
	CLIENT_AUTH,    /* worker->clients: password exchange */
	CLIENT_LOGIN,   /* + pool->waiting: authenticated, needs one server to learn parameters */
	CLIENT_IDLE,    /* worker->clients: between transactions, holds no server */
	CLIENT_WAITING, /* + pool->waiting: a transaction started, wants a server */
	CLIENT_HOLD,    /* + worker->held_clients (by its waiter's node): its transaction needs a
	                 * primary and none is known (a failover): routed again after each probe */
	CLIENT_ACTIVE,  /* worker->clients: linked to a server */
	CLIENT_ADMIN,   /* worker->clients: on the admin console, never holds a server */
	CLIENT_CLOSED,  /* worker->dead_clients: freed before the loop sleeps */
};

/* A first batch kept until it has run, to run it again: the one place a transaction may
 * start over. KEPT -> ON_PRIMARY or STALE when its server refuses it before the client saw
 * anything, -> NONE once it ran (or the client left the queue). */
enum retry_state {
	RETRY_NONE,
	RETRY_KEPT,       /* kept: an autocommit read on a replica, or Binds of named statements */
	RETRY_ON_PRIMARY, /* a replica refused it: it runs again on the primary, next */
	RETRY_STALE,      /* a prepared statement in it went stale: it runs again here */
};

enum auth_step { STEP_LOOKUP, STEP_MD5, STEP_SASL_INITIAL, STEP_SASL_FINAL };

/* What only the login needs; freed once the client is in, so that idle clients stay
 * small. */
struct client_auth {
	const struct auth_user *user; /* &copy, or NULL for an unknown user */
	struct auth_user copy;        /* survives a reload of the auth file */
	uint8_t md5_salt[4];
	struct scram_state scram;
	struct authq_lookup *lookup; /* auth_query in flight (STEP_LOOKUP) */
	bool unknown;                /* user is a made-up verifier: the login must fail */
	int method;                  /* enum auth_type that the challenge will use */
};

#define AUTH_MAX_MESSAGE 8192

/* Grouped by size, so that the compiler leaves no holes: with ten thousand idle clients,
 * every eight bytes here are 80 KB. */
struct client {
	struct list node; /* worker->clients or worker->dead_clients */
	struct worker *w;
	struct pool *pool;
	struct server *server; /* while ACTIVE */
	uint64_t id;           /* for log lines: c=ID */
	enum client_state state;
	enum auth_step auth_step;
	uint32_t cancel_pid; /* BackendKeyData we handed out */
	uint32_t cancel_key;
	uint32_t remain; /* body bytes of the message passing through */
	unsigned db_gen;
	char *user; /* one allocation with db */
	char *db;
	char addr[56]; /* "host:port" (an IPv6 host is at most 45 characters) or "unix" */
	struct client_auth *auth; /* during login only */
	struct params wants;      /* parameters this client asked for, as it believes them */
	char *own_password; /* the auth file's plain password, when the server login uses it */
	const struct db_conf *db_conf; /* from the config generation db_gen */
	char *admin_wait;              /* admin console: a command answers later (admin_poll) */

	/* routing and relaying */
	struct route_session route; /* the router's: where its transactions go */
	size_t approved;            /* bytes from fwd on already judged fit for the replica */
	struct stmt_names *names;   /* verdicts of Parsed statements, for later Binds; lazily */
	struct client_stmts *stmts; /* named statements, prepared again wherever needed; lazily */
	struct batch first;         /* the batch that opened the transaction (transaction and
	                             * statement mode): its facts, for the server that runs it */
	char *begin_text;           /* a lone BEGIN ... READ ONLY that opened a transaction on a
	                             * replica, until its next batch (client_relay.c) */
	uint64_t hold_since_us;     /* waiting for a primary since (CLIENT_HOLD), or 0 */
	uint8_t *retry_batch;       /* the kept batch, while retry != RETRY_NONE */
	size_t retry_len;
	uint64_t linked_us;    /* when the current server was linked */
	uint64_t connect_us;   /* accepted at */
	uint64_t last_read_us; /* client bytes last arrived (or a server was linked) */
	struct {
		struct node *node;
		struct pool *pool;
	} pool_cache[2];
	struct pool_waiter waiter;

	bool held;            /* a batch that writes waits for the replica to be let go */
	bool begin_moves;     /* begin_text moves to the primary: BEGIN runs there first */
	uint8_t retry;        /* enum retry_state */
	bool asked_ssl;       /* startup: an SSLRequest was answered (one is allowed) */
	bool asked_gss;       /* startup: a GSSENCRequest was answered (one is allowed) */
	bool admin_writer;    /* admin console: in admin_users (else stats_users: SHOW only) */
	bool admin_skip;      /* admin console: discarding extended messages up to Sync */
	bool moving;          /* client_move: leaving for another worker; reads nothing here */
	bool query_cancelled; /* query_timeout sent a cancel for the running query */
	bool acquiring;       /* inside pool_acquire: a refusal is answered by the caller's loop */

	ev_timer timer; /* login timeout, query_wait_timeout, then the session limits */
	struct conn conn;
};

/* The prefix of a client's log lines. */
#define CLIENT_FMT "c=%llu user=%s db=%s"
#define CLIENT_ARGS(c)                                                                             \
	(unsigned long long)(c)->id, (c)->user ? (c)->user : "", (c)->db ? (c)->db : ""

/* client.c */
void client_set_state(struct client *c, enum client_state st);
void client_close(struct client *c, const char *why);
void client_fatal(struct client *c, const char *sqlstate, const char *message);
void client_flush(struct client *c);
void client_auth_done(struct client *c);
struct stmt_names *client_names(struct client *c);
struct client_stmts *client_stmts_of(struct client *c);
bool client_param_server_owned(const char *name);
void client_process(struct client *c);
bool client_rate_exempt(const struct client *c, char *host, size_t len);
void client_arm_timer(struct client *c);
void client_unqueue(struct client *c);
void client_retry_drop(struct client *c);

/* client_limits.c */
void client_on_timer(struct ev_loop *loop, ev_timer *t, int revents);

/* client_relay.c */
/* The client's pool on node n, created with the server login db gives it. */
struct pool *client_pool_get(struct client *c, const struct db_conf *db, struct node *n);
void client_relay(struct client *c);
void client_start_transaction(struct client *c);
void client_requeue_batch(struct client *c);
bool client_refuse_waiting(struct client *c, const char *sqlstate, const char *message);

/* client_stmts.c */
/* Rename, prepare ahead or answer the message at the relay position: 1 to go on, 0 to
 * wait for more bytes, -1 when the client was closed. */
int client_named_statements(struct client *c, struct server *s, struct proto_header *h);
bool client_deallocate_own(struct client *c, char tx_status);
void client_forget_stale_statements(struct server *s);
bool client_carry_set(struct client *c, size_t end);
void client_sync_params(struct client *c, struct server *s);
void client_first_batch_linked(struct client *c, struct server *s);
/* After a batch at [start, start + b->end) that RESETs: the client's login values again,
 * by a query of the pooler's spliced in behind it. Returns the bytes added. */
size_t client_restore_login_values(struct client *c, struct server *s, size_t start,
                                   const struct batch *b);

/* client_login.c */
void client_send_welcome(struct client *c);
void client_admin_read(struct client *c);
void client_read_startup(struct client *c);
void client_read_auth(struct client *c);
void client_admin_poll(struct client *c);

/* A CancelRequest (client_cancel.c): the key's query is cancelled, here, on another
 * worker or by the peer pooler the key names; c, the connection that carried it, closes. */
void client_cancel(struct client *c, uint32_t pid, uint32_t key);

#endif
