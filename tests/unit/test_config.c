/* Unit tests for config: the documented minimal file, defaults, sizing, and errors that
 * name file, line and key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sys/socket.h>

#include "config.h"
#include "log.h"

enum log_level log_min_level = LOG_ERROR;

static char path[64];

static const char *write_ini(const char *text)
{
	snprintf(path, sizeof(path), "/tmp/pooler-test-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

/* The minimal file from DESIGN.md, verbatim. */
static const char *minimal =
    "[pooler]\n"
    "listen_addr = 127.0.0.1\n"
    "listen_port = 6432\n"
    "auth_type = scram-sha-256        ; scram-sha-256 | md5 | trust\n"
    "auth_file = users.txt            ; PgBouncer's userlist.txt format: \"user\" \"secret\" per "
    "line\n"
    "admin_users = admin\n"
    "metrics_listen = 127.0.0.1:9930\n"
    "log_level = info\n"
    "\n"
    "[node.primary]\n"
    "host = 127.0.0.1\n"
    "port = 5432\n"
    "role = primary                   ; primary | replica | auto\n"
    "\n"
    "[node.replica1]\n"
    "host = 127.0.0.1\n"
    "port = 5433\n"
    "role = replica\n"
    "\n"
    "[database.app]\n"
    "dbname = app                     ; database name on the servers\n"
    "nodes = primary, replica1\n"
    "server_user = app\n"
    "server_password = app\n"
    "pool_mode = transaction          ; transaction | session\n"
    "pool_size = auto                 ; cores * 2 + effective_spindle_count\n";

static void test_minimal(void **state)
{
	char err[512];
	(void)state;
	struct config *cfg = config_load(write_ini(minimal), err, sizeof(err));
	unlink(path);
	assert_non_null(cfg);
	assert_string_equal(cfg->listen_addr, "127.0.0.1");
	assert_int_equal(cfg->listen_port, 6432);
	assert_int_equal(cfg->auth_type, AUTH_TYPE_SCRAM);
	assert_string_equal(cfg->auth_file, "/tmp/users.txt"); /* relative to the ini */
	assert_int_equal(cfg->log_level, LOG_INFO);
	assert_int_equal(cfg->n_nodes, 2);
	assert_int_equal(cfg->nodes[0].role, NODE_ROLE_PRIMARY);
	assert_int_equal(cfg->nodes[1].role, NODE_ROLE_REPLICA);
	assert_int_equal(cfg->nodes[1].port, 5433);

	const struct db_conf *db = config_find_db(cfg, "app");
	assert_non_null(db);
	assert_string_equal(db->server_user, "app");
	assert_int_equal(db->pool_mode, POOL_MODE_TRANSACTION);
	assert_int_equal(db->n_nodes, 2);
	assert_int_equal(db->pool_size, 0); /* auto */
	assert_int_equal(db->effective_pool_size, config_local_cores() * 2 + 1);
	assert_null(config_find_db(cfg, "nope"));
	/* defaults a newcomer can live with */
	assert_string_equal(cfg->server_reset_query, "DISCARD ALL");
	assert_int_equal(cfg->query_wait_timeout_ms, 120000);
	assert_int_equal(cfg->prepared_statement_cache_size, 200);
	assert_int_equal(db->pin_action, PIN_ACTION_PIN);
	config_free(cfg);
}

static void test_sizing_and_units(void **state)
{
	char err[512];
	(void)state;
	struct config *cfg = config_load(write_ini("[pooler]\n"
	                                           "query_wait_timeout = 1500ms\n"
	                                           "client_login_timeout = 2min\n"
	                                           "shutdown_timeout = 3\n"
	                                           "[node.db1]\n"
	                                           "cores = 8\n"
	                                           "effective_spindle_count = 4\n"
	                                           "role = primary\n"
	                                           "[database.x]\n"
	                                           "[database.y]\n"
	                                           "pool_size = 7\n"
	                                           "pool_mode = session\n"
	                                           "[database.z]\n"
	                                           "pool_mode = statement\n"
	                                           "pin_action = error\n"),
	                                 err, sizeof(err));
	unlink(path);
	assert_non_null(cfg);
	assert_int_equal(cfg->query_wait_timeout_ms, 1500);
	assert_int_equal(cfg->client_login_timeout_ms, 120000);
	assert_int_equal(cfg->shutdown_timeout_ms, 3000);
	assert_int_equal(cfg->nodes[0].pool_size, 8 * 2 + 4);
	const struct db_conf *x = config_find_db(cfg, "x");
	assert_string_equal(x->dbname, "x"); /* defaults to the section name */
	assert_int_equal(x->effective_pool_size, 20);
	assert_non_null(strstr(x->pool_size_source, "cores 8"));
	const struct db_conf *y = config_find_db(cfg, "y");
	assert_int_equal(y->effective_pool_size, 7);
	assert_int_equal(y->pool_mode, POOL_MODE_SESSION);
	const struct db_conf *z = config_find_db(cfg, "z");
	assert_int_equal(z->pool_mode, POOL_MODE_STATEMENT);
	assert_string_equal(config_pool_mode_name(z->pool_mode), "statement");
	assert_int_equal(z->pin_action, PIN_ACTION_ERROR);
	config_free(cfg);
}

