/* classify: see include/classify.h. */
#include "classify.h"

#include <ctype.h>
#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KEY_MAX 2048 /* longer statements are classified but not cached */
#define NAME_MAX_LEN 64

/* ---- a set of lower-case names, open addressing ------------------------------------- */

struct name_set {
	char **slots;
	size_t cap; /* power of two */
	size_t n;
};

static uint64_t hash_bytes(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static void lower_copy(char *dst, const char *src, size_t cap)
{
	size_t i = 0;
	for (; src[i] && i + 1 < cap; i++)
		dst[i] = (char)tolower((unsigned char)src[i]);
	dst[i] = '\0';
}

static bool set_has(const struct name_set *s, const char *name)
{
	char low[NAME_MAX_LEN];

	if (s->cap == 0)
		return false;
	lower_copy(low, name, sizeof(low));
	for (size_t i = hash_bytes(low, strlen(low)) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
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
	lower_copy(low, name, sizeof(low));
	size_t i = hash_bytes(low, strlen(low)) & (s->cap - 1);
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

/* ---- the verdict cache: 4-way buckets, least recently used out --------------------- */

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
	struct name_set reads;     /* volatile but only read */
	struct name_set writes;    /* always primary */
	bool have_catalog;
	struct cache_entry *cache;
	size_t n_buckets;
	uint64_t tick;
	struct classify_stats stats;
};

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
		if (c == '\0')
			break;
		if (isspace((unsigned char)c)) {
			space = true;
			i++;
			continue;
		}
		if (c == '-' && i + 1 < len && sql[i + 1] == '-') {
			while (i < len && sql[i] != '\n')
				i++;
			space = true;
			continue;
		}
		if (c == '/' && i + 1 < len && sql[i + 1] == '*') {
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
			space = true;
			continue;
		}
		if (space && o > 0)
			EMIT(' ');
		space = false;
		/* string constants: '...', E'...', and $tag$...$tag$ */
		bool escapes = (c == 'E' || c == 'e') && i + 1 < len && sql[i + 1] == '\'' &&
		               (o == 0 || !ident_char(out[o - 1]));
		if (c == '\'' || escapes) {
			i += escapes ? 2 : 1;
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
			i++;
			EMIT('?');
			continue;
		}
		if (c == '$' && (o == 0 || !ident_char(out[o - 1]))) {
			size_t t = i + 1;
			while (t < len && (isalnum((unsigned char)sql[t]) || sql[t] == '_'))
				t++;
			if (t < len && sql[t] == '$') {
				size_t taglen = t - i + 1;
				const char *tag = sql + i;
				size_t j = t + 1;
				while (j + taglen <= len && memcmp(sql + j, tag, taglen) != 0)
					j++;
				i = j + taglen;
				EMIT('?');
				continue;
			}
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
		if (isdigit((unsigned char)c) && (o == 0 || !ident_char(out[o - 1]))) {
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

/* ---- the parse-tree walk ------------------------------------------------------------ */

struct walk {
	struct classifier *cl;
	bool writes;
	bool restore;     /* may change settings the pooler cannot see */
	bool uncacheable; /* the meaning hangs on a literal */
	uint8_t pins;
};

const char *classify_pin_name(int reason)
{
	static const char *const names[] = {
	    "none",          "temp table", "listen", "prepare", "with hold cursor",
	    "advisory lock", "set",        "role"};
	return reason >= 0 && reason < (int)ARRAY_LEN(names) ? names[reason] : "?";
}

/* Session-level advisory locks outlive the transaction (the _xact_ ones do not). */
static bool session_advisory(const char *name)
{
	return strncasecmp(name, "pg_advisory_lock", 16) == 0 ||
	       strncasecmp(name, "pg_try_advisory_lock", 20) == 0;
}

/* Parameters the server reports with ParameterStatus: the pooler carries their values
 * from server to server, so setting them needs no pin. */
static bool carried_param(const char *name)
{
	static const char *const names[] = {"application_name",
	                                    "client_encoding",
	                                    "datestyle",
	                                    "default_transaction_read_only",
	                                    "intervalstyle",
	                                    "timezone",
	                                    "standard_conforming_strings"};
	for (size_t i = 0; i < ARRAY_LEN(names); i++)
		if (strcasecmp(names[i], name) == 0)
			return true;
	return false;
}

/* ---- settings changed without SET ---------------------------------------------------- */

static bool word_char(char c)
{
	return isalnum((unsigned char)c) || c == '_';
}

/* Whether procedural code (a DO body) may change settings: it calls set_config or a
 * function the catalog knows to change them, or has a SET / RESET statement (the word at
 * the start of the text, after ';' or a quote, or after BEGIN, THEN, ELSE or LOOP; an
 * UPDATE's SET follows a table name). Errs on the side of yes. The same rule, as a
 * regular expression, marks setters in the catalog query (node.c). */
static bool code_sets(struct classifier *cl, const char *src)
{
	char prev_word[16] = "";
	char prev_char = ';';

	for (const char *p = src; *p;) {
		if (!word_char(*p)) {
			if (!isspace((unsigned char)*p))
				prev_char = *p, prev_word[0] = '\0';
			p++;
			continue;
		}
		const char *start = p;
		while (word_char(*p))
			p++;
		size_t len = (size_t)(p - start);
		char word[NAME_MAX_LEN];
		lower_copy(word, start, len + 1 < sizeof(word) ? len + 1 : sizeof(word));
		bool at_start = prev_char == ';' || prev_char == '\'' || !strcmp(prev_word, "begin") ||
		                !strcmp(prev_word, "then") || !strcmp(prev_word, "else") ||
		                !strcmp(prev_word, "loop");
		if (((!strcmp(word, "set") || !strcmp(word, "reset")) && at_start) ||
		    !strcmp(word, "set_config") || set_has(&cl->setters, word))
			return true;
		util_strlcpy(prev_word, word, sizeof(prev_word));
		prev_char = 'a';
	}
	return false;
}

static const char *const_string(const PgQuery__Node *n)
{
	if (n == NULL || n->node_case != PG_QUERY__NODE__NODE_A_CONST ||
	    n->a_const->val_case != PG_QUERY__A__CONST__VAL_SVAL || n->a_const->sval == NULL)
		return NULL;
	return n->a_const->sval->sval;
}

static int const_bool(const PgQuery__Node *n);
static bool carried_param(const char *name);

/* What a function call does to the session's settings: set_config(name, value, false)
 * of a setting the server does not report, or a function whose body changes settings,
 * pins; a function the catalog does not know yet (or before the catalog arrives) may, so
 * its server is restored afterwards. Built-ins the pooler knows by name change nothing. */
static void function_settings(struct walk *w, const PgQuery__FuncCall *f, const char *name)
{
	struct classifier *cl = w->cl;

	if (strcasecmp(name, "set_config") == 0) {
		w->uncacheable = true;
		const char *setting = f->n_args == 3 ? const_string(f->args[0]) : NULL;
		if (f->n_args == 3 && const_bool(f->args[2]) == 1)
			return; /* is_local: ends with the transaction */
		if (setting != NULL && carried_param(setting))
			return; /* reported with ParameterStatus, carried like SET */
		w->pins = PIN_SET;
		return;
	}
	if (set_has(&cl->setters, name)) {
		w->pins = PIN_SET;
		return;
	}
	if (set_has(&cl->reads, name) || set_has(&cl->writes, name))
		return;
	if (!cl->have_catalog || !set_has(&cl->catalog, name))
		w->restore = true;
}

static bool function_writes(struct classifier *cl, const PgQuery__FuncCall *f)
{
	if (f->n_funcname == 0)
		return true;
	const PgQuery__Node *last = f->funcname[f->n_funcname - 1];
	if (last->node_case != PG_QUERY__NODE__NODE_STRING || last->string == NULL)
		return true;
	const char *name = last->string->sval;
	if (set_has(&cl->writes, name))
		return true;
	if (set_has(&cl->reads, name))
		return false;
	if (!cl->have_catalog || !set_has(&cl->catalog, name))
		return true; /* unknown: unsure means primary */
	return set_has(&cl->volatile_, name);
}

/* Visit every message below m through protobuf-c's reflection, so that no node type can
 * hide a write from us. */
static void walk(struct walk *w, const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d;

	if (m == NULL)
		return;
	d = m->descriptor;
	if (d == &pg_query__range_var__descriptor) {
		const PgQuery__RangeVar *rv = (const PgQuery__RangeVar *)m;
		if (rv->relpersistence && rv->relpersistence[0] == 't')
			w->pins = PIN_TEMP_TABLE;
		return;
	}
	if (d == &pg_query__func_call__descriptor) {
		const PgQuery__FuncCall *f = (const PgQuery__FuncCall *)m;
		const PgQuery__Node *last = f->n_funcname ? f->funcname[f->n_funcname - 1] : NULL;
		if (last && last->node_case == PG_QUERY__NODE__NODE_STRING && last->string) {
			if (session_advisory(last->string->sval))
				w->pins = PIN_ADVISORY_LOCK;
			else
				function_settings(w, f, last->string->sval);
		} else {
			w->restore = true;
		}
	}
	if (d == &pg_query__insert_stmt__descriptor || d == &pg_query__update_stmt__descriptor ||
	    d == &pg_query__delete_stmt__descriptor || d == &pg_query__merge_stmt__descriptor ||
	    d == &pg_query__into_clause__descriptor || d == &pg_query__locking_clause__descriptor)
		w->writes = true;
	if (d == &pg_query__func_call__descriptor && !w->writes &&
	    function_writes(w->cl, (const PgQuery__FuncCall *)m))
		w->writes = true;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *base = (const char *)m;
		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + f->quantifier_offset);
			ProtobufCMessage *const *items =
			    *(ProtobufCMessage *const **)(base + f->offset);
			for (size_t k = 0; k < n; k++)
				walk(w, items[k]);
			continue;
		}
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(const uint32_t *)(base + f->quantifier_offset) != f->id)
			continue;
		walk(w, *(ProtobufCMessage *const *)(base + f->offset));
	}
}

