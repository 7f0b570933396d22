/* config: see include/config.h. */
#include "config.h"
#include "config_internal.h"

#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

bool config_fail(struct parse_state *ps, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (ps->failed)
		return false;
	ps->failed = true;
	n = snprintf(ps->err, ps->errlen, "%s:%d: ", ps->cfg->path, ps->line);
	if (n < 0 || (size_t)n >= ps->errlen)
		return false;
	va_start(ap, fmt);
	vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return false;
}

int config_local_cores(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

/* Durations: a number with an optional unit ms, s, min, h; a bare number means seconds,
 * or milliseconds when bare_ms. */
static bool parse_ms(const char *v, bool bare_ms, long *out)
{
	char *end;
	double x;

	errno = 0;
	x = strtod(v, &end);
	if (errno != 0 || end == v || x < 0)
		return false;
	while (*end == ' ')
		end++;
	if (*end == '\0' && bare_ms)
		;
	else if (*end == '\0' || strcmp(end, "s") == 0)
		x *= 1000;
	else if (strcmp(end, "min") == 0)
		x *= 60000;
	else if (strcmp(end, "h") == 0)
		x *= 3600000;
	else if (strcmp(end, "ms") != 0)
		return false;
	if (!(x < 1e15)) /* also refuses NaN, whose conversion to long is undefined */
		return false;
	*out = (long)x;
	return true;
}

/* Shares: "50%" or "0.5", as a whole percent. */
static bool parse_share(const char *v, long *out)
{
	char *end;
	double x;

	errno = 0;
	x = strtod(v, &end);
	if (errno != 0 || end == v || x < 0)
		return false;
	while (*end == ' ')
		end++;
	if (strcmp(end, "%") == 0)
		;
	else if (*end == '\0' && x <= 1.0)
		x *= 100;
	else
		return false;
	if (!(x < 1e15))
		return false;
	*out = (long)(x + 0.5);
	return true;
}

/* on | off, with the spellings other tools write booleans in. */
static bool set_bool(struct parse_state *ps, const char *section, const struct key *k, bool *field,
                     const char *value)
{
	static const char *const yes[] = {"on", "true", "yes", "1"}, *const no[] = {"off", "false",
	                                                                            "no", "0"};

	for (size_t i = 0; i < ARRAY_LEN(yes); i++)
		if (strcasecmp(value, yes[i]) == 0 || strcasecmp(value, no[i]) == 0) {
			*field = strcasecmp(value, yes[i]) == 0;
			return true;
		}
	return config_fail(ps, "[%s] %s: \"%s\" is not allowed (allowed: on | off)", section,
	                   k->name, value);
}

/* One of k->choices, stored as its index; the error lists them. */
static bool set_enum(struct parse_state *ps, const char *section, const struct key *k, int *field,
                     const char *value)
{
	char allowed[256] = "";

	for (int i = 0; k->choices[i] != NULL; i++) {
		if (strcasecmp(value, k->choices[i]) == 0) {
			*field = i;
			return true;
		}
	}
	for (int i = 0; k->choices[i] != NULL; i++) {
		if (i > 0)
			strncat(allowed, " | ", sizeof(allowed) - strlen(allowed) - 1);
		strncat(allowed, k->choices[i], sizeof(allowed) - strlen(allowed) - 1);
	}
	return config_fail(ps, "[%s] %s: \"%s\" is not allowed (allowed: %s)", section, k->name,
	                   value, allowed);
}

static bool set_key(struct parse_state *ps, const char *section, void *obj, const struct key *k,
                    const char *value)
{
	char *field = (char *)obj + k->offset;
	long v;

	switch (k->type) {
	case K_STR:
	case K_PATH:
		free(*(char **)field);
		if (k->type == K_PATH && value[0] != '\0' && value[0] != '/') {
			size_t n = strlen(ps->cfg->dir) + strlen(value) + 2;
			char *p = util_calloc(1, n);
			snprintf(p, n, "%s/%s", ps->cfg->dir, value);
			*(char **)field = p;
		} else {
			*(char **)field = util_strdup(value);
		}
		return true;
	case K_INT:
	case K_AUTO_INT:
		if (k->type == K_AUTO_INT && strcasecmp(value, "auto") == 0) {
			*(int *)field = (int)k->min - 1; /* auto: just below the range */
			return true;
		}
		if (!util_parse_int(value, k->min, k->max, &v))
			return config_fail(ps,
			                   "[%s] %s: \"%s\" is not %san integer from %ld to %ld",
			                   section, k->name, value,
			                   k->type == K_AUTO_INT ? "auto or " : "", k->min, k->max);
		*(int *)field = (int)v;
		return true;
	case K_MS:
	case K_MSEC:
		if (!parse_ms(value, k->type == K_MSEC, &v) || v < k->min || v > k->max)
			return config_fail(
			    ps,
			    "[%s] %s: \"%s\" is not a duration from %ldms to %ldms "
			    "(a number with unit ms, s, min or h; bare numbers are %s)",
			    section, k->name, value, k->min, k->max,
			    k->type == K_MSEC ? "milliseconds" : "seconds");
		*(int *)field = (int)v;
		return true;
	case K_ENUM:
		return set_enum(ps, section, k, (int *)field, value);
	case K_BOOL:
		return set_bool(ps, section, k, (bool *)field, value);
	case K_SHARE:
		if (!parse_share(value, &v) || v < k->min || v > k->max)
			return config_fail(
			    ps,
			    "[%s] %s: \"%s\" is not a share from %ld%% to %ld%% (write 50%% "
			    "or 0.5)",
			    section, k->name, value, k->min, k->max);
		*(int *)field = (int)v;
		return true;
	case K_LOGLEVEL:
		v = log_level_parse(value);
		if (v < 0)
			return config_fail(
			    ps,
			    "[%s] %s: \"%s\" is not allowed (allowed: error | warning | info | "
			    "debug)",
			    section, k->name, value);
		*(int *)field = (int)v;
		return true;
	}
	return false;
}

bool config_apply_defaults(struct parse_state *ps, const char *section, void *obj,
                           const struct key *keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (keys[i].def != NULL && !set_key(ps, section, obj, &keys[i], keys[i].def))
			return false;
	return true;
}

/* The line where a key of a section was set, or 0 (left at its default). */
int config_key_line(const struct parse_state *ps, const char *section, const char *key)
{
	for (size_t i = 0; i < ps->n_seen; i++)
		if (strcmp(ps->seen[i].section, section) == 0 && strcmp(ps->seen[i].key, key) == 0)
			return ps->seen[i].line;
	return 0;
}

/* Remember that key (written as `as`, the key or an alias, both from the tables) was set on
 * this line; false (reported) when the section set it before: the last one silently winning
 * hides a mistake. */
static bool note_key(struct parse_state *ps, const char *section, const char *key, const char *as)
{
	for (size_t i = 0; i < ps->n_seen; i++) {
		const struct seen_key *k = &ps->seen[i];
		if (strcmp(k->section, section) != 0 || strcmp(k->key, key) != 0)
			continue;
		return config_fail(
		    ps,
		    "[%s] %s: set twice in the section (first on line %d%s%s); write each "
		    "key once",
		    section, as, k->line, k->as != as ? ", as " : "", k->as != as ? k->as : "");
	}
	if (ps->n_seen == ps->cap_seen) {
		ps->cap_seen = ps->cap_seen ? ps->cap_seen * 2 : 32;
		ps->seen = realloc(ps->seen, ps->cap_seen * sizeof(*ps->seen));
		if (ps->seen == NULL)
			abort();
	}
	ps->seen[ps->n_seen++] = (struct seen_key){util_strdup(section), key, as, ps->line};
	return true;
}

static void free_seen(struct parse_state *ps)
{
	for (size_t i = 0; i < ps->n_seen; i++)
		free(ps->seen[i].section);
	free(ps->seen);
}

static void *find_or_add_cluster(struct parse_state *ps, const char *section, const char *name)
{
	struct config *cfg = ps->cfg;

	for (int i = 0; i < cfg->n_clusters; i++)
		if (strcmp(cfg->clusters[i].name, name) == 0)
			return &cfg->clusters[i];
	cfg->clusters =
	    realloc(cfg->clusters, sizeof(*cfg->clusters) * (size_t)(cfg->n_clusters + 1));
	if (cfg->clusters == NULL)
		abort();
	struct cluster_conf *c = &cfg->clusters[cfg->n_clusters++];
	memset(c, 0, sizeof(*c));
	c->name = util_strdup(name);
	c->line = ps->line;
	config_apply_defaults(ps, section, c, config_kinds[KIND_CLUSTER].keys,
	                      config_kinds[KIND_CLUSTER].n_keys);
	return c;
}

static void *find_or_add_section(struct parse_state *ps, const char *section, int kind)
{
	struct config *cfg = ps->cfg;
	const char *name = section + strlen(config_kinds[kind].prefix);

	if (kind == KIND_POOLER)
		return cfg;
	if (kind == KIND_CLUSTER)
		return find_or_add_cluster(ps, section, name);
	if (kind == KIND_NODE) {
		for (int i = 0; i < cfg->n_nodes; i++)
			if (strcmp(cfg->nodes[i].name, name) == 0)
				return &cfg->nodes[i];
		cfg->nodes = realloc(cfg->nodes, sizeof(*cfg->nodes) * (size_t)(cfg->n_nodes + 1));
		if (cfg->nodes == NULL)
			abort();
		struct node_conf *n = &cfg->nodes[cfg->n_nodes];
		memset(n, 0, sizeof(*n));
		n->index = cfg->n_nodes++;
		n->name = util_strdup(name);
		n->line = ps->line;
		config_apply_defaults(ps, section, n, config_kinds[KIND_NODE].keys,
		                      config_kinds[KIND_NODE].n_keys);
		return n;
	}
	for (int i = 0; i < cfg->n_dbs; i++)
		if (strcmp(cfg->dbs[i].name, name) == 0)
			return &cfg->dbs[i];
	cfg->dbs = realloc(cfg->dbs, sizeof(*cfg->dbs) * (size_t)(cfg->n_dbs + 1));
	if (cfg->dbs == NULL)
		abort();
	struct db_conf *d = &cfg->dbs[cfg->n_dbs++];
	memset(d, 0, sizeof(*d));
	d->name = util_strdup(name);
	d->line = ps->line;
	config_apply_defaults(ps, section, d, config_kinds[KIND_DB].keys,
	                      config_kinds[KIND_DB].n_keys);
	return d;
}

/* Which kind of section this is, or -1 (after reporting it). */
static int section_kind(struct parse_state *ps, const char *section, const char *key)
{
	for (int i = 0; i < (int)CONFIG_KINDS; i++) {
		size_t plen = strlen(config_kinds[i].prefix);
		bool prefix = config_kinds[i].prefix[plen - 1] == '.';
		if (prefix ? (strncmp(section, config_kinds[i].prefix, plen) == 0 &&
		              section[plen] != '\0')
		           : strcmp(section, config_kinds[i].prefix) == 0)
			return i;
	}
	if (section[0] == '\0')
		config_fail(ps, "%s: key outside any section (start with [pooler])", key);
	else
		config_fail(
		    ps,
		    "[%s]: unknown section (allowed: [pooler], [node.NAME], [database.NAME], "
		    "[cluster.NAME], [peers])",
		    section);
	return -1;
}

/* Set through an alias: the [pooler] key it stands for, read with the alias's own unit
 * and named as written in errors. False when name is no alias. */
static bool set_alias(struct parse_state *ps, const char *section, void *obj, const char *name,
                      const char *value, int *ret)
{
	for (size_t a = 0; a < CONFIG_ALIASES; a++) {
		if (strcmp(config_aliases[a].alias, name) != 0)
			continue;
		const struct section_kind *pooler = &config_kinds[KIND_POOLER];
		for (size_t i = 0; i < pooler->n_keys; i++)
			if (strcmp(pooler->keys[i].name, config_aliases[a].key) == 0) {
				struct key k = pooler->keys[i];
				k.name = name;
				k.type = config_aliases[a].type;
				*ret = note_key(ps, section, pooler->keys[i].name,
				                config_aliases[a].alias) &&
				       set_key(ps, section, obj, &k, value);
				return true;
			}
	}
	return false;
}

static int on_ini_entry(void *user, const char *section, const char *name, const char *value)
{
	struct parse_state *ps = user;
	int kind;

	if (ps->failed)
		return 0;
	if (strcmp(section, "peers") == 0)
		return config_peer_add(ps, name, value);
	kind = section_kind(ps, section, name);
	if (kind < 0)
		return 0;
	void *obj = find_or_add_section(ps, section, kind);
	if (ps->failed)
		return 0;
	for (size_t i = 0; i < config_kinds[kind].n_keys; i++) {
		const struct key *k = &config_kinds[kind].keys[i];
		if (strcmp(k->name, name) == 0)
			return note_key(ps, section, k->name, k->name) &&
			       set_key(ps, section, obj, k, value);
	}
	int ret;
	if (kind == 0 && set_alias(ps, section, obj, name, value, &ret))
		return ret;
	return config_unknown_key(ps, section, kind, name);
}

/* Where a section's header was seen, or 0 when it was not (yet). */
static int section_line(const struct parse_state *ps, const char *section, int kind)
{
	const char *name = section + strlen(config_kinds[kind].prefix);

	if (kind == 0)
		return ps->pooler_line;
	for (int i = 0; kind == 1 && i < ps->cfg->n_nodes; i++)
		if (strcmp(ps->cfg->nodes[i].name, name) == 0)
			return ps->cfg->nodes[i].line;
	for (int i = 0; kind == 2 && i < ps->cfg->n_dbs; i++)
		if (strcmp(ps->cfg->dbs[i].name, name) == 0)
			return ps->cfg->dbs[i].line;
	for (int i = 0; kind == KIND_CLUSTER && i < ps->cfg->n_clusters; i++)
		if (strcmp(ps->cfg->clusters[i].name, name) == 0)
			return ps->cfg->clusters[i].line;
	return 0;
}

/* inih reports no section that has no keys, yet "[database.x]" alone is a valid database
 * with every default: notice section headers here as the lines go by. */
static void see_section_header(struct parse_state *ps, const char *line)
{
	char name[256];
	const char *p = line, *end;

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != '[' || (end = strchr(p, ']')) == NULL || (size_t)(end - p - 1) >= sizeof(name))
		return;
	memcpy(name, p + 1, (size_t)(end - p - 1));
	name[end - p - 1] = '\0';
	char *trimmed = util_trim(name);
	if (strcmp(trimmed, "peers") == 0) {
		if (ps->peers_line > 0)
			config_fail(ps,
			            "[peers]: section appears twice (first on line %d); write each "
			            "section once",
			            ps->peers_line);
		ps->peers_line = ps->line;
		return;
	}
	int kind = section_kind(ps, trimmed, "");
	if (kind < 0)
		return;
	int first = section_line(ps, trimmed, kind);
	if (first > 0) {
		config_fail(
		    ps, "[%s]: section appears twice (first on line %d); write each section once",
		    trimmed, first);
		return;
	}
	if (kind == 0)
		ps->pooler_line = ps->line;
	find_or_add_section(ps, trimmed, kind);
}

