/* worker: everything one event-loop thread touches. Layer 0: the modules above reach their
 * loop, config, auth file and lists through it, never through globals.
 *
 * With `workers = N` there are N of them, a team. Each runs its own loop on its own thread
 * and owns its clients, pools, servers and timers; it holds its lock `mu` while it runs
 * callbacks and lets go of it only while its loop sleeps in epoll_wait. Three ways reach
 * across workers, and no other:
 *  - a world section (worker_world_enter/leave), taken only by worker 0, holds every other
 *    worker's lock: the team stands still, and worker 0 may read and change anything of
 *    any worker (admin commands, probe results, reload, shutdown, metrics). Worker 0 is
 *    the only thread that takes more than one worker lock, so nothing can deadlock, and
 *    it never lets go of its own, so nothing changes under its callbacks. This is why
 *    admin console clients move to worker 0 when they log in;
 *  - a message (worker_post) runs a function on the worker that owns what it touches;
 *  - leaf locks (a node's budget, the shared rate limits) guard small shared counters and
 *    are never held while taking a worker lock.
 * With one worker all of this costs a branch: there is nothing to lock. */
#ifndef POOLER_WORKER_H
#define POOLER_WORKER_H

#include <ev.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "ratelimit.h"
#include "util.h"

struct config;
struct auth_file;
struct node;
struct classifier;
struct cluster;
struct hba;
struct authq;
struct ssl_ctx_st;

/* The workers of the process and what they share. */
struct team {
	int n;                   /* workers; 1: no threads, no locking */
	struct worker **all;     /* all[0] runs in the main thread: signals, probes, HTTP */
	pthread_mutex_t gate_mu; /* with gate: workers hold back while a section waits */
	pthread_cond_t gate;
	int want_world;                 /* sections waiting or running (under gate_mu) */
	pthread_mutex_t limits_mu;      /* the two rate limits below, per address for all */
	struct ratelimit connect_limit; /* client_rate_limit, per source address */
	struct ratelimit auth_limit;    /* auth_failure_limit, per source address */
	unsigned next_accept;           /* Unix socket clients go round the workers */
	int n_clients;                  /* over all workers, for max_client_conn (atomic) */
	uint64_t next_id;               /* connection ids, unique over the workers (atomic) */
	int helpers; /* threads of no worker that will still post to one (cancel requests;
	              * atomic): teardown waits for them before it frees loops and workers */
};

/* A function to run on a worker's own thread (worker_post). */
struct worker_msg {
	struct list node;
	void (*fn)(struct worker *w, void *arg);
	void *arg;
};

struct worker {
	struct ev_loop *loop;
	int index; /* in team->all; encoded in cancel keys */
	struct team *team;
	pthread_t thread;   /* workers 1..n-1; worker 0 is the main thread */
	pthread_mutex_t mu; /* held while the loop runs callbacks (n > 1) */
	pthread_mutex_t inbox_mu;
	struct list inbox;            /* struct worker_msg, run by `wake` */
	ev_async wake;                /* worker_post, and a world section's changes */
	bool stop;                    /* leave the loop (shutdown, exit) */
	int world_depth;              /* worker 0: world sections entered and not left */
	int peer_id;                  /* cancel keys' peer_id: the config's at start (a change
	                               * needs a restart) */
	const struct config *cfg;     /* current snapshot; swapped on reload */
	const struct auth_file *auth; /* current auth file */
	const struct hba *hba;        /* auth_hba_file rules, or NULL: auth_type for all */
	struct ssl_ctx_st *tls_ctx;   /* client TLS sessions come from it; NULL: disabled */
	struct authq *authq;          /* auth_query lookups and their cache */
	struct list clients;          /* every client connection, any state */
	struct list pools;            /* struct pool, created on first use */
	struct node **nodes;          /* nodes[i] runs cfg->nodes[i]: the table reload rebuilds */
	int n_nodes;
	struct node **retired_nodes; /* left the config; freed at exit, after their pools */
	int n_retired_nodes;
	struct cluster **clusters; /* clusters[i] polls cfg->clusters[i]'s Patroni API */
	int n_clusters;
	struct classifier *classifier; /* routing verdicts and their cache */
	struct metrics metrics;        /* counters and histograms of this worker */
	uint64_t replica_refusals;     /* reads a replica refused as writes, rerun on the primary */
	unsigned rr;                   /* rotates ties between equally loaded nodes */
	struct {
		uint64_t lsn, us;   /* the primary's WAL position, and when a probe read it */
	} wal_seen[64];             /* ring of recent primary positions, for replica lag */
	unsigned wal_seen_n;        /* positions recorded so far (the ring wraps) */
	unsigned cfg_gen;           /* bumped on reload: cached config pointers are stale */
	struct list dead_clients;   /* closed, freed before the loop sleeps */
	struct list moving_clients; /* leaving for another worker before the loop sleeps */
	struct list held_clients;   /* transactions waiting for a primary (a failover) */
	void (*retry_held)(struct worker *w); /* client: route them again (after a probe) */
	struct list dead_servers;             /* closed, freed before the loop sleeps */
	struct list outgoing_servers; /* given to another worker, sent before the loop sleeps */
	ev_prepare reaper;            /* frees the dead lists; forgets now_us */
	uint64_t now_us;              /* worker_now_us: this wake-up's clock read, or 0 */
	uint64_t rng;                 /* xorshift state for cancel keys and jitter */
	int peer_forwards;            /* cancel requests on their way to peers (peer.c) */
	uint8_t mock_key[32];         /* makes the fake SCRAM salt of each unknown user */
	int n_clients;
	bool shutdown_requested; /* SHUTDOWN on the admin console, not yet acted on */
	bool shutting_down;      /* SIGTERM: finish transactions, accept nothing */
	bool paused_all;         /* PAUSE without a database: new pools start paused too */
	char *paused_dbs;   /* PAUSE or KILL of a database, until RESUME: comma-separated names */
	char *disabled_dbs; /* DISABLE: databases that accept no new clients; comma-separated */
	char *sets; /* SET on the console: "key=value" lines, over the ini at every (re)load */
	void (*on_idle_client)(struct worker *w); /* main: a client left; maybe exit */
	bool (*on_reload)(struct worker *w, char *err, size_t errlen); /* RELOAD */
	void (*on_shutdown)(struct worker *w);                         /* SHUTDOWN */
};

