/* pool: see include/pool.h. */
#include "pool.h"
#include "pool_internal.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classify.h"
#include "log.h"
#include "proto.h"


/* The one place a server changes state and list, and enters or leaves the counts: a new
 * server (on no list yet) joins the pool connecting, a closed one leaves it. */
static void pool_set_state(struct pool *p, struct server *s, enum server_state st)
{
	bool joining = list_empty(&s->node);

	assert(s->state != SERVER_CLOSED);
	assert(joining == (st == SERVER_CONNECTING)); /* only launch connects */
	if (joining) {
		p->n_servers++; /* its slot was taken (take_slot) before launch */
	} else if (s->state == SERVER_CONNECTING) {
		p->n_connecting--;
	} else if (s->state == SERVER_ACTIVE) {
		p->backend->shards[p->w->index].inflight--;
	}
	if (st == SERVER_ACTIVE)
		p->backend->shards[p->w->index].inflight++;
	list_del(&s->node);
	s->state = st;
	switch (st) {
	case SERVER_CONNECTING:
		p->n_connecting++;
		list_append(&p->connecting, &s->node);
		break;
	case SERVER_IDLE:
		list_append(&p->idle, &s->node);
		break;
	case SERVER_ACTIVE:
	case SERVER_RESET:
		list_append(&p->active, &s->node);
		break;
	case SERVER_CLOSED:
		p->n_servers--;
		share_give(p->w, p->backend, p->share);
		list_append(&p->w->dead_servers, &s->node);
		break;
	}
}

static void launch(struct pool *p)
{
	struct server *s = util_calloc(1, sizeof(*s));

	s->id = worker_next_id(p->w);
	s->pool = p;
	s->owner = p;
	s->ops = &pool_server_ops;
	s->tally = &p->tally;
	/* fixed for the connection's life: its reply tracking must not change midway */
	s->stmt_cache_size = p->stmt_cache_size;
	list_init(&s->node);
	pool_set_state(p, s, SERVER_CONNECTING);
	p->backend->shards[p->w->index].connect_attempts++;
	log_debug("s=%llu db=%s user=%s connecting to %s:%d", (unsigned long long)s->id, p->db_name,
	          p->user, p->login.host, p->login.port);
	if (!server_connect(s, p->w->loop, &p->login)) {
		log_error("s=%llu cannot start a server connection", (unsigned long long)s->id);
		pool_set_state(p, s, SERVER_CLOSED);
	}
}

/* ---- sharing a node among pools ---------------------------------------------------------
 *
 * Every server connection to a node counts against three caps, all per node: the node's
 * budget (its pool_size, never above what the server allows), max_db_connections for the
 * database and max_user_connections for the user. A pool at a full cap may close another
 * pool's idle server to make room; a pool whose clients wait while a neighbour under the
 * same cap holds two or more servers more than it does gets the neighbour's next free
 * server (closed there, opened here). So one busy pool cannot starve the others (a
 * bulkhead), while a lone busy pool may still use the whole budget. */

static bool shares_cap(const struct pool *p, const struct pool *q, enum cap k)
{
	if (p->backend != q->backend)
		return false;
	switch (k) {
	case CAP_DB:
		return strcmp(p->db_name, q->db_name) == 0;
	case CAP_USER:
		return strcmp(p->user, q->user) == 0;
	case CAP_POOL:
		return p == q;
	default:
		return true;
	}
}

static int pool_limit(const struct pool *p, uint64_t now);

static void limits_of(const struct pool *p, uint64_t now, int limits[N_CAPS])
{
	limits[CAP_NODE] = p->backend->budget;
	limits[CAP_DB] = p->max_db_connections;
	limits[CAP_USER] = p->max_user_connections;
	limits[CAP_POOL] = pool_limit(p, now);
}

/* The caps (a bit mask) that leave p no room for one more server, counting every
 * worker's pools. */
