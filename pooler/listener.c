/* listener: see include/listener.h. */
#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "client.h"
#include "config.h"
#include "log.h"

#define MAX_LISTENERS 16
#define ACCEPTS_PER_WAKEUP 64

struct listener {
	ev_io io;
	struct worker *w;
	int fd;
	bool unix_socket;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

struct listeners {
	struct listener items[MAX_LISTENERS];
	int n;
};

/* A Unix socket client accepted by worker 0, for another worker (Linux spreads only TCP
 * connections over SO_REUSEPORT sockets). */
struct handoff {
	int fd;
};

static void adopt(struct worker *w, void *arg)
{
	struct handoff *h = arg;
	client_accept(w, h->fd, "unix");
	free(h);
}

/* Unix socket clients go round the workers. */
static void accept_unix(struct worker *w, int fd)
{
	struct team *t = w->team;
	struct worker *to = t->all[t->next_accept++ % (unsigned)t->n];

	if (to == w) {
		client_accept(w, fd, "unix");
		return;
	}
	struct handoff *h = util_calloc(1, sizeof(*h));
	h->fd = fd;
	worker_post(to, adopt, h);
}

static void on_accept(struct ev_loop *loop, ev_io *io, int revents)
{
	struct listener *l = io->data;
	(void)loop;
	(void)revents;

	for (int i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
		struct sockaddr_storage sa;
		socklen_t salen = sizeof(sa);
		char addr[64] = "unix";
		int fd =
		    accept4(l->fd, (struct sockaddr *)&sa, &salen, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				log_warning("accept failed: %s", strerror(errno));
			return;
		}
		if (!l->unix_socket) {
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			char host[INET6_ADDRSTRLEN] = "?";
			int port = 0;
			if (sa.ss_family == AF_INET) {
				struct sockaddr_in *s4 = (struct sockaddr_in *)&sa;
				inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
				port = ntohs(s4->sin_port);
			} else if (sa.ss_family == AF_INET6) {
				struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&sa;
				inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
				port = ntohs(s6->sin6_port);
			}
			snprintf(addr, sizeof(addr), "%s:%d", host, port);
		} else {
			accept_unix(l->w, fd);
			continue;
		}
		client_accept(l->w, fd, addr);
	}
}

static bool add(struct listeners *ls, struct worker *w, int fd, bool unix_socket, const char *path)
{
	if (ls->n == MAX_LISTENERS) {
		close(fd);
		return false;
	}
	struct listener *l = &ls->items[ls->n++];
	l->w = w;
	l->fd = fd;
	l->unix_socket = unix_socket;
	util_strlcpy(l->path, path ? path : "", sizeof(l->path));
	ev_io_init(&l->io, on_accept, fd, EV_READ);
	l->io.data = l;
	return true;
}

/* Worker 0, before the workers bind with SO_REUSEPORT: true when the address is free for
 * a socket without it. So another process's SO_REUSEPORT socket on the port is an error
 * ("address in use"), not a silent share of its clients. */
static bool port_free(const struct addrinfo *ai, int worker)
{
	int one = 1, fd;
	bool ok;

	if (worker != 0)
		return true;
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return true; /* the real bind will say what is wrong */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ai->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	ok = bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno != EADDRINUSE;
	close(fd);
	return ok;
}

static bool open_tcp(struct listeners *ls, struct worker *w, const char *host, int port,
                     bool reuseport, char *err, size_t errlen)
{
	struct addrinfo hints = {
	    .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
	struct addrinfo *res, *ai;
	char portstr[16];
	int r;

	snprintf(portstr, sizeof(portstr), "%d", port);
	r = getaddrinfo(strcmp(host, "*") == 0 ? NULL : host, portstr, &hints, &res);
	if (r != 0) {
		snprintf(err, errlen, "listen_addr %s: %s", host, gai_strerror(r));
		return false;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		int one = 1;
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		/* so_reuseport: every process that sets it before bind shares the port, and
		 * the kernel spreads new connections between them; without it the second
		 * bind fails as before. */
		if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
			snprintf(err, errlen, "so_reuseport on %s port %d: %s", host, port,
			         strerror(errno));
			close(fd);
			freeaddrinfo(res);
			return false;
		}
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		if (w->team->n > 1 && !reuseport && !port_free(ai, w->index)) {
			snprintf(err, errlen, "cannot listen on %s port %d: %s", host, port,
			         strerror(EADDRINUSE));
			close(fd);
			freeaddrinfo(res);
			return false;
		}
		/* several workers: each its own socket, the kernel spreads connections */
		if (w->team->n > 1 && !reuseport)
			setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
			snprintf(err, errlen, "cannot listen on %s port %d: %s", host, port,
			         strerror(errno));
			close(fd);
			freeaddrinfo(res);
			return false;
		}
		if (!add(ls, w, fd, false, NULL)) {
			snprintf(err, errlen, "too many listen addresses");
			freeaddrinfo(res);
			return false;
		}
		if (w->index == 0)
			log_info("listening on %s port %d", host, port);
	}
	freeaddrinfo(res);
	return true;
}

