/* client_login: the startup packet, authentication, and the welcome a client gets
 * (from a pool's remembered parameters, or from the admin console). */
#include "client_internal.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

/* auth_hba_file's cert method, next to enum auth_type's password methods. */
enum { AUTH_METHOD_CERT = AUTH_TYPE_SCRAM + 1 };

static const char *canonical_value(const char *name, const char *value)
{
	if (strcasecmp(name, "client_encoding") == 0 &&
	    (strcasecmp(value, "utf8") == 0 || strcasecmp(value, "utf-8") == 0 ||
	     strcasecmp(value, "unicode") == 0))
		return "UTF8";
	return value;
}

/* ParameterStatus for every reported parameter, BackendKeyData, ReadyForQuery. */
void client_send_welcome(struct client *c)
{
	const struct params *base = &c->pool->welcome;

	for (int i = 0; i < base->n; i++) {
		const char *name = base->items[i].name;
		const char *v = params_get(&c->wants, name);
		proto_write_param(&c->conn.out, name,
		                  v ? canonical_value(name, v) : base->items[i].value);
	}
	proto_write_key(&c->conn.out, c->cancel_pid, c->cancel_key);
	proto_write_ready(&c->conn.out, 'I');
	c->last_read_us = util_now_us();
	client_set_state(c, CLIENT_IDLE);
	log_info(CLIENT_FMT " addr=%s login", CLIENT_ARGS(c), c->addr);
	client_flush(c);
	if (c->state == CLIENT_IDLE && buf_len(&c->conn.in) == 0)
		conn_trim(&c->conn);
}

/* The admin console answers itself: no pool, no server. Its clients log in on worker 0
 * (others move them there first: admin_greet runs after the move). */
static const char *const admin_params[][2] = {
    {"server_version", "15.0 (pooler " POOLER_VERSION ")"},
    {"server_encoding", "UTF8"},
    {"client_encoding", "UTF8"},
    {"DateStyle", "ISO, MDY"},
    {"integer_datetimes", "on"},
    {"standard_conforming_strings", "on"},
    {"TimeZone", "UTC"},
    {"is_superuser", "off"},
};

static void admin_greet(struct client *c);

static void admin_login(struct client *c)
{
	const struct config *cfg = c->w->cfg;

	c->admin_writer = config_list_has(cfg->admin_users, c->user);
	if (!c->admin_writer && !config_list_has(cfg->stats_users, c->user)) {
		client_fatal(c, SQLSTATE_INVALID_AUTH_SPEC,
		             "not allowed on the admin console (admin_users, stats_users)");
		return;
	}
	client_auth_done(c);
	client_set_state(c, CLIENT_ADMIN);
	if (c->w->index != 0) {
		client_move(c, worker_main(c->w), admin_greet);
		return;
	}
	admin_greet(c);
}

static void admin_greet(struct client *c)
{
	for (size_t i = 0; i < ARRAY_LEN(admin_params); i++)
		proto_write_param(&c->conn.out, admin_params[i][0], admin_params[i][1]);
	proto_write_key(&c->conn.out, c->cancel_pid, c->cancel_key);
	proto_write_ready(&c->conn.out, 'I');
	log_info("c=%llu user=%s addr=%s admin console login", (unsigned long long)c->id, c->user,
	         c->addr);
	client_flush(c);
	if (c->state == CLIENT_ADMIN && buf_len(&c->conn.in) > 0)
		client_admin_read(c); /* sent before the move ended */
}

