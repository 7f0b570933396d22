/* classify: see include/classify.h. */
#include "classify_internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KEY_MAX 2048 /* longer statements are classified but not cached */

/* ---- a set of lower-case names, open addressing ------------------------------------- */

uint64_t classify_hash(const char *s, size_t n)
{
	return util_fnv1a(UTIL_FNV1A_INIT, s, n);
}

void classify_lower(char *dst, const char *src, size_t cap)
{
	size_t i = 0;
	for (; src[i] && i + 1 < cap; i++)
		dst[i] = (char)tolower((unsigned char)src[i]);
	dst[i] = '\0';
}

bool set_has(const struct name_set *s, const char *name)
{
	char low[NAME_MAX_LEN];

	if (s->cap == 0)
		return false;
	classify_lower(low, name, sizeof(low));
	for (size_t i = classify_hash(low, strlen(low)) & (s->cap - 1);;
	     i = (i + 1) & (s->cap - 1)) {
		if (s->slots[i] == NULL)
			return false;
		if (strcmp(s->slots[i], low) == 0)
			return true;
	}
}

static void set_add(struct name_set *s, const char *name)
{
	char low[NAME_MAX_LEN];

	if (set_has(s, name))
		return;
	if ((s->n + 1) * 2 > s->cap) {
		struct name_set bigger = {util_calloc(s->cap ? s->cap * 2 : 64, sizeof(char *)),
		                          s->cap ? s->cap * 2 : 64, 0};
		for (size_t i = 0; i < s->cap; i++)
			if (s->slots[i]) {
				set_add(&bigger, s->slots[i]);
				free(s->slots[i]);
			}
		free(s->slots);
		*s = bigger;
	}
	classify_lower(low, name, sizeof(low));
	size_t i = classify_hash(low, strlen(low)) & (s->cap - 1);
	while (s->slots[i] != NULL)
		i = (i + 1) & (s->cap - 1);
	s->slots[i] = util_strdup(low);
	s->n++;
}

static void set_clear(struct name_set *s)
{
	for (size_t i = 0; i < s->cap; i++)
		free(s->slots[i]);
	free(s->slots);
	memset(s, 0, sizeof(*s));
}

/* Volatile built-ins that only read; PostgreSQL marks them volatile because their result
 * changes from call to call, not because they change anything. */
static const char *const default_reads[] = {
    "random",
    "clock_timestamp",
    "timeofday",
    "statement_timestamp",
    "gen_random_uuid",
    "pg_sleep",
    "pg_sleep_for",
    "pg_sleep_until",
    "pg_last_wal_replay_lsn",
    "pg_last_wal_receive_lsn",
    "pg_last_xact_replay_timestamp",
    "pg_is_in_recovery",
    "pg_backend_pid",
    "inet_server_port",
    "inet_server_addr",
    "version",
    "current_setting",
    "pg_relation_size",
    "pg_total_relation_size",
    "pg_database_size",
    "txid_current_snapshot",
    "pg_current_snapshot",
};

/* Functions that change state or only work on a primary, whatever the catalog says. */
static const char *const default_writes[] = {
    "nextval",
    "setval",
    "set_config",
    "pg_advisory_lock",
    "pg_advisory_xact_lock",
    "pg_advisory_lock_shared",
    "pg_advisory_xact_lock_shared",
    "pg_try_advisory_lock",
    "pg_try_advisory_xact_lock",
    "pg_try_advisory_lock_shared",
    "pg_try_advisory_xact_lock_shared",
    "pg_advisory_unlock",
    "pg_advisory_unlock_all",
    "pg_notify",
    "txid_current",
    "pg_current_xact_id",
    "pg_current_wal_lsn",
    "pg_switch_wal",
    "lo_create",
    "lo_import",
    "lo_unlink",
    "lo_from_bytea",
    "lo_put",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "dblink_exec",
};

struct classifier *classify_new(size_t cache_slots)
{
	struct classifier *cl = util_calloc(1, sizeof(*cl));

