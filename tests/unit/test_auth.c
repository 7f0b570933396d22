/* Unit tests for auth: SCRAM-SHA-256 against RFC 7677's example, MD5, the auth file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "auth.h"
#include "log.h"

enum log_level log_min_level = LOG_ERROR;

/* RFC 7677 section 3: user "user", password "pencil". */
#define RFC_VERIFIER                                                                               \
	"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=" \
	":"                                                                                        \
	"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
#define RFC_CLIENT_FIRST "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
#define RFC_NONCE "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_SERVER_FIRST "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define RFC_CLIENT_FINAL "c=biws,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

/* Run step 1, then pin the server nonce to the RFC's so its proof applies. */
static void rfc_first(struct scram_state *st, const struct auth_user *u)
{
	char out[256];
	assert_true(scram_server_first(st, u, NULL, RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST), out,
	                               sizeof(out)));
	assert_memory_equal(out, "r=rOprNGfwEbeRWgbNEkqO", 22); /* client nonce comes first */
	free(st->server_first);
	st->server_first = strdup(RFC_SERVER_FIRST);
	snprintf(st->nonce, sizeof(st->nonce), "%s", RFC_NONCE);
}

static void test_scram_rfc7677(void **state)
{
	struct auth_user u = {0};
	struct scram_state st;
	char out[256];
	(void)state;

	assert_true(auth_parse_scram_verifier(RFC_VERIFIER, &u));
	assert_int_equal(u.iterations, 4096);
	assert_int_equal(u.salt_len, 16);
	rfc_first(&st, &u);
	assert_true(
	    scram_server_final(&st, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL), out, sizeof(out)));
	assert_string_equal(out, RFC_SERVER_FINAL);
	scram_state_free(&st);
}

/* The client side of SCRAM, computed here independently with OpenSSL. */
static void client_final_cb(const char *password, const char *server_first, const char *cfb,
                            const char *cbind, char *out, size_t outlen)
{
	char nonce[128], salt64[128];
	uint8_t salt[64], salted[32], ck[32], sk[32], sig[32], proof[32];
	unsigned int len = 32;
	int iter = 0;
	char without_proof[512], auth_msg[1024], proof64[64];

	assert_int_equal(sscanf(server_first, "r=%127[^,],s=%127[^,],i=%d", nonce, salt64, &iter),
	                 3);
	int salt_len = auth_b64_decode(salt64, strlen(salt64), salt, sizeof(salt));
	assert_true(salt_len > 0);
	PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, salt_len, iter, EVP_sha256(), 32,
	                  salted);
	HMAC(EVP_sha256(), salted, 32, (const uint8_t *)"Client Key", 10, ck, &len);
	SHA256(ck, 32, sk);
	snprintf(without_proof, sizeof(without_proof), "c=%s,r=%s", cbind, nonce);
	snprintf(auth_msg, sizeof(auth_msg), "%s,%s,%s", cfb, server_first, without_proof);
	HMAC(EVP_sha256(), sk, 32, (const uint8_t *)auth_msg, strlen(auth_msg), sig, &len);
	for (int i = 0; i < 32; i++)
		proof[i] = ck[i] ^ sig[i];
	auth_b64_encode(proof, 32, proof64, sizeof(proof64));
	snprintf(out, outlen, "%s,p=%s", without_proof, proof64);
}

static void client_final(const char *password, const char *server_first, const char *cfb, char *out,
                         size_t outlen)
{
	client_final_cb(password, server_first, cfb, "biws", out, outlen);
}

/* c= for a "p=tls-server-end-point,," header and this binding data. */
static void cbind_value(const uint8_t *data, size_t len, char *out, size_t outlen)
{
	static const char gs2[] = "p=tls-server-end-point,,";
	uint8_t raw[128];

	memcpy(raw, gs2, sizeof(gs2) - 1);
	memcpy(raw + sizeof(gs2) - 1, data, len);
	auth_b64_encode(raw, sizeof(gs2) - 1 + len, out, outlen);
}

static void test_scram_channel_binding(void **state)
{
	struct auth_user u = {0};
	struct scram_state st;
	uint8_t ours[32], theirs[32];
	char first[256], final[768], out[256], cbind[128];
	const char *cf = "p=tls-server-end-point,,n=,r=clientnonce123";
	(void)state;

	memset(ours, 0x5a, sizeof(ours));
	memset(theirs, 0xa5, sizeof(theirs));
	struct scram_binding plus = {.data = ours, .len = sizeof(ours), .plus = true};
	assert_true(auth_make_scram("s3cret", 4096, &u));

	/* the binding data of our certificate: accepted */
	assert_true(scram_server_first(&st, &u, &plus, cf, strlen(cf), first, sizeof(first)));
	cbind_value(ours, sizeof(ours), cbind, sizeof(cbind));
	client_final_cb("s3cret", first, cf + 24, cbind, final, sizeof(final));
	assert_true(scram_server_final(&st, final, strlen(final), out, sizeof(out)));
	scram_state_free(&st);

	/* the right password through a man in the middle, who shows another certificate */
	assert_true(scram_server_first(&st, &u, &plus, cf, strlen(cf), first, sizeof(first)));
	cbind_value(theirs, sizeof(theirs), cbind, sizeof(cbind));
	client_final_cb("s3cret", first, cf + 24, cbind, final, sizeof(final));
	assert_false(scram_server_final(&st, final, strlen(final), out, sizeof(out)));
	scram_state_free(&st);

	/* a header that does not bind after picking -PLUS, or "biws" after binding */
	assert_false(scram_server_first(&st, &u, &plus, "n,,n=,r=abc", 11, first, sizeof(first)));
	scram_state_free(&st);
	assert_true(scram_server_first(&st, &u, &plus, cf, strlen(cf), first, sizeof(first)));
	client_final("s3cret", first, cf + 24, final, sizeof(final));
	assert_false(scram_server_final(&st, final, strlen(final), out, sizeof(out)));
	scram_state_free(&st);
}