/* "on", "true", 1 ... as PostgreSQL reads a boolean setting; -1 when not a boolean. */
static int const_bool(const PgQuery__Node *n)
{
	if (n == NULL || n->node_case != PG_QUERY__NODE__NODE_A_CONST)
		return -1;
	const PgQuery__AConst *c = n->a_const;
	if (c->val_case == PG_QUERY__A__CONST__VAL_IVAL)
		return c->ival ? c->ival->ival != 0 : 0;
	if (c->val_case == PG_QUERY__A__CONST__VAL_BOOLVAL)
		return c->boolval ? c->boolval->boolval : 0;
	if (c->val_case != PG_QUERY__A__CONST__VAL_SVAL || c->sval == NULL)
		return -1;
	const char *s = c->sval->sval;
	if (!strcasecmp(s, "on") || !strcasecmp(s, "true") || !strcasecmp(s, "yes") ||
	    !strcmp(s, "1") || !strcasecmp(s, "t") || !strcasecmp(s, "y"))
		return 1;
	if (!strcasecmp(s, "off") || !strcasecmp(s, "false") || !strcasecmp(s, "no") ||
	    !strcmp(s, "0") || !strcasecmp(s, "f") || !strcasecmp(s, "n"))
		return 0;
	return -1;
}

/* transaction_read_only / transaction_read_write in a list of DefElem options. */
static int read_only_option(PgQuery__Node **opts, size_t n)
{
	int ro = -1;
	for (size_t i = 0; i < n; i++) {
		if (opts[i]->node_case != PG_QUERY__NODE__NODE_DEF_ELEM)
			continue;
		const PgQuery__DefElem *e = opts[i]->def_elem;
		if (e->defname && strcmp(e->defname, "transaction_read_only") == 0) {
			int b = const_bool(e->arg);
			ro = b < 0 ? 1 : b;
		}
	}
	return ro;
}

