/* import: see include/import.h. */
#include "import.h"

#include <ctype.h>
#include <ini.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "util.h"

/* One "key = value" of the PgBouncer file, in file order. */
struct entry {
	char *section, *key, *value;
};

struct pgb {
	struct entry *e;
	int n;
	const char *dir; /* of the PgBouncer file: its relative paths are taken from there */
};

static int on_entry(void *user, const char *section, const char *key, const char *value)
{
	struct pgb *b = user;
	b->e = realloc(b->e, sizeof(*b->e) * (size_t)(b->n + 1));
	if (b->e == NULL)
		abort();
	b->e[b->n++] = (struct entry){util_strdup(section), util_strdup(key), util_strdup(value)};
	return 1;
}

/* The value of key in [pgbouncer], or def. */
static const char *pgb_get(const struct pgb *b, const char *key, const char *def)
{
	for (int i = b->n - 1; i >= 0; i--)
		if (strcasecmp(b->e[i].section, "pgbouncer") == 0 && strcmp(b->e[i].key, key) == 0)
			return b->e[i].value;
	return def;
}

/* ---- [pgbouncer] ---------------------------------------------------------------------- */

/* A key carried under the same or another name: values mean the same here (durations in
 * seconds when bare, paths, lists). */
static const struct {
	const char *pgb, *ours;
} same_keys[] = {
    {"listen_port", "listen_port"},
    {"unix_socket_dir", "unix_socket_dir"},
    {"auth_hba_file", "auth_hba_file"},
    {"auth_user", "auth_user"},
    {"auth_query", "auth_query"},
    {"auth_dbname", "auth_dbname"},
    {"admin_users", "admin_users"},
    {"stats_users", "stats_users"},
    {"max_client_conn", "max_client_conn"},
    {"max_user_connections", "max_user_connections"},
    {"server_reset_query", "server_reset_query"},
    {"server_connect_timeout", "server_connect_timeout"},
    {"server_login_retry", "server_login_retry"},
    {"server_lifetime", "server_lifetime"},
    {"server_idle_timeout", "server_idle_timeout"},
    {"query_timeout", "query_timeout"},
    {"query_wait_timeout", "query_wait_timeout"},
    {"client_idle_timeout", "client_idle_timeout"},
    {"client_login_timeout", "client_login_timeout"},
    {"idle_transaction_timeout", "idle_transaction_timeout"},
    {"reserve_pool_timeout", "reserve_pool_timeout"},
    {"stats_period", "stats_period"},
    {"logfile", "log_file"},
    {"client_tls_sslmode", "client_tls_sslmode"},
    {"client_tls_cert_file", "client_tls_cert_file"},
    {"client_tls_key_file", "client_tls_key_file"},
    {"client_tls_ca_file", "client_tls_ca_file"},
    {"client_tls_protocols", "client_tls_protocols"},
    {"client_tls_ciphers", "client_tls_ciphers"},
};

/* Keys read elsewhere (into the nodes and databases, or specially below). */
static const char *const handled_keys[] = {
    "listen_addr",
    "auth_type",
    "auth_file",
    "pool_mode",
    "default_pool_size",
    "min_pool_size",
    "reserve_pool_size",
    "max_db_connections",
    "server_tls_sslmode",
    "server_tls_ca_file",
    "server_tls_cert_file",
    "server_tls_key_file",
    "verbose",
    "max_packet_size",
};

/* Keys that need nothing here, and why; any other key is reported as not carried. */
static const struct {
	const char *key, *why;
} moot_keys[] = {
    {"pidfile", "no pid file: run it under systemd or another supervisor"},
    {"ignore_startup_parameters", "no startup parameter is refused here"},
    {"server_round_robin", "replicas are weighted by load; one node per host here"},
    {"so_reuseport", "set on the listening sockets already"},
    {"user", "the pooler does not switch users itself"},
    {"syslog", "log to stderr or log_file; journald takes stderr"},
    {"max_prepared_statements", "prepared statements are always carried "
                                "(prepared_statement_cache_size bounds them per server)"},
};

static bool in_list(const char *const *list, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], key) == 0)
			return true;
	return false;
}

/* A path as the pooler reads it: relative paths of the PgBouncer file made absolute. */
static void put_path(FILE *out, const struct pgb *b, const char *key, const char *path)
{
	if (path[0] == '\0' || path[0] == '/')
		fprintf(out, "%s = %s\n", key, path);
	else
		fprintf(out, "%s = %s/%s\n", key, b->dir, path);
}

