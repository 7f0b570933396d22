/* pool_share: a node's budget over every worker (see struct pool_share in include/pool.h).
 * Layer 4, beside pool.c: everything here runs under the node's lock, touches only the
 * node's shares, and reaches other workers by message only. */
#include <stdlib.h>
#include <string.h>

#include "pool.h"

static bool share_shares_cap(const struct pool_share *a, const struct pool_share *b, enum cap k)
{
	switch (k) {
	case CAP_DB:
		return strcmp(a->db, b->db) == 0;
	case CAP_USER:
		return strcmp(a->user, b->user) == 0;
	case CAP_POOL:
		return strcmp(a->db, b->db) == 0 && strcmp(a->user, b->user) == 0;
	default:
		return true;
	}
}

/* Slots held under cap k of share `of`: servers open or opening, and reserved, of every
 * worker's pool under it. */
static int cap_used(const struct node *n, const struct pool_share *of, enum cap k)
{
	int used = 0;

	for (const struct list *pos = n->shares.next; pos != &n->shares; pos = pos->next) {
		const struct pool_share *q = container_of(pos, struct pool_share, link);
		if (share_shares_cap(of, q, k))
			used += q->servers + q->reserved;
	}
	return used;
}

static unsigned full_caps(const struct node *n, const struct pool_share *s,
                          const int limits[N_CAPS])
{
	unsigned mask = 0;

	for (int k = 0; k < N_CAPS; k++) {
		bool bounded = k == CAP_POOL || k == CAP_NODE || limits[k] > 0;
		if (bounded && cap_used(n, s, (enum cap)k) >= limits[k])
			mask |= 1u << k;
	}
	return mask;
}

unsigned share_full(struct node *n, const struct pool_share *s, const int limits[N_CAPS])
{
	node_lock(n);
	unsigned mask = full_caps(n, s, limits);
	node_unlock(n);
	return mask;
}

int share_pool_total(struct node *n, const struct pool_share *s)
{
	if (!n->locking)
		return s->servers + s->reserved;
	node_lock(n);
	int used = cap_used(n, s, CAP_POOL);
	node_unlock(n);
	return used;
}

bool share_welcome_get(struct node *n, const struct pool_share *s, struct params *out)
{
	bool found = false;

	node_lock(n);
	for (struct list *pos = n->shares.next; !found && pos != &n->shares; pos = pos->next) {
		const struct pool_share *q = container_of(pos, struct pool_share, link);
		if (q != s && q->welcome.n > 0 && share_shares_cap(q, s, CAP_POOL)) {
			params_copy(out, &q->welcome);
			found = true;
		}
	}
	node_unlock(n);
	return found;
}

void share_welcome_set(struct node *n, struct pool_share *s, const struct params *welcome)
{
	if (!n->locking)
		return; /* one worker: no one else to greet */
	node_lock(n);
	params_copy(&s->welcome, welcome);
	node_unlock(n);
}

struct pool_share *share_join(struct node *n, struct pool *p)
{
	struct pool_share *s = util_calloc(1, sizeof(*s));

	s->db = p->db_name;
	s->user = p->user;
	s->worker = p->w->index;
	s->pool = p;
	s->refs = 1;
	params_init(&s->welcome);
	node_lock(n);
	list_append(&n->shares, &s->link);
	node_unlock(n);
	return s;
}

static void share_free(struct pool_share *s)
{
	params_free(&s->welcome);
	free(s);
}

static void room_msg(struct worker *w, void *arg)
{
	pool_room(w, arg);
}

static void make_room_msg(struct worker *w, void *arg)
{
	pool_make_room(w, arg);
}

static void unblock_locked(struct node *n, struct pool_share *s)
{
	if (s->blocked_since == 0)
		return;
	__atomic_store_n(&s->blocked_since, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&n->n_blocked, n->n_blocked - 1, __ATOMIC_RELAXED);
}

/* A slot came free: reserve it for the share of another worker than `from` that has been
 * blocked longest and that it makes room for. The worker to wake, or -1. */
static int pass_on_locked(struct node *n, int from)
{
	struct pool_share *best = NULL;

	if (n->n_blocked == 0)
		return -1;
	for (struct list *pos = n->shares.next; pos != &n->shares; pos = pos->next) {
		struct pool_share *q = container_of(pos, struct pool_share, link);
		if (q->blocked_since == 0 || q->worker == from ||
		    (best != NULL && q->blocked_since >= best->blocked_since))
			continue;
		if (full_caps(n, q, q->limits) == 0)
			best = q;
	}
	if (best == NULL)
		return -1;
	best->reserved++;
	unblock_locked(n, best);
	return best->worker;
}

static void wake(struct worker *w, int to, struct node *n)
{
	if (to >= 0)
		worker_post(w->team->all[to], room_msg, n);
}

/* The workers to wake once the node's lock is let go: each at most once. */
struct wakes {
	uint64_t bits[256 / 64]; /* workers <= 256 (config) */
};

/* s's reserved slots go to the shares blocked longest (or back to the budget). */
static void release_reserved_locked(struct node *n, struct pool_share *s, struct wakes *wk)
{
	while (s->reserved > 0) {
		s->reserved--;
		int t = pass_on_locked(n, s->worker);
		if (t >= 0)
			wk->bits[t / 64] |= 1ull << (t % 64);
	}
}

static void wake_all(struct worker *w, const struct wakes *wk, struct node *n)
{
	for (int t = 0; t < w->team->n; t++)
		if (wk->bits[t / 64] & (1ull << (t % 64)))
			wake(w, t, n);
}

