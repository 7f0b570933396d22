/* metrics: see include/metrics.h. Names carry their unit; labels are database, user,
 * node and role, as the operators' dashboards expect.
 *
 * The exposition is one table, `families`, written in its order: each family's name, type
 * and help, and where its values are (offsets into the worker, a node, a pool, the client
 * counts or the verdict cache's figures), or a function for the few that are computed. */
#include "metrics.h"

#include <dirent.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "classify.h"
#include "cluster.h"
#include "config.h"
#include "node.h"
#include "pool.h"
#include "router.h"
#include "server.h"
#include "worker.h"

static void out(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void out(struct buf *b, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0)
		buf_put(b, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/* One histogram's series; labels is "" or `name="value",...` without braces. */
static void histogram_series(struct buf *b, const char *name, const char *labels,
                             const struct histogram *h)
{
	const char *sep = labels[0] ? "," : "";
	uint64_t cum = 0;
	for (int i = 0; i < HISTOGRAM_BUCKETS; i++) {
		cum += h->counts[i];
		out(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, histogram_bounds[i],
		    (unsigned long long)cum);
	}
	cum += h->counts[HISTOGRAM_BUCKETS];
	out(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, (unsigned long long)cum);
	if (labels[0]) {
		out(b, "%s_sum{%s} %.6f\n%s_count{%s} %llu\n", name, labels, h->sum, name, labels,
		    (unsigned long long)h->count);
		return;
	}
	out(b, "%s_sum %.6f\n%s_count %llu\n", name, h->sum, name, (unsigned long long)h->count);
}

/* The role label of a node: as its last probe found it, "unknown" while an auto node has
 * not been probed. */
static const char *role_label(const struct node *n)
{
	return n->role == NODE_ROLE_AUTO ? "unknown" : node_role_name(n->role);
}

static const char *const reject_names[] = {
    [REJECT_MAX_CLIENT_CONN] = "max_client_conn",
    [REJECT_AUTHENTICATION] = "authentication",
    [REJECT_QUERY_WAIT_TIMEOUT] = "query_wait_timeout",
};
_Static_assert(ARRAY_LEN(reject_names) == REJECT_REASONS, "a reject reason has no label");

/* Server connection states as PgBouncer names them: login, idle, active, tested (a reset
 * query runs between clients), being_canceled (released while a cancel request of its last
 * client is on its way: it serves nobody until the postmaster has answered). */
enum { SV_LOGIN, SV_IDLE, SV_ACTIVE, SV_TESTED, SV_BEING_CANCELED, SV_STATES };
static const char *const sv_state_names[] = {"login", "idle", "active", "tested", "being_canceled"};
_Static_assert(ARRAY_LEN(sv_state_names) == SV_STATES, "a server state has no label");
_Static_assert(SV_TESTED == SV_ACTIVE + SERVER_USE_TESTED &&
                   SV_BEING_CANCELED == SV_ACTIVE + SERVER_USE_BEING_CANCELED,
               "SV_ACTIVE + enum server_use");

static void count_servers(const struct pool *p, int counts[SV_STATES])
{
	const struct list *pos;

	counts[SV_LOGIN] = p->n_connecting;
	counts[SV_IDLE] = counts[SV_ACTIVE] = counts[SV_TESTED] = counts[SV_BEING_CANCELED] = 0;
	for (pos = p->idle.next; pos != &p->idle; pos = pos->next)
		counts[SV_IDLE]++;
	for (pos = p->active.next; pos != &p->active; pos = pos->next)
		counts[SV_ACTIVE + server_use(container_of(pos, const struct server, node))]++;
}

#define POOL_LABELS "database=\"%s\",user=\"%s\",node=\"%s\""
#define POOL_VALUES(p) (p)->db_name, (p)->user, (p)->backend->name

/* ---- the table ---------------------------------------------------------------------- */

/* The C type of a field, which says how it reads and prints. */
enum kind {
	K_U64,       /* uint64_t */
	K_INT,       /* int (or an enum) */
	K_BOOL,      /* bool, as 0 or 1 */
	K_MS,        /* int64_t milliseconds, printed as seconds */
	K_DOUBLE,    /* double */
	K_HISTOGRAM, /* struct histogram: its _bucket, _sum and _count series */
};

/* One series of a family: its own labels (NULL for none) and where its value is. */
struct series {
	const char *labels;
	size_t at; /* offsetof in the struct the family's scope names */
	enum kind kind;
};

/* Whose fields a family's offsets point into, and which labels that brings. */
enum scope {
	OF_WORKER,     /* struct worker */
	OF_CLIENTS,    /* struct client_counts */
	OF_CLASSIFY,   /* struct classify_stats */
	OF_PROCESS,    /* struct process_stats */
	PER_POOL,      /* struct pool, each pool: database, user and node */
	PER_NODE,      /* struct node, each node: node */
	PER_NODE_ROLE, /* each node: node and role */
	PER_REPLICA,   /* each node that is a replica now: node */
	COMPUTED,      /* write() works the values out */
};

/* The process as /proc shows it, read once per scrape: the standard process_* families
 * that every Prometheus client library exports, under their usual names. */
struct process_stats {
	double cpu_seconds;    /* user + system */
	double start_time;     /* since the epoch */
	double resident_bytes; /* doubles: these are what Prometheus stores anyway */
	double virtual_bytes;
	double open_fds;
	double max_fds; /* the soft RLIMIT_NOFILE */
};

/* What one scrape reads. */
struct scrape {
	struct worker *w;
	const struct client_counts *clients;
	const struct classify_stats *classify;
	const struct process_stats *process;
};

#define MAX_SERIES 4

struct family {
	const char *name;
	const char *type;
	const char *help;
	enum scope scope;
	struct series series[MAX_SERIES]; /* [0], then each one with labels */
	void (*write)(struct buf *b, const struct family *f, const struct scrape *s);
};

#define GAUGE "gauge"
#define COUNTER "counter"
#define HISTOGRAM "histogram"
/* The offset and kind of a series' value, by the struct it is in. */
#define WORKER(f, kind) offsetof(struct worker, f), kind
#define METRIC(f) WORKER(metrics.f, K_U64)
#define NODE(f, kind) offsetof(struct node, f), kind
#define POOL(f, kind) offsetof(struct pool, f), kind
#define CLIENTS(f) offsetof(struct client_counts, f), K_INT
#define CLASSIFY(f) offsetof(struct classify_stats, f), K_U64
#define PROCESS(f) offsetof(struct process_stats, f), K_DOUBLE

_Static_assert(sizeof(((struct node *)0)->breaker.state) == sizeof(int), "breaker state: K_INT");

static void write_up(struct buf *b, const struct family *f, const struct scrape *s);
static void write_build_info(struct buf *b, const struct family *f, const struct scrape *s);
static void write_max_clients(struct buf *b, const struct family *f, const struct scrape *s);
static void write_server_states(struct buf *b, const struct family *f, const struct scrape *s);
static void write_node_queries(struct buf *b, const struct family *f, const struct scrape *s);
static void write_by_pin_reason(struct buf *b, const struct family *f, const struct scrape *s);
static void write_by_reject_reason(struct buf *b, const struct family *f, const struct scrape *s);
static void write_by_route_reason(struct buf *b, const struct family *f, const struct scrape *s);
static void write_clusters(struct buf *b, const struct family *f, const struct scrape *s);

static const struct family families[] = {
    {"pooler_up", GAUGE, "1 while the pooler serves.", COMPUTED, .write = write_up},
    {"pooler_build_info", GAUGE, "Always 1; the version label says which pooler this is.", COMPUTED,
     .write = write_build_info},
    /* the process */
    {"process_cpu_seconds_total", COUNTER, "User and system CPU time spent, in seconds.",
     OF_PROCESS, .series = {{NULL, PROCESS(cpu_seconds)}}},
    {"process_start_time_seconds", GAUGE, "Start time of the process since the Unix epoch.",
     OF_PROCESS, .series = {{NULL, PROCESS(start_time)}}},
    {"process_resident_memory_bytes", GAUGE, "Resident memory size in bytes.", OF_PROCESS,
     .series = {{NULL, PROCESS(resident_bytes)}}},
    {"process_virtual_memory_bytes", GAUGE, "Virtual memory size in bytes.", OF_PROCESS,
     .series = {{NULL, PROCESS(virtual_bytes)}}},
    {"process_open_fds", GAUGE, "Open file descriptors (client and server sockets among them).",
     OF_PROCESS, .series = {{NULL, PROCESS(open_fds)}}},
    {"process_max_fds", GAUGE, "Most file descriptors the process may open (RLIMIT_NOFILE).",
     OF_PROCESS, .series = {{NULL, PROCESS(max_fds)}}},
    {"pooler_clients", GAUGE, "Client connections by state.", OF_CLIENTS,
     .series = {{"state=\"login\"", CLIENTS(login)},
                {"state=\"idle\"", CLIENTS(idle)},
                {"state=\"waiting\"", CLIENTS(waiting)},
                {"state=\"active\"", CLIENTS(active)}}},
    {"pooler_max_client_connections", GAUGE,
     "Client connections accepted at most (max_client_conn); more get SQLSTATE 53300.", COMPUTED,
     .write = write_max_clients},
    {"pooler_client_received_bytes_total", COUNTER, "Bytes read from clients.", OF_WORKER,
     .series = {{NULL, METRIC(client_bytes.in)}}},
    {"pooler_client_sent_bytes_total", COUNTER, "Bytes written to clients.", OF_WORKER,
     .series = {{NULL, METRIC(client_bytes.out)}}},
    /* pools */
    {"pooler_server_connections", GAUGE,
     "Server connections by state (login, idle, active, tested: running a reset, "
     "being_canceled: waiting for a cancel request to be answered).",
     COMPUTED, .write = write_server_states},
    {"pooler_pool_size", GAUGE,
     "Most server connections a pool may open (pool_size, auto computed).", PER_POOL,
     .series = {{NULL, POOL(size, K_INT)}}},
    {"pooler_pool_servers", GAUGE, "Server connections a pool has open now.", PER_POOL,
     .series = {{NULL, POOL(n_servers, K_INT)}}},
    {"pooler_clients_waiting", GAUGE, "Clients queued for a server, by pool.", PER_POOL,
     .series = {{NULL, POOL(n_waiting, K_INT)}}},
    {"pooler_pool_transactions_total", COUNTER,
     "Server hand-outs of the pool (transactions, or sessions in session mode).", PER_POOL,
     .series = {{NULL, POOL(xact_count, K_U64)}}},
    {"pooler_pool_queries_total", COUNTER,
     "Requests (Query, or extended batches up to Sync) the pool's servers answered.", PER_POOL,
     .series = {{NULL, POOL(tally.queries, K_U64)}}},
    {"pooler_server_received_bytes_total", COUNTER,
     "Bytes read from the pool's server connections.", PER_POOL,
     .series = {{NULL, POOL(tally.bytes.in, K_U64)}}},
    {"pooler_server_sent_bytes_total", COUNTER, "Bytes written to the pool's server connections.",
     PER_POOL, .series = {{NULL, POOL(tally.bytes.out, K_U64)}}},
    /* nodes */
    {"pooler_node_up", GAUGE, "1 when the node's last health probe answered.", PER_NODE_ROLE,
     .series = {{NULL, NODE(up, K_BOOL)}}},
    {"pooler_node_usable", GAUGE,
     "1 when the node takes its role's work now (replicas: healthy and within lag).", PER_NODE_ROLE,
     .series = {{NULL, NODE(usable, K_BOOL)}}},
    {"pooler_replica_lag_bytes", GAUGE, "WAL bytes a replica is behind the primary.", PER_REPLICA,
     .series = {{NULL, NODE(lag_bytes, K_U64)}}},
    {"pooler_replica_lag_seconds", GAUGE, "Replay delay of a replica.", PER_REPLICA,
     .series = {{NULL, NODE(lag_ms, K_MS)}}},
    {"pooler_node_transactions_in_flight", GAUGE, "Transactions running on the node now.",
     PER_NODE_ROLE, .series = {{NULL, NODE(total.inflight, K_INT)}}},
    {"pooler_node_transactions_total", COUNTER, "Transactions run on the node.", PER_NODE_ROLE,
     .series = {{NULL, NODE(total.transactions, K_U64)}}},
    /* Patroni clusters: series[0].at is the offset of the value in struct cluster */
    {"pooler_cluster_api_up", GAUGE,
     "1 when the last poll of the cluster's Patroni API answered; 0: routing goes on with the "
     "last known members and leader.",
     COMPUTED, .series = {{NULL, offsetof(struct cluster, reachable), K_BOOL}},
     .write = write_clusters},
    {"pooler_cluster_members", GAUGE, "Members the cluster's Patroni API last listed.", COMPUTED,
     .series = {{NULL, offsetof(struct cluster, view.n_members), K_INT}}, .write = write_clusters},
    {"pooler_cluster_polls_total", COUNTER, "GET /cluster requests that answered.", COMPUTED,
     .series = {{NULL, offsetof(struct cluster, polls_ok), K_U64}}, .write = write_clusters},
    {"pooler_cluster_poll_failures_total", COUNTER,
     "GET /cluster requests that failed (each URL tried counts).", COMPUTED,
     .series = {{NULL, offsetof(struct cluster, polls_failed), K_U64}}, .write = write_clusters},
    {"pooler_cluster_member_changes_total", COUNTER,
     "Polls whose member set differed from the one before (nodes added or retired).", COMPUTED,
     .series = {{NULL, offsetof(struct cluster, changes), K_U64}}, .write = write_clusters},
    {"pooler_breaker_state", GAUGE, "Circuit breaker of the node: 0 closed, 1 open, 2 half-open.",
     PER_NODE, .series = {{NULL, NODE(breaker.state, K_INT)}}},
    {"pooler_breaker_transitions_total", COUNTER, "Circuit breaker state changes.", PER_NODE,
     .series = {{NULL, NODE(breaker.transitions, K_U64)}}},
    {"pooler_health_probes_total", COUNTER, "Health probes by result.", PER_NODE,
     .series = {{"result=\"ok\"", NODE(probes_ok, K_U64)},
                {"result=\"failed\"", NODE(probes_failed, K_U64)}}},
    /* node traffic */
    {"pooler_node_queries_total", COUNTER,
     "Requests answered by the node (Query, or extended batches up to Sync).", COMPUTED,
     .write = write_node_queries},
    {"pooler_query_duration_seconds", HISTOGRAM,
     "From relaying a request to its ReadyForQuery, by node.", PER_NODE_ROLE,
     .series = {{NULL, NODE(total.query_time, K_HISTOGRAM)}}},
    {"pooler_server_connect_attempts_total", COUNTER,
     "Server connections the pooler started to open.", PER_NODE,
     .series = {{NULL, NODE(total.connect_attempts, K_U64)}}},
    {"pooler_server_connect_failures_total", COUNTER,
     "Server connections that failed to connect or log in.", PER_NODE,
     .series = {{NULL, NODE(total.connect_failures, K_U64)}}},
    {"pooler_server_connect_duration_seconds", HISTOGRAM,
     "From starting a server connection to its login being done.", PER_NODE,
     .series = {{NULL, NODE(total.connect_time, K_HISTOGRAM)}}},
    /* routing */
    {"pooler_routing_decisions_total", COUNTER,
     "Where transactions were sent, and why (the router's reason).", COMPUTED,
     .write = write_by_route_reason},
    {"pooler_replica_refusals_total", COUNTER,
     "Reads a replica refused (25006: a write; 0A000: what a standby cannot do, such as an "
     "unlogged table), rerun on the primary.",
     OF_WORKER, .series = {{NULL, WORKER(replica_refusals, K_U64)}}},
    /* session state */
    {"pooler_pinned_clients_total", COUNTER,
     "Clients that kept a server connection for session state, by reason.", COMPUTED,
     .series = {{NULL, METRIC(pinned)}}, write_by_pin_reason},
    {"pooler_pin_refusals_total", COUNTER,
     "Statements refused because they would pin (pin_action = error), by reason.", COMPUTED,
     .series = {{NULL, METRIC(pin_refused)}}, write_by_pin_reason},
    {"pooler_servers_restored_total", COUNTER,
     "Server connections whose settings were restored (RESET ALL) before reuse, because a DO "
     "block, CALL or function may have changed them unseen.",
     OF_WORKER, .series = {{NULL, METRIC(servers_restored)}}},
    {"pooler_login_settings_restored_total", COUNTER,
     "Client RESET, RESET ALL or DISCARD ALL followed by the client's login settings.", OF_WORKER,
     .series = {{NULL, METRIC(login_restores)}}},
    {"pooler_settings_carried_total", COUNTER,
     "Session SETs the pooler carries to every server the client gets, instead of pinning "
     "the client to one.",
     OF_WORKER, .series = {{NULL, METRIC(settings_carried)}}},
    {"pooler_replica_connect_fallbacks_total", COUNTER,
     "Reads that waited on a replica that could not be reached and ran on the primary.", OF_WORKER,
     .series = {{NULL, METRIC(replica_fallbacks)}}},
    {"pooler_unnamed_statement_replays_total", COUNTER,
     "Unnamed statements prepared again on the server that runs their Bind or Describe.", OF_WORKER,
     .series = {{NULL, METRIC(unnamed_replays)}}},
    {"pooler_statement_mode_refusals_total", COUNTER,
     "Transaction blocks refused in statement pooling mode.", OF_WORKER,
     .series = {{NULL, METRIC(statement_mode_refused)}}},
    {"pooler_prepared_statements_total", COUNTER,
     "Protocol-level prepared statements: prepared on a server, shared by a client Parse, "
     "closed to bound a server's cache, or prepared anew and retried after its result type "
     "changed.",
     OF_WORKER,
     .series = {{"event=\"prepared\"", METRIC(prepared_parses)},
                {"event=\"shared\"", METRIC(prepared_shared)},
                {"event=\"evicted\"", METRIC(prepared_evictions)},
                {"event=\"retried\"", METRIC(prepared_retries)}}},
    /* logins, reloads, the verdict cache */
    {"pooler_clients_rejected_total", COUNTER, "Clients turned away, by reason.", COMPUTED,
     .series = {{NULL, METRIC(rejected)}}, write_by_reject_reason},
    {"pooler_server_login_failures_total", COUNTER, "Failed server logins.", OF_WORKER,
     .series = {{NULL, METRIC(server_login_failures)}}},
    {"pooler_config_reloads_total", COUNTER, "Config reloads by result.", OF_WORKER,
     .series = {{"result=\"ok\"", METRIC(config_reloads_ok)},
                {"result=\"failed\"", METRIC(config_reloads_failed)}}},
    {"pooler_classify_cache_total", COUNTER, "Routing verdict cache lookups.", OF_CLASSIFY,
     .series = {{"result=\"hit\"", CLASSIFY(hits)},
                {"result=\"miss\"", CLASSIFY(misses)},
                {"result=\"uncacheable\"", CLASSIFY(uncacheable)}}},
    {"pooler_client_wait_seconds", HISTOGRAM, "Time clients waited for a server.", OF_WORKER,
     .series = {{NULL, WORKER(metrics.client_wait, K_HISTOGRAM)}}},
    {"pooler_transaction_duration_seconds", HISTOGRAM,
     "Time a client held a server (one transaction, or one session).", OF_WORKER,
     .series = {{NULL, WORKER(metrics.transaction_time, K_HISTOGRAM)}}},
    /* budgets, reserves, recycling, session time limits and rate limits */
    {"pooler_node_connection_budget", GAUGE,
     "Server connections the pools may open to the node in all (its pool_size, capped by the "
     "server's max_connections).",
     PER_NODE, .series = {{NULL, NODE(budget, K_INT)}}},
    {"pooler_node_server_connections", GAUGE,
     "Server connections open or opening to the node, over all pools.", PER_NODE,
     .series = {{NULL, NODE(n_servers, K_INT)}}},
    {"pooler_reserve_connections_opened_total", COUNTER,
     "Reserve connections opened for pools whose clients waited reserve_pool_timeout.", OF_WORKER,
     .series = {{NULL, METRIC(reserve_used)}}},
    {"pooler_servers_evicted_total", COUNTER,
     "Server connections closed to give room to another pool under the same cap.", OF_WORKER,
     .series = {{NULL, METRIC(servers_evicted)}}},
    {"pooler_servers_moved_total", COUNTER,
     "Server connections handed from one worker to another, whose client had waited longer.",
     OF_WORKER, .series = {{NULL, METRIC(servers_moved_in)}}},
    {"pooler_servers_closed_total", COUNTER,
     "Server connections closed by a time limit, by reason.", OF_WORKER,
     .series = {{"reason=\"server_idle_timeout\"", METRIC(servers_idle_closed)},
                {"reason=\"server_lifetime\"", METRIC(servers_recycled)}}},
    {"pooler_clients_timed_out_total", COUNTER,
     "Clients closed by a session time limit, by reason.", OF_WORKER,
     .series = {{"reason=\"client_idle_timeout\"", METRIC(clients_idle_timeout)},
                {"reason=\"idle_transaction_timeout\"", METRIC(clients_idle_tx_timeout)}}},
    {"pooler_queries_cancelled_total", COUNTER, "Queries cancelled by query_timeout.", OF_WORKER,
     .series = {{NULL, METRIC(queries_timed_out)}}},
    {"pooler_cancel_forwarded_total", COUNTER,
     "Cancel requests whose key names another pooler of [peers], sent on to it.", OF_WORKER,
     .series = {{NULL, METRIC(cancels_forwarded)}}},
    {"pooler_clients_throttled_total", COUNTER,
     "Connections refused by a per-address rate limit, by limit.", OF_WORKER,
     .series = {{"reason=\"client_rate_limit\"", METRIC(clients_throttled)},
                {"reason=\"auth_failure_limit\"", METRIC(logins_throttled)}}},
};

/* ---- writing ------------------------------------------------------------------------ */

/* One series: name{labels} value, or a histogram's series. */
static void write_value(struct buf *b, const char *name, const char *labels, const void *p,
                        enum kind kind)
{
	char v[32];

	switch (kind) {
	case K_HISTOGRAM:
		histogram_series(b, name, labels, p);
		return;
	case K_U64:
		snprintf(v, sizeof(v), "%llu", (unsigned long long)*(const uint64_t *)p);
		break;
	case K_INT:
		snprintf(v, sizeof(v), "%d", *(const int *)p);
		break;
	case K_BOOL:
		snprintf(v, sizeof(v), "%d", *(const bool *)p ? 1 : 0);
		break;
	case K_MS:
		snprintf(v, sizeof(v), "%.3f", (double)*(const int64_t *)p / 1000.0);
		break;
	case K_DOUBLE:
		snprintf(v, sizeof(v), "%.15g", *(const double *)p);
		break;
	}
	if (labels[0])
		out(b, "%s{%s} %s\n", name, labels, v);
	else
		out(b, "%s %s\n", name, v);
}

/* The series of f for one object at base, whose scope gave it labels ("" for none). */
static void write_series(struct buf *b, const struct family *f, const char *labels,
                         const void *base)
{
	char all[320];

	for (int i = 0; i < MAX_SERIES && (i == 0 || f->series[i].labels != NULL); i++) {
		const struct series *s = &f->series[i];
		const char *own = s->labels ? s->labels : "";
		snprintf(all, sizeof(all), "%s%s%s", labels, labels[0] && own[0] ? "," : "", own);
		write_value(b, f->name, all, (const char *)base + s->at, s->kind);
	}
}

static void write_per_node(struct buf *b, const struct family *f, struct worker *w)
{
	char labels[200];

	for (int i = 0; i < w->n_nodes; i++) {
		const struct node *n = w->nodes[i];
		if (f->scope == PER_REPLICA && n->role != NODE_ROLE_REPLICA)
			continue;
		if (f->scope == PER_NODE_ROLE)
			snprintf(labels, sizeof(labels), "node=\"%s\",role=\"%s\"", n->name,
			         role_label(n));
		else
			snprintf(labels, sizeof(labels), "node=\"%s\"", n->name);
		write_series(b, f, labels, n);
	}
}

static void write_family(struct buf *b, const struct family *f, const struct scrape *s)
{
	char labels[256];

	out(b, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, f->type);
	switch (f->scope) {
	case OF_WORKER:
		write_series(b, f, "", s->w);
		break;
	case OF_CLIENTS:
		write_series(b, f, "", s->clients);
		break;
	case OF_CLASSIFY:
		write_series(b, f, "", s->classify);
		break;
	case OF_PROCESS:
		write_series(b, f, "", s->process);
		break;
	case PER_POOL:
		/* one series per key: the workers' pools of a (database, user, node) add up */
		for (const struct pool *p = pool_next(s->w, NULL); p; p = pool_next(s->w, p)) {
			if (!pool_leads_key(s->w, p))
				continue;
			struct pool sum = *p;
			for (const struct pool *q = pool_next(s->w, p); q; q = pool_next(s->w, q))
				if (pool_same_key(p, q))
					pool_add_counts(&sum, q);
			snprintf(labels, sizeof(labels), POOL_LABELS, POOL_VALUES(p));
			write_series(b, f, labels, &sum);
		}
		break;
	case PER_NODE:
	case PER_NODE_ROLE:
	case PER_REPLICA:
		write_per_node(b, f, s->w);
		break;
	case COMPUTED:
		f->write(b, f, s);
		break;
	}
}

/* Seconds since the epoch when the machine booted (/proc/stat btime), 0 if unknown. */
static double boot_time(void)
{
	FILE *f = fopen("/proc/stat", "r");
	char line[256];
	double btime = 0;

	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "btime %lf", &btime) == 1)
			break;
	if (f != NULL)
		fclose(f);
	return btime;
}

