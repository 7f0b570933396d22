/* router: see include/router.h. */
#include "router.h"

#include <stdio.h>
#include <string.h>

#include "classify.h"
#include "log.h"
#include "proto.h"

#define ROUTER_CATALOG_EVERY 60 /* probes between reads of the function catalog */

struct node *router_node(struct worker *w, const struct node_conf *nc)
{
	/* reload_apply builds w->nodes in the order of w->cfg->nodes: a section's index is its
	 * node's place. A section of another generation has none. */
	if (nc->index >= w->n_nodes || nc != &w->cfg->nodes[nc->index])
		return NULL;
	return w->nodes[nc->index];
}

struct node *router_primary(struct worker *w, const struct db_conf *db)
{
	struct node *configured = NULL;

	for (int i = 0; i < db->n_nodes; i++) {
		struct node *n = router_node(w, db->node_list[i]);
		if (n == NULL || !node_api_writable(n))
			continue; /* a cluster member the API does not call the leader */
		if (n->probed && n->up && n->role == NODE_ROLE_PRIMARY)
			return n;
		/* A configured primary stays the primary while unreachable (its clients then
		 * get connect or circuit errors, not "no primary"), unless a probe found it in
		 * recovery. */
		bool demoted = n->probed && n->up && n->role == NODE_ROLE_REPLICA;
		if (n->conf_role == NODE_ROLE_PRIMARY && !demoted && configured == NULL)
			configured = n;
	}
	return configured;
}

int router_read_weight(const struct node *n)
{
	if (n->weight >= 0)
		return n->weight;
	return n->role == NODE_ROLE_REPLICA ? 1 : 0; /* auto */
}

struct node *router_reader(struct worker *w, const struct db_conf *db, uint64_t min_lsn,
                           bool with_primary)
{
	struct node *best = NULL;
	struct node *primary = with_primary ? router_primary(w, db) : NULL;
	long best_score = 0;
	if (db->n_nodes == 0)
		return NULL; /* a cluster none of whose members is known yet */
	int start = (int)(w->rr++ % (unsigned)db->n_nodes); /* ties rotate */

	for (int k = 0; k < db->n_nodes; k++) {
		struct node *n = router_node(w, db->node_list[(start + k) % db->n_nodes]);
		int weight = n == NULL ? 0 : router_read_weight(n);
		if (weight == 0 || !n->usable || !node_api_readable(n))
			continue;
		if (n->role == NODE_ROLE_REPLICA) {
			if (min_lsn != 0 && n->lsn < min_lsn)
				continue;
		} else if (n != primary) {
			continue;
		}
		/* fewest in-flight (of this worker's) per unit of weight; scaled to stay in
		 * integers */
		long score = (long)n->shards[w->index].inflight * 1000 / weight;
		if (best == NULL || score < best_score) {
			best = n;
			best_score = score;
		}
	}
	return best;
}

/* ---- the policy ------------------------------------------------------------------- */

static const struct {
	const char *target, *label;
} reasons[] = {
    [ROUTE_NONE] = {NULL, NULL},
    [ROUTE_REPLICA] = {"replica", "read"},
    [ROUTE_WRITE] = {"primary", "write"},
    [ROUTE_WEIGHT] = {"primary", "weight"},
    [ROUTE_READ_YOUR_WRITES] = {"primary", "read_your_writes"},
    [ROUTE_LAG] = {"primary", "lag"},
    [ROUTE_FALLBACK] = {"primary", "fallback"},
    [ROUTE_REPLICA_REFUSED] = {"primary", "replica_refused"},
    [ROUTE_PINNED] = {"primary", "pinned"},
    [ROUTE_HINT] = {"primary", "hint"},
    [ROUTE_SESSION_MODE] = {"primary", "session_mode"},
    [ROUTE_PRIMARY_ONLY] = {"primary", "primary_only"},
    [ROUTE_REPLICAS_ONLY] = {"replica", "replicas_only"},
    [ROUTE_REFUSED_NO_REPLICA] = {"none", "no_replica"},
    [ROUTE_REFUSED_NO_PRIMARY] = {"none", "no_primary"},
    [ROUTE_REFUSED_STATEMENT] = {NULL, NULL}, /* counted by pooler_statement_mode_... */
    [ROUTE_REFUSED_PIN] = {NULL, NULL},       /* ...and pooler_pin_refused_total */
};
_Static_assert(ARRAY_LEN(reasons) == ROUTE_REASON_COUNT, "a label for every route_reason");
_Static_assert(ROUTE_REASON_COUNT <= METRICS_ROUTE_REASONS, "metrics has room for each");

