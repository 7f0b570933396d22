/* config: see include/config.h. */
#include "config.h"
#include "config_internal.h"

#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

static const char *const pool_modes[] = {"session", "transaction", "statement", NULL};
static const char *const pin_actions[] = {"pin", "error", NULL};
static const char *const auth_types[] = {"trust", "md5", "scram-sha-256", NULL};
static const char *const roles[] = {"primary", "replica", "auto", NULL};
static const char *const fallbacks[] = {"primary", "error", NULL};
static const char *const ryw_modes[] = {"off", "lsn", "window", NULL};
static const char *const tls_modes[] = {"disable",   "allow",       "prefer", "require",
                                        "verify-ca", "verify-full", NULL};

#define P(f) offsetof(struct config, f)
static const struct key pooler_keys[] = {
    {"listen_addr", K_STR, P(listen_addr), "127.0.0.1", 0, 0, NULL, false,
     "comma-separated addresses to listen on; * for all IPv4 and IPv6"},
    {"listen_port", K_INT, P(listen_port), "6432", 1, 65535, NULL, false, "TCP port"},
    {"unix_socket_dir", K_STR, P(unix_socket_dir), "/tmp", 0, 0, NULL, false,
     "folder for the .s.PGSQL.<port> socket; empty disables it"},
    {"so_reuseport", K_BOOL, P(so_reuseport), "off", 0, 0, NULL, false,
     "let several pooler processes listen on the same TCP port (SO_REUSEPORT); the kernel "
     "spreads new connections between them"},
    {"peer_id", K_INT, P(peer_id), "0", 0, CONFIG_PEER_ID_MAX, NULL, false,
     "this pooler's id among the [peers] that share its address, carried in its cancel keys "
     "so that a cancel request reaching another peer is sent on here; 0: peering off"},
    {"auth_type", K_ENUM, P(auth_type), "scram-sha-256", 0, 0, auth_types, false,
     "how clients prove who they are"},
    {"auth_file", K_PATH, P(auth_file), "users.txt", 0, 0, NULL, false,
     "\"user\" \"secret\" per line; plain, md5 or SCRAM secrets"},
    {"auth_hba_file", K_PATH, P(auth_hba_file), NULL, 0, 0, NULL, false,
     "pg_hba.conf-style rules (TYPE DATABASE USER ADDRESS METHOD); first match decides"},
    {"auth_user", K_STR, P(auth_user), NULL, 0, 0, NULL, false,
     "user that runs auth_query on the primary for users missing from auth_file; unset: off"},
    {"auth_password", K_STR, P(auth_password), NULL, 0, 0, NULL, true,
     "its password; default: auth_user's plain secret in auth_file"},
    {"auth_dbname", K_STR, P(auth_dbname), NULL, 0, 0, NULL, false,
     "database auth_query runs in; default: the first database's dbname"},
    {"auth_query", K_STR, P(auth_query),
     "SELECT usename, passwd, valuntil FROM pg_shadow WHERE usename = $1", 0, 0, NULL, false,
     "returns name, verifier (SCRAM or md5) and optionally valid-until for user $1"},
    {"auth_query_cache_ttl", K_MS, P(auth_query_cache_ttl_ms), "60s", 0, 86400000, NULL, false,
     "how long a looked-up verifier (or its absence) is reused; 0 asks every time"},
    {"client_tls_sslmode", K_ENUM, P(client_tls_sslmode), "disable", 0, 0, tls_modes, false,
     "TLS for clients: disable | allow | prefer | require | verify-ca | verify-full"},
    {"client_tls_cert_file", K_PATH, P(client_tls_cert_file), NULL, 0, 0, NULL, false,
     "certificate (PEM, with its chain) the pooler shows clients"},
    {"client_tls_key_file", K_PATH, P(client_tls_key_file), NULL, 0, 0, NULL, false,
     "private key of client_tls_cert_file (PEM, unencrypted)"},
    {"client_tls_ca_file", K_PATH, P(client_tls_ca_file), NULL, 0, 0, NULL, false,
     "CAs whose client certificates are accepted (verify-ca, verify-full, cert auth)"},
    {"client_tls_protocols", K_STR, P(client_tls_protocols), "secure", 0, 0, NULL, false,
     "comma-separated tlsv1.0 | tlsv1.1 | tlsv1.2 | tlsv1.3, or secure (1.2 and 1.3) or all"},
    {"client_tls_ciphers", K_STR, P(client_tls_ciphers), "default", 0, 0, NULL, false,
     "OpenSSL cipher list for TLS 1.2 and below; default keeps OpenSSL's"},
    {"admin_users", K_STR, P(admin_users), "", 0, 0, NULL, false,
     "users allowed to run admin commands"},
    {"stats_users", K_STR, P(stats_users), "", 0, 0, NULL, false,
     "users allowed to run SHOW commands"},
    {"admin_db", K_STR, P(admin_db), "pooler, pgbouncer", 0, 0, NULL, false,
     "names of the admin console database (comma-separated); pgbouncer serves tools written "
     "for PgBouncer"},
    {"metrics_listen", K_STR, P(metrics_listen), "127.0.0.1:9930", 0, 0, NULL, false,
     "address:port of the HTTP endpoint for /metrics, /health, /ready"},
    {"log_level", K_LOGLEVEL, P(log_level), "info", 0, 0, NULL, false,
     "error | warning | info | debug"},
    {"log_file", K_PATH, P(log_file), "", 0, 0, NULL, false,
     "append log lines to this file (reopened on reload); empty: stderr"},
    {"pidfile", K_PATH, P(pidfile), "", 0, 0, NULL, false,
     "write the daemon's pid here once it listens, locked against a second daemon, removed at "
     "exit; empty: none (read at startup only)"},
    {"stats_period", K_MS, P(stats_period_ms), "60s", 0, 86400000, NULL, false,
     "how often a one-line stats summary is logged and SHOW STATS averages roll; 0: never"},
    {"workers", K_AUTO_INT, P(workers), "1", 1, 256, NULL, false,
     "event-loop threads, each with its own clients and server connections; auto = the cores "
     "this process may run on (read at startup only)"},
    {"max_client_conn", K_INT, P(max_client_conn), "10000", 1, 1000000, NULL, false,
     "client connections accepted at most; more get SQLSTATE 53300"},
    {"max_packet_size", K_INT, P(max_packet_size), "1073741822", 1024, 1073741822, NULL, false,
     "largest client message (length field) let through; longer ones close the client "
     "with 08P01 before their body is read (default and most: PostgreSQL's own limit)"},
    {"server_reset_query", K_STR, P(server_reset_query), "DISCARD ALL", 0, 0, NULL, false,
     "run on a server before another client gets it, in session mode"},
    {"server_connect_timeout", K_MS, P(server_connect_timeout_ms), "5s", 100, 3600000, NULL, false,
     "time allowed for connecting and logging in to a server"},
    {"query_wait_timeout", K_MS, P(query_wait_timeout_ms), "120s", 0, 86400000, NULL, false,
     "longest a client waits for a server; 0 waits forever"},
    {"client_login_timeout", K_MS, P(client_login_timeout_ms), "60s", 0, 3600000, NULL, false,
     "time a client has to finish startup and authentication; 0 disables"},
    {"shutdown_timeout", K_MS, P(shutdown_timeout_ms), "30s", 0, 3600000, NULL, false,
     "on SIGTERM, how long running transactions may take to finish"},
    {"health_interval", K_MS, P(health_interval_ms), "1s", 50, 3600000, NULL, false,
     "how often each node is probed (role, WAL position, replay lag)"},
    {"health_timeout", K_MS, P(health_timeout_ms), "3s", 50, 3600000, NULL, false,
     "a probe that takes longer counts as failed"},
    {"health_user", K_STR, P(health_user), NULL, 0, 0, NULL, false,
     "user for probes; default: the first database's server_user"},
    {"health_password", K_STR, P(health_password), NULL, 0, 0, NULL, true,
     "its password; default: that database's server_password"},
    {"health_dbname", K_STR, P(health_dbname), NULL, 0, 0, NULL, false,
     "database for probes; default: the first database's dbname"},
    {"max_replica_lag", K_MS, P(max_replica_lag_ms), "1s", 0, 86400000, NULL, false,
     "a replica further behind (replay delay) gets no reads"},
    {"max_replica_lag_bytes", K_INT, P(max_replica_lag_bytes), "16777216", 0, 2147483647, NULL,
     false, "a replica further behind the primary's WAL (bytes) gets no reads"},
    {"replica_fallback", K_ENUM, P(replica_fallback), "primary", 0, 0, fallbacks, false,
     "with no usable replica, reads go to the primary or fail (primary | error)"},
    {"read_your_writes", K_ENUM, P(read_your_writes), "lsn", 0, 0, ryw_modes, false,
     "after a client's write: off | lsn (replicas that replayed it) | window (primary for a "
     "while)"},
    {"read_your_writes_window", K_MS, P(read_your_writes_window_ms), "2s", 0, 3600000, NULL, false,
     "with read_your_writes = window, how long reads stay on the primary"},
    {"read_only_functions", K_STR, P(read_only_functions), "", 0, 0, NULL, false,
     "volatile functions that only read (comma-separated); they may run on replicas"},
    {"write_functions", K_STR, P(write_functions), "", 0, 0, NULL, false,
     "functions that must run on the primary (comma-separated)"},
    {"classify_cache_size", K_INT, P(classify_cache_size), "4096", 0, 1000000, NULL, false,
     "statement shapes whose routing verdict is cached"},
    {"prepared_statement_cache_size", K_INT, P(prepared_statement_cache_size), "200", 0, 100000,
     NULL, false,
     "prepared statements kept per server connection (least recently used closed first); 0 "
     "passes named statements through untouched"},
    {"retry_base", K_MS, P(retry_base_ms), "100ms", 1, 60000, NULL, false,
     "first wait before retrying a failed server connect (doubles, with full jitter)"},
    {"retry_max", K_MS, P(retry_max_ms), "5s", 1, 600000, NULL, false,
     "longest wait between server connect retries"},
    {"retry_max_tries", K_INT, P(retry_max_tries), "5", 0, 1000, NULL, false,
     "connect retries while clients wait, before they get an error"},
    {"breaker_failure_threshold", K_INT, P(breaker_failure_threshold), "5", 1, 1000, NULL, false,
     "consecutive connect or probe failures that open a node's circuit"},
    {"breaker_recovery", K_MS, P(breaker_recovery_ms), "30s", 10, 3600000, NULL, false,
     "how long an open circuit fails clients at once before one trial connect"},
    {"max_user_connections", K_INT, P(max_user_connections), "0", 0, 100000, NULL, false,
     "server connections per user on each node, over all its databases; 0 = no limit"},
    {"reserve_pool_timeout", K_MS, P(reserve_pool_timeout_ms), "5s", 0, 3600000, NULL, false,
     "a client waiting this long lets its pool use reserve_pool_size more connections"},
    {"client_idle_timeout", K_MS, P(client_idle_timeout_ms), "0", 0, 86400000, NULL, false,
     "close a client idle outside a transaction this long (57P05); 0 disables"},
    {"idle_transaction_timeout", K_MS, P(idle_transaction_timeout_ms), "0", 0, 86400000, NULL,
     false,
     "close a client that holds a server inside a transaction (or mid-message) and sends "
     "nothing this long (25P03); 0 disables"},
    {"query_timeout", K_MS, P(query_timeout_ms), "0", 0, 86400000, NULL, false,
     "cancel a query running this long (57014); 0 disables"},
    {"server_idle_timeout", K_MS, P(server_idle_timeout_ms), "10min", 0, 86400000, NULL, false,
     "close a server connection unused this long (min_pool_size stay); 0 disables"},
    {"server_lifetime", K_MS, P(server_lifetime_ms), "1h", 0, 604800000, NULL, false,
     "close a server connection this old when it is next free; 0 disables"},
    {"client_rate_limit", K_INT, P(client_rate_limit), "0", 0, 1000000, NULL, false,
     "new connections per second from one address (bursts up to 2 s worth); 0 = no limit"},
    {"auth_failure_limit", K_INT, P(auth_failure_limit), "0", 0, 1000000, NULL, false,
     "failed logins per minute from one address before its logins are refused; 0 = no "
     "limit"},
    {"rate_limit_exempt", K_STR, P(rate_limit_exempt), "", 0, 0, NULL, false,
     "addresses (comma-separated) that no rate limit applies to; Unix sockets are exempt"},
};
#undef P

