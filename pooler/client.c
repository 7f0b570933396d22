/* client: see include/client.h.
 *
 * A client moves STARTUP -> AUTH -> (LOGIN) -> IDLE, then IDLE -> WAITING -> ACTIVE -> IDLE
 * once per transaction (once per session in session mode), and finally CLOSED. Every
 * client is on worker->clients until it closes; a WAITING or LOGIN client is also on its
 * pool's waiting list through its waiter. Only client_set_state writes the state, and it
 * does the entry and exit work of each (its timer, the pool's queue, a kept batch) from the
 * table `states`, asserting that the move is one the table allows.
 *
 * While ACTIVE, bytes from the client are scanned for message boundaries only: a Query,
 * Sync or FunctionCall means one more ReadyForQuery is due, an extended-protocol message
 * means the server must not be released before the next Sync. The bytes themselves go to
 * the server as they arrive, large messages included, without being copied. */
#include "client_internal.h"

static const struct server_ops client_server_ops;

static void on_conn_read(struct conn *cn);

/* Server parameters a client cannot set; reports of them are not client wishes. */
bool client_param_server_owned(const char *name)
{
	return classify_param(name, NULL) == PARAM_SERVER_OWNED;
}

/* The kept batch has run (or will be routed afresh): forget it. */
void client_retry_drop(struct client *c)
{
	free(c->retry_batch);
	c->retry_batch = NULL;
	c->retry_len = 0;
	c->retry = RETRY_NONE;
}

/* What entering a state does to the client's one timer. */
enum state_timer {
	TIMER_KEEP,    /* login: client_login_timeout runs on */
	TIMER_STOP,    /* no limit applies here (waiting sets its own after queueing) */
	TIMER_SESSION, /* the session limits: idle, idle in transaction, lifetime */
};

#define FROM(st) (1u << (st))
#define LOGGING_IN (FROM(CLIENT_STARTUP) | FROM(CLIENT_AUTH))

/* The client state machine: each state's label (SHOW CLIENTS), the states it may be
 * entered from, and its timer. client_set_state does all entry and exit work. */
static const struct {
	const char *label;
	unsigned from;
	uint8_t timer; /* enum state_timer */
} states[] = {
    [CLIENT_STARTUP] = {"login", 0, TIMER_KEEP},
    [CLIENT_AUTH] = {"login", FROM(CLIENT_STARTUP), TIMER_KEEP},
    [CLIENT_LOGIN] = {"login", LOGGING_IN, TIMER_KEEP},
    [CLIENT_IDLE] = {"idle",
                     LOGGING_IN | FROM(CLIENT_LOGIN) | FROM(CLIENT_WAITING) | FROM(CLIENT_HOLD) |
                         FROM(CLIENT_ACTIVE),
                     TIMER_SESSION},
    [CLIENT_WAITING] = {"waiting", FROM(CLIENT_IDLE), TIMER_STOP},
    [CLIENT_HOLD] = {"waiting", FROM(CLIENT_IDLE), TIMER_KEEP},
    [CLIENT_ACTIVE] = {"active", FROM(CLIENT_WAITING), TIMER_SESSION},
    [CLIENT_ADMIN] = {"admin", LOGGING_IN, TIMER_STOP},
    [CLIENT_CLOSED] = {"closed", ~FROM(CLIENT_CLOSED), TIMER_STOP},
};
_Static_assert(ARRAY_LEN(states) == CLIENT_CLOSED + 1, "a row for every client state");

void client_set_state(struct client *c, enum client_state st)
{
	assert(states[st].from & FROM(c->state));
	if (c->state == CLIENT_WAITING) {
		/* leaving the queue: served (ACTIVE), or sent back to be routed again */
		pool_unwait(c->pool, &c->waiter);
		if (st != CLIENT_ACTIVE)
			client_retry_drop(c);
	}
	if (c->state == CLIENT_HOLD)
		list_del(&c->waiter.node);
	if (st == CLIENT_HOLD)
		list_append(&c->w->held_clients, &c->waiter.node);
	if (st == CLIENT_CLOSED) {
		if (c->pool != NULL)
			pool_unwait(c->pool, &c->waiter); /* LOGIN waits too */
		list_del(&c->node);
		list_append(&c->w->dead_clients, &c->node);
		c->w->n_clients--;
		__atomic_sub_fetch(&c->w->team->n_clients, 1, __ATOMIC_RELAXED);
	}
	c->state = st;
	if (states[st].timer == TIMER_STOP)
		ev_timer_stop(c->w->loop, &c->timer);
	else if (states[st].timer == TIMER_SESSION)
		client_arm_timer(c);
}

