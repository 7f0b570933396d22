/* config_man: the man pages, written from the key table that config.c parses with, so that
 * pooler.ini(5) lists exactly the keys, defaults and ranges the daemon accepts, and
 * pooler(1)'s options are the lines of --help. */
#include "config.h"
#include "config_internal.h"

#include <string.h>

#include "log.h"

/* Text for roff: backslashes doubled, a leading dot or quote made literal, hyphens as
 * minus signs where a reader would copy them (option and key names). */
static void roff(FILE *out, const char *s)
{
	if (*s == '.' || *s == '\'')
		fputs("\\&", out);
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\e", out);
		else if (*s == '-')
			fputs("\\-", out);
		else
			fputc(*s, out);
	}
}

/* A duration in the largest unit that divides it. */
static void duration(char *buf, size_t cap, long ms)
{
	static const struct {
		long ms;
		const char *unit;
	} units[] = {{3600000, "h"}, {60000, "min"}, {1000, "s"}};

	for (size_t i = 0; i < ARRAY_LEN(units); i++)
		if (ms != 0 && ms % units[i].ms == 0) {
			snprintf(buf, cap, "%ld%s", ms / units[i].ms, units[i].unit);
			return;
		}
	snprintf(buf, cap, "%ldms", ms);
}

/* What values a key takes, in words. */
static void describe_type(const struct key *k, char *buf, size_t cap)
{
	char lo[32], hi[32];
	size_t n;

	switch (k->type) {
	case K_STR:
		snprintf(buf, cap, "text");
		return;
	case K_PATH:
		snprintf(buf, cap, "path, relative to the file's folder");
		return;
	case K_INT:
	case K_AUTO_INT:
		snprintf(buf, cap, "%sinteger from %ld to %ld",
		         k->type == K_AUTO_INT ? "auto or " : "", k->min, k->max);
		return;
	case K_MS:
	case K_MSEC:
		duration(lo, sizeof(lo), k->min);
		duration(hi, sizeof(hi), k->max);
		snprintf(buf, cap, "duration from %s to %s; a bare number is in %s", lo, hi,
		         k->type == K_MSEC ? "milliseconds" : "seconds");
		return;
	case K_ENUM:
		buf[0] = '\0';
		for (int i = 0; k->choices[i] != NULL; i++) {
			n = strlen(buf);
			snprintf(buf + n, cap - n, "%s%s", i ? " | " : "", k->choices[i]);
		}
		return;
	case K_LOGLEVEL:
		snprintf(buf, cap, "%s | %s | %s | %s", log_level_name(LOG_ERROR),
		         log_level_name(LOG_WARNING), log_level_name(LOG_INFO),
		         log_level_name(LOG_DEBUG));
		return;
	case K_SHARE:
		snprintf(buf, cap, "share from %ld%% to %ld%% (50%% or 0.5)", k->min, k->max);
		return;
	case K_BOOL:
		snprintf(buf, cap, "on | off");
		return;
	}
}

static void write_keys(FILE *out, const struct section_kind *kind)
{
	char type[256];

	for (size_t i = 0; i < kind->n_keys; i++) {
		const struct key *k = &kind->keys[i];
		describe_type(k, type, sizeof(type));
		fputs(".TP\n.B ", out);
		roff(out, k->name);
		fputs("\n", out);
		roff(out, k->help);
		fputs(".\n.br\n", out);
		roff(out, type);
		fputs("; default: ", out);
		if (k->def == NULL || k->def[0] == '\0')
			fputs(k->def == NULL ? "unset" : "empty", out);
		else
			roff(out, k->def);
		fputs(k->secret ? "; never shown by SHOW CONFIG or \\-\\-check\\-config.\n" : ".\n",
		      out);
	}
}

