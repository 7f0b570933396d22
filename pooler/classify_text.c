/* classify_text: small facts read straight from SQL text, without the parser, for
 * statements the pooler answers or acts on itself (DEALLOCATE, DISCARD ALL, a plain SET),
 * and what the pooler knows of each parameter name. See include/classify.h. */
#include "classify_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Every parameter name the pooler treats specially, in one table. */
static const struct {
	const char *name;
	enum param_kind kind;
} params[] = {
    /* set by the server alone: a report of one is not a client's wish */
    {"server_version", PARAM_SERVER_OWNED},
    {"server_encoding", PARAM_SERVER_OWNED},
    {"integer_datetimes", PARAM_SERVER_OWNED},
    {"in_hot_standby", PARAM_SERVER_OWNED},
    {"is_superuser", PARAM_SERVER_OWNED},
    {"session_authorization", PARAM_SERVER_OWNED},
    /* reported by the server with ParameterStatus: carried from server to server */
    {"application_name", PARAM_REPORTED},
    {"client_encoding", PARAM_REPORTED},
    {"datestyle", PARAM_REPORTED},
    {"default_transaction_read_only", PARAM_REPORTED},
    {"intervalstyle", PARAM_REPORTED},
    {"timezone", PARAM_REPORTED},
    {"standard_conforming_strings", PARAM_REPORTED},
    /* not reported, but set right after login (pgjdbc) with one plain value the pooler
     * reads from the SET itself: carried too, rather than pinning the client */
    {"extra_float_digits", PARAM_CARRIED_BY_VALUE},
    /* a session SET of these still pins: they decide where transactions may run (a
     * replica cannot run serializable ones) or who the session is */
    {"default_transaction_isolation", PARAM_PINS},
    {"transaction_isolation", PARAM_PINS},
    {"transaction_read_only", PARAM_PINS},
    {"transaction_deferrable", PARAM_PINS},
    {"default_transaction_deferrable", PARAM_PINS},
    {"role", PARAM_PINS},
};

enum param_kind classify_param(const char *name, const char **canonical)
{
	for (size_t i = 0; i < ARRAY_LEN(params); i++)
		if (strcasecmp(params[i].name, name) == 0) {
			if (canonical != NULL)
				*canonical = params[i].name;
			return params[i].kind;
		}
	return PARAM_OTHER;
}

static bool space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* One statement of text (n bytes) folded to lower case with runs of spacing as one space
 * and no trailing spacing or semicolon, into out; false when it does not fit. */
static bool fold(const char *q, size_t n, char *out, size_t cap)
{
	size_t len = 0;

	for (size_t i = 0; i < n; i++) {
		if (space(q[i]) && (len == 0 || out[len - 1] == ' '))
			continue;
		if (len + 1 >= cap)
			return false;
		out[len++] = space(q[i]) ? ' ' : (char)tolower((unsigned char)q[i]);
	}
	while (len > 0 && out[len - 1] == ' ')
		len--;
	out[len] = '\0';
	return true;
}

bool classify_drops_statements(const char *q, size_t n)
{
	static const char *const forms[] = {"discard all", "deallocate all",
	                                    "deallocate prepare all"};
	char text[32];

	/* each statement of a list (a reset query may be several); a semicolon inside a
	 * literal only costs a needless forgetting. This runs on every Query: a statement
	 * that does not start with a d is passed over at memchr's speed. */
	const char *p = q, *end = q + strnlen(q, n);
	while (p < end) {
		while (p < end && space(*p))
			p++;
		if (p == end)
			break;
		const char *semi = memchr(p, ';', (size_t)(end - p));
		const char *stop = semi != NULL ? semi : end;
		if ((*p == 'd' || *p == 'D') && fold(p, (size_t)(stop - p), text, sizeof(text)))
			for (size_t f = 0; f < ARRAY_LEN(forms); f++)
				if (strcmp(text, forms[f]) == 0)
					return true;
		p = stop + 1;
	}
	return false;
}

