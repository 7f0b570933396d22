/* cluster: see include/cluster.h. */
#include "cluster.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

#define CLUSTER_MAX_ANSWER (1024 * 1024) /* a /cluster answer is a few hundred bytes a member */

static bool count_url(const char *name, void *arg)
{
	(void)name;
	(*(int *)arg)++;
	return true;
}

static bool add_url(const char *name, void *arg)
{
	struct cluster *c = arg;
	c->url_list[c->n_urls++] = util_strdup(name);
	return true;
}

struct cluster *cluster_new(const char *name, const char *urls, int interval_ms, int timeout_ms,
                            struct ev_loop *loop, cluster_poll_cb cb, void *arg)
{
	struct cluster *c = util_calloc(1, sizeof(*c));
	int n = 0;

	c->name = util_strdup(name);
	c->urls = util_strdup(urls);
	util_split(urls, count_url, &n);
	c->url_list = util_calloc((size_t)n + 1, sizeof(char *));
	util_split(urls, add_url, c);
	c->interval_ms = interval_ms;
	c->timeout_ms = timeout_ms;
	c->loop = loop;
	c->fd = -1;
	c->on_poll = cb;
	c->cb_arg = arg;
	buf_init(&c->in);
	return c;
}

/* ---- one request ------------------------------------------------------------------- */

static void end_request(struct cluster *c)
{
	ev_io_stop(c->loop, &c->io);
	ev_timer_stop(c->loop, &c->deadline);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	buf_reset(&c->in);
}

/* Two member sets are the same when each member of one is in the other with the same
 * address and the same noloadbalance tag (what the nodes are built from). */
static bool same_members(const struct patroni_cluster *a, const struct patroni_cluster *b)
{
	if (a->n_members != b->n_members)
		return false;
	for (int i = 0; i < a->n_members; i++) {
		const struct patroni_member *x = &a->members[i], *y = NULL;
		for (int k = 0; k < b->n_members && y == NULL; k++)
			if (strcmp(x->name, b->members[k].name) == 0)
				y = &b->members[k];
		if (y == NULL || strcmp(x->host, y->host) != 0 || x->port != y->port ||
		    x->noloadbalance != y->noloadbalance)
			return false;
	}
	return true;
}

static void try_next(struct cluster *c);

