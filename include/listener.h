/* listener: the listening sockets (TCP over IPv4/IPv6, and a Unix socket) that hand new
 * connections to the client module. Layer 6. */
#ifndef POOLER_LISTENER_H
#define POOLER_LISTENER_H

#include <stddef.h>

#include "util.h"
#include "worker.h"

struct config;

struct listeners;

/* Bind every address of cfg; NULL with a message in err when any bind fails. */
struct listeners *listener_open(struct worker *w, const struct config *cfg, char *err,
                                size_t errlen) MUST_USE;
void listener_start(struct listeners *ls);
/* Stop accepting and close the sockets (removing the Unix socket file). */
void listener_close(struct listeners *ls);

#endif
