/* config_check: what one line alone does not show. An unknown key gets the nearest known
 * one as a suggestion; once the file is read, the sections it needs, each database against
 * its nodes (and its pool sizes), and keys that depend on others. Errors name the line of
 * the key or section they are about. */
#include "config.h"
#include "config_internal.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

#include "patroni.h"

/* Edit distance between a and b, adjacent transpositions counting one (listen_prot is one
 * step from listen_port); names longer than the table's longest count as far. */
static size_t distance(const char *a, const char *b)
{
	enum { MAXN = 64 };
	size_t la = strlen(a), lb = strlen(b), d[MAXN + 1][MAXN + 1];

	if (la > MAXN || lb > MAXN)
		return SIZE_MAX;
	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++)
		for (size_t j = 1; j <= lb; j++) {
			size_t cost = a[i - 1] != b[j - 1], best = d[i - 1][j - 1] + cost;
			if (d[i - 1][j] + 1 < best)
				best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best)
				best = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1;
			d[i][j] = best;
		}
	return d[la][lb];
}

/* The key of a kind of section nearest to name, when it is near enough to be a typo. */
static const char *nearest_key(int kind, const char *name)
{
	size_t best = strlen(name) / 4 + 1, d; /* a typo or two, more in long names */
	const char *found = NULL;

	for (size_t i = 0; i < config_kinds[kind].n_keys; i++)
		if ((d = distance(name, config_kinds[kind].keys[i].name)) <= best) {
			best = d;
			found = config_kinds[kind].keys[i].name;
		}
	for (size_t a = 0; kind == 0 && a < CONFIG_ALIASES; a++)
		if ((d = distance(name, config_aliases[a].alias)) < best) {
			best = d;
			found = config_aliases[a].alias;
		}
	return found;
}

/* An unknown key: the near match, or the section kind the key belongs to, or where the
 * keys are listed (the whole list would not fit a line). */
int config_unknown_key(struct parse_state *ps, const char *section, int kind, const char *name)
{
	const char *near = nearest_key(kind, name);

	if (near != NULL)
		return config_fail(ps, "[%s] %s: unknown key; did you mean %s?", section, name,
		                   near);
	for (int other = 0; other < CONFIG_KINDS; other++)
		for (size_t i = 0; other != kind && i < config_kinds[other].n_keys; i++)
			if (strcmp(config_kinds[other].keys[i].name, name) == 0)
				return config_fail(
				    ps, "[%s] %s: unknown key here; it belongs in [%s%s]", section,
				    name, config_kinds[other].prefix, other == 0 ? "" : "NAME");
	return config_fail(
	    ps,
	    "[%s] %s: unknown key (pooler.ini(5) and --check-config list the keys of "
	    "[%s%s])",
	    section, name, config_kinds[kind].prefix, kind == 0 ? "" : "NAME");
}

/* The node's connection budget: pool_size as written, or the core-count formula. */
static void size_node(struct node_conf *n)
{
	char src[160];
	int cores = n->cores ? n->cores : config_local_cores();

	if (n->budget > 0) {
		n->pool_size = n->budget;
		snprintf(src, sizeof(src), "pool_size = %d", n->budget);
	} else {
		n->pool_size = cores * 2 + n->spindles;
		snprintf(src, sizeof(src), "cores %d%s * 2 + effective_spindle_count %d", cores,
		         n->cores ? "" : " (this machine)", n->spindles);
	}
	n->pool_size_source = util_strdup(src);
}

int config_pool_size(const struct db_conf *d, const struct node_conf *n, char *src, size_t len)
{
	int size;
	char buf[240];

	if (d->pool_size > 0) {
		size = d->pool_size < n->pool_size ? d->pool_size : n->pool_size;
		snprintf(buf, sizeof(buf), "pool_size = %d%s", d->pool_size,
		         size < d->pool_size ? ", capped by the node's pool_size" : "");
	} else {
		size = (n->pool_size * d->max_pool_share + 99) / 100;
		if (size < 1)
			size = 1;
		snprintf(buf, sizeof(buf), "node %s pool_size %d (%s) * max_pool_share %d%%",
		         n->name, n->pool_size, n->pool_size_source, d->max_pool_share);
	}
	if (src != NULL)
		snprintf(src, len, "%s", buf);
	return size;
}

/* A database's nodes list being resolved. */
struct db_nodes {
	struct parse_state *ps;
	struct db_conf *d;
};

