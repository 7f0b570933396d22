/* admin: see include/admin.h. This file holds the command table, dispatch and the
 * commands that change things; the views are in admin_show.c and admin_sockets.c. */
#include "admin.h"

#include <assert.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin_internal.h"
#include "client.h"
#include "config.h"
#include "log.h"
#include "node.h"
#include "pool.h"
#include "proto.h"

static void complete(struct buf *out, const char *tag)
{
	size_t m = proto_begin(out, 'C');
	buf_put_str(out, tag);
	proto_end(out, m);
}

/* ---- lists of database names kept on the worker (paused_dbs, disabled_dbs) ---------- */

static bool keep_other(const char *name, void *arg)
{
	char **pair = arg; /* the list being built, the name to drop */
	if (strcmp(name, pair[1]) == 0)
		return true;
	size_t n = pair[0] ? strlen(pair[0]) : 0;
	char *grown = realloc(pair[0], n + strlen(name) + 2);
	if (grown == NULL)
		abort();
	snprintf(grown + n, strlen(name) + 2, "%s%s", n ? "," : "", name);
	pair[0] = grown;
	return true;
}

/* Add name to a comma-separated list, or take it out (add false). */
static void list_mark(char **list, const char *name, bool add)
{
	char *pair[2] = {NULL, (char *)name};
	if (*list != NULL)
		util_split(*list, keep_other, pair);
	if (add) {
		pair[1] = ""; /* drops nothing */
		keep_other(name, pair);
	}
	free(*list);
	*list = pair[0];
}

void admin_free(struct worker *w)
{
	free(w->paused_dbs);
	free(w->disabled_dbs);
	free(w->sets);
	w->paused_dbs = w->disabled_dbs = w->sets = NULL;
}

bool admin_db_disabled(const struct worker *w, const char *db)
{
	/* worker 0's list: only admin commands (in world sections) change it */
	return config_list_has(worker_main(w)->disabled_dbs, db);
}

/* ---- commands that change things ---------------------------------------------------- */

/* Who runs a command, for the log line that records it. */
static void log_action(const struct admin_caller *who, const char *verb, const char *arg)
{
	log_info("c=%llu user=%s addr=%s admin command: %s%s%s", (unsigned long long)who->id,
	         who->user, who->addr, verb, arg[0] ? " " : "", arg);
}

/* A command naming a database must name one that exists (empty: every database, where
 * the command allows it). False, with the error written, otherwise. */
static bool known_db(struct worker *w, const char *verb, const char *db, bool may_be_empty,
                     struct buf *out)
{
	char msg[160];

	if (db[0] == '\0' && may_be_empty)
		return true;
	if (db[0] == '\0') {
		snprintf(msg, sizeof(msg), "%s needs a database name", verb);
		proto_write_error(out, "ERROR", "42601", msg);
		return false;
	}
	if (config_find_db(w->cfg, db) != NULL)
		return true;
	snprintf(msg, sizeof(msg), "no such database: %s", db);
	proto_write_error(out, "ERROR", SQLSTATE_UNKNOWN_DATABASE, msg);
	return false;
}

/* Apply fn to the pools of db (all pools when db is empty); returns how many. */
static int each_pool(struct worker *w, const char *db, void (*fn)(struct pool *p))
{
	struct pool *p, *next;
	int n = 0;
	for (p = pool_next(w, NULL); p != NULL; p = next) {
		next = pool_next(w, p);
		if (db[0] == '\0' || strcmp(p->db_name, db) == 0) {
			fn(p);
			n++;
		}
	}
	return n;
}

/* What a command that answers later waits for: 'P' busy servers (PAUSE), 'W' servers a
 * RECONNECT asked to close (WAIT_CLOSE); then the database, empty for all. */