const char *router_reason_target(enum route_reason r)
{
	return r < ROUTE_REASON_COUNT ? reasons[r].target : NULL;
}

const char *router_reason_label(enum route_reason r)
{
	return r < ROUTE_REASON_COUNT ? reasons[r].label : NULL;
}

/* A database that lists only replicas (a reporting database, db->replicas_only): every
 * transaction runs on one of them, writes too, which the replica refuses itself (25006);
 * never on a primary the operator did not list. */
static void route_replicas_only(struct worker *w, const struct db_conf *db,
                                struct route_session *rs, struct route_decision *d)
{
	/* one of its replicas may have been promoted since: it serves as well; and one not
	 * probed yet, or behind, beats an error for a database with nowhere else to go */
	d->node = router_reader(w, db, 0, false);
	if (d->node == NULL)
		d->node = router_primary(w, db);
	for (int i = 0; d->node == NULL && i < db->n_nodes; i++) {
		struct node *n = router_node(w, db->node_list[i]);
		if (n != NULL && (n->up || !n->probed))
			d->node = n;
	}
	if (d->node == NULL) {
		d->reason = ROUTE_REFUSED_NO_REPLICA;
		d->sqlstate = SQLSTATE_CANNOT_CONNECT_NOW;
		snprintf(d->message, sizeof(d->message),
		         "no server of this database is available (it lists only replicas)");
		return;
	}
	d->reason = ROUTE_REPLICAS_ONLY;
	rs->on_replica = d->node->role == NODE_ROLE_REPLICA;
	rs->ro_tx = true; /* nothing to judge or rerun: there is nowhere else to go */
	rs->tx_wrote = false;
}

/* Whether reads may go to a replica yet after this client's last write. */
static bool caught_up(struct worker *w, const struct db_conf *db, struct route_session *rs)
{
	const struct config *cfg = w->cfg;

	if (rs->ryw_since_us == 0 || cfg->read_your_writes == RYW_OFF)
		return true;
	if (cfg->read_your_writes == RYW_WINDOW) {
		if (util_now_us() <
		    rs->ryw_since_us + (uint64_t)cfg->read_your_writes_window_ms * 1000)
			return false;
		rs->ryw_since_us = 0;
		return true;
	}
	/* lsn: a primary probe sent after the commit knows a position covering it */
	uint64_t lsn = router_primary_lsn_since(w, db, rs->ryw_since_us);
	if (lsn == 0)
		return false;
	if (lsn > rs->min_lsn)
		rs->min_lsn = lsn;
	rs->ryw_since_us = 0;
	return true;
}

/* Refuse the batch before it runs anywhere: statement mode forbids transaction blocks,
 * pin_action = error forbids what would pin. Otherwise start the pin the batch asks for
 * (never in session mode, where every client keeps its server anyway). */
static bool admit(struct worker *w, const struct db_conf *db, const struct batch *b,
                  struct route_session *rs, struct route_decision *d)
{
	if (db->pool_mode == POOL_MODE_SESSION)
		return true;
	if (db->pool_mode == POOL_MODE_STATEMENT && b->begin && rs->pinned == PIN_NONE) {
		w->metrics.statement_mode_refused++;
		d->reason = ROUTE_REFUSED_STATEMENT;
		d->sqlstate = SQLSTATE_FEATURE_NOT_SUPPORTED;
		snprintf(d->message, sizeof(d->message),
		         "transaction blocks not allowed in statement pooling mode");
		return false;
	}
	if (b->pins == PIN_NONE || rs->pinned != PIN_NONE)
		return true;
	if (db->pin_action == PIN_ACTION_ERROR) {
		w->metrics.pin_refused[b->pins]++;
		d->reason = ROUTE_REFUSED_PIN;
		d->sqlstate = SQLSTATE_FEATURE_NOT_SUPPORTED;
		router_pin_refusal(b->pins, d->message, sizeof(d->message));
		return false;
	}
	rs->pinned = d->pinned = b->pins;
	w->metrics.pinned[b->pins]++;
	return true;
}