/* The URL asked failed: note why, and ask the next one, or end the round. */
static void request_failed(struct cluster *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void request_failed(struct cluster *c, const char *fmt, ...)
{
	char why[sizeof(c->last_error)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	end_request(c);
	c->polls_failed++;
	if (c->reachable || strcmp(why, c->last_error) != 0)
		log_warning("cluster %s: %s: %s", c->name, c->url_list[c->url_at], why);
	snprintf(c->last_error, sizeof(c->last_error), "%s", why);
	c->url_at = (c->url_at + 1) % c->n_urls;
	if (++c->tried < c->n_urls) {
		try_next(c);
		return;
	}
	c->rounds_failed++;
	if (c->reachable || !c->known)
		log_warning("cluster %s: no Patroni API answered (%d tried); %s", c->name,
		            c->n_urls,
		            c->known ? "keeping the last known members and leader"
		                     : "no members known yet");
	c->reachable = false;
	c->on_poll(c, false, c->cb_arg);
}

/* The status line, and where the body starts (Content-Length, if given, bounds it). */
static const char *http_body(struct cluster *c, const char *a, size_t len, size_t *body_len)
{
	const char *hdr_end = memmem(a, len, "\r\n\r\n", 4);
	int status = 0;
	const char *cl;

	if (hdr_end == NULL || sscanf(a, "HTTP/1.%*d %d", &status) != 1) {
		request_failed(c, "not an HTTP answer");
		return NULL;
	}
	if (status != 200) {
		request_failed(c, "HTTP status %d", status);
		return NULL;
	}
	*body_len = len - (size_t)(hdr_end + 4 - a);
	cl = memmem(a, (size_t)(hdr_end - a), "\r\nContent-Length:", 17);
	if (cl == NULL)
		cl = memmem(a, (size_t)(hdr_end - a), "\r\ncontent-length:", 17);
	if (cl != NULL) {
		size_t want = strtoul(cl + 17, NULL, 10);
		if (want > *body_len) {
			request_failed(c, "answer cut short");
			return NULL;
		}
		*body_len = want;
	}
	if (memmem(a, (size_t)(hdr_end - a), "chunked", 7) != NULL) {
		request_failed(c, "chunked answers are not read");
		return NULL;
	}
	return hdr_end + 4;
}

/* The whole answer is in (the server closed): read it into the view. */
static void answered(struct cluster *c)
{
	struct patroni_cluster view;
	char err[160];
	size_t body_len = 0;
	uint8_t *nul = buf_reserve(&c->in, 1); /* may move the bytes: before buf_head */
	bool changed;

	if (nul == NULL) {
		request_failed(c, "out of memory");
		return;
	}
	*nul = '\0'; /* sscanf stops there */
	const char *a = (const char *)buf_head(&c->in);
	const char *body = http_body(c, a, buf_len(&c->in), &body_len);
	if (body == NULL)
		return;
	if (!patroni_parse(body, body_len, &view, err, sizeof(err))) {
		request_failed(c, "unreadable /cluster answer: %s", err);
		return;
	}
	end_request(c);
	changed = !c->known || !same_members(&c->view, &view);
	if (!c->reachable && c->known)
		log_info("cluster %s: Patroni API answers again (%s)", c->name,
		         c->url_list[c->url_at]);
	c->view = view;
	c->known = c->reachable = true;
	c->polls_ok++;
	c->last_ok_us = util_now_us();
	c->last_error[0] = '\0';
	snprintf(c->asked, sizeof(c->asked), "%s", c->url_list[c->url_at]);
	if (changed)
		c->changes++;
	c->on_poll(c, changed, c->cb_arg);
}

static void on_io(struct ev_loop *loop, ev_io *io, int revents)
{
	struct cluster *c = io->data;
	(void)loop;

	if (c->sent < c->request_len && (revents & EV_WRITE)) {
		int err = 0;
		socklen_t elen = sizeof(err);
		if (c->sent == 0 && getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen) == 0 &&
		    err) {
			request_failed(c, "connect: %s", strerror(err));
			return;
		}
		ssize_t n =
		    send(c->fd, c->request + c->sent, c->request_len - c->sent, MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			request_failed(c, "send: %s", strerror(errno));
			return;
		}
		c->sent += n > 0 ? (size_t)n : 0;
		if (c->sent == c->request_len) {
			ev_io_stop(c->loop, &c->io);
			ev_io_set(&c->io, c->fd, EV_READ);
			ev_io_start(c->loop, &c->io);
		}
		return;
	}
	uint8_t *p = buf_reserve(&c->in, 16384);
	ssize_t n = p == NULL ? -1 : recv(c->fd, p, 16384, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		request_failed(c, "recv: %s", strerror(errno));
		return;
	}
	if (n == 0) {
		answered(c);
		return;
	}
	c->in.end += (size_t)n;
	if (buf_len(&c->in) > CLUSTER_MAX_ANSWER)
		request_failed(c, "answer over %d bytes", CLUSTER_MAX_ANSWER);
}

static void on_deadline(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct cluster *c = t->data;
	(void)loop;
	(void)revents;
	request_failed(c, "no answer within %d ms", c->timeout_ms);
}

/* Open a socket to the URL at url_at and send the request once it connects. */
static void try_next(struct cluster *c)
{
	struct sockaddr_storage sa = {0};
	socklen_t salen;
	char host[64];
	int port;

	if (!patroni_url(c->url_list[c->url_at], host, sizeof(host), &port)) {
		request_failed(c, "not http://HOST:PORT");
		return;
	}
	struct sockaddr_in *in4 = (struct sockaddr_in *)&sa;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&sa;
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		salen = sizeof(*in4);
	} else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		salen = sizeof(*in6);
	} else {
		request_failed(c, "%s is not a numeric address", host);
		return;
	}
	c->request_len = (size_t)snprintf(c->request, sizeof(c->request),
	                                  "GET /cluster HTTP/1.1\r\nHost: %s:%d\r\n"
	                                  "User-Agent: pooler\r\nAccept: application/json\r\n"
	                                  "Connection: close\r\n\r\n",
	                                  host, port);
	c->sent = 0;
	c->fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		request_failed(c, "socket: %s", strerror(errno));
		return;
	}
	if (connect(c->fd, (struct sockaddr *)&sa, salen) < 0 && errno != EINPROGRESS) {
		request_failed(c, "connect: %s", strerror(errno));
		return;
	}
	ev_io_set(&c->io, c->fd, EV_WRITE);
	ev_io_start(c->loop, &c->io);
	ev_timer_set(&c->deadline, c->timeout_ms / 1000.0, 0);
	ev_timer_start(c->loop, &c->deadline);
}

/* ---- the rounds -------------------------------------------------------------------- */

static void on_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct cluster *c = t->data;
	(void)loop;
	(void)revents;

	if (c->fd >= 0 || c->n_urls == 0)
		return; /* the round in flight has its own deadlines */
	c->tried = 0;   /* url_at stays on the URL that answered last */
	try_next(c);
}

void cluster_start(struct cluster *c)
{
	ev_init(&c->io, on_io);
	c->io.data = c;
	ev_init(&c->deadline, on_deadline);
	c->deadline.data = c;
	ev_timer_init(&c->tick, on_tick, 0, c->interval_ms / 1000.0);
	c->tick.data = c;
	ev_timer_start(c->loop, &c->tick);
}

void cluster_set_timing(struct cluster *c, int interval_ms, int timeout_ms)
{
	c->timeout_ms = timeout_ms;
	if (interval_ms == c->interval_ms)
		return;
	c->interval_ms = interval_ms;
	c->tick.repeat = interval_ms / 1000.0;
	ev_timer_again(c->loop, &c->tick);
}

void cluster_free(struct cluster *c)
{
	if (c == NULL)
		return;
	ev_timer_stop(c->loop, &c->tick);
	end_request(c);
	buf_free(&c->in);
	for (int i = 0; i < c->n_urls; i++)
		free(c->url_list[i]);
	free(c->url_list);
	free(c->urls);
	free(c->name);
	free(c);
}

const struct patroni_member *cluster_member(const struct cluster *c, const char *name)
{
	for (int i = 0; i < c->view.n_members; i++)
		if (strcmp(c->view.members[i].name, name) == 0)
			return &c->view.members[i];
	return NULL;
}
