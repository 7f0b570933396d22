/* pool_admin: what the console and a reload do to a pool as a whole: retire it, pause and
 * resume it, reconnect its servers, close its idle ones at shutdown. Layer 4, beside
 * pool.c, behind pool_internal.h. */
#include <stdio.h>

#include "log.h"
#include "pool.h"
#include "pool_internal.h"
#include "proto.h"

void pool_retire(struct pool *p, const char *why)
{
	char msg[300];

	if (p->retired)
		return;
	log_info("pool db=%s user=%s node=%s retired: %s", p->db_name, p->user, p->backend->name,
	         why);
	p->retired = true;
	p->size = p->min_size = p->reserve = 0;
	ev_timer_stop(p->w->loop, &p->retry);
	ev_timer_stop(p->w->loop, &p->reserve_timer);
	snprintf(msg, sizeof(msg), "server connection retired by a config reload: %s", why);
	while (!list_empty(&p->waiting)) {
		struct pool_waiter *wt =
		    container_of(list_pop(&p->waiting), struct pool_waiter, node);
		wt->queued = false;
		p->n_waiting--;
		if (wt->ops->retry != NULL)
			wt->ops->retry(wt);
		else
			wt->ops->fail(wt, SQLSTATE_ADMIN_SHUTDOWN, msg);
	}
	while (!list_empty(&p->idle))
		pool_discard(p, container_of(p->idle.next, struct server, node), why);
}

void pool_pause(struct pool *p)
{
	p->paused = true;
}

void pool_resume(struct pool *p)
{
	p->paused = false;
	while (!list_empty(&p->waiting) && !list_empty(&p->idle)) {
		struct server *s = container_of(p->idle.prev, struct server, node);
		pool_hand_over(p, s);
	}
	pool_fill(p);
}

void pool_reconnect(struct pool *p)
{
	p->reconnect_us = util_now_us() + 1;
	while (!list_empty(&p->idle))
		pool_discard(p, container_of(p->idle.next, struct server, node), "RECONNECT");
}

int pool_old_servers(const struct pool *p)
{
	const struct list *lists[] = {&p->connecting, &p->idle, &p->active};
	int n = 0;

	for (size_t i = 0; i < ARRAY_LEN(lists); i++)
		for (const struct list *pos = lists[i]->next; pos != lists[i]; pos = pos->next)
			n += container_of(pos, struct server, node)->created_us < p->reconnect_us;
	return n;
}

void pool_close_idle(struct pool *p)
{
	while (!list_empty(&p->idle)) {
		struct server *s = container_of(p->idle.next, struct server, node);
		pool_discard(p, s, "shutting down");
	}
}
