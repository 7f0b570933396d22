/* client_login: the startup packet, authentication, and the welcome a client gets
 * (from a pool's remembered parameters, or from the admin console). */
#include "client_internal.h"

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
	client_set_state(c, CLIENT_IDLE);
	c->last_read_us = util_now_us();
	client_arm_timer(c);
	log_info("c=%llu user=%s db=%s addr=%s login", (unsigned long long)c->id, c->user, c->db,
	         c->addr);
	client_flush(c);
	if (c->state == CLIENT_IDLE && buf_len(&c->conn.in) == 0)
		conn_trim(&c->conn);
}

/* The admin console answers itself: no pool, no server. */
static void admin_login(struct client *c)
{
	const struct config *cfg = c->w->cfg;
	static const char *const params[][2] = {
	    {"server_version", "15.0 (pooler " POOLER_VERSION ")"},
	    {"server_encoding", "UTF8"},
	    {"client_encoding", "UTF8"},
	    {"DateStyle", "ISO, MDY"},
	    {"integer_datetimes", "on"},
	    {"standard_conforming_strings", "on"},
	    {"TimeZone", "UTC"},
	    {"is_superuser", "off"},
	};

	c->admin_writer = config_list_has(cfg->admin_users, c->user);
	if (!c->admin_writer && !config_list_has(cfg->stats_users, c->user)) {
		client_fatal(c, SQLSTATE_INVALID_AUTH_SPEC,
		             "not allowed on the admin console (admin_users, stats_users)");
		return;
	}
	client_auth_done(c);
	for (size_t i = 0; i < ARRAY_LEN(params); i++)
		proto_write_param(&c->conn.out, params[i][0], params[i][1]);
	proto_write_key(&c->conn.out, c->cancel_pid, c->cancel_key);
	proto_write_ready(&c->conn.out, 'I');
	ev_timer_stop(c->w->loop, &c->timer);
	client_set_state(c, CLIENT_ADMIN);
	log_info("c=%llu user=%s addr=%s admin console login", (unsigned long long)c->id, c->user,
	         c->addr);
	client_flush(c);
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
		if (buf_len(in) < 5 + (size_t)h.len)
			break;
		const uint8_t *body = buf_head(in) + 5;
		switch (h.type) {
		case 'Q': {
			const char *sql = memchr(body, '\0', h.len) ? (const char *)body : "";
			if (admin_run(c->w, sql, c->admin_writer, &c->conn.out, &c->admin_wait)) {
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
	const char *server_user, *server_password;
	char msg[200];

	proto_write_auth(&c->conn.out, AUTH_OK, NULL, 0);
	if (strcmp(c->db, cfg->admin_db) == 0) {
		admin_login(c);
		return;
	}
	db = config_find_db(cfg, c->db);
	if (db == NULL) {
		snprintf(msg, sizeof(msg), "database \"%s\" does not exist", c->db);
		client_fatal(c, SQLSTATE_UNKNOWN_DATABASE, msg);
		return;
	}
	server_user = db->server_user ? db->server_user : c->user;
	server_password = db->server_password;
	if (server_password == NULL && db->server_user == NULL && c->auth->user != NULL)
		server_password = c->auth->user->plain;
	c->server_user = util_strdup(server_user);
	c->server_password = server_password ? util_strdup(server_password) : NULL;
	client_auth_done(c);
	const char *ro = params_get(&c->wants, "default_transaction_read_only");
	c->session_ro = ro != NULL && (!strcasecmp(ro, "on") || !strcasecmp(ro, "true") ||
	                               !strcasecmp(ro, "1") || !strcasecmp(ro, "yes"));
	struct node *node = router_primary(c->w, db);
	if (node == NULL)
		node = router_node(c->w, db->node_list[0]);
	c->pool = pool_get(c->w, db, c->user, node, c->server_user, c->server_password);
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
		ratelimit_take(&c->w->auth_limit, host, util_now_us());
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
	    ratelimit_allows(&c->w->auth_limit, host, util_now_us()))
		return false;
	c->w->metrics.logins_throttled++;
	client_fatal(c, SQLSTATE_INVALID_PASSWORD,
	             "too many failed logins from this address; try again later "
	             "(auth_failure_limit)");
	return true;
}

static void auth_begin(struct client *c)
{
	int method = c->w->cfg->auth_type;
	const struct auth_user *found = auth_file_find(c->w->auth, c->user);
	const struct auth_user *u = NULL;

	c->auth = util_calloc(1, sizeof(*c->auth));
	if (found != NULL) {
		c->auth->copy = *found;
		c->auth->copy.name = NULL;
		c->auth->copy.plain = found->plain ? util_strdup(found->plain) : NULL;
		u = c->auth->user = &c->auth->copy;
	}
	if (method == AUTH_TYPE_TRUST) {
		auth_ok(c);
		return;
	}
	/* The stored secret decides when it cannot serve the configured method. */
	if (u != NULL && method == AUTH_TYPE_SCRAM && u->kind == SECRET_MD5)
		method = AUTH_TYPE_MD5;
	else if (u != NULL && method == AUTH_TYPE_MD5 && u->kind == SECRET_SCRAM)
		method = AUTH_TYPE_SCRAM;
	client_set_state(c, CLIENT_AUTH);
	if (method == AUTH_TYPE_MD5) {
		if (!util_random_bytes(c->auth->md5_salt, sizeof(c->auth->md5_salt))) {
			client_fatal(c, SQLSTATE_INTERNAL_ERROR, "no random bytes for a salt");
			return;
		}
		c->auth_step = STEP_MD5;
		proto_write_auth(&c->conn.out, AUTH_MD5, c->auth->md5_salt, 4);
	} else {
		static const char mechs[] = "SCRAM-SHA-256\0";
		c->auth_step = STEP_SASL_INITIAL;
		proto_write_auth(&c->conn.out, AUTH_SASL, mechs, sizeof(mechs));
	}
	client_flush(c);
}

/* One PasswordMessage / SASLInitialResponse / SASLResponse. */
static void auth_message(struct client *c, const uint8_t *body, uint32_t len)
{
	struct proto_reader r;
	char out[512];

	proto_reader_init(&r, body, len);
	switch (c->auth_step) {
	case STEP_MD5: {
		const char *resp = proto_get_str(&r);
		if (r.err) {
			client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION, "malformed password message");
			return;
		}
		if (c->auth->user == NULL ||
		    !auth_md5_check(c->auth->user->md5, c->auth->md5_salt, resp)) {
			auth_failed(c);
			return;
		}
		auth_ok(c);
		return;
	}
	case STEP_SASL_INITIAL: {
		const char *mech = proto_get_str(&r);
		int32_t n = (int32_t)proto_get_u32(&r);
		const uint8_t *data = n >= 0 ? proto_get_bytes(&r, (size_t)n) : NULL;
		if (r.err || n < 0 || data == NULL) {
			client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION, "malformed SASL message");
			return;
		}
		if (strcmp(mech, "SCRAM-SHA-256") != 0) {
			client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION,
			             "client selected an invalid SASL authentication mechanism");
			return;
		}
		if (!scram_server_first(&c->auth->scram, c->auth->user, (const char *)data,
		                        (size_t)n, out, sizeof(out))) {
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
		                        sizeof(out))) {
			auth_failed(c);
			return;
		}
		proto_write_auth(&c->conn.out, AUTH_SASL_FINAL, out, strlen(out));
		scram_state_free(&c->auth->scram);
		auth_ok(c);
		return;
	}
}

