/* node: see include/node.h. */
#include "node.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "worker.h"

static const char probe_sql[] =
    "select pg_is_in_recovery(),"
    " case when pg_is_in_recovery() then pg_last_wal_replay_lsn() else pg_current_wal_lsn() end,"
    " (case when not pg_is_in_recovery() or pg_last_wal_receive_lsn() is null"
    "   or pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() then 0"
    "  else coalesce(extract(epoch from now() - pg_last_xact_replay_timestamp()) * 1000, 0)"
    "  end)::bigint,"
    " current_setting('max_connections')::int"
    "  - current_setting('superuser_reserved_connections')::int";
/* Every function name; whether an overload is volatile; whether an overload's body (not
 * internal or C: languages 12 and 13) changes settings, by the rule classify.c applies to
 * DO blocks. A SET clause of the definition (proconfig) is left out on purpose: PostgreSQL
 * restores those settings when the function returns. Then, marked by the fourth column,
 * the relations a standby cannot read: unlogged tables, and the views over them (through
 * their rewrite rules' dependencies, views of views included). */
static const char catalog_sql[] =
    ";select proname, bool_or(provolatile = 'v'),"
    " bool_or(prolang not in (12, 13) and (prosrc ~* 'set_config'"
    "  or prosrc ~* '(^|[;'']|\\m(begin|then|else|loop)\\M)\\s*(re)?set\\M')),"
    " false from pg_proc group by proname"
    " union all (with recursive u(oid) as ("
    "  select oid from pg_class where relpersistence = 'u' and relkind in ('r', 'p', 'm')"
    "  union select r.ev_class from pg_rewrite r"
    "   join pg_depend d on d.classid = 'pg_rewrite'::regclass and d.objid = r.oid"
    "   join u on d.refclassid = 'pg_class'::regclass and d.refobjid = u.oid)"
    " select distinct relname::text, false, false, true from pg_class join u using (oid))";

uint64_t node_parse_lsn(const char *s)
{
	unsigned long hi, lo;
	char extra;

	if (s == NULL || sscanf(s, "%lx/%lx%c", &hi, &lo, &extra) != 2)
		return 0;
	return (uint64_t)hi << 32 | (lo & 0xffffffffu);
}

static void free_catalog(struct node *n)
{
	for (size_t i = 0; i < n->n_cat_names; i++)
		free(n->cat_names[i]);
	for (size_t i = 0; i < n->n_cat_volatile; i++)
		free(n->cat_volatile[i]);
	for (size_t i = 0; i < n->n_cat_setters; i++)
		free(n->cat_setters[i]);
	for (size_t i = 0; i < n->n_cat_unlogged; i++)
		free(n->cat_unlogged[i]);
	free(n->cat_unlogged);
	n->cat_unlogged = NULL;
	n->n_cat_unlogged = 0;
	free(n->cat_names);
	free(n->cat_volatile);
	free(n->cat_setters);
	n->cat_names = n->cat_volatile = n->cat_setters = NULL;
	n->n_cat_names = n->n_cat_volatile = n->n_cat_setters = 0;
}

/* The probe failed (its connection is closed): log it once per new reason. */
/* Probes count for the node's circuit like connects do. A probe that answers is a trial
 * that worked: the node takes connections again at once, without waiting out the
 * recovery time. */
static void probe_counts(struct node *n)
{
	node_lock(n);
	if (!n->up) {
		if (breaker_failure(&n->breaker, util_now_us()))
			log_warning("node %s: circuit open after %u failures in a row", n->name,
			            n->breaker.failures);
	} else {
		if (n->breaker.state != BREAKER_CLOSED)
			log_info("node %s: circuit closed", n->name);
		breaker_success(&n->breaker);
		backoff_reset(&n->backoff);
	}
	node_unlock(n);
}

static void probe_failed(struct node *n, const char *why)
{
	char msg[sizeof(n->last_error)];

	pgconn_trim(msg, sizeof(msg), why);
	if (n->up || !n->probed || strcmp(msg, n->last_error) != 0)
		log_warning("node %s (%s:%d) probe failed: %s", n->name, n->host, n->port, msg);
	snprintf(n->last_error, sizeof(n->last_error), "%s", msg);
	pgconn_close(&n->pq);
	n->probed = true;
	n->up = false;
	n->usable = false;
	n->good_streak = 0;
	n->probes_failed++;
	probe_counts(n);
	n->on_probe(n, n->cb_arg);
}