static int waiting_for(struct worker *w, const char *wait)
{
	struct list *sp;
	const char *db = wait + 1;
	int n = 0;

	for (const struct pool *p = pool_next(w, NULL); p != NULL; p = pool_next(w, p)) {
		if (db[0] != '\0' && strcmp(p->db_name, db) != 0)
			continue;
		if (wait[0] == 'W')
			n += pool_old_servers(p);
		else
			for (sp = p->active.next; sp != &p->active; sp = sp->next)
				n++;
	}
	return n;
}

static const char *wait_tag(const char *wait)
{
	return wait[0] == 'W' ? "WAIT_CLOSE" : "PAUSE";
}

/* Answer now when nothing is left to wait for, else hand the caller what to poll. */
static bool answer_when_done(struct worker *w, char kind, const char *db, struct buf *out,
                             char **wait)
{
	char *what = util_calloc(1, strlen(db) + 2);
	what[0] = kind;
	strcpy(what + 1, db);
	if (admin_poll(w, what, out)) {
		free(what);
		return true;
	}
	*wait = what;
	return false;
}

bool admin_poll(struct worker *w, const char *wait, struct buf *out)
{
	worker_world_enter(w);
	int left = waiting_for(w, wait);
	worker_world_leave(w);
	if (left > 0)
		return false;
	complete(out, wait_tag(wait));
	return true;
}

/* As PgBouncer's: new transactions queue at once; the answer comes when the running ones
 * have given their servers back, so that after PAUSE the servers are quiet. */
static bool cmd_pause(struct worker *w, const char *arg, struct buf *out, char **wait)
{
	if (!known_db(w, "PAUSE", arg, true, out))
		return true;
	each_pool(w, arg, pool_pause);
	if (arg[0] == '\0')
		w->paused_all = true;
	else
		list_mark(&w->paused_dbs, arg, true);
	return answer_when_done(w, 'P', arg, out, wait);
}

/* WAIT_CLOSE: answers once the servers a RECONNECT asked to close are gone. */
static bool cmd_wait_close(struct worker *w, const char *arg, struct buf *out, char **wait)
{
	if (!known_db(w, "WAIT_CLOSE", arg, true, out))
		return true;
	return answer_when_done(w, 'W', arg, out, wait);
}

static void cmd_resume(struct worker *w, const char *arg, struct buf *out)
{
	if (!known_db(w, "RESUME", arg, true, out))
		return;
	if (arg[0] == '\0') {
		w->paused_all = false;
		free(w->paused_dbs);
		w->paused_dbs = NULL;
	} else {
		list_mark(&w->paused_dbs, arg, false);
	}
	each_pool(w, arg, pool_resume);
	complete(out, "RESUME");
}

/* As PgBouncer's: the database's clients and idle servers go, and it stays paused (new
 * clients may connect, their transactions queue) until RESUME. */
static void cmd_kill(struct worker *w, const char *arg, struct buf *out)
{
	if (!known_db(w, "KILL", arg, false, out))
		return;
	int n = client_kill_db(w, arg);
	each_pool(w, arg, pool_pause);
	each_pool(w, arg, pool_close_idle);
	list_mark(&w->paused_dbs, arg, true);
	log_info("KILL %s: %d clients closed; paused until RESUME", arg, n);
	complete(out, "KILL");
}

/* KILL_CLIENT id: the id as SHOW CLIENTS shows it (its id column, or ptr in hex). */
static void cmd_kill_client(struct worker *w, const char *arg, struct buf *out)
{
	char *end;
	int base = strncasecmp(arg, "0x", 2) == 0 ? 16 : 10;
	uint64_t id = strtoull(arg, &end, base);

	if (arg[0] == '\0' || *end != '\0') {
		proto_write_error(out, "ERROR", "42601",
		                  "KILL_CLIENT needs a client id (SHOW CLIENTS)");
		return;
	}
	if (!client_kill_id(w, id)) {
		proto_write_error(out, "ERROR", "42704", "no such client");
		return;
	}
	complete(out, "KILL_CLIENT");
}