#define N(f) offsetof(struct node_conf, f)
static const struct key node_keys[] = {
    {"host", K_STR, N(host), "127.0.0.1", 0, 0, NULL, false,
     "server address: an IP address, a name (resolved by libpq), or a directory for the "
     "server's Unix socket"},
    {"port", K_INT, N(port), "5432", 1, 65535, NULL, false, "server port"},
    {"role", K_ENUM, N(role), "auto", 0, 0, roles, false, "primary | replica | auto"},
    {"weight", K_AUTO_INT, N(weight), "auto", 0, 1000, NULL, false,
     "share of reads; auto = 1 on a replica, 0 on the primary (reads only when no replica may "
     "serve them)"},
    {"cores", K_AUTO_INT, N(cores), "auto", 1, 4096, NULL, false,
     "the server's cores for pool sizing; auto = this machine's"},
    {"effective_spindle_count", K_INT, N(spindles), "1", 0, 1000, NULL, false,
     "added to cores * 2 for pool sizing; 1 for SSD"},
    {"pool_size", K_AUTO_INT, N(budget), "auto", 1, 100000, NULL, false,
     "server connections to this node over all pools; auto = cores * 2 + "
     "effective_spindle_count"},
    {"sslmode", K_ENUM, N(sslmode), "disable", 0, 0, tls_modes, false,
     "TLS to this server, as libpq's sslmode"},
    {"sslrootcert", K_PATH, N(sslrootcert), NULL, 0, 0, NULL, false,
     "CAs that sign the server's certificate (verify-ca, verify-full)"},
    {"sslcert", K_PATH, N(sslcert), NULL, 0, 0, NULL, false,
     "client certificate the pooler shows this server"},
    {"sslkey", K_PATH, N(sslkey), NULL, 0, 0, NULL, false, "private key of sslcert"},
    {"sslpassword", K_STR, N(sslpassword), NULL, 0, 0, NULL, true,
     "passphrase of an encrypted sslkey"},
};
#undef N