static bool open_unix(struct listeners *ls, struct worker *w, const char *dir, int port, char *err,
                      size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/.s.PGSQL.%d", dir, port);
	int fd;

	if (n < 0 || (size_t)n >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "unix_socket_dir %s: path too long", dir);
		return false;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "unix socket: %s", strerror(errno));
		return false;
	}
	/* A socket file left by a crashed run: refuse only when something still answers. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		snprintf(err, errlen, "%s is in use by another process", sa.sun_path);
		close(fd);
		return false;
	}
	unlink(sa.sun_path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 1024) != 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", sa.sun_path, strerror(errno));
		close(fd);
		return false;
	}
	chmod(sa.sun_path, 0777);
	log_info("listening on %s", sa.sun_path);
	if (!add(ls, w, fd, true, sa.sun_path)) {
		snprintf(err, errlen, "too many listen addresses");
		return false;
	}
	return true;
}

/* What opening each address of listen_addr needs. */
struct tcp_open {
	struct listeners *ls;
	struct worker *w;
	int port;
	bool reuseport;
	char *err;
	size_t errlen;
};

static bool open_tcp_each(const char *addr, void *arg)
{
	struct tcp_open *o = arg;
	return open_tcp(o->ls, o->w, addr, o->port, o->reuseport, o->err, o->errlen);
}

struct listeners *listener_open(struct worker *w, const struct config *cfg, char *err,
                                size_t errlen)
{
	struct listeners *ls = util_calloc(1, sizeof(*ls));
	struct tcp_open o = {ls, w, cfg->listen_port, cfg->so_reuseport, err, errlen};

	/* The Unix socket first: whoever sees the TCP port answer can use both. Worker 0
	 * accepts on it for every worker. */
	if (cfg->unix_socket_dir[0] != '\0' && w->index == 0 &&
	    !open_unix(ls, w, cfg->unix_socket_dir, cfg->listen_port, err, errlen))
		goto fail;
	if (!util_split(cfg->listen_addr, open_tcp_each, &o))
		goto fail;
	return ls;
fail:
	listener_close(ls);
	return NULL;
}

void listener_start(struct listeners *ls)
{
	for (int i = 0; i < ls->n; i++)
		ev_io_start(ls->items[i].w->loop, &ls->items[i].io);
}

void listener_close(struct listeners *ls)
{
	if (ls == NULL)
		return;
	for (int i = 0; i < ls->n; i++) {
		struct listener *l = &ls->items[i];
		if (l->w != NULL)
			ev_io_stop(l->w->loop, &l->io);
		close(l->fd);
		if (l->unix_socket)
			unlink(l->path);
	}
	free(ls);
}
