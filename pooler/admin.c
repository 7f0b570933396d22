/* admin: see include/admin.h. */
#include "admin.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client.h"
#include "config.h"
#include "node.h"
#include "pool.h"
#include "proto.h"
#include "router.h"

#define MAX_COLS 24
#define TEXT_OID 25

/* ---- result building ---------------------------------------------------------------- */

static void row_description(struct buf *out, const char *const *cols)
{
	int n = 0;
	while (cols[n] != NULL)
		n++;
	size_t m = proto_begin(out, 'T');
	buf_put_u16(out, (uint16_t)n);
	for (int i = 0; i < n; i++) {
		buf_put_str(out, cols[i]);
		buf_put_u32(out, 0); /* table oid */
		buf_put_u16(out, 0); /* column number */
		buf_put_u32(out, TEXT_OID);
		buf_put_u16(out, 0xffff); /* varlena */
		buf_put_u32(out, 0xffffffff);
		buf_put_u16(out, 0); /* text format */
	}
	proto_end(out, m);
}

/* One row of n text values (NULL for SQL NULL). */
static void data_row(struct buf *out, int n, const char *const *values)
{
	size_t m = proto_begin(out, 'D');
	buf_put_u16(out, (uint16_t)n);
	for (int i = 0; i < n; i++) {
		if (values[i] == NULL) {
			buf_put_u32(out, 0xffffffff);
			continue;
		}
		size_t len = strlen(values[i]);
		buf_put_u32(out, (uint32_t)len);
		buf_put(out, values[i], len);
	}
	proto_end(out, m);
}

static void complete(struct buf *out, const char *tag)
{
	size_t m = proto_begin(out, 'C');
	buf_put_str(out, tag);
	proto_end(out, m);
}

/* A row from printf-style pieces: fmt holds one %-directive per column separated by
 * '\t'; simplest to format the whole row then split. */
