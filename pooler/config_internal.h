/* config_internal: the key table, shared by the two files of the config module (config.c:
 * parsing and checks; config_man.c: the man pages written from the same rows, so that the
 * documentation cannot drift from what the parser accepts). Private to them: other modules
 * use include/config.h. */
#ifndef POOLER_CONFIG_INTERNAL_H
#define POOLER_CONFIG_INTERNAL_H

#include <stddef.h>

#include "config.h"

/* K_MS: a duration, bare numbers in seconds; K_MSEC: the same for keys named *_ms, whose
 * bare numbers are milliseconds. */
enum key_type { K_STR, K_PATH, K_INT, K_AUTO_INT, K_ENUM, K_MS, K_MSEC, K_LOGLEVEL, K_SHARE };

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

/* A kind of section and its keys: [pooler], [node.NAME], [database.NAME]. */
struct section_kind {
	const char *prefix; /* "pooler", "node.", "database." */
	const struct key *keys;
	size_t n_keys;
};

enum { CONFIG_KINDS = 3 };
extern const struct section_kind config_kinds[CONFIG_KINDS];

/* Other names of [pooler] keys: alias, the key it stands for, and its own unit. */
struct key_alias {
	const char *alias, *key;
	enum key_type type;
};

enum { CONFIG_ALIASES = 4 };
extern const struct key_alias config_aliases[CONFIG_ALIASES];

#endif
