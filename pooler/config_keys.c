/* config_keys: the key tables of every section, with their defaults, ranges and help
 * (what --check-config, --help-config and the man page print), and the names of the
 * enumerated values. Parsing is in config.c. */
#include "config.h"
#include "config_internal.h"

#include <stddef.h>

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

const char *config_pool_mode_name(int mode)
{
	return mode >= 0 && mode < (int)ARRAY_LEN(pool_modes) - 1 ? pool_modes[mode] : "?";
}

const char *config_tls_mode_name(int mode)
{
	return tls_modes[mode];
}