/* Whether SET SESSION CHARACTERISTICS names nothing but READ ONLY / READ WRITE, which the
 * pooler carries as default_transaction_read_only. */
static bool only_read_only_option(PgQuery__Node **opts, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (opts[i]->node_case != PG_QUERY__NODE__NODE_DEF_ELEM ||
		    opts[i]->def_elem->defname == NULL ||
		    strcmp(opts[i]->def_elem->defname, "transaction_read_only") != 0)
			return false;
	return true;
}

static bool classify_kind(struct classifier *cl, const PgQuery__Node *n, const struct walk *w,
                          struct verdict *v);

/* One top-level statement: update v; returns false for a statement that is not cacheable. */
static bool classify_stmt(struct classifier *cl, const PgQuery__Node *n, struct verdict *v)
{
	struct walk w = {.cl = cl, .pins = PIN_NONE};

	/* any statement may leave session state behind */
	walk(&w, &n->base);
	if (w.pins != PIN_NONE)
		v->pins = w.pins;
	if (w.restore)
		v->restore = true;
	return classify_kind(cl, n, &w, v) && !w.uncacheable;
}

/* What the statement's kind says, given what the walk found below it. */
static bool classify_kind(struct classifier *cl, const PgQuery__Node *n, const struct walk *w,
                          struct verdict *v)
{
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_DO_STMT:
		/* Procedural code may change anything: the server is restored afterwards, and
		 * code that visibly sets something keeps the client on it, as SET does. */
		v->read_only = false;
		v->wal = true;
		v->restore = true;
		for (size_t i = 0; i < n->do_stmt->n_args; i++) {
			const PgQuery__Node *a = n->do_stmt->args[i];
			if (a->node_case == PG_QUERY__NODE__NODE_DEF_ELEM && a->def_elem->defname &&
			    strcmp(a->def_elem->defname, "as") == 0 && a->def_elem->arg &&
			    a->def_elem->arg->node_case == PG_QUERY__NODE__NODE_STRING &&
			    code_sets(cl, a->def_elem->arg->string->sval))
				v->pins = PIN_SET;
		}
		return false; /* the body is a literal */
	case PG_QUERY__NODE__NODE_DISCARD_STMT:
		v->read_only = false;
		if (n->discard_stmt->target == PG_QUERY__DISCARD_MODE__DISCARD_ALL) {
			v->resets = RESETS_ALL;
			v->session_ro = 0;
		}
		return true;
	case PG_QUERY__NODE__NODE_LISTEN_STMT:
		v->pins = PIN_LISTEN;
		v->read_only = false;
		return true;
	case PG_QUERY__NODE__NODE_PREPARE_STMT:
		v->pins = PIN_PREPARE;
		v->read_only = false;
		return true;
	case PG_QUERY__NODE__NODE_DECLARE_CURSOR_STMT:
		if (n->declare_cursor_stmt->options &
		    0x0020) /* CURSOR_OPT_HOLD in PostgreSQL 14+ */
			v->pins = PIN_HOLD_CURSOR;
		v->read_only = false;
		v->wal = v->wal || w->writes; /* FOR UPDATE locks rows */
		return true;
	case PG_QUERY__NODE__NODE_SELECT_STMT:
	case PG_QUERY__NODE__NODE_EXPLAIN_STMT:
	case PG_QUERY__NODE__NODE_VARIABLE_SHOW_STMT:
		if (w->writes)
			v->read_only = false, v->wal = true;
		return true;
	case PG_QUERY__NODE__NODE_TRANSACTION_STMT: {
		const PgQuery__TransactionStmt *t = n->transaction_stmt;
		switch (t->kind) {
		case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_BEGIN:
		case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_START:
			v->begin = true;
			if (read_only_option(t->options, t->n_options) == 1)
				v->begin_read_only = true;
			else
				v->read_only = false; /* decided by the session below, if at all */
			return true;
		case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_COMMIT:
		case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK:
			v->ends = true;
			return true;
		case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_SAVEPOINT:
		case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_RELEASE:
		case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK_TO:
			return true;
		default:
			v->read_only = false; /* PREPARE TRANSACTION, COMMIT PREPARED ... */
			v->wal = true;
			return true;
		}
	}
	case PG_QUERY__NODE__NODE_VARIABLE_SET_STMT: {
		const PgQuery__VariableSetStmt *s = n->variable_set_stmt;
		const char *name = s->name ? s->name : "";
		if (s->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_SET_MULTI &&
		    strcmp(name, "TRANSACTION") == 0)
			return false; /* SET TRANSACTION ...: inside a transaction, changes nothing
			               */
		v->read_only = false;
		if (s->is_local)
			return false;
		if (strcasecmp(name, "role") == 0 || strcasecmp(name, "session_authorization") == 0)
			v->pins = PIN_ROLE;
		else if ((s->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_SET_VALUE ||
		          s->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_SET_CURRENT) &&
		         !carried_param(name))
			v->pins = PIN_SET;
		else if (s->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_SET_MULTI &&
		         strcmp(name, "SESSION CHARACTERISTICS") == 0 &&
		         !only_read_only_option(s->args, s->n_args))
			v->pins = PIN_SET; /* the isolation level or deferrable of later transactions */
		if ((s->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_RESET ||
		     s->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_SET_DEFAULT) &&
		    v->resets == RESETS_NONE)
			v->resets = RESETS_NAMED;
		if (s->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_RESET_ALL) {
			v->resets = RESETS_ALL;
			v->session_ro = 0;
		} else if (strcmp(name, "default_transaction_read_only") == 0) {
			if (s->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_SET_VALUE && s->n_args == 1)
				v->session_ro = (int8_t)(const_bool(s->args[0]) == 1);
			else
				v->session_ro = 0; /* DEFAULT / RESET */
		} else if (s->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_SET_MULTI &&
		           strcmp(name, "SESSION CHARACTERISTICS") == 0) {
			int ro = read_only_option(s->args, s->n_args);
			if (ro >= 0)
				v->session_ro = (int8_t)ro;
		}
		return false; /* the meaning hangs on a literal */
	}
	default:
		v->read_only = false;
		v->wal = true;
		return true;
	}
}

