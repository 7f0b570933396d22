/* metrics: see include/metrics.h. Names carry their unit; labels are database, user,
 * node and role, as the operators' dashboards expect. */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "classify.h"
#include "node.h"
#include "pool.h"
#include "worker.h"

/* Upper bounds in seconds: sub-millisecond pooling up to slow transactions. */
static const double bounds[METRICS_BUCKETS] = {0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                               0.025,  0.05,   0.1,   0.5,    1,     5};

void metrics_observe(struct histogram *h, uint64_t micros)
{
	double s = (double)micros / 1e6;
	int i = 0;
	while (i < METRICS_BUCKETS && s > bounds[i])
		i++;
	h->counts[i]++;
	h->count++;
	h->sum += s;
}

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

static void histogram(struct buf *b, const char *name, const char *help, const struct histogram *h)
{
	uint64_t cum = 0;
	family(b, name, "histogram", help);
	for (int i = 0; i < METRICS_BUCKETS; i++) {
		cum += h->counts[i];
		out(b, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i], (unsigned long long)cum);
	}
	cum += h->counts[METRICS_BUCKETS];
	out(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
	out(b, "%s_sum %.6f\n%s_count %llu\n", name, h->sum, name, (unsigned long long)h->count);
}

static const char *role_name(int role)
{
	return role == NODE_ROLE_PRIMARY   ? "primary"
	       : role == NODE_ROLE_REPLICA ? "replica"
	                                   : "unknown";
}

static void pools(struct worker *w, struct buf *b)
{
	struct list *pos, *tmp, *sp, *st;
	static const char *const states[] = {"connecting", "idle", "active"};

	family(b, "pooler_server_connections", "gauge", "Server connections by state.");
	list_for_each_safe (pos, tmp, &w->pools) {
		struct pool *p = container_of(pos, struct pool, node);
		struct list *lists[] = {&p->connecting, &p->idle, &p->active};
		for (int i = 0; i < 3; i++) {
			int n = 0;
			list_for_each_safe (sp, st, lists[i])
				n++;
			out(b,
			    "pooler_server_connections{database=\"%s\",user=\"%s\",node=\"%s\","
			    "state=\"%s\"} %d\n",
			    p->db_name, p->user, p->backend->name, states[i], n);
		}
	}
	family(b, "pooler_pool_size", "gauge", "Most server connections a pool may open.");
	list_for_each_safe (pos, tmp, &w->pools) {
		struct pool *p = container_of(pos, struct pool, node);
		out(b, "pooler_pool_size{database=\"%s\",user=\"%s\",node=\"%s\"} %d\n", p->db_name,
		    p->user, p->backend->name, p->size);
	}
	family(b, "pooler_clients_waiting", "gauge", "Clients queued for a server, by pool.");
	list_for_each_safe (pos, tmp, &w->pools) {
		struct pool *p = container_of(pos, struct pool, node);
		out(b, "pooler_clients_waiting{database=\"%s\",user=\"%s\",node=\"%s\"} %d\n",
		    p->db_name, p->user, p->backend->name, p->n_waiting);
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
	pools(w, b);
	nodes(w, b);
	family(b, "pooler_routing_decisions_total", "counter",
	       "Where transactions were sent, and why.");
	out(b, "pooler_routing_decisions_total{target=\"replica\",reason=\"read\"} %llu\n",
	    (unsigned long long)m->routed_replica);
	out(b, "pooler_routing_decisions_total{target=\"primary\",reason=\"write\"} %llu\n",
	    (unsigned long long)m->routed_primary_write);
	out(b, "pooler_routing_decisions_total{target=\"primary\",reason=\"read\"} %llu\n",
	    (unsigned long long)m->routed_primary_read);
	out(b, "pooler_routing_decisions_total{target=\"none\",reason=\"no_replica\"} %llu\n",
	    (unsigned long long)m->routed_refused);
	family(b, "pooler_replica_refusals_total", "counter",
	       "Reads a replica refused as writes (25006), rerun on the primary.");
	out(b, "pooler_replica_refusals_total %llu\n", (unsigned long long)w->replica_refusals);
	pinning(b, m);
	prepared(b, m);
	family(b, "pooler_clients_rejected_total", "counter", "Clients turned away, by reason.");
	out(b, "pooler_clients_rejected_total{reason=\"max_client_conn\"} %llu\n",
	    (unsigned long long)m->clients_rejected);
	out(b, "pooler_clients_rejected_total{reason=\"authentication\"} %llu\n",
	    (unsigned long long)m->login_failures);
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
}
