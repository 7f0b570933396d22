/* conn: see include/conn.h. */
#include "conn.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "tls.h"
#include "util.h"

static void on_readable(struct ev_loop *loop, ev_io *w, int revents);
static void on_writable(struct ev_loop *loop, ev_io *w, int revents);

void conn_init(struct conn *c, struct ev_loop *loop, int fd, void *owner, conn_cb on_read,
               conn_cb on_drain)
{
	memset(c, 0, sizeof(*c));
	c->loop = loop;
	c->fd = -1;
	c->owner = owner;
	c->on_read = on_read;
	c->on_drain = on_drain;
	buf_init(&c->in);
	buf_init(&c->out);
	c->stage = NULL;
	ev_init(&c->rio, on_readable);
	ev_init(&c->wio, on_writable);
	c->rio.data = c;
	c->wio.data = c;
	if (fd >= 0)
		conn_set_fd(c, fd);
}

void conn_set_fd(struct conn *c, int fd)
{
	bool was_reading = c->reading;

	if (ev_is_active(&c->rio))
		ev_io_stop(c->loop, &c->rio);
	if (ev_is_active(&c->wio))
		ev_io_stop(c->loop, &c->wio);
	c->fd = fd;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	ev_io_set(&c->rio, fd, EV_READ);
	ev_io_set(&c->wio, fd, EV_WRITE);
	if (was_reading)
		ev_io_start(c->loop, &c->rio);
}

void conn_close(struct conn *c)
{
	if (c->fd < 0)
		return;
	if (c->peer)
		conn_unlink(c);
	ev_io_stop(c->loop, &c->rio);
	ev_io_stop(c->loop, &c->wio);
	if (!c->borrowed) {
		tls_session_free(c->ssl);
		close(c->fd);
	}
	c->ssl = NULL;
	c->fd = -1;
	c->reading = false;
}

static void conn_free_stage(struct conn *c)
{
	if (c->stage != NULL)
		buf_free(c->stage);
	free(c->stage);
	c->stage = NULL;
}

void conn_free(struct conn *c)
{
	conn_close(c);
	buf_free(&c->in);
	buf_free(&c->out);
	conn_free_stage(c);
}

/* A TLS session may hold decrypted bytes while the socket stays quiet: when reading
 * (re)starts, look at them without waiting for the socket. */
static void kick_pending(struct conn *c)
{
	if (c->ssl != NULL && !c->handshaking && ev_is_active(&c->rio) && tls_has_pending(c->ssl))
		ev_feed_event(c->loop, &c->rio, EV_READ);
}

void conn_detach(struct conn *c)
{
	c->moved_rio = ev_is_active(&c->rio);
	c->moved_wio = ev_is_active(&c->wio);
	ev_io_stop(c->loop, &c->rio);
	ev_io_stop(c->loop, &c->wio);
	c->loop = NULL;
}

void conn_attach(struct conn *c, struct ev_loop *loop)
{
	c->loop = loop;
	if (c->moved_rio)
		ev_io_start(loop, &c->rio);
	if (c->moved_wio)
		ev_io_start(loop, &c->wio);
}

void conn_start_read(struct conn *c)
{
	c->reading = true;
	if (c->fd >= 0 && !c->paused && !ev_is_active(&c->rio)) {
		ev_io_start(c->loop, &c->rio);
		kick_pending(c);
	}
}

void conn_stop_read(struct conn *c)
{
	c->reading = false;
	if (ev_is_active(&c->rio))
		ev_io_stop(c->loop, &c->rio);
}

static void pause_read(struct conn *c)
{
	c->paused = true;
	if (ev_is_active(&c->rio))
		ev_io_stop(c->loop, &c->rio);
}

static void resume_read(struct conn *c)
{
	c->paused = false;
	if (c->reading && c->fd >= 0 && !ev_is_active(&c->rio)) {
		ev_io_start(c->loop, &c->rio);
		kick_pending(c);
	}
}

static void handshake_step(struct conn *c);

void conn_tls_accept(struct conn *c, struct ssl_st *ssl)
{
	c->ssl = ssl;
	c->handshaking = true;
	handshake_step(c);
}

void conn_tls_borrow(struct conn *c, struct ssl_st *ssl)
{
	c->ssl = ssl;
	tls_session_prepare(ssl);
	kick_pending(c);
}

void conn_link(struct conn *a, struct conn *b)
{
	a->peer = b;
	b->peer = a;
}

void conn_unlink(struct conn *a)
{
	struct conn *b = a->peer;

	if (b == NULL)
		return;
	/* Whatever one side had marked for the other is void once they part. */
	a->peer = b->peer = NULL;
	if (a->paused)
		resume_read(a);
	if (b->paused)
		resume_read(b);
	a->fwd = b->fwd = 0;
}

