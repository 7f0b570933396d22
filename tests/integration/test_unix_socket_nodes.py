"""Server connections over Unix sockets: a node whose `host` is a directory (as libpq
reads it, e.g. `host = /var/run/postgresql`) is reached over the socket
`DIR/.s.PGSQL.PORT` in that directory, for pooled server connections and for the node's
health probe alike. The test cluster's servers listen on loopback TCP and on a Unix
socket in `cluster.socket_dir`; its pg_hba.conf trusts every local connection."""

import threading
import time

import psycopg
import pytest

from conftest import wait_for


def server_side(cluster, port=None):
    """(client_addr, application_name) of every backend of user `app` on one server,
    the pooler's health probe included."""
    return cluster.query(
        "select client_addr::text, application_name from pg_stat_activity"
        " where usename = 'app' and backend_type = 'client backend'"
        " and pid <> pg_backend_pid()", port=port, db="postgres")


def admin_rows(p, sql):
    """The rows of an admin console command, as dicts."""
    with psycopg.connect(p.dsn(user="admin", dbname="pooler"), autocommit=True,
                         prepare_threshold=None) as conn:
        cur = psycopg.ClientCursor(conn)   # the console speaks the simple protocol
        cur.execute(sql)
        cols = [d.name for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]


def test_queries_reach_the_primary_over_its_unix_socket(cluster, pooler):
    p = pooler(with_replica=False, node_overrides={"primary": {"host": cluster.socket_dir}})
    with p.connect() as conn:
        # inet_server_addr() is NULL on a Unix-socket connection, 127.0.0.1 over TCP
        assert conn.execute("select inet_server_addr()").fetchone() == (None,)
        assert conn.execute("select current_user, pg_is_in_recovery()").fetchone() == \
            ("app", False)
        conn.execute("begin")
        conn.execute("create table if not exists unix_node_t (x int)")
        conn.execute("insert into unix_node_t values (1)")
        conn.execute("commit")
        assert conn.execute("select count(*) > 0 from unix_node_t").fetchone() == (True,)
        conn.execute("drop table unix_node_t")
    # every connection the pooler holds on the server, the probe's too, is local
    backends = server_side(cluster)
    assert backends, "the pooler holds no server connection"
    assert all(addr is None for addr, _ in backends), backends
    assert "pooler health probe" in {app for _, app in backends}, backends


def test_admin_console_shows_the_socket_directory(cluster, pooler):
    p = pooler(with_replica=False, node_overrides={"primary": {"host": cluster.socket_dir}})
    with p.connect() as conn:
        conn.execute("select 1")
        servers = admin_rows(p, "SHOW SERVERS")
        nodes = admin_rows(p, "SHOW NODES")
    assert servers, "SHOW SERVERS lists no server connection"
    for s in servers:
        assert s["addr"] == cluster.socket_dir, s
        assert int(s["port"]) == cluster.primary_port, s
        assert s["local_addr"] == "unix" and int(s["local_port"]) == 0, s
    node = [n for n in nodes if n["name"] == "primary"][0]
    assert node["host"] == cluster.socket_dir, node
    assert node["role"] == "primary", node


def test_reads_go_to_the_replica_over_its_unix_socket(cluster, pooler):
    """Both nodes in the same socket directory, told apart by their ports; the probe
    finds the replica's role over the socket, so reads go there."""
    p = pooler(node_overrides={"primary": {"host": cluster.socket_dir},
                               "replica1": {"host": cluster.socket_dir}})

    def replica_serves():
        with p.connect() as conn:
            return conn.execute("select pg_is_in_recovery()").fetchone() == (True,)

    wait_for(replica_serves, timeout=10, what="a read served by the replica")
    with p.connect() as conn:
        assert conn.execute("select pg_is_in_recovery(), inet_server_addr()").fetchone() \
            == (True, None)
    assert all(addr is None for addr, _ in server_side(cluster, cluster.replica_port))


def test_cancel_reaches_a_backend_behind_the_socket(cluster, pooler):
    """The pooler forwards a client's CancelRequest over the same socket."""
    p = pooler(with_replica=False, node_overrides={"primary": {"host": cluster.socket_dir}})
    with p.connect() as conn:
        timer = threading.Timer(0.5, conn.cancel)
        t0 = time.monotonic()
        timer.start()
        try:
            with pytest.raises(psycopg.errors.QueryCanceled):
                conn.execute("select pg_sleep(10)")
        finally:
            timer.cancel()
        assert time.monotonic() - t0 < 3.0
        assert conn.execute("select 'still usable'").fetchone() == ("still usable",)


def test_a_missing_socket_directory_fails_the_client_quickly(cluster, pooler, tmp_path):
    """No server socket there: the client gets an error naming the socket (not a hang),
    and the log says which node and why."""
    missing = str(tmp_path / "no-such-dir")
    p = pooler(with_replica=False, node_overrides={"primary": {"host": missing}},
               extra_pooler={"server_connect_timeout": 2})
    with pytest.raises(psycopg.OperationalError) as ei:
        with p.connect() as conn:
            conn.execute("select 1")
    assert "%s/.s.PGSQL.%d" % (missing, cluster.primary_port) in str(ei.value)
    wait_for(lambda: missing in p.log(), timeout=5, what="the directory in the pooler log")
