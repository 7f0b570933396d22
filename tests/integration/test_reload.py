"""Reload (SIGHUP or RELOAD on the admin console) changes nodes and databases under
connected clients: a replica added takes reads, a replica removed closes its idle servers
while a transaction running there finishes, a database pointed at another dbname serves
the next transaction from there, and a bad file keeps the running config and says where
it is wrong."""
import os
import signal
import threading
import time

import psycopg
import pytest

from conftest import wait_for, write_ini

FAST_PROBES = {"health_interval": "100ms"}


def admin(p):
    return psycopg.connect(p.dsn(user="admin", dbname="pooler"), autocommit=True,
                           prepare_threshold=None)


def show(a, what):
    cur = psycopg.ClientCursor(a)
    cur.execute("SHOW " + what)
    cols = [d.name for d in cur.description]
    return [dict(zip(cols, row)) for row in cur.fetchall()]


def rewrite(p, cluster, **kw):
    kw.setdefault("extra_pooler", FAST_PROBES)
    write_ini(p.dir, cluster, p.port, **kw)


def reads_reach_replica(c, tries=40):
    return any(c.execute("select pg_is_in_recovery()").fetchone()[0] for _ in range(tries))


def test_sighup_adds_a_replica_that_takes_reads(pooler, cluster):
    p = pooler(with_replica=False, extra_pooler=FAST_PROBES)
    with p.connect() as c:
        assert not reads_reach_replica(c)
        rewrite(p, cluster, with_replica=True)
        p.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "node replica1 (" in p.log() and "added" in p.log(),
                 what="the new node in the log")
        wait_for(lambda: reads_reach_replica(c), timeout=10, what="a read on the replica")
        assert c.execute("select 1").fetchone() == (1,)  # the same session all along
    with admin(p) as a:
        nodes = {n["name"]: n for n in show(a, "NODES")}
        assert nodes["replica1"]["usable"] == "yes"


def test_reload_removes_a_replica_after_its_transaction(pooler, cluster):
    p = pooler(with_replica=True, extra_pooler=FAST_PROBES)
    with p.connect() as reader, p.connect() as other, admin(p) as a:
        wait_for(lambda: reads_reach_replica(other), timeout=10, what="replica in rotation")
        extra = [p.connect() for _ in range(2)]
        for e in extra:  # two more replica servers, idle once these commit
            e.execute("begin read only")
            e.execute("select 1")
        reader.execute("begin read only")
        assert reader.execute("select pg_is_in_recovery()").fetchone() == (True,)
        for e in extra:
            e.execute("commit")
            e.close()
        servers = [s for s in show(a, "SERVERS") if s["node"] == "replica1"]
        pids = {int(s["remote_pid"]) for s in servers}
        busy = {int(s["remote_pid"]) for s in servers if s["state"] == "active"}
        assert len(busy) == 1 and len(pids) >= 3, servers  # one busy, two idle
        rewrite(p, cluster, with_replica=False)
        cur = psycopg.ClientCursor(a)
        cur.execute("RELOAD")
        assert "replica1" not in {n["name"] for n in show(a, "NODES")}

        def replica_pids():
            rows = cluster.query("select pid from pg_stat_activity", port=cluster.replica_port,
                                 db="postgres")
            return {r[0] for r in rows} & pids

        # the idle ones close at once; the busy one stays for its transaction
        wait_for(lambda: replica_pids() == busy, timeout=5, what="idle replica servers closed")
        assert reader.execute("select pg_is_in_recovery()").fetchone() == (True,)
        reader.execute("commit")
        wait_for(lambda: not replica_pids(), timeout=5, what="the busy server closed")
        # the same clients go on, on the primary
        assert not reads_reach_replica(reader, tries=10)
        assert other.execute("select 2").fetchone() == (2,)


def test_reload_points_a_database_at_another_dbname(pooler, cluster):
    if not cluster.scalar("select count(*) from pg_database where datname = 'app_other'",
                          db="postgres"):
        cluster.psql(cluster.primary_port, "create database app_other owner app",
                     db="postgres")
    p = pooler(with_replica=False, extra_pooler=FAST_PROBES)
    with p.connect() as c, admin(p) as a:
        assert c.execute("select current_database()").fetchone() == ("app",)
        rewrite(p, cluster, with_replica=False, extra_database={"dbname": "app_other"})
        psycopg.ClientCursor(a).execute("RELOAD")
        assert c.execute("select current_database()").fetchone() == ("app_other",)
        assert [d["database"] for d in show(a, "DATABASES")] == ["app_other"]


def test_a_bad_file_keeps_the_running_config_and_says_where(pooler, cluster):
    p = pooler(with_replica=True, extra_pooler=FAST_PROBES)
    with p.connect() as c, admin(p) as a:
        rewrite(p, cluster, with_replica=False, extra_database={"pool_mode": "sideways"})
        lines = open(p.ini).read().splitlines()
        line = next(i + 1 for i, l in enumerate(lines) if l.startswith("pool_mode"))
        with pytest.raises(psycopg.Error) as e:
            psycopg.ClientCursor(a).execute("RELOAD")
        msg = str(e.value)
        assert "pooler.ini:%d" % line in msg and "pool_mode" in msg, msg
        assert "replica1" in {n["name"] for n in show(a, "NODES")}  # nothing applied
        p.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: p.log().count("reload failed") >= 2, what="the SIGHUP failure logged")
        failed = [l for l in p.log().splitlines() if "reload failed" in l][-1]
        assert "pooler.ini:%d" % line in failed and "pool_mode" in failed, failed
        assert c.execute("select 1").fetchone() == (1,)


