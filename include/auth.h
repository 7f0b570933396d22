/* auth: the auth file, and the server side of SCRAM-SHA-256 and MD5 as pure steps.
 * Layer 2. No I/O beyond reading the auth file; the client module moves the bytes. */
#ifndef POOLER_AUTH_H
#define POOLER_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define SCRAM_KEY_LEN 32
#define SCRAM_DEFAULT_ITERATIONS 4096

enum secret_kind { SECRET_PLAIN, SECRET_MD5, SECRET_SCRAM };

struct auth_user {
	char *name;
	enum secret_kind kind;
	char *plain;  /* SECRET_PLAIN only */
	char md5[36]; /* "md5" + 32 hex digits; set for PLAIN and MD5 */
	/* SCRAM verifier; derived once at load for PLAIN secrets */
	bool has_scram;
	int iterations;
	uint8_t salt[64];
	size_t salt_len;
	uint8_t stored_key[SCRAM_KEY_LEN];
	uint8_t server_key[SCRAM_KEY_LEN];
};

struct auth_file {
	struct auth_user *users;
	int n_users;
};

/* Load PgBouncer's userlist format: one `"user" "secret"` per line, `;` or `#` comments,
 * `""` inside quotes for a literal quote. */
struct auth_file *auth_file_load(const char *path, char *err, size_t errlen) MUST_USE;
void auth_file_free(struct auth_file *af);
const struct auth_user *auth_file_find(const struct auth_file *af, const char *name);

/* Fill u (whose name is set) from a secret as the auth file or pg_shadow holds it:
 * a SCRAM-SHA-256 verifier, "md5" + 32 hex digits, or a plain password. False when a
 * verifier is malformed (u->kind says SECRET_SCRAM then). */
bool auth_user_set_secret(struct auth_user *u, const char *secret) MUST_USE;

/* md5 of password+user, hex, with the "md5" prefix (36 bytes with NUL). */
void auth_md5_secret(const char *password, const char *user, char out[36]);
/* Check a client's PasswordMessage answer to an MD5 challenge with this salt. */
bool auth_md5_check(const char *md5_secret, const uint8_t salt[4], const char *response);

/* Parse "SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>" into u. */
bool auth_parse_scram_verifier(const char *s, struct auth_user *u) MUST_USE;
/* Build a verifier for a plain password with a fresh random salt. */
bool auth_make_scram(const char *password, int iterations, struct auth_user *u) MUST_USE;

/* One SCRAM-SHA-256 exchange, server side. Step 1 takes the client-first-message and
 * produces the server-first-message; step 2 takes the client-final-message, checks the
 * proof and produces the server-final-message. With user == NULL (unknown user) the
 * exchange runs against a made-up verifier and always fails at step 2, so that an
 * outsider cannot tell unknown users from wrong passwords. */
struct scram_state {
	const struct auth_user *user;
	struct auth_user mock;
	char *client_first_bare;
	char *server_first;
	char nonce[96];
	char cbind[256]; /* the c= attribute the client-final-message must carry */
	bool failed;
};

/* Channel binding (RFC 5802 section 6). On TLS the server offers SCRAM-SHA-256-PLUS with
 * tls-server-end-point, whose data is the hash of its certificate. */
struct scram_binding {
	const uint8_t *data; /* NULL: not on TLS, SCRAM-SHA-256 only */
	size_t len;
	bool plus; /* the client picked SCRAM-SHA-256-PLUS */
};

/* cb NULL means no TLS. A client that picks -PLUS must bind (gs2 "p="); one that binds
 * must have picked -PLUS; "y" (client could bind but thinks we cannot) fails when we
 * offered -PLUS, since then someone removed it on the way. */
bool scram_server_first(struct scram_state *st, const struct auth_user *user,
                        const struct scram_binding *cb, const char *msg, size_t len, char *out,
                        size_t outlen) MUST_USE;
bool scram_server_final(struct scram_state *st, const char *msg, size_t len, char *out,
                        size_t outlen) MUST_USE;
void scram_state_free(struct scram_state *st);

/* Base64 helpers (standard alphabet, padded). */
size_t auth_b64_encode(const uint8_t *in, size_t n, char *out, size_t outlen);
int auth_b64_decode(const char *in, size_t n, uint8_t *out, size_t outlen);

#endif
