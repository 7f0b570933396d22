/* classify_tree: the walk over PostgreSQL's parse tree (libpg_query) that gives a
 * statement's verdict: reads or writes, session state, settings. See classify_internal.h. */
#include "classify_internal.h"

#include <ctype.h>
#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- the parse-tree walk ------------------------------------------------------------ */

struct walk {
	struct classifier *cl;
	bool writes;
	bool standby_unsafe; /* reads a relation a standby cannot read (unlogged) */
	bool restore;        /* may change settings the pooler cannot see */
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
	return classify_param(name, NULL) == PARAM_REPORTED;
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
		classify_lower(word, start, len + 1 < sizeof(word) ? len + 1 : sizeof(word));
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
		else if (rv->relname && set_has(&w->cl->unlogged, rv->relname))
			w->standby_unsafe = true;
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

/* ISOLATION LEVEL SERIALIZABLE in a list of DefElem options: a hot standby refuses it
 * (0A000), so such a transaction runs on the primary even when READ ONLY. */
static bool serializable_option(PgQuery__Node **opts, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (opts[i]->node_case != PG_QUERY__NODE__NODE_DEF_ELEM)
			continue;
		const PgQuery__DefElem *e = opts[i]->def_elem;
		const char *level = const_string(e->arg);
		if (e->defname && strcmp(e->defname, "transaction_isolation") == 0 && level != NULL &&
		    strcasecmp(level, "serializable") == 0)
			return true;
	}
	return false;
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

/* DO: procedural code may change anything, so the server is restored afterwards; code
 * that visibly sets something keeps the client on its server, as SET does. */
static void classify_do(struct classifier *cl, const PgQuery__DoStmt *d, struct verdict *v)
{
	v->read_only = false;
	v->wal = true;
	v->restore = true;
	for (size_t i = 0; i < d->n_args; i++) {
		const PgQuery__Node *a = d->args[i];
		if (a->node_case == PG_QUERY__NODE__NODE_DEF_ELEM && a->def_elem->defname &&
		    strcmp(a->def_elem->defname, "as") == 0 && a->def_elem->arg &&
		    a->def_elem->arg->node_case == PG_QUERY__NODE__NODE_STRING &&
		    code_sets(cl, a->def_elem->arg->string->sval))
			v->pins = PIN_SET;
	}
}

/* SET, RESET, SET SESSION CHARACTERISTICS ...: pins, RESETs, the read-only session.
 * Returns whether the verdict may be cached (never: it hangs on a literal). */
static bool classify_set(const PgQuery__VariableSetStmt *s, struct verdict *v)
{
	const char *name = s->name ? s->name : "";
	if (s->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_SET_MULTI &&
	    strcmp(name, "TRANSACTION") == 0) {
		if (serializable_option(s->args, s->n_args))
			v->read_only = false, v->serializable = true; /* a standby cannot run it */
		return false; /* SET TRANSACTION ...: inside a transaction, changes nothing */
	}
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
		classify_do(cl, n->do_stmt, v);
		return false; /* the body is a literal */
	case PG_QUERY__NODE__NODE_COPY_STMT: {
		/* COPY ... TO STDOUT only reads: a replica may run it (the query inside judged by
		 * the walk); FROM, or TO a server file or program, is the primary's */
		const PgQuery__CopyStmt *cp = n->copy_stmt;
		if (cp->is_from || cp->is_program || (cp->filename && cp->filename[0]) || w->writes)
			v->read_only = false, v->wal = true;
		return true;
	}
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
		else if (w->standby_unsafe)
			v->read_only = false; /* the primary, though nothing is written */
		return true;
	case PG_QUERY__NODE__NODE_TRANSACTION_STMT: {
		const PgQuery__TransactionStmt *t = n->transaction_stmt;
		switch (t->kind) {
		case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_BEGIN:
		case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_START:
			v->begin = true;
			if (serializable_option(t->options, t->n_options))
				v->read_only = false; /* a standby cannot run it */
			else if (read_only_option(t->options, t->n_options) == 1)
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
	case PG_QUERY__NODE__NODE_VARIABLE_SET_STMT:
		return classify_set(n->variable_set_stmt, v);
	default:
		v->read_only = false;
		v->wal = true;
		return true;
	}
}

struct verdict classify_parse(struct classifier *cl, const char *sql, bool *cacheable)
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