void client_auth_done(struct client *c)
{
	if (c->auth == NULL)
		return;
	authq_cancel(c->auth->lookup);
	scram_state_free(&c->auth->scram);
	if (c->auth->copy.plain != NULL) {
		memset(c->auth->copy.plain, 0, strlen(c->auth->copy.plain));
		free(c->auth->copy.plain);
	}
	free(c->auth);
	c->auth = NULL;
}

struct stmt_names *client_names(struct client *c)
{
	if (c->names == NULL)
		c->names = util_calloc(1, sizeof(*c->names));
	return c->names;
}

struct client_stmts *client_stmts_of(struct client *c)
{
	if (c->stmts == NULL)
		c->stmts = util_calloc(1, sizeof(*c->stmts));
	return c->stmts;
}

/* Send what is queued; the caller checks c->state afterwards. */
void client_flush(struct client *c)
{
	if (conn_flush(&c->conn) == CONN_ERROR)
		c->conn.eof = true;
}

static void release_server(struct client *c);

/* Close the client. Its server goes back to the pool when it is clean, is rolled back
 * when it idles inside a transaction (unless the client's session state pinned it: a
 * rollback would leave that state behind), and is closed otherwise: never reused dirty. */
void client_close(struct client *c, const char *why)
{
	if (c->state == CLIENT_CLOSED)
		return;
	log_debug(CLIENT_FMT " closing: %s", CLIENT_ARGS(c), why);
	if (c->server)
		release_server(c);
	conn_close(&c->conn);
	client_auth_done(c);
	client_set_state(c, CLIENT_CLOSED);
	if (c->w->on_idle_client)
		c->w->on_idle_client(c->w);
}

/* A FATAL error the client can read, then close. */
void client_fatal(struct client *c, const char *sqlstate, const char *message)
{
	if (c->state == CLIENT_CLOSED)
		return;
	log_info(CLIENT_FMT " addr=%s error %s: %s", CLIENT_ARGS(c), c->addr, sqlstate, message);
	if (c->server)
		release_server(c);
	proto_write_error(&c->conn.out, "FATAL", sqlstate, message);
	client_flush(c);
	client_close(c, message);
}

/* The client's hold on its server ends: the transaction's time is counted. */
static void count_hold(struct client *c)
{
	uint64_t us = util_elapsed_us(worker_now_us(c->w), c->linked_us);

	histogram_observe(&c->w->metrics.transaction_time, us);
	c->pool->xact_us += us;
}

static void release_server(struct client *c)
{
	struct server *s = c->server;
	struct pool *p = c->pool;
	bool mid_message = c->remain > 0 || s->remain > 0 || c->conn.fwd > 0 || s->conn.fwd > 0;

	c->server = NULL;
	conn_unlink(&c->conn);
	count_hold(c);
	if (!mid_message && server_is_clean(s)) {
		if (c->route.pinned != PIN_NONE)
			pool_reset(p, s,
			           p->reset_query[0] != '\0' ? p->reset_query : "DISCARD ALL");
		else if (p->mode == POOL_MODE_SESSION && p->reset_query[0] != '\0')
			pool_reset(p, s, p->reset_query);
		else
			pool_release(p, s);
	} else if (!mid_message && s->pending == 0 && s->swallow == 0 && !s->unsynced &&
	           (s->tx_status == 'T' || s->tx_status == 'E') && p->mode != POOL_MODE_SESSION &&
	           c->route.pinned == PIN_NONE) {
		pool_reset(p, s, "ROLLBACK");
	} else {
		pool_discard(p, s, "client left while the server was busy");
	}
}

