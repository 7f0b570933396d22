/* tls: OpenSSL contexts for the client side, and the non-blocking TLS steps the conn
 * layer runs on its sockets (handshake, read, write). Layer 1: no event loop here; every
 * step reports "would block" as a value and the caller waits for the socket.
 *
 * The same steps serve the server side, where libpq did the handshake and lends the
 * pooler its SSL object (PQsslStruct) for the relay. */
#ifndef POOLER_TLS_H
#define POOLER_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util.h"

struct config;
struct ssl_st;     /* OpenSSL's SSL */
struct ssl_ctx_st; /* OpenSSL's SSL_CTX */

enum tls_result {
	TLS_DONE,       /* the step finished (or moved bytes) */
	TLS_WANT_READ,  /* wait until the socket is readable, then repeat the step */
	TLS_WANT_WRITE, /* wait until the socket is writable, then repeat the step */
	TLS_CLOSED,     /* the peer closed the session (read only) */
	TLS_FAILED,     /* broken: close the connection */
};

/* The context clients' TLS sessions come from, built from the [pooler] client_tls_* keys.
 * NULL with err[0] == '\0' when client_tls_sslmode = disable; NULL with a message naming
 * the key and file when a certificate, key or CA file cannot be used. */
struct ssl_ctx_st *tls_server_ctx_new(const struct config *cfg, char *err, size_t errlen) MUST_USE;
void tls_ctx_free(struct ssl_ctx_st *ctx);

/* Parse client_tls_protocols into OpenSSL version numbers (0 = no bound). */
bool tls_parse_protocols(const char *s, int *min_version, int *max_version) MUST_USE;

/* A server-side session on an accepted socket; the handshake runs in tls_handshake. */
struct ssl_st *tls_session_new(struct ssl_ctx_st *ctx, int fd) MUST_USE;
/* Make a session fit for the conn layer (partial writes, moving write buffers). */
void tls_session_prepare(struct ssl_st *ssl);
void tls_session_free(struct ssl_st *ssl);

enum tls_result tls_handshake(struct ssl_st *ssl);
/* Read up to n bytes; *got is what arrived when the result is TLS_DONE. */
enum tls_result tls_read(struct ssl_st *ssl, void *p, size_t n, size_t *got);
/* Write up to n bytes; *put is what left when TLS_DONE. After WANT_*, repeat with the
 * same bytes (their address may change). */
enum tls_result tls_write(struct ssl_st *ssl, const void *p, size_t n, size_t *put);
/* Decrypted or buffered bytes wait inside the session: the socket may stay quiet. */
bool tls_has_pending(struct ssl_st *ssl);

/* The common name of the client's certificate, when one was presented and verified
 * against client_tls_ca_file. */
bool tls_peer_cn(struct ssl_st *ssl, char *out, size_t outlen) MUST_USE;

/* RFC 5929 tls-server-end-point: the hash of our certificate, with its signature's hash
 * (SHA-256 when that is MD5 or SHA-1). Returns its length, 0 on failure. */
size_t tls_server_end_point(struct ssl_st *ssl, uint8_t *out, size_t outlen);

/* "TLSv1.3/TLS_AES_256_GCM_SHA384": protocol and cipher of a session, as SHOW CLIENTS and
 * SHOW SERVERS show them; "" without TLS (ssl NULL). */
void tls_describe(const struct ssl_st *ssl, char *text, size_t len);

#endif
