/* batch: read ahead over a client's messages and judge the first batch. Layer 2.
 *
 * A batch is what one routing decision covers: a simple Query, or extended-protocol
 * messages up to Sync or Flush. Pure: bytes in, verdict out, no I/O, safe to fuzz. */
#ifndef POOLER_BATCH_H
#define POOLER_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BATCH_LOOKAHEAD (256 * 1024) /* past this, stop reading ahead: primary */
#define BATCH_STMT_NAMES 32

/* Verdicts of the client's named statements, remembered at Parse for later Binds. */
struct stmt_names {
	char name[BATCH_STMT_NAMES][64];
	bool read_only[BATCH_STMT_NAMES];
	bool restore[BATCH_STMT_NAMES]; /* running it may change settings unseen */
	int next;                       /* ring: the oldest is forgotten first */
	bool unnamed_ro;                /* verdict of the last unnamed statement */
	bool unnamed_restore;
};

/* One batch: a Query message, or extended-protocol messages up to Sync (or Flush, after
 * which the client may wait for answers before it sends more). */
struct batch {
	bool complete;     /* the whole batch is in the buffer */
	bool read_only;    /* every statement in it may run on a replica */
	bool wal;          /* something in it may write: the client's reads must see it after */
	bool begin;        /* opens a transaction block */
	bool begin_ro;     /* ...a READ ONLY one */
	bool serializable; /* asks for serializable isolation (SET TRANSACTION ...) */
	bool terminate;    /* the client said goodbye */
	int8_t session_ro; /* -1, or the session's new default_transaction_read_only */
	uint8_t hint;      /* enum route_hint */
	uint8_t pins;      /* enum pin_reason: session state that binds the client to its server */
	uint8_t resets;    /* enum reset_kind: login settings to bring back after it */
	bool restore;      /* may change settings unseen: restore the server after it */
	char last;         /* type of its last message when complete: 'Q', 'S', 'H', 'X', other */
	size_t end;        /* bytes from the start of the buffer to the end of the batch */
};

struct classifier;

/* The SQL text of a whole Query or Parse message (type, body of len bytes): *text_len
 * bytes from the returned pointer (a Parse's statement name skipped). NULL for other
 * messages, or a Parse without its name's end. */
const char *batch_sql_text(char type, const uint8_t *body, size_t len, size_t *text_len);

/* Whether the batch at p[0, n) may take settings back (RESET, DISCARD ALL): a look at the
 * first message's text only, for clients whose batches are otherwise not scanned. True
 * when the message has not fully arrived. */
bool batch_may_reset(const uint8_t *p, size_t n);

/* Read ahead over client messages in p[0, n) and judge the first batch. */
void batch_scan(struct classifier *cl, const uint8_t *p, size_t n, struct stmt_names *names,
                struct batch *b);

#endif