/* Admin console messages: simple Query only. */
void client_admin_read(struct client *c)
{
	struct buf *in = &c->conn.in;
	struct proto_header h;

	while (c->state == CLIENT_ADMIN && c->admin_wait == NULL) {
		enum proto_status st = proto_read_header(buf_head(in), buf_len(in), 1 << 20, &h);
		if (st == PROTO_INCOMPLETE)
			break;
		if (st == PROTO_BAD) {
			client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION, "invalid message length");
			return;
		}
		c->conn.want = 5 + (size_t)h.len; /* may exceed the socket's high-water mark */
		if (buf_len(in) < 5 + (size_t)h.len)
			break;
		c->conn.want = 0;
		const uint8_t *body = buf_head(in) + 5;
		switch (h.type) {
		case 'Q': {
			const char *sql = memchr(body, '\0', h.len) ? (const char *)body : "";
			const struct admin_caller who = {c->id, c->user, c->addr, c->admin_writer};
			if (admin_run(c->w, sql, &who, &c->conn.out, &c->admin_wait)) {
				proto_write_ready(&c->conn.out, 'I');
				break;
			}
			/* answered by client_admin_poll, every 10 ms until done */
			ev_timer_set(&c->timer, 0.01, 0.01);
			ev_timer_start(c->w->loop, &c->timer);
			break;
		}
		case 'X':
			client_close(c, "client said goodbye");
			return;
		case 'S':
			c->admin_skip = false;
			proto_write_ready(&c->conn.out, 'I');
			break;
		case 'P':
		case 'B':
		case 'D':
		case 'E':
		case 'C':
		case 'H':
			if (!c->admin_skip)
				proto_write_error(
				    &c->conn.out, "ERROR", SQLSTATE_FEATURE_NOT_SUPPORTED,
				    "the admin console speaks the simple query protocol only");
			c->admin_skip = true;
			break;
		default:
			client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION,
			             "invalid frontend message type");
			return;
		}
		buf_consume(in, 5 + h.len);
	}
	if (c->state == CLIENT_ADMIN)
		client_flush(c);
	if (c->w->shutdown_requested && c->w->on_shutdown != NULL) {
		c->w->shutdown_requested = false;
		c->w->on_shutdown(c->w);
	}
}

/* A command that answers later: answer it once done, then read on. */
void client_admin_poll(struct client *c)
{
	if (!admin_poll(c->w, c->admin_wait, &c->conn.out))
		return;
	ev_timer_stop(c->w->loop, &c->timer);
	free(c->admin_wait);
	c->admin_wait = NULL;
	proto_write_ready(&c->conn.out, 'I');
	client_admin_read(c);
}

static void auth_ok(struct client *c)
{
	const struct config *cfg = c->w->cfg;
	const struct db_conf *db;
	char msg[200];

	proto_write_auth(&c->conn.out, AUTH_OK, NULL, 0);
	if (config_list_has(cfg->admin_db, c->db)) {
		admin_login(c);
		return;
	}
	db = config_find_db(cfg, c->db);
	if (db == NULL) {
		snprintf(msg, sizeof(msg), "database \"%s\" does not exist", c->db);
		client_fatal(c, SQLSTATE_UNKNOWN_DATABASE, msg);
		return;
	}
	if (admin_db_disabled(c->w, db->name)) {
		snprintf(msg, sizeof(msg),
		         "database \"%s\" is not currently accepting connections (DISABLE)",
		         db->name);
		client_fatal(c, "55000", msg);
		return;
	}
	/* The password the client gave, when the pooler logs in as the client with it. */
	if (db->server_user == NULL && db->server_password == NULL && c->auth->user != NULL &&
	    c->auth->user->plain != NULL)
		c->own_password = util_strdup(c->auth->user->plain);
	client_auth_done(c);
	const char *ro = params_get(&c->wants, "default_transaction_read_only");
	c->route.session_ro = ro != NULL && (!strcasecmp(ro, "on") || !strcasecmp(ro, "true") ||
	                                     !strcasecmp(ro, "1") || !strcasecmp(ro, "yes"));
	const char *iso = params_get(&c->wants, "default_transaction_isolation");
	c->route.serializable = iso != NULL && strcasecmp(iso, "serializable") == 0;
	struct node *node = router_primary(c->w, db);
	if (node == NULL && db->n_nodes > 0)
		node = router_node(c->w, db->node_list[0]);
	if (node == NULL) { /* a Patroni cluster none of whose members is known yet */
		snprintf(msg, sizeof(msg),
		         "database \"%s\" has no server yet: its cluster's members are not known",
		         db->name);
		client_fatal(c, SQLSTATE_CANNOT_CONNECT_NOW, msg);
		return;
	}
	c->pool = client_pool_get(c, db, node);
	if (c->pool->have_welcome) {
		client_send_welcome(c);
		return;
	}
	client_set_state(c, CLIENT_LOGIN);
	client_flush(c);
	if (c->state == CLIENT_LOGIN)
		pool_acquire(c->pool, &c->waiter);
}