static const char ini_head[] =
    ".SH NAME\n"
    "pooler.ini \\- configuration file of pooler(1)\n"
    ".SH DESCRIPTION\n"
    "An ini file: a\n.B [pooler]\nsection for the daemon, one\n.BI [node. NAME ]\n"
    "section per PostgreSQL server, and one\n.BI [database. NAME ]\n"
    "section per database that clients name in their connection string.\n"
    "Lines are\n.IR \"key = value\" ;\na\n.B ;\nor\n.B #\nstarts a comment.\n"
    ".PP\n"
    "The file is checked as a whole before it is used: an unknown key (the nearest known "
    "key is suggested), a bad value, a key or a section written twice, a missing\n"
    ".BI [database. NAME ]\nor\n.BI [node. NAME ]\nsection, or the HTTP endpoint on the "
    "clients' port stop the daemon with one message that names the file, the line and "
    "the key.\n"
    ".B pooler \\-\\-check\\-config\n"
    "prints the effective value of every key and the computed pool sizes.\n"
    ".PP\n"
    "SIGHUP (or RELOAD on the admin console) reads the file again; a file with an error "
    "is refused and the running configuration kept. Connections survive a reload.\n"
    ".PP\n"
    "Each key below shows what it does, the values it takes and its default.\n";

static const char ini_tail[] = ".SH EXAMPLE\n"
                               ".nf\n"
                               "[pooler]\n"
                               "listen_addr = 127.0.0.1\n"
                               "listen_port = 6432\n"
                               "auth_type = scram\\-sha\\-256\n"
                               "auth_file = users.txt\n"
                               "admin_users = admin\n"
                               "metrics_listen = 127.0.0.1:9930\n"
                               "\n"
                               "[node.primary]\n"
                               "host = 10.0.0.1\n"
                               "role = primary\n"
                               "\n"
                               "[node.replica1]\n"
                               "host = 10.0.0.2\n"
                               "role = replica\n"
                               "\n"
                               "[database.app]\n"
                               "nodes = primary, replica1\n"
                               "server_user = app\n"
                               "server_password = secret\n"
                               "pool_mode = transaction\n"
                               ".fi\n"
                               ".SH SEE ALSO\n"
                               ".BR pooler (1)\n";

/* [peers] has no keys of the table: its lines name other poolers. */
static const char peers_section[] =
    ".SH \"[peers] SECTION\"\n"
    "Other pooler processes that share this one's address (several processes on one port "
    "with so_reuseport, or several machines behind a TCP load balancer). A client's cancel "
    "request may reach any of them; the key it carries names the peer_id of the pooler "
    "that holds the client, and a pooler that is not that one sends the request on, "
    "unchanged, to the address listed here. One line per peer:\n"
    ".TP\n.I \"ID = ADDRESS\"\n"
    "ID from 1 to 16383; ADDRESS is a numeric\n.IR IPV4 : PORT\n"
    "or\n.RI [ IPV6 ]: PORT ,\n"
    "or a Unix socket folder and port such as\n.B /run/pooler2:6432\n"
    "(the socket file /run/pooler2/.s.PGSQL.6432, as libpq names it).\n"
    ".PP\n"
    "The line of the pooler's own peer_id is ignored, so that every peer can read the same "
    "list. Peers need peer_id set; an address this pooler listens on itself is refused "
    "for another id, since a cancel request sent there could come back. A cancel request "
    "whose peer is not listed is dropped and logged.\n";

static void write_ini_page(FILE *out)
{
	static const char *const titles[] = {
	    "[pooler] SECTION",
	    "[node.NAME] SECTIONS",
	    "[database.NAME] SECTIONS",
	    "[cluster.NAME] SECTIONS",
	};
	_Static_assert(ARRAY_LEN(titles) == CONFIG_KINDS, "a section kind has no title");

	fprintf(out, ".TH POOLER.INI 5 \"\" \"pooler %s\" \"File Formats\"\n", POOLER_VERSION);
	fputs(ini_head, out);
	for (int i = 0; i < CONFIG_KINDS; i++) {
		fprintf(out, ".SH \"%s\"\n", titles[i]);
		write_keys(out, &config_kinds[i]);
	}
	fputs(peers_section, out);
	fputs(".SH \"OTHER NAMES\"\nThese [pooler] keys may also be written as:\n", out);
	for (int a = 0; a < CONFIG_ALIASES; a++) {
		fputs(".TP\n.B ", out);
		roff(out, config_aliases[a].alias);
		fputs("\nthe same as\n.BR ", out);
		roff(out, config_aliases[a].key);
		fputs(config_aliases[a].type == K_MSEC ? " ;\na bare number is in milliseconds.\n"
		                                       : ".\n",
		      out);
	}
	fputs(ini_tail, out);
}

