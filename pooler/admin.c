/* admin: see include/admin.h. */
#include "admin.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

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

/* Wall-clock text of a monotonic timestamp, as PgBouncer prints its times. */
static void wall_time(uint64_t mono_us, uint64_t now_us, char *text, size_t len)
{
	time_t t = time(NULL) - (time_t)((now_us - mono_us) / 1000000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(text, len, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

/* The address of one end of a socket: "unix" and port 0 for Unix sockets. */
static void sock_addr(int fd, bool local, char *host, size_t len, int *port)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int r = local ? getsockname(fd, (struct sockaddr *)&ss, &sl)
	              : getpeername(fd, (struct sockaddr *)&ss, &sl);

	snprintf(host, len, "unix");
	*port = 0;
	if (fd < 0 || r != 0)
		return;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &a->sin_addr, host, (socklen_t)len);
		*port = ntohs(a->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &a->sin6_addr, host, (socklen_t)len);
		*port = ntohs(a->sin6_port);
	}
}

/* PgBouncer's cl_active: clients linked to a server of the pool, or idle with it as their
 * last pool. */
struct active_count {
	const struct pool *pool;
	int n;
};

static void count_active(const struct client_info *ci, void *arg)
{
	struct active_count *ac = arg;
	if (ci->pool == ac->pool &&
	    (strcmp(ci->state, "active") == 0 || strcmp(ci->state, "idle") == 0))
		ac->n++;
}

/* Pools are per (database, user, node); PgBouncer's views have one row per (database,
 * user) in SHOW POOLS and per database in SHOW STATS, and tools built for it key on those
 * columns. So those two views sum a group of pools, and SHOW NODE_POOLS has one row per
 * pool. */
enum group { BY_POOL, BY_DB_USER, BY_DB };

static bool same_group(const struct pool *a, const struct pool *b, enum group g)
{
	if (g == BY_POOL)
		return a == b;
	return strcmp(a->db_name, b->db_name) == 0 && (g == BY_DB || strcmp(a->user, b->user) == 0);
}

/* True when an earlier pool of the list led p's group (its row is written). */
static bool group_seen(struct worker *w, const struct pool *p, enum group g)
{
	struct list *pos, *tmp;
	list_for_each_safe (pos, tmp, &w->pools) {
		const struct pool *q = container_of(pos, struct pool, node);
		if (q == p)
			return false;
		if (same_group(q, p, g))
			return true;
	}
	return false;
}

struct pool_counts {
	int pools, cl_active, cl_waiting, sv_active, sv_idle, sv_tested, sv_login;
	uint64_t maxwait;
	bool paused;
	char nodes[256];
};

static void count_pool(struct worker *w, struct pool *p, uint64_t now, struct pool_counts *pc)
{
	struct active_count clients = {.pool = p};
	struct list *sp, *st;

	client_foreach(w, count_active, &clients);
	pc->pools++;
	pc->cl_active += clients.n;
	pc->cl_waiting += p->n_waiting;
	list_for_each_safe (sp, st, &p->active) {
		if (container_of(sp, struct server, node)->state == SERVER_RESET)
			pc->sv_tested++;
		else
			pc->sv_active++;
	}
	list_for_each_safe (sp, st, &p->idle)
		pc->sv_idle++;
	pc->sv_login += p->n_connecting;
	if (!list_empty(&p->waiting)) {
		struct pool_waiter *wt = container_of(p->waiting.next, struct pool_waiter, node);
		if (now - wt->since_us > pc->maxwait)
			pc->maxwait = now - wt->since_us;
	}
	pc->paused = pc->paused || p->paused;
	size_t n = strlen(pc->nodes);
	snprintf(pc->nodes + n, sizeof(pc->nodes) - n, "%s%s", n > 0 ? "," : "", p->backend->name);
}

