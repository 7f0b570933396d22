/* classify: decide from SQL text whether a statement may run on a replica. Layer 2.
 *
 * The verdict comes from PostgreSQL's own parser (libpg_query); a fast lexer pass strips
 * literals, comments and spacing first, and that normalised text keys a bounded cache, so
 * a repeated statement shape costs one lexer pass and a hash lookup. "Unsure" always means
 * primary. */
#ifndef POOLER_CLASSIFY_H
#define POOLER_CLASSIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

enum route_hint { HINT_NONE, HINT_PRIMARY, HINT_REPLICA };

/* Session state a statement leaves on its server connection that the pooler cannot carry
 * to another one: the client must keep that server for the rest of its session. */
enum pin_reason {
	PIN_NONE,
	PIN_TEMP_TABLE,
	PIN_LISTEN,
	PIN_PREPARE,
	PIN_HOLD_CURSOR,
	PIN_ADVISORY_LOCK,
	PIN_SET,
	PIN_ROLE
};

const char *classify_pin_name(int reason);

/* What a batch does to settings the client set at login: RESET (or SET ... TO DEFAULT)
 * of some, or RESET ALL / DISCARD ALL of all. PostgreSQL brings back the login values;
 * behind the pooler the server would bring back its own, so the pooler restores the
 * client's right after. */
enum reset_kind { RESETS_NONE, RESETS_NAMED, RESETS_ALL };

struct verdict {
	bool read_only;       /* every statement only reads: a replica may run it */
	bool wal;             /* may write (WAL): moves the client's read-your-writes position;
	                       * SET, SHOW, LISTEN, BEGIN and the like do not */
	bool begin;           /* starts a transaction block (BEGIN / START TRANSACTION) */
	bool begin_read_only; /* ...declared READ ONLY */
	bool ends;            /* COMMIT / ROLLBACK / END / ABORT */
	bool parse_error;     /* the parser refused it: the server will say why */
	bool serializable;    /* asks for serializable isolation, which a standby cannot run */
	int8_t session_ro; /* -1 unchanged; 0 or 1: the session's default_transaction_read_only */
	uint8_t hint;      /* enum route_hint, from a leading pooler:primary|replica comment */
	uint8_t pins;      /* enum pin_reason */
	uint8_t resets;    /* enum reset_kind */
	bool restore; /* may change settings unseen (DO, CALL, a function not known to leave them
	               * alone): the server is restored before another client gets it */
};

struct classify_stats {
	uint64_t hits, misses, uncacheable;
	uint64_t learned; /* shapes a replica refused, now known as writes */
};

struct classifier;

/* cache_slots bounds the verdict cache (0 disables it). */
struct classifier *classify_new(size_t cache_slots);
void classify_free(struct classifier *cl);

/* Function names are matched case-insensitively with the schema ignored. A call runs on a
 * replica only when the function is known and not volatile, or is listed as read-only:
 * until the catalog arrives, every function call means primary. */
/* Volatile functions known to only read (random, clock_timestamp, ...): config + defaults. */
void classify_add_read_function(struct classifier *cl, const char *name);
/* Functions that must run on the primary whatever the catalog says. */
void classify_add_write_function(struct classifier *cl, const char *name);
/* The servers' catalog: every function name, which of them have a volatile overload, and
 * which have one whose body changes settings (SET, RESET, set_config). Replaces the
 * previous catalog and clears the cache. */
struct classify_catalog {
	const char *const *names;
	size_t n_names;
	const char *const *volatile_names;
	size_t n_volatile;
	const char *const *setter_names;
	size_t n_setters;
	const char *const *unlogged_names; /* relations a standby cannot read: unlogged */
	size_t n_unlogged;                  /* tables and the views over them */
};
void classify_set_catalog(struct classifier *cl, const struct classify_catalog *cat);
/* Forget cached verdicts, learned ones too (after the function lists changed: reload).
 * A new catalog (classify_set_catalog) keeps the learned ones. */
void classify_clear_cache(struct classifier *cl);

/* Classify the text of a Query or Parse message (len bytes, not necessarily terminated). */
struct verdict classify_sql(struct classifier *cl, const char *sql, size_t len);

/* Write the cache key for sql into out: literals become '?', comments and spacing go.
 * Returns the key length, or 0 when the text does not fit. Exposed for tests. */
size_t classify_normalize(const char *sql, size_t len, char *out, size_t outlen);

/* A quick look, well below the cost of classify_sql: false when sql cannot RESET a
 * setting, RESET ALL or DISCARD ALL (it names none of RESET, DISCARD, DEFAULT). */
bool classify_may_reset(const char *sql, size_t len);

/* Call fn with the name of each setting that the statements in sql RESET (or SET TO
 * DEFAULT) at session level. Parses again: meant for the rare batch whose verdict says
 * RESETS_NAMED. */
void classify_reset_names(const char *sql, size_t len, void (*fn)(void *arg, const char *name),
                          void *arg);

/* ---- facts read from the text alone (classify_text.c) ---- */

/* What the pooler knows of a parameter name. */
enum param_kind {
	PARAM_OTHER,
	PARAM_SERVER_OWNED,     /* set by the server alone (server_version, is_superuser...) */
	PARAM_REPORTED,         /* reported by ParameterStatus: carried from server to server */
	PARAM_CARRIED_BY_VALUE, /* not reported, but carried from a plain SET of it */
	PARAM_PINS,             /* a session SET of it pins: isolation, read-only, role */
};
/* The kind of name (any case); *canonical, when given, gets the table's spelling. */
enum param_kind classify_param(const char *name, const char **canonical);

/* Whether a statement of q (n bytes) drops every prepared statement of the session:
 * DISCARD ALL, DEALLOCATE [PREPARE] ALL. */
bool classify_drops_statements(const char *q, size_t n);

/* The statement name of "DEALLOCATE [PREPARE] name" into out (unquoted names folded to
 * lower case, as PostgreSQL does); false for anything else, DEALLOCATE ALL included. */
bool classify_deallocate_name(const char *q, size_t n, char *out, size_t cap);

/* name and value of "SET [SESSION] name {= | TO} value" with one plain value (a word,
 * a number or a quoted literal), alone in q; false for anything else (SET LOCAL, TO
 * DEFAULT, a list). The name, and a value that is not quoted, fold to lower case as
 * PostgreSQL folds them. */
bool classify_plain_set(const char *q, size_t n, char *name, size_t name_cap, char *value,
                        size_t value_cap);

/* A replica refused this statement as a write: remember its shape as one. */
void classify_learn_write(struct classifier *cl, const char *sql, size_t len);

const struct classify_stats *classify_stats(const struct classifier *cl);

#endif