static unsigned full_caps(const struct pool *p)
{
	int limits[N_CAPS];

	limits_of(p, worker_now_us(p->w), limits);
	return share_full(p->backend, p->share, limits);
}

/* Servers of p's (database, user) on its node over every worker, reserved slots too. */
static int pool_total(const struct pool *p)
{
	return share_pool_total(p->backend, p->share);
}

static bool shares_caps(const struct pool *p, const struct pool *q, unsigned mask)
{
	for (int k = 0; k < N_CAPS; k++)
		if ((mask & (1u << k)) && !shares_cap(p, q, (enum cap)k))
			return false;
	return true;
}

/* Another pool under the same full caps with an idle server to give up: the one that holds
 * the most servers. */
static struct pool *find_idle_victim(const struct pool *p, unsigned mask)
{
	struct pool *victim = NULL;
	struct list *pos;

	for (pos = p->w->pools.next; pos != &p->w->pools; pos = pos->next) {
		struct pool *q = container_of(pos, struct pool, node);
		if (q != p && !list_empty(&q->idle) && shares_caps(p, q, mask) &&
		    (victim == NULL || q->n_servers > victim->n_servers))
			victim = q;
	}
	return victim;
}

/* Close a server without refilling its pool (the room is someone else's). */
void pool_close_quietly(struct pool *p, struct server *s, const char *why)
{
	log_debug("s=%llu db=%s user=%s closing: %s", (unsigned long long)s->id, p->db_name,
	          p->user, why);
	server_close(s);
	pool_set_state(p, s, SERVER_CLOSED);
}

/* Servers this pool may hold now: its size, plus its reserve once the client at the head
 * of the queue has waited reserve_pool_timeout. */
static int pool_limit(const struct pool *p, uint64_t now)
{
	const struct pool_waiter *head;

	if (p->reserve <= 0 || list_empty(&p->waiting))
		return p->size;
	head = container_of(p->waiting.next, struct pool_waiter, node);
	if (util_elapsed_us(now, head->since_us) < (uint64_t)p->reserve_timeout_ms * 1000)
		return p->size;
	return p->size + p->reserve;
}

/* Wake the reserve check when the head of the queue will have waited long enough. */
static void arm_reserve(struct pool *p)
{
	const struct pool_waiter *head;
	uint64_t due, now = util_now_us();

	if (p->reserve <= 0 || list_empty(&p->waiting) || ev_is_active(&p->reserve_timer) ||
	    pool_total(p) < p->size)
		return;
	head = container_of(p->waiting.next, struct pool_waiter, node);
	due = head->since_us + (uint64_t)p->reserve_timeout_ms * 1000;
	ev_timer_set(&p->reserve_timer, (double)util_elapsed_us(due, now) / 1e6, 0);
	ev_timer_start(p->w->loop, &p->reserve_timer);
}

static void fail_waiters(struct pool *p, const char *sqlstate, const char *message);
static void circuit_message(const struct pool *p, char *msg, size_t len);

/* The node's circuit lets no connect through and this pool has no server that could come
 * back: its waiters learn it now if the circuit is open (a probe may have opened it while
 * a retry was pending), or look again shortly while another pool's trial decides. */
static void blocked_by_breaker(struct pool *p)
{
	char msg[400];

	if (p->n_servers > 0 || p->n_waiting == 0)
		return;
	if (node_breaker_state(p->backend) == BREAKER_OPEN) {
		circuit_message(p, msg, sizeof(msg));
		fail_waiters(p, SQLSTATE_CONNECTION_FAILURE, msg);
		return;
	}
	ev_timer_set(&p->retry, 0.1, 0);
	ev_timer_start(p->w->loop, &p->retry);
}

static uint64_t head_since(const struct pool *p, uint64_t now)
{
	if (list_empty(&p->waiting))
		return now;
	return container_of(p->waiting.next, struct pool_waiter, node)->since_us;
}