/* Why the transaction stays on the primary before any replica is looked at, or ROUTE_NONE
 * when it may go to one. A hint decides before the verdict (pooler:replica sends even a
 * write to a replica, which refuses it); in a read-only session every transaction reads,
 * unless the batch turns that off. */
static enum route_reason stays(struct worker *w, const struct db_conf *db, const struct batch *b,
                               struct route_session *rs, uint8_t hint)
{
	bool reads =
	    hint == HINT_REPLICA ||
	    (hint == HINT_NONE && (rs->session_ro == 1 ? b->session_ro != 0 : b->read_only));

	if (db->pool_mode == POOL_MODE_SESSION)
		return ROUTE_SESSION_MODE;
	if (b->serializable || rs->serializable)
		return ROUTE_WRITE; /* a standby cannot run it, whatever was asked */
	if (!b->read_only && !reads)
		return ROUTE_WRITE;
	if (!db->has_replicas)
		return b->read_only ? ROUTE_PRIMARY_ONLY : ROUTE_WRITE;
	if (rs->pinned != PIN_NONE)
		return b->read_only ? ROUTE_PINNED : ROUTE_WRITE;
	if (!reads)
		return hint == HINT_PRIMARY ? ROUTE_HINT : ROUTE_WRITE;
	if (hint != HINT_REPLICA && !caught_up(w, db, rs))
		return ROUTE_READ_YOUR_WRITES;
	return ROUTE_NONE;
}

/* Whether a usable replica of db has replayed min_lsn (0: any), without moving the
 * rotation of ties. */
static bool replica_ready(struct worker *w, const struct db_conf *db, uint64_t min_lsn)
{
	for (int i = 0; i < db->n_nodes; i++) {
		struct node *n = router_node(w, db->node_list[i]);
		if (n != NULL && n->role == NODE_ROLE_REPLICA && n->usable &&
		    router_read_weight(n) > 0 && (min_lsn == 0 || n->lsn >= min_lsn))
			return true;
	}
	return false;
}

/* No replica took the read: say why the primary does (or nobody does). */
static enum route_reason no_replica_reason(struct worker *w, const struct db_conf *db,
                                           const struct route_session *rs)
{
	bool lagging = false;

	if (rs->min_lsn != 0 && replica_ready(w, db, 0))
		return ROUTE_READ_YOUR_WRITES; /* usable replicas, none at our position yet */
	for (int i = 0; i < db->n_nodes; i++) {
		struct node *n = router_node(w, db->node_list[i]);
		if (n != NULL && n->role == NODE_ROLE_REPLICA && n->up && !n->usable)
			lagging = true;
	}
	return lagging ? ROUTE_LAG : ROUTE_FALLBACK;
}

/* A read that may go to a replica. What asked for one by name (hint, pooler.route, READ
 * ONLY, a read-only session) gets one while any is usable; plain reads share the load
 * with a primary that has a weight. */
static void route_read(struct worker *w, const struct db_conf *db, const struct batch *b,
                       struct route_session *rs, struct route_decision *d)
{
	bool explicit = b->hint == HINT_REPLICA || rs->forced_route == HINT_REPLICA ||
	                b->begin_ro || rs->session_ro == 1;
	bool with_primary = w->cfg->replica_fallback == FALLBACK_PRIMARY;
	struct node *n = router_reader(w, db, rs->min_lsn, with_primary && !explicit);