static void pools_view(struct worker *w, struct buf *out, enum group g)
{
	const char *cols[] = {"database",
	                      "user",
	                      "cl_active",
	                      "cl_waiting",
	                      "cl_active_cancel_req",
	                      "cl_waiting_cancel_req",
	                      "sv_active",
	                      "sv_active_cancel",
	                      "sv_being_canceled",
	                      "sv_idle",
	                      "sv_used",
	                      "sv_tested",
	                      "sv_login",
	                      "maxwait",
	                      "maxwait_us",
	                      "pool_mode",
	                      g == BY_POOL ? "node" : "nodes",
	                      "node_role",
	                      "paused",
	                      NULL};
	struct list *pos, *tmp, *qp, *qt;
	uint64_t now = util_now_us();

	row_description(out, cols);
	list_for_each_safe (pos, tmp, &w->pools) {
		struct pool *p = container_of(pos, struct pool, node);
		struct pool_counts pc = {.pools = 0};
		if (group_seen(w, p, g))
			continue;
		list_for_each_safe (qp, qt, &w->pools) {
			struct pool *q = container_of(qp, struct pool, node);
			if (same_group(p, q, g))
				count_pool(w, q, now, &pc);
		}
		/* a group spanning nodes names them all; their roles differ */
		row_fmt(out, 19,
		        "%s\t%s\t%d\t%d\t0\t0\t%d\t0\t0\t%d\t0\t%d\t%d\t%llu\t%llu\t%s\t%s\t%s\t%s",
		        p->db_name, p->user, pc.cl_active, pc.cl_waiting, pc.sv_active, pc.sv_idle,
		        pc.sv_tested, pc.sv_login, (unsigned long long)(pc.maxwait / 1000000),
		        (unsigned long long)(pc.maxwait % 1000000), config_pool_mode_name(p->mode),
		        pc.nodes, pc.pools == 1 ? role_name(p->backend->role) : "mixed",
		        pc.paused ? "yes" : "no");
	}
	complete(out, "SHOW");
}

static void show_pools(struct worker *w, struct buf *out)
{
	pools_view(w, out, BY_DB_USER);
}

static void show_node_pools(struct worker *w, struct buf *out)
{
	pools_view(w, out, BY_POOL);
}

/* Per database, as PgBouncer. Times in microseconds; avg_* cover the last stats_period
 * (see metrics_period), weighted by each pool's transactions or queries. Bytes are
 * measured on the server side of the pools. */
static void show_stats(struct worker *w, struct buf *out)
{
	static const char *const cols[] = {
	    "database",       "total_xact_count", "total_query_count", "total_received",
	    "total_sent",     "total_xact_time",  "total_query_time",  "total_wait_time",
	    "avg_xact_count", "avg_query_count",  "avg_recv",          "avg_sent",
	    "avg_xact_time",  "avg_query_time",   "avg_wait_time",     NULL};
	struct list *pos, *tmp, *qp, *qt;

	row_description(out, cols);
	list_for_each_safe (pos, tmp, &w->pools) {
		struct pool *p = container_of(pos, struct pool, node);
		struct stats_totals tot = {0}, avg = {0};
		uint64_t xact_w = 0, query_w = 0, wait_w = 0; /* avg times weighted by counts */
		if (group_seen(w, p, BY_DB))
			continue;
		list_for_each_safe (qp, qt, &w->pools) {
			const struct pool *q = container_of(qp, struct pool, node);
			const struct stats_totals *a = &q->window.avg;
			if (!same_group(p, q, BY_DB))
				continue;
			tot.xacts += q->xact_count;
			tot.queries += q->tally.queries;
			tot.recv += q->tally.bytes.out; /* what clients sent, on to the servers */
			tot.sent += q->tally.bytes.in;
			tot.xact_us += q->xact_us;
			tot.query_us += q->tally.query_us;
			tot.wait_us += q->wait_us;
			avg.xacts += a->xacts;
			avg.queries += a->queries;
			avg.recv += a->recv;
			avg.sent += a->sent;
			xact_w += a->xact_us * a->xacts;
			query_w += a->query_us * a->queries;
			wait_w += a->wait_us * a->xacts;
		}
		avg.xact_us = avg.xacts ? xact_w / avg.xacts : 0;
		avg.query_us = avg.queries ? query_w / avg.queries : 0;
		avg.wait_us = avg.xacts ? wait_w / avg.xacts : 0;
		row_fmt(
		    out, 15,
		    "%s\t%llu\t%llu\t%llu\t%llu\t%llu\t%llu\t%llu\t%llu\t%llu\t%llu\t%llu\t%llu\t"
		    "%llu\t%llu",
		    p->db_name, (unsigned long long)tot.xacts, (unsigned long long)tot.queries,
		    (unsigned long long)tot.recv, (unsigned long long)tot.sent,
		    (unsigned long long)tot.xact_us, (unsigned long long)tot.query_us,
		    (unsigned long long)tot.wait_us, (unsigned long long)avg.xacts,
		    (unsigned long long)avg.queries, (unsigned long long)avg.recv,
		    (unsigned long long)avg.sent, (unsigned long long)avg.xact_us,
		    (unsigned long long)avg.query_us, (unsigned long long)avg.wait_us);
	}
	complete(out, "SHOW");
}