static void attach(struct client *c, struct server *s)
{
	c->server = s;
	s->owner = c;
	s->ops = &client_server_ops;
	s->pending = 0;
	s->unsynced = false;
	s->guard = c->retry != RETRY_NONE;
	c->linked_us = worker_now_us(c->w);
	uint64_t waited = util_elapsed_us(c->linked_us, c->waiter.since_us);
	histogram_observe(&c->w->metrics.client_wait, waited);
	c->pool->backend->shards[c->w->index].transactions++;
	c->pool->xact_count++;
	c->pool->wait_us += waited;
	if (s->replies != NULL)
		s->replies->len = 0; /* a clean server owes no answers */
	conn_link(&c->conn, &s->conn);
	c->last_read_us = c->linked_us;
	c->query_cancelled = false;
	client_set_state(c, CLIENT_ACTIVE);
	log_debug("c=%llu s=%llu linked", (unsigned long long)c->id, (unsigned long long)s->id);
	s->restore_seg = 0;
	s->restoring = false;
	client_sync_params(c, s);
	client_first_batch_linked(c, s);
}

/* ---- server events while linked ------------------------------------------------------ */

/* Everything the client sent has been answered and it keeps the server: a Terminate
 * that waited behind its queries (client_relay) can be acted on now. */
static void on_server_tx_idle(struct server *s)
{
	struct client *c = s->owner;
	const struct conn *cn = &c->conn;

	if (c->remain == 0 && buf_len(&cn->in) > cn->fwd && buf_head(&cn->in)[cn->fwd] == 'X')
		client_close(c, "client said goodbye");
}

/* A replica refused the kept batch (a write, or what a standby cannot do): run it on the
 * primary and remember its shape as a write. */
static void rerun_on_primary(struct client *c, struct server *s, const char *sqlstate)
{
	struct proto_header h;
	const char *sql = NULL;
	size_t len = 0;

	if (proto_read_header(c->retry_batch, c->retry_len, PROTO_MAX_MESSAGE, &h) == PROTO_OK &&
	    5 + (size_t)h.len <= c->retry_len)
		sql = batch_sql_text(h.type, c->retry_batch + 5, h.len, &len);
	if (sql == NULL)
		sql = "", len = 0;
	len = strnlen(sql, len);
	c->retry = RETRY_ON_PRIMARY;
	c->w->replica_refusals++;
	classify_learn_write(c->w->classifier, sql, len);
	log_warning("c=%llu s=%llu a replica refused a statement classified as a read (%s); "
	            "running it on the primary: %.*s",
	            (unsigned long long)c->id, (unsigned long long)s->id, sqlstate,
	            (int)(len < 120 ? len : 120), sql);
}

static bool on_server_refused(struct server *s, const char *sqlstate, bool stale)
{
	struct client *c = s->owner;

	if (c->retry != RETRY_KEPT)
		return false;
	if (!stale) {
		if (!c->route.on_replica)
			return false; /* the primary means it */
		rerun_on_primary(c, s, sqlstate);
		return true;
	}
	/* a stale prepared statement: once, on this server, with everything prepared anew */
	c->retry = RETRY_STALE;
	log_info("c=%llu s=%llu a prepared statement's result type changed; preparing it again "
	         "and retrying the batch",
	         (unsigned long long)c->id, (unsigned long long)s->id);
	return true;
}

/* The batch failed on a stale prepared statement before the client saw anything: clear
 * the server's statements and send the batch again; the Binds in it prepare what they
 * use afresh. */
static void rerun_stale(struct client *c, struct server *s)
{
	c->w->metrics.prepared_retries++;
	client_forget_stale_statements(s);
	client_requeue_batch(c);
	c->approved = c->route.on_replica ? c->retry_len : 0;
	client_retry_drop(c);
	c->held = false;
	s->guard = false;
	client_relay(c);
}

