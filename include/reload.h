/* reload: make a config snapshot the worker's own. Layer 6.
 *
 * The one place that ties a generation of the config to running objects, at startup and on
 * every reload (SIGHUP, RELOAD):
 * - nodes: a [node.NAME] section unchanged (address, role, TLS) keeps its running node, with
 *   its health, breaker and pools, and takes the new probe settings; a new or changed
 *   section starts a new node; a node whose section went away or changed stops probing and
 *   retires: its struct stays until exit, because pools draining its busy servers use it.
 * - the node table: worker.nodes[i] serves the config's nodes[i] (node_conf.index), so a
 *   database's nodes resolve to running nodes by index (router_node) until the next
 *   generation.
 * - pools: a pool whose database, node, dbname or server_user left the config retires (its
 *   idle servers close now, busy ones when their client gives them back; its waiting
 *   clients ask again and get a pool of the new generation); every other pool takes the
 *   new settings. A client of a removed database is told so, and disconnected, at the start
 *   of its next transaction, when it looks its database up again (cfg_gen changed).
 * - clusters: a [cluster.NAME] section keeps its poller while its URLs stay the same. After
 *   every poll each member node learns what the API says of it (leader, replica, not
 *   running: node_api_role); a poll that finds a new member set asks for a reload
 *   (worker.on_reload), whose config has the members as node sections CLUSTER.MEMBER, so
 *   members that appear start as nodes and members that leave retire as above.
 * - worker-wide: function lists of the classifier (its verdict cache starts afresh), rate
 *   limits, node budgets, the auth_query cache.
 * The caller has loaded and checked every file first (a bad file never reaches here), swaps
 * in the auth file, hba and TLS context itself, and frees the previous config after this
 * returns: nothing keeps pointers into it. */
#ifndef POOLER_RELOAD_H
#define POOLER_RELOAD_H

#include "config.h"
#include "worker.h"

/* Make cfg the worker's config (w->cfg, a new cfg_gen) and reconcile everything above with
 * it. At startup the worker has no nodes yet: they all start. */
void reload_apply(struct worker *w, const struct config *cfg);

/* The members every cluster's poller knows, for config_load_members (n of them); the
 * strings point into the pollers' views, valid until their next poll. free() the array. */
struct config_member *reload_members(struct worker *w, int *n);

/* Free every node, running or retired, and the cluster pollers: at exit, after the pools
 * that use them. */
void reload_free_nodes(struct worker *w);

#endif