/* The spellings the *_ms names and PgBouncer's server_login_retry give the same settings. */
static void test_duration_aliases(void **state)
{
	char err[512];
	(void)state;
	struct config *cfg = config_load(write_ini("[pooler]\n"
	                                           "retry_base_ms = 50\n"
	                                           "retry_max_ms = 2s\n"
	                                           "breaker_recovery_ms = 1500\n"
	                                           "[node.a]\n"
	                                           "[database.d]\n"),
	                                 err, sizeof(err));
	unlink(path);
	assert_non_null(cfg);
	assert_int_equal(cfg->retry_base_ms, 50); /* bare numbers of *_ms keys: milliseconds */
	assert_int_equal(cfg->retry_max_ms, 2000);
	assert_int_equal(cfg->breaker_recovery_ms, 1500);
	config_free(cfg);

	cfg = config_load(write_ini("[pooler]\nserver_login_retry = 3\n[node.a]\n[database.d]\n"),
	                  err, sizeof(err));
	unlink(path);
	assert_non_null(cfg);
	assert_int_equal(cfg->retry_max_ms, 3000); /* PgBouncer's, in seconds */
	config_free(cfg);

	assert_null(config_load(write_ini("[pooler]\nretry_max_ms = soon\n"), err, sizeof(err)));
	unlink(path);
	assert_non_null(strstr(err, "retry_max_ms"));
	assert_non_null(strstr(err, "milliseconds"));
}

struct bad_case {
	const char *text;
	const char *expect[3]; /* substrings of the message */
};

