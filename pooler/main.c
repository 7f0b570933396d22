/* main: command line, startup, signals and the one event loop.
 * The only file with mutable globals: the log level, and the state the signal watchers
 * need. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "authq.h"
#include "classify.h"
#include "client.h"
#include "config.h"
#include "hba.h"
#include "http.h"
#include "listener.h"
#include "log.h"
#include "node.h"
#include "pool.h"
#include "router.h"
#include "tls.h"
#include "worker.h"

enum log_level log_min_level = LOG_INFO;

struct daemon {
	struct worker w;
	struct config *cfg;
	struct auth_file *auth;
	struct hba *hba;            /* NULL without auth_hba_file */
	struct ssl_ctx_st *tls_ctx; /* NULL with client_tls_sslmode = disable */
	struct listeners *listeners;
	const char *config_path;
	ev_signal sigterm, sigint, sighup;
	ev_timer shutdown_check;
	ev_timer publish; /* refreshes the HTTP endpoint's snapshot */
	ev_timer stats;   /* every stats_period: the summary line, SHOW STATS averages */
	uint64_t stats_at_us;
	int stderr_fd; /* the original stderr, for when log_file is unset again */
	struct http *http;
	uint64_t shutdown_deadline_us;
	struct node **retired; /* removed by reloads; freed at exit, after their pools */
	int n_retired;
};

static struct daemon daemon_state;

static void usage(FILE *out)
{
	fputs("Usage: pooler [-c FILE] [--check-config]\n"
	      "PostgreSQL connection pooler and read/write router.\n\n"
	      "  -c, --config FILE   ini file (default conf/pooler.ini)\n"
	      "      --check-config  validate the config and auth file, print the effective\n"
	      "                      settings and pool sizes, and exit\n"
	      "  -V, --version       print the version and exit\n"
	      "  -h, --help          this help\n\n"
	      "Signals: SIGHUP reloads the config, SIGTERM finishes running transactions and\n"
	      "exits, SIGINT exits at once.\n",
	      out);
}

/* Ready: accepting clients, and every database has a reachable primary. */
static bool ready(struct daemon *d, char *reason, size_t len)
{
	struct worker *w = &d->w;

	if (w->shutting_down) {
		snprintf(reason, len, "shutting down");
		return false;
	}
	for (int i = 0; i < d->cfg->n_dbs; i++) {
		const struct node *p = router_primary(w, &d->cfg->dbs[i]);
		if (p == NULL || !p->probed || !p->up) {
			snprintf(reason, len, "database %s: no reachable primary",
			         d->cfg->dbs[i].name);
			return false;
		}
	}
	reason[0] = '\0';
	return true;
}

static void publish(struct daemon *d)
{
	struct client_counts cc;
	struct buf b;
	char reason[200];

	if (d->http == NULL)
		return;
	buf_init(&b);
	client_count(&d->w, &cc);
	metrics_render(&d->w, &cc, &b);
	bool ok = ready(d, reason, sizeof(reason));
	http_publish(d->http, (const char *)buf_head(&b), buf_len(&b), ok, reason);
	buf_free(&b);
}

static void on_publish(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	publish(t->data);
}

static void on_stats(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct daemon *d = t->data;
	uint64_t now = util_now_us();
	char line[512];
	(void)loop;
	(void)revents;

	metrics_period(&d->w, (double)(now - d->stats_at_us) / 1e6, line, sizeof(line));
	d->stats_at_us = now;
	log_info("%s", line);
}

static void start_stats(struct daemon *d)
{
	double period = d->cfg->stats_period_ms / 1000.0;

	if (ev_is_active(&d->stats) && d->stats.repeat == period)
		return;
	ev_timer_stop(d->w.loop, &d->stats);
	if (period <= 0)
		return;
	d->stats_at_us = util_now_us();
	ev_timer_set(&d->stats, period, period);
	ev_timer_start(d->w.loop, &d->stats);
}