static void read_catalog(struct node *n, PGresult *r)
{
	int rows = PQntuples(r);

	free_catalog(n);
	n->cat_names = util_calloc((size_t)rows + 1, sizeof(char *));
	n->cat_volatile = util_calloc((size_t)rows + 1, sizeof(char *));
	n->cat_setters = util_calloc((size_t)rows + 1, sizeof(char *));
	n->cat_unlogged = util_calloc((size_t)rows + 1, sizeof(char *));
	for (int i = 0; i < rows; i++) {
		const char *name = PQgetvalue(r, i, 0);
		if (PQgetvalue(r, i, 3)[0] == 't') {
			n->cat_unlogged[n->n_cat_unlogged++] = util_strdup(name);
			continue;
		}
		n->cat_names[n->n_cat_names++] = util_strdup(name);
		if (PQgetvalue(r, i, 1)[0] == 't')
			n->cat_volatile[n->n_cat_volatile++] = util_strdup(name);
		if (PQgetvalue(r, i, 2)[0] == 't')
			n->cat_setters[n->n_cat_setters++] = util_strdup(name);
	}
}

void node_set_server_limit(struct node *n, int limit)
{
	int budget = n->conf_budget;

	if (limit > 0 && limit < budget)
		budget = limit;
	if (limit > 0 && limit < n->conf_budget && limit != n->server_limit)
		log_warning("node %s: pool_size %d is more than the server allows "
		            "(max_connections - superuser_reserved_connections = %d); the pooler "
		            "opens at most %d",
		            n->name, n->conf_budget, limit, budget);
	n->server_limit = limit;
	n->budget = budget;
}

static void probe_answered(struct node *n, PGresult *r)
{
	bool recovery = PQgetvalue(r, 0, 0)[0] == 't';
	int role = recovery ? NODE_ROLE_REPLICA : NODE_ROLE_PRIMARY;

	if (n->probed && n->up && role != n->role)
		log_warning("node %s (%s:%d) is now a %s", n->name, n->host, n->port,
		            recovery ? "replica" : "primary");
	else if (!n->up)
		log_info("node %s (%s:%d) is up (%s)", n->name, n->host, n->port,
		         recovery ? "replica" : "primary");
	n->role = role;
	n->lsn = node_parse_lsn(PQgetvalue(r, 0, 1));
	n->lag_ms = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
	node_set_server_limit(n, atoi(PQgetvalue(r, 0, 3)));
	n->probed = true;
	n->up = true;
	n->last_error[0] = '\0';
	n->probe_done_us = util_now_us();
	n->lsn_as_of_us = n->probe_sent_us;
	n->probes_ok++;
}

/* One result of the probe query (the probe itself, then the catalog when asked), or NULL
 * when all are in: the probe succeeded only if every one did. */
static void probe_result(struct node *n, PGresult *r);

/* What a probe learns is what every worker's router reads: it lands in a world section. */
static void on_probe_result(struct pgconn *pc, PGresult *r)
{
	struct node *n = container_of(pc, struct node, pq);

	worker_world_enter(n->w);
	probe_result(n, r);
	worker_world_leave(n->w);
}

static void probe_result(struct node *n, PGresult *r)
{
	if (r == NULL) {
		if (!n->result_ok || n->result_index == 0) {
			probe_failed(n, n->result_error[0] ? n->result_error
			                                   : "probe query returned nothing");
			return;
		}
		probe_counts(n);
		n->on_probe(n, n->cb_arg);
		return;
	}
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		if (n->result_ok)
			snprintf(n->result_error, sizeof(n->result_error), "%s",
			         PQresultErrorMessage(r));
		n->result_ok = false;
	} else if (n->result_index == 0 && PQntuples(r) == 1 && PQnfields(r) == 4) {
		probe_answered(n, r);
	} else if (n->result_index == 1 && PQnfields(r) == 4) {
		read_catalog(n, r);
	}
	n->result_index++;
	PQclear(r);
}

static void send_probe(struct node *n)
{
	char sql[sizeof(probe_sql) + sizeof(catalog_sql)];
	bool catalog = n->want_catalog && n->role == NODE_ROLE_PRIMARY;

	snprintf(sql, sizeof(sql), "%s%s", probe_sql, catalog ? catalog_sql : "");
	if (catalog)
		n->want_catalog = false;
	n->result_index = 0;
	n->result_ok = true;
	n->result_error[0] = '\0';
	n->probe_sent_us = util_now_us();
	pgconn_query(&n->pq, sql, 0, NULL);
}