/* inih hands no line numbers to handlers, so the reader counts the lines it returns. */
static char *read_line(char *str, int num, void *stream)
{
	struct parse_state *ps = stream;
	char *r = fgets(str, num, ps->file);
	if (r != NULL) {
		ps->line++;
		if (!ps->failed)
			see_section_header(ps, r);
	}
	return r;
}

static bool differs(const char *name, void *arg)
{
	return strcmp(name, arg) != 0;
}

bool config_list_has(const char *list, const char *name)
{
	/* util_split stops, false, at the first name that does not differ */
	return list != NULL && !util_split(list, differs, (void *)name);
}

/* The file as inih reads it: false (reported) when it cannot be read or a line is wrong. */
static bool read_file(struct parse_state *ps, const char *path)
{
	struct stat st;
	int r;

	ps->file = fopen(path, "r");
	if (ps->file == NULL) {
		snprintf(ps->err, ps->errlen, "%s: cannot open: %s", path, strerror(errno));
		return false;
	}
	if (fstat(fileno(ps->file), &st) == 0 && S_ISDIR(st.st_mode)) {
		fclose(ps->file);
		snprintf(ps->err, ps->errlen, "%s: is a directory; -c takes the ini file", path);
		return false;
	}
	ini_allow_multiline = false;
	ini_stop_on_first_error = true;
	ini_use_stack = false;
	ini_allow_realloc = true;
	ini_max_line = 8192;
	r = ini_parse_stream(read_line, ps, on_ini_entry, ps);
	fclose(ps->file);
	if (ps->failed)
		return false;
	if (r != 0) {
		ps->line = r;
		return config_fail(
		    ps, "syntax error (expected [section], key = value, or a ; comment)");
	}
	return true;
}

