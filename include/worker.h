/* worker: everything one event-loop thread touches. Layer 0 (a plain struct): the modules
 * above reach their loop, config, auth file and lists through it, never through globals. */
#ifndef POOLER_WORKER_H
#define POOLER_WORKER_H

#include <ev.h>
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

struct worker {
	struct ev_loop *loop;
	int index;   /* among the workers, 0 to 255: carried in its clients' cancel keys */
	int peer_id; /* cancel keys' peer_id: the config's at start (a change needs a restart) */
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
		uint64_t lsn, us;       /* the primary's WAL position, and when a probe read it */
	} wal_seen[64];                 /* ring of recent primary positions, for replica lag */
	unsigned wal_seen_n;            /* positions recorded so far (the ring wraps) */
	unsigned cfg_gen;               /* bumped on reload: cached config pointers are stale */
	struct list dead_clients;       /* closed, freed before the loop sleeps */
	struct list held_clients;       /* transactions waiting for a primary (a failover) */
	void (*retry_held)(struct worker *w); /* client: route them again (after a probe) */
	struct list dead_servers;       /* closed, freed before the loop sleeps */
	ev_prepare reaper;              /* frees the dead lists */
	struct ratelimit connect_limit; /* client_rate_limit, per source address */
	struct ratelimit auth_limit;    /* auth_failure_limit, per source address */
	uint64_t rng;                   /* xorshift state for cancel keys and jitter */
	int peer_forwards;              /* cancel requests on their way to peers (peer.c) */
	uint8_t mock_key[32];           /* makes the fake SCRAM salt of each unknown user */
	uint64_t next_id;               /* connection ids for log lines */
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

#endif