#define D(f) offsetof(struct db_conf, f)
static const struct key db_keys[] = {
    {"dbname", K_STR, D(dbname), NULL, 0, 0, NULL, false,
     "database name on the servers; default: the section name"},
    {"nodes", K_STR, D(nodes), NULL, 0, 0, NULL, false,
     "comma-separated [node.NAME] sections serving it; default: all"},
    {"cluster", K_STR, D(cluster), NULL, 0, 0, NULL, false,
     "[cluster.NAME] whose Patroni members serve it, instead of nodes"},
    {"server_user", K_STR, D(server_user), NULL, 0, 0, NULL, false,
     "user the pooler logs in as; default: the client's user"},
    {"server_password", K_STR, D(server_password), NULL, 0, 0, NULL, true,
     "its password; default: the client's plain secret in auth_file"},
    {"pool_mode", K_ENUM, D(pool_mode), "transaction", 0, 0, pool_modes, false,
     "transaction | session | statement"},
    {"pin_action", K_ENUM, D(pin_action), "pin", 0, 0, pin_actions, false,
     "session state in transaction or statement mode: pin the client to its server, or "
     "error"},
    {"pool_size", K_AUTO_INT, D(pool_size), "auto", 1, 10000, NULL, false,
     "server connections per user and node; auto = the node's pool_size * max_pool_share"},
    {"max_pool_share", K_SHARE, D(max_pool_share), "100%", 1, 100, NULL, false,
     "most of a node's pool_size one (database, user) pool may take (percent or fraction)"},
    {"min_pool_size", K_INT, D(min_pool_size), "0", 0, 10000, NULL, false,
     "server connections kept open even when idle"},
    {"reserve_pool_size", K_INT, D(reserve_pool_size), "0", 0, 10000, NULL, false,
     "extra connections a pool may open once a client waited reserve_pool_timeout"},
    {"max_db_connections", K_INT, D(max_db_connections), "0", 0, 100000, NULL, false,
     "server connections for this database on each node, over all users; 0 = no limit"},
};
#undef D

