/* conn: see include/conn.h. */
#include "conn.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

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
	if (!c->borrowed)
		close(c->fd);
	c->fd = -1;
	c->reading = false;
}

void conn_free(struct conn *c)
{
	conn_close(c);
	buf_free(&c->in);
	buf_free(&c->out);
}

void conn_start_read(struct conn *c)
{
	c->reading = true;
	if (c->fd >= 0 && !c->paused && !ev_is_active(&c->rio))
		ev_io_start(c->loop, &c->rio);
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
	if (c->reading && c->fd >= 0 && !ev_is_active(&c->rio))
		ev_io_start(c->loop, &c->rio);
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

enum conn_result conn_flush(struct conn *c)
{
	struct conn *src = c->peer;

	if (c->fd < 0)
		return CONN_ERROR;
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
		ssize_t n = writev(c->fd, iov, n_iov);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (!ev_is_active(&c->wio))
					ev_io_start(c->loop, &c->wio);
				if (src && src->fwd > 0)
					pause_read(src);
				return CONN_AGAIN;
			}
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
	if (ev_is_active(&c->wio))
		ev_io_stop(c->loop, &c->wio);
	if (src && src->paused)
		resume_read(src);
	if (src && src->on_drain)
		src->on_drain(src);
	return CONN_OK;
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct conn *c = w->data;
	struct conn *src = c->peer;
	bool was_paused = src != NULL && src->paused;
	(void)loop;
	(void)revents;

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

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct conn *c = w->data;
	(void)loop;
	(void)revents;

	if (buf_len(&c->in) >= CONN_HIGH_WATER) {
		pause_read(c);
		c->on_read(c);
		return;
	}
	/* Start small (most clients send short queries) and grow with what arrives. */
	size_t room = c->in.cap - c->in.end + c->in.start;
	uint8_t *p = buf_reserve(&c->in, room >= 512 ? room : c->in.cap ? c->in.cap : 1024);
	if (p == NULL) {
		c->eof = true;
		c->on_read(c);
		return;
	}
	ssize_t n = read(c->fd, p, c->in.cap - c->in.end);
	if (n > 0) {
		c->in.end += (size_t)n;
		if (c->bytes != NULL)
			c->bytes->in += (uint64_t)n;
	} else if (n == 0) {
		c->eof = true;
	} else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
		return;
	} else {
		c->eof = true;
	}
	if (c->eof)
		conn_stop_read(c);
	c->on_read(c);
}
