/* log: one line per event on stderr, in logfmt: ts=... pid=... level=..., then the
 * event's leading key=value fields as written (c=42 user=app db=app), and the free text
 * after them as msg="...", escaped so that a line break in it cannot split the event.
 * Layer 0. The minimum level is process-wide configuration, owned by main.c. */
#ifndef POOLER_LOG_H
#define POOLER_LOG_H

enum log_level { LOG_ERROR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

extern enum log_level log_min_level; /* defined in main.c, set from the config */

/* Parse "error|warning|info|debug"; returns -1 when unknown. */
int log_level_parse(const char *name);
const char *log_level_name(enum log_level level);

void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A libpq notice processor (PQsetNoticeProcessor): what a server says on the pooler's own
 * connections (probes, logins, auth_query), such as PostgreSQL's warning after a crash
 * restart, becomes one log line at warning level. arg is a label that outlives the
 * connection (a node's name, "server login", "auth_query"), or NULL. */
void log_pq_notice(void *arg, const char *message);

/* read by every worker thread (and cancel threads), written by reload: atomic */
#define log_enabled(level) ((level) <= __atomic_load_n(&log_min_level, __ATOMIC_RELAXED))
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)
#define log_warning(...) log_write(LOG_WARNING, __VA_ARGS__)
#define log_info(...)                                                                              \
	do {                                                                                       \
		if (log_enabled(LOG_INFO))                                                         \
			log_write(LOG_INFO, __VA_ARGS__);                                          \
	} while (0)
#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (log_enabled(LOG_DEBUG))                                                        \
			log_write(LOG_DEBUG, __VA_ARGS__);                                         \
	} while (0)

#endif
