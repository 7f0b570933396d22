/* log: see include/log.h. Lines are assembled in one buffer and written with one
 * write(2), so lines from several threads never interleave. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *const level_names[] = {"error", "warning", "info", "debug"};

int log_level_parse(const char *name)
{
	for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++)
		if (strcasecmp(name, level_names[i]) == 0)
			return i;
	return -1;
}

const char *log_level_name(enum log_level level)
{
	return level_names[level];
}

/* A leading key=value field: a lower-case key, and a value without quotes or a trailing
 * ':' (which marks the start of the free text, as in "node=a: ..."). */
static size_t field_len(const char *p)
{
	size_t n = 0;

	if (!(p[0] >= 'a' && p[0] <= 'z'))
		return 0;
	while ((p[n] >= 'a' && p[n] <= 'z') || (p[n] >= '0' && p[n] <= '9') || p[n] == '_' ||
	       p[n] == '.')
		n++;
	if (p[n] != '=')
		return 0;
	while (p[n] != '\0' && p[n] != ' ' && p[n] != '"' && p[n] != '\n' && p[n] != '\t')
		n++;
	if (p[n] == '"' || p[n - 1] == ':')
		return 0;
	return n;
}

/* The event as logfmt: its leading key=value fields as they are, then the rest as
 * msg="...", with quotes, backslashes and line breaks escaped so that one event stays
 * one line. Returns the new length of line. */
static size_t put_event(char *line, size_t n, size_t cap, const char *ev)
{
	const char *p = ev;

	for (size_t f; (f = field_len(p)) > 0;) {
		if (n + f + 1 >= cap)
			return n;
		memcpy(line + n, p, f);
		n += f;
		p += f;
		while (*p == ' ')
			p++;
		if (*p != '\0')
			line[n++] = ' ';
	}
	if (*p == '\0')
		return n;
	static const char open[] = "msg=\"";
	if (n + sizeof(open) >= cap)
		return n;
	memcpy(line + n, open, sizeof(open) - 1);
	n += sizeof(open) - 1;
	for (; *p != '\0' && n + 3 < cap; p++) {
		char c = *p;
		if (c == '"' || c == '\\') {
			line[n++] = '\\';
			line[n++] = c;
		} else if (c == '\n' || c == '\r' || c == '\t') {
			line[n++] = '\\';
			line[n++] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
		} else {
			line[n++] = c;
		}
	}
	/* a trailing line break of a libpq message says nothing */
	while (n >= 2 && line[n - 2] == '\\' && line[n - 1] == 'n')
		n -= 2;
	line[n++] = '"';
	return n;
}

void log_write(enum log_level level, const char *fmt, ...)
{
	char line[2048], event[1536];
	struct timeval tv;
	struct tm tm;
	size_t n;
	va_list ap;
	int r;

	if (!log_enabled(level))
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(line, sizeof(line), "ts=%Y-%m-%dT%H:%M:%S", &tm);
	r = snprintf(line + n, sizeof(line) - n, ".%03dZ pid=%d level=%s ",
	             (int)(tv.tv_usec / 1000), (int)getpid(), level_names[level]);
	if (r > 0)
		n += (size_t)r;
	va_start(ap, fmt);
	vsnprintf(event, sizeof(event), fmt, ap);
	va_end(ap);
	n = put_event(line, n, sizeof(line) - 1, event);
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, n) < 0) {
		/* nowhere left to report it */
	}
}

void log_pq_notice(void *arg, const char *message)
{
	int len = (int)strlen(message);

	while (len > 0 && (message[len - 1] == '\n' || message[len - 1] == ' '))
		len--;
	log_warning("notice on the pooler's own connection (%s): %.*s",
	            arg ? (const char *)arg : "server", len, message);
}
