/* service: what a service manager needs from the daemon, without libsystemd.
 * Layer 0. State goes to the manager as one datagram per change on the AF_UNIX socket named
 * by $NOTIFY_SOCKET (systemd's sd_notify protocol: "READY=1", "RELOADING=1", "STOPPING=1",
 * "STATUS=..."); without that variable nothing is sent. The pidfile is written once the
 * daemon listens and holds an flock for the process's life, so that a second daemon given
 * the same file refuses to start instead of overwriting it, and a stale file (no lock) is
 * simply taken over. */
#ifndef POOLER_SERVICE_H
#define POOLER_SERVICE_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

/* Send a state line (or several, '\n'-separated) to $NOTIFY_SOCKET; true when sent or when
 * there is no manager to tell. */
bool service_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Create or take over path, lock it and write this process's pid into it. Returns the open
 * descriptor (kept for the lock) or -1 with err set. */
int service_pidfile_write(const char *path, char *err, size_t errlen) MUST_USE;

/* Unlink path and close fd, at a normal exit. */
void service_pidfile_remove(const char *path, int fd);

#endif