/* log_file: point stderr at it, so that everything written there (sanitizer reports too)
 * lands in the file. Opened again on every reload, which is how log rotation works. */
static bool open_log_file(struct daemon *d, const struct config *cfg, char *err, size_t errlen)
{
	int fd = d->stderr_fd;

	if (cfg->log_file[0] != '\0') {
		fd = open(cfg->log_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (fd < 0) {
			snprintf(err, errlen, "%s: log_file %s: %s", cfg->path, cfg->log_file,
			         strerror(errno));
			return false;
		}
	}
	if (fd >= 0 && fd != STDERR_FILENO)
		dup2(fd, STDERR_FILENO);
	if (fd != d->stderr_fd)
		close(fd);
	return true;
}

static void reap(struct ev_loop *loop, ev_prepare *p, int revents)
{
	struct worker *w = p->data;
	struct list *n;
	(void)loop;
	(void)revents;

	client_reap(w);
	while ((n = list_pop(&w->dead_servers)) != NULL)
		server_free(container_of(n, struct server, node));
}

static void maybe_exit(struct worker *w)
{
	struct daemon *d = container_of(w, struct daemon, w);

	if (!w->shutting_down)
		return;
	if (w->n_clients == 0 || util_now_us() >= d->shutdown_deadline_us) {
		if (w->n_clients > 0)
			log_warning("shutdown_timeout reached with %d clients still connected",
			            w->n_clients);
		ev_break(w->loop, EVBREAK_ALL);
	}
}

static void on_shutdown_check(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	maybe_exit(t->data);
}

static void close_idle_servers(struct worker *w)
{
	struct list *pos, *tmp;
	list_for_each_safe (pos, tmp, &w->pools)
		pool_close_idle(container_of(pos, struct pool, node));
}

static void on_sigterm(struct ev_loop *loop, ev_signal *sig, int revents)
{
	struct daemon *d = sig->data;
	(void)loop;
	(void)revents;

	if (d->w.shutting_down)
		return;
	log_info("SIGTERM: no new clients; waiting up to %d ms for running transactions",
	         d->cfg->shutdown_timeout_ms);
	d->w.shutting_down = true;
	publish(d); /* /ready says so at once */
	d->shutdown_deadline_us = util_now_us() + (uint64_t)d->cfg->shutdown_timeout_ms * 1000;
	listener_close(d->listeners);
	d->listeners = NULL;
	client_shutdown_idle(&d->w);
	close_idle_servers(&d->w);
	ev_timer_init(&d->shutdown_check, on_shutdown_check, 0.05, 0.05);
	d->shutdown_check.data = &d->w;
	ev_timer_start(d->w.loop, &d->shutdown_check);
	maybe_exit(&d->w);
}

static void on_sigint(struct ev_loop *loop, ev_signal *sig, int revents)
{
	(void)sig;
	(void)revents;
	log_info("SIGINT: exiting now");
	ev_break(loop, EVBREAK_ALL);
}

static void add_functions(struct classifier *cl, const char *list, bool writes)
{
	char *copy = util_strdup(list), *save = NULL;
	for (char *t = strtok_r(copy, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save)) {
		if (writes)
			classify_add_write_function(cl, t);
		else
			classify_add_read_function(cl, t);
	}
	free(copy);
}

/* How nodes are probed: the health_* keys, else the first database's dbname and server
 * credentials. */
static struct node_probe_conf probe_conf(const struct config *cfg)
{
	struct node_probe_conf probe = {
	    .dbname = cfg->health_dbname ? cfg->health_dbname : "postgres",
	    .user = cfg->health_user ? cfg->health_user : "postgres",
	    .password = cfg->health_password,
	    .interval_ms = cfg->health_interval_ms,
	    .timeout_ms = cfg->health_timeout_ms,
	    .max_lag_bytes = (uint64_t)cfg->max_replica_lag_bytes,
	    .max_lag_ms = cfg->max_replica_lag_ms,
	    .retry_base_ms = (uint32_t)cfg->retry_base_ms,
	    .retry_max_ms = (uint32_t)cfg->retry_max_ms,
	    .breaker_threshold = (uint32_t)cfg->breaker_failure_threshold,
	    .breaker_recovery_ms = (uint32_t)cfg->breaker_recovery_ms,
	};
	if (cfg->n_dbs > 0) {
		const struct db_conf *db = &cfg->dbs[0];
		if (cfg->health_dbname == NULL)
			probe.dbname = db->dbname;
		if (cfg->health_user == NULL && db->server_user != NULL) {
			probe.user = db->server_user;
			if (cfg->health_password == NULL)
				probe.password = db->server_password;
		}
	}
	return probe;
}

/* Rates of the per-address limits: connections per second (bursts of two seconds' worth)
 * and failed logins per minute. */
static void configure_limits(struct worker *w, const struct config *cfg)
{
	ratelimit_set(&w->connect_limit, cfg->client_rate_limit, 2.0 * cfg->client_rate_limit);
	ratelimit_set(&w->auth_limit, cfg->auth_failure_limit / 60.0, cfg->auth_failure_limit);
	for (int i = 0; i < w->n_nodes; i++)
		for (int j = 0; j < cfg->n_nodes; j++)
			if (strcmp(w->nodes[i]->name, cfg->nodes[j].name) == 0) {
				w->nodes[i]->conf_budget = cfg->nodes[j].pool_size;
				node_set_server_limit(w->nodes[i], w->nodes[i]->server_limit);
			}
}

/* Equal settings, where unset (NULL) and empty are the same. */
static bool same_setting(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

/* The running node that serves nc as it is configured now, or NULL. A node whose address,
 * role or TLS settings changed is a new node: its servers must log in again. */
static struct node *same_node(struct worker *w, const struct node_conf *nc)
{
	for (int i = 0; i < w->n_nodes; i++) {
		struct node *n = w->nodes[i];
		if (strcmp(n->name, nc->name) == 0 && strcmp(n->host, nc->host) == 0 &&
		    n->port == nc->port && n->conf_role == nc->role &&
		    same_setting(n->tls.sslmode, config_tls_mode_name(nc->sslmode)) &&
		    same_setting(n->tls.sslrootcert, nc->sslrootcert) &&
		    same_setting(n->tls.sslcert, nc->sslcert) &&
		    same_setting(n->tls.sslkey, nc->sslkey) &&
		    same_setting(n->tls.sslpassword, nc->sslpassword))
			return n;
	}
	return NULL;
}

/* One node per [node.NAME], each with its health probe on this loop. On reload, nodes
 * whose section is unchanged keep running (with their pools, health and breaker); new
 * ones start; the others stop probing and are kept, retired, until exit, because pools
 * draining their busy servers still point at them. */
static void apply_nodes(struct daemon *d, const struct config *cfg)
{
	struct worker *w = &d->w;
	struct node_probe_conf probe = probe_conf(cfg);
	struct node **nodes = util_calloc((size_t)cfg->n_nodes + 1, sizeof(*nodes));

	for (int i = 0; i < cfg->n_nodes; i++) {
		nodes[i] = same_node(w, &cfg->nodes[i]);
		if (nodes[i] != NULL) {
			nodes[i]->weight = cfg->nodes[i].weight;
			node_set_probe(nodes[i], &probe);
			continue;
		}
		nodes[i] = node_new(&cfg->nodes[i], w->loop, &probe, router_on_probe, w);
		node_start(nodes[i]);
		if (w->nodes != NULL)
			log_info("node %s (%s:%d) added", nodes[i]->name, nodes[i]->host,
			         nodes[i]->port);
	}
	for (int i = 0; i < w->n_nodes; i++) {
		bool kept = false;
		for (int k = 0; k < cfg->n_nodes; k++)
			kept = kept || nodes[k] == w->nodes[i];
		if (kept)
			continue;
		log_info("node %s (%s:%d) removed: its servers close as they go idle",
		         w->nodes[i]->name, w->nodes[i]->host, w->nodes[i]->port);
		node_stop(w->nodes[i]);
		struct node **retired = util_calloc((size_t)d->n_retired + 1, sizeof(*retired));
		if (d->n_retired > 0)
			memcpy(retired, d->retired, (size_t)d->n_retired * sizeof(*retired));
		free(d->retired);
		d->retired = retired;
		d->retired[d->n_retired++] = w->nodes[i];
	}
	free(w->nodes);
	w->nodes = nodes;
	w->n_nodes = cfg->n_nodes;
}

/* Why a pool cannot serve its database any more (after apply_nodes), or NULL when it
 * still can. */
static const char *pool_outdated(const struct worker *w, const struct pool *p,
                                 const struct db_conf *db)
{
	bool listed = false, running = false;

	if (db == NULL)
		return "database removed";
	for (int i = 0; i < db->n_nodes; i++)
		listed = listed || strcmp(db->node_list[i]->name, p->backend->name) == 0;
	for (int i = 0; i < w->n_nodes; i++)
		running = running || w->nodes[i] == p->backend;
	if (!listed || !running)
		return "node no longer serves the database";
	if (strcmp(db->dbname, p->login.dbname) != 0)
		return "dbname changed";
	if (db->server_user != NULL && strcmp(db->server_user, p->login.user) != 0)
		return "server_user changed";
	return NULL;
}

/* The access rules and the client TLS context a config names. False (with err) when a
 * file is missing or unusable; nothing is left allocated then. */
static bool load_access(const struct config *cfg, struct hba **hba, struct ssl_ctx_st **tls_ctx,
                        char *err, size_t errlen)
{
	*hba = NULL;
	if (cfg->auth_hba_file != NULL && cfg->auth_hba_file[0] != '\0') {
		*hba = hba_load(cfg->auth_hba_file, err, errlen);
		if (*hba == NULL)
			return false;
	}
	*tls_ctx = tls_server_ctx_new(cfg, err, errlen);
	if (*tls_ctx == NULL && cfg->client_tls_sslmode != TLS_DISABLE) {
		hba_free(*hba);
		*hba = NULL;
		return false;
	}
	return true;
}

/* Reload: a new snapshot of config and auth file; a bad file keeps the old ones. Pools
 * take their new settings; nodes come and go (apply_nodes); pools whose node or target
 * changed retire, and the next transaction of their clients gets a new pool. */
static bool reload(struct daemon *d, char *err, size_t errlen)
{
	struct config *cfg;
	struct auth_file *auth;
	struct hba *hba = NULL;
	struct ssl_ctx_st *tls_ctx = NULL;

	cfg = config_load(d->config_path, err, errlen);
	if (cfg == NULL)
		goto fail;
	auth = auth_file_load(cfg->auth_file, err, errlen);
	if (auth == NULL) {
		config_free(cfg);
		goto fail;
	}
	if (!load_access(cfg, &hba, &tls_ctx, err, errlen)) {
		config_free(cfg);
		auth_file_free(auth);
		goto fail;
	}
	if (!open_log_file(d, cfg, err, errlen)) {
		config_free(cfg);
		auth_file_free(auth);
		hba_free(hba);
		tls_ctx_free(tls_ctx);
		goto fail;
	}
	classify_clear_cache(d->w.classifier); /* learned verdicts too: a reload starts afresh */
	add_functions(d->w.classifier, cfg->read_only_functions, false);
	add_functions(d->w.classifier, cfg->write_functions, true);
	apply_nodes(d, cfg);
	for (int i = 0; i < d->w.n_nodes; i++)
		node_request_catalog(d->w.nodes[i]); /* and the catalog, on the next probe */
	config_free(d->cfg);
	auth_file_free(d->auth);
	hba_free(d->hba);
	tls_ctx_free(d->tls_ctx); /* sessions keep a reference to the context they came from */
	d->w.cfg_gen++;
	d->cfg = cfg;
	d->auth = auth;
	d->hba = hba;
	d->tls_ctx = tls_ctx;
	d->w.cfg = cfg;
	d->w.auth = auth;
	configure_limits(&d->w, cfg);
	d->w.hba = hba;
	d->w.tls_ctx = tls_ctx;
	authq_clear(d->w.authq); /* auth_query or its target may have changed */
	struct list *pos, *tmp;
	list_for_each_safe (pos, tmp, &d->w.pools) {
		struct pool *p = container_of(pos, struct pool, node);
		const struct db_conf *db = config_find_db(cfg, p->db_name);
		const char *why = pool_outdated(&d->w, p, db);
		if (why != NULL)
			pool_retire(p, why);
		else if (!p->retired)
			pool_configure(p, db, cfg);
	}
	log_min_level = (enum log_level)cfg->log_level;
	start_stats(d);
	d->w.metrics.config_reloads_ok++;
	log_info("reloaded %s", d->config_path);
	return true;
fail:
	d->w.metrics.config_reloads_failed++;
	log_error("reload failed, keeping the running config: %s", err);
	return false;
}

static bool on_admin_reload(struct worker *w, char *err, size_t errlen)
{
	return reload(container_of(w, struct daemon, w), err, errlen);
}

static void on_sighup(struct ev_loop *loop, ev_signal *sig, int revents)
{
	char err[1024];
	(void)loop;
	(void)revents;
	reload(sig->data, err, sizeof(err));
}

static void on_admin_shutdown(struct worker *w)
{
	struct daemon *d = container_of(w, struct daemon, w);
	on_sigterm(w->loop, &d->sigterm, 0);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"check-config", no_argument, NULL, 'C'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct daemon *d = &daemon_state;
	bool check_only = false;
	char err[1024];
	int opt;

	d->config_path = "conf/pooler.ini";
	while ((opt = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			d->config_path = optarg;
			break;
		case 'C':
			check_only = true;
			break;
		case 'V':
			printf("pooler %s\n", POOLER_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pooler: unexpected argument: %s\n", argv[optind]);
		usage(stderr);
		return 2;
	}

	d->cfg = config_load(d->config_path, err, sizeof(err));
	if (d->cfg == NULL) {
		fprintf(stderr, "pooler: %s\n", err);
		return 1;
	}
	log_min_level = (enum log_level)d->cfg->log_level;
	d->auth = d->cfg->auth_type == AUTH_TYPE_TRUST && access(d->cfg->auth_file, R_OK) != 0
	              ? util_calloc(1, sizeof(struct auth_file))
	              : auth_file_load(d->cfg->auth_file, err, sizeof(err));
	if (d->auth == NULL) {
		fprintf(stderr, "pooler: %s\n", err);
		config_free(d->cfg);
		return 1;
	}
	if (!load_access(d->cfg, &d->hba, &d->tls_ctx, err, sizeof(err))) {
		fprintf(stderr, "pooler: %s\n", err);
		auth_file_free(d->auth);
		config_free(d->cfg);
		return 1;
	}
	if (check_only) {
		config_print(d->cfg, stdout);
		hba_free(d->hba);
		tls_ctx_free(d->tls_ctx);
		printf("; auth_file %s: %d users\n", d->cfg->auth_file, d->auth->n_users);
		auth_file_free(d->auth);
		config_free(d->cfg);
		return 0;
	}

	signal(SIGPIPE, SIG_IGN);
	d->stderr_fd = dup(STDERR_FILENO);
	if (!open_log_file(d, d->cfg, err, sizeof(err))) {
		fprintf(stderr, "pooler: %s\n", err);
		auth_file_free(d->auth);
		config_free(d->cfg);
		return 1;
	}
	struct worker *w = &d->w;
	w->loop = ev_default_loop(EVFLAG_AUTO);
	w->cfg = d->cfg;
	w->auth = d->auth;
	w->hba = d->hba;
	w->tls_ctx = d->tls_ctx;
	w->authq = authq_new(w->loop);
	w->on_idle_client = maybe_exit;
	w->on_reload = on_admin_reload;
	w->on_shutdown = on_admin_shutdown;
	list_init(&w->clients);
	list_init(&w->pools);
	list_init(&w->dead_clients);
	list_init(&w->dead_servers);
	if (!util_random_bytes(w->mock_key, sizeof(w->mock_key))) {
		log_error("no random bytes for the mock SCRAM key");
		return 1;
	}
	if (!util_random_bytes(&w->rng, sizeof(w->rng)) || w->rng == 0)
		w->rng = util_now_us() | 1;
	w->classifier = classify_new((size_t)d->cfg->classify_cache_size);
	ratelimit_init(&w->connect_limit, 4096);
	ratelimit_init(&w->auth_limit, 4096);
	add_functions(w->classifier, d->cfg->read_only_functions, false);
	add_functions(w->classifier, d->cfg->write_functions, true);
	apply_nodes(d, d->cfg);
	configure_limits(w, d->cfg);
	ev_prepare_init(&w->reaper, reap);
	w->reaper.data = w;
	ev_prepare_start(w->loop, &w->reaper);

	d->listeners = listener_open(w, d->cfg, err, sizeof(err));
	if (d->listeners == NULL) {
		log_error("%s", err);
		auth_file_free(d->auth);
		hba_free(d->hba);
		tls_ctx_free(d->tls_ctx);
		config_free(d->cfg);
		return 1;
	}
	listener_start(d->listeners);
	if (d->cfg->metrics_listen[0] != '\0') {
		d->http = http_start(d->cfg->metrics_listen, err, sizeof(err));
		if (d->http == NULL) {
			log_error("%s", err);
			listener_close(d->listeners);
			auth_file_free(d->auth);
			hba_free(d->hba);
			tls_ctx_free(d->tls_ctx);
			config_free(d->cfg);
			return 1;
		}
		log_info("metrics on http://%s/metrics (port %d), /health, /ready",
		         d->cfg->metrics_listen, http_port(d->http));
	}
	ev_timer_init(&d->publish, on_publish, 0.2, 1.0);
	d->publish.data = d;
	ev_timer_start(w->loop, &d->publish);
	ev_init(&d->stats, on_stats);
	d->stats.data = d;
	start_stats(d);
	ev_signal_init(&d->sigterm, on_sigterm, SIGTERM);
	ev_signal_init(&d->sigint, on_sigint, SIGINT);
	ev_signal_init(&d->sighup, on_sighup, SIGHUP);
	d->sigterm.data = d->sigint.data = d->sighup.data = d;
	ev_signal_start(w->loop, &d->sigterm);
	ev_signal_start(w->loop, &d->sigint);
	ev_signal_start(w->loop, &d->sighup);
	log_info("pooler %s started (config %s)", POOLER_VERSION, d->config_path);

	ev_run(w->loop, 0);

	listener_close(d->listeners);
	http_stop(d->http);
	client_close_all(w);
	while (!list_empty(&w->pools))
		pool_free(container_of(w->pools.next, struct pool, node));
	reap(w->loop, &w->reaper, 0);
	for (int i = 0; i < w->n_nodes; i++)
		node_free(w->nodes[i]);
	for (int i = 0; i < d->n_retired; i++)
		node_free(d->retired[i]);
	free(w->nodes);
	free(d->retired);
	classify_free(w->classifier);
	ratelimit_free(&w->connect_limit);
	ratelimit_free(&w->auth_limit);
	authq_free(w->authq);
	ev_loop_destroy(w->loop);
	auth_file_free(d->auth);
	hba_free(d->hba);
	tls_ctx_free(d->tls_ctx);
	config_free(d->cfg);
	log_info("pooler stopped");
	return 0;
}