/* Open connections while clients wait and the pool has room, and keep min_size open. A
 * full cap is met by closing an idle server of a neighbour under it; failing that the
 * pool waits for a neighbour to give way (pool_release), on this worker or another. */
void pool_fill(struct pool *p)
{
	uint64_t now = util_now_us();
	int limits[N_CAPS];

	if (p->w->shutting_down || p->paused || ev_is_active(&p->retry))
		return;
	limits_of(p, now, limits);
	while (p->n_connecting < p->n_waiting || pool_total(p) < p->min_size) {
		bool allowed;
		unsigned full = share_take(p->backend, p->share, limits, now, &allowed);
		if (!allowed) {
			blocked_by_breaker(p);
			return;
		}
		if (full != 0) {
			struct pool *victim =
			    full & (1u << CAP_POOL) ? NULL : find_idle_victim(p, full);
			if (victim == NULL) {
				if (p->n_waiting > p->n_connecting)
					share_block(p->w, p->backend, p->share, full, limits,
					            head_since(p, now));
				break;
			}
			pool_close_quietly(victim, container_of(victim->idle.next, struct server, node),
			              "making room for another pool");
			p->w->metrics.servers_evicted++;
			continue;
		}
		int total = pool_total(p);
		if (total > p->size) {
			p->w->metrics.reserve_used++;
			log_info("pool db=%s user=%s: a client waited %d ms; opening reserve "
			         "connection %d of %d",
			         p->db_name, p->user, p->reserve_timeout_ms, total - p->size,
			         p->reserve);
		}
		launch(p);
	}
	if (p->n_waiting <= p->n_connecting)
		share_unblock(p->backend, p->share);
	arm_reserve(p);
}

/* Room opened under a node: let pools whose clients wait there try again. */
static void wake_neighbours(struct pool *p)
{
	struct list *pos;

	for (pos = p->w->pools.next; pos != &p->w->pools; pos = pos->next) {
		struct pool *q = container_of(pos, struct pool, node);
		if (q != p && q->backend == p->backend && q->n_waiting > q->n_connecting)
			pool_fill(q);
	}
}

/* A free server of p goes to a starved neighbour instead: a pool under the same full caps
 * whose clients wait while it holds at least two servers fewer than p. */
static bool give_way(struct pool *p, struct server *s)
{
	unsigned full = 0;
	struct pool *starved = NULL;
	struct list *pos;

	for (pos = p->w->pools.next; pos != &p->w->pools; pos = pos->next) {
		struct pool *q = container_of(pos, struct pool, node);
		if (q == p || q->n_waiting <= q->n_connecting || q->n_servers + 1 >= p->n_servers)
			continue;
		if (full == 0) {
			/* the caps are counted over every worker: only once a pool here waits */
			full = full_caps(p) & ~(1u << CAP_POOL);
			if (full == 0)
				return false;
		}
		if (shares_caps(p, q, full) &&
		    (starved == NULL || q->n_servers < starved->n_servers))
			starved = q;
	}
	if (starved == NULL)
		return false;
	pool_close_quietly(p, s, "giving way to a pool with waiting clients");
	p->w->metrics.servers_evicted++;
	pool_fill(starved);
	return true;
}

/* Servers live at most server_lifetime, less up to a tenth so that a pool opened all at
 * once is not recycled all at once. */
static bool past_lifetime(const struct pool *p, const struct server *s, uint64_t now)
{
	uint64_t life = (uint64_t)p->lifetime_ms * 1000;

	if (s->created_us < p->reconnect_us)
		return true; /* RECONNECT: older than the command */
	if (life == 0)
		return false;
	life -= (s->id * 2654435761u) % (life / 10 + 1);
	return util_elapsed_us(now, s->created_us) >= life;
}