static void on_server_ready(struct server *s)
{
	struct client *c = s->owner;

	if (c->retry == RETRY_STALE) {
		rerun_stale(c, s);
		return;
	}
	if ((c->pool->mode == POOL_MODE_SESSION || c->route.pinned != PIN_NONE) &&
	    !c->w->shutting_down) {
		/* the server stays: what waited behind a kept batch goes on now */
		if (c->retry != RETRY_NONE) {
			client_retry_drop(c);
			c->held = false;
			if (buf_len(&c->conn.in) > 0)
				client_relay(c);
		}
		if (c->state == CLIENT_ACTIVE && c->server == s)
			on_server_tx_idle(s);
		return;
	}
	router_tx_done(&c->route);
	count_hold(c);
	c->server = NULL;
	conn_unlink(&c->conn);
	pool_release(c->pool, s);
	client_set_state(c, CLIENT_IDLE);
	if (c->retry == RETRY_ON_PRIMARY) {
		client_requeue_batch(c);
		router_primary_once(&c->route, ROUTE_REPLICA_REFUSED);
	}
	client_retry_drop(c);
	if (c->w->shutting_down) {
		client_fatal(c, SQLSTATE_ADMIN_SHUTDOWN,
		             "terminating connection due to administrator command");
		return;
	}
	if (buf_len(&c->conn.in) > 0)
		client_process(c);
	else
		conn_trim(&c->conn);
}

static void on_server_failed(struct server *s, const char *why)
{
	struct client *c = s->owner;
	bool mid_message = s->remain > 0 || s->conn.fwd > 0;
	char msg[400];

	log_warning("c=%llu s=%llu server connection lost: %s", (unsigned long long)c->id,
	            (unsigned long long)s->id, why);
	c->server = NULL;
	conn_unlink(&c->conn);
	pool_discard(c->pool, s, why);
	if (mid_message) {
		client_close(c, "server lost in the middle of a message");
		return;
	}
	snprintf(msg, sizeof(msg), "server connection lost: %s", why);
	client_fatal(c, SQLSTATE_CONNECTION_FAILURE, msg);
}

static void on_server_param(struct server *s, const char *name, const char *value, bool relayed)
{
	struct client *c = s->owner;

	if (client_param_server_owned(name))
		return;
	if (relayed && strcasecmp(name, "default_transaction_read_only") == 0)
		c->route.session_ro = strcmp(value, "on") == 0;
	/* The client changed it (relayed) or the server normalised what we set for it. */
	if (relayed || params_find(&c->wants, name) != NULL) {
		params_set(&c->wants, name, value);
		/* both sides now agree on it */
		s->synced_fp = params_fingerprint(&c->wants);
	}
}

static void on_server_query_error(struct server *s, const char *sqlstate, const char *message)
{
	struct client *c = s->owner;
	char msg[400];

	/* A parameter from the startup packet was refused, as PostgreSQL itself would at
	 * login. */
	snprintf(msg, sizeof(msg), "%s", message);
	client_fatal(c, sqlstate, msg);
}

static void on_server_login(struct server *s, const char *error)
{
	(void)s;
	(void)error;
	assert(!"a linked server is already logged in");
}

static const struct server_ops client_server_ops = {
    .login_done = on_server_login,
    .ready = on_server_ready,
    .tx_idle = on_server_tx_idle,
    .failed = on_server_failed,
    .param = on_server_param,
    .query_error = on_server_query_error,
    .refused = on_server_refused,
};

/* ---- handing out servers, accepting and counting clients -------------------------------- */

static void on_grant(struct pool_waiter *wt, struct server *s)
{
	struct client *c = container_of(wt, struct client, waiter);

	if (c->state == CLIENT_LOGIN) {
		/* The pool has now seen a server's parameters; give the server straight back. */
		s->owner = c->pool;
		pool_release(c->pool, s);
		client_send_welcome(c);
		if (c->state == CLIENT_IDLE && buf_len(&c->conn.in) > 0)
			client_process(c);
		return;
	}
	attach(c, s);
	if (c->state == CLIENT_ACTIVE)
		client_relay(c);
}

/* A waiting client goes back to idle, its transaction not begun, to be routed again. */
void client_unqueue(struct client *c)
{
	client_set_state(c, CLIENT_IDLE);
}

/* No server for the waiting client. An outage (the node cannot be reached, its circuit is
 * open) is an error, not a disconnect, for a client between transactions: it hears why and
 * keeps its connection, as its application's own pool expects. Anything else, or a client
 * still logging in, is closed. */
