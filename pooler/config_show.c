/* config_show: the effective settings as text, for --check-config (config_print) and the
 * console's SHOW CONFIG (config_foreach, with defaults and what a RELOAD can change), from
 * the same key table the parser uses. */
#include "config.h"
#include "config_internal.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

static void print_keys(FILE *out, const void *obj, const struct key *keys, size_t n)
{
	char value[512];

	for (size_t i = 0; i < n; i++) {
		config_format_value(&keys[i], obj, value, sizeof(value));
		fprintf(out, "%s = %s    ; %s\n", keys[i].name, value, keys[i].help);
	}
}

/* [peers] as written, with what this pooler does with each line. */
static void print_peers(const struct config *cfg, FILE *out)
{
	if (cfg->n_peers == 0)
		return;
	fputs("\n[peers]\n", out);
	for (int i = 0; i < cfg->n_peers; i++) {
		const struct peer_conf *p = &cfg->peers[i];
		char addr[300];
		config_peer_address(p, addr, sizeof(addr));
		fprintf(out, "%d = %s    ; %s\n", p->id, addr,
		        p->id == cfg->peer_id ? "this pooler (ignored)"
		                              : "cancel requests with its id go there");
	}
}

void config_print(const struct config *cfg, FILE *out)
{
	fprintf(out, "; %s\n[pooler]\n", cfg->path);
	print_keys(out, cfg, config_kinds[0].keys, config_kinds[0].n_keys);
	print_peers(cfg, out);
	for (int i = 0; i < cfg->n_clusters; i++) {
		fprintf(out, "\n[cluster.%s]\n", cfg->clusters[i].name);
		print_keys(out, &cfg->clusters[i], config_kinds[KIND_CLUSTER].keys,
		           config_kinds[KIND_CLUSTER].n_keys);
	}
	for (int i = 0; i < cfg->n_nodes; i++) {
		fprintf(out, "\n[node.%s]%s\n", cfg->nodes[i].name,
		        cfg->nodes[i].cluster ? "    ; a member of the cluster, from Patroni" : "");
		print_keys(out, &cfg->nodes[i], config_kinds[1].keys, config_kinds[1].n_keys);
		fprintf(out, "; connection budget: %d (%s)\n", cfg->nodes[i].pool_size,
		        cfg->nodes[i].pool_size_source);
	}
	for (int i = 0; i < cfg->n_dbs; i++) {
		const struct db_conf *d = &cfg->dbs[i];
		fprintf(out, "\n[database.%s]\n", d->name);
		print_keys(out, d, config_kinds[2].keys, config_kinds[2].n_keys);
		for (int j = 0; j < d->n_nodes; j++) {
			char src[240];
			int size = config_pool_size(d, d->node_list[j], src, sizeof(src));
			fprintf(out, "; pool size per user on node %s: %d (%s)\n",
			        d->node_list[j]->name, size, src);
		}
	}
}

void config_format_value(const struct key *k, const void *obj, char *out, size_t cap)
{
	const char *field = (const char *)obj + k->offset;
	int v = k->type == K_BOOL ? *(const bool *)field : *(const int *)field;

	switch (k->type) {
	case K_STR:
	case K_PATH:
		snprintf(out, cap, "%s",
		         k->secret
		             ? (*(char *const *)field && **(char *const *)field ? "(set, not shown)"
		                                                                : "")
		             : (*(char *const *)field ? *(char *const *)field : ""));
		return;
	case K_INT:
		snprintf(out, cap, "%d", v);
		return;
	case K_AUTO_INT:
		if (v == k->min - 1)
			snprintf(out, cap, "auto");
		else
			snprintf(out, cap, "%d", v);
		return;
	case K_MS:
	case K_MSEC:
		snprintf(out, cap, "%dms", v);
		return;
	case K_SHARE:
		snprintf(out, cap, "%d%%", v);
		return;
	case K_ENUM:
		snprintf(out, cap, "%s", k->choices[v]);
		return;
	case K_LOGLEVEL:
		snprintf(out, cap, "%s", log_level_name((enum log_level)v));
		return;
	case K_BOOL:
		snprintf(out, cap, "%s", v ? "on" : "off");
		return;
	}
}

/* Keys a RELOAD cannot change: the sockets are opened once, at start, and the cancel keys
 * handed out name the peer_id of the start (a new one would send their cancels away). */
static const char *const restart_keys[] = {"listen_addr",  "listen_port", "unix_socket_dir",
                                           "so_reuseport", "peer_id",     "metrics_listen",
                                           "workers"};

