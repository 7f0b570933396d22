/* server: one connection to a backend server. Layer 3.
 *
 * pgconn does the login with libpq, without blocking; after that the socket carries raw
 * protocol that the pooler relays. The server scans what it receives only as far as it
 * must: ReadyForQuery (transaction state, and when the connection is clean),
 * ParameterStatus (to keep parameters in step), and the replies to queries the pooler
 * issued itself (swallowed). Everything else passes through to the linked client without
 * being buffered whole.
 *
 * The server never calls its owner directly: it reports through the ops table it was
 * given, which the pool swaps when a client takes the server over. */
#ifndef POOLER_SERVER_H
#define POOLER_SERVER_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "conn.h"
#include "histogram.h"
#include "params.h"
#include "pgconn.h"
#include "prepared.h"
#include "util.h"

/* States; the pool keeps each server on the list named next to its state. */
enum server_state {
	SERVER_CONNECTING, /* pool->connecting: libpq login in progress */
	SERVER_IDLE,       /* pool->idle: clean, logged in, unused */
	SERVER_ACTIVE,     /* pool->active: linked to a client */
	SERVER_RESET,      /* pool->active: running ROLLBACK or the reset query, no client */
	SERVER_CLOSED,     /* worker->dead_servers: freed before the loop sleeps */
};
#define SERVER_N_STATES (SERVER_CLOSED + 1) /* SERVER_CLOSED stays last */

/* A state's name in SHOW SERVERS and logs (PgBouncer's words where it has the state). */
static inline const char *server_state_name(enum server_state st)
{
	static const char *const names[] = {
	    "login",  /* SERVER_CONNECTING */
	    "idle",   /* SERVER_IDLE */
	    "active", /* SERVER_ACTIVE */
	    "tested", /* SERVER_RESET */
	    "closed", /* SERVER_CLOSED */
	};
	_Static_assert(ARRAY_LEN(names) == SERVER_N_STATES, "one name per server state");
	return names[st];
}

struct server;

/* What a pool's servers did, summed by the servers themselves as replies arrive. */
struct server_tally {
	uint64_t queries;             /* ReadyForQuery answers to client requests */
	uint64_t query_us;            /* time from a request to its ReadyForQuery */
	struct conn_bytes bytes;      /* server side traffic (after login) */
	struct histogram *query_time; /* where each query's duration goes (its node's) */
};

struct server_ops {
	/* Login finished; error is NULL on success. */
	void (*login_done)(struct server *s, const char *error);
	/* ReadyForQuery 'I' arrived with nothing outstanding in either direction. */
	void (*ready)(struct server *s);
	/* The same inside a transaction ('T' or 'E'); optional. */
	void (*tx_idle)(struct server *s);
	/* The connection broke or the server sent a FATAL error. */
	void (*failed)(struct server *s, const char *why);
	/* A ParameterStatus went by; relayed says whether the client saw it. */
	void (*param)(struct server *s, const char *name, const char *value, bool relayed);
	/* A query the pooler issued failed (its ReadyForQuery still follows). */
	void (*query_error)(struct server *s, const char *sqlstate, const char *message);
	/* Under guard, before anything reached the client, the batch failed with sqlstate:
	 * 25006 (a write in a read-only transaction), 0A000 with stale set (a prepared
	 * statement's result type changed), or another 0A000 (what a standby cannot do:
	 * serializable, unlogged tables). True when the owner runs the batch again: its
	 * replies are then dropped up to ReadyForQuery. */
	bool (*refused)(struct server *s, const char *sqlstate, bool stale);
	/* The last cancel request forwarded for it has been answered (optional). */
	void (*cancel_done)(struct server *s);
};

struct server {
	struct list node; /* on the pool list of its state */
	void *pool;       /* the pool it belongs to (opaque here) */
	void *owner;      /* receives ops callbacks: pool or client */
	const struct server_ops *ops;
	struct server_tally *tally; /* the pool's, set before server_connect */
	void *moving;               /* on its way to another worker (pool.c), or NULL */
	enum server_state state;
	uint64_t id; /* for log lines: s=ID */

	int pending;     /* ReadyForQuery still due for relayed client messages */
	int swallow;     /* ReadyForQuery still due for pooler-issued queries */
	bool unsynced;   /* client sent extended-protocol messages since Sync */
	char tx_status;  /* of the last ReadyForQuery: I, T or E */
	uint32_t remain; /* body bytes of the message passing through now */
	bool guard;      /* hold replies until the statement proves it runs */
	bool dropping;   /* discarding a refused statement's replies */
	size_t held;     /* bytes after conn.fwd scanned but held back by guard */

