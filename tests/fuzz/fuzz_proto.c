/* Fuzz target: the byte stream a logged-in client sends. Framing, every reader of a client
 * message, and the read-ahead that judges each batch for routing. */
#include <stdbool.h>
#include <string.h>

#include "batch.h"
#include "buf.h"
#include "classify.h"
#include "fuzz.h"
#include "proto.h"

static struct classifier *classifier;

/* Walk a message body the way its readers do; none may read past the end. */
static void read_body(char type, const uint8_t *body, size_t len)
{
	struct proto_reader r;
	struct proto_error e;
	struct sasl_initial si;

	proto_reader_init(&r, body, len);
	switch (type) {
	case 'p': /* PasswordMessage, SASLInitialResponse or SASLResponse */
		(void)proto_parse_sasl_initial(body, len, &si);
		(void)proto_get_str(&r);
		break;
	case 'E':
	case 'N':
		(void)proto_parse_error(body, len, &e);
		break;
	case 'B': { /* portal, statement, formats, values, result formats */
		(void)proto_get_str(&r);
		(void)proto_get_str(&r);
		for (int k = proto_get_u16(&r); k > 0 && !r.err; k--)
			(void)proto_get_u16(&r);
		for (int k = proto_get_u16(&r); k > 0 && !r.err; k--) {
			int32_t n = (int32_t)proto_get_u32(&r);
			if (n > 0)
				(void)proto_get_bytes(&r, (size_t)n);
		}
		break;
	}
	default:
		while (!r.err)
			(void)proto_get_str(&r);
		break;
	}
}

/* An ErrorResponse the pooler writes must read back as written. */
static void error_round_trip(const uint8_t *data, size_t size)
{
	char msg[256];
	size_t n = size < sizeof(msg) - 1 ? size : sizeof(msg) - 1;
	struct buf b;
	struct proto_header h;
	struct proto_error e;

	memcpy(msg, data, n);
	msg[n] = '\0';
	buf_init(&b);
	proto_write_error(&b, "ERROR", SQLSTATE_PROTOCOL_VIOLATION, msg);
	if (proto_read_header(buf_head(&b), buf_len(&b), PROTO_MAX_MESSAGE, &h) != PROTO_OK ||
	    h.type != 'E' || !proto_parse_error(buf_head(&b) + 5, h.len, &e) ||
	    strcmp(e.sqlstate, SQLSTATE_PROTOCOL_VIOLATION) != 0 || strcmp(e.message, msg) != 0)
		abort();
	buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_header h;
	size_t off = 0;

	if (classifier == NULL)
		classifier = classify_new(256);
	while (off < size) {
		enum proto_status st = proto_read_header(data + off, size - off, 1 << 20, &h);
		if (st != PROTO_OK || size - off - 5 < h.len)
			break;
		read_body(h.type, data + off + 5, h.len);
		off += 5 + (size_t)h.len;
	}

	struct stmt_names names;
	memset(&names, 0, sizeof(names));
	for (off = 0; off < size;) {
		struct batch b;
		batch_scan(classifier, data + off, size - off, &names, &b);
		if (!b.complete || b.end == 0)
			break;
		if (b.end > size - off)
			abort(); /* a batch may not end past the bytes it was given */
		off += b.end;
	}
	error_round_trip(data, size);
	return 0;
}
