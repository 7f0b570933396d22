/* reload: see include/reload.h. */
#include "reload.h"

#include <stdlib.h>
#include <string.h>

#include "authq.h"
#include "classify.h"
#include "cluster.h"
#include "log.h"
#include "node.h"
#include "pool.h"
#include "router.h"

static bool add_read_function(const char *name, void *arg)
{
	classify_add_read_function(arg, name);
	return true;
}

static bool add_write_function(const char *name, void *arg)
{
	classify_add_write_function(arg, name);
	return true;
}

/* read_only_functions and write_functions; verdicts learned under the old lists go. */
static void apply_functions(struct worker *w, const struct config *cfg)
{
	classify_clear_cache(w->classifier);
	util_split(cfg->read_only_functions, add_read_function, w->classifier);
	util_split(cfg->write_functions, add_write_function, w->classifier);
}

/* How nodes are probed: the health_* keys, else the first database's dbname and server
 * credentials. */
static struct node_probe_conf probe_conf(const struct config *cfg)
{
	struct node_probe_conf probe = {
	    .dbname = cfg->health_dbname ? cfg->health_dbname : "postgres",
	    .user = cfg->health_user ? cfg->health_user : "postgres",
	    .password = cfg->health_password,
	    .interval_ms = cfg->health_interval_ms,
	    .timeout_ms = cfg->health_timeout_ms,
	    .max_lag_bytes = (uint64_t)cfg->max_replica_lag_bytes,
	    .max_lag_ms = cfg->max_replica_lag_ms,
	    .retry_base_ms = (uint32_t)cfg->retry_base_ms,
	    .retry_max_ms = (uint32_t)cfg->retry_max_ms,
	    .breaker_threshold = (uint32_t)cfg->breaker_failure_threshold,
	    .breaker_recovery_ms = (uint32_t)cfg->breaker_recovery_ms,
	};
	if (cfg->n_dbs > 0) {
		const struct db_conf *db = &cfg->dbs[0];
		if (cfg->health_dbname == NULL)
			probe.dbname = db->dbname;
		if (cfg->health_user == NULL && db->server_user != NULL) {
			probe.user = db->server_user;
			if (cfg->health_password == NULL)
				probe.password = db->server_password;
		}
	}
	return probe;
}

