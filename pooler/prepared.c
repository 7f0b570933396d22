/* prepared: see include/prepared.h. */
#include "prepared.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct pstmt *pstmts_find(const struct client_stmts *cs, const char *name)
{
	for (int i = 0; i < cs->n; i++)
		if (strcmp(cs->items[i].name, name) == 0)
			return &cs->items[i];
	return NULL;
}

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ULL;
	return h;
}

struct pstmt *pstmts_add(struct client_stmts *cs, uint64_t client_id, const char *name,
                         const uint8_t *rest, size_t rest_len)
{
	struct pstmt *p = pstmts_find(cs, name);
	uint64_t h = 1469598103934665603ULL;

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
	free(p->parse);
	h = mix(h, &client_id, sizeof(client_id));
	h = mix(h, name, strlen(name) + 1);
	h = mix(h, rest, rest_len);
	snprintf(p->server_name, sizeof(p->server_name), "pooler_%016llx", (unsigned long long)h);

	/* 'P', length, server name, then the client's query and parameter types as sent */
	size_t nlen = strlen(p->server_name) + 1;
	p->parse_len = 5 + nlen + rest_len;
	p->parse = util_calloc(1, p->parse_len);
	uint32_t len = (uint32_t)(p->parse_len - 1);
	p->parse[0] = 'P';
	p->parse[1] = (uint8_t)(len >> 24);
	p->parse[2] = (uint8_t)(len >> 16);
	p->parse[3] = (uint8_t)(len >> 8);
	p->parse[4] = (uint8_t)len;
	memcpy(p->parse + 5, p->server_name, nlen);
	memcpy(p->parse + 5 + nlen, rest, rest_len);
	return p;
}

void pstmts_remove(struct client_stmts *cs, const char *name)
{
	struct pstmt *p = pstmts_find(cs, name);
	if (p == NULL)
		return;
	free(p->name);
	free(p->parse);
	*p = cs->items[--cs->n];
}

void pstmts_free(struct client_stmts *cs)
{
	for (int i = 0; i < cs->n; i++) {
		free(cs->items[i].name);
		free(cs->items[i].parse);
	}
	free(cs->items);
	memset(cs, 0, sizeof(*cs));
}

bool stmt_set_has(const struct stmt_set *s, const char *name)
{
	for (int i = 0; i < s->n; i++)
		if (strcmp(s->names[i], name) == 0)
			return true;
	return false;
}

void stmt_set_add(struct stmt_set *s, const char *name)
{
	if (name[0] == '\0' || stmt_set_has(s, name))
		return;
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 8;
		s->names = realloc(s->names, sizeof(*s->names) * (size_t)s->cap);
		if (s->names == NULL)
			abort();
	}
	util_strlcpy(s->names[s->n++], name, PREPARED_NAME_LEN);
}

void stmt_set_remove(struct stmt_set *s, const char *name)
{
	for (int i = 0; i < s->n; i++)
		if (strcmp(s->names[i], name) == 0) {
			memcpy(s->names[i], s->names[--s->n], PREPARED_NAME_LEN);
			return;
		}
}

void stmt_set_clear(struct stmt_set *s)
{
	s->n = 0;
}

void stmt_set_free(struct stmt_set *s)
{
	free(s->names);
	memset(s, 0, sizeof(*s));
}

bool parse_queue_push(struct parse_queue *q, const char *name, uint32_t segment, bool injected)
{
	if (q->len == PARSE_QUEUE_LEN)
		return false;
	struct parse_entry *e = &q->items[(q->head + q->len++) % PARSE_QUEUE_LEN];
	util_strlcpy(e->name, name, sizeof(e->name));
	e->segment = segment;
	e->injected = injected;
	return true;
}

bool parse_queue_pop(struct parse_queue *q, struct parse_entry *out)
{
	if (q->len == 0)
		return false;
	*out = q->items[q->head];
	q->head = (q->head + 1) % PARSE_QUEUE_LEN;
	q->len--;
	return true;
}

void parse_queue_drop_segment(struct parse_queue *q, uint32_t segment)
{
	while (q->len > 0 && q->items[q->head].segment == segment) {
		q->head = (q->head + 1) % PARSE_QUEUE_LEN;
		q->len--;
	}
}

bool parse_queue_has(const struct parse_queue *q, const char *name)
{
	for (unsigned i = 0; i < q->len; i++)
		if (strcmp(q->items[(q->head + i) % PARSE_QUEUE_LEN].name, name) == 0)
			return true;
	return false;
}