	for (size_t i = 0; i < ARRAY_LEN(default_reads); i++)
		set_add(&cl->reads, default_reads[i]);
	for (size_t i = 0; i < ARRAY_LEN(default_writes); i++)
		set_add(&cl->writes, default_writes[i]);
	cl->n_buckets = cache_slots / WAYS;
	if (cl->n_buckets > 0)
		cl->cache = util_calloc(cl->n_buckets * WAYS, sizeof(*cl->cache));
	return cl;
}

static void clear_cache(struct classifier *cl, bool keep_learned)
{
	for (size_t i = 0; i < cl->n_buckets * WAYS; i++) {
		if (keep_learned && cl->cache[i].learned)
			continue;
		free(cl->cache[i].key);
		memset(&cl->cache[i], 0, sizeof(cl->cache[i]));
	}
}

void classify_clear_cache(struct classifier *cl)
{
	clear_cache(cl, false);
}

void classify_free(struct classifier *cl)
{
	if (cl == NULL)
		return;
	classify_clear_cache(cl);
	free(cl->cache);
	set_clear(&cl->catalog);
	set_clear(&cl->volatile_);
	set_clear(&cl->setters);
	set_clear(&cl->unlogged);
	set_clear(&cl->reads);
	set_clear(&cl->writes);
	free(cl);
}

void classify_add_read_function(struct classifier *cl, const char *name)
{
	set_add(&cl->reads, name);
	classify_clear_cache(cl);
}

void classify_add_write_function(struct classifier *cl, const char *name)
{
	set_add(&cl->writes, name);
	classify_clear_cache(cl);
}

void classify_set_catalog(struct classifier *cl, const struct classify_catalog *cat)
{
	set_clear(&cl->catalog);
	set_clear(&cl->volatile_);
	set_clear(&cl->setters);
	set_clear(&cl->unlogged);
	for (size_t i = 0; i < cat->n_unlogged; i++)
		set_add(&cl->unlogged, cat->unlogged_names[i]);
	for (size_t i = 0; i < cat->n_names; i++)
		set_add(&cl->catalog, cat->names[i]);
	for (size_t i = 0; i < cat->n_volatile; i++)
		set_add(&cl->volatile_, cat->volatile_names[i]);
	for (size_t i = 0; i < cat->n_setters; i++)
		set_add(&cl->setters, cat->setter_names[i]);
	cl->have_catalog = true;
	/* what a replica refused stays a write: no catalog change makes it a read */
	clear_cache(cl, true);
}

const struct classify_stats *classify_stats(const struct classifier *cl)
{
	return &cl->stats;
}

/* ---- the lexer pass ----------------------------------------------------------------- */

static bool ident_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '$';
}

/* The end of a comment starting at sql[i] (-- to the line's end, or nested slash-star),
 * or i when none starts there. */
static size_t comment_end(const char *sql, size_t len, size_t i)
{
	if (sql[i] == '-' && i + 1 < len && sql[i + 1] == '-') {
		while (i < len && sql[i] != '\n')
			i++;
		return i;
	}
	if (sql[i] != '/' || i + 1 >= len || sql[i + 1] != '*')
		return i;
	int depth = 1;
	i += 2;
	while (i < len && depth > 0) {
		if (sql[i] == '/' && i + 1 < len && sql[i + 1] == '*')
			depth++, i += 2;
		else if (sql[i] == '*' && i + 1 < len && sql[i + 1] == '/')
			depth--, i += 2;
		else
			i++;
	}
	return i;
}

/* The end of a '...' (escapes: E'...') string constant whose body starts at sql[i]. */
static size_t quoted_end(const char *sql, size_t len, size_t i, bool escapes)
{
	while (i < len) {
		if (escapes && sql[i] == '\\' && i + 1 < len) {
			i += 2;
			continue;
		}
		if (sql[i] == '\'') {
			if (i + 1 < len && sql[i + 1] == '\'') {
				i += 2;
				continue;
			}
			break;
		}
		i++;
	}
	return i + 1;
}