void pool_hand_over(struct pool *p, struct server *s)
{
	if (!list_empty(&p->waiting) && !p->paused) {
		struct pool_waiter *wt =
		    container_of(list_pop(&p->waiting), struct pool_waiter, node);
		wt->queued = false;
		p->n_waiting--;
		if (p->n_waiting <= p->n_connecting)
			share_unblock(p->backend, p->share);
		pool_set_state(p, s, SERVER_ACTIVE);
		wt->ops->grant(wt, s);
		return;
	}
	pool_set_state(p, s, SERVER_IDLE);
	s->owner = p;
	s->ops = &pool_server_ops;
	s->used_us = worker_now_us(p->w);
	if (buf_len(&s->conn.in) > 0)
		server_scan(s);
}

void pool_release(struct pool *p, struct server *s)
{
	assert(server_is_clean(s));
	conn_unlink(&s->conn);
	s->owner = p;
	s->ops = &pool_server_ops;
	if (s->cancels > 0) {
		/* A cancel request is on its way: the interrupt could still stop whatever the
		 * backend runs next, so no other client gets it until the postmaster answered. */
		s->cancel_parked = true;
		pool_set_state(p, s, SERVER_RESET);
		log_debug("s=%llu waits for its cancel request to be answered before reuse",
		          (unsigned long long)s->id);
		return;
	}
	if (s->stmts_stale) {
		/* a statement's result type changed: prepare everything afresh */
		s->stmts_stale = false;
		pool_reset(p, s, "DEALLOCATE ALL");
		return;
	}
	if (s->needs_restore) {
		/* the last client may have changed settings the pooler cannot see */
		s->needs_restore = false;
		server_forget_settings(s);
		p->w->metrics.servers_restored++;
		pool_reset(p, s, SERVER_RESTORE_SQL);
		return;
	}
	if (p->w->shutting_down && list_empty(&p->waiting)) {
		pool_discard(p, s, "shutting down");
		return;
	}
	uint64_t now = worker_now_us(p->w);
	if (past_lifetime(p, s, now)) {
		p->w->metrics.servers_recycled++;
		pool_discard(p, s, "server_lifetime reached");
		return;
	}
	int total = pool_total(p);
	if (total > pool_limit(p, now)) {
		pool_discard(p, s,
		             total > p->size + p->reserve ? "pool_size lowered"
		                                          : "reserve no longer needed");
		return;
	}
	if (give_way(p, s))
		return;
	if (pool_yield(p, s))
		return;
	pool_hand_over(p, s);
}

void pool_reset(struct pool *p, struct server *s, const char *sql)
{
	if (classify_drops_statements(sql, strlen(sql)))
		stmt_cache_clear(&s->prepared);
	conn_unlink(&s->conn);
	s->owner = p;
	s->ops = &pool_server_ops;
	pool_set_state(p, s, SERVER_RESET);
	log_debug("s=%llu running %s before reuse", (unsigned long long)s->id, sql);
	server_query(s, sql);
}

void pool_discard(struct pool *p, struct server *s, const char *why)
{
	if (s->state == SERVER_CLOSED)
		return;
	log_debug("s=%llu db=%s user=%s closing: %s", (unsigned long long)s->id, p->db_name,
	          p->user, why);
	server_close(s);
	pool_set_state(p, s, SERVER_CLOSED);
	pool_fill(p);
	wake_neighbours(p);
}

static void fail_waiters(struct pool *p, const char *sqlstate, const char *message)
{
	while (!list_empty(&p->waiting)) {
		struct pool_waiter *wt =
		    container_of(list_pop(&p->waiting), struct pool_waiter, node);
		wt->queued = false;
		p->n_waiting--;
		wt->ops->fail(wt, sqlstate, message);
	}
}

static void circuit_message(const struct pool *p, char *msg, size_t len)
{
	snprintf(msg, len, "circuit open for server %s:%d after repeated failures: %s",
	         p->login.host, p->login.port, p->last_error);
}

/* A connect failed: retry after backoff while clients wait, or tell them at once when the
 * node's circuit opened or the retries ran out. */
