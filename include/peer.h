/* peer: cancel keys that name the pooler that handed them out, and cancel requests sent on
 * to that pooler when they reach another one. Layer 2.
 *
 * Several poolers may answer one address (SO_REUSEPORT, a load balancer), and a client's
 * CancelRequest comes on a new connection that may reach any of them. So the BackendKeyData
 * pid a client gets says where the client is:
 *
 *   bits 31, 30  0 (PostgreSQL's pids are positive; so are ours)
 *   bits 16-29   the pooler's peer_id (0: peering off)
 *   bits 8-15    the index of the worker that holds the client
 *   bits 0-7     random (a pid of 0, for which pgjdbc sends no cancel, becomes 1)
 *
 * and the 32-bit key is random. A pooler whose own peer_id differs from the one in a
 * request sends the 16 bytes on, unchanged, to that peer's [peers] address; the peer checks
 * the key. A request naming the pooler's own id is never sent anywhere: no loops. */
#ifndef POOLER_PEER_H
#define POOLER_PEER_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "worker.h"

#define PEER_WORKERS 256 /* worker indexes a key can carry (8 bits) */
/* Cancel requests being sent on at once, per worker; more are dropped (and logged). */
#define PEER_FORWARDS_MAX 64
/* How long a peer has to accept the connection of a forwarded cancel request. */
#define PEER_CONNECT_TIMEOUT_MS 2000

/* A client's BackendKeyData from the pooler's peer_id, the worker's index and 64 random
 * bits (of which 8 go into the pid, 32 make the key). */
void peer_key_make(int peer_id, int worker, uint64_t random, uint32_t *pid, uint32_t *key);

/* What a BackendKeyData pid says: the peer_id and the worker index it was made with. */
void peer_key_read(uint32_t pid, int *peer_id, int *worker);

/* Send the CancelRequest (pid, key) to peer p without blocking the loop: a non-blocking
 * connect, at most PEER_CONNECT_TIMEOUT_MS, the 16 bytes, close. client_id names the
 * connection that brought it, in log lines. Counts it in w->metrics once written. False
 * when it could not even start (logged). */
bool peer_forward(struct worker *w, const struct peer_conf *p, uint32_t pid, uint32_t key,
                  uint64_t client_id);

#endif
