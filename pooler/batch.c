/* batch: see include/batch.h. */
#include "batch.h"

#include <string.h>

#include "classify.h"
#include "proto.h"
#include "util.h"

static void remember(struct stmt_names *names, const char *name, bool read_only, bool restore)
{
	if (name[0] == '\0') {
		names->unnamed_ro = read_only;
		names->unnamed_restore = restore;
		return;
	}
	int i;
	for (i = 0; i < BATCH_STMT_NAMES; i++)
		if (strcmp(names->name[i], name) == 0)
			break;
	if (i == BATCH_STMT_NAMES) {
		i = names->next;
		names->next = (names->next + 1) % BATCH_STMT_NAMES;
		util_strlcpy(names->name[i], name, sizeof(names->name[i]));
	}
	names->read_only[i] = read_only;
	names->restore[i] = restore;
}

/* The verdict remembered for a statement: whether it only reads, and (*restore) whether
 * running it may change settings unseen. A statement never seen (or pushed out of the
 * ring) is not read-only; its Parse was judged for pins when it went by. */
static bool recall(const struct stmt_names *names, const char *name, bool *restore)
{
	if (name[0] == '\0') {
		*restore = names->unnamed_restore;
		return names->unnamed_ro;
	}
	for (int i = 0; i < BATCH_STMT_NAMES; i++)
		if (names->name[i][0] != '\0' && strcmp(names->name[i], name) == 0) {
			*restore = names->restore[i];
			return names->read_only[i];
		}
	*restore = false;
	return false;
}

static void merge(struct batch *b, const struct verdict *v)
{
	b->read_only = b->read_only && v->read_only;
	b->begin = b->begin || v->begin;
	b->begin_ro = b->begin_ro || v->begin_read_only;
	b->serializable = b->serializable || v->serializable;
	if (v->session_ro >= 0)
		b->session_ro = v->session_ro;
	if (b->hint == HINT_NONE)
		b->hint = v->hint;
	if (v->pins != PIN_NONE)
		b->pins = v->pins;
	if (v->resets > b->resets)
		b->resets = v->resets;
	b->restore = b->restore || v->restore;
	b->wal = b->wal || v->wal;
}

const char *batch_sql_text(char type, const uint8_t *body, size_t len, size_t *text_len)
{
	const char *text = (const char *)body;

	if (type == 'P') {
		size_t skip = strnlen(text, len) + 1; /* the statement name */
		if (skip > len)
			return NULL;
		text += skip;
		len -= skip;
	} else if (type != 'Q') {
		return NULL;
	}
	*text_len = len;
	return text;
}

bool batch_may_reset(const uint8_t *p, size_t n)
{
	struct proto_header h;
	size_t len;

	if (proto_read_header(p, n, PROTO_MAX_MESSAGE, &h) != PROTO_OK || n - 5 < h.len)
		return true;
	const char *text = batch_sql_text(h.type, p + 5, h.len, &len);
	if (text == NULL)
		return h.type == 'P'; /* a broken Parse: let the full scan judge it */
	return classify_may_reset(text, len);
}

/* A batch judged without reading on: nothing in it may go to a replica. */
static void unsure(struct batch *b)
{
	b->read_only = false;
	b->wal = true;
}

/* The batch ends with the message of this type, at off. */
static void ends(struct batch *b, char type, size_t off)
{
	b->complete = true;
	b->last = type;
	b->end = off;
}

/* Judge one extended-protocol message of the batch (Parse, Bind, Describe, Execute,
 * Close): the statements it runs and remembers. */
static void judge_extended(struct classifier *cl, struct stmt_names *names, struct batch *b,
                           char type, struct proto_reader *r)
{
	if (type == 'P') {
		const char *name = proto_get_str(r);
		const char *sql = proto_get_str(r);
		if (r->err) {
			unsure(b);
			return;
		}
		struct verdict v = classify_sql(cl, sql, strlen(sql));
		merge(b, &v);
		/* a primary hint in the text holds for every later Bind of it too */
		remember(names, name,
		         v.read_only && v.hint != HINT_PRIMARY && (!v.begin || v.begin_read_only),
		         v.restore);
	} else if (type == 'B') {
		proto_get_str(r); /* portal */
		const char *stmt = proto_get_str(r);
		bool restore = false;
		if (r->err || !recall(names, stmt, &restore))
			unsure(b);
		b->restore |= restore;
	}
}

void batch_scan(struct classifier *cl, const uint8_t *p, size_t n, struct stmt_names *names,
                struct batch *b)
{
	size_t off = 0;

	*b = (struct batch){.read_only = true, .session_ro = -1};
	for (;;) {
		struct proto_header h;
		if (off >= BATCH_LOOKAHEAD) {
			unsure(b);
			ends(b, 0, off); /* last stays 0: cut short, not a message's end */
			return;
		}
		if (proto_read_header(p + off, n - off, PROTO_MAX_MESSAGE, &h) != PROTO_OK ||
		    n - off < 5 + (size_t)h.len) {
			if (n - off >= 5 && h.len > BATCH_LOOKAHEAD) {
				/* a huge message: no need to see it to know it's not for a replica
				 */
				unsure(b);
				ends(b, 0, off);
			}
			return;
		}
		struct proto_reader r;
		proto_reader_init(&r, p + off + 5, h.len);
		off += 5 + h.len;
		switch (h.type) {
		case 'Q': {
			const char *sql = proto_get_str(&r);
			if (r.err) {
				unsure(b);
			} else {
				struct verdict v = classify_sql(cl, sql, strlen(sql));
				merge(b, &v);
			}
			ends(b, h.type, off);
			return;
		}
		case 'P':
		case 'B':
		case 'D':
		case 'E':
		case 'C':
			judge_extended(cl, names, b, h.type, &r);
			break;
		case 'X':
			b->terminate = true;
			ends(b, h.type, off);
			return;
		case 'S':
		case 'H':
			ends(b, h.type, off);
			return;
		default:
			/* FunctionCall, COPY data, or garbage the relay will refuse: no replica,
			 * and nothing to wait for */
			unsure(b);
			ends(b, h.type, off);
			return;
		}
	}
}