	uint64_t synced_fp;     /* fingerprint of the client parameters it now matches */
	bool needs_restore;     /* ran something that may have changed settings unseen */
	bool restoring;         /* between the client's ReadyForQuery and the restore's */
	uint32_t restore_seg;   /* segment of a restore query behind a client request, or 0 */
	uint64_t unnamed_owner; /* client id and Parse count of its unnamed statement */

	uint64_t created_us;
	uint64_t used_us; /* last time it went back to the pool */
	uint32_t be_pid;  /* the backend's process id, for logs */
	uint8_t cancels;  /* cancel requests forwarded and not yet answered: until then the
	                   * backend may still be interrupted, so no other client gets it, and
	                   * the struct outlives a close (server_cancel) */
	bool cancel_parked; /* released while cancels > 0: waits in SERVER_RESET (pool.c) */

	struct pgconn pq;            /* logs in; then owns the socket, for cancel and PQfinish */
	struct params params;        /* ParameterStatus values as the server last reported */
	struct stmt_cache prepared;  /* pooler-named statements this connection has */
	struct reply_queue *replies; /* Parse and Close answers due; allocated on first use */
	int stmt_cache_size;         /* prepared_statement_cache_size when it connected */
	bool stmts_stale;            /* DDL changed a statement's result: deallocate all */
	uint32_t segments_sent;      /* Syncs and Queries relayed from clients */
	uint32_t segments_done;      /* ReadyForQuery answers to them */
	uint64_t segment_start_us;   /* when the oldest unanswered request was relayed */
	struct conn conn;
};

/* How SHOW POOLS and /metrics count a server on its pool's active list: serving a client,
 * running a reset between clients (tested), or parked until a cancel request of its last
 * client has been answered. */
enum server_use { SERVER_USE_ACTIVE, SERVER_USE_TESTED, SERVER_USE_BEING_CANCELED };
static inline enum server_use server_use(const struct server *s)
{
	if (s->cancel_parked)
		return SERVER_USE_BEING_CANCELED;
	return s->state == SERVER_RESET ? SERVER_USE_TESTED : SERVER_USE_ACTIVE;
}

struct server_login {
	const char *host;
	int port;
	const char *dbname;
	const char *user;
	const char *password;
	const struct pgconn_tls *tls; /* the node's TLS settings, or NULL for none */
	int timeout_ms;
};

/* Start logging in; the result arrives through ops->login_done. False when libpq could
 * not even start (out of memory); the caller then frees the server. */
bool server_connect(struct server *s, struct ev_loop *loop, const struct server_login *l)
    __attribute__((warn_unused_result));

/* A client request that ends in ReadyForQuery (Query, Sync, FunctionCall) was relayed. */
void server_segment_sent(struct server *s);

/* Send a query whose reply the pooler swallows (parameter SETs, ROLLBACK, reset). */
void server_query(struct server *s, const char *sql);

/* What brings back the settings of the login, whatever SQL changed them (SET, set_config,
 * DO, functions): run before another client gets a server that needs_restore. Prepared
 * statements stay, unlike DISCARD ALL. */
#define SERVER_RESTORE_SQL "SET SESSION AUTHORIZATION DEFAULT; RESET ROLE; RESET ALL"

/* The settings now are those of the login (after RESET ALL): forget the values the pooler
 * set that the server does not report back. */
void server_forget_settings(struct server *s);

/* A query of the pooler's (restoring the client's login settings) follows the client
 * request about to be relayed: the client's ReadyForQuery and the query's own replies
 * other than ParameterStatus are dropped, its ReadyForQuery ends the request. */
void server_restore_after_next(struct server *s);

/* Scan newly arrived bytes again (after the server changed hands). */
void server_scan(struct server *s);

/* Report ready through ops when the connection is clean and everything is relayed. */
void server_check_ready(struct server *s);

/* True when nothing is outstanding: the server may serve another client as it is. */
bool server_is_clean(const struct server *s);

/* Forward a CancelRequest for whatever the server runs now, from a helper thread, so that
 * the event loop never waits on the connect. The postmaster interrupts the backend before
 * it answers, and the backend may see the interrupt only then, whatever it runs by that
 * time: s->cancels counts the requests on their way, and ops->cancel_done follows the
 * last answer, on the server's worker. */
void server_cancel(struct server *s);

/* Close the connection (PQfinish); the struct stays valid until server_free. */
void server_close(struct server *s);
void server_free(struct server *s);

#endif
