/* prepared: protocol-level prepared statements across server connections. Layer 2, pure.
 *
 * In transaction mode a client's next transaction may run on another server connection,
 * or on another node, where its named statements do not exist. The pooler therefore
 * keeps each client's named Parse messages (client_stmts) and names every statement on
 * the servers by a hash of its query text and parameter types ("pooler_" + 16 hex
 * digits). Clients that prepare the same statement, under any names, share one
 * server-side statement per server connection: it is parsed and planned once there.
 *
 * Each server keeps the statements it has in a bounded cache (stmt_cache) ordered by last
 * use; past prepared_statement_cache_size the least recently used one is closed on the
 * server. Before a Bind or Describe reaches a server that lacks the statement, the stored
 * Parse goes ahead of it; a client Parse of a statement the server already has becomes a
 * Close of a name that never exists, whose CloseComplete reaches the client as the
 * ParseComplete it expects; a client's Close of its own statement closes that same
 * nonexistent name, so no other client loses the shared one. The server answers Parse and
 * Close in the order they were sent, so one queue (reply_queue) per server says, for each
 * such answer still due, whether to pass, rewrite or drop it. */
#ifndef POOLER_PREPARED_H
#define POOLER_PREPARED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define PREPARED_NAME_LEN 24 /* "pooler_" + 16 hex digits + NUL */
/* A name the pooler never gives a statement: closing it closes nothing. */
#define PREPARED_NO_NAME "pooler_none"

struct pstmt {
	char *name;    /* the client's name */
	uint64_t hash; /* of query text and parameter types: the statement's identity */
	char server_name[PREPARED_NAME_LEN]; /* "pooler_" + hash, its name on the servers */
	uint8_t *rest; /* the Parse body after the name: query, parameter types */
	size_t rest_len;
};

struct client_stmts {
	struct pstmt *items;
	int n, cap;
	struct buf unnamed;   /* the last unnamed Parse, whole: prepared again on another server
	                       * when a later Bind or Describe of it lands there */
	uint32_t unnamed_gen; /* counts unnamed Parses */
};

/* NULL when cs (NULL: no statements yet) has no such name. */
struct pstmt *pstmts_find(const struct client_stmts *cs, const char *name);
/* Add (or replace) name; rest is the Parse body after the client's name (query,
 * parameter types). Returns the entry. */
struct pstmt *pstmts_add(struct client_stmts *cs, const char *name, const uint8_t *rest,
                         size_t rest_len);
void pstmts_remove(struct client_stmts *cs, const char *name);
void pstmts_free(struct client_stmts *cs);

/* The name of statement hash on the servers. */
void prepared_server_name(uint64_t hash, char out[PREPARED_NAME_LEN]);
/* A whole Parse message of p under its server-side name, into out (malloc'd). */
uint8_t *prepared_parse_message(const struct pstmt *p, size_t *len);
/* A whole Close message for statement name into out (at least 6 + name + 1 bytes). */
size_t prepared_close_message(const char *name, uint8_t *out, size_t cap);

/* Statements present on one server connection, by hash, with their last use. */
struct stmt_cache {
	struct stmt_slot {
		uint64_t hash;
		uint64_t used; /* value of clock at the last Parse, Bind or Describe */
	} * items;
	int n, cap;
	uint64_t clock;
};

bool stmt_cache_has(const struct stmt_cache *s, uint64_t hash);
/* Mark hash used now; false when absent. */
bool stmt_cache_touch(struct stmt_cache *s, uint64_t hash);
void stmt_cache_add(struct stmt_cache *s, uint64_t hash);
void stmt_cache_remove(struct stmt_cache *s, uint64_t hash);
/* The least recently used statement other than keep, removed; 0 when none. */
uint64_t stmt_cache_evict(struct stmt_cache *s, uint64_t keep);
void stmt_cache_clear(struct stmt_cache *s);
void stmt_cache_free(struct stmt_cache *s);

/* What to do with the answer to one Parse or Close the server owes. */
enum reply_kind {
	REPLY_PASS,        /* the client's own Parse or Close: its answer goes through */
	REPLY_PARSE_DROP,  /* a Parse the pooler sent ahead of a Bind: drop ParseComplete */
	REPLY_CLOSE_PARSE, /* stands in for a Parse the server needs not: answer as Parse */
	REPLY_CLOSE_EVICT, /* the pooler closed a cached statement: drop CloseComplete */
};

/* Answers a server may owe at once: grows as needed up to this, far beyond any real
 * pipeline (the client's socket buffers bound what is in flight long before). */
#define REPLY_QUEUE_MAX (1u << 20)

struct reply_entry {
	uint64_t hash;    /* the statement it is about; 0 for the unnamed one */
	uint32_t segment; /* which Sync/Query segment it belongs to */
	uint8_t kind;     /* enum reply_kind */
	char type;        /* the answer due: '1' ParseComplete or '3' CloseComplete */
};

struct reply_queue {
	struct reply_entry *items; /* ring of cap entries, grown by doubling */
	unsigned head, len, cap;
};

bool reply_queue_push(struct reply_queue *q, char type, uint64_t hash, uint32_t segment,
                      uint8_t kind) __attribute__((warn_unused_result));
void reply_queue_free(struct reply_queue *q);
/* The oldest entry, removed into *out; false when empty. */
bool reply_queue_pop(struct reply_queue *q, struct reply_entry *out);
/* The oldest entry, if any, left in place. */
const struct reply_entry *reply_queue_peek(const struct reply_queue *q);

#endif
