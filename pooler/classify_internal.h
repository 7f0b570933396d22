/* classify_internal: what the two files of the classify module share (classify.c: the
 * verdict cache, the lexer, the API; classify_tree.c: the walk over libpg_query's parse
 * tree). Private to them: other modules use include/classify.h. */
#ifndef POOLER_CLASSIFY_INTERNAL_H
#define POOLER_CLASSIFY_INTERNAL_H

#include "classify.h"

#define NAME_MAX_LEN 64

/* A set of lower-case names, open addressing. */
struct name_set {
	char **slots;
	size_t cap; /* power of two */
	size_t n;
};

bool set_has(const struct name_set *s, const char *name);
uint64_t classify_hash(const char *s, size_t n); /* FNV-1a */
void classify_lower(char *dst, const char *src, size_t cap);

/* The verdict cache: 4-way buckets, least recently used out. */
struct cache_entry {
	uint64_t hash;
	uint64_t used; /* tick of the last hit; 0 = empty */
	char *key;
	bool learned; /* a replica refused it: kept when the catalog is read again */
	struct verdict v;
};

#define WAYS 4

struct classifier {
	struct name_set catalog;   /* every function the servers know */
	struct name_set volatile_; /* ...of which volatile */
	struct name_set setters;   /* ...of which some body changes settings */
	struct name_set unlogged;  /* relations a standby cannot read: unlogged, views of them */
	struct name_set reads;     /* volatile but only read */
	struct name_set writes;    /* always primary */
	bool have_catalog;
	struct cache_entry *cache;
	size_t n_buckets;
	uint64_t tick;
	struct classify_stats stats;
};

/* The verdict of sql (NUL-terminated) from PostgreSQL's parser; *cacheable says whether
 * it may be cached under the text's normalized key. */
struct verdict classify_parse(struct classifier *cl, const char *sql, bool *cacheable);

#endif