#define C(f) offsetof(struct cluster_conf, f)
static const struct key cluster_keys[] = {
    {"urls", K_STR, C(urls), NULL, 0, 0, NULL, false,
     "comma-separated Patroni REST API URLs (http://HOST:PORT, numeric address), asked in turn"},
    {"poll_interval", K_MS, C(poll_interval_ms), "1s", 50, 3600000, NULL, false,
     "how often GET /cluster is asked"},
    {"timeout", K_MS, C(timeout_ms), "1s", 10, 60000, NULL, false,
     "for one URL to answer before the next is asked"},
};
#undef C

const struct section_kind config_kinds[CONFIG_KINDS] = {
    [KIND_POOLER] = {"pooler", pooler_keys, ARRAY_LEN(pooler_keys)},
    [KIND_NODE] = {"node.", node_keys, ARRAY_LEN(node_keys)},
    [KIND_DB] = {"database.", db_keys, ARRAY_LEN(db_keys)},
    [KIND_CLUSTER] = {"cluster.", cluster_keys, ARRAY_LEN(cluster_keys)},
};

/* Other names for [pooler] durations: the *_ms spellings (bare numbers in milliseconds),
 * and PgBouncer's server_login_retry, which caps the wait between connect tries. */
const struct key_alias config_aliases[CONFIG_ALIASES] = {
    {"retry_base_ms", "retry_base", K_MSEC},
    {"retry_max_ms", "retry_max", K_MSEC},
    {"breaker_recovery_ms", "breaker_recovery", K_MSEC},
    {"server_login_retry", "retry_max", K_MS},
};

bool config_fail(struct parse_state *ps, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (ps->failed)
		return false;
	ps->failed = true;
	n = snprintf(ps->err, ps->errlen, "%s:%d: ", ps->cfg->path, ps->line);
	if (n < 0 || (size_t)n >= ps->errlen)
		return false;
	va_start(ap, fmt);
	vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return false;
}

const char *config_pool_mode_name(int mode)
{
	return mode >= 0 && mode < (int)ARRAY_LEN(pool_modes) - 1 ? pool_modes[mode] : "?";
}

