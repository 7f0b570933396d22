/* admin: see include/admin.h. */
#include "admin.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <inttypes.h>
#include <netinet/in.h>
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
#include "result.h"
#include "router.h"

/* ---- SHOW commands ------------------------------------------------------------------ */

/* Entries of the column tables. */
#define TEXT_COL(name)                                                                             \
	{                                                                                          \
		(name), RESULT_TEXT                                                                \
	}
#define INT8_COL(name)                                                                             \
	{                                                                                          \
		(name), RESULT_INT8                                                                \
	}

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

/* SHOW POOLS and SHOW NODE_POOLS: PgBouncer's columns, then the node (or nodes), its
 * role and whether the pool is paused. */
#define POOL_COLS                                                                                  \
	TEXT_COL("database"), TEXT_COL("user"), INT8_COL("cl_active"), INT8_COL("cl_waiting"),     \
	    INT8_COL("cl_active_cancel_req"), INT8_COL("cl_waiting_cancel_req"),                   \
	    INT8_COL("sv_active"), INT8_COL("sv_active_cancel"), INT8_COL("sv_being_canceled"),    \
	    INT8_COL("sv_idle"), INT8_COL("sv_used"), INT8_COL("sv_tested"), INT8_COL("sv_login"), \
	    INT8_COL("maxwait"), INT8_COL("maxwait_us"), TEXT_COL("pool_mode")

static const struct result_column pools_cols[] = {POOL_COLS, TEXT_COL("nodes"),
                                                  TEXT_COL("node_role"), TEXT_COL("paused")};
static const struct result_column node_pools_cols[] = {POOL_COLS, TEXT_COL("node"),
                                                       TEXT_COL("node_role"), TEXT_COL("paused")};

static void pool_row(struct result *r, const struct pool *p, const struct pool_counts *pc)
{
	result_row(r);
	result_text(r, p->db_name);
	result_text(r, p->user);
	result_int(r, pc->cl_active);
	result_int(r, pc->cl_waiting);
	result_int(r, 0); /* cl_active_cancel_req */
	result_int(r, 0); /* cl_waiting_cancel_req */
	result_int(r, pc->sv_active);
	result_int(r, 0); /* sv_active_cancel */
	result_int(r, 0); /* sv_being_canceled */
	result_int(r, pc->sv_idle);
	result_int(r, 0); /* sv_used */
	result_int(r, pc->sv_tested);
	result_int(r, pc->sv_login);
	result_int(r, (int64_t)(pc->maxwait / 1000000));
	result_int(r, (int64_t)(pc->maxwait % 1000000));
	result_text(r, config_pool_mode_name(p->mode));
	/* a group spanning nodes names them all; their roles differ */
	result_text(r, pc->nodes);
	result_text(r, pc->pools == 1 ? node_role_name(p->backend->role) : "mixed");
	result_text(r, pc->paused ? "yes" : "no");
	result_row_end(r);
}

static void pools_view(struct worker *w, struct result *r, enum group g)
{
	struct list *pos, *tmp, *qp, *qt;
	uint64_t now = util_now_us();

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
		pool_row(r, p, &pc);
	}
}

static void show_pools(struct worker *w, struct result *r)
{
	pools_view(w, r, BY_DB_USER);
}

static void show_node_pools(struct worker *w, struct result *r)
{
	pools_view(w, r, BY_POOL);
}

static const struct result_column stats_cols[] = {
    TEXT_COL("database"),         INT8_COL("total_xact_count"), INT8_COL("total_query_count"),
    INT8_COL("total_received"),   INT8_COL("total_sent"),       INT8_COL("total_xact_time"),
    INT8_COL("total_query_time"), INT8_COL("total_wait_time"),  INT8_COL("avg_xact_count"),
    INT8_COL("avg_query_count"),  INT8_COL("avg_recv"),         INT8_COL("avg_sent"),
    INT8_COL("avg_xact_time"),    INT8_COL("avg_query_time"),   INT8_COL("avg_wait_time")};

/* The totals and the stats_period averages of one database: tot and avg sum its pools. */
static void stats_row(struct result *r, const char *db, const struct stats_totals *tot,
                      const struct stats_totals *avg)
{
	const uint64_t v[] = {tot->xacts,    tot->queries,  tot->recv,    tot->sent,
	                      tot->xact_us,  tot->query_us, tot->wait_us, avg->xacts,
	                      avg->queries,  avg->recv,     avg->sent,    avg->xact_us,
	                      avg->query_us, avg->wait_us};
	_Static_assert(ARRAY_LEN(v) + 1 == ARRAY_LEN(stats_cols),
	               "a SHOW STATS column has no value");

	result_row(r);
	result_text(r, db);
	for (size_t i = 0; i < ARRAY_LEN(v); i++)
		result_int(r, (int64_t)v[i]);
	result_row_end(r);
}