void conn_trim(struct conn *c)
{
	if (buf_len(&c->in) == 0 && c->fwd == 0)
		buf_free(&c->in);
	if (buf_len(&c->out) == 0)
		buf_free(&c->out);
	if (c->stage != NULL && buf_len(c->stage) == 0)
		conn_free_stage(c);
}

void conn_cut(struct conn *c, size_t off, size_t n)
{
	uint8_t *p = buf_head(&c->in);
	size_t len = buf_len(&c->in);

	if (off == 0) {
		buf_consume(&c->in, n);
		return;
	}
	memmove(p + off, p + off + n, len - off - n);
	c->in.end -= n;
}

/* Everything is written: stop waiting for the socket, let the source read again. */
static enum conn_result flushed(struct conn *c, struct conn *src)
{
	if (ev_is_active(&c->wio) && !c->read_wants_write)
		ev_io_stop(c->loop, &c->wio);
	/* A source still over its high-water mark would pause again before reading a byte:
	 * resuming it only spins until its owner makes room. */
	if (src && src->paused &&
	    (buf_len(&src->in) < CONN_HIGH_WATER || buf_len(&src->in) < src->want))
		resume_read(src);
	if (src && src->on_drain)
		src->on_drain(src);
	return CONN_OK;
}

static enum conn_result wait_writable(struct conn *c, struct conn *src)
{
	if (!ev_is_active(&c->wio))
		ev_io_start(c->loop, &c->wio);
	if (src && src->fwd > 0)
		pause_read(src);
	return CONN_AGAIN;
}

/* The TLS path of conn_flush: out and the peer's ready prefix move to `stage` (one TLS
 * record for a small reply), and stage is written until empty. */
static enum conn_result flush_tls(struct conn *c, struct conn *src)
{
	size_t put;

	if (c->handshaking)
		return CONN_AGAIN; /* the handshake step flushes when it is done */
	if (c->stage == NULL)
		c->stage = util_calloc(1, sizeof(*c->stage));
	struct buf *stage = c->stage;
	for (;;) {
		if (buf_len(stage) == 0) {
			buf_put(stage, buf_head(&c->out), buf_len(&c->out));
			buf_consume(&c->out, buf_len(&c->out));
			if (src && src->fwd > 0) {
				buf_put(stage, buf_head(&src->in), src->fwd);
				buf_consume(&src->in, src->fwd);
				src->fwd = 0;
			}
			if (buf_len(stage) == 0)
				return flushed(c, src);
		}
		switch (tls_write(c->ssl, buf_head(stage), buf_len(stage), &put)) {
		case TLS_DONE:
			buf_consume(stage, put);
			if (c->bytes != NULL)
				c->bytes->out += put;
			continue;
		case TLS_WANT_READ: /* no renegotiation: only a transient socket state */
		case TLS_WANT_WRITE:
			return wait_writable(c, src);
		default:
			c->eof = true;
			return CONN_ERROR;
		}
	}
}

enum conn_result conn_flush(struct conn *c)
{
	struct conn *src = c->peer;

	if (c->fd < 0)
		return CONN_ERROR;
	if (c->ssl != NULL)
		return flush_tls(c, src);
	for (;;) {
		struct iovec iov[2];
		int n_iov = 0;
		size_t out_len = buf_len(&c->out);
		size_t fwd_len = src ? src->fwd : 0;

		if (out_len > 0)
			iov[n_iov++] = (struct iovec){buf_head(&c->out), out_len};
		if (fwd_len > 0)
			iov[n_iov++] = (struct iovec){buf_head(&src->in), fwd_len};
		if (n_iov == 0)
			break;
		/* socket calls, not write(v): they skip the VFS (f_pos lock, fsnotify); and send
		 * for one buffer, the usual case, as the kernel then copies in no iovec */
		ssize_t n;
		if (n_iov == 1) {
			n = send(c->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
		} else {
			struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n_iov};
			n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return wait_writable(c, src);
			c->eof = true;
			return CONN_ERROR;
		}
		size_t done = (size_t)n;
		if (c->bytes != NULL)
			c->bytes->out += done;
		size_t from_out = done < out_len ? done : out_len;
		buf_consume(&c->out, from_out);
		done -= from_out;
		if (done > 0) {
			buf_consume(&src->in, done);
			src->fwd -= done;
		}
	}
	return flushed(c, src);
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct conn *c = w->data;
	struct conn *src = c->peer;
	bool was_paused = src != NULL && src->paused;
	(void)loop;
	(void)revents;

