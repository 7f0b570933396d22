/* router: see include/router.h. */
#include "router.h"

#include <string.h>

#include "classify.h"
#include "log.h"

struct node *router_node(struct worker *w, const struct node_conf *nc)
{
	for (int i = 0; i < w->n_nodes; i++)
		if (strcmp(w->nodes[i]->name, nc->name) == 0)
			return w->nodes[i];
	return NULL;
}

struct node *router_primary(struct worker *w, const struct db_conf *db)
{
	struct node *configured = NULL;

	for (int i = 0; i < db->n_nodes; i++) {
		struct node *n = router_node(w, db->node_list[i]);
		if (n == NULL)
			continue;
		if (n->probed) {
			if (n->up && n->role == NODE_ROLE_PRIMARY)
				return n;
		} else if (n->conf_role == NODE_ROLE_PRIMARY && configured == NULL) {
			configured = n;
		}
	}
	return configured;
}

struct node *router_replica(struct worker *w, const struct db_conf *db, uint64_t min_lsn)
{
	struct node *best = NULL;
	long best_score = 0;

	for (int i = 0; i < db->n_nodes; i++) {
		struct node *n = router_node(w, db->node_list[i]);
		if (n == NULL || !n->usable || n->role != NODE_ROLE_REPLICA || n->weight == 0)
			continue;
		if (min_lsn != 0 && n->lsn < min_lsn)
			continue;
		/* fewest in-flight per unit of weight; scaled to stay in integers */
		long score = (long)n->inflight * 1000 / n->weight;
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

void router_on_probe(struct node *n, void *arg)
{
	struct worker *w = arg;
	uint64_t primary_lsn = 0;

	for (int i = 0; i < w->n_nodes; i++)
		if (w->nodes[i]->up && w->nodes[i]->role == NODE_ROLE_PRIMARY &&
		    w->nodes[i]->lsn > primary_lsn)
			primary_lsn = w->nodes[i]->lsn;
	for (int i = 0; i < w->n_nodes; i++)
		node_update_health(w->nodes[i], primary_lsn);
	if (n->n_cat_names > 0) {
		classify_set_catalog(w->classifier, (const char *const *)n->cat_names,
		                     n->n_cat_names, (const char *const *)n->cat_volatile,
		                     n->n_cat_volatile);
		log_info("function catalog from node %s: %zu functions, %zu volatile", n->name,
		         n->n_cat_names, n->n_cat_volatile);
		node_take_catalog(n);
	}
}