/* SET on the console: "key=value" lines over the [pooler] keys of the file. */
static bool apply_sets(struct parse_state *ps, const char *sets)
{
	char *copy = util_strdup(sets), *save = NULL;
	bool ok = true;

	for (char *line = strtok_r(copy, "\n", &save); ok && line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '=');
		ok = false;
		if (eq == NULL)
			break;
		*eq = '\0';
		const struct section_kind *pooler = &config_kinds[KIND_POOLER];
		for (size_t i = 0; i < pooler->n_keys; i++)
			if (strcmp(pooler->keys[i].name, line) == 0)
				ok = set_key(ps, "SET", ps->cfg, &pooler->keys[i], eq + 1);
	}
	free(copy);
	return ok;
}

static struct config *load(const char *path, const char *sets, const struct config_member *m,
                           int n_members, char *err, size_t errlen);

/* Each known member of a configured cluster becomes the node section CLUSTER.MEMBER. */
static bool add_members(struct parse_state *ps, const struct config_member *m, int n)
{
	struct config *cfg = ps->cfg;
	char section[300];

	for (int i = 0; i < n; i++) {
		bool configured = false;
		for (int k = 0; k < cfg->n_clusters; k++)
			configured = configured || strcmp(cfg->clusters[k].name, m[i].cluster) == 0;
		if (!configured)
			continue;
		snprintf(section, sizeof(section), "node.%s.%s", m[i].cluster, m[i].name);
		for (int k = 0; k < cfg->n_nodes; k++)
			if (strcmp(cfg->nodes[k].name, section + 5) == 0)
				return config_fail(
				    ps, "[%s]: a section has the name of a member of cluster %s",
				    section, m[i].cluster);
		struct node_conf *nc = find_or_add_section(ps, section, KIND_NODE);
		free(nc->host);
		nc->host = util_strdup(m[i].host);
		nc->port = m[i].port;
		nc->role = NODE_ROLE_AUTO;
		if (m[i].noloadbalance)
			nc->weight = 0;
		nc->cluster = util_strdup(m[i].cluster);
		nc->member = util_strdup(m[i].name);
	}
	return true;
}

