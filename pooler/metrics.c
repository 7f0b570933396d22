/* metrics: see include/metrics.h. Names carry their unit; labels are database, user,
 * node and role, as the operators' dashboards expect. */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "classify.h"
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

static void family(struct buf *b, const char *name, const char *type, const char *help)
{
	out(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
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

static void histogram(struct buf *b, const char *name, const char *help, const struct histogram *h)
{
	family(b, name, "histogram", help);
	histogram_series(b, name, "", h);
}

static const char *role_name(int role)
{
	return role == NODE_ROLE_PRIMARY   ? "primary"
	       : role == NODE_ROLE_REPLICA ? "replica"
	                                   : "unknown";
}

static const char *const reject_names[] = {
    [REJECT_MAX_CLIENT_CONN] = "max_client_conn",
    [REJECT_AUTHENTICATION] = "authentication",
    [REJECT_QUERY_WAIT_TIMEOUT] = "query_wait_timeout",
};
_Static_assert(ARRAY_LEN(reject_names) == REJECT_REASONS, "a reject reason has no label");

/* Server connection states as PgBouncer names them: login, idle, active, tested (a reset
 * query runs between clients). */
enum { SV_LOGIN, SV_IDLE, SV_ACTIVE, SV_TESTED, SV_STATES };
static const char *const sv_state_names[SV_STATES] = {"login", "idle", "active", "tested"};

static void count_servers(const struct pool *p, int counts[SV_STATES])
{
	const struct list *pos;

	counts[SV_LOGIN] = p->n_connecting;
	counts[SV_IDLE] = counts[SV_ACTIVE] = counts[SV_TESTED] = 0;
	for (pos = p->idle.next; pos != &p->idle; pos = pos->next)
		counts[SV_IDLE]++;
	for (pos = p->active.next; pos != &p->active; pos = pos->next) {
		const struct server *s = container_of(pos, const struct server, node);
		counts[s->state == SERVER_RESET ? SV_TESTED : SV_ACTIVE]++;
	}
}

#define POOL_LABELS "database=\"%s\",user=\"%s\",node=\"%s\""
#define POOL_VALUES(p) (p)->db_name, (p)->user, (p)->backend->name

/* One line per pool of a gauge or counter: the value is read by get. */
static void per_pool(struct worker *w, struct buf *b, const char *name, const char *type,
                     const char *help, uint64_t (*get)(const struct pool *p))
{
	struct list *pos;

	family(b, name, type, help);
	for (pos = w->pools.next; pos != &w->pools; pos = pos->next) {
		const struct pool *p = container_of(pos, struct pool, node);
		out(b, "%s{" POOL_LABELS "} %llu\n", name, POOL_VALUES(p),
		    (unsigned long long)get(p));
	}
}

static uint64_t pool_size(const struct pool *p)
{
	return (uint64_t)p->size;
}
static uint64_t pool_servers(const struct pool *p)
{
	return (uint64_t)p->n_servers;
}
static uint64_t pool_waiting(const struct pool *p)
{
	return (uint64_t)p->n_waiting;
}
static uint64_t pool_bytes_in(const struct pool *p)
{
	return p->tally.bytes.in;
}
static uint64_t pool_bytes_out(const struct pool *p)
{
	return p->tally.bytes.out;
}
static uint64_t pool_xacts(const struct pool *p)
{
	return p->xact_count;
}
static uint64_t pool_queries(const struct pool *p)
{
	return p->tally.queries;
}

static void pools(struct worker *w, struct buf *b)
{
	struct list *pos;

	family(b, "pooler_server_connections", "gauge",
	       "Server connections by state (login, idle, active, tested: running a reset).");
	for (pos = w->pools.next; pos != &w->pools; pos = pos->next) {
		const struct pool *p = container_of(pos, struct pool, node);
		int counts[SV_STATES];
		count_servers(p, counts);
		for (int i = 0; i < SV_STATES; i++)
			out(b, "pooler_server_connections{" POOL_LABELS ",state=\"%s\"} %d\n",
			    POOL_VALUES(p), sv_state_names[i], counts[i]);
	}
	per_pool(w, b, "pooler_pool_size", "gauge",
	         "Most server connections a pool may open (pool_size, auto computed).", pool_size);
	per_pool(w, b, "pooler_pool_servers", "gauge", "Server connections a pool has open now.",
	         pool_servers);
	per_pool(w, b, "pooler_clients_waiting", "gauge", "Clients queued for a server, by pool.",
	         pool_waiting);
	per_pool(w, b, "pooler_pool_transactions_total", "counter",
	         "Server hand-outs of the pool (transactions, or sessions in session mode).",
	         pool_xacts);
	per_pool(w, b, "pooler_pool_queries_total", "counter",
	         "Requests (Query, or extended batches up to Sync) the pool's servers answered.",
	         pool_queries);
	per_pool(w, b, "pooler_server_received_bytes_total", "counter",
	         "Bytes read from the pool's server connections.", pool_bytes_in);
	per_pool(w, b, "pooler_server_sent_bytes_total", "counter",
	         "Bytes written to the pool's server connections.", pool_bytes_out);
}

/* Queries of one node: the sum over the pools that connect to it. */
static uint64_t node_queries(struct worker *w, const struct node *n)
{
	uint64_t sum = 0;
	for (struct list *pos = w->pools.next; pos != &w->pools; pos = pos->next) {
		const struct pool *p = container_of(pos, struct pool, node);
		if (p->backend == n)
			sum += p->tally.queries;
	}
	return sum;
}

static void node_traffic(struct worker *w, struct buf *b)
{
	char labels[200];

	family(b, "pooler_node_queries_total", "counter",
	       "Requests answered by the node (Query, or extended batches up to Sync).");
	for (int i = 0; i < w->n_nodes; i++)
		out(b, "pooler_node_queries_total{node=\"%s\",role=\"%s\"} %llu\n",
		    w->nodes[i]->name, role_name(w->nodes[i]->role),
		    (unsigned long long)node_queries(w, w->nodes[i]));
	family(b, "pooler_query_duration_seconds", "histogram",
	       "From relaying a request to its ReadyForQuery, by node.");
	for (int i = 0; i < w->n_nodes; i++) {
		snprintf(labels, sizeof(labels), "node=\"%s\",role=\"%s\"", w->nodes[i]->name,
		         role_name(w->nodes[i]->role));
		histogram_series(b, "pooler_query_duration_seconds", labels,
		                 &w->nodes[i]->query_time);
	}
	family(b, "pooler_server_connect_attempts_total", "counter",
	       "Server connections the pooler started to open.");
	for (int i = 0; i < w->n_nodes; i++)
		out(b, "pooler_server_connect_attempts_total{node=\"%s\"} %llu\n",
		    w->nodes[i]->name, (unsigned long long)w->nodes[i]->connect_attempts);
	family(b, "pooler_server_connect_failures_total", "counter",
	       "Server connections that failed to connect or log in.");
	for (int i = 0; i < w->n_nodes; i++)
		out(b, "pooler_server_connect_failures_total{node=\"%s\"} %llu\n",
		    w->nodes[i]->name, (unsigned long long)w->nodes[i]->connect_failures);
	family(b, "pooler_server_connect_duration_seconds", "histogram",
	       "From starting a server connection to its login being done.");
	for (int i = 0; i < w->n_nodes; i++) {
		snprintf(labels, sizeof(labels), "node=\"%s\"", w->nodes[i]->name);
		histogram_series(b, "pooler_server_connect_duration_seconds", labels,
		                 &w->nodes[i]->connect_time);
	}
}

static void nodes(struct worker *w, struct buf *b)
{
	family(b, "pooler_node_up", "gauge", "1 when the node's last health probe answered.");
	for (int i = 0; i < w->n_nodes; i++)
		out(b, "pooler_node_up{node=\"%s\",role=\"%s\"} %d\n", w->nodes[i]->name,
		    role_name(w->nodes[i]->role), w->nodes[i]->up ? 1 : 0);
	family(b, "pooler_node_usable", "gauge",
	       "1 when the node takes its role's work now (replicas: healthy and within lag).");
	for (int i = 0; i < w->n_nodes; i++)
		out(b, "pooler_node_usable{node=\"%s\",role=\"%s\"} %d\n", w->nodes[i]->name,
		    role_name(w->nodes[i]->role), w->nodes[i]->usable ? 1 : 0);
	family(b, "pooler_replica_lag_bytes", "gauge",
	       "WAL bytes a replica is behind the primary.");
	for (int i = 0; i < w->n_nodes; i++)
		if (w->nodes[i]->role == NODE_ROLE_REPLICA)
			out(b, "pooler_replica_lag_bytes{node=\"%s\"} %llu\n", w->nodes[i]->name,
			    (unsigned long long)w->nodes[i]->lag_bytes);
	family(b, "pooler_replica_lag_seconds", "gauge", "Replay delay of a replica.");
	for (int i = 0; i < w->n_nodes; i++)
		if (w->nodes[i]->role == NODE_ROLE_REPLICA)
			out(b, "pooler_replica_lag_seconds{node=\"%s\"} %.3f\n", w->nodes[i]->name,
			    (double)w->nodes[i]->lag_ms / 1000.0);
	family(b, "pooler_node_transactions_in_flight", "gauge",
	       "Transactions running on the node now.");
	for (int i = 0; i < w->n_nodes; i++)
		out(b, "pooler_node_transactions_in_flight{node=\"%s\",role=\"%s\"} %d\n",
		    w->nodes[i]->name, role_name(w->nodes[i]->role), w->nodes[i]->inflight);
	family(b, "pooler_node_transactions_total", "counter", "Transactions run on the node.");
	for (int i = 0; i < w->n_nodes; i++)
		out(b, "pooler_node_transactions_total{node=\"%s\",role=\"%s\"} %llu\n",
		    w->nodes[i]->name, role_name(w->nodes[i]->role),
		    (unsigned long long)w->nodes[i]->transactions);
	family(b, "pooler_breaker_state", "gauge",
	       "Circuit breaker of the node: 0 closed, 1 open, 2 half-open.");
	for (int i = 0; i < w->n_nodes; i++)
		out(b, "pooler_breaker_state{node=\"%s\"} %d\n", w->nodes[i]->name,
		    (int)w->nodes[i]->breaker.state);
	family(b, "pooler_breaker_transitions_total", "counter", "Circuit breaker state changes.");
	for (int i = 0; i < w->n_nodes; i++)
		out(b, "pooler_breaker_transitions_total{node=\"%s\"} %llu\n", w->nodes[i]->name,
		    (unsigned long long)w->nodes[i]->breaker.transitions);
	family(b, "pooler_health_probes_total", "counter", "Health probes by result.");
	for (int i = 0; i < w->n_nodes; i++) {
		out(b, "pooler_health_probes_total{node=\"%s\",result=\"ok\"} %llu\n",
		    w->nodes[i]->name, (unsigned long long)w->nodes[i]->probes_ok);
		out(b, "pooler_health_probes_total{node=\"%s\",result=\"failed\"} %llu\n",
		    w->nodes[i]->name, (unsigned long long)w->nodes[i]->probes_failed);
	}
}

/* Budgets, reserves, recycling, session time limits and rate limits. */
static void limits(struct worker *w, struct buf *b)
{
	const struct metrics *m = &w->metrics;

	family(b, "pooler_node_connection_budget", "gauge",
	       "Server connections the pools may open to the node in all (its pool_size, capped "
	       "by the server's max_connections).");
	for (int i = 0; i < w->n_nodes; i++)
		out(b, "pooler_node_connection_budget{node=\"%s\"} %d\n", w->nodes[i]->name,
		    w->nodes[i]->budget);
	family(b, "pooler_node_server_connections", "gauge",
	       "Server connections open or opening to the node, over all pools.");
	for (int i = 0; i < w->n_nodes; i++)
		out(b, "pooler_node_server_connections{node=\"%s\"} %d\n", w->nodes[i]->name,
		    w->nodes[i]->n_servers);
	family(b, "pooler_reserve_connections_opened_total", "counter",
	       "Reserve connections opened for pools whose clients waited reserve_pool_timeout.");
	out(b, "pooler_reserve_connections_opened_total %llu\n",
	    (unsigned long long)m->reserve_used);
	family(b, "pooler_servers_evicted_total", "counter",
	       "Server connections closed to give room to another pool under the same cap.");
	out(b, "pooler_servers_evicted_total %llu\n", (unsigned long long)m->servers_evicted);
	family(b, "pooler_servers_closed_total", "counter",
	       "Server connections closed by a time limit, by reason.");
	out(b, "pooler_servers_closed_total{reason=\"server_idle_timeout\"} %llu\n",
	    (unsigned long long)m->servers_idle_closed);
	out(b, "pooler_servers_closed_total{reason=\"server_lifetime\"} %llu\n",
	    (unsigned long long)m->servers_recycled);
	family(b, "pooler_clients_timed_out_total", "counter",
	       "Clients closed by a session time limit, by reason.");
	out(b, "pooler_clients_timed_out_total{reason=\"client_idle_timeout\"} %llu\n",
	    (unsigned long long)m->clients_idle_timeout);
	out(b, "pooler_clients_timed_out_total{reason=\"idle_transaction_timeout\"} %llu\n",
	    (unsigned long long)m->clients_idle_tx_timeout);
	family(b, "pooler_queries_cancelled_total", "counter",
	       "Queries cancelled by query_timeout.");
	out(b, "pooler_queries_cancelled_total %llu\n", (unsigned long long)m->queries_timed_out);
	family(b, "pooler_clients_throttled_total", "counter",
	       "Connections refused by a per-address rate limit, by limit.");
	out(b, "pooler_clients_throttled_total{reason=\"client_rate_limit\"} %llu\n",
	    (unsigned long long)m->clients_throttled);
	out(b, "pooler_clients_throttled_total{reason=\"auth_failure_limit\"} %llu\n",
	    (unsigned long long)m->logins_throttled);
}

static void pinning(struct buf *b, const struct metrics *m)
{
	family(b, "pooler_pinned_clients_total", "counter",
	       "Clients that kept a server connection for session state, by reason.");
	for (int r = 1; r < METRICS_PIN_REASONS; r++)
		out(b, "pooler_pinned_clients_total{reason=\"%s\"} %llu\n", classify_pin_name(r),
		    (unsigned long long)m->pinned[r]);
	family(b, "pooler_pin_refusals_total", "counter",
	       "Statements refused because they would pin (pin_action = error), by reason.");
	for (int r = 1; r < METRICS_PIN_REASONS; r++)
		out(b, "pooler_pin_refusals_total{reason=\"%s\"} %llu\n", classify_pin_name(r),
		    (unsigned long long)m->pin_refused[r]);
	family(b, "pooler_servers_restored_total", "counter",
	       "Server connections whose settings were restored (RESET ALL) before reuse, because "
	       "a DO block, CALL or function may have changed them unseen.");
	out(b, "pooler_servers_restored_total %llu\n", (unsigned long long)m->servers_restored);
	family(b, "pooler_login_settings_restored_total", "counter",
	       "Client RESET, RESET ALL or DISCARD ALL followed by the client's login settings.");
	out(b, "pooler_login_settings_restored_total %llu\n",
	    (unsigned long long)m->login_restores);
	family(b, "pooler_replica_connect_fallbacks_total", "counter",
	       "Reads that waited on a replica that could not be reached and ran on the primary.");
	out(b, "pooler_replica_connect_fallbacks_total %llu\n",
	    (unsigned long long)m->replica_fallbacks);
	family(b, "pooler_unnamed_statement_replays_total", "counter",
	       "Unnamed statements prepared again on the server that runs their Bind or Describe.");
	out(b, "pooler_unnamed_statement_replays_total %llu\n",
	    (unsigned long long)m->unnamed_replays);
	family(b, "pooler_statement_mode_refusals_total", "counter",
	       "Transaction blocks refused in statement pooling mode.");
	out(b, "pooler_statement_mode_refusals_total %llu\n",
	    (unsigned long long)m->statement_mode_refused);
}

static void prepared(struct buf *b, const struct metrics *m)
{
	family(b, "pooler_prepared_statements_total", "counter",
	       "Protocol-level prepared statements: prepared on a server, shared by a client "
	       "Parse, closed to bound a server's cache, or prepared anew and retried after "
	       "its result type changed.");
	out(b, "pooler_prepared_statements_total{event=\"prepared\"} %llu\n",
	    (unsigned long long)m->prepared_parses);
	out(b, "pooler_prepared_statements_total{event=\"shared\"} %llu\n",
	    (unsigned long long)m->prepared_shared);
	out(b, "pooler_prepared_statements_total{event=\"evicted\"} %llu\n",
	    (unsigned long long)m->prepared_evictions);
	out(b, "pooler_prepared_statements_total{event=\"retried\"} %llu\n",
	    (unsigned long long)m->prepared_retries);
}

void metrics_render(struct worker *w, const struct client_counts *cc, struct buf *b)
{
	const struct metrics *m = &w->metrics;
	const struct classify_stats *cs = classify_stats(w->classifier);

	family(b, "pooler_up", "gauge", "1 while the pooler serves.");
	out(b, "pooler_up 1\n");
	family(b, "pooler_clients", "gauge", "Client connections by state.");
	out(b, "pooler_clients{state=\"login\"} %d\n", cc->login);
	out(b, "pooler_clients{state=\"idle\"} %d\n", cc->idle);
	out(b, "pooler_clients{state=\"waiting\"} %d\n", cc->waiting);
	out(b, "pooler_clients{state=\"active\"} %d\n", cc->active);
	family(b, "pooler_client_received_bytes_total", "counter", "Bytes read from clients.");
	out(b, "pooler_client_received_bytes_total %llu\n", (unsigned long long)m->client_bytes.in);
	family(b, "pooler_client_sent_bytes_total", "counter", "Bytes written to clients.");
	out(b, "pooler_client_sent_bytes_total %llu\n", (unsigned long long)m->client_bytes.out);
	pools(w, b);
	nodes(w, b);
	node_traffic(w, b);
	family(b, "pooler_routing_decisions_total", "counter",
	       "Where transactions were sent, and why.");
	for (int r = 0; r < ROUTE_REASON_COUNT; r++)
		if (router_reason_target(r) != NULL)
			out(b, "pooler_routing_decisions_total{target=\"%s\",reason=\"%s\"} %llu\n",
			    router_reason_target(r), router_reason_label(r),
			    (unsigned long long)m->routed[r]);
	family(b, "pooler_replica_refusals_total", "counter",
	       "Reads a replica refused (25006: a write; 0A000: what a standby cannot do, such as "
	       "an unlogged table), rerun on the primary.");
	out(b, "pooler_replica_refusals_total %llu\n", (unsigned long long)w->replica_refusals);
	pinning(b, m);
	prepared(b, m);
	family(b, "pooler_clients_rejected_total", "counter", "Clients turned away, by reason.");
	for (int i = 0; i < REJECT_REASONS; i++)
		out(b, "pooler_clients_rejected_total{reason=\"%s\"} %llu\n", reject_names[i],
		    (unsigned long long)m->rejected[i]);
	family(b, "pooler_server_login_failures_total", "counter", "Failed server logins.");
	out(b, "pooler_server_login_failures_total %llu\n",
	    (unsigned long long)m->server_login_failures);
	family(b, "pooler_config_reloads_total", "counter", "Config reloads by result.");
	out(b, "pooler_config_reloads_total{result=\"ok\"} %llu\n",
	    (unsigned long long)m->config_reloads_ok);
	out(b, "pooler_config_reloads_total{result=\"failed\"} %llu\n",
	    (unsigned long long)m->config_reloads_failed);
	family(b, "pooler_classify_cache_total", "counter", "Routing verdict cache lookups.");
	out(b, "pooler_classify_cache_total{result=\"hit\"} %llu\n", (unsigned long long)cs->hits);
	out(b, "pooler_classify_cache_total{result=\"miss\"} %llu\n",
	    (unsigned long long)cs->misses);
	out(b, "pooler_classify_cache_total{result=\"uncacheable\"} %llu\n",
	    (unsigned long long)cs->uncacheable);
	histogram(b, "pooler_client_wait_seconds", "Time clients waited for a server.",
	          &m->client_wait);
	histogram(b, "pooler_transaction_duration_seconds",
	          "Time a client held a server (one transaction, or one session).",
	          &m->transaction_time);
	limits(w, b);
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
	struct stats_totals all = {.recv = w->metrics.client_bytes.in,
	                           .sent = w->metrics.client_bytes.out};
	struct list *pos;
	int servers = 0;

	for (pos = w->pools.next; pos != &w->pools; pos = pos->next) {
		struct pool *p = container_of(pos, struct pool, node);
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
	    (unsigned long long)a->wait_us, w->n_clients, servers);
}
