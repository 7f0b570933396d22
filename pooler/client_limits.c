/* client_limits: the limits on a logged-in session and the client's one timer
 * (client_idle_timeout, idle_transaction_timeout, query_timeout, query_wait_timeout, the
 * wait for a primary, the login timeout). See client.c for the states. */
#include "client_internal.h"

/*
 * One timer per client. Reads only note the time; when the timer fires, it works out which
 * limit applies in the client's present state and either acts or sleeps again, never for
 * longer than the smallest limit, so that a change of state is noticed in time. With 10k
 * idle clients this costs one timer each and no scans. */

enum session_limit { LIMIT_IDLE, LIMIT_IDLE_TX, LIMIT_QUERY };

/* Which limit applies now: waiting on the client outside a transaction (idle), waiting on
 * the client while holding a server inside a transaction or mid-batch (idle_tx), or
 * waiting on the server (query). */
static enum session_limit current_limit(const struct client *c)
{
	const struct server *s = c->server;

	if (s == NULL)
		return LIMIT_IDLE;
	if (s->pending > 0 || s->swallow > 0)
		return LIMIT_QUERY;
	if (s->tx_status == 'I' && !s->unsynced && c->remain == 0 && buf_len(&c->conn.in) == 0)
		return LIMIT_IDLE; /* a session (or pinned client) between transactions */
	return LIMIT_IDLE_TX;
}

static int limit_ms(const struct config *cfg, enum session_limit l)
{
	switch (l) {
	case LIMIT_IDLE:
		return cfg->client_idle_timeout_ms;
	case LIMIT_IDLE_TX:
		return cfg->idle_transaction_timeout_ms;
	default:
		return cfg->query_timeout_ms;
	}
}

static int smallest_limit_ms(const struct config *cfg)
{
	int best = 0;
	for (int l = LIMIT_IDLE; l <= LIMIT_QUERY; l++) {
		int ms = limit_ms(cfg, (enum session_limit)l);
		if (ms > 0 && (best == 0 || ms < best))
			best = ms;
	}
	return best;
}

static void sleep_ms(struct client *c, uint64_t ms)
{
	ev_timer_stop(c->w->loop, &c->timer);
	ev_timer_set(&c->timer, (double)ms / 1000.0, 0);
	ev_timer_start(c->w->loop, &c->timer);
}

/* Start watching the session limits (entering IDLE or ACTIVE). */
void client_arm_timer(struct client *c)
{
	int ms = smallest_limit_ms(c->w->cfg);

	if (ms == 0) {
		ev_timer_stop(c->w->loop, &c->timer);
		return;
	}
	sleep_ms(c, (uint64_t)ms);
}

static void session_limit_reached(struct client *c, enum session_limit l, int ms)
{
	char msg[200];

	switch (l) {
	case LIMIT_IDLE:
		c->w->metrics.clients_idle_timeout++;
		snprintf(msg, sizeof(msg),
		         "terminating connection due to idle-session timeout (client_idle_timeout "
		         "%d ms)",
		         ms);
		client_fatal(c, SQLSTATE_IDLE_SESSION_TIMEOUT, msg);
		return;
	case LIMIT_IDLE_TX:
		c->w->metrics.clients_idle_tx_timeout++;
		snprintf(msg, sizeof(msg),
		         "terminating connection due to idle-in-transaction timeout "
		         "(idle_transaction_timeout %d ms)",
		         ms);
		client_fatal(c, SQLSTATE_IDLE_IN_TX_TIMEOUT, msg);
		return;
	case LIMIT_QUERY:
		if (!c->query_cancelled) {
			/* the server answers the client with 57014 itself */
			log_info(
			    "c=%llu s=%llu query_timeout: cancelling a query running for %d ms",
			    (unsigned long long)c->id, (unsigned long long)c->server->id, ms);
			c->w->metrics.queries_timed_out++;
			c->query_cancelled = true;
			server_cancel(c->server);
			sleep_ms(c, (uint64_t)ms);
			return;
		}
		snprintf(msg, sizeof(msg),
		         "query_timeout: the query did not stop %d ms after it was cancelled", ms);
		client_fatal(c, SQLSTATE_QUERY_CANCELED, msg);
		return;
	}
}

static void check_session_limits(struct client *c)
{
	const struct config *cfg = c->w->cfg;
	enum session_limit l = current_limit(c);
	uint64_t limit = (uint64_t)limit_ms(cfg, l) * 1000, now = util_now_us();
	uint64_t since = now - c->last_read_us;
	uint64_t next = (uint64_t)smallest_limit_ms(cfg) * 1000;

	if (next == 0)
		return; /* every limit was switched off by a reload */
	if (limit > 0 && since >= limit) {
		session_limit_reached(c, l, (int)(limit / 1000));
		return;
	}
	if (limit > 0 && limit - since < next)
		next = limit - since;
	sleep_ms(c, next / 1000 + 1);
}

void client_on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct client *c = t->data;
	char msg[160];
	(void)loop;
	(void)revents;

	if (c->state == CLIENT_IDLE || c->state == CLIENT_ACTIVE) {
		check_session_limits(c);
	} else if (c->state == CLIENT_HOLD) {
		c->hold_since_us = 0;
		if (!client_refuse_waiting(
		        c, SQLSTATE_CANNOT_CONNECT_NOW,
		        "no primary server is available (waited query_wait_timeout)"))
			client_fatal(c, SQLSTATE_CANNOT_CONNECT_NOW,
			             "no primary server is available");
		else if (buf_len(&c->conn.in) > 0)
			client_process(c);
	} else if (c->state == CLIENT_WAITING) {
		snprintf(msg, sizeof(msg),
		         "query_wait_timeout: no server connection became free within %d ms",
		         c->w->cfg->query_wait_timeout_ms);
		metrics_reject(&c->w->metrics, REJECT_QUERY_WAIT_TIMEOUT);
		client_fatal(c, SQLSTATE_QUERY_CANCELED, msg);
	} else if (c->state == CLIENT_ADMIN) {
		client_admin_poll(c);
	} else if (c->state == CLIENT_STARTUP || c->state == CLIENT_AUTH ||
	           c->state == CLIENT_LOGIN) {
		client_fatal(c, SQLSTATE_PROTOCOL_VIOLATION,
		             "client_login_timeout: login did not finish in time");
	}
}
