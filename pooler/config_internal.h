/* config_internal: what the files of the config module share: the key table (config.c:
 * parsing; config_check.c: checks across lines; config_show.c: the effective settings as
 * text; config_man.c: the man pages written from the same rows, so that the documentation
 * cannot drift from what the parser accepts) and the parse state. Private to them: other
 * modules use include/config.h. */
#ifndef POOLER_CONFIG_INTERNAL_H
#define POOLER_CONFIG_INTERNAL_H

#include <stddef.h>
#include <stdio.h>

#include "config.h"

/* K_BOOL: a bool field, written on or off (true/false, yes/no, 1/0 are read too). */
/* K_MS: a duration, bare numbers in seconds; K_MSEC: the same for keys named *_ms, whose
 * bare numbers are milliseconds. */
enum key_type {
	K_STR,
	K_PATH,
	K_INT,
	K_AUTO_INT,
	K_ENUM,
	K_MS,
	K_MSEC,
	K_LOGLEVEL,
	K_SHARE,
	K_BOOL
};

/* One configurable key. Defaults are written as a user would write them and parsed by the
 * same code as the file, so the table is the single place a default lives. */
struct key {
	const char *name;
	enum key_type type;
	size_t offset;
	const char *def; /* NULL: unset (a NULL string) */
	long min, max;
	const char *const *choices; /* K_ENUM, in enum order */
	bool secret;                /* never printed */
	const char *help;
};

/* A kind of section and its keys: [pooler], [node.NAME], [database.NAME], [cluster.NAME],
 * in the order of enum config_kind. */
struct section_kind {
	const char *prefix; /* "pooler", "node.", "database." */
	const struct key *keys;
	size_t n_keys;
};

enum config_kind { KIND_POOLER, KIND_NODE, KIND_DB, KIND_CLUSTER, CONFIG_KINDS };
extern const struct section_kind config_kinds[CONFIG_KINDS];

/* Other names of [pooler] keys: alias, the key it stands for, and its own unit. */
struct key_alias {
	const char *alias, *key;
	enum key_type type;
};

enum { CONFIG_ALIASES = 4 };
extern const struct key_alias config_aliases[CONFIG_ALIASES];

/* ---- parsing, shared with config_check.c ---- */

/* A key already set in a section: a second one is refused, and later checks name the line
 * of the key they are about. */
struct seen_key {
	char *section;
	const char *key; /* the table's name (an alias counts as the key it stands for) */
	const char *as;  /* as written: the key or an alias (from the tables) */
	int line;
};

struct parse_state {
	struct config *cfg;
	FILE *file;
	int line;
	char *err;
	size_t errlen;
	bool failed;
	int pooler_line;       /* where the [pooler] header is; 0 before it */
	int peers_line;        /* where the [peers] header is; 0 before it */
	struct seen_key *seen; /* every key set so far, in file order */
	size_t n_seen, cap_seen;
};

/* Set every key of the table in obj to its default; free what they hold. */
bool config_apply_defaults(struct parse_state *ps, const char *section, void *obj,
                           const struct key *keys, size_t n);
void config_free_keys(void *obj, const struct key *keys, size_t n);

/* A key's value in obj as --check-config and SHOW CONFIG write it (secrets masked). */
void config_format_value(const struct key *k, const void *obj, char *out, size_t cap);

/* Report "file:line: message" once (the first error wins); returns false. */
bool config_fail(struct parse_state *ps, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The line where a key of a section was set, or 0 (left at its default). */
int config_key_line(const struct parse_state *ps, const char *section, const char *key);

/* An unknown key of a section of that kind: reported with the nearest key, or the kind of
 * section it belongs in, or where the keys are listed. Returns 0 (inih's "stop"). */
int config_unknown_key(struct parse_state *ps, const char *section, int kind, const char *name);

/* ---- [peers], config_peers.c ---- */

/* One line "ID = ADDRESS" of [peers]; 0 (inih's "stop") after reporting a bad one. */
int config_peer_add(struct parse_state *ps, const char *id, const char *address);
/* Peering as a whole: peer_id set when peers are listed, no peer at this pooler's own
 * listening address (a cancel sent there could come back). */
bool config_check_peers(struct parse_state *ps);
void config_free_peers(struct config *cfg);

/* The checks over the whole file, once it is read; false after reporting one. */
bool config_check_whole(struct parse_state *ps);

#endif
