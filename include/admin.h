/* admin: the admin console, a pseudo-database (admin_db, default "pooler") that psql
 * reaches like any other. Layer 5. Commands and their columns come from tables; where
 * PgBouncer has the same command, the columns carry its names in its order, with ours
 * after, and numbers go out as int8 as PgBouncer sends them, so tools written for it keep
 * working. Rows are written cell by cell (result.h), never printed to text and split. */
#ifndef POOLER_ADMIN_H
#define POOLER_ADMIN_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "worker.h"

/* Who runs a command: the log line of every command that changes something names them. */
struct admin_caller {
	uint64_t id; /* the console client's connection id */
	const char *user, *addr;
	bool may_change; /* in admin_users; otherwise only SHOW is allowed */
};

/* Run one statement of the simple protocol; append its rows and CommandComplete, or an
 * ErrorResponse, to out (not the ReadyForQuery). Returns false when the answer must wait:
 * PAUSE answers once the servers of what it paused are all back, WAIT_CLOSE once those
 * RECONNECT closes are gone; *wait then names what it waits for (malloc'd): call
 * admin_poll until it returns true, and run nothing else meanwhile. */
bool admin_run(struct worker *w, const char *sql, const struct admin_caller *who, struct buf *out,
               char **wait);
/* True (with the CommandComplete in out) when what *wait waits for is done. */
bool admin_poll(struct worker *w, const char *wait, struct buf *out);

/* DISABLE: the database takes no new clients (checked at login). */
bool admin_db_disabled(const struct worker *w, const char *db);

/* Free what the console keeps on the worker (paused and disabled databases), at exit. */
void admin_free(struct worker *w);

#endif
