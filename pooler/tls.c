/* tls: see include/tls.h. */
#include "tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config.h"

static void openssl_error(char *out, size_t outlen)
{
	unsigned long e = ERR_get_error();

	if (e == 0)
		snprintf(out, outlen, "%s", errno ? strerror(errno) : "unknown error");
	else
		ERR_error_string_n(e, out, outlen);
	ERR_clear_error();
}

static const struct {
	const char *name;
	int version;
} versions[] = {
    {"tlsv1", TLS1_VERSION},     {"tlsv1.0", TLS1_VERSION},   {"tlsv1.1", TLS1_1_VERSION},
    {"tlsv1.2", TLS1_2_VERSION}, {"tlsv1.3", TLS1_3_VERSION},
};

/* The range so far of a client_tls_protocols list; lo is 0 until a name sets it. */
struct proto_range {
	int lo, hi;
};

static bool add_protocol(const char *name, void *arg)
{
	struct proto_range *r = arg;
	int v = 0;

	if (strcasecmp(name, "all") == 0) {
		r->lo = TLS1_VERSION;
		r->hi = TLS1_3_VERSION;
		return true;
	}
	if (strcasecmp(name, "secure") == 0) {
		r->lo = r->lo && r->lo < TLS1_2_VERSION ? r->lo : TLS1_2_VERSION;
		r->hi = TLS1_3_VERSION;
		return true;
	}
	for (size_t i = 0; i < ARRAY_LEN(versions); i++)
		if (strcasecmp(name, versions[i].name) == 0)
			v = versions[i].version;
	if (v == 0)
		return false;
	r->lo = r->lo == 0 || v < r->lo ? v : r->lo;
	r->hi = v > r->hi ? v : r->hi;
	return true;
}

bool tls_parse_protocols(const char *s, int *min_version, int *max_version)
{
	struct proto_range r = {0, 0};

	if (strlen(s) >= 256) /* the limit this parser always had: no real list comes near */
		return false;
	if (!util_split(s, add_protocol, &r) || r.lo == 0)
		return false;
	*min_version = r.lo;
	*max_version = r.hi;
	return true;
}

/* OpenSSL would ask for the passphrase of an encrypted key on the terminal, blocking the
 * daemon: refuse instead, so that the error names the key file. */
static int no_passphrase(char *buf, int size, int rwflag, void *arg)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)arg;
	return 0;
}

static struct ssl_ctx_st *ctx_fail(SSL_CTX *ctx, char *err, size_t errlen, const char *key,
                                   const char *file, const char *what)
{
	char why[256];

	openssl_error(why, sizeof(why));
	snprintf(err, errlen, "[pooler] %s: %s %s: %s", key, what, file ? file : "", why);
	SSL_CTX_free(ctx);
	return NULL;
}

struct ssl_ctx_st *tls_server_ctx_new(const struct config *cfg, char *err, size_t errlen)
{
	int lo, hi;
	SSL_CTX *ctx;

	err[0] = '\0';
	if (cfg->client_tls_sslmode == TLS_DISABLE)
		return NULL;
	if (!tls_parse_protocols(cfg->client_tls_protocols, &lo, &hi)) {
		snprintf(err, errlen,
		         "[pooler] client_tls_protocols: \"%s\" is not allowed (allowed: "
		         "comma-separated tlsv1.0, tlsv1.1, tlsv1.2, tlsv1.3, or secure, all)",
		         cfg->client_tls_protocols);
		return NULL;
	}
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL)
		return ctx_fail(ctx, err, errlen, "client_tls_sslmode", NULL, "no TLS context");
	SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
	SSL_CTX_set_min_proto_version(ctx, lo);
	SSL_CTX_set_max_proto_version(ctx, hi);
	/* Renegotiation would let a write wait for a read; nothing needs it. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (strcasecmp(cfg->client_tls_ciphers, "default") != 0 &&
	    SSL_CTX_set_cipher_list(ctx, cfg->client_tls_ciphers) != 1)
		return ctx_fail(ctx, err, errlen, "client_tls_ciphers", cfg->client_tls_ciphers,
		                "no usable cipher in");
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->client_tls_cert_file) != 1)
		return ctx_fail(ctx, err, errlen, "client_tls_cert_file", cfg->client_tls_cert_file,
		                "cannot load certificate");
	if (SSL_CTX_use_PrivateKey_file(ctx, cfg->client_tls_key_file, SSL_FILETYPE_PEM) != 1)
		return ctx_fail(ctx, err, errlen, "client_tls_key_file", cfg->client_tls_key_file,
		                "cannot load private key (PEM, not encrypted)");
	if (SSL_CTX_check_private_key(ctx) != 1)
		return ctx_fail(ctx, err, errlen, "client_tls_key_file", cfg->client_tls_key_file,
		                "does not match client_tls_cert_file");
	if (cfg->client_tls_ca_file != NULL && cfg->client_tls_ca_file[0] != '\0') {
		if (SSL_CTX_load_verify_locations(ctx, cfg->client_tls_ca_file, NULL) != 1)
			return ctx_fail(ctx, err, errlen, "client_tls_ca_file",
			                cfg->client_tls_ca_file, "cannot load CA certificates");
		/* Ask every client for a certificate (cert auth may need it); only the
		 * verify modes turn a missing one into a failed handshake. */
		int mode = SSL_VERIFY_PEER;
		if (cfg->client_tls_sslmode >= TLS_VERIFY_CA)
			mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
		SSL_CTX_set_verify(ctx, mode, NULL);
		SSL_CTX_set_client_CA_list(ctx, SSL_load_client_CA_file(cfg->client_tls_ca_file));
	}
	return ctx;
}

