/* router: decide where each transaction runs, and why. Layer 4.
 *
 * The one owner of the routing policy: router_route() takes the scanned first batch of a
 * transaction and the client's routing session and returns the node with a reason, which
 * the metrics count.
 *
 * Writes (and anything unsure) go to the database's primary: the node the probe last saw
 * out of recovery, or the configured primary until a probe answers. Reads go to a usable
 * replica, chosen by fewest in-flight transactions per unit of weight, and only to one
 * that has replayed min_lsn when the client must read its own writes. The primary takes
 * reads only when no replica may serve them, unless the operator gives it a weight. */
#ifndef POOLER_ROUTER_H
#define POOLER_ROUTER_H

#include <stdbool.h>
#include <stdint.h>

#include "batch.h"
#include "config.h"
#include "node.h"
#include "worker.h"

/* What routing keeps of one client: its read-your-writes position, pins and the flags
 * of its current transaction. Embedded in the client; only the router's calls change it,
 * apart from the session's default_transaction_read_only, which servers report. */
struct route_session {
	uint64_t ryw_since_us; /* a write committed then; reads wait for replicas to catch up */
	uint64_t min_lsn;      /* replicas must have replayed this far to serve its reads */
	int8_t session_ro;     /* default_transaction_read_only of the session (0/1) */
	uint8_t forced_route;  /* enum route_hint from the startup option pooler.route */
	uint8_t once;          /* enum route_reason for the next transaction only, or 0 */
	uint8_t pinned;        /* enum pin_reason: keeps its server for the whole session */
	bool serializable;     /* logged in with default_transaction_isolation = serializable */
	bool on_replica;       /* the current transaction runs on a replica */
	bool ro_tx;            /* ...inside READ ONLY, or asked for by name: nothing in it can
	                        * write, its later batches are not judged */
	bool tx_wrote;         /* the current primary transaction may have written */
};

/* Why a transaction went where it went. Each is counted in
 * pooler_routing_decisions_total{target, reason} (router_reason_label). */
enum route_reason {
	ROUTE_NONE,
	ROUTE_REPLICA,            /* a read on a replica */
	ROUTE_WRITE,              /* the primary: the batch may write (the classifier's verdict) */
	ROUTE_WEIGHT,             /* a read the primary took as its weighted share */
	ROUTE_READ_YOUR_WRITES,   /* a read on the primary: no replica has its last write yet */
	ROUTE_LAG,                /* ...every replica that is up lags too far behind */
	ROUTE_FALLBACK,           /* ...no replica is up, or the chosen one could not be reached */
	ROUTE_REPLICA_REFUSED,    /* ...a replica refused it (25006/0A000): run again here */
	ROUTE_PINNED,             /* ...the session keeps one server connection */
	ROUTE_HINT,               /* ...asked for the primary (comment hint, pooler.route) */
	ROUTE_SESSION_MODE,       /* ...session pooling: the first transaction picks for all */
	ROUTE_PRIMARY_ONLY,       /* ...the database lists no replica */
	ROUTE_REPLICAS_ONLY,      /* a replica: the database lists only replicas, writes too */
	ROUTE_REFUSED_NO_REPLICA, /* answered with an error: no replica, replica_fallback = error */
	ROUTE_REFUSED_NO_PRIMARY, /* answered with an error: no primary is up */
	ROUTE_REFUSED_STATEMENT,  /* answered with an error: a transaction in statement mode */
	ROUTE_REFUSED_PIN,        /* answered with an error: it would pin, pin_action = error */
	ROUTE_REASON_COUNT
};

/* A routing decision: the node, or NULL when the client is to be answered with
 * sqlstate and message instead. pinned is the pin this batch started, or PIN_NONE. */
struct route_decision {
	struct node *node;
	uint8_t reason; /* enum route_reason */
	uint8_t pinned; /* enum pin_reason */
	const char *sqlstate;
	char message[200];
};

/* Decide where the transaction opening with batch b runs (b scanned in transaction and
 * statement mode; in session mode only its length matters). Starts the session's
 * current transaction, counts the decision. */
void router_route(struct worker *w, const struct db_conf *db, const struct batch *b,
                  struct route_session *rs, struct route_decision *d);

/* A later batch of a transaction on a replica (not READ ONLY): whether it may run there
 * too. One that may write, or changes how the session routes, waits for the replica to be
 * let go and then takes the primary. */
bool router_fits_replica(const struct route_session *rs, const struct batch *b);

/* A later batch of a transaction on the primary, judged (b) or not (NULL: may write). */
void router_note_batch(struct route_session *rs, const struct batch *b);

/* The transaction ended: a commit that may have written starts read-your-writes. */
void router_tx_done(struct route_session *rs);

/* The next transaction goes to the primary once, for reason (ROUTE_FALLBACK or
 * ROUTE_REPLICA_REFUSED). */
void router_primary_once(struct route_session *rs, enum route_reason reason);

/* A read waiting on replica n whose connect failed: true when it is to run on the primary
 * at once (replica_fallback = primary, and not already on its way there). */
bool router_replica_unreachable(struct worker *w, struct route_session *rs, const struct node *n);

/* With pin_action = error, what a statement that would pin (enum pin_reason) is told. */
void router_pin_refusal(uint8_t reason, char *out, size_t len);

/* "target" and "reason" labels of a reason, for the metrics; NULL target for ROUTE_NONE. */
const char *router_reason_target(enum route_reason r);
const char *router_reason_label(enum route_reason r);

/* The primary serving db, or NULL when none is known to be up. */
struct node *router_primary(struct worker *w, const struct db_conf *db);

/* A node for a read: a usable replica that has replayed min_lsn (0: any), or the primary
 * itself when its weight is above 0, by fewest in-flight transactions per weight. NULL
 * when none qualifies. */
struct node *router_reader(struct worker *w, const struct db_conf *db, uint64_t min_lsn,
                           bool with_primary);

/* A node's share of reads: its weight, or for weight = auto 1 on a replica and 0 on the
 * primary. */
int router_read_weight(const struct node *n);

/* The worker's node for a configured node. */
struct node *router_node(struct worker *w, const struct node_conf *nc);

/* After each probe: refresh replica health against the primary's position and hand a
 * freshly read function catalog to the classifier. arg is the worker. */
void router_on_probe(struct node *n, void *arg);

/* A node whose last answered probe read the WAL position no earlier than since_us;
 * its lsn then covers every commit made before since_us. 0 when none. */
uint64_t router_primary_lsn_since(struct worker *w, const struct db_conf *db, uint64_t since_us);

#endif
