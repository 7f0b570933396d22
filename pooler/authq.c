/* authq: see include/authq.h. */
#include "authq.h"

#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "node.h"
#include "util.h"

#define AUTHQ_CACHE_MAX 10000

struct authq_entry {
	struct auth_user u; /* u.name is the key; kind etc. only when found */
	bool found;
	uint64_t expires_us;
};

struct authq {
	struct ev_loop *loop;
	struct authq_entry *entries;
	int n;
	struct list lookups; /* authq_lookup in flight */
};

struct authq_lookup {
	struct list node; /* authq->lookups */
	struct authq *q;
	authq_cb cb;
	void *arg;
	char *name;
	char *query;
	int ttl_ms;
	PGconn *pg;
	bool querying;
	ev_io io;
	ev_timer deadline;
};

struct authq *authq_new(struct ev_loop *loop)
{
	struct authq *q = util_calloc(1, sizeof(*q));

	q->loop = loop;
	list_init(&q->lookups);
	return q;
}

static void entry_free(struct authq_entry *e)
{
	free(e->u.name);
	if (e->u.plain != NULL) {
		OPENSSL_cleanse(e->u.plain, strlen(e->u.plain));
		free(e->u.plain);
	}
	OPENSSL_cleanse(&e->u, sizeof(e->u));
}

void authq_clear(struct authq *q)
{
	for (int i = 0; i < q->n; i++)
		entry_free(&q->entries[i]);
	q->n = 0;
}

static void lookup_end(struct authq_lookup *l)
{
	ev_io_stop(l->q->loop, &l->io);
	ev_timer_stop(l->q->loop, &l->deadline);
	list_del(&l->node);
	if (l->pg != NULL)
		PQfinish(l->pg);
	free(l->name);
	free(l->query);
	free(l);
}

void authq_free(struct authq *q)
{
	if (q == NULL)
		return;
	while (!list_empty(&q->lookups))
		lookup_end(container_of(q->lookups.next, struct authq_lookup, node));
	authq_clear(q);
	free(q->entries);
	free(q);
}

void authq_cancel(struct authq_lookup *l)
{
	if (l != NULL)
		lookup_end(l);
}

static struct authq_entry *cache_find(struct authq *q, const char *name)
{
	uint64_t now = util_now_us();

	for (int i = 0; i < q->n; i++) {
		struct authq_entry *e = &q->entries[i];
		if (e->expires_us <= now) {
			entry_free(e);
			*e = q->entries[--q->n];
			i--;
			continue;
		}
		if (strcmp(e->u.name, name) == 0)
			return e;
	}
	return NULL;
}

static struct authq_entry *cache_add(struct authq *q, const char *name, int ttl_ms)
{
	struct authq_entry *e;

	if (ttl_ms <= 0 || q->n >= AUTHQ_CACHE_MAX)
		return NULL;
	q->entries = realloc(q->entries, sizeof(*q->entries) * (size_t)(q->n + 1));
	if (q->entries == NULL)
		abort();
	e = &q->entries[q->n++];
	memset(e, 0, sizeof(*e));
	e->u.name = util_strdup(name);
	e->expires_us = util_now_us() + (uint64_t)ttl_ms * 1000;
	return e;
}

bool authq_cached(struct authq *q, const char *name, const struct auth_user **u)
{
	struct authq_entry *e = cache_find(q, name);

	if (e == NULL)
		return false;
	*u = e->found ? &e->u : NULL;
	return true;
}

bool authq_expired(const char *valid_until, int64_t now)
{
	struct tm tm = {0};
	const char *rest;

	if (strcmp(valid_until, "infinity") == 0)
		return false;
	if (strcmp(valid_until, "-infinity") == 0)
		return true;
	rest = strptime(valid_until, "%Y-%m-%d %H:%M:%S", &tm);
	if (rest == NULL)
		return true; /* unreadable: do not let it through */
	return (int64_t)timegm(&tm) <= now;
}

/* The query answered: cache and report. */
static void lookup_answered(struct authq_lookup *l, PGresult *r)
{
	struct authq_entry tmp = {0}, *e;
	const char *why = NULL;

	tmp.u.name = l->name;
	if (PQntuples(r) == 1 && PQnfields(r) >= 2 && !PQgetisnull(r, 0, 1)) {
		if (PQnfields(r) >= 3 && !PQgetisnull(r, 0, 2) &&
		    authq_expired(PQgetvalue(r, 0, 2), (int64_t)time(NULL)))
			why = "password expired (valid until has passed)";
		else if (!auth_user_set_secret(&tmp.u, PQgetvalue(r, 0, 1)))
			why = "malformed verifier";
		else
			tmp.found = true;
	}
	const struct auth_user *u = tmp.found ? &tmp.u : NULL;
	e = cache_add(l->q, l->name, l->ttl_ms);
	if (e != NULL) {
		char *name = e->u.name;
		uint64_t expires = e->expires_us;
		*e = tmp;
		e->u.name = name;
		e->expires_us = expires;
		tmp.u.plain = NULL; /* the entry owns it now */
		u = tmp.found ? &e->u : NULL;
	}
	if (why != NULL)
		log_info("auth_query: user \"%s\": %s", l->name, why);
	l->cb(l->arg, u, NULL);
	if (tmp.u.plain != NULL) {
		OPENSSL_cleanse(tmp.u.plain, strlen(tmp.u.plain));
		free(tmp.u.plain);
	}
}