/* No database may take a name the admin console answers to. */
static bool admin_db_free(struct parse_state *ps)
{
	const struct config *cfg = ps->cfg;

	for (int i = 0; i < cfg->n_dbs; i++)
		if (config_list_has(cfg->admin_db, cfg->dbs[i].name)) {
			ps->line = cfg->dbs[i].line;
			return config_fail(
			    ps, "[database.%s]: the admin console answers to this name (admin_db = %s)",
			    cfg->dbs[i].name, cfg->admin_db);
		}
	return true;
}

struct config *config_load(const char *path, char *err, size_t errlen)
{
	return load(path, NULL, NULL, 0, err, errlen);
}

struct config *config_load_set(const char *path, const char *sets, char *err, size_t errlen)
{
	return load(path, sets, NULL, 0, err, errlen);
}

struct config *config_load_members(const char *path, const char *sets,
                                   const struct config_member *members, int n_members, char *err,
                                   size_t errlen)
{
	return load(path, sets, members, n_members, err, errlen);
}

static struct config *load(const char *path, const char *sets, const struct config_member *m,
                           int n_members, char *err, size_t errlen)
{
	struct parse_state ps = {.err = err, .errlen = errlen};
	struct config *cfg = util_calloc(1, sizeof(*cfg));
	const char *slash;

	cfg->path = util_strdup(path);
	slash = strrchr(path, '/');
	cfg->dir = slash ? strndup(path, (size_t)(slash - path == 0 ? 1 : slash - path))
	                 : util_strdup(".");
	ps.cfg = cfg;
	config_apply_defaults(&ps, "pooler", cfg, config_kinds[KIND_POOLER].keys,
	                      config_kinds[KIND_POOLER].n_keys);
	bool ok = read_file(&ps, path) && (sets == NULL || apply_sets(&ps, sets)) &&
	          add_members(&ps, m, n_members) && config_check_whole(&ps) && admin_db_free(&ps) &&
	          config_check_peers(&ps);
	free_seen(&ps);
	if (ok)
		return cfg;
	config_free(cfg);
	return NULL;
}

