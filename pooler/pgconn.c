/* pgconn: see include/pgconn.h. */
#include "pgconn.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

void pgconn_trim(char *dst, size_t size, const char *src)
{
	size_t n;

	snprintf(dst, size, "%s", src);
	n = strlen(dst);
	while (n > 0 && (dst[n - 1] == '\n' || dst[n - 1] == ' '))
		dst[--n] = '\0';
}

/* Close, then tell the owner; nothing touches pc after the callback. */
static void fail_now(struct pgconn *pc, const char *why)
{
	char msg[512];

	pgconn_trim(msg, sizeof(msg), why);
	pgconn_close(pc);
	pc->ops->failed(pc, msg);
}

/* Report a failure from the loop, not from inside the owner's call: why, or when NULL
 * the message libpq has then (or "out of memory" when it has no connection). */
static void fail_later(struct pgconn *pc, const char *why)
{
	pc->failure = why;
	ev_io_stop(pc->loop, &pc->io);
	ev_timer_stop(pc->loop, &pc->deadline);
	ev_timer_set(&pc->deadline, 0, 0);
	ev_timer_start(pc->loop, &pc->deadline);
	pc->state = PGCONN_FAILING;
}

static void on_deadline(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct pgconn *pc = t->data;
	(void)loop;
	(void)revents;

	if (pc->state != PGCONN_FAILING)
		fail_now(pc, pc->timeout_why);
	else if (pc->failure != NULL)
		fail_now(pc, pc->failure);
	else
		fail_now(pc, pc->pg != NULL ? PQerrorMessage(pc->pg) : "out of memory");
}

static void watch(struct pgconn *pc, int events)
{
	int fd = PQsocket(pc->pg);

	if (fd < 0) {
		fail_later(pc, pc->state == PGCONN_CONNECTING ? "libpq lost its socket during login"
		                                              : "libpq lost its socket");
		return;
	}
	ev_io_stop(pc->loop, &pc->io);
	ev_io_set(&pc->io, fd, events);
	ev_io_start(pc->loop, &pc->io);
}

static void connect_step(struct pgconn *pc)
{
	switch (PQconnectPoll(pc->pg)) {
	case PGRES_POLLING_OK:
		ev_io_stop(pc->loop, &pc->io);
		pc->state = PGCONN_IDLE;
		pc->ops->connected(pc);
		return;
	case PGRES_POLLING_FAILED:
		fail_now(pc, PQerrorMessage(pc->pg));
		return;
	case PGRES_POLLING_READING:
		watch(pc, EV_READ);
		return;
	default:
		watch(pc, EV_WRITE);
		return;
	}
}

/* Hand over every result that is complete; the query ends when libpq has no more. */
static void read_results(struct pgconn *pc)
{
	PGresult *r;

	while (!PQisBusy(pc->pg) && (r = PQgetResult(pc->pg)) != NULL)
		pc->ops->result(pc, r);
	if (PQisBusy(pc->pg))
		return; /* more to come */
	ev_io_stop(pc->loop, &pc->io);
	ev_timer_stop(pc->loop, &pc->deadline);
	pc->state = PGCONN_IDLE;
	pc->ops->result(pc, NULL);
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct pgconn *pc = w->data;
	(void)loop;

	if (pc->state == PGCONN_CONNECTING) {
		connect_step(pc);
		return;
	}
	if ((revents & EV_WRITE) && PQflush(pc->pg) == 0)
		watch(pc, EV_READ); /* the whole query is out */
	if (revents & EV_READ) {
		if (!PQconsumeInput(pc->pg)) {
			fail_now(pc, PQerrorMessage(pc->pg));
			return;
		}
		read_results(pc);
	}
}

void pgconn_init(struct pgconn *pc, struct ev_loop *loop, const struct pgconn_ops *ops)
{
	memset(pc, 0, sizeof(*pc));
	pc->loop = loop;
	pc->ops = ops;
	pc->state = PGCONN_CLOSED;
	ev_init(&pc->io, on_io);
	pc->io.data = pc;
	ev_init(&pc->deadline, on_deadline);
	pc->deadline.data = pc;
}