static void auth_failed(struct client *c)
{
	char host[RATELIMIT_KEY];

	metrics_reject(&c->w->metrics, REJECT_AUTHENTICATION);
	if (!client_rate_exempt(c, host, sizeof(host)))
		worker_rate_take(c->w, &c->w->team->auth_limit, host, util_now_us());
	char msg[200];
	snprintf(msg, sizeof(msg), "password authentication failed for user \"%s\"", c->user);
	client_fatal(c, SQLSTATE_INVALID_PASSWORD, msg);
}

/* An address that failed too many logins lately is refused before any password work
 * (no SCRAM iterations are spent on it). */
static bool login_throttled(struct client *c)
{
	char host[RATELIMIT_KEY];

	if (client_rate_exempt(c, host, sizeof(host)) ||
	    worker_rate_allows(c->w, &c->w->team->auth_limit, host, util_now_us()))
		return false;
	c->w->metrics.logins_throttled++;
	client_fatal(c, SQLSTATE_INVALID_PASSWORD,
	             "too many failed logins from this address; try again later "
	             "(auth_failure_limit)");
	return true;
}

/* The peer's IP address as text without the port, or NULL on the unix socket. */
static const char *peer_ip(const struct client *c, char *out, size_t outlen)
{
	const char *colon = strrchr(c->addr, ':');

	if (strcmp(c->addr, "unix") == 0 || colon == NULL)
		return NULL;
	snprintf(out, outlen, "%.*s", (int)(colon - c->addr), c->addr);
	return out;
}

/* The method auth_hba_file gives this client, or -1 after rejecting it. Rejections name
 * no user secret and happen before the auth file is consulted, so they tell nothing
 * about which users exist. */
static int hba_method(struct client *c)
{
	const struct hba *hba = c->w->hba;
	char ip[64], msg[300];
	const char *addr = peer_ip(c, ip, sizeof(ip));
	bool tls = c->conn.ssl != NULL;
	int line;

	switch (hba_match(hba, addr, tls, c->db, c->user, &line)) {
	case HBA_TRUST:
		return AUTH_TYPE_TRUST;
	case HBA_MD5:
		return AUTH_TYPE_MD5;
	case HBA_SCRAM:
		return AUTH_TYPE_SCRAM;
	case HBA_CERT:
		return AUTH_METHOD_CERT;
	case HBA_REJECT:
		snprintf(msg, sizeof(msg),
		         "auth_hba_file rejects connection for host \"%s\", user \"%s\", "
		         "database \"%s\", %s",
		         addr ? addr : "[local]", c->user, c->db,
		         tls ? "SSL encryption" : "no encryption");
		break;
	case HBA_NO_MATCH:
		snprintf(msg, sizeof(msg),
		         "no pg_hba.conf-style entry (auth_hba_file) for host \"%s\", user "
		         "\"%s\", database \"%s\", %s",
		         addr ? addr : "[local]", c->user, c->db,
		         tls ? "SSL encryption" : "no encryption");
		break;
	}
	metrics_reject(&c->w->metrics, REJECT_AUTHENTICATION);
	log_debug("c=%llu auth_hba_file line %d decided", (unsigned long long)c->id, line);
	client_fatal(c, SQLSTATE_INVALID_AUTH_SPEC, msg);
	return -1;
}

/* cert: a client certificate, verified against client_tls_ca_file, whose common name is
 * the user name. */
static void cert_login(struct client *c)
{
	char cn[256], msg[200];

	if (c->conn.ssl == NULL || !tls_peer_cn(c->conn.ssl, cn, sizeof(cn)) ||
	    strcmp(cn, c->user) != 0) {
		metrics_reject(&c->w->metrics, REJECT_AUTHENTICATION);
		snprintf(msg, sizeof(msg), "certificate authentication failed for user \"%s\"",
		         c->user);
		client_fatal(c, SQLSTATE_INVALID_AUTH_SPEC, msg);
		return;
	}
	auth_ok(c);
}