/* auth_type: ours are trust, md5 and scram-sha-256 (md5 accepts SCRAM secrets too, as
 * PgBouncer's does); hba means the rules of auth_hba_file decide. */
static void put_auth_type(FILE *out, const char *t)
{
	if (strcmp(t, "md5") == 0 || strcmp(t, "scram-sha-256") == 0 || strcmp(t, "trust") == 0)
		fprintf(out, "auth_type = %s\n", t);
	else if (strcmp(t, "hba") == 0)
		fprintf(out, "; auth_type = hba: the rules of auth_hba_file decide; this is the "
		             "method for a client no rule matches\nauth_type = scram-sha-256\n");
	else
		fprintf(
		    out,
		    "; not carried: auth_type = %s (allowed here: trust, md5, scram-sha-256, and "
		    "per-rule methods in auth_hba_file); md5 used instead\nauth_type = md5\n",
		    t);
}

static void put_pooler(FILE *out, const struct pgb *b)
{
	const char *listen = pgb_get(b, "listen_addr", "");

	fprintf(out, "[pooler]\n");
	if (strcmp(listen, "localhost") == 0) {
		fprintf(out, "; listen_addr = localhost: IPv4's loopback (add ::1 for IPv6's)\n");
		listen = "127.0.0.1";
	}
	fprintf(out, "listen_addr = %s\n", listen[0] ? listen : "127.0.0.1");
	const char *packet = pgb_get(b, "max_packet_size", NULL);
	if (packet != NULL && atol(packet) > 1073741822)
		fprintf(out,
		        "; not carried: max_packet_size = %s (at most 1073741822 here, the "
		        "default: PostgreSQL's own limit)\n",
		        packet);
	else if (packet != NULL)
		fprintf(out, "max_packet_size = %s\n", packet);
	put_auth_type(out, pgb_get(b, "auth_type", "md5"));
	put_path(out, b, "auth_file", pgb_get(b, "auth_file", ""));
	if (strcmp(pgb_get(b, "verbose", "0"), "0") != 0)
		fprintf(out, "log_level = debug\n");
	fprintf(out, "; the console answers as pgbouncer too (admin_db = pooler, pgbouncer)\n");
	for (int i = 0; i < b->n; i++) {
		const struct entry *e = &b->e[i];
		bool done = false;
		if (strcasecmp(e->section, "pgbouncer") != 0)
			continue;
		if (pgb_get(b, e->key, NULL) != e->value) {
			/* PgBouncer takes the last of a key written twice; the pooler refuses both */
			fprintf(out, "; overridden below: %s = %s\n", e->key, e->value);
			continue;
		}
		for (size_t k = 0; !done && k < ARRAY_LEN(same_keys); k++)
			if (strcmp(same_keys[k].pgb, e->key) == 0) {
				if (strstr(e->key, "_file") || strcmp(e->key, "logfile") == 0)
					put_path(out, b, same_keys[k].ours, e->value);
				else
					fprintf(out, "%s = %s\n", same_keys[k].ours, e->value);
				done = true;
			}
		if (done || in_list(handled_keys, ARRAY_LEN(handled_keys), e->key))
			continue;
		for (size_t k = 0; !done && k < ARRAY_LEN(moot_keys); k++)
			if (strcmp(moot_keys[k].key, e->key) == 0) {
				fprintf(out, "; not needed: %s = %s (%s)\n", e->key, e->value,
				        moot_keys[k].why);
				done = true;
			}
		if (!done)
			fprintf(out, "; not carried: %s = %s (no such setting here)\n", e->key,
			        e->value);
	}
}

/* ---- [databases] ---------------------------------------------------------------------- */

/* One [databases] line: its libpq-style "key=value ..." parsed. */
struct dbline {
	char *k[32], *v[32];
	int n;
};

/* Parse "host=a port=5432 password='x y'" (single quotes, backslash escapes). */
static bool parse_connstr(const char *s, struct dbline *d)
{
	char buf[1024];
	d->n = 0;
	while (*s) {
		while (isspace((unsigned char)*s))
			s++;
		if (*s == '\0')
			break;
		const char *eq = strchr(s, '=');
		if (eq == NULL || d->n == 32)
			return false;
		d->k[d->n] = strndup(s, (size_t)(eq - s));
		util_trim(d->k[d->n]);
		s = eq + 1;
		while (*s == ' ')
			s++;
		size_t n = 0;
		bool quoted = *s == '\'';
		s += quoted;
		while (*s && (quoted ? *s != '\'' : !isspace((unsigned char)*s)) &&
		       n + 1 < sizeof(buf)) {
			if (*s == '\\' && s[1])
				s++;
			buf[n++] = *s++;
		}
		if (quoted && *s == '\'')
			s++;
		buf[n] = '\0';
		d->v[d->n++] = util_strdup(buf);
	}
	return true;
}

