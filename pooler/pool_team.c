/* pool_team: pools across workers (see "Workers and threads" in pooler/README.md).
 * Layer 4, beside pool.c, behind pool_internal.h: servers that move to the worker whose
 * pool waited longest, room freed for another worker's pool, and the walk over every
 * worker's pools that the console and /metrics add up. */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pool.h"
#include "pool_internal.h"

/* ---- servers that move to another worker -------------------------------------------- */

struct server_move {
	struct server *s;
	struct pool_share *to; /* a reference (share_yield_to) */
	struct node *node;
};

/* On the worker the server moves to: its pool takes it (to the first waiting client), or
 * closes it when the pool went meanwhile (its count went with its share). */
static void adopt_server(struct worker *w, void *arg)
{
	struct server_move *m = arg;
	struct server *s = m->s;
	struct pool *p = share_put(m->node, m->to);

	free(m);
	if (p == NULL) {
		server_close(s);
		s->state = SERVER_CLOSED;
		list_append(&w->dead_servers, &s->node);
		return;
	}
	s->pool = s->owner = p;
	s->ops = &pool_server_ops;
	s->tally = &p->tally;
	s->conn.bytes = &p->tally.bytes;
	s->pq.loop = w->loop;
	conn_attach(&s->conn, w->loop);
	p->n_servers++;
	s->state = SERVER_IDLE;
	list_append(&p->idle, &s->node);
	w->metrics.servers_moved_in++;
	if (p->retired) { /* a reload retired the pool meanwhile: its waiters went elsewhere */
		pool_discard(p, s, "pool retired by a reload");
		return;
	}
	if (!p->have_welcome) { /* its first server: what its clients are told at login */
		params_copy(&p->welcome, &s->params);
		p->have_welcome = true;
	}
	pool_hand_over(p, s);
}

/* A server between two workers hears nothing but its own failure. */
static void moving_failed(struct server *s, const char *why)
{
	log_debug("s=%llu closing on its way to another worker: %s", (unsigned long long)s->id,
	          why);
	server_close(s);
}

static void moving_param(struct server *s, const char *name, const char *value, bool relayed)
{
	(void)s;
	(void)name;
	(void)value;
	(void)relayed;
}

static const struct server_ops moving_ops = {
    .failed = moving_failed,
    .param = moving_param,
};

/* Off p's lists and counts, on its way to another worker (its slot goes with it). It
 * leaves when the loop next sleeps (pool_send_moving): the callback that gave it back may
 * still use its socket until then. */
static void send_server(struct pool *p, struct server *s, struct pool_share *to)
{
	struct server_move *m = util_calloc(1, sizeof(*m));

	if (s->state == SERVER_ACTIVE)
		p->backend->shards[p->w->index].inflight--;
	p->n_servers--;
	list_del(&s->node);
	s->state = SERVER_IDLE;
	s->owner = NULL;
	s->ops = &moving_ops;
	*m = (struct server_move){s, to, p->backend};
	s->moving = m;
	list_append(&p->w->outgoing_servers, &s->node);
	log_debug("s=%llu db=%s user=%s moving to worker %d: its client has waited longer",
	          (unsigned long long)s->id, p->db_name, p->user, to->worker + 1);
}

void pool_send_moving(struct worker *w)
{
	struct list *n;

	while ((n = list_pop(&w->outgoing_servers)) != NULL) {
		struct server *s = container_of(n, struct server, node);
		struct server_move *m = s->moving;
		s->moving = NULL;
		if (s->conn.fd < 0) { /* failed meanwhile: its slot was the other pool's */
			share_cancel_move(w, m->node, m->to);
			free(m);
			s->state = SERVER_CLOSED;
			list_append(&w->dead_servers, &s->node);
			continue;
		}
		conn_detach(&s->conn);
		worker_post(w->team->all[m->to->worker], adopt_server, m);
	}
}

/* A free server of p goes to a pool of another worker that has waited longest under caps
 * p shares (pool_share.c): the server itself to one of the same database and user, else
 * its slot once it closes. */
bool pool_yield(struct pool *p, struct server *s)
{
	bool moved;
	struct pool_share *to =
	    share_yield_to(p->backend, p->share, !list_empty(&p->waiting), &moved);

	if (to == NULL)
		return false;
	if (moved) {
		send_server(p, s, to);
		return true;
	}
	pool_close_quietly(p, s, "giving way to a pool of another worker");
	p->w->metrics.servers_evicted++;
	return true;
}

void pool_room(struct worker *w, struct node *n)
{
	struct list *pos, *tmp;

	list_for_each_safe (pos, tmp, &w->pools) {
		struct pool *p = container_of(pos, struct pool, node);
		if (p->backend != n)
			continue;
		pool_fill(p);
		if (p->n_waiting <= p->n_connecting || p->paused || p->retired)
			share_release_reserved(w, n, p->share);
	}
}

void pool_make_room(struct worker *w, struct node *n)
{
	struct list *pos, *tmp;

	list_for_each_safe (pos, tmp, &w->pools) {
		struct pool *p = container_of(pos, struct pool, node);
		while (p->backend == n && !list_empty(&p->idle) &&
		       pool_yield(p, container_of(p->idle.next, struct server, node)))
			;
	}
}

struct pool *pool_next(const struct worker *w, const struct pool *p)
{
	struct list *next = team_list_next(w->team, offsetof(struct worker, pools),
	                                   p ? p->w->index : 0, p ? &p->node : NULL);
	return next ? container_of(next, struct pool, node) : NULL;
}

bool pool_same_key(const struct pool *a, const struct pool *b)
{
	return a->backend == b->backend && strcmp(a->db_name, b->db_name) == 0 &&
	       strcmp(a->user, b->user) == 0 && a->retired == b->retired;
}

bool pool_leads_key(const struct worker *w, const struct pool *p)
{
	for (struct pool *q = pool_next(w, NULL); q != p; q = pool_next(w, q))
		if (pool_same_key(q, p))
			return false;
	return true;
}

void pool_add_counts(struct pool *dst, const struct pool *src)
{
	dst->n_servers += src->n_servers;
	dst->n_connecting += src->n_connecting;
	dst->n_waiting += src->n_waiting;
	dst->xact_count += src->xact_count;
	dst->xact_us += src->xact_us;
	dst->wait_us += src->wait_us;
	dst->tally.queries += src->tally.queries;
	dst->tally.query_us += src->tally.query_us;
	dst->tally.bytes.in += src->tally.bytes.in;
	dst->tally.bytes.out += src->tally.bytes.out;
}
