/* config: the ini file read with inih into one immutable snapshot.
 * Layer 1. Every key comes from a table (name, type, default, range, help) that drives
 * parsing, defaults, --check-config output and the man page pooler.ini(5). Errors name
 * file:line, the section, the key and what is allowed; a key or section written twice, a
 * file without databases, and the HTTP endpoint on the clients' port are errors too. A reload builds a fresh snapshot; the old one is freed by whoever
 * swaps it in. */
#ifndef POOLER_CONFIG_H
#define POOLER_CONFIG_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/socket.h>

#include "util.h"

enum pool_mode { POOL_MODE_SESSION, POOL_MODE_TRANSACTION, POOL_MODE_STATEMENT };
enum pin_action { PIN_ACTION_PIN, PIN_ACTION_ERROR };
enum auth_type { AUTH_TYPE_TRUST, AUTH_TYPE_MD5, AUTH_TYPE_SCRAM };
enum node_role { NODE_ROLE_PRIMARY, NODE_ROLE_REPLICA, NODE_ROLE_AUTO };
enum replica_fallback { FALLBACK_PRIMARY, FALLBACK_ERROR };
enum read_your_writes { RYW_OFF, RYW_LSN, RYW_WINDOW };
/* client_tls_sslmode and a node's sslmode, in libpq's order: each mode asks more. */
enum tls_mode { TLS_DISABLE, TLS_ALLOW, TLS_PREFER, TLS_REQUIRE, TLS_VERIFY_CA, TLS_VERIFY_FULL };

struct node_conf {
	int index; /* its place in config.nodes, and its node's in worker.nodes */
	char *name;
	char *host;
	int port;
	int role; /* enum node_role */
	int weight;
	int cores;              /* 0 = auto: online cores of this machine */
	int spindles;           /* effective_spindle_count */
	int budget;             /* pool_size as written; 0 = auto */
	int pool_size;          /* computed: budget, or cores * 2 + spindles */
	char *pool_size_source; /* how pool_size was computed, for logs */
	int sslmode;            /* enum tls_mode, handed to libpq */
	char *sslrootcert;
	char *sslcert;
	char *sslkey;
	char *sslpassword; /* of an encrypted sslkey; never shown */
	int line;          /* where the section starts, for messages */
	char *cluster;     /* a member of this [cluster.NAME], named CLUSTER.MEMBER; NULL: a
	                    * [node.NAME] section */
	char *member;      /* its Patroni member name */
};

/* [cluster.NAME]: a Patroni cluster whose members become nodes (see cluster.h). */
struct cluster_conf {
	char *name;
	char *urls; /* comma-separated http://HOST:PORT of the members' REST APIs */
	int poll_interval_ms;
	int timeout_ms; /* per URL asked */
	int line;
};

/* A member of a Patroni cluster as the running pooler last saw it: config_load_members
 * turns each into a node section, role auto, weight 0 when it takes no reads. */
struct config_member {
	const char *cluster;
	const char *name;
	const char *host;
	int port;
	bool noloadbalance;
};

/* The largest peer_id: a cancel key's pid has 14 bits for it (peer.h). */
#define CONFIG_PEER_ID_MAX 16383

/* [peers]: another pooler behind the same address (SO_REUSEPORT, a load balancer). A cancel
 * request whose key names its id is sent on to it (see peer.h). */
struct peer_conf {
	int id;     /* 1 to CONFIG_PEER_ID_MAX */
	char *host; /* numeric IPv4 or IPv6 address, or a Unix socket folder */
	int port;
	struct sockaddr_storage addr; /* what to connect to: the address, or the socket file */
	socklen_t addrlen;
	int line;
};

struct db_conf {
	char *name;   /* what clients put in their connection string */
	char *dbname; /* the database on the servers */
	char *nodes;  /* comma-separated node names, as written */
	char *cluster; /* [cluster.NAME] whose members serve it, instead of nodes */
	struct node_conf **node_list;
	int n_nodes;
	bool has_replicas;  /* a node of it may serve reads: role replica or auto */
	bool replicas_only; /* every node of it is a replica (a reporting database) */
	char *server_user;     /* NULL: log in as the client's own user */
	char *server_password; /* NULL: the client's plain secret from the auth file */
	int pool_mode;         /* enum pool_mode */
	int pool_size;         /* 0 = auto */
	int max_pool_share;    /* percent of a node's pool_size */
	int pin_action;        /* enum pin_action: session state pins the client, or fails */
	int min_pool_size;
	int reserve_pool_size;
	int max_db_connections;  /* per node; 0 = no limit */
	int effective_pool_size; /* computed, on the first primary-capable node */
	char *pool_size_source;  /* how effective_pool_size was computed, for logs */
	int line;
};

struct config {
	char *path;
	char *dir; /* folder of the ini, for relative paths */