static void test_errors(void **state)
{
	static const struct bad_case cases[] = {
	    {"[pooler]\nlisten_port = 6432\ncolour = red\n", {":3:", "colour", "unknown key"}},
	    {"[pooler]\n[node.a]\n[database.d]\npool_mode = sideways\n",
	     {":4:", "pool_mode", "transaction"}},
	    {"[pooler]\nlisten_port = 99999\n", {":2:", "listen_port", "1 to 65535"}},
	    {"[pooler]\n[node.a]\n[database.d]\npin_action = maybe\n",
	     {":4:", "pin_action", "pin | error"}},
	    {"[pooler]\nprepared_statement_cache_size = -1\n",
	     {":2:", "prepared_statement_cache_size", "0 to 100000"}},
	    {"[pooler]\nlisten_port = abc\n", {":2:", "listen_port", "integer"}},
	    {"[pooler]\nquery_wait_timeout = soon\n", {":2:", "query_wait_timeout", "duration"}},
	    /* found by fuzzing: converting these to an integer was undefined */
	    {"[pooler]\nquery_wait_timeout = nan\n", {":2:", "query_wait_timeout", "duration"}},
	    {"[pooler]\nquery_wait_timeout = 9223372036854775808ms\n",
	     {":2:", "query_wait_timeout", "duration"}},
	    {"[pooler]\n[node.a]\n[database.d]\nmax_pool_share = nan%\n",
	     {":4:", "max_pool_share", "share"}},
	    {"[pooler]\n[node.a]\n[database.d]\nmax_pool_share = 1e300%\n",
	     {":4:", "max_pool_share", "share"}},
	    {"[pooler]\nlog_level = loud\n", {":2:", "log_level", "debug"}},
	    {"[pooler]\n[mystery]\nx = 1\n", {":2:", "mystery", "unknown section"}},
	    {"[pooler]\nthis line is not ini\n", {":2:", "syntax", NULL}},
	    {"[node.a]\nrole = primary\n[database.d]\nnodes = a, b\n", {"node.b", "nodes", NULL}},
	    {"[node.a]\nrole = primary\n[database.d]\npool_size = 2\nmin_pool_size = 3\n",
	     {"min_pool_size", "larger", NULL}},
	};
	char err[512];
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config *cfg = config_load(write_ini(cases[i].text), err, sizeof(err));
		unlink(path);
		if (cfg != NULL)
			fail_msg("case %zu loaded but should not have", i);
		assert_non_null(strstr(err, path)); /* names the file */
		for (int j = 0; j < 3 && cases[i].expect[j]; j++)
			if (strstr(err, cases[i].expect[j]) == NULL)
				fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err,
				         cases[i].expect[j]);
	}
	assert_null(config_load("/nonexistent/pooler.ini", err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/pooler.ini"));
}

/* A node's budget is shared: each pool gets its share, an explicit pool_size is capped by
 * the node's, and every figure says where it came from. */
static void test_node_budget_and_shares(void **state)
{
	char err[512], src[240];
	(void)state;
	struct config *cfg = config_load(write_ini("[node.p]\n"
	                                           "role = primary\n"
	                                           "cores = 4\n"
	                                           "[node.r]\n"
	                                           "role = replica\n"
	                                           "pool_size = 6\n"
	                                           "[database.half]\n"
	                                           "max_pool_share = 0.5\n"
	                                           "[database.big]\n"
	                                           "pool_size = 8\n"
	                                           "[database.whole]\n"),
	                                 err, sizeof(err));
	unlink(path);
	assert_non_null(cfg);
	assert_int_equal(cfg->nodes[0].pool_size, 4 * 2 + 1);
	assert_non_null(strstr(cfg->nodes[0].pool_size_source, "cores 4 * 2"));
	assert_int_equal(cfg->nodes[1].pool_size, 6);
	assert_non_null(strstr(cfg->nodes[1].pool_size_source, "pool_size = 6"));

	const struct db_conf *half = config_find_db(cfg, "half");
	assert_int_equal(half->max_pool_share, 50);
	assert_int_equal(config_pool_size(half, &cfg->nodes[0], src, sizeof(src)), 5); /* 4.5 up */
	assert_non_null(strstr(src, "max_pool_share 50%"));
	assert_int_equal(config_pool_size(half, &cfg->nodes[1], NULL, 0), 3);

	const struct db_conf *big = config_find_db(cfg, "big");
	assert_int_equal(config_pool_size(big, &cfg->nodes[0], NULL, 0), 8);
	assert_int_equal(config_pool_size(big, &cfg->nodes[1], src, sizeof(src)), 6);
	assert_non_null(strstr(src, "capped"));

	const struct db_conf *whole = config_find_db(cfg, "whole");
	assert_int_equal(whole->max_pool_share, 100);
	assert_int_equal(whole->effective_pool_size, 9);
	config_free(cfg);
}

static void test_list_has(void **state)
{
	(void)state;
	assert_true(config_list_has("admin, ops", "ops"));
	assert_true(config_list_has("admin,ops", "admin"));
	assert_false(config_list_has("admin, ops", "op"));
	assert_false(config_list_has("", "admin"));
	assert_false(config_list_has(NULL, "admin"));
}

/* A section's index is its place in cfg->nodes, whatever order a database lists it in:
 * the worker's node table (router_node) relies on it. */
static void test_node_index(void **state)
{
	char err[256];
	(void)state;
	struct config *cfg =
	    config_load(write_ini("[node.b]\nhost = h\nrole = replica\n[node.a]\nhost = h\n"
	                          "[node.c]\nhost = h\nrole = replica\n"
	                          "[database.x]\nnodes = c, a\n[database.y]\n"),
	                err, sizeof(err));
	unlink(path);
	assert_non_null(cfg);
	assert_int_equal(cfg->n_nodes, 3);
	for (int i = 0; i < cfg->n_nodes; i++)
		assert_int_equal(cfg->nodes[i].index, i);
	const struct db_conf *x = config_find_db(cfg, "x"), *y = config_find_db(cfg, "y");
	assert_int_equal(x->n_nodes, 2);
	assert_string_equal(x->node_list[0]->name, "c");
	assert_int_equal(x->node_list[0]->index, 2);
	assert_int_equal(x->node_list[1]->index, 1);
	assert_int_equal(y->n_nodes, 3); /* no nodes key: every node, in file order */
	assert_int_equal(y->node_list[0]->index, 0);
	config_free(cfg);
}

static bool collect(const char *name, void *arg)
{
	char *out = arg;
	strcat(out, name);
	strcat(out, "|");
	return strcmp(name, "stop") != 0;
}

/* util_split: commas, spaces and tabs separate, empty names are skipped, false stops. */
static void test_split(void **state)
{
	char got[64] = "";
	(void)state;
	assert_true(util_split(" a,b\t, ,c ", collect, got));
	assert_string_equal(got, "a|b|c|");
	got[0] = '\0';
	assert_false(util_split("a, stop, c", collect, got));
	assert_string_equal(got, "a|stop|");
	got[0] = '\0';
	assert_true(util_split("", collect, got));
	assert_string_equal(got, "");
}

/* What a file must not do silently: no database, a key or a section twice, the HTTP
 * endpoint on the clients' port, a near-miss key name. Each names its line and key. */
static void test_strict(void **state)
{
	static const struct bad_case cases[] = {
	    {"", {":1:", "no [database.NAME] section", NULL}},
	    {"[pooler]\nlisten_port = 6000\n\n[node.a]\n", {":4:", "[database.NAME]", NULL}},
	    {"[pooler]\n[database.d]\n", {":2:", "no [node.NAME] section", NULL}},
	    {"[pooler]\nlisten_port = 6000\nlisten_port = 6001\n[node.a]\n[database.d]\n",
	     {":3:", "listen_port", "first on line 2"}},
	    {"[pooler]\nretry_max = 1s\nserver_login_retry = 2\n[node.a]\n[database.d]\n",
	     {":3:", "server_login_retry", "as retry_max"}},
	    {"[node.a]\nport = 1\n[node.b]\n[node.a]\nport = 2\n[database.d]\n",
	     {":4:", "[node.a]", "first on line 1"}},
	    {"[pooler]\n[node.a]\n[database.d]\n[pooler]\n", {":4:", "[pooler]", "twice"}},
	    {"[pooler]\nlisten_port = 7000\nmetrics_listen = 127.0.0.1:7000\n[node.a]\n"
	     "[database.d]\n",
	     {":3:", "metrics_listen", "listen_port"}},
	    {"[pooler]\nmetrics_listen = *:6432\n[node.a]\n[database.d]\n",
	     {":2:", "metrics_listen", "port 6432"}},
	    {"[pooler]\nmetrics_listen = 9930\n[node.a]\n[database.d]\n",
	     {":2:", "metrics_listen", "address:port"}},
	    {"[pooler]\nlisten_prot = 6000\n", {":2:", "listen_prot", "did you mean listen_port?"}},
	    {"[node.a]\nrloe = replica\n", {":2:", "rloe", "did you mean role?"}},
	    {"[pooler]\npool_mode = session\n", {":2:", "pool_mode", "[database.NAME]"}},
	    {"[pooler]\n\n[node.a]\n[database.d]\n[node.b]\n[pooler]\n", {":6:", NULL, NULL}},
	    {"[pooler]\nlisten_port = 7000\n\n[node.a]\n\n[database.d]\n\n[pooler]\n",
	     {":8:", NULL, NULL}},
	    {"[pooler]\nlog_level = info\nclient_tls_sslmode = require\n[node.a]\n[database.d]\n",
	     {":3:", "client_tls_cert_file", NULL}},
	};
	char err[512];
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config *cfg = config_load(write_ini(cases[i].text), err, sizeof(err));
		unlink(path);
		if (cfg != NULL)
			fail_msg("case %zu loaded but should not have", i);
		for (int j = 0; j < 3 && cases[i].expect[j]; j++)
			if (strstr(err, cases[i].expect[j]) == NULL)
				fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err,
				         cases[i].expect[j]);
		/* the unknown-key message suggests, it does not list every key */
		assert_true(strlen(err) < 300);
	}
	/* ports apart, or addresses apart, are fine */
	struct config *cfg = config_load(write_ini("[pooler]\nlisten_addr = 127.0.0.2\n"
	                                           "metrics_listen = 127.0.0.1:6432\n"
	                                           "[node.a]\n[database.d]\n"),
	                                 err, sizeof(err));
	unlink(path);
	if (cfg == NULL)
		fail_msg("%s", err);
	config_free(cfg);
	/* a database of replicas only is allowed (a reporting database) */
	cfg = config_load(write_ini("[node.r]\nrole = replica\n[database.d]\n"), err, sizeof(err));
	unlink(path);
	if (cfg == NULL)
		fail_msg("%s", err);
	config_free(cfg);
	/* a directory is no ini file */
	assert_null(config_load("/tmp", err, sizeof(err)));
	assert_non_null(strstr(err, "directory"));
}