static void on_wait_failed(struct pool_waiter *wt, const char *sqlstate, const char *message)
{
	struct client *c = container_of(wt, struct client, waiter);
	bool outage = strcmp(sqlstate, SQLSTATE_CONNECTION_FAILURE) == 0 ||
	              strcmp(sqlstate, SQLSTATE_CANNOT_CONNECT_NOW) == 0;

	if (outage && c->state == CLIENT_WAITING &&
	    router_replica_unreachable(c->w, &c->route, c->pool->backend)) {
		/* the read runs on the primary at once, not after the probes have noticed */
		log_info(CLIENT_FMT " replica %s unreachable (%s): reading from the primary",
		         CLIENT_ARGS(c), c->pool->backend->name, message);
		client_unqueue(c);
		if (!c->acquiring) /* inside pool_acquire the caller routes it again */
			client_process(c);
		return;
	}
	if (outage && client_refuse_waiting(c, sqlstate, message)) {
		if (!c->acquiring && buf_len(&c->conn.in) > 0)
			client_process(
			    c); /* pipelined batches; inside pool_acquire the caller loops */
		return;
	}
	client_fatal(c, sqlstate, message);
}

/* The pool this client waited on retired (reload): route its transaction again. Nothing
 * of it has gone to a server yet. */
static void on_wait_retry(struct pool_waiter *wt)
{
	struct client *c = container_of(wt, struct client, waiter);

	if (c->state != CLIENT_WAITING) {
		client_fatal(c, SQLSTATE_ADMIN_SHUTDOWN, "the database changed during login");
		return;
	}
	client_unqueue(c);
	client_process(c);
}

void client_process(struct client *c)
{
	enum client_state before;

	do {
		before = c->state;
		switch (c->state) {
		case CLIENT_STARTUP:
			client_read_startup(c);
			break;
		case CLIENT_AUTH:
			client_read_auth(c);
			break;
		case CLIENT_IDLE:
			client_start_transaction(c);
			break;
		case CLIENT_ACTIVE:
			client_relay(c);
			break;
		case CLIENT_ADMIN:
			client_admin_read(c);
			break;
		case CLIENT_LOGIN:
		case CLIENT_WAITING:
		case CLIENT_HOLD:
		case CLIENT_CLOSED:
			return;
		}
		/* A state change may leave bytes the new state must look at. */
	} while (c->state != before && c->state != CLIENT_CLOSED && buf_len(&c->conn.in) > 0);
}

static void on_conn_read(struct conn *cn)
{
	struct client *c = cn->owner;

	if (cn->eof) {
		client_close(c, cn->handshaking ? "TLS handshake failed"
		                                : "client closed the connection");
		return;
	}
	if (c->moving)
		return; /* the next worker reads it (client_move) */
	c->last_read_us = worker_now_us(c->w);
	c->query_cancelled = false;
	client_process(c);
}

static void on_conn_drain(struct conn *cn)
{
	struct client *c = cn->owner;
	/* Not while a message kept whole is still arriving (client_relay): the transaction is
	 * under way, and handing the server back would only fetch it again, recursively. */
	if (c->server != NULL && cn->want == 0)
		server_check_ready(c->server);
}

/* Unix sockets and rate_limit_exempt addresses escape the per-address limits; host
 * receives the address without its port. */
bool client_rate_exempt(const struct client *c, char *host, size_t len)
{
	ratelimit_host(c->addr, host, len);
	return strcmp(c->addr, "unix") == 0 || ratelimit_listed(c->w->cfg->rate_limit_exempt, host);
}

/* A client on its way to another worker: kept outside the client, whose size is what
 * 10k idle connections cost. */
struct client_move_req {
	struct list node; /* worker->moving_clients */
	struct client *c;
	struct worker *to;
	void (*then)(struct client *c);
};

/* The second half of client_move, on the new worker's thread. */
static void adopt(struct worker *w, void *arg)
{
	struct client_move_req *m = arg;
	struct client *c = m->c;

	c->w = w;
	list_append(&w->clients, &c->node);
	w->n_clients++;
	c->conn.bytes = &w->metrics.client_bytes;
	c->moving = false;
	conn_attach(&c->conn, w->loop);
	m->then(c);
	free(m);
}

