/* params: see include/params.h. Names compare case-insensitively, as GUC names do. */
#include "params.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

/* Names every client or server sends: entries point at these instead of a copy each (a
 * client that sits idle keeps its few parameters for hours, times ten thousand). */
static const char *const known_names[] = {
    "application_name",
    "client_encoding",
    "DateStyle",
    "default_transaction_read_only",
    "extra_float_digits",
    "in_hot_standby",
    "integer_datetimes",
    "IntervalStyle",
    "is_superuser",
    "scram_iterations",
    "search_path",
    "server_encoding",
    "server_version",
    "session_authorization",
    "standard_conforming_strings",
    "TimeZone",
};

static char *name_dup(const char *name)
{
	for (size_t i = 0; i < ARRAY_LEN(known_names); i++)
		if (strcmp(known_names[i], name) == 0)
			return (char *)known_names[i];
	return util_strdup(name);
}

static void name_free(char *name)
{
	for (size_t i = 0; i < ARRAY_LEN(known_names); i++)
		if (name == known_names[i])
			return;
	free(name);
}

/* The login value and the current one are one string until a SET changes the latter. */
static void value_free(struct param *x)
{
	if (x->value != x->base)
		free(x->value);
}

void params_init(struct params *p)
{
	p->items = NULL;
	p->n = 0;
	p->gen = 0;
	p->fp = 0;
	p->fp_gen = 0;
}

uint64_t params_fingerprint(struct params *p)
{
	if (p->fp_gen == p->gen + 1)
		return p->fp;
	uint64_t fp = 0x9e3779b97f4a7c15ULL;
	for (int i = 0; i < p->n; i++) {
		uint64_t h = UTIL_FNV1A_INIT;
		for (const char *c = p->items[i].name; *c; c++)
			h = util_fnv1a_step(h, (uint8_t)(*c | 0x20)); /* names ignore case */
		h = util_fnv1a_step(h, '=');
		h = util_fnv1a(h, p->items[i].value, strlen(p->items[i].value));
		fp ^= h * 0xff51afd7ed558ccdULL;
	}
	p->fp = fp;
	p->fp_gen = p->gen + 1;
	return fp;
}

void params_free(struct params *p)
{
	for (int i = 0; i < p->n; i++) {
		name_free(p->items[i].name);
		value_free(&p->items[i]);
		free(p->items[i].base);
	}
	free(p->items);
	params_init(p);
}

struct param *params_find(const struct params *p, const char *name)
{
	for (int i = 0; i < p->n; i++)
		if (strcasecmp(p->items[i].name, name) == 0)
			return &p->items[i];
	return NULL;
}

const char *params_get(const struct params *p, const char *name)
{
	struct param *x = params_find(p, name);
	return x ? x->value : NULL;
}

bool params_set(struct params *p, const char *name, const char *value)
{
	struct param *x = params_find(p, name);

	if (x != NULL) {
		if (strcmp(x->value, value) == 0)
			return false;
		value_free(x);
		x->value =
		    x->base != NULL && strcmp(x->base, value) == 0 ? x->base : util_strdup(value);
		p->gen++;
		return true;
	}
	p->items = realloc(p->items, sizeof(*p->items) * (size_t)(p->n + 1));
	if (p->items == NULL)
		abort();
	x = &p->items[p->n++];
	x->name = name_dup(name);
	x->value = util_strdup(value);
	x->base = NULL;
	p->gen++;
	return true;
}

void params_copy(struct params *dst, const struct params *src)
{
	for (int i = 0; i < src->n; i++)
		params_set(dst, src->items[i].name, src->items[i].value);
}

bool params_remove(struct params *p, const char *name)
{
	struct param *x = params_find(p, name);

	if (x == NULL)
		return false;
	name_free(x->name);
	value_free(x);
	free(x->base);
	*x = p->items[--p->n];
	p->gen++;
	return true;
}

void params_set_base(struct params *p)
{
	for (int i = 0; i < p->n; i++) {
		struct param *x = &p->items[i];
		if (x->base != x->value)
			free(x->base);
		x->base = x->value;
	}
}