/* SHOW SERVERS and SHOW CLIENTS share PgBouncer's columns; ours follow. */
#define SOCKET_COLS                                                                                \
	"type", "user", "database", "state", "addr", "port", "local_addr", "local_port",           \
	    "connect_time", "request_time", "wait", "wait_us", "close_needed", "ptr", "link",      \
	    "remote_pid", "tls", "application_name"

/* Which client holds which server, gathered once per SHOW SERVERS. */
struct links {
	uint64_t (*pairs)[2]; /* server id, client id */
	size_t n, cap;        /* cap: every client of the worker */
};

static void collect_link(const struct client_info *ci, void *arg)
{
	struct links *l = arg;
	if (ci->server_id == 0 || l->n == l->cap)
		return;
	l->pairs[l->n][0] = ci->server_id;
	l->pairs[l->n][1] = ci->id;
	l->n++;
}

static uint64_t linked_client(const struct links *l, uint64_t server_id)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->pairs[i][0] == server_id)
			return l->pairs[i][1];
	return 0;
}

static void server_row(struct buf *out, const struct pool *p, const struct server *s,
                       const struct links *l, uint64_t now)
{
	static const char *const states[] = {"login", "idle", "active", "tested", "closed"};
	char connected[40], requested[40], local[64], link[24] = "";
	int local_port;
	uint64_t client = linked_client(l, s->id);

	wall_time(s->created_us, now, connected, sizeof(connected));
	wall_time(s->used_us, now, requested, sizeof(requested));
	sock_addr(s->conn.fd, true, local, sizeof(local), &local_port);
	if (client != 0)
		snprintf(link, sizeof(link), "%llx", (unsigned long long)client);
	row_fmt(out, 20,
	        "S\t%s\t%s\t%s\t%s\t%d\t%s\t%d\t%s\t%s\t0\t0\t0\t%llx\t%s\t%u\t\t\t%s\t%llu",
	        p->login.user, p->db_name, states[s->state], p->login.host, p->login.port, local,
	        local_port, connected, requested, (unsigned long long)s->id, link, s->be_pid,
	        p->backend->name, (unsigned long long)s->id);
}

static void show_servers(struct worker *w, struct buf *out)
{
	static const char *const cols[] = {SOCKET_COLS, "node", "id", NULL};
	struct list *pos, *tmp, *sp, *st;
	struct links links = {.cap = (size_t)w->n_clients};
	uint64_t now = util_now_us();

	links.pairs = util_calloc(links.cap + 1, sizeof(*links.pairs));
	client_foreach(w, collect_link, &links);
	row_description(out, cols);
	list_for_each_safe (pos, tmp, &w->pools) {
		struct pool *p = container_of(pos, struct pool, node);
		struct list *lists[] = {&p->connecting, &p->idle, &p->active};
		for (int i = 0; i < 3; i++)
			list_for_each_safe (sp, st, lists[i])
				server_row(out, p, container_of(sp, struct server, node), &links,
				           now);
	}
	free(links.pairs);
	complete(out, "SHOW");
}