/* Keep a copy of the user's secret: the auth file may be reloaded during the login. */
static void keep_user(struct client *c, const struct auth_user *found)
{
	if (found == NULL)
		return;
	c->auth->copy = *found;
	c->auth->copy.name = NULL;
	c->auth->copy.plain = found->plain ? util_strdup(found->plain) : NULL;
	c->auth->user = &c->auth->copy;
}

/* An unknown user gets a verifier like a real one, with a salt that is the same at every
 * attempt (a keyed hash of the name), so that asking twice does not reveal that the user
 * does not exist; the login then fails at the proof, as a wrong password does. */
static void mock_user(struct client *c)
{
	struct auth_user *u = &c->auth->copy;
	uint8_t mac[32];
	unsigned int n = sizeof(mac);

	memset(u, 0, sizeof(*u));
	HMAC(EVP_sha256(), c->w->mock_key, sizeof(c->w->mock_key), (const uint8_t *)c->user,
	     strlen(c->user), mac, &n);
	u->kind = SECRET_SCRAM;
	u->has_scram = true;
	u->iterations = SCRAM_DEFAULT_ITERATIONS;
	u->salt_len = 16;
	memcpy(u->salt, mac, 16);
	/* keys nobody can match: the login fails even without the unknown flag */
	memcpy(u->stored_key, mac + 16, 16);
	c->auth->user = u;
	c->auth->unknown = true;
}

/* Send the MD5 or SASL challenge. An unknown user (c->auth->user == NULL) gets one too
 * and fails only at the end, like a wrong password. */
static void auth_challenge(struct client *c)
{
	const struct auth_user *u = c->auth->user;
	int method = c->auth->method;

	/* The stored secret decides when it cannot serve the configured method. */
	if (u != NULL && method == AUTH_TYPE_SCRAM && u->kind == SECRET_MD5)
		method = AUTH_TYPE_MD5;
	else if (u != NULL && method == AUTH_TYPE_MD5 && u->kind == SECRET_SCRAM)
		method = AUTH_TYPE_SCRAM;
	if (method == AUTH_TYPE_MD5) {
		if (!util_random_bytes(c->auth->md5_salt, sizeof(c->auth->md5_salt))) {
			client_fatal(c, SQLSTATE_INTERNAL_ERROR, "no random bytes for a salt");
			return;
		}
		c->auth_step = STEP_MD5;
		proto_write_auth(&c->conn.out, AUTH_MD5, c->auth->md5_salt, 4);
	} else {
		/* On TLS, channel binding is offered first, as PostgreSQL does. */
		static const char plain[] = "SCRAM-SHA-256\0";
		static const char with_plus[] = "SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0";
		c->auth_step = STEP_SASL_INITIAL;
		if (c->auth->user == NULL)
			mock_user(c);
		if (c->conn.ssl != NULL)
			proto_write_auth(&c->conn.out, AUTH_SASL, with_plus, sizeof(with_plus));
		else
			proto_write_auth(&c->conn.out, AUTH_SASL, plain, sizeof(plain));
	}
	client_flush(c);
}

static void on_lookup(void *arg, const struct auth_user *u, const char *error)
{
	struct client *c = arg;

	c->auth->lookup = NULL;
	if (error != NULL)
		log_warning("c=%llu user=%s %s", (unsigned long long)c->id, c->user, error);
	keep_user(c, u);
	auth_challenge(c);
	/* Called from the loop: a client that did not wait for the challenge is read now. */
	if (c->state == CLIENT_AUTH && buf_len(&c->conn.in) > 0)
		client_process(c);
}

/* An ini key left empty counts as unset. */
static const char *set_or_null(const char *s)
{
	return s != NULL && s[0] != '\0' ? s : NULL;
}

/* Where auth_query runs: the node that the probes last found primary (or the first one
 * configured as primary), in auth_dbname. */
