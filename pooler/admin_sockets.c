/* admin_sockets: the console's views of connections: SHOW CLIENTS, SERVERS, SOCKETS,
 * ACTIVE_SOCKETS, FDS. See admin_internal.h. */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "admin_internal.h"
#include "client.h"
#include "pool.h"
#include "tls.h"

/* The address of one end of a socket: "unix" and port 0 for Unix sockets. */
static void sock_addr(int fd, bool local, char *host, size_t len, int *port)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int r = local ? getsockname(fd, (struct sockaddr *)&ss, &sl)
	              : getpeername(fd, (struct sockaddr *)&ss, &sl);

	snprintf(host, len, "unix");
	*port = 0;
	if (fd < 0 || r != 0)
		return;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &a->sin_addr, host, (socklen_t)len);
		*port = ntohs(a->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &a->sin6_addr, host, (socklen_t)len);
		*port = ntohs(a->sin6_port);
	}
}

/* SHOW SERVERS and SHOW CLIENTS share PgBouncer's columns (int4 numbers); ours follow.
 * SHOW SOCKETS adds PgBouncer's buffer columns after them. */
#define SOCKET_COLS                                                                                \
	TEXT_COL("type"), TEXT_COL("user"), TEXT_COL("database"), TEXT_COL("state"),               \
	    TEXT_COL("addr"), INT4_COL("port"), TEXT_COL("local_addr"), INT4_COL("local_port"),    \
	    TEXT_COL("connect_time"), TEXT_COL("request_time"), INT4_COL("wait"),                  \
	    INT4_COL("wait_us"), INT4_COL("close_needed"), TEXT_COL("ptr"), TEXT_COL("link"),      \
	    INT4_COL("remote_pid"), TEXT_COL("tls"), TEXT_COL("application_name")

static const struct result_column servers_cols[] = {SOCKET_COLS, TEXT_COL("node"), INT8_COL("id"),
                                                    INT4_COL("worker")};
static const struct result_column clients_cols[] = {SOCKET_COLS,        INT8_COL("id"),
                                                    TEXT_COL("pinned"), TEXT_COL("node"),
                                                    TEXT_COL("settings"), INT4_COL("worker")};
/* The pooler's buffers are not PgBouncer's packet buffers: those columns read 0. */
static const struct result_column sockets_cols[] = {
    SOCKET_COLS,          INT4_COL("recv_pos"),    INT4_COL("pkt_pos"),   INT4_COL("pkt_remain"),
    INT4_COL("send_pos"), INT4_COL("send_remain"), INT4_COL("pkt_avail"), INT4_COL("send_avail")};

/* The values of the columns SHOW SERVERS and SHOW CLIENTS share. */
struct socket_row {
	const char *type, *user, *db, *state, *addr;
	int port;
	int fd;                          /* for the local address */
	uint64_t connect_us, request_us; /* monotonic */
	uint64_t wait_us;                /* queued for a server; 0 when not waiting */
	uint64_t id, link;               /* link: the peer's id, 0 without one */
	int64_t remote_pid;
	const struct ssl_st *ssl;
	const char *application_name;
};

static void socket_cells(struct result *r, const struct socket_row *s, uint64_t now)
{
	char connected[40], requested[40], local[64], ptr[24], link[24] = "", tls[128];
	int local_port;

	admin_wall_time(s->connect_us, now, connected, sizeof(connected));
	admin_wall_time(s->request_us, now, requested, sizeof(requested));
	sock_addr(s->fd, true, local, sizeof(local), &local_port);
	snprintf(ptr, sizeof(ptr), "%" PRIx64, s->id);
	if (s->link != 0)
		snprintf(link, sizeof(link), "%" PRIx64, s->link);
	tls_describe(s->ssl, tls, sizeof(tls));
	result_text(r, s->type);
	result_text(r, s->user);
	result_text(r, s->db);
	result_text(r, s->state);
	result_text(r, s->addr);
	result_int(r, s->port);
	result_text(r, local);
	result_int(r, local_port);
	result_text(r, connected);
	result_text(r, requested);
	result_int(r, (int64_t)(s->wait_us / 1000000));
	result_int(r, (int64_t)(s->wait_us % 1000000));
	result_int(r, 0); /* close_needed */
	result_text(r, ptr);
	result_text(r, link);
	result_int(r, s->remote_pid);
	result_text(r, tls);
	result_text(r, s->application_name);
}

/* The buffer columns of SHOW SOCKETS. */
static void buffer_cells(struct result *r)
{
	for (int i = 0; i < 7; i++)
		result_int(r, 0);
}

/* Which client holds which server, gathered once per view. */
struct links {
	uint64_t (*pairs)[2]; /* server id, client id */
	size_t n, cap;        /* cap: every client of the worker */
};

static void collect_link(const struct client_info *ci, void *arg)
{
	struct links *l = arg;
	if (ci->server_id == 0 || l->n == l->cap)
		return;
	l->pairs[l->n][0] = ci->server_id;
	l->pairs[l->n][1] = ci->id;
	l->n++;
}

static uint64_t linked_client(const struct links *l, uint64_t server_id)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->pairs[i][0] == server_id)
			return l->pairs[i][1];
	return 0;
}

/* PgBouncer's names of enum server_state, in its order: SERVER_CLOSED is the last state. */
static const char *const server_states[] = {"login", "idle", "active", "tested", "closed"};
_Static_assert(ARRAY_LEN(server_states) == SERVER_CLOSED + 1, "a server state has no label");

