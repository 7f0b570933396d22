/* http: the HTTP endpoint for /metrics, /health and /ready. Layer 5.
 *
 * libmicrohttpd serves it from its own thread, so no request can stall the data path.
 * That thread never touches the worker: the worker publishes a snapshot (metrics text and
 * readiness) about once a second, and requests read the latest one under a mutex. */
#ifndef POOLER_HTTP_H
#define POOLER_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

struct http;

/* Listen on "host:port" (IPv4, or [IPv6]:port); port 0 picks a free one. */
struct http *http_start(const char *listen, char *err, size_t errlen) MUST_USE;
int http_port(const struct http *h);
void http_publish(struct http *h, const char *metrics, size_t len, bool ready, const char *reason);
void http_stop(struct http *h);

#endif