static void login_failed(struct pool *p)
{
	struct node *n = p->backend;
	char msg[400];
	uint32_t ms;

	node_lock(n);
	if (breaker_failure(&n->breaker, util_now_us()))
		log_warning("node %s: circuit open after %u failures in a row; clients needing it "
		            "fail at once for %u ms",
		            n->name, n->breaker.failures, n->breaker.recovery_ms);
	bool open = n->breaker.state == BREAKER_OPEN;
	ms = backoff_next(&n->backoff, &p->w->rng);
	node_unlock(n);
	if (p->n_servers > 0 || p->n_waiting == 0)
		return;
	if (open) {
		circuit_message(p, msg, sizeof(msg));
		fail_waiters(p, SQLSTATE_CONNECTION_FAILURE, msg);
		return;
	}
	if (p->tries < p->retry_max_tries) {
		p->tries++;
		log_debug("pool db=%s user=%s node=%s: retry %d in %u ms", p->db_name, p->user,
		          n->name, p->tries, ms);
		ev_timer_set(&p->retry, ms / 1000.0, 0);
		ev_timer_start(p->w->loop, &p->retry);
		return;
	}
	snprintf(msg, sizeof(msg), "pooler could not connect to the server: %s", p->last_error);
	fail_waiters(p, SQLSTATE_CONNECTION_FAILURE, msg);
}

static void on_retry(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	pool_fill(t->data);
}

static void on_reserve_due(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	pool_fill(t->data);
}

/* Once a second: close servers idle past server_idle_timeout (keeping min_pool_size) or
 * older than server_lifetime. The idle list runs from least to most recently used. */
static void on_maintain(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct pool *p = t->data;
	uint64_t now = util_now_us();
	uint64_t idle_max = (uint64_t)p->idle_timeout_ms * 1000;
	struct list *pos, *tmp;
	(void)loop;
	(void)revents;

	list_for_each_safe (pos, tmp, &p->idle) {
		struct server *s = container_of(pos, struct server, node);
		if (past_lifetime(p, s, now)) {
			p->w->metrics.servers_recycled++;
			pool_close_quietly(p, s, "server_lifetime reached");
		} else if (idle_max > 0 && now - s->used_us >= idle_max &&
		           pool_total(p) > p->min_size) {
			p->w->metrics.servers_idle_closed++;
			pool_close_quietly(p, s, "server_idle_timeout reached");
		}
	}
	pool_fill(p);
}

static void on_login_done(struct server *s, const char *error)
{
	struct pool *p = s->pool;

	if (error != NULL) {
		log_warning("s=%llu db=%s user=%s login to %s:%d failed: %s",
		            (unsigned long long)s->id, p->db_name, p->user, p->login.host,
		            p->login.port, error);
		snprintf(p->last_error, sizeof(p->last_error), "%s", error);
		p->w->metrics.server_login_failures++;
		p->backend->shards[p->w->index].connect_failures++;
		server_close(s);
		pool_set_state(p, s, SERVER_CLOSED);
		login_failed(p);
		return;
	}
	histogram_observe(&p->backend->shards[p->w->index].connect_time,
	                  util_now_us() - s->created_us);
	node_lock(p->backend);
	breaker_success(&p->backend->breaker);
	backoff_reset(&p->backend->backoff);
	node_unlock(p->backend);
	p->tries = 0;
	if (!p->have_welcome) {
		params_copy(&p->welcome, &s->params);
		p->have_welcome = true;
		share_welcome_set(p->backend, p->share, &p->welcome);
	}
	log_info("s=%llu db=%s user=%s logged in to %s:%d (backend pid %u)",
	         (unsigned long long)s->id, p->db_name, p->user, p->login.host, p->login.port,
	         s->be_pid);
	pool_hand_over(p, s);
}

static void on_ready(struct server *s)
{
	/* A reset finished. */
	struct pool *p = s->pool;
	if (s->state == SERVER_RESET)
		pool_release(p, s);
}