static void handle_cancel(struct client *c, uint32_t pid, uint32_t key)
{
	struct list *pos, *tmp;

	list_for_each_safe (pos, tmp, &c->w->clients) {
		struct client *t = container_of(pos, struct client, node);
		if (t == c || t->cancel_pid != pid || t->cancel_key != key)
			continue;
		if (t->state == CLIENT_ACTIVE && t->server != NULL) {
			log_info("c=%llu cancel request for c=%llu forwarded to s=%llu",
			         (unsigned long long)c->id, (unsigned long long)t->id,
			         (unsigned long long)t->server->id);
			server_cancel(t->server);
		}
		break;
	}
	client_close(c, "cancel request handled");
}

/* Startup parameters meant for the pooler itself; true when consumed. */
static bool pooler_param(struct client *c, const char *name, const char *value, bool *ok)
{
	*ok = true;
	if (strcasecmp(name, "pooler.route") != 0)
		return false;
	if (strcasecmp(value, "primary") == 0)
		c->forced_route = HINT_PRIMARY;
	else if (strcasecmp(value, "replica") == 0)
		c->forced_route = HINT_REPLICA;
	else if (strcasecmp(value, "auto") == 0 || value[0] == '\0')
		c->forced_route = HINT_NONE;
	else
		*ok = false;
	return true;
}