int config_local_cores(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

/* Durations: a number with an optional unit ms, s, min, h; a bare number means seconds,
 * or milliseconds when bare_ms. */
static bool parse_ms(const char *v, bool bare_ms, long *out)
{
	char *end;
	double x;

	errno = 0;
	x = strtod(v, &end);
	if (errno != 0 || end == v || x < 0)
		return false;
	while (*end == ' ')
		end++;
	if (*end == '\0' && bare_ms)
		;
	else if (*end == '\0' || strcmp(end, "s") == 0)
		x *= 1000;
	else if (strcmp(end, "min") == 0)
		x *= 60000;
	else if (strcmp(end, "h") == 0)
		x *= 3600000;
	else if (strcmp(end, "ms") != 0)
		return false;
	if (!(x < 1e15)) /* also refuses NaN, whose conversion to long is undefined */
		return false;
	*out = (long)x;
	return true;
}

/* Shares: "50%" or "0.5", as a whole percent. */
static bool parse_share(const char *v, long *out)
{
	char *end;
	double x;

	errno = 0;
	x = strtod(v, &end);
	if (errno != 0 || end == v || x < 0)
		return false;
	while (*end == ' ')
		end++;
	if (strcmp(end, "%") == 0)
		;
	else if (*end == '\0' && x <= 1.0)
		x *= 100;
	else
		return false;
	if (!(x < 1e15))
		return false;
	*out = (long)(x + 0.5);
	return true;
}

/* on | off, with the spellings other tools write booleans in. */
static bool set_bool(struct parse_state *ps, const char *section, const struct key *k, bool *field,
                     const char *value)
{
	static const char *const yes[] = {"on", "true", "yes", "1"}, *const no[] = {"off", "false",
	                                                                            "no", "0"};

	for (size_t i = 0; i < ARRAY_LEN(yes); i++)
		if (strcasecmp(value, yes[i]) == 0 || strcasecmp(value, no[i]) == 0) {
			*field = strcasecmp(value, yes[i]) == 0;
			return true;
		}
	return config_fail(ps, "[%s] %s: \"%s\" is not allowed (allowed: on | off)", section,
	                   k->name, value);
}

static bool set_key(struct parse_state *ps, const char *section, void *obj, const struct key *k,
                    const char *value)
{
	char *field = (char *)obj + k->offset;
	long v;

	switch (k->type) {
	case K_STR:
	case K_PATH:
		free(*(char **)field);
		if (k->type == K_PATH && value[0] != '\0' && value[0] != '/') {
			size_t n = strlen(ps->cfg->dir) + strlen(value) + 2;
			char *p = util_calloc(1, n);
			snprintf(p, n, "%s/%s", ps->cfg->dir, value);
			*(char **)field = p;
		} else {
			*(char **)field = util_strdup(value);
		}
		return true;
	case K_INT:
	case K_AUTO_INT:
		if (k->type == K_AUTO_INT && strcasecmp(value, "auto") == 0) {
			*(int *)field = (int)k->min - 1; /* auto: just below the range */
			return true;
		}
		if (!util_parse_int(value, k->min, k->max, &v))
			return config_fail(ps,
			                   "[%s] %s: \"%s\" is not %san integer from %ld to %ld",
			                   section, k->name, value,
			                   k->type == K_AUTO_INT ? "auto or " : "", k->min, k->max);
		*(int *)field = (int)v;
		return true;
	case K_MS:
	case K_MSEC:
		if (!parse_ms(value, k->type == K_MSEC, &v) || v < k->min || v > k->max)
			return config_fail(
			    ps,
			    "[%s] %s: \"%s\" is not a duration from %ldms to %ldms "
			    "(a number with unit ms, s, min or h; bare numbers are %s)",
			    section, k->name, value, k->min, k->max,
			    k->type == K_MSEC ? "milliseconds" : "seconds");
		*(int *)field = (int)v;
		return true;
	case K_ENUM:
		for (int i = 0; k->choices[i] != NULL; i++) {
			if (strcasecmp(value, k->choices[i]) == 0) {
				*(int *)field = i;
				return true;
			}
		}
		{
			char allowed[256] = "";
			for (int i = 0; k->choices[i] != NULL; i++) {
				if (i > 0)
					strncat(allowed, " | ",
					        sizeof(allowed) - strlen(allowed) - 1);
				strncat(allowed, k->choices[i],
				        sizeof(allowed) - strlen(allowed) - 1);
			}
			return config_fail(ps, "[%s] %s: \"%s\" is not allowed (allowed: %s)",
			                   section, k->name, value, allowed);
		}
	case K_BOOL:
		return set_bool(ps, section, k, (bool *)field, value);
	case K_SHARE:
		if (!parse_share(value, &v) || v < k->min || v > k->max)
			return config_fail(
			    ps,
			    "[%s] %s: \"%s\" is not a share from %ld%% to %ld%% (write 50%% "
			    "or 0.5)",
			    section, k->name, value, k->min, k->max);
		*(int *)field = (int)v;
		return true;
	case K_LOGLEVEL:
		v = log_level_parse(value);
		if (v < 0)
			return config_fail(
			    ps,
			    "[%s] %s: \"%s\" is not allowed (allowed: error | warning | info | "
			    "debug)",
			    section, k->name, value);
		*(int *)field = (int)v;
		return true;
	}
	return false;
}

bool config_apply_defaults(struct parse_state *ps, const char *section, void *obj,
                           const struct key *keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (keys[i].def != NULL && !set_key(ps, section, obj, &keys[i], keys[i].def))
			return false;
	return true;
}

/* The line where a key of a section was set, or 0 (left at its default). */
int config_key_line(const struct parse_state *ps, const char *section, const char *key)
{
	for (size_t i = 0; i < ps->n_seen; i++)
		if (strcmp(ps->seen[i].section, section) == 0 && strcmp(ps->seen[i].key, key) == 0)
			return ps->seen[i].line;
	return 0;
}

/* Remember that key (written as `as`, the key or an alias, both from the tables) was set on
 * this line; false (reported) when the section set it before: the last one silently winning
 * hides a mistake. */
static bool note_key(struct parse_state *ps, const char *section, const char *key, const char *as)
{
	for (size_t i = 0; i < ps->n_seen; i++) {
		const struct seen_key *k = &ps->seen[i];
		if (strcmp(k->section, section) != 0 || strcmp(k->key, key) != 0)
			continue;
		return config_fail(
		    ps,
		    "[%s] %s: set twice in the section (first on line %d%s%s); write each "
		    "key once",
		    section, as, k->line, k->as != as ? ", as " : "", k->as != as ? k->as : "");
	}
	if (ps->n_seen == ps->cap_seen) {
		ps->cap_seen = ps->cap_seen ? ps->cap_seen * 2 : 32;
		ps->seen = realloc(ps->seen, ps->cap_seen * sizeof(*ps->seen));
		if (ps->seen == NULL)
			abort();
	}
	ps->seen[ps->n_seen++] = (struct seen_key){util_strdup(section), key, as, ps->line};
	return true;
}

static void free_seen(struct parse_state *ps)
{
	for (size_t i = 0; i < ps->n_seen; i++)
		free(ps->seen[i].section);
	free(ps->seen);
}

static void *find_or_add_cluster(struct parse_state *ps, const char *section, const char *name)
{
	struct config *cfg = ps->cfg;

	for (int i = 0; i < cfg->n_clusters; i++)
		if (strcmp(cfg->clusters[i].name, name) == 0)
			return &cfg->clusters[i];
	cfg->clusters =
	    realloc(cfg->clusters, sizeof(*cfg->clusters) * (size_t)(cfg->n_clusters + 1));
	if (cfg->clusters == NULL)
		abort();
	struct cluster_conf *c = &cfg->clusters[cfg->n_clusters++];
	memset(c, 0, sizeof(*c));
	c->name = util_strdup(name);
	c->line = ps->line;
	config_apply_defaults(ps, section, c, cluster_keys, ARRAY_LEN(cluster_keys));
	return c;
}

static void *find_or_add_section(struct parse_state *ps, const char *section, int kind)
{
	struct config *cfg = ps->cfg;
	const char *name = section + strlen(config_kinds[kind].prefix);

	if (kind == KIND_POOLER)
		return cfg;
	if (kind == KIND_CLUSTER)
		return find_or_add_cluster(ps, section, name);
	if (kind == KIND_NODE) {
		for (int i = 0; i < cfg->n_nodes; i++)
			if (strcmp(cfg->nodes[i].name, name) == 0)
				return &cfg->nodes[i];
		cfg->nodes = realloc(cfg->nodes, sizeof(*cfg->nodes) * (size_t)(cfg->n_nodes + 1));
		if (cfg->nodes == NULL)
			abort();
		struct node_conf *n = &cfg->nodes[cfg->n_nodes];
		memset(n, 0, sizeof(*n));
		n->index = cfg->n_nodes++;
		n->name = util_strdup(name);
		n->line = ps->line;
		config_apply_defaults(ps, section, n, node_keys, ARRAY_LEN(node_keys));
		return n;
	}
	for (int i = 0; i < cfg->n_dbs; i++)
		if (strcmp(cfg->dbs[i].name, name) == 0)
			return &cfg->dbs[i];
	cfg->dbs = realloc(cfg->dbs, sizeof(*cfg->dbs) * (size_t)(cfg->n_dbs + 1));
	if (cfg->dbs == NULL)
		abort();
	struct db_conf *d = &cfg->dbs[cfg->n_dbs++];
	memset(d, 0, sizeof(*d));
	d->name = util_strdup(name);
	d->line = ps->line;
	config_apply_defaults(ps, section, d, db_keys, ARRAY_LEN(db_keys));
	return d;
}

/* Which kind of section this is, or -1 (after reporting it). */
static int section_kind(struct parse_state *ps, const char *section, const char *key)
{
	for (int i = 0; i < (int)CONFIG_KINDS; i++) {
		size_t plen = strlen(config_kinds[i].prefix);
		bool prefix = config_kinds[i].prefix[plen - 1] == '.';
		if (prefix ? (strncmp(section, config_kinds[i].prefix, plen) == 0 &&
		              section[plen] != '\0')
		           : strcmp(section, config_kinds[i].prefix) == 0)
			return i;
	}
	if (section[0] == '\0')
		config_fail(ps, "%s: key outside any section (start with [pooler])", key);
	else
		config_fail(
		    ps,
		    "[%s]: unknown section (allowed: [pooler], [node.NAME], [database.NAME], "
		    "[cluster.NAME], [peers])",
		    section);
	return -1;
}

/* Set through an alias: the [pooler] key it stands for, read with the alias's own unit
 * and named as written in errors. False when name is no alias. */
static bool set_alias(struct parse_state *ps, const char *section, void *obj, const char *name,
                      const char *value, int *ret)
{
	for (size_t a = 0; a < CONFIG_ALIASES; a++) {
		if (strcmp(config_aliases[a].alias, name) != 0)
			continue;
		for (size_t i = 0; i < ARRAY_LEN(pooler_keys); i++)
			if (strcmp(pooler_keys[i].name, config_aliases[a].key) == 0) {
				struct key k = pooler_keys[i];
				k.name = name;
				k.type = config_aliases[a].type;
				*ret = note_key(ps, section, pooler_keys[i].name,
				                config_aliases[a].alias) &&
				       set_key(ps, section, obj, &k, value);
				return true;
			}
	}
	return false;
}

static int on_ini_entry(void *user, const char *section, const char *name, const char *value)
{
	struct parse_state *ps = user;
	int kind;

	if (ps->failed)
		return 0;
	if (strcmp(section, "peers") == 0)
		return config_peer_add(ps, name, value);
	kind = section_kind(ps, section, name);
	if (kind < 0)
		return 0;
	void *obj = find_or_add_section(ps, section, kind);
	if (ps->failed)
		return 0;
	for (size_t i = 0; i < config_kinds[kind].n_keys; i++) {
		const struct key *k = &config_kinds[kind].keys[i];
		if (strcmp(k->name, name) == 0)
			return note_key(ps, section, k->name, k->name) &&
			       set_key(ps, section, obj, k, value);
	}
	int ret;
	if (kind == 0 && set_alias(ps, section, obj, name, value, &ret))
		return ret;
	return config_unknown_key(ps, section, kind, name);
}

/* Where a section's header was seen, or 0 when it was not (yet). */
static int section_line(const struct parse_state *ps, const char *section, int kind)
{
	const char *name = section + strlen(config_kinds[kind].prefix);

	if (kind == 0)
		return ps->pooler_line;
	for (int i = 0; kind == 1 && i < ps->cfg->n_nodes; i++)
		if (strcmp(ps->cfg->nodes[i].name, name) == 0)
			return ps->cfg->nodes[i].line;
	for (int i = 0; kind == 2 && i < ps->cfg->n_dbs; i++)
		if (strcmp(ps->cfg->dbs[i].name, name) == 0)
			return ps->cfg->dbs[i].line;
	for (int i = 0; kind == KIND_CLUSTER && i < ps->cfg->n_clusters; i++)
		if (strcmp(ps->cfg->clusters[i].name, name) == 0)
			return ps->cfg->clusters[i].line;
	return 0;
}

/* inih reports no section that has no keys, yet "[database.x]" alone is a valid database
 * with every default: notice section headers here as the lines go by. */
static void see_section_header(struct parse_state *ps, const char *line)
{
	char name[256];
	const char *p = line, *end;

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != '[' || (end = strchr(p, ']')) == NULL || (size_t)(end - p - 1) >= sizeof(name))
		return;
	memcpy(name, p + 1, (size_t)(end - p - 1));
	name[end - p - 1] = '\0';
	char *trimmed = util_trim(name);
	if (strcmp(trimmed, "peers") == 0) {
		if (ps->peers_line > 0)
			config_fail(ps,
			            "[peers]: section appears twice (first on line %d); write each "
			            "section once",
			            ps->peers_line);
		ps->peers_line = ps->line;
		return;
	}
	int kind = section_kind(ps, trimmed, "");
	if (kind < 0)
		return;
	int first = section_line(ps, trimmed, kind);
	if (first > 0) {
		config_fail(
		    ps, "[%s]: section appears twice (first on line %d); write each section once",
		    trimmed, first);
		return;
	}
	if (kind == 0)
		ps->pooler_line = ps->line;
	find_or_add_section(ps, trimmed, kind);
}