	if (n == NULL && explicit && with_primary)
		n = router_reader(w, db, rs->min_lsn, true);
	if (n != NULL && n->role == NODE_ROLE_REPLICA) {
		d->node = n;
		d->reason = ROUTE_REPLICA;
		rs->on_replica = true;
		rs->ro_tx = explicit;
		return;
	}
	if (n != NULL) { /* the primary, as one reader among others */
		d->node = n;
		d->reason =
		    replica_ready(w, db, rs->min_lsn) ? ROUTE_WEIGHT : no_replica_reason(w, db, rs);
		return;
	}
	d->reason = no_replica_reason(w, db, rs);
	if (!with_primary) {
		d->reason = ROUTE_REFUSED_NO_REPLICA;
		d->sqlstate = SQLSTATE_CANNOT_CONNECT_NOW;
		snprintf(d->message, sizeof(d->message),
		         "no replica is available for this read (replica_fallback = error)");
	}
}

void router_route(struct worker *w, const struct db_conf *db, const struct batch *b,
                  struct route_session *rs, struct route_decision *d)
{
	uint8_t hint = b->hint != HINT_NONE ? b->hint : rs->forced_route;
	enum route_reason once = rs->once;

	*d = (struct route_decision){.pinned = PIN_NONE};
	rs->on_replica = rs->ro_tx = false;
	rs->once = ROUTE_NONE;
	if (!admit(w, db, b, rs, d))
		return;
	if (db->replicas_only) {
		route_replicas_only(w, db, rs, d);
		w->metrics.routed[d->reason]++;
		return;
	}
	if (once != ROUTE_NONE)
		hint = HINT_PRIMARY;
	d->reason = stays(w, db, b, rs, hint);
	if (once != ROUTE_NONE && (d->reason == ROUTE_HINT || d->reason == ROUTE_WRITE))
		d->reason = once; /* a read learned as a write on its way back counts as rerun */
	if (b->session_ro >= 0 && db->pool_mode != POOL_MODE_SESSION)
		rs->session_ro = b->session_ro;
	rs->tx_wrote = false;
	if (d->reason == ROUTE_NONE)
		route_read(w, db, b, rs, d);
	if (d->node == NULL && d->sqlstate == NULL) {
		d->node = router_primary(w, db);
		/* only what may write moves the read-your-writes position: not SET, SHOW, BEGIN */
		rs->tx_wrote = b->wal || !b->complete;
		if (d->node == NULL) {
			d->reason = ROUTE_REFUSED_NO_PRIMARY;
			d->sqlstate = SQLSTATE_CANNOT_CONNECT_NOW;
			snprintf(d->message, sizeof(d->message), "no primary server is available");
		}
	}
	w->metrics.routed[d->reason]++;
}

bool router_fits_replica(const struct route_session *rs, const struct batch *b)
{
	return rs->ro_tx ||
	       (b->read_only && !b->begin && b->hint != HINT_PRIMARY && b->session_ro < 0);
}

void router_note_batch(struct route_session *rs, const struct batch *b)
{
	if (b == NULL || !b->complete || b->wal)
		rs->tx_wrote = true;
	if (b != NULL && b->complete && b->session_ro >= 0 && rs->pinned == PIN_NONE)
		rs->session_ro = b->session_ro;
}

void router_tx_done(struct route_session *rs)
{
	if (!rs->on_replica && rs->tx_wrote)
		rs->ryw_since_us = util_now_us();
}

void router_primary_once(struct route_session *rs, enum route_reason reason)
{
	rs->once = (uint8_t)reason;
}

bool router_replica_unreachable(struct worker *w, struct route_session *rs, const struct node *n)
{
	if (n->role != NODE_ROLE_REPLICA || w->cfg->replica_fallback != FALLBACK_PRIMARY ||
	    rs->once != ROUTE_NONE)
		return false;
	rs->once = ROUTE_FALLBACK;
	w->metrics.replica_fallbacks++;
	return true;
}

void router_pin_refusal(uint8_t reason, char *out, size_t len)
{
	snprintf(out, len,
	         "this statement would tie the session to one server connection (%s), which "
	         "pin_action = error forbids for this database",
	         classify_pin_name(reason));
}

uint64_t router_primary_lsn_since(struct worker *w, const struct db_conf *db, uint64_t since_us)
{
	struct node *p = router_primary(w, db);

	if (p == NULL || !p->probed || !p->up || p->lsn_as_of_us < since_us)
		return 0;
	return p->lsn;
}