static void cmd_reconnect(struct worker *w, const char *arg, struct buf *out)
{
	if (!known_db(w, "RECONNECT", arg, true, out))
		return;
	each_pool(w, arg, pool_reconnect);
	complete(out, "RECONNECT");
}

/* DISABLE: new clients of the database are refused; those connected stay. */
static void cmd_disable(struct worker *w, const char *arg, struct buf *out)
{
	if (!known_db(w, "DISABLE", arg, false, out))
		return;
	list_mark(&w->disabled_dbs, arg, true);
	complete(out, "DISABLE");
}

static void cmd_enable(struct worker *w, const char *arg, struct buf *out)
{
	if (!known_db(w, "ENABLE", arg, false, out))
		return;
	list_mark(&w->disabled_dbs, arg, false);
	complete(out, "ENABLE");
}

/* Online restart (handing sockets to a new process) is not offered. */
static void cmd_suspend(struct worker *w, const char *arg, struct buf *out)
{
	(void)w;
	(void)arg;
	proto_write_error(out, "ERROR", SQLSTATE_FEATURE_NOT_SUPPORTED,
	                  "SUSPEND is not supported: the pooler has no online restart");
}

/* "key = value" of SET: value bare, or in single quotes ('' for a quote). False when the
 * text is not of that shape. */
static bool parse_set(char *arg, char **key, char **value)
{
	char *eq = strchr(arg, '=');
	if (eq == NULL)
		return false;
	*eq = '\0';
	*key = util_trim(arg);
	char *v = util_trim(eq + 1);
	size_t n = strlen(v);
	while (n > 0 && v[n - 1] == ';')
		v[--n] = '\0';
	v = util_trim(v);
	n = strlen(v);
	if (n >= 2 && v[0] == '\'' && v[n - 1] == '\'') {
		v[n - 1] = '\0';
		char *w = ++v;
		for (char *r = v; *r; r++, w++) {
			if (r[0] == '\'' && r[1] == '\'')
				r++;
			*w = *r;
		}
		*w = '\0';
	}
	*value = v;
	return (*key)[0] != '\0' && strchr(*value, '\n') == NULL;
}

/* The SET lines with key's replaced by key=value (malloc'd). */
static char *sets_with(const char *sets, const char *key, const char *value)
{
	size_t klen = strlen(key), cap = (sets ? strlen(sets) : 0) + klen + strlen(value) + 3;
	char *out = util_calloc(1, cap);
	const char *line = sets;

	while (line != NULL && *line) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		if (!(len > klen && strncmp(line, key, klen) == 0 && line[klen] == '=')) {
			strncat(out, line, len);
			strcat(out, "\n");
		}
		line = end ? end + 1 : NULL;
	}
	snprintf(out + strlen(out), cap - strlen(out), "%s=%s\n", key, value);
	return out;
}

/* SET key = value: a [pooler] key that RELOAD can change takes value, over the ini, until
 * the pooler stops (a RELOAD keeps it). Applied as a reload is, so a bad value changes
 * nothing and says why. */
static void cmd_set(struct worker *w, const char *arg, const struct admin_caller *who,
                    struct buf *out)
{
	char text[1024], err[512], msg[600];
	char *key, *value;

	snprintf(text, sizeof(text), "%s", arg);
	if (!parse_set(text, &key, &value)) {
		proto_write_error(out, "ERROR", "42601", "SET needs key = value");
		return;
	}
	if (!config_key_changeable(key)) {
		snprintf(msg, sizeof(msg),
		         "SET %s: not a [pooler] key that can change while running "
		         "(SHOW CONFIG's changeable column)",
		         key);
		proto_write_error(out, "ERROR", "55000", msg);
		return;
	}
	snprintf(msg, sizeof(msg), "%s = %s", key, value);
	log_action(who, "SET", msg);
	char *old = w->sets;
	w->sets = sets_with(old, key, value);
	if (w->on_reload == NULL || !w->on_reload(w, err, sizeof(err))) {
		free(w->sets);
		w->sets = old;
		snprintf(msg, sizeof(msg), "SET failed: %s", w->on_reload ? err : "unavailable");
		proto_write_error(out, "ERROR", "22023", msg);
		return;
	}
	free(old);
	complete(out, "SET");
}