void share_leave(struct worker *w, struct node *n, struct pool_share *s)
{
	struct wakes wk = {{0}};
	bool last;

	node_lock(n);
	unblock_locked(n, s);
	n->n_servers -= s->servers;
	s->servers = 0;
	s->pool = NULL;
	list_del(&s->link);
	list_init(&s->link);
	release_reserved_locked(n, s, &wk);
	last = --s->refs == 0;
	node_unlock(n);
	wake_all(w, &wk, n);
	if (last)
		share_free(s); /* else the last server on its way frees it (share_put) */
}

void share_cancel_move(struct worker *w, struct node *n, struct pool_share *s)
{
	int to = -1;
	bool last;

	node_lock(n);
	if (s->pool != NULL) { /* else its count went with it (share_leave) */
		s->servers--;
		n->n_servers--;
		to = pass_on_locked(n, -1);
	}
	last = --s->refs == 0;
	node_unlock(n);
	wake(w, to, n);
	if (last)
		share_free(s);
}

struct pool *share_put(struct node *n, struct pool_share *s)
{
	struct pool *p;
	bool last;

	node_lock(n);
	p = s->pool;
	last = --s->refs == 0;
	node_unlock(n);
	if (last)
		share_free(s);
	return p;
}

unsigned share_take(struct node *n, struct pool_share *s, const int limits[N_CAPS], uint64_t now,
                    bool *allowed)
{
	unsigned full = 0;

	*allowed = true;
	node_lock(n);
	if (s->reserved == 0)
		full = full_caps(n, s, limits);
	if (full == 0) {
		/* an open circuit lets no connect through, a half-open one just the trial */
		*allowed = breaker_allow(&n->breaker, now);
		if (*allowed) {
			if (s->reserved > 0)
				s->reserved--;
			s->servers++;
			n->n_servers++;
		}
	}
	node_unlock(n);
	return full;
}

void share_give(struct worker *w, struct node *n, struct pool_share *s)
{
	int to;

	node_lock(n);
	s->servers--;
	n->n_servers--;
	to = pass_on_locked(n, s->worker);
	node_unlock(n);
	wake(w, to, n);
}

void share_block(struct worker *w, struct node *n, struct pool_share *s, unsigned mask,
                 const int limits[N_CAPS], uint64_t since)
{
	bool newly;

	if (w->team->n == 1)
		return; /* one worker: pool.c's own bulkheads are the whole story */
	node_lock(n);
	newly = s->blocked_since == 0;
	if (newly) {
		__atomic_store_n(&s->blocked_since, since ? since : 1, __ATOMIC_RELAXED);
		__atomic_store_n(&n->n_blocked, n->n_blocked + 1, __ATOMIC_RELAXED);
	}
	s->blocked_by = mask;
	memcpy(s->limits, limits, sizeof(s->limits));
	node_unlock(n);
	if (!newly)
		return;
	for (int i = 0; i < w->team->n; i++)
		if (i != w->index)
			worker_post(w->team->all[i], make_room_msg, n);
}

void share_unblock(struct node *n, struct pool_share *s)
{
	/* written under the lock, read here without it: a share that is not blocked (the
	 * common case, every transaction) costs no lock */
	if (__atomic_load_n(&s->blocked_since, __ATOMIC_RELAXED) == 0)
		return;
	node_lock(n);
	unblock_locked(n, s);
	node_unlock(n);
}

/* Whether blocked share q holds two or more servers fewer than s: per worker between two
 * pools of one database and user, else between the two (database, user) totals, so that
 * a busy pool spread over the workers still gives way to a starved one (a bulkhead). */
static bool holds_less(const struct node *n, const struct pool_share *q, const struct pool_share *s)
{
	if (share_shares_cap(q, s, CAP_POOL))
		return q->servers + q->reserved + 1 < s->servers;
	return cap_used(n, q, CAP_POOL) + 1 < cap_used(n, s, CAP_POOL);
}

struct pool_share *share_yield_to(struct node *n, struct pool_share *s, bool waiting, bool *moved)
{
	struct pool_share *to = NULL;

	*moved = false;
	if (__atomic_load_n(&n->n_blocked, __ATOMIC_RELAXED) == 0)
		return NULL;
	node_lock(n);
	for (struct list *pos = n->shares.next; pos != &n->shares; pos = pos->next) {
		struct pool_share *q = container_of(pos, struct pool_share, link);
		bool under = true;
		if (q->blocked_since == 0 || q->worker == s->worker ||
		    (to != NULL && q->blocked_since >= to->blocked_since))
			continue;
		for (int k = 0; k < N_CAPS; k++)
			if ((q->blocked_by & (1u << k)) && !share_shares_cap(q, s, (enum cap)k))
				under = false;
		if (under && (!waiting || holds_less(n, q, s)))
			to = q;
	}
	if (to != NULL && share_shares_cap(to, s, CAP_POOL)) {
		/* same database and user: the server itself goes, and its count with it */
		s->servers--;
		to->servers++;
		to->refs++;
		unblock_locked(n, to);
		*moved = true;
	}
	node_unlock(n);
	return to;
}

void share_release_reserved(struct worker *w, struct node *n, struct pool_share *s)
{
	struct wakes wk = {{0}};

	node_lock(n);
	release_reserved_locked(n, s, &wk);
	node_unlock(n);
	wake_all(w, &wk, n);
}