/* Append the TLS keys; returns how many (at most 5). */
static int tls_conninfo(const struct pgconn_tls *t, const char **keys, const char **vals)
{
	int k = 0;

	if (t == NULL) {
		keys[k] = "sslmode", vals[k++] = "disable";
		return k;
	}
	keys[k] = "sslmode", vals[k++] = t->sslmode;
	if (t->sslrootcert != NULL)
		keys[k] = "sslrootcert", vals[k++] = t->sslrootcert;
	if (t->sslcert != NULL)
		keys[k] = "sslcert", vals[k++] = t->sslcert;
	if (t->sslkey != NULL)
		keys[k] = "sslkey", vals[k++] = t->sslkey;
	if (t->sslpassword != NULL)
		keys[k] = "sslpassword", vals[k++] = t->sslpassword;
	return k;
}

/* The keyword/value list for PQconnectStartParams (at most 13 pairs and the end). GSSAPI
 * encryption is never used: libpq would otherwise try it before TLS or plain. */
static void conninfo(const struct pgconn_target *t, const char *port, const char **keys,
                     const char **vals)
{
	int k = 0;

	keys[k] = "host", vals[k++] = t->host;
	keys[k] = "port", vals[k++] = port;
	keys[k] = "dbname", vals[k++] = t->dbname;
	keys[k] = "user", vals[k++] = t->user;
	keys[k] = "gssencmode", vals[k++] = "disable";
	if (t->application_name != NULL)
		keys[k] = "application_name", vals[k++] = t->application_name;
	if (t->options != NULL)
		keys[k] = "options", vals[k++] = t->options;
	k += tls_conninfo(t->tls, keys + k, vals + k);
	if (t->password != NULL)
		keys[k] = "password", vals[k++] = t->password;
	keys[k] = NULL, vals[k] = NULL;
}

bool pgconn_connect(struct pgconn *pc, const struct pgconn_target *t)
{
	const char *keys[16], *vals[16];
	char port[16];

	snprintf(port, sizeof(port), "%d", t->port);
	conninfo(t, port, keys, vals);
	pc->timeout_why = t->timeout_why;
	pc->pg = PQconnectStartParams(keys, vals, 0);
	if (pc->pg == NULL || PQstatus(pc->pg) == CONNECTION_BAD) {
		fail_later(pc, NULL);
		return pc->pg != NULL;
	}
	PQsetNoticeProcessor(pc->pg, log_pq_notice, (void *)t->notice_label);
	pc->state = PGCONN_CONNECTING;
	pgconn_deadline(pc, t->timeout_ms);
	/* libpq's protocol: before the first PQconnectPoll, wait as if it had asked to write */
	watch(pc, EV_WRITE);
	return true;
}

void pgconn_deadline(struct pgconn *pc, int timeout_ms)
{
	ev_timer_stop(pc->loop, &pc->deadline);
	ev_timer_set(&pc->deadline, timeout_ms / 1000.0, 0);
	ev_timer_start(pc->loop, &pc->deadline);
}

void pgconn_query(struct pgconn *pc, const char *sql, int nparams, const char *const *params)
{
	int sent;

	PQsetnonblocking(pc->pg, 1);
	if (nparams == 0)
		sent = PQsendQuery(pc->pg, sql);
	else
		sent = PQsendQueryParams(pc->pg, sql, nparams, NULL, params, NULL, NULL, 0);
	if (!sent) {
		fail_later(pc, NULL);
		return;
	}
	pc->state = PGCONN_QUERYING;
	watch(pc, PQflush(pc->pg) == 1 ? EV_READ | EV_WRITE : EV_READ);
}

void pgconn_stop(struct pgconn *pc)
{
	if (pc->loop == NULL)
		return;
	ev_io_stop(pc->loop, &pc->io);
	ev_timer_stop(pc->loop, &pc->deadline);
}

void pgconn_close(struct pgconn *pc)
{
	pgconn_stop(pc);
	if (pc->pg != NULL) {
		PQfinish(pc->pg);
		pc->pg = NULL;
	}
	pc->state = PGCONN_CLOSED;
}