/* One name of a nodes list: its section joins the database's node_list. */
static bool add_db_node(const char *name, void *arg)
{
	struct db_nodes *dn = arg;
	const struct config *cfg = dn->ps->cfg;
	struct node_conf *found = NULL;

	for (int i = 0; i < cfg->n_nodes; i++)
		if (strcmp(cfg->nodes[i].name, name) == 0)
			found = &cfg->nodes[i];
	if (found == NULL)
		return config_fail(dn->ps, "[database.%s] nodes: no section [node.%s]", dn->d->name,
		                   name);
	if (dn->d->n_nodes < cfg->n_nodes)
		dn->d->node_list[dn->d->n_nodes++] = found;
	return true;
}

static bool resolve_cluster_db(struct parse_state *ps, struct db_conf *d);
static bool size_db(struct parse_state *ps, struct db_conf *d);

/* What routing asks of a database's nodes on every transaction, worked out once. */
static bool note_roles(struct db_conf *d)
{
	d->has_replicas = false;
	d->replicas_only = d->n_nodes > 0;
	for (int i = 0; i < d->n_nodes; i++) {
		if (d->node_list[i]->role != NODE_ROLE_PRIMARY)
			d->has_replicas = true;
		if (d->node_list[i]->role != NODE_ROLE_REPLICA)
			d->replicas_only = false;
	}
	return true;
}

static bool resolve_db(struct parse_state *ps, struct db_conf *d)
{
	struct config *cfg = ps->cfg;

	ps->line = d->line;
	if (d->dbname == NULL)
		d->dbname = util_strdup(d->name);
	d->node_list = util_calloc((size_t)cfg->n_nodes + 1, sizeof(*d->node_list));
	if (d->cluster != NULL)
		return resolve_cluster_db(ps, d) && note_roles(d);
	if (d->nodes == NULL) {
		for (int i = 0; i < cfg->n_nodes; i++)
			if (cfg->nodes[i].cluster ==
			    NULL) /* members serve their cluster's databases */
				d->node_list[d->n_nodes++] = &cfg->nodes[i];
	} else {
		struct db_nodes dn = {ps, d};
		if (!util_split(d->nodes, add_db_node, &dn))
			return false;
	}
	/* A database of replicas only (a reporting database) is allowed: everything runs on
	 * them, and they refuse writes themselves. */
	if (d->n_nodes == 0)
		return config_fail(ps, "[database.%s] nodes: needs at least one node", d->name);
	return size_db(ps, d) && note_roles(d);
}

/* A database served by a cluster: its members, as many as are known (none before the
 * first answer of the Patroni API: the database then has no primary yet). */
static bool resolve_cluster_db(struct parse_state *ps, struct db_conf *d)
{
	struct config *cfg = ps->cfg;
	bool found = false;

	if (d->nodes != NULL)
		return config_fail(ps, "[database.%s] cluster: nodes and cluster are exclusive",
		                   d->name);
	for (int i = 0; i < cfg->n_clusters; i++)
		found = found || strcmp(cfg->clusters[i].name, d->cluster) == 0;
	if (!found)
		return config_fail(ps, "[database.%s] cluster: no section [cluster.%s]", d->name,
		                   d->cluster);
	for (int i = 0; i < cfg->n_nodes; i++)
		if (cfg->nodes[i].cluster != NULL && strcmp(cfg->nodes[i].cluster, d->cluster) == 0)
			d->node_list[d->n_nodes++] = &cfg->nodes[i];
	if (d->n_nodes > 0)
		return size_db(ps, d);
	d->effective_pool_size = d->pool_size > 0 ? d->pool_size : config_local_cores() * 2 + 1;
	d->pool_size_source = util_strdup("no member of the cluster known yet");
	return true;
}

/* The pool size shown for the database, and min_pool_size checked against it. */
static bool size_db(struct parse_state *ps, struct db_conf *d)
{
	/* Pools on other nodes are sized from those nodes; this is the figure for the
	 * primary, shown by SHOW DATABASES and --check-config. */
	const struct node_conf *n = d->node_list[0];
	for (int i = 0; i < d->n_nodes; i++)
		if (d->node_list[i]->role == NODE_ROLE_PRIMARY) {
			n = d->node_list[i];
			break;
		}
	char src[200];
	d->effective_pool_size = config_pool_size(d, n, src, sizeof(src));
	d->pool_size_source = util_strdup(src);
	if (d->min_pool_size > d->effective_pool_size)
		return config_fail(
		    ps, "[database.%s] min_pool_size: %d is larger than the pool size %d", d->name,
		    d->min_pool_size, d->effective_pool_size);
	return true;
}