static void on_probe_connected(struct pgconn *pc)
{
	send_probe(container_of(pc, struct node, pq));
}

static void on_probe_failed(struct pgconn *pc, const char *why)
{
	struct node *n = container_of(pc, struct node, pq);

	worker_world_enter(n->w);
	probe_failed(n, why);
	worker_world_leave(n->w);
}

static const struct pgconn_ops probe_ops = {
    .connected = on_probe_connected,
    .result = on_probe_result,
    .failed = on_probe_failed,
};

/* Every health_interval: probe on the open connection, or open one; one deadline
 * covers the login and the query. */
static void on_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct node *n = t->data;
	(void)loop;
	(void)revents;

	if (pgconn_busy(&n->pq))
		return; /* the deadline watches the one in flight */
	if (n->pq.state == PGCONN_IDLE) {
		pgconn_deadline(&n->pq, n->probe.timeout_ms);
		send_probe(n);
		return;
	}
	struct pgconn_target target = {
	    .host = n->host,
	    .port = n->port,
	    .dbname = n->probe.dbname,
	    .user = n->probe.user,
	    .password = n->probe.password,
	    .application_name = "pooler health probe",
	    .tls = &n->tls,
	    .notice_label = n->name,
	    .timeout_why = "probe timed out",
	    .timeout_ms = n->probe.timeout_ms,
	};
	n->probe_sent_us = util_now_us();
	(void)pgconn_connect(&n->pq, &target); /* out of memory: reported as a failure */
}

/* Empty means unset: `sslkey =` in the ini must not hand libpq an empty file name. */
static char *strdup_nonempty(const char *s)
{
	return s != NULL && s[0] != '\0' ? util_strdup(s) : NULL;
}

struct node *node_new(const struct node_conf *nc, struct worker *w, int n_workers,
                      const struct node_probe_conf *probe, node_probe_cb cb, void *arg)
{
	struct node *n = util_calloc(1, sizeof(*n));
	struct ev_loop *loop = w->loop;

	n->name = util_strdup(nc->name);
	n->host = util_strdup(nc->host);
	n->port = nc->port;
	n->conf_role = nc->role;
	n->role = nc->role;
	n->weight = nc->weight;
	n->conf_budget = nc->pool_size;
	n->budget = nc->pool_size;
	n->tls.sslmode = util_strdup(config_tls_mode_name(nc->sslmode));
	n->tls.sslrootcert = strdup_nonempty(nc->sslrootcert);
	n->tls.sslcert = strdup_nonempty(nc->sslcert);
	n->tls.sslkey = strdup_nonempty(nc->sslkey);
	n->tls.sslpassword = strdup_nonempty(nc->sslpassword);
	n->loop = loop;
	n->w = w;
	pthread_mutex_init(&n->mu, NULL);
	n->locking = n_workers > 1;
	list_init(&n->shares);
	n->n_shards = n_workers;
	n->shards = util_aligned_calloc((size_t)n_workers, sizeof(*n->shards));
	n->probe = *probe;
	n->probe.dbname = util_strdup(probe->dbname);
	n->probe.user = util_strdup(probe->user);
	n->probe.password = probe->password ? util_strdup(probe->password) : NULL;
	n->on_probe = cb;
	n->cb_arg = arg;
	n->want_catalog = true;
	breaker_init(&n->breaker, probe->breaker_threshold, probe->breaker_recovery_ms);
	backoff_init(&n->backoff, probe->retry_base_ms, probe->retry_max_ms);
	/* Until the first probe answers, trust the config: a configured primary takes writes,
	 * replicas wait for a probe before they take reads. */
	n->usable = nc->role == NODE_ROLE_PRIMARY;
	pgconn_init(&n->pq, loop, &probe_ops);
	ev_timer_init(&n->tick, on_tick, 0, probe->interval_ms / 1000.0);
	n->tick.data = n;
	return n;
}