static void cmd_reload(struct worker *w, const char *arg, struct buf *out)
{
	char err[512];
	(void)arg;
	if (w->on_reload == NULL || !w->on_reload(w, err, sizeof(err))) {
		proto_write_error(out, "ERROR", "F0000", w->on_reload ? err : "reload unavailable");
		return;
	}
	complete(out, "RELOAD");
}

static void cmd_shutdown(struct worker *w, const char *arg, struct buf *out)
{
	(void)arg;
	complete(out, "SHUTDOWN");
	w->shutdown_requested = true; /* after this answer has gone out */
}

/* ---- the table ---------------------------------------------------------------------- */

struct command {
	const char *verb;
	void (*act)(struct worker *w, const char *arg, struct buf *out);
	bool (*act_later)(struct worker *w, const char *arg, struct buf *out, char **wait);
	/* SET: takes the rest of the line, and logs itself once it knows the key is no
	 * secret */
	void (*act_rest)(struct worker *w, const char *arg, const struct admin_caller *who,
	                 struct buf *out);
	const char *help;
};

static const struct command commands[] = {
    {"PAUSE", NULL, cmd_pause, NULL,
     "[db] hand out no servers until RESUME; answers when running transactions ended"},
    {"RESUME", cmd_resume, NULL, NULL, "[db] undo PAUSE or KILL"},
    {"KILL", cmd_kill, NULL, NULL, "db: drop its clients and idle servers; paused until RESUME"},
    {"KILL_CLIENT", cmd_kill_client, NULL, NULL, "id: drop one client (SHOW CLIENTS' id)"},
    {"RECONNECT", cmd_reconnect, NULL, NULL,
     "[db] close servers once free, so that clients get new ones"},
    {"WAIT_CLOSE", NULL, cmd_wait_close, NULL,
     "[db] answer once the servers RECONNECT closes are gone"},
    {"DISABLE", cmd_disable, NULL, NULL, "db: refuse new clients of it"},
    {"ENABLE", cmd_enable, NULL, NULL, "db: undo DISABLE"},
    {"RELOAD", cmd_reload, NULL, NULL, "re-read the config and auth file"},
    {"SET", NULL, NULL, cmd_set,
     "key = value: a changeable [pooler] key, over the ini file, until the pooler stops"},
    {"SUSPEND", cmd_suspend, NULL, NULL, "not supported: no online restart"},
    {"SHUTDOWN", cmd_shutdown, NULL, NULL, "finish transactions, then exit"},
};

/* The SHOW views of both view tables, in order. */
static const struct admin_view *view_at(int i)
{
	if (i < admin_show_n_views)
		return &admin_show_views[i];
	i -= admin_show_n_views;
	return i < admin_socket_n_views ? &admin_socket_views[i] : NULL;
}

static void help_row(struct result *r, const char *verb, const char *object, const char *help)
{
	char name[64];
	snprintf(name, sizeof(name), "%s%s%s", verb, object ? " " : "", object ? object : "");
	result_row(r);
	result_text(r, name);
	result_text(r, help);
	result_row_end(r);
}

void admin_show_help(struct worker *w, struct result *r)
{
	const struct admin_view *v;
	(void)w;
	for (int i = 0; (v = view_at(i)) != NULL; i++)
		help_row(r, "SHOW", v->name, v->help);
	for (size_t i = 0; i < ARRAY_LEN(commands); i++)
		help_row(r, commands[i].verb, NULL, commands[i].help);
}