/* Per database, as PgBouncer. Times in microseconds; avg_* cover the last stats_period
 * (see metrics_period), weighted by each pool's transactions or queries. Bytes are
 * measured on the server side of the pools. */
static void show_stats(struct worker *w, struct result *r)
{
	struct list *pos, *tmp, *qp, *qt;

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
		stats_row(r, p->db_name, &tot, &avg);
	}
}

/* SHOW SERVERS and SHOW CLIENTS share PgBouncer's columns; ours follow. */
#define SOCKET_COLS                                                                                \
	TEXT_COL("type"), TEXT_COL("user"), TEXT_COL("database"), TEXT_COL("state"),               \
	    TEXT_COL("addr"), INT8_COL("port"), TEXT_COL("local_addr"), INT8_COL("local_port"),    \
	    TEXT_COL("connect_time"), TEXT_COL("request_time"), INT8_COL("wait"),                  \
	    INT8_COL("wait_us"), INT8_COL("close_needed"), TEXT_COL("ptr"), TEXT_COL("link"),      \
	    INT8_COL("remote_pid"), TEXT_COL("tls"), TEXT_COL("application_name")

static const struct result_column servers_cols[] = {SOCKET_COLS, TEXT_COL("node"), INT8_COL("id")};
static const struct result_column clients_cols[] = {SOCKET_COLS, INT8_COL("id"), TEXT_COL("pinned"),
                                                    TEXT_COL("node")};

/* The values of the columns SHOW SERVERS and SHOW CLIENTS share. */
struct socket_row {
	const char *type, *user, *db, *state, *addr;
	int port;
	int fd;                          /* for the local address */
	uint64_t connect_us, request_us; /* monotonic */
	uint64_t wait_us;                /* queued for a server; 0 when not waiting */
	uint64_t id, link;               /* link: the peer's id, 0 without one */
	int64_t remote_pid;
	const char *application_name;
};

static void socket_cells(struct result *r, const struct socket_row *s, uint64_t now)
{
	char connected[40], requested[40], local[64], ptr[24], link[24] = "";
	int local_port;

	wall_time(s->connect_us, now, connected, sizeof(connected));
	wall_time(s->request_us, now, requested, sizeof(requested));
	sock_addr(s->fd, true, local, sizeof(local), &local_port);
	snprintf(ptr, sizeof(ptr), "%" PRIx64, s->id);
	if (s->link != 0)
		snprintf(link, sizeof(link), "%" PRIx64, s->link);
	result_text(r, s->type);
	result_text(r, s->user);
	result_text(r, s->db);
	result_text(r, s->state);
	result_text(r, s->addr);
	result_int(r, s->port);
	result_text(r, local);
	result_int(r, local_port);
	result_text(r, connected);
	result_text(r, requested);
	result_int(r, (int64_t)(s->wait_us / 1000000));
	result_int(r, (int64_t)(s->wait_us % 1000000));
	result_int(r, 0); /* close_needed */
	result_text(r, ptr);
	result_text(r, link);
	result_int(r, s->remote_pid);
	result_text(r, ""); /* tls */
	result_text(r, s->application_name);
}

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

/* PgBouncer's names of enum server_state, in its order: SERVER_CLOSED is the last state. */
static const char *const server_states[] = {"login", "idle", "active", "tested", "closed"};
_Static_assert(ARRAY_LEN(server_states) == SERVER_CLOSED + 1, "a server state has no label");

static void server_row(struct result *r, const struct pool *p, const struct server *s,
                       const struct links *l, uint64_t now)
{
	const struct socket_row row = {
	    .type = "S",
	    .user = p->login.user,
	    .db = p->db_name,
	    .state = server_states[s->state],
	    .addr = p->login.host,
	    .port = p->login.port,
	    .fd = s->conn.fd,
	    .connect_us = s->created_us,
	    .request_us = s->used_us,
	    .id = s->id,
	    .link = linked_client(l, s->id),
	    .remote_pid = s->be_pid,
	    .application_name = "",
	};

	result_row(r);
	socket_cells(r, &row, now);
	result_text(r, p->backend->name);
	result_int(r, (int64_t)s->id);
	result_row_end(r);
}