/* inih hands no line numbers to handlers, so the reader counts the lines it returns. */
static char *read_line(char *str, int num, void *stream)
{
	struct parse_state *ps = stream;
	char *r = fgets(str, num, ps->file);
	if (r != NULL) {
		ps->line++;
		if (!ps->failed)
			see_section_header(ps, r);
	}
	return r;
}

const char *config_tls_mode_name(int mode)
{
	return tls_modes[mode];
}

static bool differs(const char *name, void *arg)
{
	return strcmp(name, arg) != 0;
}

bool config_list_has(const char *list, const char *name)
{
	/* util_split stops, false, at the first name that does not differ */
	return list != NULL && !util_split(list, differs, (void *)name);
}

/* The file as inih reads it: false (reported) when it cannot be read or a line is wrong. */
static bool read_file(struct parse_state *ps, const char *path)
{
	struct stat st;
	int r;

	ps->file = fopen(path, "r");
	if (ps->file == NULL) {
		snprintf(ps->err, ps->errlen, "%s: cannot open: %s", path, strerror(errno));
		return false;
	}
	if (fstat(fileno(ps->file), &st) == 0 && S_ISDIR(st.st_mode)) {
		fclose(ps->file);
		snprintf(ps->err, ps->errlen, "%s: is a directory; -c takes the ini file", path);
		return false;
	}
	ini_allow_multiline = false;
	ini_stop_on_first_error = true;
	ini_use_stack = false;
	ini_allow_realloc = true;
	ini_max_line = 8192;
	r = ini_parse_stream(read_line, ps, on_ini_entry, ps);
	fclose(ps->file);
	if (ps->failed)
		return false;
	if (r != 0) {
		ps->line = r;
		return config_fail(
		    ps, "syntax error (expected [section], key = value, or a ; comment)");
	}
	return true;
}

