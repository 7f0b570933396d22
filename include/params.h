/* params: a small list of name = value pairs (startup parameters, ParameterStatus values).
 * Layer 0. Lists are short (a dozen entries), so a linear scan beats any index. */
#ifndef POOLER_PARAMS_H
#define POOLER_PARAMS_H

#include <stdbool.h>
#include <stdint.h>

struct param {
	char *name;
	char *value;
	char *base; /* the value at login (the server's, or the client's), for RESET */
};

struct params {
	struct param *items;
	int n;
	unsigned gen; /* bumped on every change */
	uint64_t fp;  /* fingerprint of the set, valid when fp_gen == gen + 1 */
	unsigned fp_gen;
};

void params_init(struct params *p);
void params_free(struct params *p);
const char *params_get(const struct params *p, const char *name);
struct param *params_find(const struct params *p, const char *name);
/* Set name = value; returns true when that changed anything. */
bool params_set(struct params *p, const char *name, const char *value);
/* Remove name; returns true when it was there. */
bool params_remove(struct params *p, const char *name);
/* An order-independent fingerprint of all name = value pairs (names case-folded); equal
 * sets give equal fingerprints. Cached until the next change. */
uint64_t params_fingerprint(struct params *p);
void params_copy(struct params *dst, const struct params *src);
/* Remember every current value as the login value (base). */
void params_set_base(struct params *p);

#endif