/* Next word (letters, digits, _ . -) of s into word, upper-cased when upper. */
static const char *next_word(const char *s, char *word, size_t cap, bool upper)
{
	size_t n = 0;
	while (isspace((unsigned char)*s))
		s++;
	while (*s && (isalnum((unsigned char)*s) || *s == '_' || *s == '.' || *s == '-')) {
		if (n + 1 < cap)
			word[n++] = upper ? (char)toupper((unsigned char)*s) : *s;
		s++;
	}
	word[n] = '\0';
	return s;
}

/* One optional argument, then nothing but spaces and semicolons. False (with the error
 * written) when more follows. */
static bool read_arg(const char *p, char *arg, size_t cap, struct buf *out)
{
	p = next_word(p, arg, cap, false);
	while (isspace((unsigned char)*p) || *p == ';')
		p++;
	if (*p == '\0')
		return true;
	proto_write_error(out, "ERROR", "42601", "unexpected text after the command");
	return false;
}

static void run_show(struct worker *w, const char *p, struct buf *out)
{
	char object[64], arg[128];
	const struct admin_view *v = NULL;
	struct result r;

	p = next_word(p, object, sizeof(object), true);
	for (int i = 0; v == NULL && view_at(i) != NULL; i++)
		if (strcmp(view_at(i)->name, object) == 0)
			v = view_at(i);
	if (v == NULL) {
		proto_write_error(out, "ERROR", "42601",
		                  "unknown admin command; SHOW HELP lists them");
		return;
	}
	if (!read_arg(p, arg, sizeof(arg), out))
		return;
	if (arg[0] != '\0' && v->show_arg == NULL) {
		proto_write_error(out, "ERROR", "42601", "this SHOW takes no argument");
		return;
	}
	result_begin(&r, out, v->cols, v->n_cols);
	if (v->show_arg != NULL)
		v->show_arg(w, &r, arg);
	else
		v->show(w, &r);
	complete(out, "SHOW");
}

static bool run_command(struct worker *w, const struct command *c, const char *p,
                        const struct admin_caller *who, struct buf *out, char **wait)
{
	char arg[1024];

	if (c->act_rest != NULL) {
		snprintf(arg, sizeof(arg), "%s", p);
	} else if (!read_arg(p, arg, sizeof(arg), out)) {
		return true;
	}
	if (!who->may_change) {
		proto_write_error(out, "ERROR", "42501", "only admin_users may run this command");
		return true;
	}
	if (c->act_rest != NULL) {
		c->act_rest(w, arg, who, out);
		return true;
	}
	log_action(who, c->verb, arg);
	if (c->act_later != NULL)
		return c->act_later(w, arg, out, wait);
	c->act(w, arg, out);
	return true;
}

static bool run_sql(struct worker *w, const char *sql, const struct admin_caller *who,
                    struct buf *out, char **wait);

/* The console runs on worker 0 (client_login.c moves its clients there), each command in a
 * world section: what it shows adds up every worker's, what it changes changes for all. */
bool admin_run(struct worker *w, const char *sql, const struct admin_caller *who, struct buf *out,
               char **wait)
{
	bool done;

	assert(w->index == 0);
	worker_world_enter(w);
	for (int i = 0; i < w->n_nodes; i++)
		node_sum(w->nodes[i]);
	done = run_sql(w, sql, who, out, wait);
	worker_world_leave(w);
	return done;
}

static bool run_sql(struct worker *w, const char *sql, const struct admin_caller *who,
                    struct buf *out, char **wait)
{
	char verb[32];
	const char *p = next_word(sql, verb, sizeof(verb), true);

	if (verb[0] == '\0') {
		size_t m = proto_begin(out, 'I'); /* EmptyQueryResponse */
		proto_end(out, m);
		return true;
	}
	if (strcmp(verb, "SHOW") == 0) {
		run_show(w, p, out);
		return true;
	}
	for (size_t i = 0; i < ARRAY_LEN(commands); i++)
		if (strcmp(commands[i].verb, verb) == 0)
			return run_command(w, &commands[i], p, who, out, wait);
	proto_write_error(out, "ERROR", "42601", "unknown admin command; SHOW HELP lists them");
	return true;
}
