/* peer: see include/peer.h. */
#include "peer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "proto.h"

#define PEER_ID_BITS 14
#define WORKER_BITS 8
_Static_assert((1 << PEER_ID_BITS) - 1 == CONFIG_PEER_ID_MAX, "peer_id's range is 14 bits");
_Static_assert(1 << WORKER_BITS == PEER_WORKERS, "a worker index is 8 bits");

/* The random bits come from the upper half of the word, xorshift64*'s better one. A pid of
 * 0 becomes 1: some drivers (pgjdbc) send no cancel request at all for pid 0. */
void peer_key_make(int peer_id, int worker, uint64_t random, uint32_t *pid, uint32_t *key)
{
	*pid = ((uint32_t)peer_id & CONFIG_PEER_ID_MAX) << 16 |
	       ((uint32_t)worker & (PEER_WORKERS - 1)) << 8 | (uint32_t)(random >> 24 & 0xff);
	if (*pid == 0)
		*pid = 1;
	*key = (uint32_t)(random >> 32);
}

void peer_key_read(uint32_t pid, int *peer_id, int *worker)
{
	*peer_id = (int)(pid >> 16 & CONFIG_PEER_ID_MAX);
	*worker = (int)(pid >> 8 & (PEER_WORKERS - 1));
}

/* One cancel request on its way to a peer: the socket, its deadline, the bytes. */
struct forward {
	ev_io io;       /* writable: connected (or failed) */
	ev_timer timer; /* PEER_CONNECT_TIMEOUT_MS */
	struct worker *w;
	uint64_t client_id;
	int peer_id;
	char address[300]; /* for log lines */
	uint8_t packet[16];
};

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void forward_done(struct forward *f)
{
	ev_io_stop(f->w->loop, &f->io);
	ev_timer_stop(f->w->loop, &f->timer);
	close(f->io.fd);
	f->w->peer_forwards--;
	free(f);
}

static void on_writable(struct ev_loop *loop, ev_io *io, int revents)
{
	struct forward *f = io->data;
	int err = 0;
	socklen_t len = sizeof(err);
	(void)loop;
	(void)revents;

	if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	if (err == 0 &&
	    send(io->fd, f->packet, sizeof(f->packet), MSG_NOSIGNAL) != (ssize_t)sizeof(f->packet))
		err = errno ? errno : EIO;
	if (err != 0) {
		log_warning("c=%llu forwarding a cancel request to peer %d at %s failed: %s",
		            (unsigned long long)f->client_id, f->peer_id, f->address,
		            strerror(err));
	} else {
		f->w->metrics.cancels_forwarded++;
		log_info("c=%llu cancel request forwarded to peer %d at %s",
		         (unsigned long long)f->client_id, f->peer_id, f->address);
	}
	forward_done(f);
}

static void on_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct forward *f = t->data;
	(void)loop;
	(void)revents;

	log_warning("c=%llu forwarding a cancel request to peer %d at %s failed: no connection "
	            "within %d ms",
	            (unsigned long long)f->client_id, f->peer_id, f->address,
	            PEER_CONNECT_TIMEOUT_MS);
	forward_done(f);
}

/* The socket, connecting: the connect's outcome shows as writability. -1 after logging. */
static int start_connect(const struct peer_conf *p, const char *address, uint64_t client_id)
{
	int fd = socket(p->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0 || (connect(fd, (const struct sockaddr *)&p->addr, p->addrlen) != 0 &&
	               errno != EINPROGRESS)) {
		log_warning("c=%llu forwarding a cancel request to peer %d at %s failed: %s",
		            (unsigned long long)client_id, p->id, address, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

bool peer_forward(struct worker *w, const struct peer_conf *p, uint32_t pid, uint32_t key,
                  uint64_t client_id)
{
	char address[300];

	config_peer_address(p, address, sizeof(address));
	/* A flood of requests naming a peer must not turn into as many sockets. */
	if (w->peer_forwards >= PEER_FORWARDS_MAX) {
		log_warning("c=%llu cancel request for peer %d dropped: %d already on their way",
		            (unsigned long long)client_id, p->id, w->peer_forwards);
		return false;
	}
	int fd = start_connect(p, address, client_id);
	if (fd < 0)
		return false;
	struct forward *f = util_calloc(1, sizeof(*f));
	f->w = w;
	f->client_id = client_id;
	f->peer_id = p->id;
	util_strlcpy(f->address, address, sizeof(f->address));
	/* The request as the client wrote it: length, code, pid, key. */
	put_u32(f->packet, sizeof(f->packet));
	put_u32(f->packet + 4, PROTO_CANCEL_REQUEST);
	put_u32(f->packet + 8, pid);
	put_u32(f->packet + 12, key);
	ev_io_init(&f->io, on_writable, fd, EV_WRITE);
	f->io.data = f;
	ev_timer_init(&f->timer, on_timeout, PEER_CONNECT_TIMEOUT_MS / 1000.0, 0);
	f->timer.data = f;
	ev_io_start(w->loop, &f->io);
	ev_timer_start(w->loop, &f->timer);
	w->peer_forwards++;
	return true;
}