	if (c->handshaking) {
		handshake_step(c);
		return;
	}
	if (c->read_wants_write) {
		c->read_wants_write = false;
		on_readable(c->loop, &c->rio, EV_READ);
		if (c->fd < 0 || c->peer != src)
			return;
	}
	switch (conn_flush(c)) {
	case CONN_ERROR:
		ev_io_stop(c->loop, &c->wio);
		c->on_read(c); /* the owner sees eof and cleans up */
		return;
	case CONN_OK:
		/* Bytes the source read before it paused may still wait to be scanned. Only
		 * here: an inline flush is always called by the source's own scan. */
		if (was_paused && c->peer == src && buf_len(&src->in) > src->fwd)
			src->on_read(src);
		return;
	case CONN_AGAIN:
		return;
	}
}

/* Read into p: > 0 bytes, 0 at eof, READ_AGAIN when nothing is there yet, READ_BROKEN. */
#define READ_AGAIN (-1)
#define READ_BROKEN (-2)
static ssize_t receive(struct conn *c, uint8_t *p, size_t n)
{
	size_t got;

	if (c->ssl == NULL) {
		ssize_t r = recv(c->fd, p, n, 0); /* not read(): the socket call skips the VFS */
		if (r >= 0)
			return r;
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? READ_AGAIN
		                                                                 : READ_BROKEN;
	}
	switch (tls_read(c->ssl, p, n, &got)) {
	case TLS_DONE:
		return (ssize_t)got;
	case TLS_CLOSED:
		return 0;
	case TLS_WANT_READ:
		return READ_AGAIN;
	case TLS_WANT_WRITE:
		c->read_wants_write = true;
		if (!ev_is_active(&c->wio))
			ev_io_start(c->loop, &c->wio);
		return READ_AGAIN;
	case TLS_FAILED:
		break;
	}
	return READ_BROKEN;
}

/* One read into `in`. Start small (most clients send short queries) and grow with what
 * arrives. */
static ssize_t read_some(struct conn *c)
{
	size_t room = c->in.cap - c->in.end + c->in.start;
	uint8_t *p = buf_reserve(&c->in, room >= 512 ? room : c->in.cap ? c->in.cap : 1024);
	if (p == NULL)
		return READ_BROKEN;
	ssize_t n = receive(c, p, c->in.cap - c->in.end);
	if (n > 0) {
		c->in.end += (size_t)n;
		if (c->bytes != NULL)
			c->bytes->in += (uint64_t)n;
	}
	return n;
}

static void handshake_step(struct conn *c)
{
	switch (tls_handshake(c->ssl)) {
	case TLS_DONE:
		c->handshaking = false;
		if (ev_is_active(&c->wio) && conn_unsent(c) == 0)
			ev_io_stop(c->loop, &c->wio);
		conn_start_read(c);
		kick_pending(c); /* the first message may have come with the last flight */
		return;
	case TLS_WANT_READ:
		if (ev_is_active(&c->wio))
			ev_io_stop(c->loop, &c->wio);
		conn_start_read(c);
		return;
	case TLS_WANT_WRITE:
		if (!ev_is_active(&c->wio))
			ev_io_start(c->loop, &c->wio);
		return;
	case TLS_CLOSED:
	case TLS_FAILED:
		break;
	}
	c->eof = true;
	conn_stop_read(c);
	if (ev_is_active(&c->wio))
		ev_io_stop(c->loop, &c->wio);
	c->on_read(c);
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct conn *c = w->data;
	bool got = false;
	ssize_t n;
	(void)loop;
	(void)revents;

	if (c->handshaking) {
		handshake_step(c);
		return;
	}
	if (buf_len(&c->in) >= CONN_HIGH_WATER && buf_len(&c->in) >= c->want) {
		pause_read(c);
		c->on_read(c);
		/* the owner may have found that it needs a whole message larger than that */
		if (c->paused && buf_len(&c->in) < c->want)
			resume_read(c);
		return;
	}
	/* A TLS record may hold more than one read takes: drain the session, bounded. */
	do {
		n = read_some(c);
		got |= n > 0;
	} while (n > 0 && c->ssl != NULL && tls_has_pending(c->ssl) &&
	         (buf_len(&c->in) < CONN_HIGH_WATER || buf_len(&c->in) < c->want));
	bool end = n == 0 || n == READ_BROKEN;
	if (got) {
		/* Bytes that came before the end (a last ErrorResponse) reach the owner first. */
		c->on_read(c);
		if (c->fd < 0 || c->eof)
			return;
		if (!end) {
			if (!c->paused)
				kick_pending(c);
			return;
		}
	} else if (!end) {
		return;
	}
	c->eof = true;
	conn_stop_read(c);
	c->on_read(c);
}