void client_move(struct client *c, struct worker *to, void (*then)(struct client *c))
{
	struct client_move_req *m = util_calloc(1, sizeof(*m));

	*m = (struct client_move_req){.c = c, .to = to, .then = then};
	c->moving = true;
	list_append(&c->w->moving_clients, &m->node);
}

/* Before the loop sleeps, with no callback of theirs running: clients leave for the
 * worker client_move named (unless they closed meanwhile). */
static void send_moving(struct worker *w)
{
	struct list *n;

	while ((n = list_pop(&w->moving_clients)) != NULL) {
		struct client_move_req *m = container_of(n, struct client_move_req, node);
		struct client *c = m->c;
		if (c->state == CLIENT_CLOSED) {
			free(m);
			continue;
		}
		conn_detach(&c->conn);
		ev_timer_stop(w->loop, &c->timer);
		list_del(&c->node);
		w->n_clients--;
		worker_post(m->to, adopt, m);
	}
}

static const struct pool_waiter_ops waiter_ops = {
    .grant = on_grant,
    .fail = on_wait_failed,
    .retry = on_wait_retry,
};

void client_accept(struct worker *w, int fd, const char *addr)
{
	char host[RATELIMIT_KEY];
	struct client *c = util_calloc(1, sizeof(*c));
	uint64_t r = util_rand64(&w->rng);

	c->w = w;
	c->id = worker_next_id(w);
	c->state = CLIENT_STARTUP;
	c->connect_us = util_now_us();
	peer_key_make(w->peer_id, w->index, r, &c->cancel_pid, &c->cancel_key);
	util_strlcpy(c->addr, addr, sizeof(c->addr));
	c->waiter.ops = &waiter_ops;
	params_init(&c->wants);
	list_append(&w->clients, &c->node);
	w->n_clients++;
	int all_clients = __atomic_add_fetch(&w->team->n_clients, 1, __ATOMIC_RELAXED);
	conn_init(&c->conn, w->loop, fd, c, on_conn_read, on_conn_drain);
	c->conn.bytes = &w->metrics.client_bytes;
	ev_timer_init(&c->timer, client_on_timer, 0, 0);
	c->timer.data = c;
	if (!client_rate_exempt(c, host, sizeof(host)) &&
	    !worker_rate_take(w, &w->team->connect_limit, host, c->connect_us)) {
		/* answered before the startup packet: nothing is parsed or hashed for it */
		w->metrics.clients_throttled++;
		client_fatal(c, SQLSTATE_TOO_MANY_CONNECTIONS,
		             "too many connections from this address (client_rate_limit)");
		return;
	}
	if (all_clients > w->cfg->max_client_conn) {
		metrics_reject(&w->metrics, REJECT_MAX_CLIENT_CONN);
		client_fatal(c, SQLSTATE_TOO_MANY_CONNECTIONS,
		             "too many client connections (max_client_conn)");
		return;
	}
	if (w->cfg->client_login_timeout_ms > 0) {
		ev_timer_set(&c->timer, w->cfg->client_login_timeout_ms / 1000.0, 0);
		ev_timer_start(w->loop, &c->timer);
	}
	conn_start_read(&c->conn);
}

void client_shutdown_idle(struct worker *w)
{
	struct list *pos, *tmp;

	list_for_each_safe (pos, tmp, &w->clients) {
		struct client *c = container_of(pos, struct client, node);
		if (c->state == CLIENT_ACTIVE)
			continue;
		client_fatal(c, SQLSTATE_ADMIN_SHUTDOWN,
		             "terminating connection due to administrator command");
	}
}

/* What the client set during its session and the pooler carries from server to server
 * (its wishes that are not its login values), as "name=value, ..." (cut to fit). */
static const char *session_settings(const struct client *c, char *out, size_t cap)
{
	size_t len = 0;

	out[0] = '\0';
	for (int i = 0; i < c->wants.n && len + 1 < cap; i++) {
		const struct param *p = &c->wants.items[i];
		if (p->base != NULL && strcmp(p->base, p->value) == 0)
			continue;
		int n = snprintf(out + len, cap - len, "%s%s=%s", len ? ", " : "", p->name, p->value);
		len = n < 0 || (size_t)n >= cap - len ? cap - 1 : len + (size_t)n;
	}
	return out;
}