static bool needs_restart(const struct key *k, const void *obj, const struct config *cfg)
{
	if (obj != cfg)       /* (both NULL: a [pooler] key by name) */
		return false; /* [node.*] and [database.*] keys: reload_apply takes them all */
	for (size_t i = 0; i < ARRAY_LEN(restart_keys); i++)
		if (strcmp(restart_keys[i], k->name) == 0)
			return true;
	return false;
}

/* The keys of one section: their values beside the defaults, which are parsed from the
 * table into defs by the same code as the file, so both print alike. */
static void foreach_keys(const struct config *cfg, const char *prefix, const void *obj, void *defs,
                         const struct key *keys, size_t n, config_key_fn *fn, void *arg)
{
	char value[512], def[512], key[256];

	for (size_t i = 0; i < n; i++) {
		config_format_value(&keys[i], obj, value, sizeof(value));
		config_format_value(&keys[i], defs, def, sizeof(def));
		snprintf(key, sizeof(key), "%s%s", prefix, keys[i].name);
		fn(key, value, keys[i].def ? def : NULL, !needs_restart(&keys[i], obj, cfg), arg);
	}
}

void config_foreach(const struct config *cfg, config_key_fn *fn, void *arg)
{
	char prefix[256];
	struct config *defs = util_calloc(1, sizeof(*defs));
	struct node_conf node_defs = {0};
	struct db_conf db_defs = {0};
	struct cluster_conf cluster_defs = {0};
	struct parse_state ps = {.cfg = defs, .err = prefix, .errlen = sizeof(prefix)};

	defs->path = util_strdup(cfg->path);
	defs->dir = util_strdup(cfg->dir);
	config_apply_defaults(&ps, "pooler", defs, config_kinds[0].keys, config_kinds[0].n_keys);
	config_apply_defaults(&ps, "node", &node_defs, config_kinds[1].keys,
	                      config_kinds[1].n_keys);
	config_apply_defaults(&ps, "database", &db_defs, config_kinds[2].keys,
	                      config_kinds[2].n_keys);
	config_apply_defaults(&ps, "cluster", &cluster_defs, config_kinds[KIND_CLUSTER].keys,
	                      config_kinds[KIND_CLUSTER].n_keys);
	foreach_keys(cfg, "", cfg, defs, config_kinds[0].keys, config_kinds[0].n_keys, fn, arg);
	for (int n = 0; n < cfg->n_nodes; n++) {
		snprintf(prefix, sizeof(prefix), "node.%s.", cfg->nodes[n].name);
		foreach_keys(cfg, prefix, &cfg->nodes[n], &node_defs, config_kinds[1].keys,
		             config_kinds[1].n_keys, fn, arg);
	}
	for (int d = 0; d < cfg->n_dbs; d++) {
		snprintf(prefix, sizeof(prefix), "database.%s.", cfg->dbs[d].name);
		foreach_keys(cfg, prefix, &cfg->dbs[d], &db_defs, config_kinds[2].keys,
		             config_kinds[2].n_keys, fn, arg);
	}
	for (int i = 0; i < cfg->n_peers; i++) {
		char key[32], value[300];
		snprintf(key, sizeof(key), "peers.%d", cfg->peers[i].id);
		config_peer_address(&cfg->peers[i], value, sizeof(value));
		fn(key, value, NULL, true, arg);
	}
	for (int c = 0; c < cfg->n_clusters; c++) {
		snprintf(prefix, sizeof(prefix), "cluster.%s.", cfg->clusters[c].name);
		foreach_keys(cfg, prefix, &cfg->clusters[c], &cluster_defs,
		             config_kinds[KIND_CLUSTER].keys, config_kinds[KIND_CLUSTER].n_keys, fn,
		             arg);
	}
	config_free_keys(&node_defs, config_kinds[1].keys, config_kinds[1].n_keys);
	config_free_keys(&db_defs, config_kinds[2].keys, config_kinds[2].n_keys);
	config_free_keys(&cluster_defs, config_kinds[KIND_CLUSTER].keys,
	                 config_kinds[KIND_CLUSTER].n_keys);
	config_free(defs);
}

bool config_key_changeable(const char *key)
{
	const struct section_kind *pooler = &config_kinds[0];

	for (size_t i = 0; i < pooler->n_keys; i++)
		if (strcmp(pooler->keys[i].name, key) == 0)
			return !pooler->keys[i].secret &&
			       !needs_restart(&pooler->keys[i], NULL, NULL);
	return false;
}
