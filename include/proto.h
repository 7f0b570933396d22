/* proto: PostgreSQL v3 wire protocol framing, readers and writers.
 * Layer 1: pure functions over byte ranges and buffers, no I/O, safe to fuzz. */
#ifndef POOLER_PROTO_H
#define POOLER_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define PROTO_V3 0x00030000u
#define PROTO_SSL_REQUEST 80877103u
#define PROTO_GSSENC_REQUEST 80877104u
#define PROTO_CANCEL_REQUEST 80877102u
#define PROTO_MAX_STARTUP 10000u      /* PostgreSQL's own limit on a startup packet */
/* Body bytes of the largest message PostgreSQL reads: its limit on the length field is
 * MaxAllocSize - 1 (0x3ffffffe), and the field counts its own 4 bytes. */
#define PROTO_MAX_MESSAGE (0x3ffffffeu - 4u)
#define PROTO_MAX_PARAMS 64

/* SQLSTATEs the pooler itself raises. */
#define SQLSTATE_PROTOCOL_VIOLATION "08P01"
#define SQLSTATE_CONNECTION_FAILURE "08006"
#define SQLSTATE_CANNOT_CONNECT_NOW "57P03"
#define SQLSTATE_ADMIN_SHUTDOWN "57P01"
#define SQLSTATE_QUERY_CANCELED "57014"
#define SQLSTATE_INVALID_PASSWORD "28P01"
#define SQLSTATE_INVALID_AUTH_SPEC "28000"
#define SQLSTATE_UNKNOWN_DATABASE "3D000"
#define SQLSTATE_FEATURE_NOT_SUPPORTED "0A000"
#define SQLSTATE_PROGRAM_LIMIT_EXCEEDED "54000"
#define SQLSTATE_TOO_MANY_CONNECTIONS "53300"
#define SQLSTATE_IDLE_SESSION_TIMEOUT "57P05"
#define SQLSTATE_IDLE_IN_TX_TIMEOUT "25P03"
#define SQLSTATE_INTERNAL_ERROR "XX000"

/* A message header: one type byte and a length that counts itself but not the type. */
struct proto_header {
	char type;
	uint32_t len; /* body length, without the 4 length bytes */
};

enum proto_status { PROTO_OK, PROTO_INCOMPLETE, PROTO_BAD };

/* Read the header of a typed message at p[0..n). PROTO_BAD for a length under 4 or
 * over max. */
enum proto_status proto_read_header(const uint8_t *p, size_t n, uint32_t max,
                                    struct proto_header *h);

/* A bounds-checked cursor over one message body; any overrun sets err. */
struct proto_reader {
	const uint8_t *p;
	const uint8_t *end;
	bool err;
};

void proto_reader_init(struct proto_reader *r, const uint8_t *p, size_t n);
uint8_t proto_get_u8(struct proto_reader *r);
uint16_t proto_get_u16(struct proto_reader *r);
uint32_t proto_get_u32(struct proto_reader *r);
const char *proto_get_str(struct proto_reader *r); /* NUL-terminated inside the body */
const uint8_t *proto_get_bytes(struct proto_reader *r, size_t n);

/* The first packet a client sends, already stripped of its length word. */
enum startup_kind {
	STARTUP_V3,
	STARTUP_SSL,
	STARTUP_GSSENC,
	STARTUP_CANCEL,
	STARTUP_BAD_VERSION,
	STARTUP_TOO_MANY_PARAMS, /* well formed, but over PROTO_MAX_PARAMS pairs */
	STARTUP_MALFORMED
};

struct startup {
	enum startup_kind kind;
	uint32_t version;
	uint32_t cancel_pid, cancel_key; /* STARTUP_CANCEL */
	int nparams;
	const char *names[PROTO_MAX_PARAMS]; /* point into the packet */
	const char *values[PROTO_MAX_PARAMS];
};

/* Parse a startup packet body (everything after the 4 length bytes). */
enum startup_kind proto_parse_startup(const uint8_t *body, size_t len, struct startup *s);
const char *proto_startup_get(const struct startup *s, const char *name);

/* A run-time parameter name as the startup packet may carry it: letters, digits, '_'
 * and '.', not empty. */
bool proto_valid_param_name(const char *s);

/* The startup `options` value: words "-c name=value", "-cname=value" or "--name=value",
 * with backslash escapes and '-' in names read as '_'. Calls fn for each pair, stopping
 * when it returns false. False for any other word, a bad name, a word over 1 kB, or fn's
 * refusal. */
typedef bool (*proto_option_fn)(void *arg, const char *name, const char *value);
bool proto_parse_options(const char *opts, proto_option_fn fn, void *arg);

/* A SASLInitialResponse body: the mechanism, then the client's first message. */
struct sasl_initial {
	const char *mechanism;
	const uint8_t *data;
	size_t len;
};
/* False when malformed or when the initial response is absent (length -1), which no
 * mechanism the pooler offers allows. */
bool proto_parse_sasl_initial(const uint8_t *body, size_t len, struct sasl_initial *out);

/* Writers append one complete message to b. */
size_t proto_begin(struct buf *b, char type);
void proto_end(struct buf *b, size_t start);
void proto_write_error(struct buf *b, const char *severity, const char *sqlstate,
                       const char *message);
void proto_write_auth(struct buf *b, uint32_t code, const void *data, size_t len);
void proto_write_param(struct buf *b, const char *name, const char *value);
void proto_write_key(struct buf *b, uint32_t pid, uint32_t key);
void proto_write_ready(struct buf *b, char status);
void proto_write_query(struct buf *b, const char *sql);

/* Authentication request codes. */
#define AUTH_OK 0
#define AUTH_MD5 5
#define AUTH_SASL 10
#define AUTH_SASL_CONTINUE 11
#define AUTH_SASL_FINAL 12

/* Fields of an ErrorResponse / NoticeResponse body. */
struct proto_error {
	const char *severity;
	const char *sqlstate;
	const char *message;
};
bool proto_parse_error(const uint8_t *body, size_t len, struct proto_error *e);

#endif