/* SET on the console: "key=value" lines over the [pooler] keys of the file. */
static bool apply_sets(struct parse_state *ps, const char *sets)
{
	char *copy = util_strdup(sets), *save = NULL;
	bool ok = true;

	for (char *line = strtok_r(copy, "\n", &save); ok && line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '=');
		ok = false;
		if (eq == NULL)
			break;
		*eq = '\0';
		for (size_t i = 0; i < ARRAY_LEN(pooler_keys); i++)
			if (strcmp(pooler_keys[i].name, line) == 0)
				ok = set_key(ps, "SET", ps->cfg, &pooler_keys[i], eq + 1);
	}
	free(copy);
	return ok;
}

static struct config *load(const char *path, const char *sets, const struct config_member *m,
                           int n_members, char *err, size_t errlen);

/* Each known member of a configured cluster becomes the node section CLUSTER.MEMBER. */
static bool add_members(struct parse_state *ps, const struct config_member *m, int n)
{
	struct config *cfg = ps->cfg;
	char section[300];

	for (int i = 0; i < n; i++) {
		bool configured = false;
		for (int k = 0; k < cfg->n_clusters; k++)
			configured = configured || strcmp(cfg->clusters[k].name, m[i].cluster) == 0;
		if (!configured)
			continue;
		snprintf(section, sizeof(section), "node.%s.%s", m[i].cluster, m[i].name);
		for (int k = 0; k < cfg->n_nodes; k++)
			if (strcmp(cfg->nodes[k].name, section + 5) == 0)
				return config_fail(
				    ps, "[%s]: a section has the name of a member of cluster %s",
				    section, m[i].cluster);
		struct node_conf *nc = find_or_add_section(ps, section, KIND_NODE);
		free(nc->host);
		nc->host = util_strdup(m[i].host);
		nc->port = m[i].port;
		nc->role = NODE_ROLE_AUTO;
		if (m[i].noloadbalance)
			nc->weight = 0;
		nc->cluster = util_strdup(m[i].cluster);
		nc->member = util_strdup(m[i].name);
	}
	return true;
}