/* Now, for what this wake-up of the loop does: the clock is read on first use and
 * forgotten before the loop sleeps (the reaper) and as it wakes (loop_acquire), so the
 * handful of timestamps a transaction takes (waits, query and transaction times, idle
 * stamps) cost one read between them. A wake-up's events are handled within microseconds
 * (a millisecond or two under heavy load), which bounds the error. Stamps taken from it
 * are compared with util_elapsed_us, as a fresh read elsewhere may be the later one. */
static inline uint64_t worker_now_us(struct worker *w)
{
	if (w->now_us == 0)
		w->now_us = util_now_us();
	return w->now_us;
}

/* Worker 0 (probes, clusters, signals and the HTTP endpoint live there). */
static inline struct worker *worker_main(const struct worker *w)
{
	return w->team->all[0];
}

/* An id for a new client or server connection (log lines, SHOW, KILL_CLIENT). */
static inline uint64_t worker_next_id(struct worker *w)
{
	return __atomic_add_fetch(&w->team->next_id, 1, __ATOMIC_RELAXED);
}

/* The same list of every worker in turn (head: the offset of the list in struct worker),
 * for walks over the whole team: after pos, a node of worker `at`'s list (NULL: from the
 * start), the next node, or NULL after the last worker's last. In a world section. */
struct list *team_list_next(const struct team *t, size_t head, int at, const struct list *pos);

/* Set up a team of n (n >= 1) workers, calloc'ed, loops not yet made. */
struct team *team_new(int n);
void team_free(struct team *t);

/* Each worker's loop: worker 0 takes the default loop (signals), the others new ones; with
 * n > 1 they lock and let go of `mu` around sleeping. False when a loop cannot be made. */
bool worker_init_loop(struct worker *w);
/* Start workers 1..n-1 on their threads; false (with err) when one cannot start. */
bool team_start(struct team *t, char *err, size_t errlen);
/* Ask every worker to leave its loop, wait for threads 1..n-1 to end. From worker 0. */
void team_stop(struct team *t);
/* After team_stop: run what is still posted (a server or client on its way to another
 * worker), so that teardown finds everything on some worker. */
void team_drain(struct team *t);
/* A helper thread that will post to a worker starts and ends (team->helpers); the end
 * comes after its last worker_post. */
void team_helper_begin(struct team *t);
void team_helper_end(struct team *t);
/* After team_stop: wait up to timeout_ms for the helpers to end; false if some still run
 * (the loops and workers must then stay allocated). */
bool team_wait_helpers(struct team *t, int timeout_ms);
/* Run the messages posted to w (its own thread, or after team_stop). */
void worker_run_inbox(struct worker *w);

/* Stop the team: on return every worker's state may be read and changed (and watchers of
 * their loops started or stopped). Only from worker 0's thread; sections nest. */
void worker_world_enter(struct worker *self);
void worker_world_leave(struct worker *self);

/* Run fn(w, arg) on w's own thread, soon. Safe from any thread. */
void worker_post(struct worker *w, void (*fn)(struct worker *w, void *arg), void *arg);

/* The shared rate limits, under their lock. */
bool worker_rate_take(struct worker *w, struct ratelimit *rl, const char *key, uint64_t now_us);
bool worker_rate_allows(struct worker *w, struct ratelimit *rl, const char *key, uint64_t now_us);

#endif