static bool auth_query_target(struct client *c, struct authq_target *t)
{
	const struct config *cfg = c->w->cfg;
	struct node *primary = NULL;

	for (int i = 0; i < c->w->n_nodes && primary == NULL; i++)
		if (c->w->nodes[i]->role == NODE_ROLE_PRIMARY)
			primary = c->w->nodes[i];
	if (primary == NULL)
		return false;
	const struct auth_user *au = auth_file_find(c->w->auth, cfg->auth_user);
	*t = (struct authq_target){
	    .host = primary->host,
	    .port = primary->port,
	    .tls = &primary->tls,
	    .user = cfg->auth_user,
	    .password = set_or_null(cfg->auth_password) ? cfg->auth_password
	                : au                            ? au->plain
	                                                : NULL,
	    .dbname = set_or_null(cfg->auth_dbname) ? cfg->auth_dbname
	              : cfg->n_dbs > 0              ? cfg->dbs[0].dbname
	                                            : "postgres",
	    .query = cfg->auth_query,
	    .timeout_ms = cfg->server_connect_timeout_ms,
	    .ttl_ms = cfg->auth_query_cache_ttl_ms,
	};
	return true;
}

static void auth_begin(struct client *c)
{
	int method = c->w->hba ? hba_method(c) : c->w->cfg->auth_type;
	const struct auth_user *found;
	struct authq_target target;

	if (method < 0)
		return;
	c->auth = util_calloc(1, sizeof(*c->auth));
	c->auth->method = method;
	found = auth_file_find(c->w->auth, c->user);
	if (method == AUTH_TYPE_TRUST || method == AUTH_METHOD_CERT) {
		keep_user(c, found);
		if (method == AUTH_TYPE_TRUST)
			auth_ok(c);
		else
			cert_login(c);
		return;
	}
	client_set_state(c, CLIENT_AUTH);
	if (found == NULL && set_or_null(c->w->cfg->auth_user) != NULL &&
	    !authq_cached(c->w->authq, c->user, &found) && auth_query_target(c, &target)) {
		c->auth_step = STEP_LOOKUP;
		c->auth->lookup = authq_lookup(c->w->authq, &target, c->user, on_lookup, c);
		return;
	}
	keep_user(c, found);
	auth_challenge(c);
}

/* One PasswordMessage / SASLInitialResponse / SASLResponse. */
static void auth_message(struct client *c, const uint8_t *body, uint32_t len)
{
	struct proto_reader r;
	char out[512];

	proto_reader_init(&r, body, len);
	switch (c->auth_step) {
	case STEP_LOOKUP:
		return; /* not reached: nothing is read before the challenge */
	case STEP_MD5: {
		const char *resp = proto_get_str(&r);
		if (r.err) {
			client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION, "malformed password message");
			return;
		}
		if (c->auth->user == NULL || c->auth->unknown ||
		    !auth_md5_check(c->auth->user->md5, c->auth->md5_salt, resp)) {
			auth_failed(c);
			return;
		}
		auth_ok(c);
		return;
	}
	case STEP_SASL_INITIAL: {
		struct sasl_initial si;
		if (!proto_parse_sasl_initial(body, len, &si)) {
			client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION, "malformed SASL message");
			return;
		}
		const char *mech = si.mechanism;
		uint8_t end_point[64]; /* EVP_MAX_MD_SIZE */
		struct scram_binding cb = {.plus = strcmp(mech, "SCRAM-SHA-256-PLUS") == 0};
		if (!cb.plus && strcmp(mech, "SCRAM-SHA-256") != 0) {
			client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION,
			             "client selected an invalid SASL authentication mechanism");
			return;
		}
		if (c->conn.ssl != NULL) {
			cb.len = tls_server_end_point(c->conn.ssl, end_point, sizeof(end_point));
			cb.data = cb.len > 0 ? end_point : NULL;
		}
		if (!scram_server_first(&c->auth->scram, c->auth->user, &cb, (const char *)si.data,
		                        si.len, out, sizeof(out))) {
			client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION, "malformed SCRAM message");
			return;
		}
		c->auth_step = STEP_SASL_FINAL;
		proto_write_auth(&c->conn.out, AUTH_SASL_CONTINUE, out, strlen(out));
		client_flush(c);
		return;
	}
	case STEP_SASL_FINAL:
		if (!scram_server_final(&c->auth->scram, (const char *)body, len, out,
		                        sizeof(out)) ||
		    c->auth->unknown) {
			auth_failed(c);
			return;
		}
		proto_write_auth(&c->conn.out, AUTH_SASL_FINAL, out, strlen(out));
		scram_state_free(&c->auth->scram);
		auth_ok(c);
		return;
	}
}