/* No database may take a name the admin console answers to. */
static bool admin_db_free(struct parse_state *ps)
{
	const struct config *cfg = ps->cfg;

	for (int i = 0; i < cfg->n_dbs; i++)
		if (config_list_has(cfg->admin_db, cfg->dbs[i].name)) {
			ps->line = cfg->dbs[i].line;
			return config_fail(
			    ps, "[database.%s]: the admin console answers to this name (admin_db = %s)",
			    cfg->dbs[i].name, cfg->admin_db);
		}
	return true;
}

struct config *config_load(const char *path, char *err, size_t errlen)
{
	return load(path, NULL, NULL, 0, err, errlen);
}

struct config *config_load_set(const char *path, const char *sets, char *err, size_t errlen)
{
	return load(path, sets, NULL, 0, err, errlen);
}

struct config *config_load_members(const char *path, const char *sets,
                                   const struct config_member *members, int n_members, char *err,
                                   size_t errlen)
{
	return load(path, sets, members, n_members, err, errlen);
}

static struct config *load(const char *path, const char *sets, const struct config_member *m,
                           int n_members, char *err, size_t errlen)
{
	struct parse_state ps = {.err = err, .errlen = errlen};
	struct config *cfg = util_calloc(1, sizeof(*cfg));
	const char *slash;

	cfg->path = util_strdup(path);
	slash = strrchr(path, '/');
	cfg->dir = slash ? strndup(path, (size_t)(slash - path == 0 ? 1 : slash - path))
	                 : util_strdup(".");
	ps.cfg = cfg;
	config_apply_defaults(&ps, "pooler", cfg, pooler_keys, ARRAY_LEN(pooler_keys));
	bool ok = read_file(&ps, path) && (sets == NULL || apply_sets(&ps, sets)) &&
	          add_members(&ps, m, n_members) && config_check_whole(&ps) && admin_db_free(&ps) &&
	          config_check_peers(&ps);
	free_seen(&ps);
	if (ok)
		return cfg;
	config_free(cfg);
	return NULL;
}

void config_free_keys(void *obj, const struct key *keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (keys[i].type == K_STR || keys[i].type == K_PATH)
			free(*(char **)((char *)obj + keys[i].offset));
}

void config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	config_free_keys(cfg, pooler_keys, ARRAY_LEN(pooler_keys));
	for (int i = 0; i < cfg->n_nodes; i++) {
		config_free_keys(&cfg->nodes[i], node_keys, ARRAY_LEN(node_keys));
		free(cfg->nodes[i].name);
		free(cfg->nodes[i].pool_size_source);
		free(cfg->nodes[i].cluster);
		free(cfg->nodes[i].member);
	}
	for (int i = 0; i < cfg->n_dbs; i++) {
		config_free_keys(&cfg->dbs[i], db_keys, ARRAY_LEN(db_keys));
		free(cfg->dbs[i].name);
		free(cfg->dbs[i].node_list);
		free(cfg->dbs[i].pool_size_source);
	}
	for (int i = 0; i < cfg->n_clusters; i++) {
		config_free_keys(&cfg->clusters[i], cluster_keys, ARRAY_LEN(cluster_keys));
		free(cfg->clusters[i].name);
	}
	config_free_peers(cfg);
	free(cfg->clusters);
	free(cfg->nodes);
	free(cfg->dbs);
	free(cfg->path);
	free(cfg->dir);
	free(cfg);
}

const struct db_conf *config_find_db(const struct config *cfg, const char *name)
{
	for (int i = 0; i < cfg->n_dbs; i++)
		if (strcmp(cfg->dbs[i].name, name) == 0)
			return &cfg->dbs[i];
	return NULL;
}