/* Equal settings, where unset (NULL) and empty are the same. */
static bool same_setting(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

/* The running node that serves nc as it is configured now, or NULL. A node whose address,
 * role or TLS settings changed is a new node: its servers must log in again. */
static struct node *same_node(struct worker *w, const struct node_conf *nc)
{
	for (int i = 0; i < w->n_nodes; i++) {
		struct node *n = w->nodes[i];
		if (strcmp(n->name, nc->name) == 0 && strcmp(n->host, nc->host) == 0 &&
		    n->port == nc->port && n->conf_role == nc->role &&
		    same_setting(n->tls.sslmode, config_tls_mode_name(nc->sslmode)) &&
		    same_setting(n->tls.sslrootcert, nc->sslrootcert) &&
		    same_setting(n->tls.sslcert, nc->sslcert) &&
		    same_setting(n->tls.sslkey, nc->sslkey) &&
		    same_setting(n->tls.sslpassword, nc->sslpassword))
			return n;
	}
	return NULL;
}

/* A node left the config: no more probes; kept until exit for the pools draining on it. */
static void retire_node(struct worker *w, struct node *n)
{
	struct node **retired;

	log_info("node %s (%s:%d) removed: its servers close as they go idle", n->name, n->host,
	         n->port);
	node_stop(n);
	retired = util_calloc((size_t)w->n_retired_nodes + 1, sizeof(*retired));
	if (w->n_retired_nodes > 0)
		memcpy(retired, w->retired_nodes, (size_t)w->n_retired_nodes * sizeof(*retired));
	free(w->retired_nodes);
	w->retired_nodes = retired;
	w->retired_nodes[w->n_retired_nodes++] = n;
}

/* The node table of cfg: nodes[i] runs cfg->nodes[i], kept when its section is unchanged,
 * else new (and started); running nodes it leaves out retire. */
static void apply_nodes(struct worker *w, const struct config *cfg)
{
	struct node_probe_conf probe = probe_conf(cfg);
	struct node **nodes = util_calloc((size_t)cfg->n_nodes + 1, sizeof(*nodes));

	for (int i = 0; i < cfg->n_nodes; i++) {
		nodes[i] = same_node(w, &cfg->nodes[i]);
		if (nodes[i] != NULL) {
			nodes[i]->weight = cfg->nodes[i].weight;
			node_set_probe(nodes[i], &probe);
			continue;
		}
		nodes[i] = node_new(&cfg->nodes[i], w, w->team->n, &probe, router_on_probe, w);
		node_start(nodes[i]);
		if (w->nodes != NULL)
			log_info("node %s (%s:%d) added", nodes[i]->name, nodes[i]->host,
			         nodes[i]->port);
	}
	for (int i = 0; i < w->n_nodes; i++) {
		bool kept = false;
		for (int k = 0; k < cfg->n_nodes; k++)
			kept = kept || nodes[k] == w->nodes[i];
		if (!kept)
			retire_node(w, w->nodes[i]);
	}
	free(w->nodes);
	w->nodes = nodes;
	w->n_nodes = cfg->n_nodes;
	for (int i = 0; i < w->n_nodes; i++) {
		w->nodes[i]->conf_budget = cfg->nodes[i].pool_size;
		node_set_server_limit(w->nodes[i], w->nodes[i]->server_limit);
		node_request_catalog(w->nodes[i]); /* the catalog too, on the next probe */
	}
}

/* Rates of the per-address limits: connections per second (bursts of two seconds' worth)
 * and failed logins per minute. */
static void apply_limits(struct team *t, const struct config *cfg)
{
	ratelimit_set(&t->connect_limit, cfg->client_rate_limit, 2.0 * cfg->client_rate_limit);
	ratelimit_set(&t->auth_limit, cfg->auth_failure_limit / 60.0, cfg->auth_failure_limit);
}

/* Why a pool cannot serve its database any more (after the node table changed), or NULL
 * when it still can. */
static const char *pool_outdated(struct worker *w, const struct pool *p, const struct db_conf *db)
{
	bool serves = false;

	if (db == NULL)
		return "database removed";
	for (int i = 0; i < db->n_nodes; i++)
		serves = serves || router_node(w, db->node_list[i]) == p->backend;
	if (!serves)
		return "node no longer serves the database";
	if (strcmp(db->dbname, p->login.dbname) != 0)
		return "dbname changed";
	if (db->server_user != NULL && strcmp(db->server_user, p->login.user) != 0)
		return "server_user changed";
	return NULL;
}

/* Pools whose target changed retire; the others take the new settings. */
static void apply_pools(struct worker *w, const struct config *cfg)
{
	struct list *pos, *tmp;

	list_for_each_safe (pos, tmp, &w->pools) {
		struct pool *p = container_of(pos, struct pool, node);
		const struct db_conf *db = config_find_db(cfg, p->db_name);
		const char *why = pool_outdated(w, p, db);
		if (why != NULL)
			pool_retire(p, why);
		else if (!p->retired)
			pool_configure(p, db, cfg);
	}
}

/* ---- Patroni clusters ------------------------------------------------------------ */

/* What each member node's cluster says of it now. A member the view no longer lists keeps
 * what it had (it retires with the next generation). A member newly called the leader is
 * probed at once: writes move to it as soon as it says it left recovery. */
static void apply_roles(struct worker *w)
{
	for (int i = 0; i < w->n_nodes && i < w->cfg->n_nodes; i++) {
		const struct node_conf *nc = &w->cfg->nodes[i];
		struct node *n = w->nodes[i];
		const struct patroni_member *m = NULL;
		for (int k = 0; nc->cluster != NULL && k < w->n_clusters; k++)
			if (strcmp(w->clusters[k]->name, nc->cluster) == 0)
				m = cluster_member(w->clusters[k], nc->member);
		if (m == NULL)
			continue;
		int role = !m->running                                ? NODE_API_STOPPED
		           : m->role == PATRONI_LEADER && !m->standby ? NODE_API_LEADER
		                                                      : NODE_API_REPLICA;
		if (role == n->api_role)
			continue;
		log_info("node %s: Patroni says %s (%s, state %s)", n->name,
		         role == NODE_API_LEADER    ? "leader: takes writes once its probe agrees"
		         : role == NODE_API_STOPPED ? "not running: no reads, no writes"
		                                    : "replica: no writes",
		         patroni_role_name(m->role), m->state);
		n->api_role = role;
		if (role == NODE_API_LEADER || role == NODE_API_REPLICA)
			node_probe_now(n);
	}
}

/* Whether the config's member nodes of c are the members c's view lists, with the same
 * address and read weight. Compared with the config rather than the previous view, so that
 * a reload that failed (a bad ini) is tried again at the next poll. */
static bool members_match(const struct config *cfg, const struct cluster *c)
{
	int n = 0;

	for (int i = 0; i < cfg->n_nodes; i++) {
		const struct node_conf *nc = &cfg->nodes[i];
		if (nc->cluster == NULL || strcmp(nc->cluster, c->name) != 0)
			continue;
		const struct patroni_member *m = cluster_member(c, nc->member);
		if (m == NULL || strcmp(m->host, nc->host) != 0 || m->port != nc->port ||
		    m->noloadbalance != (nc->weight == 0))
			return false;
		n++;
	}
	return n == c->view.n_members;
}

static void cluster_polled(struct worker *w, struct cluster *c, bool changed);

/* After every poll of a cluster. A new member set is a new generation of the config, made
 * the way RELOAD makes one (the ini is read again, with the members as node sections);
 * otherwise only roles change. This is the last thing the cluster does in its round, so a
 * reload that frees it is safe. */
static void on_cluster_poll(struct cluster *c, bool changed, void *arg)
{
	struct worker *w = arg;

	worker_world_enter(w); /* roles and nodes are what every router reads */
	cluster_polled(w, c, changed);
	worker_world_leave(w);
}

static void cluster_polled(struct worker *w, struct cluster *c, bool changed)
{
	char err[1024];

	(void)changed; /* the config, not the previous view, is what nodes are made of */
	if (c->known && !members_match(w->cfg, c) && w->on_reload != NULL) {
		log_info("cluster %s: %d members now, leader %s: making nodes of them", c->name,
		         c->view.n_members,
		         patroni_leader(&c->view) ? patroni_leader(&c->view)->name : "none");
		if (w->on_reload(w, err, sizeof(err)))
			return; /* reload_apply has applied the roles */
	}
	apply_roles(w);
}

/* clusters[i] polls cfg->clusters[i]: a section with the same name and URLs keeps its
 * poller (and its view), others start one; pollers of removed sections stop. */
static void apply_clusters(struct worker *w, const struct config *cfg)
{
	struct cluster **next = util_calloc((size_t)cfg->n_clusters + 1, sizeof(*next));

	for (int i = 0; i < cfg->n_clusters; i++) {
		const struct cluster_conf *cc = &cfg->clusters[i];
		for (int k = 0; k < w->n_clusters && next[i] == NULL; k++)
			if (w->clusters[k] != NULL && strcmp(w->clusters[k]->name, cc->name) == 0 &&
			    strcmp(w->clusters[k]->urls, cc->urls) == 0) {
				next[i] = w->clusters[k];
				w->clusters[k] = NULL;
				cluster_set_timing(next[i], cc->poll_interval_ms, cc->timeout_ms);
			}
		if (next[i] == NULL) {
			next[i] = cluster_new(cc->name, cc->urls, cc->poll_interval_ms,
			                      cc->timeout_ms, w->loop, on_cluster_poll, w);
			cluster_start(next[i]);
			log_info("cluster %s: polling %s every %d ms", cc->name, cc->urls,
			         cc->poll_interval_ms);
		}
	}
	for (int k = 0; k < w->n_clusters; k++)
		cluster_free(w->clusters[k]);
	free(w->clusters);
	w->clusters = next;
	w->n_clusters = cfg->n_clusters;
}

struct config_member *reload_members(struct worker *w, int *n)
{
	int total = 0, at = 0;

	for (int i = 0; i < w->n_clusters; i++)
		total += w->clusters[i]->view.n_members;
	struct config_member *m = util_calloc((size_t)total + 1, sizeof(*m));
	for (int i = 0; i < w->n_clusters; i++)
		for (int k = 0; k < w->clusters[i]->view.n_members; k++) {
			const struct patroni_member *pm = &w->clusters[i]->view.members[k];
			m[at++] = (struct config_member){w->clusters[i]->name, pm->name, pm->host,
			                                 pm->port, pm->noloadbalance};
		}
	*n = at;
	return m;
}

/* peer_id is read once, at start: the keys handed out name it, and a new one would send
 * their cancel requests to whichever peer took the old id. */
static void keep_peer_id(struct worker *w, const struct config *cfg)
{
	if (w->cfg == NULL)
		for (int i = 0; i < w->team->n; i++)
			w->team->all[i]->peer_id = cfg->peer_id;
	else if (cfg->peer_id != w->peer_id)
		log_warning("peer_id %d: a restart is needed to change it; cancel keys keep "
		            "peer_id %d",
		            cfg->peer_id, w->peer_id);
}

void reload_apply(struct worker *w, const struct config *cfg)
{
	struct team *t = w->team;

	keep_peer_id(w, cfg);
	/* the node table and the config it indexes change together: routing between them
	 * would pair one generation's sections with the other's nodes. Worker 0 owns the
	 * table (its loop runs the probes); the others share it. */
	apply_nodes(w, cfg);
	for (int i = 0; i < t->n; i++) {
		struct worker *o = t->all[i];
		apply_functions(o, cfg);
		o->nodes = w->nodes;
		o->n_nodes = w->n_nodes;
		o->cfg = cfg;
		o->cfg_gen++;
	}
	apply_clusters(w, cfg);
	apply_roles(w);
	apply_limits(t, cfg);
	for (int i = 0; i < t->n; i++) {
		authq_clear(t->all[i]->authq); /* auth_query or its target may have changed */
		apply_pools(t->all[i], cfg);
	}
}

void reload_free_nodes(struct worker *w)
{
	for (int i = 0; i < w->n_clusters; i++)
		cluster_free(w->clusters[i]);
	free(w->clusters);
	w->clusters = NULL;
	w->n_clusters = 0;
	for (int i = 0; i < w->n_nodes; i++)
		node_free(w->nodes[i]);
	for (int i = 0; i < w->n_retired_nodes; i++)
		node_free(w->retired_nodes[i]);
	for (int i = 1; i < w->team->n; i++) {
		w->team->all[i]->nodes = NULL; /* worker 0's table, freed here */
		w->team->all[i]->n_nodes = 0;
	}
	free(w->nodes);
	free(w->retired_nodes);
	w->nodes = w->retired_nodes = NULL;
	w->n_nodes = w->n_retired_nodes = 0;
}
