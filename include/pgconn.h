/* pgconn: the one non-blocking libpq driver. Layer 2.
 *
 * The pooler's own libpq connections (the server login, the node probe, auth_query) log
 * in, run a query and give up at a deadline on the event loop, never in a blocking libpq
 * call. Each owner embeds a struct pgconn and hears back through the ops it installed:
 *
 *   connected  PQconnectPoll finished: logged in. The watcher is stopped; the deadline
 *              keeps running, so that a query sent from here counts against it too.
 *   result     one PGresult of the query in flight, the owner's to PQclear; then NULL
 *              once the query has ended (watcher and deadline stopped, connection idle).
 *              May be left out by an owner that never sends a query.
 *   failed     connecting or the query failed, or the deadline passed. The PGconn is
 *              already closed (PQfinish); why is one line, trimmed (pgconn_trim).
 *
 * What the server says in notices on these connections goes to the log (log_pq_notice).
 * A callback is the driver's last use of the struct, so the owner may close or free it
 * there, except inside a result that is not NULL. Failures are reported from the loop,
 * never from inside a pgconn_* call, so an owner that starts a connection or a query
 * is never called back before it has returned. */
#ifndef POOLER_PGCONN_H
#define POOLER_PGCONN_H

#include <ev.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

struct pgconn;

/* TLS to a server ([node.NAME] sslmode, sslrootcert, sslcert, sslkey, sslpassword), as
 * libpq takes them; unset ones are NULL. */
struct pgconn_tls {
	char *sslmode;
	char *sslrootcert;
	char *sslcert;
	char *sslkey;
	char *sslpassword;
};

/* Where and how to log in; libpq copies the strings, except the two labels, which must
 * outlive the connection. */
struct pgconn_target {
	const char *host;
	int port;
	const char *dbname;
	const char *user;
	const char *password;         /* NULL: none given */
	const char *application_name; /* NULL: libpq's default */
	const char *options;          /* command-line options for the backend, or NULL */
	const struct pgconn_tls *tls; /* NULL: sslmode=disable */
	const char *notice_label;     /* names the connection in log_pq_notice lines */
	const char *timeout_why;      /* failed's reason when the deadline passes */
	int timeout_ms;               /* deadline for the login (and a query sent from connected) */
};

struct pgconn_ops {
	void (*connected)(struct pgconn *pc);
	void (*result)(struct pgconn *pc, PGresult *r);
	void (*failed)(struct pgconn *pc, const char *why);
};

enum pgconn_state {
	PGCONN_CLOSED,     /* no PGconn */
	PGCONN_CONNECTING, /* PQconnectPoll running; io waits for what it asked */
	PGCONN_IDLE,       /* logged in, nothing in flight; io stopped */
	PGCONN_QUERYING,   /* results of a query are still due */
	PGCONN_FAILING,    /* a failure waits to be reported: the deadline fires at once */
};

struct pgconn {
	PGconn *pg; /* NULL when closed */
	const struct pgconn_ops *ops;
	struct ev_loop *loop;
	enum pgconn_state state;
	const char *timeout_why; /* the target's, for the deadline */
	const char *failure;     /* FAILING: what to report; NULL for libpq's own message */
	ev_io io;                /* on PQsocket, for reading or writing as libpq asks */
	ev_timer deadline;       /* also reports a failure from the loop (at 0 s) */
};

/* Prepare a closed pgconn (once, before anything else). */
void pgconn_init(struct pgconn *pc, struct ev_loop *loop, const struct pgconn_ops *ops);

/* Start logging in and start the deadline. False when libpq could not allocate the
 * connection: failed("out of memory") then follows, unless the owner closes first. */
bool pgconn_connect(struct pgconn *pc, const struct pgconn_target *t);

/* Restart the deadline (before a query on a connection kept idle between uses). */
void pgconn_deadline(struct pgconn *pc, int timeout_ms);

/* Send a query on an idle connection: the simple protocol when nparams is 0 (sql may
 * hold several statements), else one statement with text parameters $1... Its results
 * come through ops->result. */
void pgconn_query(struct pgconn *pc, const char *sql, int nparams, const char *const *params);

/* True while a login or query is in flight or a failure is about to be reported. */
static inline bool pgconn_busy(const struct pgconn *pc)
{
	return pc->state == PGCONN_CONNECTING || pc->state == PGCONN_QUERYING ||
	       pc->state == PGCONN_FAILING;
}

/* Stop the watcher and the deadline but keep the connection: from now on the owner
 * drives the socket itself (a server relays raw protocol on it). */
void pgconn_stop(struct pgconn *pc);

/* Stop everything and PQfinish; no callback follows. Harmless on a closed pgconn. */
void pgconn_close(struct pgconn *pc);

/* Copy a libpq message into dst as one log-friendly line: without the trailing newline
 * and spaces libpq leaves. */
void pgconn_trim(char *dst, size_t size, const char *src);

#endif