static void on_cancel_done(struct server *s)
{
	if (s->cancel_parked) {
		s->cancel_parked = false;
		pool_release(s->pool, s);
	}
}

static void on_failed(struct server *s, const char *why)
{
	pool_discard(s->pool, s, why);
}

static void on_param(struct server *s, const char *name, const char *value, bool relayed)
{
	(void)s;
	(void)name;
	(void)value;
	(void)relayed;
}

static void on_query_error(struct server *s, const char *sqlstate, const char *message)
{
	log_warning("s=%llu reset query failed: %s %s", (unsigned long long)s->id, sqlstate,
	            message);
	pool_discard(s->pool, s, "reset query failed");
}

static bool on_refused(struct server *s, const char *sqlstate, bool stale)
{
	(void)sqlstate;
	(void)stale;
	pool_discard(s->pool, s, "unexpected refusal with no client");
	return false;
}

const struct server_ops pool_server_ops = {
    .refused = on_refused,
    .login_done = on_login_done,
    .ready = on_ready,
    .failed = on_failed,
    .param = on_param,
    .query_error = on_query_error,
    .cancel_done = on_cancel_done,
};

void pool_acquire(struct pool *p, struct pool_waiter *wt)
{
	wt->since_us = worker_now_us(p->w);
	if (!list_empty(&p->idle) && !p->paused) {
		/* Most recently used first: its caches are warm. */
		struct server *s = container_of(p->idle.prev, struct server, node);
		pool_set_state(p, s, SERVER_ACTIVE);
		wt->queued = false;
		wt->ops->grant(wt, s);
		return;
	}
	if (p->n_servers == 0 && node_breaker_refuses(p->backend, util_now_us())) {
		char msg[400];
		circuit_message(p, msg, sizeof(msg));
		wt->queued = false;
		wt->ops->fail(wt, SQLSTATE_CONNECTION_FAILURE, msg);
		return;
	}
	list_append(&p->waiting, &wt->node);
	wt->queued = true;
	p->n_waiting++;
	pool_fill(p);
}

void pool_unwait(struct pool *p, struct pool_waiter *wt)
{
	if (!wt->queued)
		return;
	list_del(&wt->node);
	wt->queued = false;
	p->n_waiting--;
	if (p->n_waiting <= p->n_connecting)
		share_unblock(p->backend, p->share); /* no one left to wait for room */
}

/* A new pool of a paused database (PAUSE of every database, or of this one, as its other
 * pools show) starts paused: a new user or node must not slip past PAUSE. */
static bool db_paused(const struct worker *w, const char *db)
{
	const struct list *pos;
	const struct worker *m = worker_main(w); /* admin commands keep the lists there */

	if (m->paused_all || config_list_has(m->paused_dbs, db))
		return true;
	for (pos = w->pools.next; pos != &w->pools; pos = pos->next) {
		const struct pool *p = container_of(pos, struct pool, node);
		if (p->paused && !p->retired && strcmp(p->db_name, db) == 0)
			return true;
	}
	return false;
}

struct pool *pool_get(struct worker *w, const struct db_conf *db, const char *user,
                      struct node *backend, const char *server_user, const char *server_password)
{
	struct list *pos, *tmp;
	struct pool *p;

