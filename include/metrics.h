/* metrics: counters and histograms of one worker, rendered as Prometheus text. Layer 4.
 * Updates on the hot path are plain increments on the worker's own memory (no locks, no
 * allocation); rendering walks the worker's lists on its own thread. */
#ifndef POOLER_METRICS_H
#define POOLER_METRICS_H

#include <stdint.h>

#include "buf.h"
#include "conn.h"
#include "histogram.h"

/* Why a client was turned away, the `reason` label of pooler_clients_rejected_total. To
 * add one: a value here, its label in metrics.c's reject_names, and metrics_reject() where
 * the client is refused. */
enum reject_reason {
	REJECT_MAX_CLIENT_CONN,    /* more clients than max_client_conn (53300) */
	REJECT_AUTHENTICATION,     /* wrong password or unknown user (28P01) */
	REJECT_QUERY_WAIT_TIMEOUT, /* no server became free within query_wait_timeout */
	REJECT_REASONS             /* the count, not a reason */
};

#define METRICS_PIN_REASONS 8 /* enum pin_reason in classify.h */

/* Running totals that a stats_period window compares (SHOW STATS avg_*, the log summary). */
struct stats_totals {
	uint64_t xacts, queries;             /* counts */
	uint64_t recv, sent;                 /* bytes */
	uint64_t xact_us, query_us, wait_us; /* summed durations */
};

/* Averages over the last stats_period: counts and bytes per second; xact_us and wait_us per
 * transaction, query_us per query. */
struct stats_window {
	struct stats_totals prev; /* the totals at the last tick */
	struct stats_totals avg;
	bool rolled; /* a stats_period has ended: avg holds its averages */
};

#define METRICS_ROUTE_REASONS 20 /* room for router.h's enum route_reason */

struct metrics {
	struct histogram client_wait;      /* from wanting a server to having one */
	struct histogram transaction_time; /* from having a server to giving it back */
	struct conn_bytes client_bytes;    /* read from / written to clients */
	uint64_t routed[METRICS_ROUTE_REASONS]; /* by enum route_reason (router.h) */
	uint64_t rejected[REJECT_REASONS]; /* clients turned away, by reason */
	uint64_t server_login_failures;
	uint64_t config_reloads_ok;
	uint64_t config_reloads_failed;
	/* pool sizing and limits */
	uint64_t reserve_used;        /* reserve connections opened */
	uint64_t servers_evicted;     /* closed to make room for another pool */
	uint64_t servers_idle_closed; /* server_idle_timeout */
	uint64_t servers_recycled;    /* server_lifetime */
	uint64_t clients_idle_timeout;
	uint64_t clients_idle_tx_timeout;
	uint64_t queries_timed_out;                /* query_timeout cancels */
	uint64_t cancels_forwarded;                /* cancel requests sent on to their peer */
	uint64_t clients_throttled;                /* client_rate_limit */
	uint64_t logins_throttled;                 /* auth_failure_limit */
	struct stats_window window;                /* the whole worker, client side bytes */
	uint64_t pinned[METRICS_PIN_REASONS];      /* clients pinned, by enum pin_reason */
	uint64_t pin_refused[METRICS_PIN_REASONS]; /* ...refused instead (pin_action = error) */
	uint64_t statement_mode_refused;           /* transaction blocks in statement mode */
	uint64_t servers_restored;   /* settings restored before reuse (DO, CALL, functions) */
	uint64_t login_restores;     /* client RESETs answered with its login values */
	uint64_t settings_carried;   /* session SETs carried from server to server, not pinned */
	uint64_t unnamed_replays;    /* unnamed statements prepared again on another server */
	uint64_t replica_fallbacks;  /* reads sent to the primary after a replica connect failed */
	uint64_t prepared_parses;                  /* statements prepared on a server */
	uint64_t prepared_shared;    /* client Parses served by a server's statement */
	uint64_t prepared_evictions; /* statements closed to bound the cache */
	uint64_t prepared_retries;   /* batches rerun after a stale statement */
	uint64_t servers_moved_in;   /* taken over from another worker for a waiting client */
};

static inline void metrics_reject(struct metrics *m, enum reject_reason why)
{
	m->rejected[why]++;
}

struct worker;
/* Clients by state, counted by the client module (a layer above). */
struct client_counts {
	int login, idle, waiting, active;
};
/* Append the whole exposition to out. */
void metrics_render(struct worker *w, const struct client_counts *clients, struct buf *out);

/* Every stats_period: roll the windows of the worker and its pools over the last `seconds`
 * and write a one-line key=value summary of the worker's averages into line. */
void metrics_period(struct worker *w, double seconds, char *line, size_t len);

#endif
