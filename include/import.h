/* import: `pooler --import-pgbouncer pgbouncer.ini` writes an equivalent pooler config.
 * Layer 6 (a command-line mode of main, outside the daemon). [pgbouncer] keys map to
 * [pooler] keys (most have the same name and meaning); each distinct host and port of
 * [databases] becomes a [node.NAME] with role = auto, and each database line a
 * [database.NAME] with its dbname, node, server_user, server_password and pool settings,
 * PgBouncer's defaults written out where ours differ. Relative paths become absolute, so
 * that the new file may live anywhere. Every setting that has no equivalent is written as
 * a comment that says so, never dropped silently. */
#ifndef POOLER_IMPORT_H
#define POOLER_IMPORT_H

#include <stdio.h>

/* Read PgBouncer's ini at path, write the pooler config to out; errors go to err.
 * Returns the exit code: 0, or 1 when the file cannot be read. */
int import_pgbouncer(const char *path, FILE *out, FILE *err);

#endif
