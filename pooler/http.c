/* http: see include/http.h. */
#include "http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct http {
	struct MHD_Daemon *daemon;
	pthread_mutex_t lock;
	char *metrics; /* the latest snapshot, owned under lock */
	size_t metrics_len;
	bool ready;
	char reason[200];
	int port;
};

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *type,
                             const char *body, size_t len)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", type);
	enum MHD_Result ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *data_size, void **state)
{
	struct http *h = cls;
	enum MHD_Result ret;
	(void)version;
	(void)data;
	(void)data_size;
	(void)state;

	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return reply(conn, 405, "text/plain", "only GET\n", 9);
	if (strcmp(url, "/health") == 0)
		return reply(conn, 200, "text/plain", "ok\n", 3);
	pthread_mutex_lock(&h->lock);
	if (strcmp(url, "/metrics") == 0) {
		ret = reply(conn, 200, "text/plain; version=0.0.4; charset=utf-8",
		            h->metrics ? h->metrics : "", h->metrics_len);
	} else if (strcmp(url, "/ready") == 0) {
		char body[300];
		/* ready with a reason: serving, with a warning (a cluster's API unreachable) */
		int n = snprintf(body, sizeof(body), "%s%s%s\n", h->ready ? "ready" : "",
		                 h->ready && h->reason[0] ? "; " : "", h->reason);
		if (n >= (int)sizeof(body))
			n = (int)sizeof(body) - 1;
		ret = reply(conn, h->ready ? 200 : 503, "text/plain", body, (size_t)n);
	} else {
		ret = reply(conn, 404, "text/plain", "not found: try /metrics, /health, /ready\n",
		            41);
	}
	pthread_mutex_unlock(&h->lock);
	return ret;
}

struct http *http_start(const char *listen, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	char host[128];
	const char *colon = strrchr(listen, ':');
	long port;
	struct http *h;

	memset(&ss, 0, sizeof(ss));
	if (colon == NULL || (size_t)(colon - listen) >= sizeof(host) ||
	    !util_parse_int(colon + 1, 0, 65535, &port)) {
		snprintf(err, errlen, "metrics_listen \"%s\": expected host:port", listen);
		return NULL;
	}
	memcpy(host, listen, (size_t)(colon - listen));
	host[colon - listen] = '\0';
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD;
	if (host[0] == '[') {
		size_t n = strlen(host);
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
		if (n < 2 || host[n - 1] != ']') {
			snprintf(err, errlen, "metrics_listen \"%s\": bad IPv6 address", listen);
			return NULL;
		}
		host[n - 1] = '\0';
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) != 1) {
			snprintf(err, errlen, "metrics_listen \"%s\": bad IPv6 address", listen);
			return NULL;
		}
		flags |= MHD_USE_IPv6;
	} else {
		struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		if (strcmp(host, "*") == 0 || host[0] == '\0')
			a4->sin_addr.s_addr = htonl(INADDR_ANY);
		else if (inet_pton(AF_INET, host, &a4->sin_addr) != 1) {
			snprintf(err, errlen, "metrics_listen \"%s\": bad IPv4 address", listen);
			return NULL;
		}
	}
	h = util_calloc(1, sizeof(*h));
	pthread_mutex_init(&h->lock, NULL);
	snprintf(h->reason, sizeof(h->reason), "starting");
	h->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR,
	                             (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT, 64,
	                             MHD_OPTION_CONNECTION_TIMEOUT, 10, MHD_OPTION_END);
	if (h->daemon == NULL) {
		snprintf(err, errlen, "metrics_listen %s: cannot listen", listen);
		pthread_mutex_destroy(&h->lock);
		free(h);
		return NULL;
	}
	const union MHD_DaemonInfo *info =
	    MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
	h->port = info ? info->port : (int)port;
	return h;
}

int http_port(const struct http *h)
{
	return h->port;
}

void http_publish(struct http *h, const char *metrics, size_t len, bool ready, const char *reason)
{
	char *copy = malloc(len + 1);
	if (copy == NULL)
		return;
	memcpy(copy, metrics, len);
	copy[len] = '\0';
	pthread_mutex_lock(&h->lock);
	free(h->metrics);
	h->metrics = copy;
	h->metrics_len = len;
	h->ready = ready;
	snprintf(h->reason, sizeof(h->reason), "%s", reason ? reason : "");
	pthread_mutex_unlock(&h->lock);
}

void http_stop(struct http *h)
{
	if (h == NULL)
		return;
	MHD_stop_daemon(h->daemon);
	pthread_mutex_destroy(&h->lock);
	free(h->metrics);
	free(h);
}
