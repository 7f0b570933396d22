/* auth: see include/auth.h. The SCRAM steps follow RFC 5802/7677 as PostgreSQL uses them
 * (no channel binding without TLS; the user name inside the SCRAM message is ignored in
 * favour of the startup packet's, as the server does). */
#include "auth.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t auth_b64_encode(const uint8_t *in, size_t n, char *out, size_t outlen)
{
	size_t o = 0;

	if (outlen < ((n + 2) / 3) * 4 + 1)
		return 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = b64chars[(v >> 18) & 63];
		out[o++] = b64chars[(v >> 12) & 63];
		out[o++] = i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? b64chars[v & 63] : '=';
	}
	out[o] = '\0';
	return o;
}

static int b64_value(char c)
{
	const char *p = strchr(b64chars, c);
	return (c != '\0' && p) ? (int)(p - b64chars) : -1;
}

int auth_b64_decode(const char *in, size_t n, uint8_t *out, size_t outlen)
{
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;
	size_t pad = 0;

	if (n % 4 != 0)
		return -1;
	while (pad < 2 && pad < n && in[n - 1 - pad] == '=')
		pad++;
	for (size_t i = 0; i < n - pad; i++) {
		int v = b64_value(in[i]);
		if (v < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o >= outlen)
				return -1;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	return (int)o;
}

static void hex(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static void md5_hex(const void *a, size_t alen, const void *b, size_t blen, char out[33])
{
	uint8_t digest[16];
	unsigned int dlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	EVP_DigestInit_ex(ctx, EVP_md5(), NULL);
	EVP_DigestUpdate(ctx, a, alen);
	EVP_DigestUpdate(ctx, b, blen);
	EVP_DigestFinal_ex(ctx, digest, &dlen);
	EVP_MD_CTX_free(ctx);
	hex(digest, 16, out);
}

void auth_md5_secret(const char *password, const char *user, char out[36])
{
	memcpy(out, "md5", 3);
	md5_hex(password, strlen(password), user, strlen(user), out + 3);
}

bool auth_md5_check(const char *md5_secret, const uint8_t salt[4], const char *response)
{
	char expect[36];

	if (strlen(md5_secret) != 35 || strlen(response) != 35)
		return false;
	memcpy(expect, "md5", 3);
	md5_hex(md5_secret + 3, 32, salt, 4, expect + 3);
	return CRYPTO_memcmp(expect, response, 35) == 0;
}

static void hmac256(const uint8_t *key, size_t klen, const void *msg, size_t mlen,
                    uint8_t out[SCRAM_KEY_LEN])
{
	unsigned int olen = SCRAM_KEY_LEN;
	HMAC(EVP_sha256(), key, (int)klen, msg, mlen, out, &olen);
}

static void derive_keys(const char *password, struct auth_user *u)
{
	uint8_t salted[SCRAM_KEY_LEN], client_key[SCRAM_KEY_LEN];

	PKCS5_PBKDF2_HMAC(password, (int)strlen(password), u->salt, (int)u->salt_len, u->iterations,
	                  EVP_sha256(), SCRAM_KEY_LEN, salted);
	hmac256(salted, sizeof(salted), "Client Key", 10, client_key);
	SHA256(client_key, sizeof(client_key), u->stored_key);
	hmac256(salted, sizeof(salted), "Server Key", 10, u->server_key);
	u->has_scram = true;
}

bool auth_make_scram(const char *password, int iterations, struct auth_user *u)
{
	u->salt_len = 16;
	u->iterations = iterations;
	if (!util_random_bytes(u->salt, u->salt_len))
		return false;
	derive_keys(password, u);
	return true;
}

bool auth_parse_scram_verifier(const char *s, struct auth_user *u)
{
	const char *prefix = "SCRAM-SHA-256$";
	const char *p, *colon, *dollar, *colon2;
	long iter;
	char num[16];

	if (strncmp(s, prefix, strlen(prefix)) != 0)
		return false;
	p = s + strlen(prefix);
	colon = strchr(p, ':');
	dollar = colon ? strchr(colon, '$') : NULL;
	colon2 = dollar ? strchr(dollar, ':') : NULL;
	if (!colon || !dollar || !colon2 || (size_t)(colon - p) >= sizeof(num))
		return false;
	memcpy(num, p, (size_t)(colon - p));
	num[colon - p] = '\0';
	if (!util_parse_int(num, 1, 100000000, &iter))
		return false;
	int n = auth_b64_decode(colon + 1, (size_t)(dollar - colon - 1), u->salt, sizeof(u->salt));
	if (n <= 0)
		return false;
	u->salt_len = (size_t)n;
	if (auth_b64_decode(dollar + 1, (size_t)(colon2 - dollar - 1), u->stored_key,
	                    SCRAM_KEY_LEN) != SCRAM_KEY_LEN)
		return false;
	if (auth_b64_decode(colon2 + 1, strlen(colon2 + 1), u->server_key, SCRAM_KEY_LEN) !=
	    SCRAM_KEY_LEN)
		return false;
	u->iterations = (int)iter;
	u->has_scram = true;
	return true;
}

/* Read one quoted field starting at *p; "" stands for a literal quote. */
static char *quoted_field(const char **p)
{
	const char *s = *p;
	size_t cap = strlen(s) + 1, o = 0;
	char *out;

	while (*s == ' ' || *s == '\t')
		s++;
	if (*s != '"')
		return NULL;
	s++;
	out = util_calloc(1, cap);
	for (;;) {
		if (*s == '\0') {
			free(out);
			return NULL;
		}
		if (*s == '"') {
			if (s[1] == '"') {
				out[o++] = '"';
				s += 2;
				continue;
			}
			s++;
			break;
		}
		out[o++] = *s++;
	}
	out[o] = '\0';
	*p = s;
	return out;
}

bool auth_user_set_secret(struct auth_user *u, const char *secret)
{
	if (strncmp(secret, "SCRAM-SHA-256$", 14) == 0) {
		u->kind = SECRET_SCRAM;
		return auth_parse_scram_verifier(secret, u);
	}
	if (strlen(secret) == 35 && strncmp(secret, "md5", 3) == 0 &&
	    strspn(secret + 3, "0123456789abcdef") == 32) {
		u->kind = SECRET_MD5;
		memcpy(u->md5, secret, 36);
		return true;
	}
	u->kind = SECRET_PLAIN;
	u->plain = util_strdup(secret);
	auth_md5_secret(secret, u->name, u->md5);
	return auth_make_scram(secret, SCRAM_DEFAULT_ITERATIONS, u);
}

struct auth_file *auth_file_load(const char *path, char *err, size_t errlen)
{
	struct auth_file *af = util_calloc(1, sizeof(*af));
	char line[8192];
	int lineno = 0;
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		snprintf(err, errlen, "%s: cannot open auth_file: %s", path, strerror(errno));
		free(af);
		return NULL;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		const char *p = line;
		lineno++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0' || *p == '\n' || *p == '\r' || *p == ';' || *p == '#')
			continue;
		char *name = quoted_field(&p);
		char *secret = name ? quoted_field(&p) : NULL;
		if (secret == NULL) {
			snprintf(err, errlen, "%s:%d: expected \"user\" \"secret\"", path, lineno);
			free(name);
			goto fail;
		}
		af->users = realloc(af->users, sizeof(*af->users) * (size_t)(af->n_users + 1));
		if (af->users == NULL)
			abort();
		struct auth_user *u = &af->users[af->n_users++];
		memset(u, 0, sizeof(*u));
		u->name = name;
		if (!auth_user_set_secret(u, secret)) {
			snprintf(err, errlen, "%s:%d: user \"%s\": %s", path, lineno, name,
			         u->kind == SECRET_SCRAM ? "malformed SCRAM-SHA-256 verifier"
			                                 : "no random bytes for a salt");
			free(secret);
			goto fail;
		}
		free(secret);
	}
	fclose(f);
	return af;
fail:
	fclose(f);
	auth_file_free(af);
	return NULL;
}

void auth_file_free(struct auth_file *af)
{
	if (af == NULL)
		return;
	for (int i = 0; i < af->n_users; i++) {
		free(af->users[i].name);
		if (af->users[i].plain) {
			OPENSSL_cleanse(af->users[i].plain, strlen(af->users[i].plain));
			free(af->users[i].plain);
		}
	}
	free(af->users);
	free(af);
}

const struct auth_user *auth_file_find(const struct auth_file *af, const char *name)
{
	for (int i = 0; i < af->n_users; i++)
		if (strcmp(af->users[i].name, name) == 0)
			return &af->users[i];
	return NULL;
}

/* Find "k=" at the start of an attribute in a comma-separated SCRAM message. */
static const char *scram_attr(const char *msg, char key, size_t *vlen)
{
	const char *p = msg;
	while (p && *p) {
		if (p[0] == key && p[1] == '=') {
			const char *e = strchr(p + 2, ',');
			*vlen = e ? (size_t)(e - p - 2) : strlen(p + 2);
			return p + 2;
		}
		p = strchr(p, ',');
		if (p)
			p++;
	}
	return NULL;
}

/* Check the gs2 header against what this connection offers and remember the c= value
 * that must come back. Returns where client-first-message-bare starts, or NULL. */
static char *scram_gs2(struct scram_state *st, const struct scram_binding *cb, char *msg)
{
	static const char end_point[] = "p=tls-server-end-point,";
	bool offered = cb != NULL && cb->data != NULL;
	bool plus = cb != NULL && cb->plus;
	char *authzid_end, *p = msg;
	uint8_t raw[180]; /* base64 of it fits cbind */
	size_t n;

	if (msg[0] == 'p') {
		if (!plus || !offered || strncmp(msg, end_point, sizeof(end_point) - 1) != 0)
			return NULL;
		p += sizeof(end_point) - 1;
	} else if ((msg[0] == 'n' && msg[1] == ',' && !plus) ||
	           (msg[0] == 'y' && msg[1] == ',' && !plus && !offered)) {
		p += 2;
	} else {
		return NULL;
	}
	/* no ',', or an authorization identity before it, which PostgreSQL refuses too */
	authzid_end = strchr(p, ',');
	if (authzid_end != p)
		return NULL;
	n = (size_t)(authzid_end + 1 - msg);
	if (n + (msg[0] == 'p' ? cb->len : 0) > sizeof(raw))
		return NULL;
	memcpy(raw, msg, n);
	if (msg[0] == 'p') {
		memcpy(raw + n, cb->data, cb->len);
		n += cb->len;
	}
	auth_b64_encode(raw, n, st->cbind, sizeof(st->cbind));
	return authzid_end + 1;
}

bool scram_server_first(struct scram_state *st, const struct auth_user *user,
                        const struct scram_binding *cb, const char *msg, size_t len, char *out,
                        size_t outlen)
{
	char *copy, *bare;
	const char *cnonce;
	size_t cnonce_len;
	uint8_t raw[18];
	char snonce[32], salt64[100];

	memset(st, 0, sizeof(*st));
	if (memchr(msg, '\0', len) != NULL)
		return false;
	copy = strndup(msg, len);
	if (copy == NULL)
		return false;
	bare = scram_gs2(st, cb, copy);
	if (bare == NULL) {
		free(copy);
		return false;
	}
	cnonce = scram_attr(bare, 'r', &cnonce_len);
	if (cnonce == NULL || cnonce_len == 0 || cnonce_len > 64 || strncmp(bare, "n=", 2) != 0) {
		free(copy);
		return false;
	}
	st->client_first_bare = util_strdup(bare);

	if (!util_random_bytes(raw, sizeof(raw))) {
		free(copy);
		return false;
	}
	auth_b64_encode(raw, sizeof(raw), snonce, sizeof(snonce));
	snprintf(st->nonce, sizeof(st->nonce), "%.*s%s", (int)cnonce_len, cnonce, snonce);
	free(copy);

	if (user != NULL && user->has_scram) {
		st->user = user;
	} else {
		/* Unknown user, or a secret SCRAM cannot use: a stable made-up salt. */
		st->mock.iterations = SCRAM_DEFAULT_ITERATIONS;
		st->mock.salt_len = 16;
		if (!util_random_bytes(st->mock.salt, 16))
			return false;
		st->user = &st->mock;
		st->failed = true;
	}
	auth_b64_encode(st->user->salt, st->user->salt_len, salt64, sizeof(salt64));
	int n = snprintf(out, outlen, "r=%s,s=%s,i=%d", st->nonce, salt64, st->user->iterations);
	if (n < 0 || (size_t)n >= outlen)
		return false;
	st->server_first = util_strdup(out);
	return true;
}

bool scram_server_final(struct scram_state *st, const char *msg, size_t len, char *out,
                        size_t outlen)
{
	char *copy = NULL, *auth_msg = NULL;
	const char *proof64, *nonce, *cb;
	size_t proof_len, nonce_len, cb_len, without_proof;
	uint8_t proof[SCRAM_KEY_LEN + 4], sig[SCRAM_KEY_LEN], client_key[SCRAM_KEY_LEN];
	uint8_t stored[SCRAM_KEY_LEN], server_sig[SCRAM_KEY_LEN];
	char sig64[64];
	bool ok = false;

	if (st->server_first == NULL || memchr(msg, '\0', len) != NULL)
		goto done;
	copy = strndup(msg, len);
	if (copy == NULL)
		goto done;
	cb = scram_attr(copy, 'c', &cb_len);
	nonce = scram_attr(copy, 'r', &nonce_len);
	proof64 = scram_attr(copy, 'p', &proof_len);
	if (!cb || !nonce || !proof64 || proof64 < copy + 3 || proof64[-3] != ',')
		goto done;
	/* the gs2 header we accepted, followed by our binding data when it said "p=" */
	if (cb_len != strlen(st->cbind) || strncmp(cb, st->cbind, cb_len) != 0)
		goto done;
	if (nonce_len != strlen(st->nonce) || strncmp(nonce, st->nonce, nonce_len) != 0)
		goto done;
	if (auth_b64_decode(proof64, proof_len, proof, sizeof(proof)) != SCRAM_KEY_LEN)
		goto done;

	without_proof = (size_t)(proof64 - 3 - copy);
	size_t alen = strlen(st->client_first_bare) + strlen(st->server_first) + without_proof + 3;
	auth_msg = util_calloc(1, alen);
	snprintf(auth_msg, alen, "%s,%s,%.*s", st->client_first_bare, st->server_first,
	         (int)without_proof, copy);

	hmac256(st->user->stored_key, SCRAM_KEY_LEN, auth_msg, strlen(auth_msg), sig);
	for (int i = 0; i < SCRAM_KEY_LEN; i++)
		client_key[i] = proof[i] ^ sig[i];
	SHA256(client_key, SCRAM_KEY_LEN, stored);
	if (CRYPTO_memcmp(stored, st->user->stored_key, SCRAM_KEY_LEN) != 0 || st->failed)
		goto done;
	hmac256(st->user->server_key, SCRAM_KEY_LEN, auth_msg, strlen(auth_msg), server_sig);
	auth_b64_encode(server_sig, SCRAM_KEY_LEN, sig64, sizeof(sig64));
	int n = snprintf(out, outlen, "v=%s", sig64);
	ok = n > 0 && (size_t)n < outlen;
done:
	free(copy);
	free(auth_msg);
	return ok;
}

void scram_state_free(struct scram_state *st)
{
	free(st->client_first_bare);
	free(st->server_first);
	st->client_first_bare = st->server_first = NULL;
}
