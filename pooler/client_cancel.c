/* client_cancel: a CancelRequest, on whichever worker or pooler instance it arrived. The
 * key names the pooler (peer_id) and the worker that hold its client (peer_key_make);
 * the request goes there and no further (see "Cancel keys and peers" in
 * pooler/README.md). */
#include <stdlib.h>

#include "client_internal.h"
#include "log.h"
#include "peer.h"
#include "server.h"

struct cancel_req {
	uint64_t from; /* the client that sent it, for the log */
	uint32_t pid, key;
};

/* A key naming another pooler of [peers] goes there unchanged, whatever it holds: only
 * that pooler can check it. One naming this pooler (or none, 0) is looked up here, and is
 * never sent on: a peer list that pointed back here cannot make requests go round. That
 * covers the peer_id of a reloaded config too, which the keys do not carry until a
 * restart but whose [peers] line may well be this pooler's address. True when the request
 * is not this pooler's. */
static bool cancel_elsewhere(struct client *c, uint32_t pid, uint32_t key)
{
	int peer_id, worker;

	peer_key_read(pid, &peer_id, &worker);
	if (peer_id == 0 || peer_id == c->w->peer_id || peer_id == c->w->cfg->peer_id)
		return false;
	const struct peer_conf *p = config_find_peer(c->w->cfg, peer_id);
	if (p == NULL)
		log_info("c=%llu cancel request for unknown peer %d dropped (not in [peers])",
		         (unsigned long long)c->id, peer_id);
	else if (peer_forward(c->w, p, pid, key, c->id))
		log_debug("c=%llu cancel request for peer %d (worker %d) on its way",
		          (unsigned long long)c->id, peer_id, worker);
	return true;
}

/* On the worker of the client the key names: cancel its query, if it runs one. */
static void cancel_on(struct worker *w, void *arg)
{
	struct cancel_req *r = arg;
	struct list *pos;

	for (pos = w->clients.next; pos != &w->clients; pos = pos->next) {
		struct client *t = container_of(pos, struct client, node);
		if (t->cancel_pid != r->pid || t->cancel_key != r->key)
			continue;
		if (t->state == CLIENT_ACTIVE && t->server != NULL) {
			log_info("c=%llu cancel request for c=%llu forwarded to s=%llu",
			         (unsigned long long)r->from, (unsigned long long)t->id,
			         (unsigned long long)t->server->id);
			server_cancel(t->server);
		}
		break;
	}
	free(r);
}

/* A key of this pooler names its client's worker (peer_key_make): the request goes
 * there. */
static void cancel_here(struct client *c, uint32_t pid, uint32_t key)
{
	struct cancel_req *r = util_calloc(1, sizeof(*r));
	int peer_id, worker;

	peer_key_read(pid, &peer_id, &worker);
	*r = (struct cancel_req){c->id, pid, key};
	if (worker == c->w->index)
		cancel_on(c->w, r);
	else if (worker < c->w->team->n)
		worker_post(c->w->team->all[worker], cancel_on, r);
	else
		free(r); /* no such worker: a key this process never gave */
}

void client_cancel(struct client *c, uint32_t pid, uint32_t key)
{
	if (!cancel_elsewhere(c, pid, key))
		cancel_here(c, pid, key);
	client_close(c, "cancel request handled");
}
