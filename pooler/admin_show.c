/* admin_show: the console's views of pools, statistics, databases, users and settings.
 * See admin_internal.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "admin_internal.h"
#include "auth.h"
#include "client.h"
#include "config.h"
#include "node.h"
#include "pool.h"
#include "router.h"

void admin_wall_time(uint64_t mono_us, uint64_t now_us, char *text, size_t len)
{
	time_t t = time(NULL) - (time_t)((now_us - mono_us) / 1000000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(text, len, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

/* ---- SHOW POOLS, SHOW NODE_POOLS ---------------------------------------------------- */

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
 * columns. So those views sum a group of pools, and SHOW NODE_POOLS has one row per
 * pool. */
enum group { BY_POOL, BY_DB_USER, BY_DB };

static bool same_group(const struct pool *a, const struct pool *b, enum group g)
{
	if (g == BY_POOL)
		return pool_same_key(a, b); /* one (database, user, node), over the workers */
	return strcmp(a->db_name, b->db_name) == 0 && (g == BY_DB || strcmp(a->user, b->user) == 0);
}

/* True when an earlier pool of the list led p's group (its row is written). */
static bool group_seen(struct worker *w, const struct pool *p, enum group g)
{
	for (const struct pool *q = pool_next(w, NULL); q != NULL; q = pool_next(w, q)) {
		if (q == p)
			return false;
		if (same_group(q, p, g))
			return true;
	}
	return false;
}

struct pool_counts {
	int pools; /* nodes, really: a node's pools on several workers count once */
	const struct node *seen[16];
	int cl_active, cl_waiting, sv_active, sv_being_canceled, sv_idle, sv_tested, sv_login;
	uint64_t maxwait;
	bool paused;
	char nodes[256];
};

static void count_pool(struct worker *w, struct pool *p, uint64_t now, struct pool_counts *pc)
{
	struct active_count clients = {.pool = p};
	struct list *sp, *st;

	client_foreach(w, count_active, &clients);
	pc->cl_active += clients.n;
	pc->cl_waiting += p->n_waiting;
	int *by_use[] = {[SERVER_USE_ACTIVE] = &pc->sv_active,
	                 [SERVER_USE_TESTED] = &pc->sv_tested,
	                 [SERVER_USE_BEING_CANCELED] = &pc->sv_being_canceled};
	list_for_each_safe (sp, st, &p->active)
		(*by_use[server_use(container_of(sp, struct server, node))])++;
	list_for_each_safe (sp, st, &p->idle)
		pc->sv_idle++;
	pc->sv_login += p->n_connecting;
	if (!list_empty(&p->waiting)) {
		struct pool_waiter *wt = container_of(p->waiting.next, struct pool_waiter, node);
		if (now - wt->since_us > pc->maxwait)
			pc->maxwait = now - wt->since_us;
	}
	pc->paused = pc->paused || p->paused;
	for (int i = 0; i < pc->pools && i < (int)ARRAY_LEN(pc->seen); i++)
		if (pc->seen[i] == p->backend)
			return;
	if (pc->pools < (int)ARRAY_LEN(pc->seen))
		pc->seen[pc->pools] = p->backend;
	pc->pools++;
	size_t n = strlen(pc->nodes);
	snprintf(pc->nodes + n, sizeof(pc->nodes) - n, "%s%s", n > 0 ? "," : "", p->backend->name);
}

/* PgBouncer's columns (int4 counts), then the node (or nodes), its role and whether the
 * pool is paused. */