/* The end of a $tag$...$tag$ constant at sql[i] (a '$'), or i when it is none. */
static size_t dollar_end(const char *sql, size_t len, size_t i)
{
	size_t t = i + 1;

	while (t < len && (isalnum((unsigned char)sql[t]) || sql[t] == '_'))
		t++;
	if (t >= len || sql[t] != '$')
		return i; /* a parameter ($1) or an operator */
	size_t taglen = t - i + 1, j = t + 1;
	while (j + taglen <= len && memcmp(sql + j, sql + i, taglen) != 0)
		j++;
	return j + taglen;
}

/* A byte the key takes lower-cased and nothing more: not spacing or a control byte, and
 * starting no comment (- /), constant (' E e $ digits) or quoted name ("). */
static bool copied_as_is(char c)
{
	unsigned char u = (unsigned char)c;

	return u > ' ' && u != 0x7f && (u < '0' || u > '9') && u != '-' && u != '/' && u != '\'' &&
	       u != '"' && u != '$' && (u | 0x20) != 'e';
}

size_t classify_normalize(const char *sql, size_t len, char *out, size_t outlen)
{
	size_t i = 0, o = 0;
	bool space = false;

	/* The parser stops at a NUL: so does the key, or text past a NUL hidden in a comment
	 * or literal would key a verdict on what the parser never saw. */
	len = strnlen(sql, len);
#define EMIT(ch)                                                                                   \
	do {                                                                                       \
		if (o + 1 >= outlen)                                                               \
			return 0;                                                                  \
		out[o++] = (ch);                                                                   \
	} while (0)

	while (i < len) {
		char c = sql[i];
		if (copied_as_is(c)) {
			/* most bytes: no comment, constant or spacing starts here */
			if (space && o > 0)
				EMIT(' ');
			space = false;
			EMIT(c >= 'A' && c <= 'Z' ? (char)(c + ('a' - 'A')) : c);
			i++;
			continue;
		}
		size_t end = comment_end(sql, len, i);
		if (isspace((unsigned char)c) || end != i) {
			space = true;
			i = end != i ? end : i + 1;
			continue;
		}
		if (space && o > 0)
			EMIT(' ');
		space = false;
		bool word_start = o == 0 || !ident_char(out[o - 1]);
		/* string constants: '...', E'...', and $tag$...$tag$ */
		bool escapes =
		    (c == 'E' || c == 'e') && i + 1 < len && sql[i + 1] == '\'' && word_start;
		if (c == '\'' || escapes) {
			i = quoted_end(sql, len, i + (escapes ? 2 : 1), escapes);
			EMIT('?');
			continue;
		}
		if (c == '$' && word_start && (end = dollar_end(sql, len, i)) != i) {
			i = end;
			EMIT('?');
			continue;
		}
		if (c == '"') {
			/* quoted identifiers stay as they are */
			EMIT(c);
			i++;
			while (i < len && sql[i] != '"')
				EMIT(sql[i++]);
			if (i < len)
				EMIT(sql[i++]);
			continue;
		}
		if (isdigit((unsigned char)c) && word_start) {
			while (i < len &&
			       (isalnum((unsigned char)sql[i]) || sql[i] == '.' || sql[i] == '_'))
				i++;
			EMIT('?');
			continue;
		}
		EMIT((char)tolower((unsigned char)c));
		i++;
	}
	out[o] = '\0';
	return o;
#undef EMIT
}

/* ---- hints -------------------------------------------------------------------------- */

static uint8_t find_hint(const char *sql, size_t len)
{
	size_t i = 0;

	for (;;) {
		while (i < len && isspace((unsigned char)sql[i]))
			i++;
		if (i + 1 >= len || sql[i] != '/' || sql[i + 1] != '*')
			return HINT_NONE;
		const char *end = NULL;
		for (size_t j = i + 2; j + 1 < len; j++)
			if (sql[j] == '*' && sql[j + 1] == '/') {
				end = sql + j;
				break;
			}
		if (end == NULL)
			return HINT_NONE;
		const char *p = sql + i + 2;
		while (p < end && isspace((unsigned char)*p))
			p++;
		if ((size_t)(end - p) >= 14 && strncmp(p, "pooler:primary", 14) == 0)
			return HINT_PRIMARY;
		if ((size_t)(end - p) >= 14 && strncmp(p, "pooler:replica", 14) == 0)
			return HINT_REPLICA;
		i = (size_t)(end - sql) + 2;
	}
}