	list_for_each_safe (pos, tmp, &w->pools) {
		p = container_of(pos, struct pool, node);
		if (!p->retired && p->backend == backend && strcmp(p->db_name, db->name) == 0 &&
		    strcmp(p->user, user) == 0)
			return p;
	}
	p = util_calloc(1, sizeof(*p));
	p->w = w;
	p->db_name = util_strdup(db->name);
	p->user = util_strdup(user);
	p->backend = backend;
	p->paused = db_paused(w, db->name);
	p->created_us = util_now_us();
	p->tally.query_time = &backend->shards[w->index].query_time;
	p->login.host = util_strdup(backend->host);
	p->login.port = backend->port;
	p->login.dbname = util_strdup(db->dbname);
	p->login.user = util_strdup(server_user);
	p->login.password = server_password ? util_strdup(server_password) : NULL;
	p->login.tls = &backend->tls;
	list_init(&p->connecting);
	list_init(&p->idle);
	list_init(&p->active);
	list_init(&p->waiting);
	params_init(&p->welcome);
	ev_timer_init(&p->retry, on_retry, 0, 0);
	p->retry.data = p;
	ev_timer_init(&p->reserve_timer, on_reserve_due, 0, 0);
	p->reserve_timer.data = p;
	ev_timer_init(&p->maintain, on_maintain, 1.0, 1.0);
	p->maintain.data = p;
	ev_timer_start(w->loop, &p->maintain);
	p->share = share_join(backend, p);
	p->have_welcome = share_welcome_get(backend, p->share, &p->welcome);
	list_append(&w->pools, &p->node);
	pool_configure(p, db, w->cfg);
	return p;
}

/* The node's section in cfg, for sizing. */
static const struct node_conf *node_conf_of(const struct config *cfg, const struct node *n)
{
	for (int i = 0; i < cfg->n_nodes; i++)
		if (strcmp(cfg->nodes[i].name, n->name) == 0)
			return &cfg->nodes[i];
	return NULL;
}

void pool_configure(struct pool *p, const struct db_conf *db, const struct config *cfg)
{
	const struct node_conf *nc = node_conf_of(cfg, p->backend);
	char src[240] = "";
	int size = nc ? config_pool_size(db, nc, src, sizeof(src)) : db->effective_pool_size;

	if (size != p->size)
		log_info("pool db=%s user=%s node=%s (%s:%d): size %d from %s; min %d, reserve %d, "
		         "%s mode",
		         p->db_name, p->user, p->backend->name, p->backend->host, p->backend->port,
		         size, src, db->min_pool_size, db->reserve_pool_size,
		         db->pool_mode == POOL_MODE_SESSION ? "session" : "transaction");
	p->size = size;
	p->min_size = db->min_pool_size < size ? db->min_pool_size : size;
	p->reserve = db->reserve_pool_size;
	p->max_db_connections = db->max_db_connections;
	p->mode = db->pool_mode;
	free(p->reset_query);
	p->reset_query = util_strdup(cfg->server_reset_query);
	p->login.timeout_ms = cfg->server_connect_timeout_ms;
	p->max_user_connections = cfg->max_user_connections;
	p->reserve_timeout_ms = cfg->reserve_pool_timeout_ms;
	p->stmt_cache_size = cfg->prepared_statement_cache_size;
	p->lifetime_ms = cfg->server_lifetime_ms;
	p->idle_timeout_ms = cfg->server_idle_timeout_ms;
	p->retry_max_tries = cfg->retry_max_tries;
	while (pool_total(p) > p->size + p->reserve && !list_empty(&p->idle))
		pool_discard(p, container_of(p->idle.next, struct server, node),
		             "pool_size lowered");
	pool_fill(p);
}

void pool_free(struct pool *p)
{
	struct list *pos, *tmp;
	struct list *lists[] = {&p->connecting, &p->idle, &p->active};

	for (size_t i = 0; i < ARRAY_LEN(lists); i++)
		list_for_each_safe (pos, tmp, lists[i])
			server_free(container_of(pos, struct server, node));
	ev_timer_stop(p->w->loop, &p->retry);
	ev_timer_stop(p->w->loop, &p->reserve_timer);
	ev_timer_stop(p->w->loop, &p->maintain);
	share_leave(p->w, p->backend, p->share);
	list_del(&p->node);
	params_free(&p->welcome);
	free(p->db_name);
	free(p->user);
	free(p->reset_query);
	free((char *)p->login.host);
	free((char *)p->login.dbname);
	free((char *)p->login.user);
	free((char *)p->login.password);
	free(p);
}
