/* client: one client connection, from its startup packet to its last byte. Layer 5. */
#ifndef POOLER_CLIENT_H
#define POOLER_CLIENT_H

#include <stdbool.h>

#include "worker.h"

struct ssl_st;
struct client;

/* Hand c to another worker (the admin console lives on worker 0): it stops here at once,
 * then(c) runs on the new worker's thread once it has it. Nothing of c may be in use on
 * this worker's stack after the call. */
void client_move(struct client *c, struct worker *to, void (*then)(struct client *c));
/* Take over an accepted socket. addr is the peer's address as text, for logs. */
void client_accept(struct worker *w, int fd, const char *addr);

/* Shutdown: close clients that hold no server; the rest close when their transaction ends. */
void client_shutdown_idle(struct worker *w);

/* What SHOW CLIENTS shows of one client. */
struct client_info {
	uint64_t id;
	const char *user;
	const char *db;
	const char *state;
	const char *addr;
	uint64_t connect_us; /* util_now_us() at accept */
	uint64_t request_us; /* the start of its last transaction, or connect_us */
	uint64_t wait_us;    /* queued for a server since then; 0 when not waiting */
	uint64_t server_id;  /* 0 without a server */
	const char *pinned;  /* why it keeps its server, or NULL */
	const char *application_name;
	const char *settings;     /* name=value, ... it set in its session, carried for it */
	const char *node;         /* the node of its current server, or NULL */
	const void *pool;         /* the pool of its current or last transaction, or NULL */
	int fd;                   /* for the socket's addresses */
	int worker;               /* the index of the worker that holds it */
	const struct ssl_st *ssl; /* its TLS session, or NULL */
};

void client_foreach(struct worker *w, void (*fn)(const struct client_info *ci, void *arg),
                    void *arg);

/* KILL: close every client of a database. Returns how many. */
int client_kill_db(struct worker *w, const char *db);
/* KILL_CLIENT: close the client with this id (not a console client). False: none such. */
bool client_kill_id(struct worker *w, uint64_t id);

/* Clients by state, for metrics. */
void client_count(const struct worker *w, struct client_counts *cc);

/* Free closed clients (from the loop's prepare watcher). */
void client_reap(struct worker *w);

/* Close every client at once (fast exit). */
void client_close_all(struct worker *w);

#endif
