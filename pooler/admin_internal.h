/* admin_internal.h: what the parts of the admin console share. admin.c dispatches and runs
 * the commands that change things; admin_show.c writes the views of pools, statistics,
 * databases and settings; admin_sockets.c the views of connections (clients, servers,
 * sockets). Each view is a row of a table: its name after SHOW, its columns, the function
 * that writes its rows, its help line. SHOW HELP and dispatch read those tables. */
#ifndef POOLER_ADMIN_INTERNAL_H
#define POOLER_ADMIN_INTERNAL_H

#include <stdbool.h>

#include "buf.h"
#include "result.h"
#include "worker.h"

/* Entries of the column tables, with PgBouncer's type where it has the column. */
#define TEXT_COL(name)                                                                             \
	{                                                                                          \
		(name), RESULT_TEXT                                                                \
	}
#define INT8_COL(name)                                                                             \
	{                                                                                          \
		(name), RESULT_INT8                                                                \
	}
#define INT4_COL(name)                                                                             \
	{                                                                                          \
		(name), RESULT_INT4                                                                \
	}
#define NUM_COL(name)                                                                              \
	{                                                                                          \
		(name), RESULT_NUMERIC                                                             \
	}
#define BYTEA_COL(name)                                                                            \
	{                                                                                          \
		(name), RESULT_BYTEA                                                               \
	}

struct admin_view {
	const char *name; /* after SHOW, upper case */
	void (*show)(struct worker *w, struct result *r);
	/* instead of show, for a view that takes an argument (SHOW CONFIG key) */
	void (*show_arg)(struct worker *w, struct result *r, const char *arg);
	const struct result_column *cols;
	int n_cols;
	const char *help;
};

extern const struct admin_view admin_show_views[];
extern const int admin_show_n_views;
extern const struct admin_view admin_socket_views[];
extern const int admin_socket_n_views;

/* SHOW HELP, written from the command table of admin.c. */
void admin_show_help(struct worker *w, struct result *r);

/* Wall-clock text of a monotonic timestamp, as PgBouncer prints its times. */
void admin_wall_time(uint64_t mono_us, uint64_t now_us, char *text, size_t len);

#endif