void config_free_keys(void *obj, const struct key *keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (keys[i].type == K_STR || keys[i].type == K_PATH)
			free(*(char **)((char *)obj + keys[i].offset));
}

void config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	config_free_keys(cfg, config_kinds[KIND_POOLER].keys, config_kinds[KIND_POOLER].n_keys);
	for (int i = 0; i < cfg->n_nodes; i++) {
		config_free_keys(&cfg->nodes[i], config_kinds[KIND_NODE].keys,
		                 config_kinds[KIND_NODE].n_keys);
		free(cfg->nodes[i].name);
		free(cfg->nodes[i].pool_size_source);
		free(cfg->nodes[i].cluster);
		free(cfg->nodes[i].member);
	}
	for (int i = 0; i < cfg->n_dbs; i++) {
		config_free_keys(&cfg->dbs[i], config_kinds[KIND_DB].keys,
		                 config_kinds[KIND_DB].n_keys);
		free(cfg->dbs[i].name);
		free(cfg->dbs[i].node_list);
		free(cfg->dbs[i].pool_size_source);
	}
	for (int i = 0; i < cfg->n_clusters; i++) {
		config_free_keys(&cfg->clusters[i], config_kinds[KIND_CLUSTER].keys,
		                 config_kinds[KIND_CLUSTER].n_keys);
		free(cfg->clusters[i].name);
	}
	config_free_peers(cfg);
	free(cfg->clusters);
	free(cfg->nodes);
	free(cfg->dbs);
	free(cfg->path);
	free(cfg->dir);
	free(cfg);
}

const struct db_conf *config_find_db(const struct config *cfg, const char *name)
{
	for (int i = 0; i < cfg->n_dbs; i++)
		if (strcmp(cfg->dbs[i].name, name) == 0)
			return &cfg->dbs[i];
	return NULL;
}