static void show_servers(struct worker *w, struct result *r)
{
	struct list *pos, *tmp, *sp, *st;
	struct links links = {.cap = (size_t)w->n_clients};
	uint64_t now = util_now_us();

	links.pairs = util_calloc(links.cap + 1, sizeof(*links.pairs));
	client_foreach(w, collect_link, &links);
	list_for_each_safe (pos, tmp, &w->pools) {
		struct pool *p = container_of(pos, struct pool, node);
		struct list *lists[] = {&p->connecting, &p->idle, &p->active};
		for (int i = 0; i < 3; i++)
			list_for_each_safe (sp, st, lists[i])
				server_row(r, p, container_of(sp, struct server, node), &links,
				           now);
	}
	free(links.pairs);
}

static void client_row(const struct client_info *ci, void *arg)
{
	struct result *r = arg;
	char addr[64];
	struct socket_row row = {
	    .type = "C",
	    .user = ci->user ? ci->user : "",
	    .db = ci->db ? ci->db : "",
	    .state = ci->state,
	    .addr = addr,
	    .fd = ci->fd,
	    .connect_us = ci->connect_us,
	    .request_us = ci->request_us,
	    .wait_us = ci->wait_us,
	    .id = ci->id,
	    .link = ci->server_id,
	    .application_name = ci->application_name ? ci->application_name : "",
	};

	sock_addr(ci->fd, false, addr, sizeof(addr), &row.port);
	result_row(r);
	socket_cells(r, &row, util_now_us());
	result_int(r, (int64_t)ci->id);
	result_text(r, ci->pinned ? ci->pinned : "");
	result_text(r, ci->node ? ci->node : "");
	result_row_end(r);
}

static void show_clients(struct worker *w, struct result *r)
{
	client_foreach(w, client_row, r);
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

static const struct result_column databases_cols[] = {TEXT_COL("name"),
                                                      TEXT_COL("host"),
                                                      INT8_COL("port"),
                                                      TEXT_COL("database"),
                                                      TEXT_COL("force_user"),
                                                      INT8_COL("pool_size"),
                                                      INT8_COL("min_pool_size"),
                                                      INT8_COL("reserve_pool"),
                                                      TEXT_COL("pool_mode"),
                                                      INT8_COL("max_connections"),
                                                      INT8_COL("current_connections"),
                                                      INT8_COL("paused"),
                                                      INT8_COL("disabled"),
                                                      TEXT_COL("nodes")};

static void show_databases(struct worker *w, struct result *r)
{
	const struct config *cfg = w->cfg;

	for (int i = 0; i < cfg->n_dbs; i++) {
		const struct db_conf *d = &cfg->dbs[i];
		const struct node *p = router_primary(w, d);
		bool paused;
		int current = db_servers(w, d->name, &paused);
		result_row(r);
		result_text(r, d->name);
		result_text(r, p ? p->host : "");
		result_int(r, p ? p->port : 0);
		result_text(r, d->dbname);
		result_text(r, d->server_user ? d->server_user : "");
		result_int(r, d->effective_pool_size);
		result_int(r, d->min_pool_size);
		result_int(r, 0); /* reserve_pool */
		result_text(r, config_pool_mode_name(d->pool_mode));
		result_int(r, 0); /* max_connections */
		result_int(r, current);
		result_int(r, paused ? 1 : 0);
		result_int(r, 0); /* disabled */
		result_text(r, d->nodes ? d->nodes : "(all)");
		result_row_end(r);
	}
}

static const struct result_column nodes_cols[] = {TEXT_COL("name"),
                                                  TEXT_COL("host"),
                                                  INT8_COL("port"),
                                                  TEXT_COL("role"),
                                                  TEXT_COL("configured_role"),
                                                  TEXT_COL("up"),
                                                  TEXT_COL("usable"),
                                                  INT8_COL("lag_bytes"),
                                                  INT8_COL("lag_ms"),
                                                  INT8_COL("in_flight"),
                                                  INT8_COL("transactions"),
                                                  INT8_COL("weight"),
                                                  INT8_COL("probes_ok"),
                                                  INT8_COL("probes_failed"),
                                                  TEXT_COL("last_error"),
                                                  TEXT_COL("breaker")};

static void show_nodes(struct worker *w, struct result *r)
{
	for (int i = 0; i < w->n_nodes; i++) {
		const struct node *n = w->nodes[i];
		result_row(r);
		result_text(r, n->name);
		result_text(r, n->host);
		result_int(r, n->port);
		result_text(r, n->probed ? node_role_name(n->role) : "unknown");
		result_text(r, node_role_name(n->conf_role));
		result_text(r, n->up ? "yes" : "no");
		result_text(r, n->usable ? "yes" : "no");
		result_int(r, (int64_t)n->lag_bytes);
		result_int(r, n->lag_ms);
		result_int(r, n->inflight);
		result_int(r, (int64_t)n->transactions);
		result_int(r, router_read_weight(n));
		result_int(r, (int64_t)n->probes_ok);
		result_int(r, (int64_t)n->probes_failed);
		result_text(r, n->last_error);
		result_text(r, breaker_state_name(n->breaker.state));
		result_row_end(r);
	}
}

static const struct result_column config_cols[] = {TEXT_COL("key"), TEXT_COL("value")};

static void config_row(const char *key, const char *value, void *arg)
{
	struct result *r = arg;
	result_row(r);
	result_text(r, key);
	result_text(r, value);
	result_row_end(r);
}

static void show_config(struct worker *w, struct result *r)
{
	config_foreach(w->cfg, config_row, r);
}

static const struct result_column version_cols[] = {TEXT_COL("version")};

static void show_version(struct worker *w, struct result *r)
{
	(void)w;
	result_row(r);
	result_text(r, "pooler " POOLER_VERSION);
	result_row_end(r);
}

static const struct result_column help_cols[] = {TEXT_COL("command"), TEXT_COL("description")};

static void show_help(struct worker *w, struct result *r);
/* ---- commands that change things ---------------------------------------------------- */

static void complete(struct buf *out, const char *tag)
{
	size_t m = proto_begin(out, 'C');
	buf_put_str(out, tag);
	proto_end(out, m);
}

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
	void (*show)(struct worker *w, struct result *r);
	const struct result_column *cols; /* of show's rows */
	int n_cols;
	void (*act)(struct worker *w, const char *arg, struct buf *out);
	bool (*act_later)(struct worker *w, const char *arg, struct buf *out, char **wait);
	const char *help;
};