#define WAL_SEEN_LEN ARRAY_LEN(((struct worker *)0)->wal_seen)

/* Remember the primary's position when it moved, with the time its probe read it. */
static void note_primary_wal(struct worker *w, uint64_t lsn, uint64_t at_us)
{
	unsigned last = (w->wal_seen_n - 1) % WAL_SEEN_LEN;

	if (lsn == 0 || (w->wal_seen_n > 0 && w->wal_seen[last].lsn >= lsn))
		return;
	unsigned i = w->wal_seen_n++ % WAL_SEEN_LEN;
	w->wal_seen[i].lsn = lsn;
	w->wal_seen[i].us = at_us;
}

/* How long WAL past replayed has existed on the primary: since the first remembered
 * primary position beyond it. 0 when none is; UINT64_MAX when even the oldest one
 * remembered is beyond it. */
static uint64_t wal_pending_us(const struct worker *w, uint64_t replayed, uint64_t now)
{
	unsigned n = w->wal_seen_n < WAL_SEEN_LEN ? w->wal_seen_n : (unsigned)WAL_SEEN_LEN;

	for (unsigned k = 0; k < n; k++) {
		unsigned i = (w->wal_seen_n - n + k) % WAL_SEEN_LEN;
		if (w->wal_seen[i].lsn > replayed)
			return k == 0 && w->wal_seen_n > WAL_SEEN_LEN
			           ? UINT64_MAX
			           : util_elapsed_us(now, w->wal_seen[i].us);
	}
	return 0;
}

/* After a probe: held transactions try again, each on its own worker. */
static void retry_held_msg(struct worker *w, void *arg)
{
	(void)arg;
	if (w->retry_held != NULL && !list_empty(&w->held_clients))
		w->retry_held(w);
}

/* In the world section of the probe's result (node.c): every worker's state may be read. */
void router_on_probe(struct node *n, void *arg)
{
	struct worker *w = arg;
	uint64_t primary_lsn = 0, now = util_now_us();

	for (int i = 0; i < w->n_nodes; i++)
		if (w->nodes[i]->up && w->nodes[i]->role == NODE_ROLE_PRIMARY &&
		    w->nodes[i]->lsn > primary_lsn) {
			primary_lsn = w->nodes[i]->lsn;
			note_primary_wal(w, primary_lsn, w->nodes[i]->lsn_as_of_us);
		}
	for (int i = 0; i < w->n_nodes; i++)
		node_update_health(w->nodes[i], primary_lsn,
		                   wal_pending_us(w, w->nodes[i]->lsn, now));
	/* functions come and go: read their volatility again every so often */
	if (n->role == NODE_ROLE_PRIMARY && n->up && n->probes_ok % ROUTER_CATALOG_EVERY == 0)
		node_request_catalog(n);
	for (int i = 0; i < w->team->n; i++) {
		struct worker *o = w->team->all[i];
		if (o->retry_held != NULL && !list_empty(&o->held_clients))
			worker_post(o, retry_held_msg, NULL);
	}
	if (n->n_cat_names > 0) {
		struct classify_catalog cat = {
		    .names = (const char *const *)n->cat_names,
		    .n_names = n->n_cat_names,
		    .volatile_names = (const char *const *)n->cat_volatile,
		    .n_volatile = n->n_cat_volatile,
		    .setter_names = (const char *const *)n->cat_setters,
		    .n_setters = n->n_cat_setters,
		    .unlogged_names = (const char *const *)n->cat_unlogged,
		    .n_unlogged = n->n_cat_unlogged,
		};
		for (int i = 0; i < w->team->n; i++)
			classify_set_catalog(w->team->all[i]->classifier, &cat);
		log_info("function catalog from node %s: %zu functions, %zu volatile, %zu change "
		         "settings; %zu relations a standby cannot read",
		         n->name, n->n_cat_names, n->n_cat_volatile, n->n_cat_setters,
		         n->n_cat_unlogged);
		node_take_catalog(n);
	}
}
