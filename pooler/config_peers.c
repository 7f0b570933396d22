/* config_peers: the [peers] section. Its lines are not keys of the table but "ID = ADDRESS",
 * one per pooler that shares this one's address, so they are read here: each address is
 * turned once into the socket address that a forwarded cancel request connects to, and
 * only numeric addresses are taken, so that forwarding never waits for DNS. */
#include "config.h"
#include "config_internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

static bool bad_address(struct parse_state *ps, const char *id, const char *address)
{
	return config_fail(ps,
	                   "[peers] %s: \"%s\" is not an address (IPV4:PORT, [IPV6]:PORT or "
	                   "/socket/folder:PORT, numeric, port 1 to 65535)",
	                   id, address);
}

/* The Unix socket file of a server on port in dir, as libpq names it; false when the
 * path does not fit. */
static bool unix_address(struct peer_conf *p)
{
	struct sockaddr_un *sa = (struct sockaddr_un *)&p->addr;
	int n = snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/.s.PGSQL.%d", p->host, p->port);

	sa->sun_family = AF_UNIX;
	p->addrlen = sizeof(*sa);
	return n > 0 && (size_t)n < sizeof(sa->sun_path);
}

/* HOST of HOST:PORT: a Unix socket folder, [IPv6] or IPv4; p->host takes it without the
 * brackets. */
static bool parse_host(struct peer_conf *p, const char *host, size_t len)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)&p->addr;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&p->addr;

	bool v6 = len >= 2 && host[0] == '[' && host[len - 1] == ']';

	p->host = v6 ? strndup(host + 1, len - 2) : strndup(host, len);
	if (p->host == NULL)
		abort();
	if (v6) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)p->port);
		p->addrlen = sizeof(*s6);
		return inet_pton(AF_INET6, p->host, &s6->sin6_addr) == 1;
	}
	if (host[0] == '/')
		return unix_address(p);
	s4->sin_family = AF_INET;
	s4->sin_port = htons((uint16_t)p->port);
	p->addrlen = sizeof(*s4);
	return inet_pton(AF_INET, p->host, &s4->sin_addr) == 1;
}

const struct peer_conf *config_find_peer(const struct config *cfg, int id)
{
	for (int i = 0; i < cfg->n_peers; i++)
		if (cfg->peers[i].id == id)
			return &cfg->peers[i];
	return NULL;
}

void config_peer_address(const struct peer_conf *p, char *out, size_t cap)
{
	bool v6 = p->addr.ss_family == AF_INET6;

	snprintf(out, cap, "%s%s%s:%d", v6 ? "[" : "", p->host, v6 ? "]" : "", p->port);
}

int config_peer_add(struct parse_state *ps, const char *id, const char *address)
{
	struct config *cfg = ps->cfg;
	const char *colon = strrchr(address, ':');
	long n, port;

	if (!util_parse_int(id, 1, CONFIG_PEER_ID_MAX, &n))
		return config_fail(ps,
		                   "[peers] %s: not a peer id (write ID = ADDRESS, ID an integer "
		                   "from 1 to %d)",
		                   id, CONFIG_PEER_ID_MAX);
	const struct peer_conf *first = config_find_peer(cfg, (int)n);
	if (first != NULL)
		return config_fail(ps, "[peers] %s: peer %ld listed twice (first on line %d)", id,
		                   n, first->line);
	if (colon == NULL || colon == address || !util_parse_int(colon + 1, 1, 65535, &port))
		return bad_address(ps, id, address);
	cfg->peers = realloc(cfg->peers, sizeof(*cfg->peers) * (size_t)(cfg->n_peers + 1));
	if (cfg->peers == NULL)
		abort();
	struct peer_conf *p = &cfg->peers[cfg->n_peers++];
	memset(p, 0, sizeof(*p));
	p->id = (int)n;
	p->port = (int)port;
	p->line = ps->line;
	if (!parse_host(p, address, (size_t)(colon - address)))
		return bad_address(ps, id, address);
	return 1;
}

/* A folder written with or without its trailing slashes. */
static bool same_folder(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	while (la > 1 && a[la - 1] == '/')
		la--;
	while (lb > 1 && b[lb - 1] == '/')
		lb--;
	return la == lb && strncmp(a, b, la) == 0;
}

/* Whether p is an address this pooler listens on itself, as far as the text tells: its
 * Unix socket, or an address of listen_addr as written, on listen_port. */
static bool own_address(const struct config *cfg, const struct peer_conf *p)
{
	if (p->port != cfg->listen_port)
		return false;
	if (p->host[0] == '/')
		return cfg->unix_socket_dir[0] != '\0' &&
		       same_folder(p->host, cfg->unix_socket_dir);
	return config_list_has(cfg->listen_addr, p->host);
}

bool config_check_peers(struct parse_state *ps)
{
	const struct config *cfg = ps->cfg;

	if (cfg->n_peers > 0 && cfg->peer_id == 0) {
		ps->line = ps->peers_line;
		return config_fail(ps,
		                   "[peers]: needs [pooler] peer_id, this pooler's own id "
		                   "(1 to %d); with peer_id = 0 peering is off",
		                   CONFIG_PEER_ID_MAX);
	}
	for (int i = 0; i < cfg->n_peers; i++) {
		const struct peer_conf *p = &cfg->peers[i];
		if (p->id == cfg->peer_id || !own_address(cfg, p))
			continue;
		ps->line = p->line;
		return config_fail(ps,
		                   "[peers] %d: this pooler listens there itself (peer_id is %d); "
		                   "give each peer an address of its own, such as its Unix socket",
		                   p->id, cfg->peer_id);
	}
	return true;
}

void config_free_peers(struct config *cfg)
{
	for (int i = 0; i < cfg->n_peers; i++)
		free(cfg->peers[i].host);
	free(cfg->peers);
	cfg->peers = NULL;
	cfg->n_peers = 0;
}