/* What a view writes: SERVERS/CLIENTS, SOCKETS (with buffer columns, PgBouncer's list
 * names as state), ACTIVE_SOCKETS (only sockets linked to a peer). */
enum socket_view { V_PLAIN, V_SOCKETS, V_ACTIVE };

struct view {
	struct result *r;
	enum socket_view v;
	uint64_t now;
};

static void server_row(const struct view *vw, const struct pool *p, const struct server *s,
                       const struct links *l)
{
	char state[24];
	struct socket_row row = {
	    .type = "S",
	    .user = p->login.user,
	    .db = p->db_name,
	    .state = server_states[s->state],
	    .addr = p->login.host,
	    .port = p->login.port,
	    .fd = s->conn.fd,
	    .connect_us = s->created_us,
	    .request_us = s->used_us,
	    .id = s->id,
	    .link = linked_client(l, s->id),
	    .remote_pid = s->be_pid,
	    .ssl = s->conn.ssl,
	    .application_name = "",
	};

	if (vw->v == V_ACTIVE && row.link == 0)
		return;
	if (vw->v != V_PLAIN) {
		snprintf(state, sizeof(state), "sv_%s", row.state);
		row.state = state;
	}
	result_row(vw->r);
	socket_cells(vw->r, &row, vw->now);
	if (vw->v == V_PLAIN) {
		result_text(vw->r, p->backend->name);
		result_int(vw->r, (int64_t)s->id);
		result_int(vw->r, p->w->index + 1);
	} else {
		buffer_cells(vw->r);
	}
	result_row_end(vw->r);
}

static void server_rows(struct worker *w, const struct view *vw)
{
	struct list *sp, *st;
	struct links links = {.cap = (size_t)w->team->n_clients};

	links.pairs = util_calloc(links.cap + 1, sizeof(*links.pairs));
	client_foreach(w, collect_link, &links);
	for (struct pool *p = pool_next(w, NULL); p != NULL; p = pool_next(w, p)) {
		struct list *lists[] = {&p->connecting, &p->idle, &p->active};
		for (int i = 0; i < 3; i++)
			list_for_each_safe (sp, st, lists[i])
				server_row(vw, p, container_of(sp, struct server, node), &links);
	}
	free(links.pairs);
}

/* PgBouncer's list of a client, as SHOW SOCKETS names it: a logged-in client without a
 * server (idle, or on the console) is on cl_active there too. */
static const char *client_list(const char *state)
{
	if (strcmp(state, "login") == 0)
		return "cl_login";
	if (strcmp(state, "waiting") == 0)
		return "cl_waiting";
	return "cl_active";
}

static void client_row(const struct client_info *ci, void *arg)
{
	const struct view *vw = arg;
	struct result *r = vw->r;
	char addr[64];
	struct socket_row row = {
	    .type = "C",
	    .user = ci->user ? ci->user : "",
	    .db = ci->db ? ci->db : "",
	    .state = ci->state,
	    .addr = addr,
	    .fd = ci->fd,
	    .connect_us = ci->connect_us,
	    .request_us = ci->request_us,
	    .wait_us = ci->wait_us,
	    .id = ci->id,
	    .link = ci->server_id,
	    .ssl = ci->ssl,
	    .application_name = ci->application_name ? ci->application_name : "",
	};

	if (vw->v == V_ACTIVE && row.link == 0)
		return;
	if (vw->v != V_PLAIN)
		row.state = client_list(ci->state);
	sock_addr(ci->fd, false, addr, sizeof(addr), &row.port);
	result_row(r);
	socket_cells(r, &row, vw->now);
	if (vw->v == V_PLAIN) {
		result_int(r, (int64_t)ci->id);
		result_text(r, ci->pinned ? ci->pinned : "");
		result_text(r, ci->node ? ci->node : "");
		result_text(r, ci->settings ? ci->settings : "");
		result_int(r, ci->worker + 1);
	} else {
		buffer_cells(r);
	}
	result_row_end(r);
}

static void show_servers(struct worker *w, struct result *r)
{
	const struct view vw = {r, V_PLAIN, util_now_us()};
	server_rows(w, &vw);
}

static void show_clients(struct worker *w, struct result *r)
{
	const struct view vw = {r, V_PLAIN, util_now_us()};
	client_foreach(w, client_row, (void *)&vw);
}

static void show_sockets(struct worker *w, struct result *r)
{
	const struct view vw = {r, V_SOCKETS, util_now_us()};
	client_foreach(w, client_row, (void *)&vw);
	server_rows(w, &vw);
}

static void show_active_sockets(struct worker *w, struct result *r)
{
	const struct view vw = {r, V_ACTIVE, util_now_us()};
	client_foreach(w, client_row, (void *)&vw);
	server_rows(w, &vw);
}

const struct admin_view admin_socket_views[] = {
    {"SERVERS", show_servers, NULL, RESULT_COLUMNS(servers_cols), "every server connection"},
    {"CLIENTS", show_clients, NULL, RESULT_COLUMNS(clients_cols), "every client connection"},
    {"SOCKETS", show_sockets, NULL, RESULT_COLUMNS(sockets_cols),
     "clients and servers with PgBouncer's buffer columns (0 here)"},
    {"ACTIVE_SOCKETS", show_active_sockets, NULL, RESULT_COLUMNS(sockets_cols),
     "as SHOW SOCKETS, only clients and servers linked to each other"},
};
const int admin_socket_n_views = (int)ARRAY_LEN(admin_socket_views);
