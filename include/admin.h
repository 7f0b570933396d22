/* admin: the admin console, a pseudo-database (admin_db, default "pooler") that psql
 * reaches like any other. Layer 5. Commands and their columns come from tables; where
 * PgBouncer has the same command, the columns carry its names in its order, with ours
 * after, and numbers go out as int8 as PgBouncer sends them, so tools written for it keep
 * working. Rows are written cell by cell (result.h), never printed to text and split. */
#ifndef POOLER_ADMIN_H
#define POOLER_ADMIN_H

#include <stdbool.h>

#include "buf.h"
#include "worker.h"

/* Run one statement of the simple protocol; append its rows and CommandComplete, or an
 * ErrorResponse, to out (not the ReadyForQuery). may_change: the user is in admin_users;
 * otherwise only SHOW is allowed. Returns false when the answer must wait: PAUSE answers
 * once the servers of what it paused are all back; *wait then names what it waits for
 * (malloc'd): call admin_poll until it returns true, and run nothing else meanwhile. */
bool admin_run(struct worker *w, const char *sql, bool may_change, struct buf *out, char **wait);
/* True (with the CommandComplete in out) when what *wait waits for is done. */
bool admin_poll(struct worker *w, const char *wait, struct buf *out);

#endif