static void client_row(const struct client_info *ci, void *arg)
{
	struct buf *out = arg;
	uint64_t now = util_now_us();
	char connected[40], requested[40], addr[64], local[64], link[24] = "";
	int port, local_port;

	wall_time(ci->connect_us, now, connected, sizeof(connected));
	wall_time(ci->request_us, now, requested, sizeof(requested));
	sock_addr(ci->fd, false, addr, sizeof(addr), &port);
	sock_addr(ci->fd, true, local, sizeof(local), &local_port);
	if (ci->server_id != 0)
		snprintf(link, sizeof(link), "%llx", (unsigned long long)ci->server_id);
	row_fmt(
	    out, 21,
	    "C\t%s\t%s\t%s\t%s\t%d\t%s\t%d\t%s\t%s\t%llu\t%llu\t0\t%llx\t%s\t0\t\t%s\t%llu\t%s\t"
	    "%s",
	    ci->user ? ci->user : "", ci->db ? ci->db : "", ci->state, addr, port, local,
	    local_port, connected, requested, (unsigned long long)(ci->wait_us / 1000000),
	    (unsigned long long)(ci->wait_us % 1000000), (unsigned long long)ci->id, link,
	    ci->application_name ? ci->application_name : "", (unsigned long long)ci->id,
	    ci->pinned ? ci->pinned : "", ci->node ? ci->node : "");
}

static void show_clients(struct worker *w, struct buf *out)
{
	static const char *const cols[] = {SOCKET_COLS, "id", "pinned", "node", NULL};
	row_description(out, cols);
	client_foreach(w, client_row, out);
	complete(out, "SHOW");
}

/* Server connections open for a database, and whether all its pools are paused. */
static int db_servers(struct worker *w, const char *db, bool *paused)
{
	struct list *pos;
	int n = 0, pools = 0, held = 0;

	for (pos = w->pools.next; pos != &w->pools; pos = pos->next) {
		const struct pool *p = container_of(pos, struct pool, node);
		if (strcmp(p->db_name, db) != 0)
			continue;
		n += p->n_servers;
		pools++;
		held += p->paused;
	}
	*paused = pools > 0 && held == pools;
	return n;
}

