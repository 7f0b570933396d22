/* patroni: read the answer of Patroni's REST API `GET /cluster`. Layer 1 (pure, no I/O).
 *
 * The body is JSON of one known shape:
 *   {"members": [{"name", "role", "state", "host", "port", "api_url", "lag", "tags"}, ...],
 *    "pause": true, "scheduled_switchover": {...}}
 * The parser is strict about JSON itself (a malformed document is an error, nesting is
 * bounded) and about the fields it uses (a member needs a name, a host and a port of the
 * right types), and skips any other field, so that a newer Patroni adding some still
 * parses. Roles and tags are kept as Patroni spells them, reduced to what routing needs. */
#ifndef POOLER_PATRONI_H
#define POOLER_PATRONI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define PATRONI_MAX_MEMBERS 64
#define PATRONI_NAME_LEN 64

enum patroni_role {
	PATRONI_LEADER,       /* "leader" (or "standby_leader" of a standby cluster: no writes) */
	PATRONI_SYNC_STANDBY, /* "sync_standby" */
	PATRONI_REPLICA,      /* "replica" */
	PATRONI_OTHER,        /* anything else Patroni may write */
};

struct patroni_member {
	char name[PATRONI_NAME_LEN];
	char host[PATRONI_NAME_LEN];
	int port;
	int role;     /* enum patroni_role */
	bool standby; /* role was "standby_leader": leads a standby cluster, takes no writes */
	bool running; /* state "running" or "streaming": PostgreSQL is up as far as Patroni knows */
	char state[24];     /* as Patroni wrote it */
	int64_t lag;        /* bytes behind the leader; -1: unknown or not given (the leader) */
	bool nofailover;    /* tags: never promoted */
	bool noloadbalance; /* tags: takes no reads */
};

struct patroni_cluster {
	struct patroni_member members[PATRONI_MAX_MEMBERS];
	int n_members;
	bool paused; /* "pause": true, maintenance mode: Patroni does not fail over */
};

/* Parse a /cluster body of len bytes into out. False with a message in err when the
 * document is not JSON, not that shape, or names more than PATRONI_MAX_MEMBERS members. */
bool patroni_parse(const char *body, size_t len, struct patroni_cluster *out, char *err,
                   size_t errlen) MUST_USE;

/* The leader that takes writes, or NULL: a member of role leader (not a standby leader). */
const struct patroni_member *patroni_leader(const struct patroni_cluster *c);

/* Split "http://HOST:PORT[/path]" (HOST a numeric address, or localhost: the pooler
 * resolves no names) into host and port. False when it is not such a URL. */
bool patroni_url(const char *url, char *host, size_t hostlen, int *port) MUST_USE;

/* "leader", "sync_standby", "replica", "other". */
const char *patroni_role_name(int role);

#endif
