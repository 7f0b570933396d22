/* prepared: see include/prepared.h. */
#include "prepared.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct pstmt *pstmts_find(const struct client_stmts *cs, const char *name)
{
	if (cs == NULL)
		return NULL;
	for (int i = 0; i < cs->n; i++)
		if (strcmp(cs->items[i].name, name) == 0)
			return &cs->items[i];
	return NULL;
}

/* FNV-1a over the query text and parameter types; never 0, which means "unnamed". */
static uint64_t statement_hash(const uint8_t *p, size_t n)
{
	uint64_t h = util_fnv1a(UTIL_FNV1A_INIT, p, n);
	return h != 0 ? h : 1;
}

struct pstmt *pstmts_add(struct client_stmts *cs, const char *name, const uint8_t *rest,
                         size_t rest_len)
{
	struct pstmt *p = pstmts_find(cs, name);

	if (p == NULL) {
		if (cs->n == cs->cap) {
			cs->cap = cs->cap ? cs->cap * 2 : 8;
			cs->items = realloc(cs->items, sizeof(*cs->items) * (size_t)cs->cap);
			if (cs->items == NULL)
				abort();
		}
		p = &cs->items[cs->n++];
		memset(p, 0, sizeof(*p));
		p->name = util_strdup(name);
	}
	free(p->rest);
	p->hash = statement_hash(rest, rest_len);
	prepared_server_name(p->hash, p->server_name);
	p->rest = util_calloc(1, rest_len ? rest_len : 1);
	memcpy(p->rest, rest, rest_len);
	p->rest_len = rest_len;
	return p;
}

void pstmts_remove(struct client_stmts *cs, const char *name)
{
	struct pstmt *p = pstmts_find(cs, name);
	if (p == NULL)
		return;
	free(p->name);
	free(p->rest);
	*p = cs->items[--cs->n];
}

void pstmts_free(struct client_stmts *cs)
{
	for (int i = 0; i < cs->n; i++) {
		free(cs->items[i].name);
		free(cs->items[i].rest);
	}
	free(cs->items);
	buf_free(&cs->unnamed);
	memset(cs, 0, sizeof(*cs));
}

void prepared_server_name(uint64_t hash, char out[PREPARED_NAME_LEN])
{
	snprintf(out, PREPARED_NAME_LEN, "pooler_%016llx", (unsigned long long)hash);
}

static void put_header(uint8_t *m, char type, size_t total)
{
	uint32_t len = (uint32_t)(total - 1);
	m[0] = (uint8_t)type;
	m[1] = (uint8_t)(len >> 24);
	m[2] = (uint8_t)(len >> 16);
	m[3] = (uint8_t)(len >> 8);
	m[4] = (uint8_t)len;
}

uint8_t *prepared_parse_message(const struct pstmt *p, size_t *len)
{
	size_t nlen = strlen(p->server_name) + 1;
	uint8_t *m = malloc(5 + nlen + p->rest_len);

	if (m == NULL)
		return NULL;
	*len = 5 + nlen + p->rest_len;
	put_header(m, 'P', *len);
	memcpy(m + 5, p->server_name, nlen);
	memcpy(m + 5 + nlen, p->rest, p->rest_len);
	return m;
}

size_t prepared_close_message(const char *name, uint8_t *out, size_t cap)
{
	size_t nlen = strlen(name) + 1;
	if (6 + nlen > cap)
		return 0;
	put_header(out, 'C', 6 + nlen);
	out[5] = 'S';
	memcpy(out + 6, name, nlen);
	return 6 + nlen;
}

static int slot_of(const struct stmt_cache *s, uint64_t hash)
{
	for (int i = 0; i < s->n; i++)
		if (s->items[i].hash == hash)
			return i;
	return -1;
}

bool stmt_cache_has(const struct stmt_cache *s, uint64_t hash)
{
	return slot_of(s, hash) >= 0;
}

bool stmt_cache_touch(struct stmt_cache *s, uint64_t hash)
{
	int i = slot_of(s, hash);
	if (i < 0)
		return false;
	s->items[i].used = ++s->clock;
	return true;
}

void stmt_cache_add(struct stmt_cache *s, uint64_t hash)
{
	if (hash == 0 || stmt_cache_touch(s, hash))
		return;
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 8;
		s->items = realloc(s->items, sizeof(*s->items) * (size_t)s->cap);
		if (s->items == NULL)
			abort();
	}
	s->items[s->n].hash = hash;
	s->items[s->n++].used = ++s->clock;
}

void stmt_cache_remove(struct stmt_cache *s, uint64_t hash)
{
	int i = slot_of(s, hash);
	if (i >= 0)
		s->items[i] = s->items[--s->n];
}

uint64_t stmt_cache_evict(struct stmt_cache *s, uint64_t keep)
{
	int oldest = -1;
	for (int i = 0; i < s->n; i++)
		if (s->items[i].hash != keep &&
		    (oldest < 0 || s->items[i].used < s->items[oldest].used))
			oldest = i;
	if (oldest < 0)
		return 0;
	uint64_t hash = s->items[oldest].hash;
	s->items[oldest] = s->items[--s->n];
	return hash;
}

void stmt_cache_clear(struct stmt_cache *s)
{
	s->n = 0;
}

void stmt_cache_free(struct stmt_cache *s)
{
	free(s->items);
	memset(s, 0, sizeof(*s));
}

bool reply_queue_push(struct reply_queue *q, char type, uint64_t hash, uint32_t segment,
                      uint8_t kind)
{
	if (q->len == q->cap) {
		if (q->cap >= REPLY_QUEUE_MAX)
			return false;
		unsigned cap = q->cap ? q->cap * 2 : 64;
		struct reply_entry *items = malloc(sizeof(*items) * cap);
		if (items == NULL)
			return false;
		for (unsigned i = 0; i < q->len; i++) /* unwrap the ring */
			items[i] = q->items[(q->head + i) % q->cap];
		free(q->items);
		q->items = items;
		q->head = 0;
		q->cap = cap;
	}
	struct reply_entry *e = &q->items[(q->head + q->len++) % q->cap];
	e->hash = hash;
	e->segment = segment;
	e->kind = kind;
	e->type = type;
	return true;
}

void reply_queue_free(struct reply_queue *q)
{
	if (q == NULL)
		return;
	free(q->items);
	free(q);
}

bool reply_queue_pop(struct reply_queue *q, struct reply_entry *out)
{
	if (q->len == 0)
		return false;
	*out = q->items[q->head];
	q->head = (q->head + 1) % q->cap;
	q->len--;
	return true;
}

const struct reply_entry *reply_queue_peek(const struct reply_queue *q)
{
	return q->len > 0 ? &q->items[q->head] : NULL;
}
