/* node: one backend server as the router sees it (role, reachability, WAL position, lag),
 * kept current by a health probe on the event loop. Layer 3.
 *
 * The probe owns one libpq connection per node, driven without blocking by pgconn and
 * kept open from one probe to the next (a failed probe closes it, the next opens another).
 * Every health_interval it asks pg_is_in_recovery(), the WAL position (current on a
 * primary, replayed on a replica) and the replay lag. A replica leaves the read rotation
 * at once when a probe fails or its lag passes the limits, and comes back only after
 * NODE_RECOVER_PROBES good probes in a row, so that it does not flap. */
#ifndef POOLER_NODE_H
#define POOLER_NODE_H

#include <ev.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "backoff.h"
#include "breaker.h"
#include "config.h"
#include "histogram.h"
#include "pgconn.h"
#include "util.h"

#define NODE_RECOVER_PROBES 2

/* What a cluster manager's API says of a node (cluster.h). The probe still has the last
 * word: a node in recovery takes no write whatever the API says; these only take away. */
enum node_api_role {
	NODE_API_NONE,    /* not a cluster member: the probe alone decides */
	NODE_API_LEADER,  /* the leader: may take writes once its probe finds it a primary */
	NODE_API_REPLICA, /* a replica: never takes writes, even while its probe (stale) says
	                   * primary */
	NODE_API_STOPPED, /* its PostgreSQL is not running, says the API: no reads, no writes */
};

struct node;
struct worker;

struct node_probe_conf {
	const char *dbname;
	const char *user;
	const char *password;
	int interval_ms;
	int timeout_ms;
	uint64_t max_lag_bytes;
	int64_t max_lag_ms;
	uint32_t retry_base_ms, retry_max_ms;
	uint32_t breaker_threshold, breaker_recovery_ms;
};

/* Called after each probe ends, well or badly; the worker refreshes lag figures. */
typedef void (*node_probe_cb)(struct node *n, void *arg);

/* What one worker's traffic does on a node. Each worker writes only its own shard, so the
 * data path shares nothing; SHOW and /metrics add them up (node_sum) in a world section. */
struct node_shard {
	int inflight;           /* transactions running on it through this worker */
	uint64_t transactions;  /* run on it through this worker */
	uint64_t connect_attempts, connect_failures; /* server logins started, and failed */
	struct histogram connect_time;               /* from connect to logged in */
	struct histogram query_time; /* request to ReadyForQuery, every pool's servers */
} __attribute__((aligned(64)));

struct node {
	char *name;
	char *host;
	int port;
	int conf_role; /* enum node_role as configured */
	int role;      /* as the last probe found it; conf_role until then */
	int weight;
	int api_role;           /* enum node_api_role, set by reload.c after each API poll */
	struct pgconn_tls tls;  /* for every libpq connection to it: pools and probes */
	bool probed;            /* at least one probe answered */
	bool up;                /* the last probe answered */
	bool usable;            /* may receive reads (replica) / writes (primary) now */
	int good_streak;        /* consecutive healthy probes */
	uint64_t lsn;           /* primary: current WAL; replica: replayed */
	uint64_t lag_bytes;     /* replica: behind the primary's last known position */
	int64_t lag_ms;         /* replica: replay delay, 0 when caught up */
	uint64_t probe_sent_us; /* when the probe in flight (or the last one) was sent */
	uint64_t probe_done_us; /* when the last probe answered */
	uint64_t lsn_as_of_us;  /* lsn was read no earlier than this (the probe's send time) */
	int conf_budget;        /* pool_size of its section: connections over all pools */
	int server_limit;       /* max_connections - superuser_reserved_connections; 0 unknown */
	int budget;             /* the smaller of the two: what pools may open in all */
	uint64_t probes_ok, probes_failed;
	char last_error[200];

	/* Shared by the workers, under `mu` (a leaf lock: nothing else is taken under it). */
	pthread_mutex_t mu;
	bool locking;           /* more than one worker: mu is taken */
	int n_servers;          /* server connections open or opening, all pools, all workers */
	struct breaker breaker; /* connect and probe failures: fail clients fast when open */
	struct backoff backoff; /* spacing of connect retries, shared by every pool */
	struct list shares;     /* struct pool_share: what each pool holds and wants (pool.c) */
	int n_blocked;          /* shares waiting for room another worker may give */