/* Every client of every worker in turn: team_client(w, NULL) is the first, NULL follows
 * the last. In a world section, or with one worker. */
static struct client *team_client(const struct worker *w, const struct client *c)
{
	struct list *next = team_list_next(w->team, offsetof(struct worker, clients),
	                                   c ? c->w->index : 0, c ? &c->node : NULL);
	return next ? container_of(next, struct client, node) : NULL;
}

void client_foreach(struct worker *w, void (*fn)(const struct client_info *ci, void *arg),
                    void *arg)
{
	for (struct client *c = team_client(w, NULL); c != NULL; c = team_client(w, c)) {
		char settings[512];
		struct client_info ci = {
		    .id = c->id,
		    .user = c->user,
		    .db = c->db,
		    .state = states[c->state].label,
		    .addr = c->addr,
		    .connect_us = c->connect_us,
		    .request_us = c->waiter.since_us ? c->waiter.since_us : c->connect_us,
		    .wait_us = c->state == CLIENT_WAITING ? util_now_us() - c->waiter.since_us : 0,
		    .server_id = c->server ? c->server->id : 0,
		    .pinned =
		        c->route.pinned != PIN_NONE ? classify_pin_name(c->route.pinned) : NULL,
		    .application_name = params_get(&c->wants, "application_name"),
		    .settings = session_settings(c, settings, sizeof(settings)),
		    .node = c->server ? c->pool->backend->name : NULL,
		    .fd = c->conn.fd,
		    .worker = c->w->index,
		    .pool = c->pool,
		    .ssl = c->conn.ssl,
		};
		fn(&ci, arg);
	}
}

int client_kill_db(struct worker *w, const char *db)
{
	struct client *c, *next;
	int n = 0;

	for (c = team_client(w, NULL); c != NULL; c = next) {
		next = team_client(w, c); /* c leaves the list (client_fatal) */
		if (c->db == NULL || strcmp(c->db, db) != 0 || c->state == CLIENT_ADMIN)
			continue;
		client_fatal(c, SQLSTATE_ADMIN_SHUTDOWN, "terminated by the admin console (KILL)");
		n++;
	}
	return n;
}

bool client_kill_id(struct worker *w, uint64_t id)
{
	for (struct client *c = team_client(w, NULL); c != NULL; c = team_client(w, c)) {
		if (c->id != id || c->state == CLIENT_ADMIN || c->state == CLIENT_CLOSED)
			continue;
		client_fatal(c, SQLSTATE_ADMIN_SHUTDOWN,
		             "terminated by the admin console (KILL_CLIENT)");
		return true;
	}
	return false;
}

void client_count(const struct worker *w, struct client_counts *cc)
{
	memset(cc, 0, sizeof(*cc));
	for (const struct client *c = team_client(w, NULL); c != NULL; c = team_client(w, c)) {
		switch (c->state) {
		case CLIENT_STARTUP:
		case CLIENT_AUTH:
		case CLIENT_LOGIN:
			cc->login++;
			break;
		case CLIENT_IDLE:
		case CLIENT_ADMIN:
			cc->idle++;
			break;
		case CLIENT_WAITING:
		case CLIENT_HOLD:
			cc->waiting++;
			break;
		case CLIENT_ACTIVE:
			cc->active++;
			break;
		case CLIENT_CLOSED:
			break;
		}
	}
}

void client_close_all(struct worker *w)
{
	while (!list_empty(&w->clients))
		client_close(container_of(w->clients.next, struct client, node), "exiting");
}

void client_reap(struct worker *w)
{
	struct list *n;

	send_moving(w); /* before the dead are freed: a moving client may have closed */
	while ((n = list_pop(&w->dead_clients)) != NULL) {
		struct client *c = container_of(n, struct client, node);
		conn_free(&c->conn);
		params_free(&c->wants);
		free(c->names);
		free(c->retry_batch);
		free(c->begin_text);
		free(c->admin_wait);
		if (c->stmts != NULL)
			pstmts_free(c->stmts);
		free(c->stmts);
		free(c->own_password);
		free(c->user); /* c->db too */
		free(c);
	}
}