def test_a_client_waiting_on_a_removed_replica_goes_to_the_primary(pooler, cluster):
    """pool_size 1: one read-only transaction holds the replica's only server, a second
    waits for it; the replica leaves the config; the waiting one runs on the primary,
    without an error."""
    p = pooler(pool_size=1, with_replica=True, extra_pooler=FAST_PROBES)
    with p.connect() as holder, p.connect() as waiter, admin(p) as a:
        wait_for(lambda: reads_reach_replica(waiter), timeout=10, what="replica in rotation")
        holder.execute("begin read only")
        assert holder.execute("select pg_is_in_recovery()").fetchone() == (True,)
        got = {}

        def wait_then_read():
            waiter.execute("begin read only")
            got["v"] = waiter.execute("select pg_is_in_recovery()").fetchone()[0]
            waiter.execute("commit")

        t = threading.Thread(target=wait_then_read)
        t.start()
        wait_for(lambda: any(r["cl_waiting"] == 1 for r in show(a, "POOLS")),
                 what="the second client queued")
        rewrite(p, cluster, with_replica=False, pool_size=1)
        psycopg.ClientCursor(a).execute("RELOAD")
        t.join(10)
        assert got.get("v") is False, got
        holder.execute("commit")


def probes(a, node="primary"):
    return int([n for n in show(a, "NODES") if n["name"] == node][0]["probes_ok"])


def test_reload_applies_probe_settings_to_kept_nodes(pooler, cluster):
    """A node whose section is unchanged keeps running, but takes the new health_interval
    (and the other probe, backoff and breaker settings) at once."""
    p = pooler(with_replica=False, extra_pooler={"health_interval": "30s"})
    with admin(p) as a:
        wait_for(lambda: probes(a) >= 1, what="the first probe")
        before = probes(a)
        time.sleep(1.0)
        assert probes(a) == before  # 30 s apart: none in this second
        rewrite(p, cluster, with_replica=False, extra_pooler={"health_interval": "100ms"})
        p.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: probes(a) >= before + 5, timeout=5,
                 what="probes every 100 ms after the reload")
        nodes = show(a, "NODES")
        assert [n["up"] for n in nodes] == ["yes"], nodes


def test_reload_with_new_tls_settings_replaces_the_node(pooler, cluster):
    """Changing a node's sslmode makes it a new node: servers logged in under the old settings
    are not reused."""
    p = pooler(with_replica=False, extra_pooler=FAST_PROBES)
    with p.connect() as c:
        c.execute("select 1")
        rewrite(p, cluster, with_replica=False, node_overrides={"primary": {"sslmode": "prefer"}})
        p.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "node primary (" in p.log() and "removed" in p.log(),
                 what="the old node retired")
        # served by a fresh node; the session was not dropped
        assert c.execute("select 1").fetchone() == (1,)


def test_reload_that_reorders_node_sections_keeps_each_database_on_its_nodes(pooler, cluster):
    """Nodes are looked up by their place in the file: sections written in another order
    keep their running nodes, and a database still runs on the nodes it names (here only
    the primary, although a replica is configured)."""
    p = pooler(with_replica=True, extra_pooler=FAST_PROBES, extra_database={"nodes": "primary"})
    with p.connect() as c, admin(p) as a:
        wait_for(lambda: all(n["up"] == "yes" for n in show(a, "NODES")), timeout=10,
                 what="both nodes probed")
        assert not reads_reach_replica(c, tries=10)
        sections = open(p.ini).read().split("\n\n")
        replica = next(s for s in sections if s.startswith("[node.replica1]"))
        sections.remove(replica)
        sections.insert(1, replica)  # right after [pooler], before [node.primary]
        with open(p.ini, "w") as f:
            f.write("\n\n".join(sections))
        psycopg.ClientCursor(a).execute("RELOAD")
        assert "added" not in p.log() and "removed" not in p.log()  # both nodes kept
        c.execute("begin")
        assert c.execute("select pg_is_in_recovery()").fetchone() == (False,)
        c.execute("commit")
        assert not reads_reach_replica(c, tries=10)
        assert {n["name"]: n["role"] for n in show(a, "NODES")} == {
            "primary": "primary", "replica1": "replica"}


def test_a_removed_database_finishes_its_transaction_then_ends_the_session(pooler, cluster):
    """A database removed by a reload: a transaction running there finishes, the session
    ends at its next one with a clear error; other databases carry on."""
    gone = {"dbname": "app", "nodes": "primary", "server_user": "app", "server_password": "app"}
    p = pooler(with_replica=False, extra_pooler=FAST_PROBES,
               extra_sections={"database.gone": gone})
    with p.connect() as stay, p.connect(dbname="gone") as leaving, admin(p) as a:
        leaving.execute("begin")
        assert leaving.execute("select current_database()").fetchone() == ("app",)
        rewrite(p, cluster, with_replica=False)
        psycopg.ClientCursor(a).execute("RELOAD")
        assert [d["database"] for d in show(a, "DATABASES")] == ["app"]
        assert leaving.execute("select 2").fetchone() == (2,)  # same transaction
        leaving.execute("commit")
        with pytest.raises(psycopg.Error) as e:
            leaving.execute("select 3")
        assert "database was removed from the config" in str(e.value)
        assert "retired: database removed" in p.log()
        assert stay.execute("select 1").fetchone() == (1,)