static const struct command commands[] = {
    {"SHOW", "HELP", false, show_help, RESULT_COLUMNS(help_cols), NULL, NULL, "this list"},
    {"SHOW", "VERSION", false, show_version, RESULT_COLUMNS(version_cols), NULL, NULL,
     "the pooler's version"},
    {"SHOW", "POOLS", false, show_pools, RESULT_COLUMNS(pools_cols), NULL, NULL,
     "clients and servers per database and user, over all nodes"},
    {"SHOW", "NODE_POOLS", false, show_node_pools, RESULT_COLUMNS(node_pools_cols), NULL, NULL,
     "as SHOW POOLS, one row per database, user and node"},
    {"SHOW", "STATS", false, show_stats, RESULT_COLUMNS(stats_cols), NULL, NULL,
     "transactions and waits per database"},
    {"SHOW", "SERVERS", false, show_servers, RESULT_COLUMNS(servers_cols), NULL, NULL,
     "every server connection"},
    {"SHOW", "CLIENTS", false, show_clients, RESULT_COLUMNS(clients_cols), NULL, NULL,
     "every client connection"},
    {"SHOW", "DATABASES", false, show_databases, RESULT_COLUMNS(databases_cols), NULL, NULL,
     "the configured databases"},
    {"SHOW", "NODES", false, show_nodes, RESULT_COLUMNS(nodes_cols), NULL, NULL,
     "backend servers: role, health, lag"},
    {"SHOW", "CONFIG", false, show_config, RESULT_COLUMNS(config_cols), NULL, NULL,
     "effective settings"},
    {"PAUSE", NULL, true, NULL, NULL, 0, NULL, cmd_pause,
     "[db] hand out no servers until RESUME; answers when running transactions ended"},
    {"RESUME", NULL, true, NULL, NULL, 0, cmd_resume, NULL, "[db] undo PAUSE"},
    {"KILL", NULL, true, NULL, NULL, 0, cmd_kill, NULL, "db: drop its clients and idle servers"},
    {"RELOAD", NULL, true, NULL, NULL, 0, cmd_reload, NULL, "re-read the config and auth file"},
    {"SHUTDOWN", NULL, true, NULL, NULL, 0, cmd_shutdown, NULL, "finish transactions, then exit"},
};

static void show_help(struct worker *w, struct result *r)
{
	char name[64];
	(void)w;
	for (size_t i = 0; i < ARRAY_LEN(commands); i++) {
		snprintf(name, sizeof(name), "%s%s%s", commands[i].verb,
		         commands[i].object ? " " : "",
		         commands[i].object ? commands[i].object : "");
		result_row(r);
		result_text(r, name);
		result_text(r, commands[i].help);
		result_row_end(r);
	}
}

/* A SHOW command's answer: its columns, its rows, CommandComplete. */
static void run_show(struct worker *w, const struct command *c, struct buf *out)
{
	struct result r;
	result_begin(&r, out, c->cols, c->n_cols);
	c->show(w, &r);
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
			run_show(w, c, out);
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
