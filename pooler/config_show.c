/* config_show: the effective settings as text, for --check-config (config_print) and the
 * console's SHOW CONFIG (config_foreach), from the same key table the parser uses. */
#include "config.h"
#include "config_internal.h"

#include <stdio.h>

#include "log.h"

static void print_keys(FILE *out, const void *obj, const struct key *keys, size_t n)
{
	char value[512];

	for (size_t i = 0; i < n; i++) {
		config_format_value(&keys[i], obj, value, sizeof(value));
		fprintf(out, "%s = %s    ; %s\n", keys[i].name, value, keys[i].help);
	}
}

void config_print(const struct config *cfg, FILE *out)
{
	fprintf(out, "; %s\n[pooler]\n", cfg->path);
	print_keys(out, cfg, config_kinds[0].keys, config_kinds[0].n_keys);
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
	int v = *(const int *)field;

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
	}
}