/* [cluster.NAME]: a database names the cluster; its known members become nodes
 * CLUSTER.MEMBER (role auto; weight 0 when tagged noloadbalance), the file's own nodes
 * stay out of it and it stays out of theirs. */
static void test_cluster_members(void **state)
{
	static const char *ini =
	    "[pooler]\n"
	    "[node.solo]\nport = 7000\n"
	    "[cluster.main]\nurls = http://127.0.0.1:8008, http://[::1]:8009/\n"
	    "poll_interval = 250ms\n"
	    "[database.app]\ncluster = main\n"
	    "[database.other]\n";
	const struct config_member m[] = {
	    {"main", "pg1", "127.0.0.1", 5432, false},
	    {"main", "pg2", "127.0.0.2", 5433, true},
	    {"gone", "pg9", "127.0.0.9", 5439, false}, /* its cluster left the file */
	};
	char err[512] = "";
	struct config *cfg = config_load(write_ini(ini), err, sizeof(err));

	(void)state;
	assert_non_null(cfg);
	assert_int_equal(cfg->n_clusters, 1);
	assert_int_equal(cfg->clusters[0].poll_interval_ms, 250);
	assert_int_equal(cfg->clusters[0].timeout_ms, 1000);
	assert_int_equal(config_find_db(cfg, "app")->n_nodes, 0); /* no member known yet */
	config_free(cfg);

	cfg = config_load_members(path, NULL, m, 3, err, sizeof(err));
	unlink(path);
	assert_non_null(cfg);
	assert_int_equal(cfg->n_nodes, 3);
	const struct db_conf *app = config_find_db(cfg, "app");
	assert_int_equal(app->n_nodes, 2);
	assert_string_equal(app->node_list[0]->name, "main.pg1");
	assert_string_equal(app->node_list[0]->member, "pg1");
	assert_int_equal(app->node_list[0]->role, NODE_ROLE_AUTO);
	assert_int_equal(app->node_list[0]->weight, -1); /* auto */
	assert_string_equal(app->node_list[1]->host, "127.0.0.2");
	assert_int_equal(app->node_list[1]->port, 5433);
	assert_int_equal(app->node_list[1]->weight, 0);
	const struct db_conf *other = config_find_db(cfg, "other");
	assert_int_equal(other->n_nodes, 1);
	assert_string_equal(other->node_list[0]->name, "solo");
	config_free(cfg);
}

