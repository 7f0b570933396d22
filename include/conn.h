/* conn: one socket with its libev watchers and buffers, and the relay between two of
 * them. Layer 2.
 *
 * Bytes read from a socket land in `in`. The owner scans them and marks a prefix
 * [0, fwd) as ready for the peer; conn_flush(dst) writes dst->out (what the pooler itself
 * says to dst) and then the peer's ready prefix, with one writev. When dst cannot take
 * everything, its write watcher starts and its peer stops reading (backpressure) until
 * the rest is written; then the peer reads again and its owner is told (on_drain) that
 * everything it forwarded has left.
 *
 * A conn may carry a TLS session (our own for clients, libpq's for servers): reads and
 * writes then go through it, and what is to be written is first copied to `stage`, so
 * that a write OpenSSL must repeat sees the same bytes even if `out` grows meanwhile. */
#ifndef POOLER_CONN_H
#define POOLER_CONN_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct ssl_st;

/* Stop reading when this much waits in `in`, unless the owner wants more (a message it
 * must see whole). */
#define CONN_HIGH_WATER (512 * 1024)

struct conn;
typedef void (*conn_cb)(struct conn *c);

enum conn_result { CONN_OK, CONN_AGAIN, CONN_ERROR };

/* Byte counters a socket adds to as it reads and writes, owned by whoever sums them (the
 * worker for clients, the pool for servers). */
struct conn_bytes {
	uint64_t in;  /* read from the socket */
	uint64_t out; /* written to it */
};

struct conn {
	struct conn *peer; /* relay partner: gets in[0, fwd), sends us its prefix */
	struct ev_loop *loop;
	void *owner; /* the client or server this socket belongs to */
	int fd;
	bool reading;          /* read watcher active */
	bool paused;           /* reading stopped because the peer is full */
	bool eof;              /* the other side closed or the socket failed */
	bool borrowed;         /* fd belongs to libpq: conn_close leaves it open */
	bool handshaking;      /* TLS handshake running: no reads or writes for the owner yet */
	bool read_wants_write; /* a TLS read waits for the socket to take bytes */
	bool moved_rio, moved_wio; /* watchers active when conn_detach stopped them */
	struct ssl_st *ssl;    /* TLS session, or NULL for plain bytes; libpq's when borrowed */
	size_t fwd;            /* bytes at the head of `in` ready for the peer */
	size_t want;           /* the owner needs this many bytes in `in` before it can go on */
	conn_cb on_read;       /* new bytes in `in`, or eof */
	conn_cb on_drain;      /* everything this conn forwarded has been written */

	struct conn_bytes *bytes; /* counts traffic when set (after conn_init) */
	ev_io rio, wio;
	struct buf in;    /* read from this socket */
	struct buf out;   /* written by the pooler itself, sent before relayed bytes */
	struct buf *stage; /* TLS only, made on the first write: bytes handed to OpenSSL, kept
	                    * until written */
};

void conn_init(struct conn *c, struct ev_loop *loop, int fd, void *owner, conn_cb on_read,
               conn_cb on_drain);
/* Stop watchers and close the socket; buffers stay until conn_free. */
void conn_close(struct conn *c);
void conn_free(struct conn *c);

/* A connection moving to another worker's loop: detach on the thread of the loop it
 * leaves (its watchers stop), attach on the thread of the new one (they start again). */
void conn_detach(struct conn *c);
void conn_attach(struct conn *c, struct ev_loop *loop);
void conn_start_read(struct conn *c);
void conn_stop_read(struct conn *c);

/* Move the socket to another fd (libpq may reconnect during login). */
void conn_set_fd(struct conn *c, int fd);

/* Write c->out and then the peer's ready prefix. CONN_AGAIN: the write watcher finishes
 * the job. CONN_ERROR: the socket is broken (c->eof is set). */
enum conn_result conn_flush(struct conn *c) __attribute__((warn_unused_result));

/* Run a server-side TLS handshake on this socket (after answering SSLRequest with 'S').
 * The conn owns the session. When it succeeds the owner just sees the bytes that follow;
 * when it fails the owner sees eof with `handshaking` still set. */
void conn_tls_accept(struct conn *c, struct ssl_st *ssl);
/* Relay through a session someone else set up and owns (libpq's, after login). */
void conn_tls_borrow(struct conn *c, struct ssl_st *ssl);

/* Bytes the pooler queued for this socket and not yet written. */
static inline size_t conn_unsent(const struct conn *c)
{
	return buf_len(&c->out) + (c->stage != NULL ? buf_len(c->stage) : 0);
}

/* Pair two conns for relaying, or undo it. */
void conn_link(struct conn *a, struct conn *b);
void conn_unlink(struct conn *a);

/* Give back the memory of empty buffers (an idle connection should cost little). */
void conn_trim(struct conn *c);

/* Remove n bytes at offset off of `in` (a message the pooler consumes itself). */
void conn_cut(struct conn *c, size_t off, size_t n);

#endif
