/* prepared: protocol-level prepared statements across server connections. Layer 2, pure.
 *
 * In transaction mode a client's next transaction may run on another server connection,
 * or on another node, where its named statements do not exist. The pooler therefore
 * keeps each client's named Parse messages (client_stmts) and gives every statement a
 * server-side name of its own ("pooler_" + a hash of client, name and text), so that
 * clients never collide. Before a Bind or Describe reaches a server that lacks the
 * statement, the stored Parse is sent ahead of it; its ParseComplete is dropped on the way
 * back. Each server keeps the names it has (stmt_set) and, in order, the Parses whose
 * answers are still due (parse_queue). */
#ifndef POOLER_PREPARED_H
#define POOLER_PREPARED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PREPARED_NAME_LEN 24 /* "pooler_" + 16 hex digits + NUL */

struct pstmt {
	char *name;                          /* the client's name */
	char server_name[PREPARED_NAME_LEN]; /* the name on every server */
	uint8_t *parse;                      /* the whole Parse message, under server_name */
	size_t parse_len;
};

struct client_stmts {
	struct pstmt *items;
	int n, cap;
};

struct pstmt *pstmts_find(const struct client_stmts *cs, const char *name);
/* Add (or replace) name; body is the Parse body after the client's name (query,
 * parameter types). Returns the entry. */
struct pstmt *pstmts_add(struct client_stmts *cs, uint64_t client_id, const char *name,
                         const uint8_t *rest, size_t rest_len);
void pstmts_remove(struct client_stmts *cs, const char *name);
void pstmts_free(struct client_stmts *cs);

/* Statement names present on one server connection. */
struct stmt_set {
	char (*names)[PREPARED_NAME_LEN];
	int n, cap;
};

bool stmt_set_has(const struct stmt_set *s, const char *name);
void stmt_set_add(struct stmt_set *s, const char *name);
void stmt_set_remove(struct stmt_set *s, const char *name);
void stmt_set_clear(struct stmt_set *s);
void stmt_set_free(struct stmt_set *s);

/* Parses sent to a server whose ParseComplete (or error) is still due, oldest first. */
#define PARSE_QUEUE_LEN 512

struct parse_entry {
	char name[PREPARED_NAME_LEN]; /* server-side name, "" for the unnamed statement */
	uint32_t segment;             /* which Sync/Query segment it belongs to */
	bool injected;                /* sent by the pooler: drop its ParseComplete */
};

struct parse_queue {
	struct parse_entry items[PARSE_QUEUE_LEN];
	unsigned head, len;
};

bool parse_queue_push(struct parse_queue *q, const char *name, uint32_t segment, bool injected);
/* The oldest entry, removed into *out; false when empty. */
bool parse_queue_pop(struct parse_queue *q, struct parse_entry *out);
/* An error ended this segment: its remaining Parses will never be answered. */
void parse_queue_drop_segment(struct parse_queue *q, uint32_t segment);
bool parse_queue_has(const struct parse_queue *q, const char *name);

#endif