static void test_cluster_errors(void **state)
{
	static const struct {
		const char *ini, *want;
	} cases[] = {
	    {"[cluster.c]\npoll_interval = 1s\n[database.d]\ncluster = c\n", "urls: required"},
	    {"[cluster.c]\nurls = https://127.0.0.1:8008\n[database.d]\ncluster = c\n",
	     "urls: each must be"},
	    {"[cluster.c]\nurls = http://patroni1:8008\n[database.d]\ncluster = c\n",
	     "urls: each must be"},
	    {"[cluster.c]\nurls = http://127.0.0.1\n[database.d]\ncluster = c\n",
	     "urls: each must be"},
	    {"[cluster.c]\nurls = http://127.0.0.1:8008\n[database.d]\ncluster = x\n",
	     "no section [cluster.x]"},
	    {"[cluster.c]\nurls = http://127.0.0.1:8008\n[node.n]\n[database.d]\ncluster = c\n"
	     "nodes = n\n",
	     "exclusive"},
	    {"[cluster.c]\nurls = http://127.0.0.1:8008\nport = 1\n[database.d]\ncluster = c\n",
	     "unknown key"},
	};
	char err[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		struct config *cfg = config_load(write_ini(cases[i].ini), err, sizeof(err));
		unlink(path);
		if (cfg != NULL || strstr(err, cases[i].want) == NULL)
			fail_msg("case %zu: want \"%s\", got \"%s\"", i, cases[i].want, err);
	}
	/* a member may not take the name of a section of the file */
	const struct config_member m = {"c", "pg1", "127.0.0.1", 5432, false};
	struct config *cfg = config_load_members(
	    write_ini("[cluster.c]\nurls = http://127.0.0.1:8008\n[node.c.pg1]\n[database.d]\n"),
	    NULL, &m, 1, err, sizeof(err));
	unlink(path);
	assert_null(cfg);
	assert_non_null(strstr(err, "member of cluster c"));
}