	struct node_shard *shards; /* one per worker */
	int n_shards;
	struct node_shard total;   /* the sum, for SHOW and /metrics (node_sum) */

	struct ev_loop *loop;
	struct worker *w; /* whose loop runs the probe: worker 0 */
	struct node_probe_conf probe;
	node_probe_cb on_probe;
	void *cb_arg;
	struct pgconn pq; /* the probe's connection, kept open between probes */
	int result_index; /* results of the probe in flight read so far */
	bool result_ok;
	char result_error[200];
	bool want_catalog; /* the next probe on a primary also reads pg_proc */
	ev_timer tick;
	/* catalog rows from the last catalog read, handed over through on_probe */
	char **cat_names;
	char **cat_volatile;
	char **cat_setters;  /* functions whose body changes settings */
	char **cat_unlogged; /* relations a standby cannot read: unlogged, views of them */
	size_t n_cat_names, n_cat_volatile, n_cat_setters, n_cat_unlogged;
};

/* Probes run on worker w (worker 0), their results land in world sections; n_workers
 * shards count the traffic. */
struct node *node_new(const struct node_conf *nc, struct worker *w, int n_workers,
                      const struct node_probe_conf *probe, node_probe_cb cb, void *arg);
void node_start(struct node *n);
/* Reload: take the probe settings of the new config (interval, timeout, lag limits, probe
 * login, backoff and breaker limits), keeping the node's health, breaker state and pools. */
void node_set_probe(struct node *n, const struct node_probe_conf *probe);
/* Stop probing: the node left the config, its pools drain (the struct stays for them). */
void node_stop(struct node *n);
void node_free(struct node *n);

/* Probe now rather than at the next tick (the API named a new leader: writes move as soon
 * as its probe says it left recovery). */
void node_probe_now(struct node *n);

/* The shared part of a node (n_servers, breaker, backoff, shares), held briefly. */
static inline void node_lock(struct node *n)
{
	if (n->locking)
		pthread_mutex_lock(&n->mu);
}
static inline void node_unlock(struct node *n)
{
	if (n->locking)
		pthread_mutex_unlock(&n->mu);
}

static inline enum breaker_state node_breaker_state(struct node *n)
{
	node_lock(n);
	enum breaker_state st = n->breaker.state;
	node_unlock(n);
	return st;
}

/* The circuit is open and its recovery time has not passed: connects fail at once. */
static inline bool node_breaker_refuses(struct node *n, uint64_t now)
{
	node_lock(n);
	const struct breaker *b = &n->breaker;
	bool refuses = b->state == BREAKER_OPEN && now - b->opened_us < (uint64_t)b->recovery_ms * 1000;
	node_unlock(n);
	return refuses;
}

/* Fill n->total with the sum of the shards (in a world section). */
void node_sum(struct node *n);

/* Whether the cluster manager lets this node take writes, and reads. */
static inline bool node_api_writable(const struct node *n)
{
	return n->api_role == NODE_API_NONE || n->api_role == NODE_API_LEADER;
}
static inline bool node_api_readable(const struct node *n)
{
	return n->api_role != NODE_API_STOPPED;
}

/* Ask the next probe (if this node is a primary) to read the function catalog. */
void node_request_catalog(struct node *n);
void node_take_catalog(struct node *n); /* frees the rows after on_probe used them */

/* The server's own connection limit, as a probe read it: the budget never exceeds it. */
void node_set_server_limit(struct node *n, int limit);

/* Judge a replica's health from its lag against the primary's position. pending_us is
 * how long WAL the replica has not replayed has existed on the primary (0: none pending;
 * UINT64_MAX: longer than the pooler remembers): the replica's own replay time counts
 * only up to it. */
void node_update_health(struct node *n, uint64_t primary_lsn, uint64_t pending_us);

/* The name of an enum node_role, as the config spells it. */
static inline const char *node_role_name(int role)
{
	return role == NODE_ROLE_PRIMARY   ? "primary"
	       : role == NODE_ROLE_REPLICA ? "replica"
	                                   : "auto";
}

/* "16/B374D848" -> 64-bit position; 0 when malformed. */
uint64_t node_parse_lsn(const char *s);

#endif
