/* pool's private parts, shared by pool.c and pool_team.c. */
#ifndef POOLER_POOL_INTERNAL_H
#define POOLER_POOL_INTERNAL_H

#include "pool.h"

/* What a server of a pool with no client tells its pool (pool.c). */
extern const struct server_ops pool_server_ops;

/* Open connections while clients wait and the pool has room, and keep min_size open. */
void pool_fill(struct pool *p);
/* A free server: to the first waiting client, else idle. */
void pool_hand_over(struct pool *p, struct server *s);
/* Close a server without refilling its pool (the room is someone else's). */
void pool_close_quietly(struct pool *p, struct server *s, const char *why);
/* A free server goes to a pool of another worker that waited longer (pool_team.c):
 * true when it went (or closed to make its room). */
bool pool_yield(struct pool *p, struct server *s);

#endif
