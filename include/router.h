/* router: pick the node for a transaction. Layer 4.
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
