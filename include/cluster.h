/* cluster: one Patroni cluster as its REST API describes it, polled on the event loop.
 * Layer 2.
 *
 * Every poll_interval it sends `GET /cluster` over a plain non-blocking socket (HTTP/1.1,
 * Connection: close, numeric loopback or LAN addresses: no name lookups) to one of the
 * configured Patroni URLs, starting with the one that answered last and moving on to the
 * next when one fails, all within one timeout per URL. The answer (patroni.h) becomes the
 * cluster's view. A round in which no URL answers keeps the last view: `reachable` turns
 * false, the owner is told, and the view is what routing goes on using.
 *
 * The owner learns of every round through on_poll, with `changed` true when the set of
 * members (name, address, noloadbalance tag) differs from the previous view: that asks
 * for a new generation of nodes. Roles and states change without it. */
#ifndef POOLER_CLUSTER_H
#define POOLER_CLUSTER_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "patroni.h"

struct cluster;

/* After each round: changed = the member set differs from the one before. */
typedef void (*cluster_poll_cb)(struct cluster *c, bool changed, void *arg);

struct cluster {
	char *name; /* of its [cluster.NAME] section */
	char *urls; /* as configured, comma-separated */
	char **url_list;
	int n_urls;
	int interval_ms, timeout_ms;

	struct patroni_cluster view;     /* the last answer: members, roles, states, tags */
	bool known;                      /* some round has answered since start */
	bool reachable;                  /* the last round reached a member */
	uint64_t polls_ok, polls_failed; /* requests, one per URL tried */
	uint64_t rounds_failed;          /* rounds in which no URL answered */
	uint64_t changes;                /* rounds whose member set differed */
	uint64_t last_ok_us;             /* when a round last answered */
	char last_error[200];            /* why the last request failed */
	char asked[64];                  /* the URL that answered last, or is being asked */

	/* the request in flight */
	struct ev_loop *loop;
	ev_timer tick;     /* every interval_ms */
	ev_timer deadline; /* timeout_ms per URL */
	ev_io io;
	int fd;        /* -1: no request in flight */
	int url_at;    /* index of the URL asked */
	int tried;     /* URLs tried in this round */
	size_t sent;   /* bytes of the request written */
	struct buf in; /* the answer so far */
	char request[256];
	size_t request_len;

	cluster_poll_cb on_poll;
	void *cb_arg;
};

/* A stopped cluster for section name (config.c has checked its URLs). */
struct cluster *cluster_new(const char *name, const char *urls, int interval_ms, int timeout_ms,
                            struct ev_loop *loop, cluster_poll_cb cb, void *arg);
/* Start polling: the first round at once. */
void cluster_start(struct cluster *c);
/* New interval and timeout (reload), keeping the view. */
void cluster_set_timing(struct cluster *c, int interval_ms, int timeout_ms);
void cluster_free(struct cluster *c);

/* The member called name in the view, or NULL. */
const struct patroni_member *cluster_member(const struct cluster *c, const char *name);

#endif
