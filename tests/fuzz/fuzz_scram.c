/* Fuzz target: the server side of a SCRAM-SHA-256(-PLUS) exchange.
 *
 * Input: one flags byte, the client-first-message, a NUL, the client-final-message. In
 * the final message "@N" stands for the server's nonce and a trailing "p=@P" for the
 * proof a client knowing the password would send, so that the fuzzer gets past the
 * random nonce and the hash to the checks behind them. A proof the harness did not
 * compute must never be accepted, and an unknown user never authenticates. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <string.h>

#include "auth.h"
#include "fuzz.h"

static struct auth_user user;
static const uint8_t end_point[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9};

static void hmac(const uint8_t *key, const char *msg, size_t len, uint8_t out[32])
{
	unsigned int n = 32;
	HMAC(EVP_sha256(), key, 32, (const uint8_t *)msg, len, out, &n);
}

/* The proof for the final message text (before ",p="), as a client with the password. */
static void client_proof(const struct scram_state *st, const char *without_proof, char *out,
                         size_t outlen)
{
	uint8_t salted[32], client_key[32], stored[32], sig[32], proof[32];
	size_t alen =
	    strlen(st->client_first_bare) + strlen(st->server_first) + strlen(without_proof) + 3;
	char *auth_msg = malloc(alen);

	if (auth_msg == NULL)
		abort();
	snprintf(auth_msg, alen, "%s,%s,%s", st->client_first_bare, st->server_first,
	         without_proof);
	PKCS5_PBKDF2_HMAC("pencil", 6, user.salt, (int)user.salt_len, user.iterations, EVP_sha256(),
	                  32, salted);
	hmac(salted, "Client Key", 10, client_key);
	SHA256(client_key, 32, stored);
	hmac(stored, auth_msg, strlen(auth_msg), sig);
	for (int i = 0; i < 32; i++)
		proof[i] = client_key[i] ^ sig[i];
	auth_b64_encode(proof, 32, out, outlen);
	free(auth_msg);
}

/* The final message with "@N" replaced by the nonce; *computed set when "p=@P" ended it
 * and was replaced by the right proof. */
static char *final_message(const struct scram_state *st, const char *in, bool *computed)
{
	size_t cap = strlen(in) * (strlen(st->nonce) + 1) + 128;
	char *out = calloc(1, cap);
	size_t o = 0;

	if (out == NULL)
		abort();
	for (const char *p = in; *p;) {
		if (p[0] == '@' && p[1] == 'N') {
			o += (size_t)snprintf(out + o, cap - o, "%s", st->nonce);
			p += 2;
		} else {
			out[o++] = *p++;
		}
	}
	out[o] = '\0';
	*computed = false;
	if (o >= 5 && strcmp(out + o - 5, ",p=@P") == 0) {
		out[o - 5] = '\0';
		char proof[64];
		client_proof(st, out, proof, sizeof(proof));
		snprintf(out + o - 5, cap - (o - 5), ",p=%s", proof);
		*computed = true;
	}
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct scram_state st;
	char out[512];

	if (!user.has_scram && !auth_make_scram("pencil", 16, &user))
		abort();
	if (size < 1)
		return 0;
	uint8_t flags = data[0];
	const char *first = (const char *)data + 1;
	size_t rest = size - 1;
	const char *nul = memchr(first, '\0', rest);
	size_t first_len = nul ? (size_t)(nul - first) : rest;

	struct scram_binding cb = {.plus = (flags & 2) != 0};
	if (flags & 4) {
		cb.data = end_point;
		cb.len = sizeof(end_point);
	}
	const struct auth_user *who = (flags & 1) ? &user : NULL;
	if (!scram_server_first(&st, who, (flags & 8) ? NULL : &cb, first, first_len, out,
	                        sizeof(out))) {
		scram_state_free(&st);
		return 0;
	}
	if (strncmp(out, "r=", 2) != 0)
		abort();
	if (nul != NULL) {
		char *text = fuzz_text((const uint8_t *)nul + 1, rest - first_len - 1);
		bool computed;
		char *final = final_message(&st, text, &computed);
		bool ok = scram_server_final(&st, final, strlen(final), out, sizeof(out));
		if (ok && (who == NULL || !computed))
			abort(); /* authenticated without knowing the password */
		if (ok && strncmp(out, "v=", 2) != 0)
			abort();
		free(final);
		free(text);
	}
	scram_state_free(&st);
	return 0;
}