static void show_databases(struct worker *w, struct buf *out)
{
	static const char *const cols[] = {"name",
	                                   "host",
	                                   "port",
	                                   "database",
	                                   "force_user",
	                                   "pool_size",
	                                   "min_pool_size",
	                                   "reserve_pool",
	                                   "pool_mode",
	                                   "max_connections",
	                                   "current_connections",
	                                   "paused",
	                                   "disabled",
	                                   "nodes",
	                                   NULL};
	const struct config *cfg = w->cfg;

	row_description(out, cols);
	for (int i = 0; i < cfg->n_dbs; i++) {
		const struct db_conf *d = &cfg->dbs[i];
		const struct node *p = router_primary(w, d);
		bool paused;
		int current = db_servers(w, d->name, &paused);
		row_fmt(out, 14, "%s\t%s\t%d\t%s\t%s\t%d\t%d\t0\t%s\t0\t%d\t%d\t0\t%s", d->name,
		        p ? p->host : "", p ? p->port : 0, d->dbname,
		        d->server_user ? d->server_user : "", d->effective_pool_size,
		        d->min_pool_size, config_pool_mode_name(d->pool_mode), current,
		        paused ? 1 : 0, d->nodes ? d->nodes : "(all)");
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
		        (unsigned long long)n->transactions, router_read_weight(n),
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

/* Servers of db (every database when empty) still linked to a client or being reset. */
static int busy_servers(struct worker *w, const char *db)
{
	struct list *pos, *sp;
	int n = 0;

	for (pos = w->pools.next; pos != &w->pools; pos = pos->next) {
		struct pool *p = container_of(pos, struct pool, node);
		if (db[0] != '\0' && strcmp(p->db_name, db) != 0)
			continue;
		for (sp = p->active.next; sp != &p->active; sp = sp->next)
			n++;
	}
	return n;
}

/* Like PgBouncer's: new transactions queue at once; the answer comes when the running
 * ones have given their servers back, so that after PAUSE the servers are quiet. */
static bool cmd_pause(struct worker *w, const char *arg, struct buf *out, char **wait)
{
	each_pool(w, arg, pool_pause);
	if (arg[0] == '\0')
		w->paused_all = true;
	if (busy_servers(w, arg) > 0) {
		*wait = util_strdup(arg);
		return false;
	}
	complete(out, "PAUSE");
	return true;
}

bool admin_poll(struct worker *w, const char *wait, struct buf *out)
{
	if (busy_servers(w, wait) > 0)
		return false;
	complete(out, "PAUSE");
	return true;
}

static void cmd_resume(struct worker *w, const char *arg, struct buf *out)
{
	if (arg[0] == '\0')
		w->paused_all = false;
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
	bool (*act_later)(struct worker *w, const char *arg, struct buf *out, char **wait);
	const char *help;
};

static const struct command commands[] = {
    {"SHOW", "HELP", false, show_help, NULL, NULL, "this list"},
    {"SHOW", "VERSION", false, show_version, NULL, NULL, "the pooler's version"},
    {"SHOW", "POOLS", false, show_pools, NULL, NULL,
     "clients and servers per database and user, over all nodes"},
    {"SHOW", "NODE_POOLS", false, show_node_pools, NULL, NULL,
     "as SHOW POOLS, one row per database, user and node"},
    {"SHOW", "STATS", false, show_stats, NULL, NULL, "transactions and waits per database"},
    {"SHOW", "SERVERS", false, show_servers, NULL, NULL, "every server connection"},
    {"SHOW", "CLIENTS", false, show_clients, NULL, NULL, "every client connection"},
    {"SHOW", "DATABASES", false, show_databases, NULL, NULL, "the configured databases"},
    {"SHOW", "NODES", false, show_nodes, NULL, NULL, "backend servers: role, health, lag"},
    {"SHOW", "CONFIG", false, show_config, NULL, NULL, "effective settings"},
    {"PAUSE", NULL, true, NULL, NULL, cmd_pause,
     "[db] hand out no servers until RESUME; answers when running transactions ended"},
    {"RESUME", NULL, true, NULL, cmd_resume, NULL, "[db] undo PAUSE"},
    {"KILL", NULL, true, NULL, cmd_kill, NULL, "db: drop its clients and idle servers"},
    {"RELOAD", NULL, true, NULL, cmd_reload, NULL, "re-read the config and auth file"},
    {"SHUTDOWN", NULL, true, NULL, cmd_shutdown, NULL, "finish transactions, then exit"},
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

bool admin_run(struct worker *w, const char *sql, bool may_change, struct buf *out, char **wait)
{
	char verb[32], object[64], arg[64], rest[8];
	const char *p = next_word(sql, verb, sizeof(verb), true);

	if (verb[0] == '\0') {
		size_t m = proto_begin(out, 'I'); /* EmptyQueryResponse */
		proto_end(out, m);
		return true;
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
			return true;
		}
		if (c->changes && !may_change) {
			proto_write_error(out, "ERROR", "42501",
			                  "only admin_users may run this command");
			return true;
		}
		if (c->show != NULL) {
			if (arg[0] != '\0') {
				proto_write_error(out, "ERROR", "42601", "SHOW takes no argument");
				return true;
			}
			c->show(w, out);
		} else if (c->act_later != NULL) {
			return c->act_later(w, arg, out, wait);
		} else {
			c->act(w, arg, out);
		}
		return true;
	}
	proto_write_error(out, "ERROR", "42601", "unknown admin command; SHOW HELP lists them");
	return true;
}
