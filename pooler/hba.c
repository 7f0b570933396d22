/* hba: see include/hba.h. */
#include "hba.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"

static const char *const type_names[] = {"local", "host", "hostssl", "hostnossl"};
static const char *const method_names[] = {"no match", "reject",        "trust",
                                           "md5",      "scram-sha-256", "cert"};

const char *hba_method_name(enum hba_method m)
{
	return method_names[m];
}

static bool parse_fail(char *err, size_t errlen, const char *path, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static bool parse_fail(char *err, size_t errlen, const char *path, int line, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(err, errlen, "%s:%d: ", path, line);

	if (n < 0 || (size_t)n >= errlen)
		return false;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return false;
}

static int lookup(const char *const *names, size_t n, const char *word)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(names[i], word) == 0)
			return (int)i;
	return -1;
}

/* "all" is NULL; anything else is kept as the comma list it is. */
static char *name_list(const char *word)
{
	return strcmp(word, "all") == 0 ? NULL : util_strdup(word);
}

static void prefix_mask(uint8_t *mask, int bits)
{
	memset(mask, 0, 16);
	for (int i = 0; i < bits; i++)
		mask[i / 8] |= (uint8_t)(0x80 >> (i % 8));
}

/* "all", "addr/prefix" or a bare address (the whole address must match). */
static bool parse_address(const char *word, struct hba_rule *r)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(word, '/');
	size_t hlen = slash ? (size_t)(slash - word) : strlen(word);
	long bits;

	if (strcmp(word, "all") == 0) {
		r->family = 0;
		return true;
	}
	if (hlen >= sizeof(host))
		return false;
	memcpy(host, word, hlen);
	host[hlen] = '\0';
	if (inet_pton(AF_INET, host, r->addr) == 1)
		r->family = 4;
	else if (inet_pton(AF_INET6, host, r->addr) == 1)
		r->family = 6;
	else
		return false;
	int max = r->family == 4 ? 32 : 128;
	if (slash == NULL)
		bits = max;
	else if (!util_parse_int(slash + 1, 0, max, &bits))
		return false;
	prefix_mask(r->mask, (int)bits);
	for (int i = 0; i < 16; i++)
		r->addr[i] &= r->mask[i];
	return true;
}

/* One non-empty line split into words; false (with err) when it is not a rule. */
static bool parse_rule(char **w, int n, struct hba_rule *r, const char *path, int line, char *err,
                       size_t errlen)
{
	int type = lookup(type_names, ARRAY_LEN(type_names), w[0]);
	int want = type == HBA_LOCAL ? 4 : 5;

	if (type < 0)
		return parse_fail(err, errlen, path, line,
		                  "unknown connection type \"%s\" (allowed: local, host, hostssl, "
		                  "hostnossl)",
		                  w[0]);
	if (n != want)
		return parse_fail(err, errlen, path, line, "expected %d fields (%s), found %d",
		                  want,
		                  type == HBA_LOCAL ? "local DATABASE USER METHOD"
		                                    : "TYPE DATABASE USER ADDRESS METHOD",
		                  n);
	int method = lookup(method_names, ARRAY_LEN(method_names), w[n - 1]);
	if (method <= HBA_NO_MATCH)
		return parse_fail(err, errlen, path, line,
		                  "unknown method \"%s\" (allowed: scram-sha-256, md5, trust, "
		                  "reject, cert)",
		                  w[n - 1]);
	if (method == HBA_CERT && type != HBA_HOSTSSL)
		return parse_fail(err, errlen, path, line, "cert needs a hostssl line");
	r->type = type;
	r->method = method;
	r->line = line;
	if (type != HBA_LOCAL && !parse_address(w[3], r))
		return parse_fail(err, errlen, path, line,
		                  "invalid address \"%s\" (allowed: all, an IPv4 or IPv6 address, "
		                  "optionally with /prefix)",
		                  w[3]);
	r->dbs = name_list(w[1]);
	r->users = name_list(w[2]);
	return true;
}

struct hba *hba_parse(const char *text, const char *path, char *err, size_t errlen)
{
	struct hba *h = util_calloc(1, sizeof(*h));
	const char *p = text;
	int line = 0;

	while (*p) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		char buf[1024], *w[8], *save = NULL;
		int n = 0;

		line++;
		if (len >= sizeof(buf)) {
			parse_fail(err, errlen, path, line, "line too long");
			goto fail;
		}
		memcpy(buf, p, len);
		buf[len] = '\0';
		p = eol ? eol + 1 : p + len;
		char *hash = strchr(buf, '#');
		if (hash)
			*hash = '\0';
		for (char *tok = strtok_r(buf, " \t\r", &save); tok;
		     tok = strtok_r(NULL, " \t\r", &save)) {
			if (n == (int)ARRAY_LEN(w)) {
				parse_fail(err, errlen, path, line, "too many fields");
				goto fail;
			}
			w[n++] = tok;
		}
		if (n == 0)
			continue;
		h->rules = realloc(h->rules, sizeof(*h->rules) * (size_t)(h->n_rules + 1));
		if (h->rules == NULL)
			abort();
		struct hba_rule *r = &h->rules[h->n_rules];
		memset(r, 0, sizeof(*r));
		if (!parse_rule(w, n, r, path, line, err, errlen))
			goto fail;
		h->n_rules++;
	}
	return h;
fail:
	hba_free(h);
	return NULL;
}

struct hba *hba_load(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *text = NULL;
	size_t cap = 0;
	struct hba *h;

	if (f == NULL) {
		snprintf(err, errlen, "%s: cannot open auth_hba_file: %s", path, strerror(errno));
		return NULL;
	}
	ssize_t n = getdelim(&text, &cap, '\0', f);
	fclose(f);
	if (n < 0) {
		free(text);
		text = util_strdup("");
	}
	h = hba_parse(text, path, err, errlen);
	free(text);
	return h;
}

void hba_free(struct hba *h)
{
	if (h == NULL)
		return;
	for (int i = 0; i < h->n_rules; i++) {
		free(h->rules[i].dbs);
		free(h->rules[i].users);
	}
	free(h->rules);
	free(h);
}

static bool address_matches(const struct hba_rule *r, const char *addr)
{
	uint8_t a[16] = {0};

	if (r->family == 0)
		return true;
	if (inet_pton(r->family == 4 ? AF_INET : AF_INET6, addr, a) != 1)
		return false;
	for (int i = 0; i < 16; i++)
		if ((a[i] & r->mask[i]) != r->addr[i])
			return false;
	return true;
}

static bool type_matches(int type, const char *addr, bool tls)
{
	switch (type) {
	case HBA_LOCAL:
		return addr == NULL;
	case HBA_HOST:
		return addr != NULL;
	case HBA_HOSTSSL:
		return addr != NULL && tls;
	default:
		return addr != NULL && !tls;
	}
}

enum hba_method hba_match(const struct hba *h, const char *addr, bool tls, const char *db,
                          const char *user, int *line)
{
	for (int i = 0; i < h->n_rules; i++) {
		const struct hba_rule *r = &h->rules[i];
		if (!type_matches(r->type, addr, tls))
			continue;
		if (r->dbs != NULL && !config_list_has(r->dbs, db))
			continue;
		if (r->users != NULL && !config_list_has(r->users, user))
			continue;
		if (addr != NULL && !address_matches(r, addr))
			continue;
		*line = r->line;
		return (enum hba_method)r->method;
	}
	*line = 0;
	return HBA_NO_MATCH;
}
