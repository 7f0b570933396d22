/* service: see include/service.h. */
#include "service.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

bool service_notify(const char *fmt, ...)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char msg[512];
	va_list ap;

	if (path == NULL || path[0] == '\0')
		return true;
	size_t plen = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || plen >= sizeof(sa.sun_path))
		return false;
	memcpy(sa.sun_path, path, plen);
	if (sa.sun_path[0] == '@') /* an abstract socket */
		sa.sun_path[0] = '\0';
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(msg))
		return false;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	/* a datagram socket never blocks long; MSG_NOSIGNAL: a vanished manager is no signal */
	ssize_t sent = sendto(fd, msg, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&sa,
	                      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen));
	close(fd);
	return sent == n;
}

int service_pidfile_write(const char *path, char *err, size_t errlen)
{
	char text[32], other[32] = "";
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);

	if (fd < 0) {
		snprintf(err, errlen, "pidfile %s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		ssize_t n = read(fd, other, sizeof(other) - 1);
		other[n > 0 ? n : 0] = '\0';
		other[strcspn(other, "\n")] = '\0';
		snprintf(err, errlen, "pidfile %s: held by a running pooler (pid %s)", path,
		         other[0] ? other : "?");
		close(fd);
		return -1;
	}
	int n = snprintf(text, sizeof(text), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)n, 0) != n) {
		snprintf(err, errlen, "pidfile %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

void service_pidfile_remove(const char *path, int fd)
{
	if (fd < 0)
		return;
	unlink(path);
	close(fd);
}