static void lookup_failed(struct authq_lookup *l, const char *why)
{
	char msg[300];

	snprintf(msg, sizeof(msg), "auth_query failed: %s", why);
	size_t n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	l->cb(l->arg, NULL, msg);
	lookup_end(l);
}

static void watch(struct authq_lookup *l, int events)
{
	ev_io_stop(l->q->loop, &l->io);
	ev_io_set(&l->io, PQsocket(l->pg), events);
	ev_io_start(l->q->loop, &l->io);
}

static void read_result(struct authq_lookup *l)
{
	PGresult *r, *answer = NULL;

	while (!PQisBusy(l->pg) && (r = PQgetResult(l->pg)) != NULL) {
		if (answer == NULL)
			answer = r;
		else
			PQclear(r);
	}
	if (PQisBusy(l->pg)) {
		PQclear(answer);
		return;
	}
	if (answer == NULL || PQresultStatus(answer) != PGRES_TUPLES_OK) {
		char why[256];
		snprintf(why, sizeof(why), "%s",
		         answer ? PQresultErrorMessage(answer) : "no result");
		PQclear(answer);
		lookup_failed(l, why);
		return;
	}
	lookup_answered(l, answer);
	PQclear(answer);
	lookup_end(l);
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct authq_lookup *l = w->data;
	const char *params[1] = {l->name};
	(void)loop;

	if (!l->querying) {
		switch (PQconnectPoll(l->pg)) {
		case PGRES_POLLING_OK:
			break;
		case PGRES_POLLING_FAILED:
			lookup_failed(l, PQerrorMessage(l->pg));
			return;
		case PGRES_POLLING_READING:
			watch(l, EV_READ);
			return;
		default:
			watch(l, EV_WRITE);
			return;
		}
		PQsetnonblocking(l->pg, 1);
		if (!PQsendQueryParams(l->pg, l->query, 1, NULL, params, NULL, NULL, 0)) {
			lookup_failed(l, PQerrorMessage(l->pg));
			return;
		}
		l->querying = true;
		watch(l, PQflush(l->pg) == 1 ? EV_READ | EV_WRITE : EV_READ);
		return;
	}
	if ((revents & EV_WRITE) && PQflush(l->pg) == 0)
		watch(l, EV_READ);
	if (revents & EV_READ) {
		if (!PQconsumeInput(l->pg)) {
			lookup_failed(l, PQerrorMessage(l->pg));
			return;
		}
		read_result(l);
	}
}

static void on_deadline(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	lookup_failed(t->data, "timed out (server_connect_timeout)");
}

static void on_start_failed(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct authq_lookup *l = t->data;
	(void)loop;
	(void)revents;
	lookup_failed(l, l->pg ? PQerrorMessage(l->pg) : "out of memory");
}

struct authq_lookup *authq_lookup(struct authq *q, const struct authq_target *t, const char *name,
                                  authq_cb cb, void *arg)
{
	struct authq_lookup *l;
	const char *keys[16], *vals[16];
	char port[16];
	int k = 0;

	l = util_calloc(1, sizeof(*l));
	l->q = q;
	l->cb = cb;
	l->arg = arg;
	l->name = util_strdup(name);
	l->query = util_strdup(t->query);
	l->ttl_ms = t->ttl_ms;
	list_append(&q->lookups, &l->node);
	ev_init(&l->io, on_io);
	l->io.data = l;
	ev_timer_init(&l->deadline, on_deadline, t->timeout_ms / 1000.0, 0);
	l->deadline.data = l;

	snprintf(port, sizeof(port), "%d", t->port);
	keys[k] = "host", vals[k++] = t->host;
	keys[k] = "port", vals[k++] = port;
	keys[k] = "dbname", vals[k++] = t->dbname;
	keys[k] = "user", vals[k++] = t->user;
	keys[k] = "gssencmode", vals[k++] = "disable";
	keys[k] = "application_name", vals[k++] = "pooler auth_query";
	/* valid-until must come back in a form authq_expired reads */
	keys[k] = "options", vals[k++] = "-c DateStyle=ISO -c TimeZone=UTC";
	if (t->tls != NULL)
		k += node_tls_conninfo(t->tls, keys + k, vals + k);
	if (t->password != NULL)
		keys[k] = "password", vals[k++] = t->password;
	keys[k] = NULL, vals[k] = NULL;
	l->pg = PQconnectStartParams(keys, vals, 0);
	if (l->pg != NULL)
		PQsetNoticeProcessor(l->pg, log_pq_notice, (void *)"auth_query");
	if (l->pg == NULL || PQstatus(l->pg) == CONNECTION_BAD) {
		/* report from the loop, never from inside the caller */
		ev_timer_init(&l->deadline, on_start_failed, 0, 0);
		ev_timer_start(q->loop, &l->deadline);
		return l;
	}
	ev_timer_start(q->loop, &l->deadline);
	watch(l, EV_WRITE);
	return l;
}