void node_set_probe(struct node *n, const struct node_probe_conf *probe)
{
	bool new_interval = probe->interval_ms != n->probe.interval_ms;

	free((char *)n->probe.dbname);
	free((char *)n->probe.user);
	free((char *)n->probe.password);
	n->probe = *probe;
	n->probe.dbname = util_strdup(probe->dbname);
	n->probe.user = util_strdup(probe->user);
	n->probe.password = probe->password ? util_strdup(probe->password) : NULL;
	n->breaker.threshold = probe->breaker_threshold;
	n->breaker.recovery_ms = probe->breaker_recovery_ms;
	n->backoff.base_ms = probe->retry_base_ms;
	n->backoff.max_ms = probe->retry_max_ms;
	if (new_interval) {
		n->tick.repeat = probe->interval_ms / 1000.0;
		if (ev_is_active(&n->tick))
			ev_timer_again(n->loop, &n->tick);
	}
}

void node_start(struct node *n)
{
	ev_timer_start(n->loop, &n->tick);
}

void node_probe_now(struct node *n)
{
	if (!ev_is_active(&n->tick) || pgconn_busy(&n->pq))
		return; /* stopped, or the probe in flight will answer soon */
	ev_timer_stop(n->loop, &n->tick);
	ev_timer_set(&n->tick, 0, n->probe.interval_ms / 1000.0);
	ev_timer_start(n->loop, &n->tick);
}

void node_request_catalog(struct node *n)
{
	n->want_catalog = true;
}

void node_take_catalog(struct node *n)
{
	free_catalog(n);
}

void node_update_health(struct node *n, uint64_t primary_lsn, uint64_t pending_us)
{
	bool healthy;

	if (!n->up) {
		n->usable = false;
		n->good_streak = 0;
		return;
	}
	if (n->role == NODE_ROLE_PRIMARY) {
		n->lag_bytes = 0;
		n->usable = true;
		return;
	}
	n->lag_bytes = primary_lsn > n->lsn ? primary_lsn - n->lsn : 0;
	/* The replica's figure (now - its last replayed commit) says how old that commit is,
	 * not how far behind it is: after a quiet minute a checkpoint record in flight made a
	 * healthy replica look 59 s behind. Lag is time only while WAL is pending, and no more
	 * than the primary has had that WAL. */
	if (primary_lsn != 0 && n->lag_bytes == 0)
		n->lag_ms = 0;
	else if (pending_us != UINT64_MAX && (int64_t)(pending_us / 1000) < n->lag_ms)
		n->lag_ms = (int64_t)(pending_us / 1000);
	healthy = n->lag_bytes <= n->probe.max_lag_bytes && n->lag_ms <= n->probe.max_lag_ms;
	if (!healthy) {
		if (n->usable)
			log_warning("node %s leaves the read rotation: lag %lld ms, %llu bytes",
			            n->name, (long long)n->lag_ms,
			            (unsigned long long)n->lag_bytes);
		n->usable = false;
		n->good_streak = 0;
		return;
	}
	if (!n->usable && ++n->good_streak >= NODE_RECOVER_PROBES) {
		log_info("node %s joins the read rotation: lag %lld ms, %llu bytes", n->name,
		         (long long)n->lag_ms, (unsigned long long)n->lag_bytes);
		n->usable = true;
	}
}

void node_stop(struct node *n)
{
	ev_timer_stop(n->loop, &n->tick);
	pgconn_close(&n->pq);
	n->up = n->usable = false;
}

void node_free(struct node *n)
{
	if (n == NULL)
		return;
	node_stop(n);
	free_catalog(n);
	free(n->name);
	free(n->host);
	free(n->tls.sslmode);
	free(n->tls.sslrootcert);
	free(n->tls.sslcert);
	free(n->tls.sslkey);
	free(n->tls.sslpassword);
	free((char *)n->probe.dbname);
	free((char *)n->probe.user);
	free((char *)n->probe.password);
	free(n->shards);
	pthread_mutex_destroy(&n->mu);
	free(n);
}

void node_sum(struct node *n)
{
	struct node_shard *t = &n->total;

	*t = (struct node_shard){0};
	for (int i = 0; i < n->n_shards; i++) {
		const struct node_shard *s = &n->shards[i];
		t->inflight += s->inflight;
		t->transactions += s->transactions;
		t->connect_attempts += s->connect_attempts;
		t->connect_failures += s->connect_failures;
		histogram_add(&t->connect_time, &s->connect_time);
		histogram_add(&t->query_time, &s->query_time);
	}
}
