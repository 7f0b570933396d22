/* metrics: counters and histograms of one worker, rendered as Prometheus text. Layer 4.
 * Updates on the hot path are plain increments on the worker's own memory (no locks, no
 * allocation); rendering walks the worker's lists on its own thread. */
#ifndef POOLER_METRICS_H
#define POOLER_METRICS_H

#include <stdint.h>

#include "buf.h"

#define METRICS_BUCKETS 12
#define METRICS_PIN_REASONS 8 /* enum pin_reason in classify.h */

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
	uint64_t pinned[METRICS_PIN_REASONS];      /* clients pinned, by enum pin_reason */
	uint64_t pin_refused[METRICS_PIN_REASONS]; /* ...refused instead (pin_action = error) */
	uint64_t statement_mode_refused;           /* transaction blocks in statement mode */
	uint64_t prepared_parses;                  /* statements prepared on a server */
	uint64_t prepared_shared;    /* client Parses served by a server's statement */
	uint64_t prepared_evictions; /* statements closed to bound the cache */
	uint64_t prepared_retries;   /* batches rerun after a stale statement */
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