/* TLS for clients needs a certificate and its key; verifying clients needs the CAs. */
static bool check_client_tls(struct parse_state *ps)
{
	const struct config *cfg = ps->cfg;

	if (cfg->client_tls_sslmode == TLS_DISABLE)
		return true;
	ps->line = config_key_line(ps, "pooler", "client_tls_sslmode");
	if (cfg->client_tls_cert_file == NULL || cfg->client_tls_cert_file[0] == '\0')
		return config_fail(
		    ps, "[pooler] client_tls_cert_file: required when client_tls_sslmode is "
		        "not disable");
	if (cfg->client_tls_key_file == NULL || cfg->client_tls_key_file[0] == '\0')
		return config_fail(
		    ps, "[pooler] client_tls_key_file: required when client_tls_sslmode is "
		        "not disable");
	if (cfg->client_tls_sslmode >= TLS_VERIFY_CA &&
	    (cfg->client_tls_ca_file == NULL || cfg->client_tls_ca_file[0] == '\0'))
		return config_fail(
		    ps, "[pooler] client_tls_ca_file: required with client_tls_sslmode = "
		        "verify-ca or verify-full");
	return true;
}

/* metrics_listen is address:port, and not a port the client listeners take on an address
 * they share (the second bind would fail at startup, or a reload would not tell). */
static bool check_metrics_listen(struct parse_state *ps)
{
	const struct config *cfg = ps->cfg;
	const char *listen = cfg->metrics_listen, *colon = strrchr(listen, ':');
	char host[128];
	long port;

	if (listen[0] == '\0')
		return true;
	ps->line = config_key_line(ps, "pooler", "metrics_listen");
	if (colon == NULL || !util_parse_int(colon + 1, 0, 65535, &port) ||
	    (size_t)(colon - listen) >= sizeof(host))
		return config_fail(
		    ps,
		    "[pooler] metrics_listen: \"%s\" is not address:port (port 0 to 65535; "
		    "[::1]:9930 for IPv6; empty disables the endpoint)",
		    listen);
	if (port != cfg->listen_port)
		return true;
	snprintf(host, sizeof(host), "%.*s", (int)(colon - listen), listen);
	size_t n = strlen(host);
	if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
		memmove(host, host + 1, n - 2);
		host[n - 2] = '\0';
	}
	static const char *const any[] = {"", "*", "0.0.0.0", "::"};
	bool shared = config_list_has(cfg->listen_addr, host);
	for (size_t i = 0; i < ARRAY_LEN(any); i++)
		shared = shared || strcmp(host, any[i]) == 0 ||
		         (any[i][0] != '\0' && config_list_has(cfg->listen_addr, any[i]));
	if (!shared)
		return true;
	int port_line = config_key_line(ps, "pooler", "listen_port");
	if (port_line > ps->line)
		ps->line = port_line;
	return config_fail(ps,
	                   "[pooler] metrics_listen: port %ld is listen_port's too; give the HTTP "
	                   "endpoint a port of its own (or port 0 for any free one)",
	                   port);
}

static bool check_url(const char *url, void *arg)
{
	char host[64];
	unsigned char addr[16];
	int port;
	(void)arg;

	return patroni_url(url, host, sizeof(host), &port) &&
	       (inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1);
}

/* Every [cluster.NAME] names at least one URL, each one the poller can use. */
static bool check_clusters(struct parse_state *ps)
{
	for (int i = 0; i < ps->cfg->n_clusters; i++) {
		struct cluster_conf *c = &ps->cfg->clusters[i];
		ps->line = c->line;
		if (c->urls == NULL || c->urls[0] == '\0')
			return config_fail(
			    ps, "[cluster.%s] urls: required (http://HOST:PORT, ...)", c->name);
		if (!util_split(c->urls, check_url, ps))
			return config_fail(
			    ps,
			    "[cluster.%s] urls: each must be http://HOST:PORT with HOST "
			    "a numeric address or localhost",
			    c->name);
	}
	return true;
}

static bool only_cluster_dbs(const struct config *cfg)
{
	for (int i = 0; i < cfg->n_dbs; i++)
		if (cfg->dbs[i].cluster == NULL)
			return false;
	return true;
}

/* What no single line shows: the sections a working file needs (reported at its last
 * line, where they would be added), databases against their nodes, keys that need others. */
bool config_check_whole(struct parse_state *ps)
{
	struct config *cfg = ps->cfg;

	if (ps->line == 0)
		ps->line = 1;
	if (cfg->n_dbs == 0)
		return config_fail(
		    ps, "no [database.NAME] section: clients would have nothing to connect to "
		        "(each needs one, with the [node.NAME] sections that serve it)");
	if (cfg->n_nodes == 0 && !only_cluster_dbs(cfg))
		return config_fail(ps,
		                   "no [node.NAME] section: databases need at least one server");
	if (!check_clusters(ps))
		return false;
	for (int i = 0; i < cfg->n_nodes; i++)
		size_node(&cfg->nodes[i]);
	for (int i = 0; i < cfg->n_dbs; i++)
		if (!resolve_db(ps, &cfg->dbs[i]))
			return false;
	return check_client_tls(ps) && check_metrics_listen(ps);
}