void tls_ctx_free(struct ssl_ctx_st *ctx)
{
	SSL_CTX_free(ctx);
}

void tls_session_prepare(struct ssl_st *ssl)
{
	SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}

struct ssl_st *tls_session_new(struct ssl_ctx_st *ctx, int fd)
{
	SSL *ssl = SSL_new(ctx);

	if (ssl == NULL)
		return NULL;
	if (SSL_set_fd(ssl, fd) != 1) {
		SSL_free(ssl);
		return NULL;
	}
	SSL_set_accept_state(ssl);
	tls_session_prepare(ssl);
	return ssl;
}

void tls_session_free(struct ssl_st *ssl)
{
	if (ssl == NULL)
		return;
	/* Best effort close_notify; never waits. */
	if (SSL_is_init_finished(ssl))
		(void)SSL_shutdown(ssl);
	SSL_free(ssl);
	ERR_clear_error();
}

static enum tls_result result_of(SSL *ssl, int r)
{
	switch (SSL_get_error(ssl, r)) {
	case SSL_ERROR_WANT_READ:
		return TLS_WANT_READ;
	case SSL_ERROR_WANT_WRITE:
		return TLS_WANT_WRITE;
	case SSL_ERROR_ZERO_RETURN:
		return TLS_CLOSED;
	case SSL_ERROR_SYSCALL:
		if (errno == EAGAIN || errno == EINTR)
			return TLS_WANT_READ;
		ERR_clear_error();
		return TLS_FAILED;
	default:
		ERR_clear_error();
		return TLS_FAILED;
	}
}

enum tls_result tls_handshake(struct ssl_st *ssl)
{
	int r;

	ERR_clear_error();
	errno = 0;
	r = SSL_do_handshake(ssl);
	return r == 1 ? TLS_DONE : result_of(ssl, r);
}

enum tls_result tls_read(struct ssl_st *ssl, void *p, size_t n, size_t *got)
{
	size_t done = 0;
	int r;

	ERR_clear_error();
	errno = 0;
	r = SSL_read_ex(ssl, p, n, &done);
	*got = done;
	return r == 1 ? TLS_DONE : result_of(ssl, r);
}

enum tls_result tls_write(struct ssl_st *ssl, const void *p, size_t n, size_t *put)
{
	size_t done = 0;
	int r;

	ERR_clear_error();
	errno = 0;
	r = SSL_write_ex(ssl, p, n, &done);
	*put = done;
	if (r == 1)
		return TLS_DONE;
	enum tls_result res = result_of(ssl, r);
	return res == TLS_CLOSED ? TLS_FAILED : res;
}

bool tls_has_pending(struct ssl_st *ssl)
{
	return SSL_pending(ssl) > 0 || SSL_has_pending(ssl);
}

bool tls_peer_cn(struct ssl_st *ssl, char *out, size_t outlen)
{
	X509 *cert = SSL_get1_peer_certificate(ssl);
	bool ok = false;

	if (cert == NULL)
		return false;
	if (SSL_get_verify_result(ssl) == X509_V_OK) {
		int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, out,
		                                  (int)outlen);
		/* a CN with an embedded NUL would compare as a shorter name */
		ok = n > 0 && (size_t)n < outlen && strlen(out) == (size_t)n;
	}
	X509_free(cert);
	return ok;
}

size_t tls_server_end_point(struct ssl_st *ssl, uint8_t *out, size_t outlen)
{
	X509 *cert = SSL_get_certificate(ssl);
	int md_nid, pk_nid;
	const EVP_MD *md;
	unsigned int n = 0;

	if (cert == NULL || !OBJ_find_sigid_algs(X509_get_signature_nid(cert), &md_nid, &pk_nid))
		return 0;
	/* RFC 5929 section 4.1: MD5 and SHA-1 are replaced by SHA-256. */
	if (md_nid == NID_md5 || md_nid == NID_sha1 || md_nid == NID_undef)
		md = EVP_sha256();
	else
		md = EVP_get_digestbynid(md_nid);
	if (md == NULL || (size_t)EVP_MD_get_size(md) > outlen)
		return 0;
	if (X509_digest(cert, md, out, &n) != 1)
		return 0;
	return n;
}

void tls_describe(const struct ssl_st *ssl, char *text, size_t len)
{
	if (ssl == NULL || !SSL_is_init_finished(ssl)) {
		snprintf(text, len, "%s", "");
		return;
	}
	snprintf(text, len, "%s/%s", SSL_get_version(ssl), SSL_get_cipher_name(ssl));
}