static void row_fmt(struct buf *out, int n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void row_fmt(struct buf *out, int n, const char *fmt, ...)
{
	char line[2048];
	const char *vals[MAX_COLS];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	char *p = line;
	for (int i = 0; i < n; i++) {
		vals[i] = p;
		char *tab = strchr(p, '\t');
		if (tab == NULL) {
			for (int k = i + 1; k < n; k++)
				vals[k] = "";
			break;
		}
		*tab = '\0';
		p = tab + 1;
	}
	data_row(out, n, vals);
}

static const char *role_name(int role)
{
	return role == NODE_ROLE_PRIMARY   ? "primary"
	       : role == NODE_ROLE_REPLICA ? "replica"
	                                   : "auto";
}

/* ---- SHOW commands ------------------------------------------------------------------ */

static void show_pools(struct worker *w, struct buf *out)
{
	static const char *const cols[] = {
	    "database",  "user",       "cl_active", "cl_waiting", "cl_cancel_req",
	    "sv_active", "sv_idle",    "sv_used",   "sv_tested",  "sv_login",
	    "maxwait",   "maxwait_us", "pool_mode", "node",       "node_role",
	    "paused",    NULL};
	struct list *pos, *tmp, *sp, *st;
	uint64_t now = util_now_us();

	row_description(out, cols);
	list_for_each_safe (pos, tmp, &w->pools) {
		struct pool *p = container_of(pos, struct pool, node);
		int active = 0, idle = 0, login = 0;
		uint64_t maxwait = 0;
		list_for_each_safe (sp, st, &p->active)
			active++;
		list_for_each_safe (sp, st, &p->idle)
			idle++;
		list_for_each_safe (sp, st, &p->connecting)
			login++;
		if (!list_empty(&p->waiting)) {
			struct pool_waiter *wt =
			    container_of(p->waiting.next, struct pool_waiter, node);
			maxwait = now - wt->since_us;
		}
		row_fmt(out, 16, "%s\t%s\t%d\t%d\t0\t%d\t%d\t0\t0\t%d\t%llu\t%llu\t%s\t%s\t%s\t%s",
		        p->db_name, p->user, active, p->n_waiting, active, idle, login,
		        (unsigned long long)(maxwait / 1000000),
		        (unsigned long long)(maxwait % 1000000), config_pool_mode_name(p->mode),
		        p->backend->name, role_name(p->backend->role), p->paused ? "yes" : "no");
	}
	complete(out, "SHOW");
}

static void show_stats(struct worker *w, struct buf *out)
{
	static const char *const cols[] = {"database",
	                                   "total_xact_count",
	                                   "total_xact_time",
	                                   "total_wait_time",
	                                   "avg_xact_time",
	                                   "avg_wait_time",
	                                   "node",
	                                   "user",
	                                   NULL};
	struct list *pos, *tmp;

	row_description(out, cols);
	list_for_each_safe (pos, tmp, &w->pools) {
		struct pool *p = container_of(pos, struct pool, node);
		uint64_t n = p->xact_count ? p->xact_count : 1;
		row_fmt(out, 8, "%s\t%llu\t%llu\t%llu\t%llu\t%llu\t%s\t%s", p->db_name,
		        (unsigned long long)p->xact_count, (unsigned long long)p->xact_us,
		        (unsigned long long)p->wait_us, (unsigned long long)(p->xact_us / n),
		        (unsigned long long)(p->wait_us / n), p->backend->name, p->user);
	}
	complete(out, "SHOW");
}

static void show_servers(struct worker *w, struct buf *out)
{
	static const char *const cols[] = {"type",       "user", "database",     "state",
	                                   "addr",       "port", "connect_time", "request_time",
	                                   "remote_pid", "node", "id",           NULL};
	static const char *const states[] = {"login", "idle", "active", "reset", "closed"};
	struct list *pos, *tmp, *sp, *st;
	uint64_t now = util_now_us();

	row_description(out, cols);
	list_for_each_safe (pos, tmp, &w->pools) {
		struct pool *p = container_of(pos, struct pool, node);
		struct list *lists[] = {&p->connecting, &p->idle, &p->active};
		for (int i = 0; i < 3; i++)
			list_for_each_safe (sp, st, lists[i]) {
				struct server *s = container_of(sp, struct server, node);
				row_fmt(out, 11,
				        "S\t%s\t%s\t%s\t%s\t%d\t%llus ago\t%llus ago\t%u\t%s\t%llu",
				        p->login.user, p->db_name, states[s->state], p->login.host,
				        p->login.port,
				        (unsigned long long)((now - s->created_us) / 1000000),
				        (unsigned long long)((now - s->used_us) / 1000000),
				        s->be_pid, p->backend->name, (unsigned long long)s->id);
			}
	}
	complete(out, "SHOW");
}

static void client_row(const struct client_info *ci, void *arg)
{
	struct buf *out = arg;
	uint64_t now = util_now_us();
	row_fmt(out, 8, "C\t%s\t%s\t%s\t%s\t%llus ago\t%llu\t%s", ci->user ? ci->user : "",
	        ci->db ? ci->db : "", ci->state, ci->addr,
	        (unsigned long long)((now - ci->connect_us) / 1000000),
	        (unsigned long long)ci->server_id, ci->pinned ? ci->pinned : "");
}

static void show_clients(struct worker *w, struct buf *out)
{
	static const char *const cols[] = {"type",         "user", "database", "state", "addr",
	                                   "connect_time", "link", "pinned",   NULL};
	row_description(out, cols);
	client_foreach(w, client_row, out);
	complete(out, "SHOW");
}

static void show_databases(struct worker *w, struct buf *out)
{
	static const char *const cols[] = {
	    "name",          "host",         "port",      "database", "force_user", "pool_size",
	    "min_pool_size", "reserve_pool", "pool_mode", "nodes",    NULL};
	const struct config *cfg = w->cfg;

	row_description(out, cols);
	for (int i = 0; i < cfg->n_dbs; i++) {
		const struct db_conf *d = &cfg->dbs[i];
		const struct node *p = router_primary(w, d);
		row_fmt(out, 10, "%s\t%s\t%d\t%s\t%s\t%d\t%d\t0\t%s\t%s", d->name, p ? p->host : "",
		        p ? p->port : 0, d->dbname, d->server_user ? d->server_user : "",
		        d->effective_pool_size, d->min_pool_size,
		        config_pool_mode_name(d->pool_mode), d->nodes ? d->nodes : "(all)");
	}
	complete(out, "SHOW");
}

static void show_nodes(struct worker *w, struct buf *out)
{
	static const char *const cols[] = {
	    "name",         "host",   "port",      "role",          "configured_role",
	    "up",           "usable", "lag_bytes", "lag_ms",        "in_flight",
	    "transactions", "weight", "probes_ok", "probes_failed", "last_error",
	    "breaker",      NULL};
	row_description(out, cols);
	for (int i = 0; i < w->n_nodes; i++) {
		const struct node *n = w->nodes[i];
		row_fmt(out, 16,
		        "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%llu\t%lld\t%d\t%llu\t%d\t%llu\t%llu\t%s\t%s",
		        n->name, n->host, n->port, n->probed ? role_name(n->role) : "unknown",
		        role_name(n->conf_role), n->up ? "yes" : "no", n->usable ? "yes" : "no",
		        (unsigned long long)n->lag_bytes, (long long)n->lag_ms, n->inflight,
		        (unsigned long long)n->transactions, n->weight,
		        (unsigned long long)n->probes_ok, (unsigned long long)n->probes_failed,
		        n->last_error, breaker_state_name(n->breaker.state));
	}
	complete(out, "SHOW");
}

static void config_row(const char *key, const char *value, void *arg)
{
	const char *vals[2] = {key, value};
	data_row(arg, 2, vals);
}

static void show_config(struct worker *w, struct buf *out)
{
	static const char *const cols[] = {"key", "value", NULL};
	row_description(out, cols);
	config_foreach(w->cfg, config_row, out);
	complete(out, "SHOW");
}

static void show_version(struct worker *w, struct buf *out)
{
	static const char *const cols[] = {"version", NULL};
	const char *v[] = {"pooler " POOLER_VERSION};
	(void)w;
	row_description(out, cols);
	data_row(out, 1, v);
	complete(out, "SHOW");
}

static void show_help(struct worker *w, struct buf *out);

/* ---- commands that change things ---------------------------------------------------- */

/* Apply fn to the pools of db (all pools when db is empty); returns how many. */
static int each_pool(struct worker *w, const char *db, void (*fn)(struct pool *p))
{
	struct list *pos, *tmp;
	int n = 0;
	list_for_each_safe (pos, tmp, &w->pools) {
		struct pool *p = container_of(pos, struct pool, node);
		if (db[0] == '\0' || strcmp(p->db_name, db) == 0) {
			fn(p);
			n++;
		}
	}
	return n;
}

static void cmd_pause(struct worker *w, const char *arg, struct buf *out)
{
	each_pool(w, arg, pool_pause);
	complete(out, "PAUSE");
}

static void cmd_resume(struct worker *w, const char *arg, struct buf *out)
{
	each_pool(w, arg, pool_resume);
	complete(out, "RESUME");
}

static void cmd_kill(struct worker *w, const char *arg, struct buf *out)
{
	if (arg[0] == '\0') {
		proto_write_error(out, "ERROR", "42601", "KILL needs a database name");
		return;
	}
	client_kill_db(w, arg);
	each_pool(w, arg, pool_close_idle);
	complete(out, "KILL");
}

static void cmd_reload(struct worker *w, const char *arg, struct buf *out)
{
	char err[512];
	(void)arg;
	if (w->on_reload == NULL || !w->on_reload(w, err, sizeof(err))) {
		proto_write_error(out, "ERROR", "F0000", w->on_reload ? err : "reload unavailable");
		return;
	}
	complete(out, "RELOAD");
}

static void cmd_shutdown(struct worker *w, const char *arg, struct buf *out)
{
	(void)arg;
	complete(out, "SHUTDOWN");
	w->shutdown_requested = true; /* after this answer has gone out */
}

/* ---- the table ---------------------------------------------------------------------- */

struct command {
	const char *verb;   /* first word */
	const char *object; /* second word for SHOW, else NULL */
	bool changes;       /* admin_users only */
	void (*show)(struct worker *w, struct buf *out);
	void (*act)(struct worker *w, const char *arg, struct buf *out);
	const char *help;
};

static const struct command commands[] = {
    {"SHOW", "HELP", false, show_help, NULL, "this list"},
    {"SHOW", "VERSION", false, show_version, NULL, "the pooler's version"},
    {"SHOW", "POOLS", false, show_pools, NULL, "clients and servers of each pool"},
    {"SHOW", "STATS", false, show_stats, NULL, "transactions and waits of each pool"},
    {"SHOW", "SERVERS", false, show_servers, NULL, "every server connection"},
    {"SHOW", "CLIENTS", false, show_clients, NULL, "every client connection"},
    {"SHOW", "DATABASES", false, show_databases, NULL, "the configured databases"},
    {"SHOW", "NODES", false, show_nodes, NULL, "backend servers: role, health, lag"},
    {"SHOW", "CONFIG", false, show_config, NULL, "effective settings"},
    {"PAUSE", NULL, true, NULL, cmd_pause, "[db] hand out no servers until RESUME"},
    {"RESUME", NULL, true, NULL, cmd_resume, "[db] undo PAUSE"},
    {"KILL", NULL, true, NULL, cmd_kill, "db: drop its clients and idle servers"},
    {"RELOAD", NULL, true, NULL, cmd_reload, "re-read the config and auth file"},
    {"SHUTDOWN", NULL, true, NULL, cmd_shutdown, "finish transactions, then exit"},
};

static void show_help(struct worker *w, struct buf *out)
{
	static const char *const cols[] = {"command", "description", NULL};
	char name[64];
	(void)w;
	row_description(out, cols);
	for (size_t i = 0; i < ARRAY_LEN(commands); i++) {
		snprintf(name, sizeof(name), "%s%s%s", commands[i].verb,
		         commands[i].object ? " " : "",
		         commands[i].object ? commands[i].object : "");
		const char *v[] = {name, commands[i].help};
		data_row(out, 2, v);
	}
	complete(out, "SHOW");
}

/* Next word (letters, digits, _ and .) of s into word, upper-cased when upper. */
static const char *next_word(const char *s, char *word, size_t cap, bool upper)
{
	size_t n = 0;
	while (isspace((unsigned char)*s))
		s++;
	while (*s && (isalnum((unsigned char)*s) || *s == '_' || *s == '.' || *s == '-')) {
		if (n + 1 < cap)
			word[n++] = upper ? (char)toupper((unsigned char)*s) : *s;
		s++;
	}
	word[n] = '\0';
	return s;
}

void admin_run(struct worker *w, const char *sql, bool may_change, struct buf *out)
{
	char verb[32], object[64], arg[64], rest[8];
	const char *p = next_word(sql, verb, sizeof(verb), true);

	if (verb[0] == '\0') {
		size_t m = proto_begin(out, 'I'); /* EmptyQueryResponse */
		proto_end(out, m);
		return;
	}
	for (size_t i = 0; i < ARRAY_LEN(commands); i++) {
		const struct command *c = &commands[i];
		if (strcmp(c->verb, verb) != 0)
			continue;
		const char *q = p;
		if (c->object != NULL) {
			q = next_word(p, object, sizeof(object), true);
			if (strcmp(c->object, object) != 0)
				continue;
		}
		q = next_word(q, arg, sizeof(arg), false);
		while (isspace((unsigned char)*q) || *q == ';')
			q++;
		next_word(q, rest, sizeof(rest), false);
		if (*q != '\0') {
			proto_write_error(out, "ERROR", "42601",
			                  "unexpected text after the command");
			return;
		}
		if (c->changes && !may_change) {
			proto_write_error(out, "ERROR", "42501",
			                  "only admin_users may run this command");
			return;
		}
		if (c->show != NULL) {
			if (arg[0] != '\0') {
				proto_write_error(out, "ERROR", "42601", "SHOW takes no argument");
				return;
			}
			c->show(w, out);
		} else {
			c->act(w, arg, out);
		}
		return;
	}
	proto_write_error(out, "ERROR", "42601", "unknown admin command; SHOW HELP lists them");
}
