/* metrics: counters and histograms of one worker, rendered as Prometheus text. Layer 4.
 * Updates on the hot path are plain increments on the worker's own memory (no locks, no
 * allocation); rendering walks the worker's lists on its own thread. */
#ifndef POOLER_METRICS_H
#define POOLER_METRICS_H

#include <stdint.h>

#include "buf.h"

#define METRICS_BUCKETS 12

struct histogram {
	uint64_t counts[METRICS_BUCKETS + 1]; /* the last one is +Inf */
	uint64_t count;
	double sum; /* seconds */
};

struct metrics {
	struct histogram client_wait;      /* from wanting a server to having one */
	struct histogram transaction_time; /* from having a server to giving it back */
	uint64_t routed_replica;           /* transactions sent to a replica */
	uint64_t routed_primary_write;     /* ...to the primary because they may write */
	uint64_t routed_primary_read;      /* ...reads the primary took (its share, or fallback) */
	uint64_t routed_refused;           /* reads refused: no replica and fallback = error */
	uint64_t clients_rejected;         /* max_client_conn */
	uint64_t login_failures;           /* wrong password or unknown user */
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
	uint64_t queries_timed_out; /* query_timeout cancels */
	uint64_t clients_throttled; /* client_rate_limit */
	uint64_t logins_throttled;  /* auth_failure_limit */
};

void metrics_observe(struct histogram *h, uint64_t micros);

struct worker;
/* Clients by state, counted by the client module (a layer above). */
struct client_counts {
	int login, idle, waiting, active;
};
/* Append the whole exposition to out. */
void metrics_render(struct worker *w, const struct client_counts *clients, struct buf *out);

#endif