#define POOL_COLS                                                                                  \
	TEXT_COL("database"), TEXT_COL("user"), INT4_COL("cl_active"), INT4_COL("cl_waiting"),     \
	    INT4_COL("cl_active_cancel_req"), INT4_COL("cl_waiting_cancel_req"),                   \
	    INT4_COL("sv_active"), INT4_COL("sv_active_cancel"), INT4_COL("sv_being_canceled"),    \
	    INT4_COL("sv_idle"), INT4_COL("sv_used"), INT4_COL("sv_tested"), INT4_COL("sv_login"), \
	    INT4_COL("maxwait"), INT4_COL("maxwait_us"), TEXT_COL("pool_mode")

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
	result_int(r, 0); /* cl_active_cancel_req: cancels are answered at once, never queued */
	result_int(r, 0); /* cl_waiting_cancel_req */
	result_int(r, pc->sv_active);
	result_int(r, 0); /* sv_active_cancel */
	result_int(r, pc->sv_being_canceled); /* released while a cancel is on its way */
	result_int(r, pc->sv_idle);
	result_int(r, 0); /* sv_used: a returned server is idle at once, never "used" */
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
	uint64_t now = util_now_us();

	for (struct pool *p = pool_next(w, NULL); p != NULL; p = pool_next(w, p)) {
		struct pool_counts pc = {.pools = 0};
		if (group_seen(w, p, g))
			continue;
		for (struct pool *q = pool_next(w, NULL); q != NULL; q = pool_next(w, q)) {
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

/* ---- SHOW STATS, STATS_TOTALS, STATS_AVERAGES, TOTALS -------------------------------- */

/* One database's totals and stats_period averages: each sums the database's pools. */
struct db_stats {
	struct stats_totals tot, avg;
};

/* The averages of the period that has not ended yet (the first stats_period): those of
 * the pool's life so far, rather than zeros. */
static void first_period(const struct pool *q, uint64_t now, struct stats_totals *a)
{
	double seconds = (double)(now - q->created_us) / 1e6;
	if (q->window.rolled)
		return;
	if (seconds < 1)
		seconds = 1;
	a->xacts = (uint64_t)((double)q->xact_count / seconds);
	a->queries = (uint64_t)((double)q->tally.queries / seconds);
	a->recv = (uint64_t)((double)q->tally.bytes.out / seconds);
	a->sent = (uint64_t)((double)q->tally.bytes.in / seconds);
	a->xact_us = q->xact_count ? q->xact_us / q->xact_count : 0;
	a->wait_us = q->xact_count ? q->wait_us / q->xact_count : 0;
	a->query_us = q->tally.queries ? q->tally.query_us / q->tally.queries : 0;
}

/* Sum the pools of database db (NULL: of every database). */
static void sum_db(struct worker *w, const char *db, struct db_stats *s)
{
	uint64_t xact_w = 0, query_w = 0, wait_w = 0, xact_n = 0, query_n = 0;
	uint64_t now = util_now_us();

	*s = (struct db_stats){{0}, {0}};
	for (const struct pool *q = pool_next(w, NULL); q != NULL; q = pool_next(w, q)) {
		struct stats_totals a = q->window.avg;
		if (db != NULL && strcmp(q->db_name, db) != 0)
			continue;
		first_period(q, now, &a);
		s->tot.xacts += q->xact_count;
		s->tot.queries += q->tally.queries;
		s->tot.recv += q->tally.bytes.out; /* what clients sent, on to the servers */
		s->tot.sent += q->tally.bytes.in;
		s->tot.xact_us += q->xact_us;
		s->tot.query_us += q->tally.query_us;
		s->tot.wait_us += q->wait_us;
		s->avg.xacts += a.xacts;
		s->avg.queries += a.queries;
		s->avg.recv += a.recv;
		s->avg.sent += a.sent;
		/* times weighted by each pool's counts (of the period, else of all time) */
		uint64_t xn = a.xacts ? a.xacts : q->xact_count;
		uint64_t qn = a.queries ? a.queries : q->tally.queries;
		xact_w += a.xact_us * xn;
		wait_w += a.wait_us * xn;
		query_w += a.query_us * qn;
		xact_n += xn;
		query_n += qn;
	}
	s->avg.xact_us = xact_n ? xact_w / xact_n : 0;
	s->avg.wait_us = xact_n ? wait_w / xact_n : 0;
	s->avg.query_us = query_n ? query_w / query_n : 0;
}

/* Calls fn once per database that has pools, with its sums. */
static void each_db_stats(struct worker *w, struct result *r,
                          void (*fn)(struct result *r, const char *db, const struct db_stats *s))
{
	struct db_stats s;

	for (const struct pool *p = pool_next(w, NULL); p != NULL; p = pool_next(w, p)) {
		if (group_seen(w, p, BY_DB))
			continue;
		sum_db(w, p->db_name, &s);
		fn(r, p->db_name, &s);
	}
}

static void put_totals(struct result *r, const struct stats_totals *t)
{
	const uint64_t v[] = {t->xacts,   t->queries,  t->recv,   t->sent,
	                      t->xact_us, t->query_us, t->wait_us};
	for (size_t i = 0; i < ARRAY_LEN(v); i++)
		result_int(r, (int64_t)v[i]);
}

/* PgBouncer sends its statistics as numeric. Times in microseconds; avg_* cover the last
 * stats_period (counts and bytes per second; times per transaction or query). Bytes are
 * measured on the server side of the pools. */
static const struct result_column stats_cols[] = {
    TEXT_COL("database"),        NUM_COL("total_xact_count"), NUM_COL("total_query_count"),
    NUM_COL("total_received"),   NUM_COL("total_sent"),       NUM_COL("total_xact_time"),
    NUM_COL("total_query_time"), NUM_COL("total_wait_time"),  NUM_COL("avg_xact_count"),
    NUM_COL("avg_query_count"),  NUM_COL("avg_recv"),         NUM_COL("avg_sent"),
    NUM_COL("avg_xact_time"),    NUM_COL("avg_query_time"),   NUM_COL("avg_wait_time")};

static void stats_row(struct result *r, const char *db, const struct db_stats *s)
{
	result_row(r);
	result_text(r, db);
	put_totals(r, &s->tot);
	put_totals(r, &s->avg);
	result_row_end(r);
}

static void show_stats(struct worker *w, struct result *r)
{
	each_db_stats(w, r, stats_row);
}

/* SHOW STATS_TOTALS and SHOW STATS_AVERAGES: the two halves of SHOW STATS. */
static const struct result_column stats_half_cols[] = {
    TEXT_COL("database"),  NUM_COL("xact_count"), NUM_COL("query_count"), NUM_COL("bytes_received"),
    NUM_COL("bytes_sent"), NUM_COL("xact_time"),  NUM_COL("query_time"),  NUM_COL("wait_time")};

static void totals_row(struct result *r, const char *db, const struct db_stats *s)
{
	result_row(r);
	result_text(r, db);
	put_totals(r, &s->tot);
	result_row_end(r);
}

static void averages_row(struct result *r, const char *db, const struct db_stats *s)
{
	result_row(r);
	result_text(r, db);
	put_totals(r, &s->avg);
	result_row_end(r);
}

static void show_stats_totals(struct worker *w, struct result *r)
{
	each_db_stats(w, r, totals_row);
}

static void show_stats_averages(struct worker *w, struct result *r)
{
	each_db_stats(w, r, averages_row);
}

/* SHOW TOTALS: SHOW STATS over every database, one row per figure. */
static const struct result_column name_value_cols[] = {TEXT_COL("name"), NUM_COL("value")};

static void show_totals(struct worker *w, struct result *r)
{
	static const char *const names[] = {
	    "total_xact_count", "total_query_count", "total_client_bytes", "total_server_bytes",
	    "total_xact_time",  "total_query_time",  "total_wait_time",    "avg_xact_count",
	    "avg_query_count",  "avg_client_bytes",  "avg_server_bytes",   "avg_xact_time",
	    "avg_query_time",   "avg_wait_time"};
	struct db_stats all;

	sum_db(w, NULL, &all);
	const struct stats_totals *halves[] = {&all.tot, &all.avg};
	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		const struct stats_totals *t = halves[i / 7];
		const uint64_t v[] = {t->xacts,   t->queries,  t->recv,   t->sent,
		                      t->xact_us, t->query_us, t->wait_us};
		result_row(r);
		result_text(r, names[i]);
		result_int(r, (int64_t)v[i % 7]);
		result_row_end(r);
	}
}

/* ---- SHOW LISTS, USERS, MEM, DNS_*, PEERS, PEER_POOLS, STATE -------------------------- */

struct client_tally {
	int used, login;
};

static void tally_client(const struct client_info *ci, void *arg)
{
	struct client_tally *t = arg;
	t->used++;
	t->login += strcmp(ci->state, "login") == 0;
}

/* Users PgBouncer would know: the auth file's, and those that only auth_query found
 * (they have pools). Calls fn once per name. */
static void each_user(struct worker *w, void (*fn)(const char *name, void *arg), void *arg)
{
	for (int i = 0; w->auth != NULL && i < w->auth->n_users; i++)
		fn(w->auth->users[i].name, arg);
	for (const struct pool *p = pool_next(w, NULL); p != NULL; p = pool_next(w, p)) {
		bool seen = w->auth != NULL && auth_file_find(w->auth, p->user) != NULL;
		for (const struct pool *q = pool_next(w, NULL); !seen && q != p; q = pool_next(w, q))
			seen = strcmp(q->user, p->user) == 0;
		if (!seen)
			fn(p->user, arg);
	}
}

static void count_user(const char *name, void *arg)
{
	(void)name;
	(*(int *)arg)++;
}

/* PgBouncer's internal lists. The pooler keeps no caches of free objects (free_* are 0)
 * and resolves no names itself (dns_* are 0: libpq resolves when a server connects). */
static const struct result_column lists_cols[] = {TEXT_COL("list"), INT4_COL("items")};

static void show_lists(struct worker *w, struct result *r)
{
	struct client_tally ct = {0, 0};
	int pools = 0, servers = 0, users = 0;

	client_foreach(w, tally_client, &ct);
	each_user(w, count_user, &users);
	for (const struct pool *p = pool_next(w, NULL); p != NULL; p = pool_next(w, p)) {
		pools += pool_leads_key(w, p);
		servers += p->n_servers;
	}
	const struct {
		const char *name;
		int n;
	} items[] = {
	    {"databases", w->cfg->n_dbs},
	    {"users", users},
	    {"pools", pools},
	    {"free_clients", 0},
	    {"used_clients", ct.used},
	    {"login_clients", ct.login},
	    {"free_servers", 0},
	    {"used_servers", servers},
	    {"dns_names", 0},
	    {"dns_zones", 0},
	    {"dns_queries", 0},
	    {"dns_pending", 0},
	};
	for (size_t i = 0; i < ARRAY_LEN(items); i++) {
		result_row(r);
		result_text(r, items[i].name);
		result_int(r, items[i].n);
		result_row_end(r);
	}
}

/* pool_mode is per database here, never per user: NULL, as PgBouncer shows a user
 * without its own pool_mode. */
static const struct result_column users_cols[] = {TEXT_COL("name"), TEXT_COL("pool_mode")};

static void user_row(const char *name, void *arg)
{
	struct result *r = arg;
	result_row(r);
	result_text(r, name);
	result_text(r, NULL);
	result_row_end(r);
}

static void show_users(struct worker *w, struct result *r)
{
	each_user(w, user_row, r);
}

/* PgBouncer's object caches (slabs); the pooler has none to show, so no rows. */
static const struct result_column mem_cols[] = {
    TEXT_COL("name"), INT4_COL("size"), INT4_COL("used"), INT4_COL("free"), INT4_COL("memtotal")};
/* PgBouncer's DNS cache; the pooler has none (libpq resolves), so no rows. */
static const struct result_column dns_hosts_cols[] = {TEXT_COL("hostname"), INT8_COL("ttl"),
                                                      TEXT_COL("addrs")};
static const struct result_column dns_zones_cols[] = {TEXT_COL("zonename"), INT8_COL("serial"),
                                                      INT4_COL("count")};
/* [peers]: the other poolers that cancel requests are sent on to (this pooler's own line
 * is left out, as it is never sent anything). host is the address or Unix socket folder;
 * pool_size is PgBouncer's cap on cancel connections to the peer, which has no equivalent
 * here (0). PEER_POOLS has no rows: a forwarded request is not queued, so there is
 * nothing per peer to count. */
static const struct result_column peers_cols[] = {INT4_COL("peer_id"), TEXT_COL("host"),
                                                  INT4_COL("port"), INT4_COL("pool_size")};
static const struct result_column peer_pools_cols[] = {
    INT4_COL("peer_id"), INT4_COL("cl_active_cancel_req"), INT4_COL("cl_waiting_cancel_req"),
    INT4_COL("sv_active_cancel"), INT4_COL("sv_login")};

/* PgBouncer's file descriptors for an online restart, which is not offered: no rows. */
static const struct result_column fds_cols[] = {INT4_COL("fd"),
                                                TEXT_COL("task"),
                                                TEXT_COL("user"),
                                                TEXT_COL("database"),
                                                TEXT_COL("addr"),
                                                INT4_COL("port"),
                                                INT8_COL("cancel"),
                                                INT4_COL("link"),
                                                TEXT_COL("client_encoding"),
                                                TEXT_COL("std_strings"),
                                                TEXT_COL("datestyle"),
                                                TEXT_COL("timezone"),
                                                TEXT_COL("password"),
                                                BYTEA_COL("scram_client_key"),
                                                BYTEA_COL("scram_server_key")};

static void show_nothing(struct worker *w, struct result *r)
{
	(void)w;
	(void)r;
}

static void show_peers(struct worker *w, struct result *r)
{
	for (int i = 0; i < w->cfg->n_peers; i++) {
		const struct peer_conf *p = &w->cfg->peers[i];
		if (p->id == w->peer_id || p->id == w->cfg->peer_id)
			continue; /* never sent anything (see cancel_elsewhere in client_login.c) */
		result_row(r);
		result_int(r, p->id);
		result_text(r, p->host);
		result_int(r, p->port);
		result_int(r, 0);
		result_row_end(r);
	}
}

/* Whether the pooler runs, is paused as a whole (PAUSE without a database), or is
 * suspended (never: SUSPEND is not offered). */
static const struct result_column state_cols[] = {TEXT_COL("key"), TEXT_COL("value")};

static void show_state(struct worker *w, struct result *r)
{
	const char *rows[][2] = {
	    {"active", w->paused_all || w->shutting_down ? "no" : "yes"},
	    {"paused", w->paused_all ? "yes" : "no"},
	    {"suspended", "no"},
	};
	for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
		result_row(r);
		result_text(r, rows[i][0]);
		result_text(r, rows[i][1]);
		result_row_end(r);
	}
}

