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
#include <sched.h>
#include <unistd.h>

#include "auth.h"
#include "admin.h"
#include "authq.h"
#include "classify.h"
#include "client.h"
#include "cluster.h"
#include "config.h"
#include "hba.h"
#include "http.h"
#include "import.h"
#include "listener.h"
#include "log.h"
#include "node.h"
#include "pool.h"
#include "reload.h"
#include "router.h"
#include "service.h"
#include "tls.h"
#include "worker.h"

enum log_level log_min_level = LOG_INFO;

/* The config and the files it names: loaded, swapped and freed as a whole. */
struct snapshot {
	struct config *cfg;
	struct auth_file *auth;
	struct hba *hba;            /* NULL without auth_hba_file */
	struct ssl_ctx_st *tls_ctx; /* NULL with client_tls_sslmode = disable */
};

struct daemon {
	struct team *team; /* the workers; NULL until startup makes them */
	struct worker *w;  /* team->all[0]: signals, probes, clusters, timers, HTTP */
	struct authq_cache *authq_cache; /* auth_query answers, for every worker */
	struct snapshot files; /* the running ones */
	struct listeners **listeners; /* one set per worker */
	const char *config_path;
	bool check_only; /* --check-config */
	bool logging;    /* stderr is set up (log_file): errors go to the log */
	ev_signal sigterm, sigint, sighup;
	ev_timer shutdown_check;
	ev_timer publish; /* refreshes the HTTP endpoint's snapshot */
	ev_timer stats;   /* every stats_period: the summary line, SHOW STATS averages */
	uint64_t stats_at_us;
	int stderr_fd; /* the original stderr, for when log_file is unset again */
	struct http *http;
	uint64_t shutdown_deadline_us;
	/* service manager: readiness once the first probes answered, the pidfile */
	ev_timer ready_check;
	uint64_t ready_deadline_us; /* READY=1 by then even if some node never answered */
	bool ready_sent;            /* reloads report RELOADING=1/READY=1 only after it */
	char *pidfile;              /* as at startup; a reload does not move it */
	int pidfile_fd;             /* -1: none written */
};

static struct daemon daemon_state;

/* --help, and pooler(1)'s OPTIONS (config_write_man turns its option lines into the man
 * page's, so that the two cannot drift apart). */
static const char usage_text[] =
    "Usage: pooler [-c FILE] [--check-config] | --import-pgbouncer PGBOUNCER.INI\n"
    "PostgreSQL connection pooler and read/write router.\n\n"
    "  -c, --config FILE   ini file (default conf/pooler.ini)\n"
    "      --check-config  validate the config and auth file, print the effective\n"
    "                      settings and pool sizes, and exit\n"
    "      --import-pgbouncer PGBOUNCER.INI\n"
    "                      write an equivalent pooler config to stdout, with a\n"
    "                      comment on each setting that could not be carried\n"
    "  -V, --version       print the version and exit\n"
    "  -h, --help          this help\n\n"
    "Signals: SIGHUP reloads the config, SIGTERM finishes running transactions and\n"
    "exits, SIGINT exits at once.\n";

static void usage(FILE *out)
{
	fputs(usage_text, out);
}

/* Ready: accepting clients, and every database has a reachable primary. A cluster whose
 * API cannot be reached leaves the pooler ready (it routes by the last known members and
 * leader, and each node's probe) with a reason that says so. */
static bool ready(struct daemon *d, char *reason, size_t len)
{
	struct worker *w = d->w;

	if (w->shutting_down) {
		snprintf(reason, len, "shutting down");
		return false;
	}
	for (int i = 0; i < d->files.cfg->n_dbs; i++) {
		const struct node *p = router_primary(w, &d->files.cfg->dbs[i]);
		if (p == NULL || !p->probed || !p->up) {
			snprintf(reason, len, "database %s: no reachable primary",
			         d->files.cfg->dbs[i].name);
			return false;
		}
	}
	reason[0] = '\0';
	/* ready, but say so: routing goes on with the last members and leader it knew */
	for (int i = 0; i < w->n_clusters; i++)
		if (!w->clusters[i]->reachable)
			snprintf(reason, len,
			         "cluster %.40s: Patroni API unreachable (%.90s), last known "
			         "members kept",
			         w->clusters[i]->name, w->clusters[i]->last_error);
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
	worker_world_enter(d->w);
	client_count(d->w, &cc);
	metrics_render(d->w, &cc, &b);
	bool ok = ready(d, reason, sizeof(reason));
	worker_world_leave(d->w);
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

	worker_world_enter(d->w);
	metrics_period(d->w, (double)(now - d->stats_at_us) / 1e6, line, sizeof(line));
	worker_world_leave(d->w);
	d->stats_at_us = now;
	log_info("%s", line);
}