static const char *db_get(const struct dbline *d, const char *key)
{
	for (int i = 0; i < d->n; i++)
		if (strcmp(d->k[i], key) == 0)
			return d->v[i];
	return NULL;
}

static void dbline_free(struct dbline *d)
{
	for (int i = 0; i < d->n; i++) {
		free(d->k[i]);
		free(d->v[i]);
	}
	d->n = 0;
}

/* A node's name from its address: letters, digits and _ only. */
static void node_name(const char *host, const char *port, char *name, size_t len)
{
	size_t n = 0;
	for (const char *s = host; *s && n + 8 < len; s++)
		if (isalnum((unsigned char)*s))
			name[n++] = *s;
		else if (n > 0 && name[n - 1] != '_')
			name[n++] = '_';
	while (n > 0 && name[n - 1] == '_')
		n--;
	snprintf(name + n, len - n, "%s%s", n ? "_" : "socket_", port);
}

/* The node of a [databases] line: host and port, with PgBouncer's defaults (a Unix socket
 * in unix_socket_dir, port 5432). Writes its section the first time an address is seen. */
static void put_node(FILE *out, const struct pgb *b, const struct dbline *d, char *name, size_t len,
                     char ***seen, int *n_seen)
{
	const char *host = db_get(d, "host");
	const char *port = db_get(d, "port") ? db_get(d, "port") : "5432";
	if (host == NULL || host[0] == '\0')
		host = pgb_get(b, "unix_socket_dir", "/tmp");
	node_name(host, port, name, len);
	for (int i = 0; i < *n_seen; i++)
		if (strcmp((*seen)[i], name) == 0)
			return;
	*seen = realloc(*seen, sizeof(**seen) * (size_t)(*n_seen + 1));
	if (*seen == NULL)
		abort();
	(*seen)[(*n_seen)++] = util_strdup(name);
	fprintf(out, "\n[node.%s]\nhost = %s\nport = %s\n", name, host, port);
	fprintf(out, "; PgBouncer sends everything to this one server; auto finds whether it is a "
	             "primary or a replica\nrole = auto\n");
	/* PgBouncer's server_tls_sslmode defaults to prefer, ours to disable */
	fprintf(out, "sslmode = %s\n", pgb_get(b, "server_tls_sslmode", "prefer"));
	const char *const files[][2] = {{"server_tls_ca_file", "sslrootcert"},
	                                {"server_tls_cert_file", "sslcert"},
	                                {"server_tls_key_file", "sslkey"}};
	for (size_t i = 0; i < ARRAY_LEN(files); i++)
		if (pgb_get(b, files[i][0], NULL) != NULL)
			put_path(out, b, files[i][1], pgb_get(b, files[i][0], NULL));
}

/* server_password: the line's password, else (as PgBouncer does) the plain secret of its
 * user in the auth file. */
static void put_server_password(FILE *out, const struct dbline *d, const struct auth_file *af)
{
	const char *user = db_get(d, "user"), *pw = db_get(d, "password");
	if (user == NULL)
		return;
	if (pw != NULL) {
		fprintf(out, "server_password = %s\n", pw);
		return;
	}
	const struct auth_user *u = af ? auth_file_find(af, user) : NULL;
	if (u != NULL && u->kind == SECRET_PLAIN)
		fprintf(out, "; from the auth file, as PgBouncer takes it\nserver_password = %s\n",
		        u->plain);
	else
		fprintf(out,
		        "; not carried: user %s logs in with a hashed secret of the auth file; "
		        "set server_password (or use .pgpass or trust on the server)\n",
		        user);
}

/* A pool setting: the line's own, else PgBouncer's global one, else none. */
static void put_pool_key(FILE *out, const struct pgb *b, const struct dbline *d,
                         const char *line_key, const char *global_key, const char *ours,
                         const char *pgb_default)
{
	const char *v = db_get(d, line_key);
	if (v == NULL)
		v = pgb_get(b, global_key, pgb_default);
	if (v != NULL)
		fprintf(out, "%s = %s\n", ours, v);
}

static const char *const db_known[] = {
    "host",      "port",      "dbname",        "user",         "password",
    "pool_size", "pool_mode", "min_pool_size", "reserve_pool", "max_db_connections"};