/* ---- SHOW DATABASES, NODES, CONFIG, VERSION ------------------------------------------ */

/* Server connections open for a database, and whether it is paused: PAUSE or KILL of it
 * (until RESUME), or all its pools paused. */
static int db_servers(struct worker *w, const char *db, bool *paused)
{
	int n = 0, pools = 0, held = 0;

	for (const struct pool *p = pool_next(w, NULL); p != NULL; p = pool_next(w, p)) {
		if (strcmp(p->db_name, db) != 0)
			continue;
		n += p->n_servers;
		pools++;
		held += p->paused;
	}
	*paused =
	    (pools > 0 && held == pools) || w->paused_all || config_list_has(w->paused_dbs, db);
	return n;
}

/* PgBouncer's one host and port: the database's current primary. */
static const struct result_column databases_cols[] = {TEXT_COL("name"),
                                                      TEXT_COL("host"),
                                                      INT4_COL("port"),
                                                      TEXT_COL("database"),
                                                      TEXT_COL("force_user"),
                                                      INT4_COL("pool_size"),
                                                      INT4_COL("min_pool_size"),
                                                      INT4_COL("reserve_pool"),
                                                      TEXT_COL("pool_mode"),
                                                      INT4_COL("max_connections"),
                                                      INT4_COL("current_connections"),
                                                      INT4_COL("paused"),
                                                      INT4_COL("disabled"),
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
		result_text(r, p ? p->host : NULL);
		result_int(r, p ? p->port : 0);
		result_text(r, d->dbname);
		result_text(r, d->server_user);
		result_int(r, d->effective_pool_size);
		result_int(r, d->min_pool_size);
		result_int(r, d->reserve_pool_size);
		result_text(r, config_pool_mode_name(d->pool_mode));
		result_int(r, d->max_db_connections);
		result_int(r, current);
		result_int(r, paused ? 1 : 0);
		result_int(r, config_list_has(w->disabled_dbs, d->name) ? 1 : 0);
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
		result_int(r, n->total.inflight);
		result_int(r, (int64_t)n->total.transactions);
		result_int(r, router_read_weight(n));
		result_int(r, (int64_t)n->probes_ok);
		result_int(r, (int64_t)n->probes_failed);
		result_text(r, n->last_error);
		result_text(r, breaker_state_name(n->breaker.state));
		result_row_end(r);
	}
}

