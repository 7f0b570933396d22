/* hba: who may log in how, from a pg_hba.conf-style file (auth_hba_file). Layer 1, pure:
 * the parser and the matcher do no I/O beyond reading the file.
 *
 * One rule per line: TYPE DATABASE USER [ADDRESS] METHOD, `#` starts a comment.
 *   TYPE      local (unix socket) | host (TCP, with or without TLS) | hostssl | hostnossl
 *   DATABASE  all, a name, or a comma-separated list of names
 *   USER      all, a name, or a comma-separated list of names
 *   ADDRESS   (not for local) all, an IPv4 or IPv6 address with /prefix, or a bare address
 *   METHOD    scram-sha-256 | md5 | trust | reject | cert
 * Rules are tried in order; the first whose type, database, user and address match
 * decides. No match rejects. */
#ifndef POOLER_HBA_H
#define POOLER_HBA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

enum hba_type { HBA_LOCAL, HBA_HOST, HBA_HOSTSSL, HBA_HOSTNOSSL };
enum hba_method { HBA_NO_MATCH, HBA_REJECT, HBA_TRUST, HBA_MD5, HBA_SCRAM, HBA_CERT };

struct hba_rule {
	int type;    /* enum hba_type */
	char *dbs;   /* comma-separated, or NULL for all */
	char *users; /* comma-separated, or NULL for all */
	int family;  /* 0 (all), 4 or 6 */
	uint8_t addr[16];
	uint8_t mask[16];
	int method; /* enum hba_method */
	int line;
};

struct hba {
	struct hba_rule *rules;
	int n_rules;
};

/* Parse rules from text; `path` only names the source in messages ("file:line: ..."). */
struct hba *hba_parse(const char *text, const char *path, char *err, size_t errlen) MUST_USE;
struct hba *hba_load(const char *path, char *err, size_t errlen) MUST_USE;
void hba_free(struct hba *h);

/* What a client gets. addr is the peer's IP address as text (NULL over the unix socket),
 * tls whether the connection is encrypted. *line is the deciding rule's line (0: none). */
enum hba_method hba_match(const struct hba *h, const char *addr, bool tls, const char *db,
                          const char *user, int *line);

const char *hba_method_name(enum hba_method m);

#endif