static void start_stats(struct daemon *d)
{
	double period = d->files.cfg->stats_period_ms / 1000.0;

	if (ev_is_active(&d->stats) && d->stats.repeat == period)
		return;
	ev_timer_stop(d->w->loop, &d->stats);
	if (period <= 0)
		return;
	d->stats_at_us = util_now_us();
	ev_timer_set(&d->stats, period, period);
	ev_timer_start(d->w->loop, &d->stats);
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

	w->now_us = 0;
	client_reap(w);
	pool_send_moving(w);
	struct list waiting; /* a cancel request is still on its way: cancel_answered uses it */
	list_init(&waiting);
	while ((n = list_pop(&w->dead_servers)) != NULL) {
		struct server *s = container_of(n, struct server, node);
		if (s->cancels > 0)
			list_append(&waiting, n);
		else
			server_free(s);
	}
	list_take(&w->dead_servers, &waiting);
}

/* Once draining: exit when the last client of any worker has gone, or at the deadline.
 * Worker 0's own clients call it as they leave; the others' are seen by the 50 ms check. */
static void maybe_exit(struct worker *w)
{
	struct daemon *d = &daemon_state;

	if (w->index != 0 || !w->shutting_down)
		return;
	int clients = __atomic_load_n(&w->team->n_clients, __ATOMIC_RELAXED);
	if (clients == 0 || util_now_us() >= d->shutdown_deadline_us) {
		if (clients > 0)
			log_warning("shutdown_timeout reached with %d clients still connected",
			            clients);
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

	if (d->w->shutting_down)
		return;
	service_notify("STOPPING=1\nSTATUS=draining: waiting for running transactions");
	log_info("SIGTERM: no new clients; waiting up to %d ms for running transactions",
	         d->files.cfg->shutdown_timeout_ms);
	d->shutdown_deadline_us =
	    util_now_us() + (uint64_t)d->files.cfg->shutdown_timeout_ms * 1000;
	worker_world_enter(d->w);
	for (int i = 0; i < d->team->n; i++) {
		struct worker *w = d->team->all[i];
		w->shutting_down = true;
		listener_close(d->listeners[i]);
		d->listeners[i] = NULL;
		client_shutdown_idle(w);
		close_idle_servers(w);
	}
	worker_world_leave(d->w);
	publish(d); /* /ready says so at once */
	ev_timer_init(&d->shutdown_check, on_shutdown_check, 0.05, 0.05);
	d->shutdown_check.data = d->w;
	ev_timer_start(d->w->loop, &d->shutdown_check);
	maybe_exit(d->w);
}

static void on_sigint(struct ev_loop *loop, ev_signal *sig, int revents)
{
	(void)sig;
	(void)revents;
	service_notify("STOPPING=1");
	log_info("SIGINT: exiting now");
	ev_break(loop, EVBREAK_ALL);
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

static void snapshot_free(struct snapshot *s)
{
	auth_file_free(s->auth);
	hba_free(s->hba);
	tls_ctx_free(s->tls_ctx); /* sessions keep a reference to the context they came from */
	config_free(s->cfg);
	*s = (struct snapshot){0};
}

/* Read the config and every file it names. At startup, with auth_type = trust, a missing
 * auth file is an empty one. False (with err) when any is bad; nothing is left then. */
static bool snapshot_load(struct snapshot *s, struct worker *w, const char *path, const char *sets,
                          bool startup, char *err, size_t errlen)
{
	*s = (struct snapshot){0};
	int n_members = 0;
	/* Patroni members (none at startup, before the worker exists) */
	struct config_member *members = w != NULL ? reload_members(w, &n_members) : NULL;
	s->cfg = config_load_members(path, sets, members, n_members, err, errlen);
	free(members);
	if (s->cfg == NULL)
		return false;
	s->auth =
	    startup && s->cfg->auth_type == AUTH_TYPE_TRUST && access(s->cfg->auth_file, R_OK) != 0
	        ? util_calloc(1, sizeof(struct auth_file))
	        : auth_file_load(s->cfg->auth_file, err, errlen);
	if (s->auth == NULL || !load_access(s->cfg, &s->hba, &s->tls_ctx, err, errlen)) {
		snapshot_free(s);
		return false;
	}
	return true;
}

/* Reload: a new snapshot of config and files; a bad file keeps the old ones.
 * reload_apply reconciles nodes, pools and worker settings with the new config. */
static bool reload_in_world(struct daemon *d, char *err, size_t errlen);

static bool reload(struct daemon *d, char *err, size_t errlen)
{
	if (d->ready_sent)
		service_notify("RELOADING=1\nMONOTONIC_USEC=%llu",
		               (unsigned long long)util_now_us());
	worker_world_enter(d->w);
	bool ok = reload_in_world(d, err, errlen);
	worker_world_leave(d->w);
	return ok;
}

/* reload, in a world section: every worker takes the new snapshot at once. */
static bool reload_in_world(struct daemon *d, char *err, size_t errlen)
{
	struct snapshot next;

	if (!snapshot_load(&next, d->w, d->config_path, d->w->sets, false, err, errlen) ||
	    !open_log_file(d, next.cfg, err, errlen)) {
		snapshot_free(&next);
		d->w->metrics.config_reloads_failed++;
		log_error("reload failed, keeping the running config: %s", err);
		if (d->ready_sent)
			service_notify(
			    "READY=1\nSTATUS=reload failed, running the previous config");
		return false;
	}
	for (int i = 0; i < d->team->n; i++) {
		d->team->all[i]->auth = next.auth;
		d->team->all[i]->hba = next.hba;
		d->team->all[i]->tls_ctx = next.tls_ctx;
	}
	reload_apply(d->w, next.cfg);
	snapshot_free(&d->files); /* nothing points into the old config any more */
	d->files = next;
	__atomic_store_n(&log_min_level, (enum log_level)next.cfg->log_level, __ATOMIC_RELAXED);
	start_stats(d);
	d->w->metrics.config_reloads_ok++;
	log_info("reloaded %s", d->config_path);
	if (d->ready_sent)
		service_notify("READY=1\nSTATUS=serving (config reloaded)");
	return true;
}

static bool on_admin_reload(struct worker *w, char *err, size_t errlen)
{
	return reload((&daemon_state), err, errlen);
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
	struct daemon *d = (&daemon_state);
	on_sigterm(w->loop, &d->sigterm, 0);
}

/* The command line: -1 to go on, else the exit code (after --help, --version, or a
 * mistake). */
static int parse_args(struct daemon *d, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"check-config", no_argument, NULL, 'C'},
	    {"import-pgbouncer", required_argument, NULL, 'I'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {"print-man", required_argument, NULL, 'M'}, /* for make man; not in --help */
	    {NULL, 0, NULL, 0},
	};
	int opt;

	d->config_path = "conf/pooler.ini";
	while ((opt = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			d->config_path = optarg;
			break;
		case 'C':
			d->check_only = true;
			break;
		case 'I':
			return import_pgbouncer(optarg, stdout, stderr);
		case 'V':
			printf("pooler %s\n", POOLER_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		case 'M': /* --print-man 1 | 5: pooler(1) or pooler.ini(5) as man(7) source */
			if (strcmp(optarg, "1") != 0 && strcmp(optarg, "5") != 0) {
				fprintf(stderr, "pooler: --print-man takes 1 or 5\n");
				return 2;
			}
			config_write_man(stdout, atoi(optarg), usage_text);
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
	return -1;
}

/* --check-config: the effective settings, pool sizes and users. */
static void check_config(const struct daemon *d)
{
	config_print(d->files.cfg, stdout);
	printf("; auth_file %s: %d users\n", d->files.cfg->auth_file, d->files.auth->n_users);
}

/* Process-wide setup: no SIGPIPE (writes to closed sockets return EPIPE), stderr to
 * log_file. */
static bool setup_process(struct daemon *d, char *err, size_t errlen)
{
	signal(SIGPIPE, SIG_IGN);
	d->stderr_fd = dup(STDERR_FILENO);
	if (!open_log_file(d, d->files.cfg, err, errlen))
		return false;
	d->logging = true;
	return true;
}

/* workers = auto: the cores this process may run on (its CPU affinity). */
static int auto_workers(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return CPU_COUNT(&set) < 256 ? CPU_COUNT(&set) : 256;
	return config_local_cores();
}

/* One worker: its loop, caches and lists. Every worker makes the same fake SCRAM salts
 * (mock_key is worker 0's), so that a probing client learns nothing from which one it
 * reached. */
static bool init_worker(struct daemon *d, struct worker *w, char *err, size_t errlen)
{
	if (!worker_init_loop(w)) {
		snprintf(err, errlen, "cannot make the event loop of worker %d", w->index + 1);
		return false;
	}
	if (w->index > 0)
		memcpy(w->mock_key, d->w->mock_key, sizeof(w->mock_key));
	if (!util_random_bytes(&w->rng, sizeof(w->rng)) || w->rng == 0)
		w->rng = util_now_us() | 1;
	w->auth = d->files.auth;
	w->hba = d->files.hba;
	w->tls_ctx = d->files.tls_ctx;
	w->authq = authq_new(w->loop, d->authq_cache);
	w->on_idle_client = maybe_exit;
	w->on_reload = on_admin_reload;
	w->on_shutdown = on_admin_shutdown;
	list_init(&w->clients);
	list_init(&w->pools);
	list_init(&w->dead_clients);
	list_init(&w->moving_clients);
	list_init(&w->held_clients);
	list_init(&w->dead_servers);
	list_init(&w->outgoing_servers);
	w->classifier = classify_new((size_t)d->files.cfg->classify_cache_size);
	ev_prepare_init(&w->reaper, reap);
	w->reaper.data = w;
	ev_prepare_start(w->loop, &w->reaper);
	return true;
}

/* The workers (their threads start once everything is ready), then the nodes from the
 * config (reload_apply, as every reload after it). */
static bool init_team(struct daemon *d, char *err, size_t errlen)
{
	int n = d->files.cfg->workers > 0 ? d->files.cfg->workers : auto_workers();

	d->team = team_new(n);
	d->authq_cache = authq_cache_new();
	d->w = d->team->all[0];
	d->listeners = util_calloc((size_t)n, sizeof(*d->listeners));
	if (!util_random_bytes(d->w->mock_key, sizeof(d->w->mock_key))) {
		snprintf(err, errlen, "no random bytes for the mock SCRAM key");
		return false;
	}
	for (int i = 0; i < n; i++)
		if (!init_worker(d, d->team->all[i], err, errlen))
			return false;
	reload_apply(d->w, d->files.cfg);
	return true;
}

/* Client listeners, the HTTP endpoint and the timers that feed it and the stats line. */
static bool open_endpoints(struct daemon *d, char *err, size_t errlen)
{
	const struct config *cfg = d->files.cfg;

	for (int i = 0; i < d->team->n; i++) {
		d->listeners[i] = listener_open(d->team->all[i], cfg, err, errlen);
		if (d->listeners[i] == NULL)
			return false;
		listener_start(d->listeners[i]);
	}
	if (d->team->n > 1)
		log_info("%d workers, each accepting on its own socket (SO_REUSEPORT)",
		         d->team->n);
	if (cfg->metrics_listen[0] != '\0') {
		d->http = http_start(cfg->metrics_listen, err, errlen);
		if (d->http == NULL)
			return false;
		log_info("metrics on http://%s/metrics (port %d), /health, /ready",
		         cfg->metrics_listen, http_port(d->http));
	}
	ev_timer_init(&d->publish, on_publish, 0.2, 1.0);
	d->publish.data = d;
	ev_timer_start(d->w->loop, &d->publish);
	ev_init(&d->stats, on_stats);
	d->stats.data = d;
	start_stats(d);
	return true;
}

/* ---- service manager: pidfile and readiness ---- */

/* Ready for a service manager: every node's first probe answered (or failed), so that what
 * starts after the pooler finds the primary known; bounded by health_timeout. */
static void on_ready_check(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct daemon *d = t->data;
	int probed = 0;
	(void)revents;

	for (int i = 0; i < d->w->n_nodes; i++)
		probed += d->w->nodes[i]->probed;
	if (probed < d->w->n_nodes && util_now_us() < d->ready_deadline_us)
		return;
	ev_timer_stop(loop, t);
	if (d->w->shutting_down) /* STOPPING=1 went out already */
		return;
	d->ready_sent = true;
	service_notify("READY=1\nMAINPID=%ld\nSTATUS=serving; %d of %d nodes probed",
	               (long)getpid(), probed, d->w->n_nodes);
	log_info("ready: %d of %d nodes probed", probed, d->w->n_nodes);
}

/* Once listening: the pidfile, then READY=1 when the first probes are in. */
static bool announce(struct daemon *d, char *err, size_t errlen)
{
	const struct config *cfg = d->files.cfg;

	if (cfg->pidfile[0] != '\0') {
		d->pidfile_fd = service_pidfile_write(cfg->pidfile, err, errlen);
		if (d->pidfile_fd < 0)
			return false;
		d->pidfile = util_strdup(cfg->pidfile);
	}
	d->ready_deadline_us = util_now_us() + (uint64_t)cfg->health_timeout_ms * 1000 + 500000;
	ev_timer_init(&d->ready_check, on_ready_check, 0, 0.02);
	d->ready_check.data = d;
	ev_timer_start(d->w->loop, &d->ready_check);
	return true;
}

static void wire_signals(struct daemon *d)
{
	ev_signal_init(&d->sigterm, on_sigterm, SIGTERM);
	ev_signal_init(&d->sigint, on_sigint, SIGINT);
	ev_signal_init(&d->sighup, on_sighup, SIGHUP);
	d->sigterm.data = d->sigint.data = d->sighup.data = d;
	ev_signal_start(d->w->loop, &d->sigterm);
	ev_signal_start(d->w->loop, &d->sigint);
	ev_signal_start(d->w->loop, &d->sighup);
}

/* Free whatever startup set up, in reverse order: pools before the nodes they use, the
 * loop after everything on it. Safe from any point of startup. */
static void teardown_worker(struct daemon *d, struct worker *w)
{
	listener_close(d->listeners[w->index]);
	if (w->loop == NULL)
		return;
	client_close_all(w);
	while (!list_empty(&w->pools))
		pool_free(container_of(w->pools.next, struct pool, node));
	reap(w->loop, &w->reaper, 0);
	if (w->index == 0)
		reload_free_nodes(w); /* the others share worker 0's node table */
	classify_free(w->classifier);
	authq_free(w->authq);
	admin_free(w);
}

/* Free whatever startup set up, in reverse order: pools before the nodes they use, the
 * loops after everything on them. Safe from any point of startup; the threads have ended
 * (team_stop). */
static void teardown(struct daemon *d)
{
	/* a cancel request's thread posts its answer: the loops and workers must outlive it */
	bool helpers_done = d->team == NULL || team_wait_helpers(d->team, 2000);

	if (!helpers_done)
		log_warning("a cancel request is still being forwarded: exiting without freeing "
		            "the event loops");
	if (d->team != NULL) {
		for (int i = 0; i < d->team->n; i++)
			if (d->team->all[i]->loop != NULL)
				reap(d->team->all[i]->loop, &d->team->all[i]->reaper, 0);
		team_drain(d->team);
	}
	http_stop(d->http);
	service_pidfile_remove(d->pidfile, d->pidfile_fd);
	free(d->pidfile);
	for (int i = d->team ? d->team->n - 1 : -1; i >= 0; i--)
		teardown_worker(d, d->team->all[i]);
	if (!helpers_done)
		return;
	for (int i = d->team ? d->team->n - 1 : -1; i >= 0; i--)
		if (d->team->all[i]->loop != NULL)
			ev_loop_destroy(d->team->all[i]->loop);
	team_free(d->team);
	authq_cache_free(d->authq_cache);
	free(d->listeners);
	snapshot_free(&d->files);
}

int main(int argc, char **argv)
{
	struct daemon *d = &daemon_state;
	char err[1024];
	int rc = parse_args(d, argc, argv);

	d->pidfile_fd = -1;
	if (rc >= 0)
		return rc;
	if (!snapshot_load(&d->files, NULL, d->config_path, NULL, true, err, sizeof(err)))
		goto fail;
	__atomic_store_n(&log_min_level, (enum log_level)d->files.cfg->log_level, __ATOMIC_RELAXED);
	if (d->check_only) {
		check_config(d);
		teardown(d);
		return 0;
	}
	if (!setup_process(d, err, sizeof(err)) || !init_team(d, err, sizeof(err)) ||
	    !open_endpoints(d, err, sizeof(err)) || !announce(d, err, sizeof(err)))
		goto fail;
	wire_signals(d);
	if (!team_start(d->team, err, sizeof(err))) {
		team_stop(d->team);
		goto fail;
	}
	log_info("pooler %s started (config %s)", POOLER_VERSION, d->config_path);
	ev_run(d->w->loop, 0);
	team_stop(d->team);
	teardown(d);
	log_info("pooler stopped");
	return 0;
fail:
	if (d->logging)
		log_error("%s", err);
	else
		fprintf(stderr, "pooler: %s\n", err);
	teardown(d);
	return 1;
}
