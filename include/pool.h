/* pool: server connections for one (database, user, node), and the clients waiting for
 * them. Layer 4.
 *
 * Lists: connecting (login in progress), idle (clean, unused), active (with a client or
 * running a reset), waiting (clients, FIFO). A client asks with pool_acquire and gets a
 * server through its waiter's grant callback, at once when one is idle, else when one
 * logs in or comes back. Only pool_set_state moves a server between lists. */
#ifndef POOLER_POOL_H
#define POOLER_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "node.h"
#include "params.h"
#include "server.h"
#include "util.h"
#include "worker.h"

struct pool_waiter {
	struct list node; /* pool->waiting, FIFO */
	void (*grant)(struct pool_waiter *wt, struct server *s);
	void (*fail)(struct pool_waiter *wt, const char *sqlstate, const char *message);
	/* The pool retired (reload) before a server came: ask another one; NULL: fail. */
	void (*retry)(struct pool_waiter *wt);
	uint64_t since_us;
	bool queued;
};

/* Settings: pool_configure copies each one the pool uses from the config, at creation and
 * on every reload; nothing here reads the worker's config live, so a pool acts on one
 * generation of settings at a time. */
struct pool {
	struct list node; /* worker->pools */
	struct worker *w;
	char *db_name;        /* as clients name it */
	char *user;           /* client user */
	struct node *backend; /* the server this pool connects to */
	int mode;             /* enum pool_mode */
	int size;             /* most server connections at once */
	int min_size;
	int reserve;               /* reserve_pool_size */
	int max_db_connections;    /* of its database, per node; 0 = no limit */
	int max_user_connections;  /* of its user, per node; 0 = no limit */
	int reserve_timeout_ms;    /* reserve_pool_timeout */
	int stmt_cache_size;       /* prepared_statement_cache_size of servers it opens */
	int lifetime_ms;           /* server_lifetime; 0 = unlimited */
	int idle_timeout_ms;       /* server_idle_timeout; 0 = unlimited */
	int retry_max_tries;       /* connect retries while clients wait */
	char *reset_query;         /* session mode only; empty: none */
	struct server_login login; /* strings owned by the pool */
	struct list connecting;    /* SERVER_CONNECTING */
	struct list idle;          /* SERVER_IDLE, most recently used last */
	struct list active;        /* SERVER_ACTIVE and SERVER_RESET */
	struct list waiting;       /* struct pool_waiter */
	int n_servers;             /* on any of the three server lists */
	int n_connecting;
	int n_waiting;
	bool have_welcome;      /* welcome holds a logged-in server's parameters */
	bool paused;            /* PAUSE: clients queue, servers are handed to no one */
	uint64_t reconnect_us;  /* RECONNECT: servers created before close when next free */
	int tries;              /* connect retries since the last login that worked */
	ev_timer retry;         /* the next connect retry, after backoff */
	ev_timer reserve_timer; /* when the first waiter will have waited reserve_pool_timeout */
	ev_timer maintain;      /* server_idle_timeout and server_lifetime, once a second */
	uint64_t xact_count;    /* server hand-outs (transactions, or sessions) */
	uint64_t xact_us;       /* time servers were held */
	uint64_t wait_us;       /* time clients waited */
	uint64_t created_us;    /* for SHOW STATS averages before the first stats_period */
	struct params welcome;  /* ParameterStatus values new clients receive */
	char last_error[256];   /* why the last login failed */

	struct server_tally tally;  /* queries and bytes of its servers */
	struct stats_window window; /* averages of the last stats_period, for SHOW STATS */
	bool retired;               /* pool_retire: drains, pool_get no longer finds it */
};

/* The pool for this database and user, created on first use. server_password may be NULL
 * (trust or .pgpass on the server side). */
struct pool *pool_get(struct worker *w, const struct db_conf *db, const char *user,
                      struct node *backend, const char *server_user, const char *server_password);

/* Ask for a server; wt->grant runs before this returns when one is idle. */
void pool_acquire(struct pool *p, struct pool_waiter *wt);
/* Stop waiting (client left or timed out). */
void pool_unwait(struct pool *p, struct pool_waiter *wt);

/* Give a clean server back: to the first waiter or to the idle list. */
void pool_release(struct pool *p, struct server *s);
/* Run sql on the server with no client, then release it; closes it on error. */
void pool_reset(struct pool *p, struct server *s, const char *sql);
/* Close a server that cannot be reused. */
void pool_discard(struct pool *p, struct server *s, const char *why);

/* Take new settings (at creation and after a reload): size from the node's budget and the
 * database's share, minimum, reserve, caps, mode, reset query, timeouts, retries, statement
 * cache size: every setting the pool acts on. Servers above a smaller size are closed as
 * they come back idle. */
void pool_configure(struct pool *p, const struct db_conf *db, const struct config *cfg);

/* The pool's node or database target left the config (reload): idle servers close now,
 * busy ones when their client gives them back, waiting clients go elsewhere (retry), and
 * no new client finds the pool. */
void pool_retire(struct pool *p, const char *why);

/* PAUSE / RESUME: while paused, waiting clients get no server. */
void pool_pause(struct pool *p);
void pool_resume(struct pool *p);

/* RECONNECT: close idle servers now and the others when they are next given back, so
 * that clients get newly opened ones. */
void pool_reconnect(struct pool *p);
/* Servers still open that a RECONNECT asked to close (WAIT_CLOSE waits for 0). */
int pool_old_servers(const struct pool *p);

/* Close every idle server (shutdown). */
void pool_close_idle(struct pool *p);
void pool_free(struct pool *p);

#endif