/* CPU time, start time and memory from /proc/self/stat (fields 14, 15, 22, 23, 24 of
 * proc(5), counted after the command name, which may hold spaces), descriptors from
 * /proc/self/fd. What cannot be read stays 0. */
static void process_read(struct process_stats *p)
{
	char text[1024], *after;
	unsigned long long utime, stime, start, vsize;
	long long rss;
	double tick = (double)sysconf(_SC_CLK_TCK), page = (double)sysconf(_SC_PAGESIZE);
	FILE *f = fopen("/proc/self/stat", "r");
	size_t n = f != NULL ? fread(text, 1, sizeof(text) - 1, f) : 0;
	struct rlimit rl;

	*p = (struct process_stats){0};
	if (f != NULL)
		fclose(f);
	text[n] = '\0';
	after = strrchr(text, ')');
	if (after != NULL && tick > 0 &&
	    sscanf(after + 2,
	           "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d "
	           "%*d %llu %llu %lld",
	           &utime, &stime, &start, &vsize, &rss) == 5) {
		p->cpu_seconds = (double)(utime + stime) / tick;
		p->start_time = boot_time() + (double)start / tick;
		p->virtual_bytes = (double)vsize;
		p->resident_bytes = (double)rss * page;
	}
	DIR *d = opendir("/proc/self/fd");
	if (d != NULL) {
		for (struct dirent *e; (e = readdir(d)) != NULL;)
			p->open_fds += e->d_name[0] != '.';
		p->open_fds -= 1; /* the directory's own */
		closedir(d);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		p->max_fds = rl.rlim_cur == RLIM_INFINITY ? -1 : (double)rl.rlim_cur;
}

/* The counters of every field of struct metrics but the window, added up: they are all
 * uint64_t but the two histograms and the window, checked below. */
#define U64_SPAN(from, to) (offsetof(struct metrics, to) - offsetof(struct metrics, from))
_Static_assert(offsetof(struct metrics, routed) ==
                   offsetof(struct metrics, client_bytes) + sizeof(struct conn_bytes),
               "struct metrics: routed follows client_bytes");
_Static_assert(U64_SPAN(routed, window) % sizeof(uint64_t) == 0, "struct metrics: uint64_t");

static void add_u64s(uint64_t *dst, const uint64_t *src, size_t bytes)
{
	for (size_t i = 0; i < bytes / sizeof(uint64_t); i++)
		dst[i] += src[i];
}

static void metrics_add(struct metrics *dst, const struct metrics *src)
{
	histogram_add(&dst->client_wait, &src->client_wait);
	histogram_add(&dst->transaction_time, &src->transaction_time);
	dst->client_bytes.in += src->client_bytes.in;
	dst->client_bytes.out += src->client_bytes.out;
	add_u64s(dst->routed, src->routed, U64_SPAN(routed, window));
	add_u64s(dst->pinned, src->pinned,
	         sizeof(struct metrics) - offsetof(struct metrics, pinned));
}

/* The team as one worker, for a scrape: worker 0's config, nodes and clusters, every
 * worker's counters. In a world section. */
static void sum_team(struct worker *w, struct worker *sum, struct classify_stats *cs)
{
	/* Cancel helper threads post to worker 0 even in a world section: its inbox is read
	 * under inbox_mu (the copy's inbox is never used) */
	pthread_mutex_lock(&w->inbox_mu);
	*sum = *w;
	pthread_mutex_unlock(&w->inbox_mu);
	*cs = *classify_stats(w->classifier);
	for (int i = 1; i < w->team->n; i++) {
		const struct worker *o = w->team->all[i];
		const struct classify_stats *os = classify_stats(o->classifier);
		metrics_add(&sum->metrics, &o->metrics);
		sum->replica_refusals += o->replica_refusals;
		sum->n_clients += o->n_clients;
		add_u64s((uint64_t *)cs, (const uint64_t *)os, sizeof(*cs));
	}
	for (int i = 0; i < w->n_nodes; i++)
		node_sum(w->nodes[i]);
	for (int i = 0; i < w->n_retired_nodes; i++)
		node_sum(w->retired_nodes[i]);
}

void metrics_render(struct worker *w, const struct client_counts *cc, struct buf *b)
{
	struct process_stats proc;
	struct worker sum;
	struct classify_stats cs;

	process_read(&proc);
	sum_team(w, &sum, &cs);
	const struct scrape s = {&sum, cc, &cs, &proc};

	for (size_t i = 0; i < ARRAY_LEN(families); i++)
		write_family(b, &families[i], &s);
}

/* ---- the computed families ---------------------------------------------------------- */

/* Each reason the router gives (router.h), with its target. */
static void write_by_route_reason(struct buf *b, const struct family *f, const struct scrape *s)
{
	for (int r = 0; r < ROUTE_REASON_COUNT; r++)
		if (router_reason_target(r) != NULL)
			out(b, "%s{target=\"%s\",reason=\"%s\"} %llu\n", f->name,
			    router_reason_target(r), router_reason_label(r),
			    (unsigned long long)s->w->metrics.routed[r]);
}

static void write_up(struct buf *b, const struct family *f, const struct scrape *s)
{
	(void)s;
	out(b, "%s 1\n", f->name);
}

static void write_build_info(struct buf *b, const struct family *f, const struct scrape *s)
{
	(void)s;
	out(b, "%s{version=\"%s\"} 1\n", f->name, POOLER_VERSION);
}

static void write_max_clients(struct buf *b, const struct family *f, const struct scrape *s)
{
	out(b, "%s %d\n", f->name, s->w->cfg->max_client_conn);
}

static void write_server_states(struct buf *b, const struct family *f, const struct scrape *s)
{
	for (const struct pool *p = pool_next(s->w, NULL); p; p = pool_next(s->w, p)) {
		int counts[SV_STATES], more[SV_STATES];
		if (!pool_leads_key(s->w, p))
			continue;
		count_servers(p, counts);
		for (const struct pool *q = pool_next(s->w, p); q; q = pool_next(s->w, q)) {
			if (!pool_same_key(p, q))
				continue;
			count_servers(q, more);
			for (int i = 0; i < SV_STATES; i++)
				counts[i] += more[i];
		}
		for (int i = 0; i < SV_STATES; i++)
			out(b, "%s{" POOL_LABELS ",state=\"%s\"} %d\n", f->name, POOL_VALUES(p),
			    sv_state_names[i], counts[i]);
	}
}

/* Queries of each node: the sum over the pools that connect to it. */
static void write_node_queries(struct buf *b, const struct family *f, const struct scrape *s)
{
	struct worker *w = s->w;

	for (int i = 0; i < w->n_nodes; i++) {
		uint64_t sum = 0;
		for (const struct pool *p = pool_next(w, NULL); p; p = pool_next(w, p))
			if (p->backend == w->nodes[i])
				sum += p->tally.queries;
		out(b, "%s{node=\"%s\",role=\"%s\"} %llu\n", f->name, w->nodes[i]->name,
		    role_label(w->nodes[i]), (unsigned long long)sum);
	}
}

/* One series per Patroni cluster, its value at series[0].at in struct cluster. */
static void write_clusters(struct buf *b, const struct family *f, const struct scrape *s)
{
	for (int i = 0; i < s->w->n_clusters; i++) {
		const char *c = (const char *)s->w->clusters[i];
		const void *v = c + f->series[0].at;
		unsigned long long value = f->series[0].kind == K_U64 ? *(const uint64_t *)v
		                           : f->series[0].kind == K_BOOL
		                               ? *(const bool *)v
		                               : (unsigned)*(const int *)v;
		out(b, "%s{cluster=\"%s\"} %llu\n", f->name, s->w->clusters[i]->name, value);
	}
}

_Static_assert(METRICS_PIN_REASONS == PIN_ROLE + 1, "METRICS_PIN_REASONS: enum pin_reason");

/* A uint64_t array of the worker indexed by enum pin_reason (0, none, left out). */
static void write_by_pin_reason(struct buf *b, const struct family *f, const struct scrape *s)
{
	const uint64_t *v = (const uint64_t *)((const char *)s->w + f->series[0].at);

	for (int r = 1; r < METRICS_PIN_REASONS; r++)
		out(b, "%s{reason=\"%s\"} %llu\n", f->name, classify_pin_name(r),
		    (unsigned long long)v[r]);
}

/* A uint64_t array of the worker indexed by enum reject_reason. */
static void write_by_reject_reason(struct buf *b, const struct family *f, const struct scrape *s)
{
	const uint64_t *v = (const uint64_t *)((const char *)s->w + f->series[0].at);

	for (int r = 0; r < REJECT_REASONS; r++)
		out(b, "%s{reason=\"%s\"} %llu\n", f->name, reject_names[r],
		    (unsigned long long)v[r]);
}

static void window_roll(struct stats_window *win, const struct stats_totals *now, double seconds)
{
	const struct stats_totals *prev = &win->prev;
	uint64_t xacts = now->xacts - prev->xacts;
	uint64_t queries = now->queries - prev->queries;

	win->avg.xacts = (uint64_t)((double)xacts / seconds);
	win->avg.queries = (uint64_t)((double)queries / seconds);
	win->avg.recv = (uint64_t)((double)(now->recv - prev->recv) / seconds);
	win->avg.sent = (uint64_t)((double)(now->sent - prev->sent) / seconds);
	win->avg.xact_us = xacts ? (now->xact_us - prev->xact_us) / xacts : 0;
	win->avg.wait_us = xacts ? (now->wait_us - prev->wait_us) / xacts : 0;
	win->avg.query_us = queries ? (now->query_us - prev->query_us) / queries : 0;
	win->prev = *now;
	win->rolled = true;
}

/* A pool's bytes are measured on the server side: what it received from clients is
 * what went out to its servers. */
static void pool_totals(const struct pool *p, struct stats_totals *t)
{
	*t = (struct stats_totals){
	    .xacts = p->xact_count,
	    .queries = p->tally.queries,
	    .recv = p->tally.bytes.out,
	    .sent = p->tally.bytes.in,
	    .xact_us = p->xact_us,
	    .query_us = p->tally.query_us,
	    .wait_us = p->wait_us,
	};
}

void metrics_period(struct worker *w, double seconds, char *line, size_t len)
{
	struct stats_totals all = {0};
	int servers = 0, clients = w->team->n_clients;

	for (int i = 0; i < w->team->n; i++) {
		all.recv += w->team->all[i]->metrics.client_bytes.in;
		all.sent += w->team->all[i]->metrics.client_bytes.out;
	}
	for (struct pool *p = pool_next(w, NULL); p; p = pool_next(w, p)) {
		struct stats_totals t;
		pool_totals(p, &t);
		window_roll(&p->window, &t, seconds);
		all.xacts += t.xacts;
		all.queries += t.queries;
		all.xact_us += t.xact_us;
		all.query_us += t.query_us;
		all.wait_us += t.wait_us;
		servers += p->n_servers;
	}
	window_roll(&w->metrics.window, &all, seconds);
	const struct stats_totals *a = &w->metrics.window.avg;
	snprintf(
	    line, len,
	    "event=stats period_s=%.1f xacts_per_s=%llu queries_per_s=%llu in_bytes_per_s=%llu "
	    "out_bytes_per_s=%llu avg_xact_us=%llu avg_query_us=%llu avg_wait_us=%llu "
	    "clients=%d servers=%d",
	    seconds, (unsigned long long)a->xacts, (unsigned long long)a->queries,
	    (unsigned long long)a->recv, (unsigned long long)a->sent,
	    (unsigned long long)a->xact_us, (unsigned long long)a->query_us,
	    (unsigned long long)a->wait_us, clients, servers);
}