static struct verdict parse_verdict(struct classifier *cl, const char *sql, bool *cacheable)
{
	struct verdict v = {.read_only = true, .session_ro = -1};
	PgQueryProtobufParseResult r = pg_query_parse_protobuf(sql);

	*cacheable = true;
	if (r.error != NULL) {
		/* not cached: a broken text can share its key with a valid one */
		*cacheable = false;
		v.read_only = false;
		v.wal = true;
		v.parse_error = true;
		pg_query_free_protobuf_parse_result(r);
		return v;
	}
	PgQuery__ParseResult *tree = pg_query__parse_result__unpack(
	    NULL, r.parse_tree.len, (const uint8_t *)r.parse_tree.data);
	pg_query_free_protobuf_parse_result(r);
	if (tree == NULL) {
		v.read_only = false;
		v.wal = true;
		return v;
	}
	if (tree->n_stmts == 0)
		v.read_only = false;
	for (size_t i = 0; i < tree->n_stmts; i++)
		if (tree->stmts[i]->stmt == NULL || !classify_stmt(cl, tree->stmts[i]->stmt, &v))
			*cacheable = false;
	pg_query__parse_result__free_unpacked(tree, NULL);
	return v;
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

void classify_reset_names(const char *sql, size_t len, void (*fn)(void *arg, const char *name),
                          void *arg)
{
	size_t n = strnlen(sql, len);
	char *text = malloc(n + 1);
	PgQuery__ParseResult *tree = NULL;

	if (text == NULL)
		return;
	memcpy(text, sql, n);
	text[n] = '\0';
	PgQueryProtobufParseResult r = pg_query_parse_protobuf(text);
	free(text);
	if (r.error == NULL)
		tree = pg_query__parse_result__unpack(NULL, r.parse_tree.len,
		                                      (const uint8_t *)r.parse_tree.data);
	pg_query_free_protobuf_parse_result(r);
	if (tree == NULL)
		return;
	for (size_t i = 0; i < tree->n_stmts; i++) {
		const PgQuery__Node *st = tree->stmts[i]->stmt;
		if (st == NULL || st->node_case != PG_QUERY__NODE__NODE_VARIABLE_SET_STMT)
			continue;
		const PgQuery__VariableSetStmt *s = st->variable_set_stmt;
		if (!s->is_local && s->name != NULL &&
		    (s->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_RESET ||
		     s->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_SET_DEFAULT))
			fn(arg, s->name);
	}
	pg_query__parse_result__free_unpacked(tree, NULL);
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
	uint64_t h = hash_bytes(key, klen);
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
		h = hash_bytes(key, klen);
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
		return (struct verdict){.read_only = false, .wal = true, .session_ro = -1, .hint = hint};
	memcpy(text, sql, len);
	text[len] = '\0';
	v = parse_verdict(cl, text, &cacheable);
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