static void test_scram_binding_negotiation(void **state)
{
	struct auth_user u = {0};
	struct scram_state st;
	uint8_t ours[32] = {1};
	char first[256];
	struct scram_binding offered = {.data = ours, .len = sizeof(ours), .plus = false};
	struct scram_binding plain_tcp = {0};
	(void)state;

	assert_true(auth_make_scram("s3cret", 4096, &u));
	/* "p=" needs the -PLUS mechanism, and TLS */
	const char *p = "p=tls-server-end-point,,n=,r=abc";
	assert_false(scram_server_first(&st, &u, &offered, p, strlen(p), first, sizeof(first)));
	scram_state_free(&st);
	assert_false(scram_server_first(&st, &u, NULL, p, strlen(p), first, sizeof(first)));
	scram_state_free(&st);
	/* only tls-server-end-point is offered */
	struct scram_binding plus = offered;
	plus.plus = true;
	const char *unique = "p=tls-unique,,n=,r=abc";
	assert_false(
	    scram_server_first(&st, &u, &plus, unique, strlen(unique), first, sizeof(first)));
	scram_state_free(&st);
	/* "y": fine without TLS, a downgrade when -PLUS was offered */
	assert_true(
	    scram_server_first(&st, &u, &plain_tcp, "y,,n=,r=abc", 11, first, sizeof(first)));
	scram_state_free(&st);
	assert_false(
	    scram_server_first(&st, &u, &offered, "y,,n=,r=abc", 11, first, sizeof(first)));
	scram_state_free(&st);
	/* "n" on TLS with plain SCRAM-SHA-256: allowed, as PostgreSQL does */
	assert_true(scram_server_first(&st, &u, &offered, "n,,n=,r=abc", 11, first, sizeof(first)));
	scram_state_free(&st);
}

static void test_scram_with_plain_secret(void **state)
{
	struct auth_user u = {0};
	struct scram_state st;
	char first[256], final[512], out[256];
	const char *cf = "n,,n=,r=clientnonce123";
	(void)state;

	assert_true(auth_make_scram("s3cret", 4096, &u));
	assert_true(scram_server_first(&st, &u, NULL, cf, strlen(cf), first, sizeof(first)));
	client_final("s3cret", first, cf + 3, final, sizeof(final));
	assert_true(scram_server_final(&st, final, strlen(final), out, sizeof(out)));
	assert_memory_equal(out, "v=", 2);
	scram_state_free(&st);

	assert_true(scram_server_first(&st, &u, NULL, cf, strlen(cf), first, sizeof(first)));
	client_final("wrong", first, cf + 3, final, sizeof(final));
	assert_false(scram_server_final(&st, final, strlen(final), out, sizeof(out)));
	scram_state_free(&st);
}

static void test_scram_wrong_proof_fails(void **state)
{
	struct auth_user u = {0};
	struct scram_state st;
	char out[256];
	const char *bad = "c=biws,r=" RFC_NONCE ",p=AHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
	(void)state;

	assert_true(auth_parse_scram_verifier(RFC_VERIFIER, &u));
	rfc_first(&st, &u);
	assert_false(scram_server_final(&st, bad, strlen(bad), out, sizeof(out)));
	scram_state_free(&st);
}

static void test_scram_wrong_nonce_fails(void **state)
{
	struct auth_user u = {0};
	struct scram_state st;
	char out[256];
	const char *bad = "c=biws,r=rOprNGfwEbeRWgbNEkqO-other,p="
	                  "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
	(void)state;

	assert_true(auth_parse_scram_verifier(RFC_VERIFIER, &u));
	rfc_first(&st, &u);
	assert_false(scram_server_final(&st, bad, strlen(bad), out, sizeof(out)));
	scram_state_free(&st);
}

static void test_scram_unknown_user_always_fails(void **state)
{
	struct scram_state st;
	char out[256];
	(void)state;

	/* The exchange runs (so the client cannot tell) but can never succeed. */
	assert_true(scram_server_first(&st, NULL, NULL, RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST),
	                               out, sizeof(out)));
	assert_non_null(strstr(out, ",s="));
	assert_non_null(strstr(out, ",i=4096"));
	assert_false(
	    scram_server_final(&st, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL), out, sizeof(out)));
	scram_state_free(&st);
}