static bool valid_param_name(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '.'))
			return false;
	return true;
}

/* "-c name=value" and "--name=value" in the startup `options`, with backslash escapes. */
static bool parse_options(struct client *c, const char *opts)
{
	char tok[1024];
	const char *p = opts;
	bool expect_c = false;

	for (;;) {
		size_t n = 0;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		while (*p && *p != ' ' && *p != '\t') {
			if (*p == '\\' && p[1])
				p++;
			if (n + 1 >= sizeof(tok))
				return false;
			tok[n++] = *p++;
		}
		tok[n] = '\0';
		const char *kv;
		if (expect_c) {
			kv = tok;
			expect_c = false;
		} else if (strcmp(tok, "-c") == 0) {
			expect_c = true;
			continue;
		} else if (strncmp(tok, "-c", 2) == 0) {
			kv = tok + 2;
		} else if (strncmp(tok, "--", 2) == 0) {
			kv = tok + 2;
		} else {
			return false;
		}
		char *eq = strchr(kv, '=');
		if (eq == NULL)
			return false;
		*eq = '\0';
		for (char *d = (char *)kv; *d; d++)
			if (*d == '-')
				*d = '_';
		if (!valid_param_name(kv))
			return false;
		bool ok;
		if (pooler_param(c, kv, eq + 1, &ok)) {
			if (!ok)
				return false;
			continue;
		}
		params_set(&c->wants, kv, eq + 1);
	}
	return !expect_c;
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
	c->user = util_strdup(user);
	c->db = util_strdup(db && db[0] ? db : user);
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
			if (!parse_options(c, value)) {
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
		if (!valid_param_name(name) || client_param_server_owned(name)) {
			snprintf(msg, sizeof(msg), "invalid startup parameter \"%.60s\"", name);
			client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION, msg);
			return;
		}
		params_set(&c->wants, name, value);
	}
	if (login_throttled(c))
		return;
	auth_begin(c);
}

/* Startup packets: SSLRequest and GSSENCRequest get 'N', then the real one follows. */
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
			buf_consume(in, len);
			buf_put_u8(&c->conn.out, 'N');
			client_flush(c);
			continue;
		case STARTUP_CANCEL:
			handle_cancel(c, st.cancel_pid, st.cancel_key);
			return;
		case STARTUP_BAD_VERSION:
			snprintf(msg, sizeof(msg),
			         "unsupported frontend protocol %u.%u: server supports 3.0 to 3.0",
			         st.version >> 16, st.version & 0xffff);
			client_fatal(c, SQLSTATE_FEATURE_NOT_SUPPORTED, msg);
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

void client_read_auth(struct client *c)
{
	struct buf *in = &c->conn.in;
	struct proto_header h;
	enum proto_status st = proto_read_header(buf_head(in), buf_len(in), AUTH_MAX_MESSAGE, &h);

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
