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

struct pool_waiter;

struct pool_waiter_ops {
	void (*grant)(struct pool_waiter *wt, struct server *s);
	void (*fail)(struct pool_waiter *wt, const char *sqlstate, const char *message);
	/* The pool retired (reload) before a server came: ask another one; NULL: fail. */
	void (*retry)(struct pool_waiter *wt);
};

struct pool_waiter {
	struct list node; /* pool->waiting, FIFO */
	const struct pool_waiter_ops *ops;
	uint64_t since_us;
	bool queued;
};

/* The caps a server counts against, all per node. */
enum cap { CAP_NODE, CAP_DB, CAP_USER, CAP_POOL, N_CAPS };

/* A pool's part of its node's budget, as every worker sees it (on node->shares, under the
 * node's lock). With several workers each has its own pool for a (database, user, node);
 * the caps (the node's budget, max_db_connections, max_user_connections, the pool's size
 * and reserve) count the servers of them all. A pool that finds no room, and no idle
 * server of its own worker to close for it, is blocked: the next slot another worker frees
 * is reserved for the one blocked longest, and a worker whose pool holds two or more
 * servers more than a blocked one closes its next free server to make that slot. */
struct pool_share {
	struct list link;       /* node->shares */
	const char *db, *user;  /* the pool's */
	int worker;             /* its worker's index */
	int servers;            /* open or opening: the pool's n_servers */
	int reserved;           /* slots freed for it by another worker, not yet used */
	uint64_t blocked_since; /* waiting for room; 0: not */
	unsigned blocked_by;    /* the caps that were full (a mask), while blocked */
	int limits[N_CAPS];     /* its pool's limits when it blocked */
	struct pool *pool;      /* NULL once the pool is freed; read only on its worker */
	struct params welcome;  /* its pool's, once a server logged in (for the other workers) */
	int refs;               /* the pool, and servers on their way to it */
};

/* pool_share.c: the node's budget over every worker. limits[k] is cap k's limit for the
 * share's pool (0: none, but CAP_POOL and CAP_NODE, where 0 means full). Messages go to
 * the workers concerned; pool_room and pool_make_room answer them. */
struct pool_share *share_join(struct node *n, struct pool *p);
/* The caps (a mask) that leave s no room for one more server. */
unsigned share_full(struct node *n, const struct pool_share *s, const int limits[N_CAPS]);
/* Servers and reserved slots of s's (database, user) on n, over every worker. */
int share_pool_total(struct node *n, const struct pool_share *s);
/* The login parameters a pool of the same database, user and node on any worker has seen
 * (a new pool greets its clients with them without logging in a server first): true when
 * one had; store them for the others once this pool has its own. */
bool share_welcome_get(struct node *n, const struct pool_share *s, struct params *out);
void share_welcome_set(struct node *n, struct pool_share *s, const struct params *welcome);
/* The pool leaves with `servers` already closed; its reserved slots go to others. */
void share_leave(struct worker *w, struct node *n, struct pool_share *s);
/* One more server for s: 0 when taken (a reserved slot first), else the full caps. False
 * in *allowed when the node's circuit lets no connect through (nothing is taken). */
unsigned share_take(struct node *n, struct pool_share *s, const int limits[N_CAPS], uint64_t now,
                    bool *allowed);
/* A server of s closed: its slot goes to the share of another worker blocked longest
 * that it makes room for, else back to the budget. */
void share_give(struct worker *w, struct node *n, struct pool_share *s);
/* s waits for room (the caps in mask are full); other workers are asked to close an idle
 * server for it. */
void share_block(struct worker *w, struct node *n, struct pool_share *s, unsigned mask,
                 const int limits[N_CAPS], uint64_t since);
void share_unblock(struct node *n, struct pool_share *s);
/* The blocked share of another worker that a free server of s should go to: it has waited
 * longest under caps s shares, and s has no clients waiting or holds two or more servers
 * more (its worker's, for one database and user; else its database and user's, over the
 * workers); NULL when none. One of the same database and user takes the server itself (*moved:
 * the count is its already, and it holds a reference until share_put); another only its
 * slot, once the server closes. */
struct pool_share *share_yield_to(struct node *n, struct pool_share *s, bool waiting, bool *moved);
/* Drop a reference share_yield_to gave; the pool it names, or NULL when it has gone. */
struct pool *share_put(struct node *n, struct pool_share *s);
/* A server share_yield_to sent closed before it left: its count and reference go. */
void share_cancel_move(struct worker *w, struct node *n, struct pool_share *s);
/* Reserved slots s no longer needs go back (to the next blocked share, or the budget). */
void share_release_reserved(struct worker *w, struct node *n, struct pool_share *s);

/* Answers to pool_share.c's messages, on the pool's own worker: use the slots reserved
 * for its pools on n; close idle servers of them that another worker's pool needs. */
void pool_room(struct worker *w, struct node *n);
/* Before the loop sleeps: servers given to another worker leave (see pool.c). */
void pool_send_moving(struct worker *w);
void pool_make_room(struct worker *w, struct node *n);

/* Settings: pool_configure copies each one the pool uses from the config, at creation and
 * on every reload; nothing here reads the worker's config live, so a pool acts on one
 * generation of settings at a time. */
struct pool {
	struct list node; /* worker->pools */
	struct worker *w;
	char *db_name;            /* as clients name it */
	char *user;               /* client user */
	struct node *backend;     /* the server this pool connects to */
	struct pool_share *share; /* its part of the node's budget */
	int mode;                 /* enum pool_mode */
	int size;                 /* most server connections at once */
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

/* Every pool of every worker, in a fixed order: pool_next(w, NULL) is the first, NULL
 * follows the last. Only where every worker's pools may be read (a world section). */
struct pool *pool_next(const struct worker *w, const struct pool *p);
/* Whether two pools (of any workers) serve the same database, user and node. */
bool pool_same_key(const struct pool *a, const struct pool *b);
/* The first pool of p's key in pool_next order (the others' figures add up to its). */
bool pool_leads_key(const struct worker *w, const struct pool *p);
/* dst += src's counts (servers, waiting clients, transactions, times, traffic): two
 * workers' pools of one key shown as one. */
void pool_add_counts(struct pool *dst, const struct pool *src);

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