static void put_database(FILE *out, const struct pgb *b, const struct entry *e,
                         const struct auth_file *af, char ***seen, int *n_seen)
{
	struct dbline d;
	char node[128];

	if (strcmp(e->key, "*") == 0) {
		fprintf(out,
		        "\n; not carried: the fallback database \"*\" = %s (name each "
		        "database in its own section)\n",
		        e->value);
		return;
	}
	if (!parse_connstr(e->value, &d)) {
		fprintf(out, "\n; not carried: %s = %s (cannot read it)\n", e->key, e->value);
		dbline_free(&d);
		return;
	}
	put_node(out, b, &d, node, sizeof(node), seen, n_seen);
	fprintf(out, "\n[database.%s]\n", e->key);
	fprintf(out, "dbname = %s\nnodes = %s\n",
	        db_get(&d, "dbname") ? db_get(&d, "dbname") : e->key, node);
	if (db_get(&d, "user"))
		fprintf(out, "server_user = %s\n", db_get(&d, "user"));
	put_server_password(out, &d, af);
	/* PgBouncer's defaults where they differ from ours: session mode, 20 per pool (the
	 * node's pool_size, cores * 2 + spindles by default, still caps it) */
	put_pool_key(out, b, &d, "pool_mode", "pool_mode", "pool_mode", "session");
	put_pool_key(out, b, &d, "pool_size", "default_pool_size", "pool_size", "20");
	put_pool_key(out, b, &d, "min_pool_size", "min_pool_size", "min_pool_size", NULL);
	put_pool_key(out, b, &d, "reserve_pool", "reserve_pool_size", "reserve_pool_size", NULL);
	put_pool_key(out, b, &d, "max_db_connections", "max_db_connections", "max_db_connections",
	             NULL);
	for (int i = 0; i < d.n; i++)
		if (!in_list(db_known, ARRAY_LEN(db_known), d.k[i]))
			fprintf(out, "; not carried: %s=%s (no such database setting here)\n",
			        d.k[i], d.v[i]);
	dbline_free(&d);
}

int import_pgbouncer(const char *path, FILE *out, FILE *err)
{
	struct pgb b = {0};
	char **seen = NULL;
	int n_seen = 0, rc;
	struct auth_file *af = NULL;
	char msg[512];
	char *full = realpath(path, NULL); /* its folder anchors relative paths */
	const char *slash = full ? strrchr(full, '/') : NULL;
	char *dir = slash ? strndup(full, (size_t)(slash - full == 0 ? 1 : slash - full))
	                  : util_strdup(".");

	free(full);

	b.dir = dir;
	rc = ini_parse(path, on_entry, &b);
	if (rc != 0) {
		fprintf(err, "pooler: %s%s%d: cannot read it as a PgBouncer ini file\n", path,
		        rc > 0 ? ":" : "", rc > 0 ? rc : 0);
		rc = 1;
		goto out;
	}
	const char *auth = pgb_get(&b, "auth_file", NULL);
	if (auth != NULL) {
		char file[4096];
		snprintf(file, sizeof(file), "%s%s%s", auth[0] == '/' ? "" : dir,
		         auth[0] == '/' ? "" : "/", auth);
		af = auth_file_load(file, msg, sizeof(msg));
		if (af == NULL)
			fprintf(err, "pooler: warning: %s\n", msg);
	}
	fprintf(out, "; made by pooler --import-pgbouncer from %s\n", path);
	fprintf(out, "; a comment names each setting that could not be carried\n\n");
	put_pooler(out, &b);
	for (int i = 0; i < b.n; i++) {
		if (strcasecmp(b.e[i].section, "databases") == 0)
			put_database(out, &b, &b.e[i], af, &seen, &n_seen);
		else if (strcasecmp(b.e[i].section, "users") == 0)
			fprintf(out,
			        "\n; not carried: [users] %s = %s (pool settings are per database "
			        "here)\n",
			        b.e[i].key, b.e[i].value);
		else if (strcasecmp(b.e[i].section, "pgbouncer") != 0)
			fprintf(out, "\n; not carried: [%s] %s = %s (unknown section)\n",
			        b.e[i].section, b.e[i].key, b.e[i].value);
	}
	rc = 0;
out:
	for (int i = 0; i < b.n; i++) {
		free(b.e[i].section);
		free(b.e[i].key);
		free(b.e[i].value);
	}
	for (int i = 0; i < n_seen; i++)
		free(seen[i]);
	free(seen);
	free(b.e);
	auth_file_free(af);
	free(dir);
	return rc;
}