/* Startup parameters meant for the pooler itself; true when consumed. */
static bool pooler_param(struct client *c, const char *name, const char *value, bool *ok)
{
	*ok = true;
	if (strcasecmp(name, "pooler.route") != 0)
		return false;
	if (strcasecmp(value, "primary") == 0)
		c->route.forced_route = HINT_PRIMARY;
	else if (strcasecmp(value, "replica") == 0)
		c->route.forced_route = HINT_REPLICA;
	else if (strcasecmp(value, "auto") == 0 || value[0] == '\0')
		c->route.forced_route = HINT_NONE;
	else
		*ok = false;
	return true;
}

/* One "-c name=value" of the startup `options`. */
static bool option(void *arg, const char *name, const char *value)
{
	struct client *c = arg;
	bool ok;

	if (pooler_param(c, name, value, &ok))
		return ok;
	params_set(&c->wants, name, value);
	return true;
}

static void startup(struct client *c, const struct startup *st)
{
	const char *user = proto_startup_get(st, "user");
	const char *db = proto_startup_get(st, "database");
	char msg[200];

	if (user == NULL || user[0] == '\0') {
		client_fatal(c, SQLSTATE_INVALID_AUTH_SPEC,
		             "no PostgreSQL user name specified in startup packet");
		return;
	}
	/* user and db share one allocation: c->user is the one to free */
	if (db == NULL || db[0] == '\0')
		db = user;
	size_t ulen = strlen(user) + 1, dlen = strlen(db) + 1;
	c->user = util_calloc(1, ulen + dlen);
	memcpy(c->user, user, ulen);
	c->db = memcpy(c->user + ulen, db, dlen);
	if (c->conn.ssl == NULL && c->w->cfg->client_tls_sslmode >= TLS_REQUIRE &&
	    strcmp(c->addr, "unix") != 0) {
		client_fatal(c, SQLSTATE_INVALID_AUTH_SPEC,
		             "SSL required (client_tls_sslmode): connect with sslmode=require");
		return;
	}
	for (int i = 0; i < st->nparams; i++) {
		const char *name = st->names[i], *value = st->values[i];
		if (strcmp(name, "user") == 0 || strcmp(name, "database") == 0 ||
		    strncmp(name, "_pq_.", 5) == 0)
			continue;
		if (strcmp(name, "replication") == 0) {
			if (strcasecmp(value, "false") == 0 || strcasecmp(value, "off") == 0 ||
			    strcmp(value, "0") == 0)
				continue;
			client_fatal(c, SQLSTATE_FEATURE_NOT_SUPPORTED,
			             "replication connections are not supported by the pooler");
			return;
		}
		if (strcmp(name, "options") == 0) {
			if (!proto_parse_options(value, option, c)) {
				client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION,
				             "unsupported startup options (only -c name=value and "
				             "--name=value are allowed)");
				return;
			}
			continue;
		}
		bool ok;
		if (pooler_param(c, name, value, &ok)) {
			if (!ok) {
				client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION,
				             "pooler.route must be primary, replica or auto");
				return;
			}
			continue;
		}
		if (!proto_valid_param_name(name) || client_param_server_owned(name)) {
			snprintf(msg, sizeof(msg), "invalid startup parameter \"%.60s\"", name);
			client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION, msg);
			return;
		}
		params_set(&c->wants, name, value);
	}
	params_set_base(&c->wants); /* what RESET gives back */
	if (login_throttled(c))
		return;
	auth_begin(c);
}

/* SSLRequest: 'S' and a TLS handshake when client TLS is on, else 'N'. A client must wait
 * for the answer before it sends more: bytes already behind the request were sent in
 * plain text and would be taken as if they came through TLS (the injection of
 * CVE-2021-23222), so such a client is closed. */