bool classify_may_reset(const char *sql, size_t len)
{
	static const char *const words[] = {"reset", "discard", "default"};

	for (size_t i = 0; i < len && sql[i] != '\0'; i++) {
		char ch = (char)(sql[i] | 0x20);
		if (ch != 'r' && ch != 'd')
			continue;
		for (size_t k = 0; k < ARRAY_LEN(words); k++) {
			size_t n = strlen(words[k]);
			if (len - i >= n && strncasecmp(sql + i, words[k], n) == 0)
				return true;
		}
	}
	return false;
}

static void cache_put(struct classifier *cl, struct cache_entry *bucket, const char *key,
                      uint64_t h, const struct verdict *v)
{
	struct cache_entry *victim = &bucket[0];
	for (int i = 0; i < WAYS; i++) {
		if (bucket[i].used && bucket[i].hash == h && strcmp(bucket[i].key, key) == 0) {
			victim = &bucket[i];
			break;
		}
		if (bucket[i].used < victim->used)
			victim = &bucket[i];
	}
	free(victim->key);
	victim->key = util_strdup(key);
	victim->hash = h;
	victim->used = ++cl->tick;
	victim->learned = false;
	victim->v = *v;
	victim->v.hint = HINT_NONE;
}

void classify_learn_write(struct classifier *cl, const char *sql, size_t len)
{
	char key[KEY_MAX];
	size_t klen = classify_normalize(sql, len, key, sizeof(key));
	struct verdict v = {.read_only = false, .wal = true, .session_ro = -1};

	if (klen == 0 || cl->n_buckets == 0)
		return;
	uint64_t h = classify_hash(key, klen);
	struct cache_entry *bucket = &cl->cache[(h % cl->n_buckets) * WAYS];
	for (int i = 0; i < WAYS; i++)
		if (bucket[i].used && bucket[i].hash == h && strcmp(bucket[i].key, key) == 0) {
			v = bucket[i].v; /* keep what else is known of it: pins, settings */
			v.read_only = false;
			v.wal = true;
		}
	cache_put(cl, bucket, key, h, &v);
	for (int i = 0; i < WAYS; i++)
		if (bucket[i].used && bucket[i].hash == h && strcmp(bucket[i].key, key) == 0)
			bucket[i].learned = true;
	cl->stats.learned++;
}

struct verdict classify_sql(struct classifier *cl, const char *sql, size_t len)
{
	len = strnlen(sql, len);
	char key[KEY_MAX];
	size_t klen = classify_normalize(sql, len, key, sizeof(key));
	uint8_t hint = find_hint(sql, len);
	struct cache_entry *bucket = NULL;
	uint64_t h = 0;
	struct verdict v;
	bool cacheable;

	if (klen > 0 && cl->n_buckets > 0) {
		h = classify_hash(key, klen);
		bucket = &cl->cache[(h % cl->n_buckets) * WAYS];
		for (int i = 0; i < WAYS; i++) {
			struct cache_entry *e = &bucket[i];
			if (e->used && e->hash == h && strcmp(e->key, key) == 0) {
				e->used = ++cl->tick;
				cl->stats.hits++;
				v = e->v;
				v.hint = hint;
				return v;
			}
		}
	}
	/* The parser wants a terminated string. */
	char *text = malloc(len + 1);
	if (text == NULL)
		return (struct verdict){
		    .read_only = false, .wal = true, .session_ro = -1, .hint = hint};
	memcpy(text, sql, len);
	text[len] = '\0';
	v = classify_parse(cl, text, &cacheable);
	free(text);
	v.hint = hint;
	if (bucket == NULL || !cacheable) {
		cl->stats.uncacheable++;
		return v;
	}
	cl->stats.misses++;
	cache_put(cl, bucket, key, h, &v);
	return v;
}