/* --help's option lines ("  -c, --config FILE   text", continued by deeply indented
 * lines) as .TP paragraphs; the other lines end the list. */
static void write_options(FILE *out, const char *usage)
{
	const char *line = usage;

	while (*line) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		char text[256];
		snprintf(text, sizeof(text), "%.*s", (int)(len < sizeof(text) ? len : 255), line);
		char *p = text + strspn(text, " ");
		if (p[0] == '-' && p - text <= 6) {
			char *gap = strstr(p, "  ");
			if (gap != NULL)
				*gap = '\0';
			fputs(".TP\n.B ", out);
			roff(out, p);
			fputs("\n", out);
			if (gap != NULL) {
				roff(out, gap + 2 + strspn(gap + 2, " "));
				fputs("\n", out);
			}
		} else if (p - text > 6 && *p) {
			roff(out, p);
			fputs("\n", out);
		}
		line += len + (end != NULL);
	}
}

static const char cmd_body[] =
    ".SH SIGNALS\n"
    ".TP\n.B SIGHUP\nRead the configuration and the files it names again. Connections stay; "
    "a file with an error is refused and the running configuration kept.\n"
    ".TP\n.B SIGTERM\nStop accepting clients, let running transactions finish (at most "
    "shutdown_timeout), then exit.\n"
    ".TP\n.B SIGINT\nExit at once.\n"
    ".SH \"SERVICE MANAGERS\"\n"
    "With\n.B NOTIFY_SOCKET\nset (systemd's Type=notify), the daemon sends READY=1 once it "
    "accepts clients and every node's first health probe has answered, RELOADING=1 and "
    "READY=1 around a reload, and STOPPING=1 on SIGTERM or SIGINT.\n"
    "The\n.B pidfile\nkey writes the process id to a file, locked against a second daemon "
    "and removed at exit.\n"
    ".SH ENVIRONMENT\n"
    ".TP\n.B NOTIFY_SOCKET\nThe service manager's datagram socket (a path, or @name for an "
    "abstract one).\n"
    ".SH \"ADMIN CONSOLE AND METRICS\"\n"
    "The database named by admin_db (default\n.BR pooler )\n"
    "is a console for psql: SHOW POOLS, SHOW STATS, SHOW SERVERS, SHOW CLIENTS, SHOW NODES, "
    "SHOW CONFIG, SHOW HELP, RELOAD, PAUSE, RESUME, SHUTDOWN, for the users in admin_users "
    "and stats_users. metrics_listen serves Prometheus text on /metrics, and /health and "
    "/ready.\n"
    ".SH \"EXIT STATUS\"\n"
    "0 after a normal stop or a successful \\-\\-check\\-config; 1 when the configuration "
    "or a file it names is refused, or the daemon cannot listen; 2 for a wrong command "
    "line.\n"
    ".SH FILES\n"
    ".TP\n.I conf/pooler.ini\nThe configuration read when \\-c is not given.\n"
    ".SH \"SEE ALSO\"\n"
    ".BR pooler.ini (5),\n.BR psql (1),\n.BR systemd.service (5)\n";

static void write_cmd_page(FILE *out, const char *usage)
{
	fprintf(out, ".TH POOLER 1 \"\" \"pooler %s\" \"User Commands\"\n", POOLER_VERSION);
	fputs(
	    ".SH NAME\npooler \\- PostgreSQL connection pooler and read/write router\n"
	    ".SH SYNOPSIS\n.B pooler\n[\\fB\\-c\\fR \\fIFILE\\fR] [\\fB\\-\\-check\\-config\\fR]\n"
	    ".SH DESCRIPTION\n"
	    "pooler sits between applications and a PostgreSQL primary with its streaming "
	    "replicas. Clients connect to it as if it were the database; it authenticates them, "
	    "keeps pools of server connections, sends each transaction to the primary or to a "
	    "replica (reads that may run there), and exports what it does.\n"
	    "Its configuration is described in\n.BR pooler.ini (5).\n"
	    ".SH OPTIONS\n",
	    out);
	write_options(out, usage);
	fputs(cmd_body, out);
}

void config_write_man(FILE *out, int section, const char *usage)
{
	if (section == 5)
		write_ini_page(out);
	else
		write_cmd_page(out, usage);
}
