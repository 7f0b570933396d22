/* authq: the verifier of a user missing from the auth file, looked up on the primary with
 * auth_query as auth_user. Layer 3. Each lookup is its own short libpq connection (pgconn)
 * on the event loop (never a blocking call); answers, "no such user" included, are cached
 * for auth_query_cache_ttl so that a burst of logins asks once. Failures to ask are not
 * cached. A valid-until in the past (third column) counts as no such user. */
#ifndef POOLER_AUTHQ_H
#define POOLER_AUTHQ_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "auth.h"

struct pgconn_tls;
struct authq;
struct authq_lookup;

/* Where and how to ask; the strings are copied by authq_lookup. */
struct authq_target {
	const char *host;
	int port;
	const struct pgconn_tls *tls;
	const char *user;
	const char *password;
	const char *dbname;
	const char *query;
	int timeout_ms;
	int ttl_ms;
};

/* The answer: u is NULL when there is no such usable user or the lookup failed (then
 * error says why, for the log). u is valid only during the call. */
typedef void (*authq_cb)(void *arg, const struct auth_user *u, const char *error);

/* The cache is shared by every worker's authq (authq_cache_new, once per process): an
 * answer one worker got serves logins on all of them. */
struct authq_cache;
struct authq_cache *authq_cache_new(void);
void authq_cache_free(struct authq_cache *c);
struct authq *authq_new(struct ev_loop *loop, struct authq_cache *cache);
void authq_free(struct authq *q);
/* Forget every cached answer (reload). */
void authq_clear(struct authq *q);

/* A cached answer: true when the cache knows; *u is then the user, or NULL for none
 * (a copy, valid until the next authq call on this q). */
bool authq_cached(struct authq *q, const char *name, const struct auth_user **u);

/* Start a lookup whose cb runs later from the loop (never before this returns); the
 * handle cancels it, and is void once cb has run. */
struct authq_lookup *authq_lookup(struct authq *q, const struct authq_target *t, const char *name,
                                  authq_cb cb, void *arg);
void authq_cancel(struct authq_lookup *l);

/* Parse valid-until as written with DateStyle ISO and TimeZone UTC ("infinity" too) and
 * tell whether it lies in the past at now (seconds since the epoch). */
bool authq_expired(const char *valid_until, int64_t now);

#endif