	/* [pooler] */
	char *listen_addr;
	int listen_port;
	char *unix_socket_dir;
	bool so_reuseport; /* several processes share listen_port; the kernel spreads clients */
	int peer_id;       /* named by this pooler's cancel keys; 0: peering off */
	int auth_type;     /* enum auth_type */
	char *auth_file;
	char *auth_hba_file; /* NULL: auth_type for everyone */
	char *auth_user;     /* NULL: no auth_query */
	char *auth_password; /* NULL: auth_user's plain secret in auth_file */
	char *auth_dbname;   /* NULL: the first database's dbname */
	char *auth_query;
	int auth_query_cache_ttl_ms;
	int client_tls_sslmode; /* enum tls_mode */
	char *client_tls_cert_file;
	char *client_tls_key_file;
	char *client_tls_ca_file;
	char *client_tls_protocols;
	char *client_tls_ciphers;
	char *admin_users;
	char *stats_users;
	char *admin_db;
	char *metrics_listen;
	int log_level;
	char *log_file;      /* "": stderr */
	char *pidfile;       /* "": none; read at startup only */
	int stats_period_ms; /* 0: no summary */
	int workers;
	int max_client_conn;
	int max_packet_size; /* length field of a client message, at most */
	char *server_reset_query;
	int server_connect_timeout_ms;
	int query_wait_timeout_ms;
	int client_login_timeout_ms;
	int shutdown_timeout_ms;
	int health_interval_ms;
	int health_timeout_ms;
	char *health_user; /* NULL: the first database's server_user */
	char *health_password;
	char *health_dbname;
	int max_replica_lag_ms;
	int max_replica_lag_bytes;
	int replica_fallback; /* enum replica_fallback */
	int read_your_writes; /* enum read_your_writes */
	int read_your_writes_window_ms;
	char *read_only_functions;
	char *write_functions;
	int classify_cache_size;
	int prepared_statement_cache_size; /* per server connection; 0: named statements pass */
	int retry_base_ms;
	int retry_max_ms;
	int retry_max_tries;
	int breaker_failure_threshold;
	int breaker_recovery_ms;
	int max_user_connections;
	int reserve_pool_timeout_ms;
	int client_idle_timeout_ms;
	int idle_transaction_timeout_ms;
	int query_timeout_ms;
	int server_idle_timeout_ms;
	int server_lifetime_ms;
	int client_rate_limit;
	int auth_failure_limit;
	char *rate_limit_exempt;

	struct node_conf *nodes;
	int n_nodes;
	struct db_conf *dbs;
	int n_dbs;
	struct cluster_conf *clusters;
	int n_clusters;
	struct peer_conf *peers; /* [peers], in file order; the own peer_id's line among them */
	int n_peers;
};

/* Read and validate path. On failure returns NULL and writes one message to err. */
struct config *config_load(const char *path, char *err, size_t errlen) MUST_USE;
/* As config_load, then sets ("key=value" lines, from SET on the console) over the file's
 * [pooler] keys. */
struct config *config_load_set(const char *path, const char *sets, char *err,
                               size_t errlen) MUST_USE;
/* As config_load_set, with the known members of [cluster.NAME] sections added as nodes
 * (members of a cluster the file no longer has are left out). */
struct config *config_load_members(const char *path, const char *sets,
                                   const struct config_member *members, int n_members, char *err,
                                   size_t errlen) MUST_USE;
void config_free(struct config *cfg);

/* A [pooler] key that SET can change: not the listening sockets (a RELOAD cannot change
 * them either), nor a secret (which the log line of SET would show). */
bool config_key_changeable(const char *key);

const struct db_conf *config_find_db(const struct config *cfg, const char *name);

/* Server connections one (database, user) pool may hold on node n: db's pool_size, or the
 * node's pool_size times max_pool_share, never more than the node's pool_size. src (may be
 * NULL) receives how the number came about. */
int config_pool_size(const struct db_conf *d, const struct node_conf *n, char *src, size_t len);

/* The [peers] entry of that id, or NULL. */
const struct peer_conf *config_find_peer(const struct config *cfg, int id);
/* A peer's address as [peers] writes it: IPV4:PORT, [IPV6]:PORT or /folder:PORT. */
void config_peer_address(const struct peer_conf *p, char *out, size_t cap);

/* Print every key with its effective value and the computed pool sizes. */
void config_print(const struct config *cfg, FILE *out);

/* One key as SHOW CONFIG shows it: its effective value as text (secrets masked), its
 * default written the same way (NULL: none), and whether a RELOAD can change it. */
typedef void config_key_fn(const char *key, const char *value, const char *def, bool changeable,
                           void *arg);
/* Every key, in table order: [pooler], then each node's, each database's and each cluster's. */
void config_foreach(const struct config *cfg, config_key_fn *fn, void *arg);

/* "session", "transaction" or "statement". */
const char *config_pool_mode_name(int mode);

/* Online cores of this machine. */
int config_local_cores(void);

/* "disable" ... "verify-full": libpq's spelling of enum tls_mode. */
const char *config_tls_mode_name(int mode);

/* Write a man page as man(7) source: pooler.ini(5) from the key table (section 5), or
 * pooler(1) (section 1), whose OPTIONS are usage's option lines (--help's text). */
void config_write_man(FILE *out, int section, const char *usage);

/* True when name appears in a comma-separated list. */
bool config_list_has(const char *list, const char *name);

#endif