/* changeable: whether RELOAD applies a new value (the listening sockets are opened once). */
static const struct result_column config_cols[] = {TEXT_COL("key"), TEXT_COL("value"),
                                                   TEXT_COL("default"), TEXT_COL("changeable")};

struct config_filter {
	struct result *r;
	const char *key; /* SHOW CONFIG key: that one only; NULL: all */
};

static void config_row(const char *key, const char *value, const char *def, bool changeable,
                       void *arg)
{
	struct config_filter *f = arg;
	if (f->key != NULL && strcasecmp(f->key, key) != 0)
		return;
	result_row(f->r);
	result_text(f->r, key);
	result_text(f->r, value);
	result_text(f->r, def);
	result_text(f->r, changeable ? "yes" : "no");
	result_row_end(f->r);
}

static void show_config(struct worker *w, struct result *r, const char *key)
{
	struct config_filter f = {r, key[0] != '\0' ? key : NULL};
	config_foreach(w->cfg, config_row, &f);
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

#define VIEW(name, fn, cols, help)                                                                 \
	{                                                                                          \
		(name), (fn), NULL, RESULT_COLUMNS(cols), (help)                                   \
	}

const struct admin_view admin_show_views[] = {
    VIEW("HELP", admin_show_help, help_cols, "this list"),
    VIEW("VERSION", show_version, version_cols, "the pooler's version"),
    VIEW("POOLS", show_pools, pools_cols,
         "clients and servers per database and user, over all nodes"),
    VIEW("NODE_POOLS", show_node_pools, node_pools_cols,
         "as SHOW POOLS, one row per database, user and node"),
    VIEW("STATS", show_stats, stats_cols, "totals and stats_period averages per database"),
    VIEW("STATS_TOTALS", show_stats_totals, stats_half_cols, "the totals of SHOW STATS"),
    VIEW("STATS_AVERAGES", show_stats_averages, stats_half_cols, "the averages of SHOW STATS"),
    VIEW("TOTALS", show_totals, name_value_cols, "SHOW STATS over all databases"),
    VIEW("LISTS", show_lists, lists_cols, "how many databases, users, pools, clients, servers"),
    VIEW("USERS", show_users, users_cols, "users of auth_file and of auth_query"),
    VIEW("DATABASES", show_databases, databases_cols,
         "the configured databases (host, port: the current primary)"),
    VIEW("NODES", show_nodes, nodes_cols, "backend servers: role, health, lag"),
    {"CONFIG", NULL, show_config, RESULT_COLUMNS(config_cols),
     "[key] settings: value, default, changeable by RELOAD"},
    VIEW("STATE", show_state, state_cols, "active, paused, suspended"),
    VIEW("FDS", show_nothing, fds_cols, "no rows: the pooler has no online restart"),
    VIEW("MEM", show_nothing, mem_cols, "no rows: the pooler keeps no object caches"),
    VIEW("DNS_HOSTS", show_nothing, dns_hosts_cols, "no rows: libpq resolves host names"),
    VIEW("DNS_ZONES", show_nothing, dns_zones_cols, "no rows: libpq resolves host names"),
    VIEW("PEERS", show_peers, peers_cols, "the other poolers of [peers], where cancel requests go"),
    VIEW("PEER_POOLS", show_nothing, peer_pools_cols, "no rows: forwarded cancels are not queued"),
};
const int admin_show_n_views = (int)ARRAY_LEN(admin_show_views);
