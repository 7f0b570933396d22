/* router: see include/router.h. */
#include "router.h"

#include <string.h>

#include "classify.h"
#include "log.h"
#include "proto.h"

#define ROUTER_CATALOG_EVERY 60 /* probes between reads of the function catalog */

struct node *router_node(struct worker *w, const struct node_conf *nc)
{
	/* reload_apply builds w->nodes in the order of w->cfg->nodes: a section's index is its
	 * node's place. A section of another generation has none. */
	if (nc->index >= w->n_nodes || nc != &w->cfg->nodes[nc->index])
		return NULL;
	return w->nodes[nc->index];
}

struct node *router_primary(struct worker *w, const struct db_conf *db)
{
	struct node *configured = NULL;

	for (int i = 0; i < db->n_nodes; i++) {
		struct node *n = router_node(w, db->node_list[i]);
		if (n == NULL)
			continue;
		if (n->probed && n->up && n->role == NODE_ROLE_PRIMARY)
			return n;
		/* A configured primary stays the primary while unreachable (its clients then
		 * get connect or circuit errors, not "no primary"), unless a probe found it in
		 * recovery. */
		bool demoted = n->probed && n->up && n->role == NODE_ROLE_REPLICA;
		if (n->conf_role == NODE_ROLE_PRIMARY && !demoted && configured == NULL)
			configured = n;
	}
	return configured;
}

int router_read_weight(const struct node *n)
{
	if (n->weight >= 0)
		return n->weight;
	return n->role == NODE_ROLE_REPLICA ? 1 : 0; /* auto */
}

struct node *router_reader(struct worker *w, const struct db_conf *db, uint64_t min_lsn,
                           bool with_primary)
{
	struct node *best = NULL;
	struct node *primary = with_primary ? router_primary(w, db) : NULL;
	long best_score = 0;
	int start = (int)(w->rr++ % (unsigned)db->n_nodes); /* ties rotate */

	for (int k = 0; k < db->n_nodes; k++) {
		struct node *n = router_node(w, db->node_list[(start + k) % db->n_nodes]);
		int weight = n == NULL ? 0 : router_read_weight(n);
		if (weight == 0 || !n->usable)
			continue;
		if (n->role == NODE_ROLE_REPLICA) {
			if (min_lsn != 0 && n->lsn < min_lsn)
				continue;
		} else if (n != primary) {
			continue;
		}
		/* fewest in-flight per unit of weight; scaled to stay in integers */
		long score = (long)n->inflight * 1000 / weight;
		if (best == NULL || score < best_score) {
			best = n;
			best_score = score;
		}
	}
	return best;
}

uint64_t router_primary_lsn_since(struct worker *w, const struct db_conf *db, uint64_t since_us)
{
	struct node *p = router_primary(w, db);

	if (p == NULL || !p->probed || !p->up || p->lsn_as_of_us < since_us)
		return 0;
	return p->lsn;
}

#define WAL_SEEN_LEN ARRAY_LEN(((struct worker *)0)->wal_seen)

/* Remember the primary's position when it moved, with the time its probe read it. */
static void note_primary_wal(struct worker *w, uint64_t lsn, uint64_t at_us)
{
	unsigned last = (w->wal_seen_n - 1) % WAL_SEEN_LEN;

	if (lsn == 0 || (w->wal_seen_n > 0 && w->wal_seen[last].lsn >= lsn))
		return;
	unsigned i = w->wal_seen_n++ % WAL_SEEN_LEN;
	w->wal_seen[i].lsn = lsn;
	w->wal_seen[i].us = at_us;
}

/* How long WAL past replayed has existed on the primary: since the first remembered
 * primary position beyond it. 0 when none is; UINT64_MAX when even the oldest one
 * remembered is beyond it. */
static uint64_t wal_pending_us(const struct worker *w, uint64_t replayed, uint64_t now)
{
	unsigned n = w->wal_seen_n < WAL_SEEN_LEN ? w->wal_seen_n : (unsigned)WAL_SEEN_LEN;

	for (unsigned k = 0; k < n; k++) {
		unsigned i = (w->wal_seen_n - n + k) % WAL_SEEN_LEN;
		if (w->wal_seen[i].lsn > replayed)
			return k == 0 && w->wal_seen_n > WAL_SEEN_LEN
			           ? UINT64_MAX
			           : (now > w->wal_seen[i].us ? now - w->wal_seen[i].us : 0);
	}
	return 0;
}

void router_on_probe(struct node *n, void *arg)
{
	struct worker *w = arg;
	uint64_t primary_lsn = 0, now = util_now_us();

	for (int i = 0; i < w->n_nodes; i++)
		if (w->nodes[i]->up && w->nodes[i]->role == NODE_ROLE_PRIMARY &&
		    w->nodes[i]->lsn > primary_lsn) {
			primary_lsn = w->nodes[i]->lsn;
			note_primary_wal(w, primary_lsn, w->nodes[i]->lsn_as_of_us);
		}
	for (int i = 0; i < w->n_nodes; i++)
		node_update_health(w->nodes[i], primary_lsn,
		                   wal_pending_us(w, w->nodes[i]->lsn, now));
	/* Probes count for the node's circuit like connects do. A probe that answers is a
	 * trial that worked: the node takes connections again at once, without waiting out
	 * the recovery time. */
	if (!n->up) {
		if (breaker_failure(&n->breaker, now))
			log_warning("node %s: circuit open after %u failures in a row", n->name,
			            n->breaker.failures);
	} else {
		if (n->breaker.state != BREAKER_CLOSED)
			log_info("node %s: circuit closed", n->name);
		breaker_success(&n->breaker);
		backoff_reset(&n->backoff);
	}
	/* functions come and go: read their volatility again every so often */
	if (n->role == NODE_ROLE_PRIMARY && n->up && n->probes_ok % ROUTER_CATALOG_EVERY == 0)
		node_request_catalog(n);
	if (n->n_cat_names > 0) {
		struct classify_catalog cat = {
		    .names = (const char *const *)n->cat_names,
		    .n_names = n->n_cat_names,
		    .volatile_names = (const char *const *)n->cat_volatile,
		    .n_volatile = n->n_cat_volatile,
		    .setter_names = (const char *const *)n->cat_setters,
		    .n_setters = n->n_cat_setters,
		};
		classify_set_catalog(w->classifier, &cat);
		log_info("function catalog from node %s: %zu functions, %zu volatile, %zu change "
		         "settings",
		         n->name, n->n_cat_names, n->n_cat_volatile, n->n_cat_setters);
		node_take_catalog(n);
	}
}
