/* authq: see include/authq.h. */
#include "authq.h"

#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "pgconn.h"
#include "util.h"

#define AUTHQ_CACHE_MAX 10000

struct authq_entry {
	struct auth_user u; /* u.name is the key; kind etc. only when found */
	bool found;
	uint64_t expires_us;
};

/* The answers, one cache for every worker's authq, under its own (leaf) lock. */
struct authq_cache {
	pthread_mutex_t mu;
	struct authq_entry *entries;
	int n;
};

struct authq {
	struct ev_loop *loop;
	struct authq_cache *cache;
	struct authq_entry scratch; /* authq_cached's answer: a copy, this worker's own */
	struct list lookups;        /* authq_lookup in flight */
};

struct authq_lookup {
	struct list node; /* authq->lookups */
	struct authq *q;
	authq_cb cb;
	void *arg;
	char *name;
	char *query;
	int ttl_ms;
	PGresult *answer; /* the query's first result, kept until the query ends */
	struct pgconn pq;
};

struct authq_cache *authq_cache_new(void)
{
	struct authq_cache *c = util_calloc(1, sizeof(*c));
	pthread_mutex_init(&c->mu, NULL);
	return c;
}

struct authq *authq_new(struct ev_loop *loop, struct authq_cache *cache)
{
	struct authq *q = util_calloc(1, sizeof(*q));

	q->loop = loop;
	q->cache = cache;
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

static void cache_clear(struct authq_cache *c)
{
	for (int i = 0; i < c->n; i++)
		entry_free(&c->entries[i]);
	c->n = 0;
}

void authq_clear(struct authq *q)
{
	pthread_mutex_lock(&q->cache->mu);
	cache_clear(q->cache);
	pthread_mutex_unlock(&q->cache->mu);
}

void authq_cache_free(struct authq_cache *c)
{
	if (c == NULL)
		return;
	cache_clear(c);
	free(c->entries);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

/* A deep copy: dst owns its strings. */
static void entry_copy(struct authq_entry *dst, const struct authq_entry *src)
{
	*dst = *src;
	dst->u.name = util_strdup(src->u.name);
	dst->u.plain = src->u.plain ? util_strdup(src->u.plain) : NULL;
}

static void lookup_end(struct authq_lookup *l)
{
	pgconn_close(&l->pq);
	PQclear(l->answer);
	list_del(&l->node);
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
	if (q->scratch.u.name != NULL)
		entry_free(&q->scratch);
	free(q);
}

void authq_cancel(struct authq_lookup *l)
{
	if (l != NULL)
		lookup_end(l);
}

static struct authq_entry *cache_find(struct authq_cache *q, const char *name)
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

static struct authq_entry *cache_add(struct authq_cache *q, const char *name, int ttl_ms)
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
	struct authq_entry *e;

	pthread_mutex_lock(&q->cache->mu);
	e = cache_find(q->cache, name);
	if (e != NULL) {
		if (q->scratch.u.name != NULL)
			entry_free(&q->scratch);
		entry_copy(&q->scratch, e);
	}
	pthread_mutex_unlock(&q->cache->mu);
	if (e == NULL)
		return false;
	*u = q->scratch.found ? &q->scratch.u : NULL;
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
	pthread_mutex_lock(&l->q->cache->mu);
	e = cache_add(l->q->cache, l->name, l->ttl_ms);
	if (e != NULL) {
		char *name = e->u.name;
		uint64_t expires = e->expires_us;
		*e = tmp;
		e->u.name = name;
		e->expires_us = expires;
		e->u.plain = tmp.u.plain ? util_strdup(tmp.u.plain) : NULL;
	}
	pthread_mutex_unlock(&l->q->cache->mu);
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
	char full[sizeof(msg)];

	snprintf(full, sizeof(full), "auth_query failed: %s", why);
	pgconn_trim(msg, sizeof(msg), full);
	l->cb(l->arg, NULL, msg);
	lookup_end(l);
}

static void on_connected(struct pgconn *pc)
{
	struct authq_lookup *l = container_of(pc, struct authq_lookup, pq);
	const char *params[1] = {l->name};

	pgconn_query(pc, l->query, 1, params);
}

/* The first result is the answer; the lookup ends with the query. */
static void on_result(struct pgconn *pc, PGresult *r)
{
	struct authq_lookup *l = container_of(pc, struct authq_lookup, pq);

	if (r != NULL) {
		if (l->answer == NULL)
			l->answer = r;
		else
			PQclear(r);
		return;
	}
	if (l->answer == NULL || PQresultStatus(l->answer) != PGRES_TUPLES_OK) {
		lookup_failed(l, l->answer ? PQresultErrorMessage(l->answer) : "no result");
		return;
	}
	lookup_answered(l, l->answer);
	lookup_end(l);
}

static void on_failed(struct pgconn *pc, const char *why)
{
	lookup_failed(container_of(pc, struct authq_lookup, pq), why);
}

static const struct pgconn_ops lookup_ops = {
    .connected = on_connected,
    .result = on_result,
    .failed = on_failed,
};

struct authq_lookup *authq_lookup(struct authq *q, const struct authq_target *t, const char *name,
                                  authq_cb cb, void *arg)
{
	struct authq_lookup *l = util_calloc(1, sizeof(*l));
	struct pgconn_target target = {
	    .host = t->host,
	    .port = t->port,
	    .dbname = t->dbname,
	    .user = t->user,
	    .password = t->password,
	    .application_name = "pooler auth_query",
	    /* valid-until must come back in a form authq_expired reads */
	    .options = "-c DateStyle=ISO -c TimeZone=UTC",
	    .tls = t->tls,
	    .notice_label = "auth_query",
	    .timeout_why = "timed out (server_connect_timeout)",
	    .timeout_ms = t->timeout_ms,
	};

	l->q = q;
	l->cb = cb;
	l->arg = arg;
	l->name = util_strdup(name);
	l->query = util_strdup(t->query);
	l->ttl_ms = t->ttl_ms;
	list_append(&q->lookups, &l->node);
	pgconn_init(&l->pq, q->loop, &lookup_ops);
	/* every failure, out of memory included, is reported from the loop */
	(void)pgconn_connect(&l->pq, &target);
	return l;
}