static void answer_ssl_request(struct client *c, uint32_t len)
{
	struct buf *in = &c->conn.in;
	struct ssl_st *ssl;

	if (c->conn.ssl != NULL) {
		client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION,
		             "SSLRequest on an encrypted connection");
		return;
	}
	if (c->w->tls_ctx == NULL) {
		buf_consume(in, len);
		buf_put_u8(&c->conn.out, 'N');
		client_flush(c);
		return;
	}
	if (buf_len(in) > len) {
		log_warning("c=%llu addr=%s sent data after SSLRequest before the answer; closing",
		            (unsigned long long)c->id, c->addr);
		client_close(c, "data after SSLRequest (possible injection)");
		return;
	}
	buf_consume(in, len);
	buf_put_u8(&c->conn.out, 'S');
	client_flush(c);
	if (c->state == CLIENT_CLOSED)
		return;
	ssl = conn_unsent(&c->conn) == 0 ? tls_session_new(c->w->tls_ctx, c->conn.fd) : NULL;
	if (ssl == NULL) {
		client_close(c, "could not start TLS");
		return;
	}
	conn_tls_accept(&c->conn, ssl);
}

/* Startup packets: SSLRequest (see above) and GSSENCRequest ('N'), then the real one. */
void client_read_startup(struct client *c)
{
	struct buf *in = &c->conn.in;

	while (c->state == CLIENT_STARTUP && buf_len(in) >= 4) {
		const uint8_t *p = buf_head(in);
		uint32_t len =
		    (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
		struct startup st;
		char msg[160];

		if (len < 8 || len > PROTO_MAX_STARTUP) {
			client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION,
			             "invalid length of startup packet");
			return;
		}
		if (buf_len(in) < len)
			return;
		proto_parse_startup(p + 4, len - 4, &st);
		switch (st.kind) {
		case STARTUP_SSL:
		case STARTUP_GSSENC:
			/* a second request of a kind is no protocol PostgreSQL knows either */
			if (st.kind == STARTUP_SSL ? c->asked_ssl : c->asked_gss) {
				snprintf(msg, sizeof(msg),
				         "unsupported frontend protocol %u.%u: server supports 3.0 "
				         "to 3.0",
				         st.version >> 16, st.version & 0xffff);
				client_fatal(c, SQLSTATE_FEATURE_NOT_SUPPORTED, msg);
				return;
			}
			if (st.kind == STARTUP_SSL) {
				c->asked_ssl = true;
				answer_ssl_request(c, len);
				continue;
			}
			c->asked_gss = true;
			buf_consume(in, len);
			buf_put_u8(&c->conn.out, 'N');
			client_flush(c);
			continue;
		case STARTUP_CANCEL:
			client_cancel(c, st.cancel_pid, st.cancel_key);
			return;
		case STARTUP_BAD_VERSION:
			snprintf(msg, sizeof(msg),
			         "unsupported frontend protocol %u.%u: server supports 3.0 to 3.0",
			         st.version >> 16, st.version & 0xffff);
			client_fatal(c, SQLSTATE_FEATURE_NOT_SUPPORTED, msg);
			return;
		case STARTUP_TOO_MANY_PARAMS:
			client_fatal(c, SQLSTATE_PROGRAM_LIMIT_EXCEEDED,
			             "too many startup parameters (the pooler takes at most 64)");
			return;
		case STARTUP_MALFORMED:
			client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION,
			             "invalid startup packet layout");
			return;
		case STARTUP_V3:
			startup(c, &st); /* st points into the buffer: consume afterwards */
			if (c->state != CLIENT_CLOSED)
				buf_consume(in, len);
			return;
		}
	}
}

/* Password messages, as many as have arrived: a client may send its next one before it
 * reads our answer (and a bad one must not wait for bytes that never come). */
void client_read_auth(struct client *c)
{
	struct buf *in = &c->conn.in;
	struct proto_header h;

	/* an auth_query lookup in flight: answers wait for the challenge */
	while (c->state == CLIENT_AUTH && c->auth_step != STEP_LOOKUP) {
		enum proto_status st =
		    proto_read_header(buf_head(in), buf_len(in), AUTH_MAX_MESSAGE, &h);
		if (st == PROTO_INCOMPLETE)
			return;
		if (st == PROTO_BAD || h.type != 'p') {
			client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION,
			             "expected a password message during authentication");
			return;
		}
		if (buf_len(in) < 5 + (size_t)h.len)
			return;
		/* Copy out: answering may grow buffers. */
		uint8_t body[AUTH_MAX_MESSAGE];
		memcpy(body, buf_head(in) + 5, h.len);
		buf_consume(in, 5 + h.len);
		auth_message(c, body, h.len);
	}
}
