/* worker: see include/worker.h. */
#include "worker.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

struct team *team_new(int n)
{
	struct team *t = util_calloc(1, sizeof(*t));

	t->n = n;
	t->all = util_calloc((size_t)n, sizeof(*t->all));
	pthread_mutex_init(&t->gate_mu, NULL);
	pthread_cond_init(&t->gate, NULL);
	pthread_mutex_init(&t->limits_mu, NULL);
	ratelimit_init(&t->connect_limit, 4096);
	ratelimit_init(&t->auth_limit, 4096);
	for (int i = 0; i < n; i++) {
		struct worker *w = util_calloc(1, sizeof(*w));
		w->index = i;
		w->team = t;
		pthread_mutex_init(&w->mu, NULL);
		pthread_mutex_init(&w->inbox_mu, NULL);
		list_init(&w->inbox);
		t->all[i] = w;
	}
	return t;
}

struct list *team_list_next(const struct team *t, size_t head, int at, const struct list *pos)
{
	int i = pos == NULL ? 0 : at;
	const struct list *end = (const struct list *)((const char *)t->all[i] + head);

	for (pos = pos == NULL ? end->next : pos->next;; pos = end->next) {
		if (pos != end)
			return (struct list *)pos;
		if (++i == t->n)
			return NULL;
		end = (const struct list *)((const char *)t->all[i] + head);
	}
}

void team_free(struct team *t)
{
	if (t == NULL)
		return;
	/* the main thread has held worker 0's lock since worker_init_loop */
	if (t->n > 1 && t->all[0]->loop != NULL)
		pthread_mutex_unlock(&t->all[0]->mu);
	for (int i = 0; i < t->n; i++) {
		struct worker *w = t->all[i];
		struct list *m;
		while ((m = list_pop(&w->inbox)) != NULL)
			free(container_of(m, struct worker_msg, node));
		pthread_mutex_destroy(&w->mu);
		pthread_mutex_destroy(&w->inbox_mu);
		free(w);
	}
	ratelimit_free(&t->connect_limit);
	ratelimit_free(&t->auth_limit);
	pthread_mutex_destroy(&t->limits_mu);
	pthread_cond_destroy(&t->gate);
	pthread_mutex_destroy(&t->gate_mu);
	free(t->all);
	free(t);
}

/* ---- the loop's lock ------------------------------------------------------------------ */

static void loop_release(struct ev_loop *loop)
{
	struct worker *w = ev_userdata(loop);
	pthread_mutex_unlock(&w->mu);
}

/* Back from epoll_wait: wait while a world section is waiting or running, so that a busy
 * worker cannot take its lock back before the section gets it. */
static void loop_acquire(struct ev_loop *loop)
{
	struct worker *w = ev_userdata(loop);
	struct team *t = w->team;

	if (__atomic_load_n(&t->want_world, __ATOMIC_ACQUIRE) > 0) {
		pthread_mutex_lock(&t->gate_mu);
		while (t->want_world > 0)
			pthread_cond_wait(&t->gate, &t->gate_mu);
		pthread_mutex_unlock(&t->gate_mu);
	}
	pthread_mutex_lock(&w->mu);
	w->now_us = 0; /* a world section may have read the clock for it while it slept */
}

/* Messages posted to w, run on its thread. */
static void on_wake(struct ev_loop *loop, ev_async *a, int revents)
{
	(void)loop;
	(void)revents;
	worker_run_inbox(a->data);
}

void worker_run_inbox(struct worker *w)
{
	struct list batch, *m;

	pthread_mutex_lock(&w->inbox_mu);
	list_take(&batch, &w->inbox);
	pthread_mutex_unlock(&w->inbox_mu);
	while ((m = list_pop(&batch)) != NULL) {
		struct worker_msg *msg = container_of(m, struct worker_msg, node);
		msg->fn(w, msg->arg);
		free(msg);
	}
}

bool worker_init_loop(struct worker *w)
{
	w->loop = w->index == 0 ? ev_default_loop(EVFLAG_AUTO) : ev_loop_new(EVFLAG_AUTO);
	if (w->loop == NULL)
		return false;
	ev_set_userdata(w->loop, w);
	ev_async_init(&w->wake, on_wake);
	w->wake.data = w;
	ev_async_start(w->loop, &w->wake); /* keeps the loop running until team_stop */
	if (w->team->n > 1) {
		ev_set_loop_release_cb(w->loop, loop_release, loop_acquire);
		if (w->index == 0)
			pthread_mutex_lock(&w->mu); /* the main thread runs worker 0's callbacks */
	}
	return true;
}