static void test_scram_rejects_malformed_first(void **state)
{
	const char *cases[] = {"", "x,,n=user,r=abc", "p=tls-server-end-point,,n=u,r=abc",
	                       "n,,n=user", "n,,r=abc", "n,",
	                       /* an authorization identity: refused, as PostgreSQL does */
	                       "n,a=bob,n=,r=abc"};
	char out[256];
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct scram_state st;
		assert_false(scram_server_first(&st, NULL, NULL, cases[i], strlen(cases[i]), out,
		                                sizeof(out)));
		scram_state_free(&st);
	}
}

static void test_md5(void **state)
{
	char secret[36];
	const uint8_t salt[4] = {1, 2, 3, 4};
	(void)state;

	auth_md5_secret("pencil", "user", secret);
	assert_string_equal(secret, "md520c46e3762c864548e296b33c3406aa9");
	assert_true(auth_md5_check(secret, salt, "md54376eb6913b38f9aaff38dc7cf19ca76"));
	assert_false(auth_md5_check(secret, salt, "md54376eb6913b38f9aaff38dc7cf19ca77"));
	assert_false(auth_md5_check(secret, salt, "md5short"));
}

static void test_base64_round_trip(void **state)
{
	uint8_t in[7] = {0, 1, 2, 250, 251, 252, 253}, back[16];
	char enc[32];
	(void)state;

	for (size_t n = 0; n <= sizeof(in); n++) {
		size_t len = auth_b64_encode(in, n, enc, sizeof(enc));
		assert_int_equal(len % 4, 0);
		assert_int_equal(auth_b64_decode(enc, len, back, sizeof(back)), (int)n);
		assert_memory_equal(back, in, n);
	}
	assert_int_equal(auth_b64_decode("abc", 3, back, sizeof(back)), -1);
	assert_int_equal(auth_b64_decode("a=bc", 4, back, sizeof(back)), -1);
	assert_int_equal(auth_b64_decode("ab!c", 4, back, sizeof(back)), -1);
}

static char *write_temp(const char *text)
{
	static char path[64];
	snprintf(path, sizeof(path), "/tmp/pooler-test-auth-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void test_auth_file_kinds(void **state)
{
	char err[256];
	(void)state;
	char *path = write_temp("; comment\n"
	                        "\"plain\" \"pa\"\"ss\"\n"
	                        "# another comment\n"
	                        "\"md5u\" \"md520c46e3762c864548e296b33c3406aa9\"\n"
	                        "\"scram\" \"" RFC_VERIFIER "\"\n");
	struct auth_file *af = auth_file_load(path, err, sizeof(err));
	unlink(path);
	assert_non_null(af);
	assert_int_equal(af->n_users, 3);

	const struct auth_user *u = auth_file_find(af, "plain");
	assert_non_null(u);
	assert_int_equal(u->kind, SECRET_PLAIN);
	assert_string_equal(u->plain, "pa\"ss");
	assert_true(u->has_scram); /* derived at load for SCRAM logins */

	u = auth_file_find(af, "md5u");
	assert_int_equal(u->kind, SECRET_MD5);
	assert_false(u->has_scram);

	u = auth_file_find(af, "scram");
	assert_int_equal(u->kind, SECRET_SCRAM);
	assert_int_equal(u->iterations, 4096);
	assert_null(auth_file_find(af, "nobody"));
	auth_file_free(af);
}

static void test_auth_file_errors_name_line(void **state)
{
	char err[256];
	(void)state;
	char *path = write_temp("\"ok\" \"x\"\n\"broken\n");
	assert_null(auth_file_load(path, err, sizeof(err)));
	assert_non_null(strstr(err, ":2:"));
	unlink(path);

	path = write_temp("\"bad\" \"SCRAM-SHA-256$x:y$z\"\n");
	assert_null(auth_file_load(path, err, sizeof(err)));
	assert_non_null(strstr(err, "malformed SCRAM"));
	unlink(path);

	assert_null(auth_file_load("/nonexistent/users.txt", err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/users.txt"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_scram_rfc7677),
	    cmocka_unit_test(test_scram_with_plain_secret),
	    cmocka_unit_test(test_scram_wrong_proof_fails),
	    cmocka_unit_test(test_scram_channel_binding),
	    cmocka_unit_test(test_scram_binding_negotiation),
	    cmocka_unit_test(test_scram_wrong_nonce_fails),
	    cmocka_unit_test(test_scram_unknown_user_always_fails),
	    cmocka_unit_test(test_scram_rejects_malformed_first),
	    cmocka_unit_test(test_md5),
	    cmocka_unit_test(test_base64_round_trip),
	    cmocka_unit_test(test_auth_file_kinds),
	    cmocka_unit_test(test_auth_file_errors_name_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