static const char *skip_space(const char *p, const char *end)
{
	while (p < end && space(*p))
		p++;
	return p;
}

/* A keyword at p followed by spacing: the position after it, or NULL. */
static const char *keyword(const char *p, const char *end, const char *word)
{
	size_t len = strlen(word);

	if ((size_t)(end - p) <= len || strncasecmp(p, word, len) != 0 || !space(p[len]))
		return NULL;
	return skip_space(p + len, end);
}

/* An identifier at *p, quoted (kept as written) or not (folded to lower case, as
 * PostgreSQL does), into out. */
static bool identifier(const char **p, const char *end, char *out, size_t cap)
{
	const char *s = *p;
	size_t len = 0;

	if (s < end && *s == '"') {
		for (s++; s < end && *s != '"' && len + 1 < cap; s++)
			out[len++] = *s;
		if (s >= end || *s != '"')
			return false;
		s++;
	} else {
		for (; s < end && (isalnum((unsigned char)*s) || *s == '_' || *s == '$') &&
		       len + 1 < cap;
		     s++)
			out[len++] = (char)tolower((unsigned char)*s);
	}
	out[len] = '\0';
	*p = s;
	return len > 0;
}

/* Only spacing and one semicolon from p to end. */
static bool at_end(const char *p, const char *end)
{
	p = skip_space(p, end);
	if (p < end && *p == ';')
		p++;
	return skip_space(p, end) == end;
}

bool classify_deallocate_name(const char *q, size_t n, char *out, size_t cap)
{
	const char *end = q + strnlen(q, n);
	const char *p = keyword(skip_space(q, end), end, "deallocate");

	if (p == NULL)
		return false;
	const char *after = keyword(p, end, "prepare");
	if (after != NULL)
		p = after;
	return identifier(&p, end, out, cap) && at_end(p, end) && strcmp(out, "all") != 0;
}

/* Next word of a SET statement at *p: "=", letters, digits, _ . - +, or a quoted literal
 * without quotes inside. A word that is not quoted folds to lower case, as PostgreSQL
 * folds an identifier; *quoted says which it was. */
static size_t set_word(const char **p, const char *end, char *out, size_t cap, bool *quoted)
{
	size_t len = 0;

	*p = skip_space(*p, end);
	*quoted = *p < end && **p == '\'';
	if (!*quoted && *p < end && **p == '=') {
		(*p)++;
		return (size_t)snprintf(out, cap, "=");
	}
	if (*quoted)
		(*p)++;
	while (*p < end && len + 1 < cap &&
	       (*quoted ? **p != '\'' : (isalnum((unsigned char)**p) || strchr("_.-+", **p)))) {
		out[len++] = *quoted ? **p : (char)tolower((unsigned char)**p);
		(*p)++;
	}
	if (*quoted && (*p >= end || *(*p)++ != '\''))
		return 0;
	out[len] = '\0';
	return *quoted ? len + 1 : len; /* '' is a word too */
}

bool classify_plain_set(const char *q, size_t n, char *name, size_t name_cap, char *value,
                        size_t value_cap)
{
	const char *p = q, *end = q + strnlen(q, n);
	char word[64];
	bool quoted;

	if (!set_word(&p, end, word, sizeof(word), &quoted) || quoted || strcmp(word, "set") != 0 ||
	    !set_word(&p, end, name, name_cap, &quoted) || quoted)
		return false;
	if (strcmp(name, "session") == 0 && (!set_word(&p, end, name, name_cap, &quoted) || quoted))
		return false;
	if (!set_word(&p, end, word, sizeof(word), &quoted) || quoted ||
	    (strcmp(word, "=") != 0 && strcmp(word, "to") != 0) ||
	    !set_word(&p, end, value, value_cap, &quoted))
		return false;
	if (!quoted && strcmp(value, "default") == 0)
		return false; /* a RESET in disguise */
	while (p < end && (space(*p) || *p == ';'))
		p++;
	return p == end;
}