static void *worker_thread(void *arg)
{
	struct worker *w = arg;

	pthread_mutex_lock(&w->mu);
	ev_run(w->loop, 0);
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

bool team_start(struct team *t, char *err, size_t errlen)
{
	for (int i = 1; i < t->n; i++) {
		int rc = pthread_create(&t->all[i]->thread, NULL, worker_thread, t->all[i]);
		if (rc != 0) {
			snprintf(err, errlen, "cannot start worker thread %d of %d: %s", i + 1,
			         t->n, strerror(rc));
			t->n = i; /* the ones started are stopped by team_stop */
			return false;
		}
	}
	return true;
}

static void break_loop(struct worker *w, void *arg)
{
	(void)arg;
	w->stop = true;
	ev_break(w->loop, EVBREAK_ALL);
}

void team_helper_begin(struct team *t)
{
	__atomic_add_fetch(&t->helpers, 1, __ATOMIC_RELAXED);
}

void team_helper_end(struct team *t)
{
	__atomic_sub_fetch(&t->helpers, 1, __ATOMIC_RELEASE);
}

bool team_wait_helpers(struct team *t, int timeout_ms)
{
	for (int waited = 0; __atomic_load_n(&t->helpers, __ATOMIC_ACQUIRE) > 0; waited += 10) {
		if (waited >= timeout_ms)
			return false;
		usleep(10000);
	}
	return true;
}

void team_drain(struct team *t)
{
	for (int round = 0; round < 4; round++)
		for (int i = 0; i < t->n; i++)
			worker_run_inbox(t->all[i]);
}

void team_stop(struct team *t)
{
	struct worker *self = t->all[0];

	if (t->n == 1)
		return;
	for (int i = 1; i < t->n; i++)
		worker_post(t->all[i], break_loop, NULL);
	for (int i = 1; i < t->n; i++)
		pthread_join(t->all[i]->thread, NULL);
	(void)self;
}

/* ---- world sections ------------------------------------------------------------------- */

void worker_world_enter(struct worker *self)
{
	struct team *t = self->team;

	assert(self->index == 0); /* the only worker that takes other workers' locks */
	if (t->n == 1 || self->world_depth++ > 0)
		return;
	pthread_mutex_lock(&t->gate_mu);
	__atomic_add_fetch(&t->want_world, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&t->gate_mu);
	for (int i = 1; i < t->n; i++)
		pthread_mutex_lock(&t->all[i]->mu);
}

void worker_world_leave(struct worker *self)
{
	struct team *t = self->team;

	if (t->n == 1 || --self->world_depth > 0)
		return;
	for (int i = t->n - 1; i >= 1; i--) {
		/* the section may have started or stopped watchers of that loop */
		ev_async_send(t->all[i]->loop, &t->all[i]->wake);
		pthread_mutex_unlock(&t->all[i]->mu);
	}
	pthread_mutex_lock(&t->gate_mu);
	if (__atomic_sub_fetch(&t->want_world, 1, __ATOMIC_RELEASE) == 0)
		pthread_cond_broadcast(&t->gate);
	pthread_mutex_unlock(&t->gate_mu);
}

void worker_post(struct worker *w, void (*fn)(struct worker *w, void *arg), void *arg)
{
	struct worker_msg *msg = util_calloc(1, sizeof(*msg));

	msg->fn = fn;
	msg->arg = arg;
	pthread_mutex_lock(&w->inbox_mu);
	list_append(&w->inbox, &msg->node);
	pthread_mutex_unlock(&w->inbox_mu);
	ev_async_send(w->loop, &w->wake);
}

/* ---- shared rate limits ----------------------------------------------------------------- */

bool worker_rate_take(struct worker *w, struct ratelimit *rl, const char *key, uint64_t now_us)
{
	bool ok;

	if (w->team->n == 1)
		return ratelimit_take(rl, key, now_us);
	pthread_mutex_lock(&w->team->limits_mu);
	ok = ratelimit_take(rl, key, now_us);
	pthread_mutex_unlock(&w->team->limits_mu);
	return ok;
}

bool worker_rate_allows(struct worker *w, struct ratelimit *rl, const char *key, uint64_t now_us)
{
	bool ok;

	if (w->team->n == 1)
		return ratelimit_allows(rl, key, now_us);
	pthread_mutex_lock(&w->team->limits_mu);
	ok = ratelimit_allows(rl, key, now_us);
	pthread_mutex_unlock(&w->team->limits_mu);
	return ok;
}