/* [peers]: addresses read once into socket addresses, the own id's line kept but ignored,
 * so_reuseport as a boolean; and what is refused, at the line of the entry. */
static void test_peers(void **state)
{
	static const char *const head = "[pooler]\nlisten_port = 7001\nunix_socket_dir = /tmp/p1\n"
	                                "peer_id = 1\nso_reuseport = yes\n";
	static const char *const tail = "[node.a]\nrole = primary\n[database.d]\n";
	static const struct {
		const char *peers, *want;
	} bad[] = {
	    {"2 = 127.0.0.1\n", ":7: [peers] 2: \"127.0.0.1\" is not an address"},
	    {"two = 127.0.0.1:7002\n", ":7: [peers] two: not a peer id"},
	    {"16384 = 127.0.0.1:7002\n", "16384: not a peer id"},
	    {"2 = db.example:7002\n", "is not an address"},
	    {"2 = ::1:7002\n", "is not an address"},
	    {"2 = /tmp/p2:70000\n", "is not an address"},
	    {"2 = /tmp/p2:7002\n2 = /tmp/p3:7003\n", ":8: [peers] 2: peer 2 listed twice"},
	    {"2 = /tmp/p1/:7001\n", ":7: [peers] 2: this pooler listens there itself"},
	    {"2 = 127.0.0.1:7001\n", "listens there itself"},
	};
	char text[1024], err[512];
	(void)state;

	snprintf(text, sizeof(text),
	         "%s[peers]\n1 = /tmp/p1:7001\n2 = /tmp/p2:7001\n"
	         "3 = 127.0.0.2:7001\n4 = [::1]:7004\n%s",
	         head, tail);
	struct config *cfg = config_load(write_ini(text), err, sizeof(err));
	unlink(path);
	if (cfg == NULL)
		fail_msg("%s", err);
	assert_true(cfg->so_reuseport);
	assert_int_equal(cfg->peer_id, 1);
	assert_int_equal(cfg->n_peers, 4);
	assert_null(config_find_peer(cfg, 5));
	assert_int_equal(config_find_peer(cfg, 2)->addr.ss_family, AF_UNIX);
	assert_int_equal(config_find_peer(cfg, 3)->addr.ss_family, AF_INET);
	assert_int_equal(config_find_peer(cfg, 4)->addr.ss_family, AF_INET6);
	config_peer_address(config_find_peer(cfg, 4), text, sizeof(text));
	assert_string_equal(text, "[::1]:7004");
	config_free(cfg);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "%s[peers]\n%s%s", head, bad[i].peers, tail);
		err[0] = '\0';
		cfg = config_load(write_ini(text), err, sizeof(err));
		unlink(path);
		if (cfg != NULL || strstr(err, bad[i].want) == NULL)
			fail_msg("case %zu: want \"%s\", got \"%s\"", i, bad[i].want, err);
	}
	/* peers without this pooler's own id: peering would be half on */
	cfg =
	    config_load(write_ini("[pooler]\n[peers]\n2 = /tmp/p2:7001\n[node.a]\n[database.d]\n"),
	                err, sizeof(err));
	unlink(path);
	assert_null(cfg);
	assert_non_null(strstr(err, ":2: [peers]: needs [pooler] peer_id"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_minimal),        cmocka_unit_test(test_sizing_and_units),
	    cmocka_unit_test(test_errors),         cmocka_unit_test(test_node_budget_and_shares),
	    cmocka_unit_test(test_list_has),       cmocka_unit_test(test_duration_aliases),
	    cmocka_unit_test(test_node_index),     cmocka_unit_test(test_split),
	    cmocka_unit_test(test_strict),         cmocka_unit_test(test_cluster_members),
	    cmocka_unit_test(test_cluster_errors), cmocka_unit_test(test_peers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
