"""Routing defaults, round two: reads go to the replicas unless none may serve them, a SET is
not a write, a statement a replica refused stays known as a write, and a quiet replica is not
reported behind."""
import re
import socket
import time

import psycopg
import pytest

from conftest import wait_for
from test_limits import await_metric, metric

HEALTH = {"health_interval": "100ms"}


def port(conn, sql="select inet_server_port()"):
    return conn.execute(sql).fetchone()[0]


def wait_replica_reads(p, cluster):
    def ok():
        with p.connect(prepare_threshold=None) as c:
            return port(c) == cluster.replica_port
    wait_for(ok, timeout=15, interval=0.1, what="reads to reach the replica")


def test_reads_go_to_the_replica_by_default(pooler, cluster):
    """weight = auto: the primary takes no reads while the replica may serve them."""
    p = pooler(extra_pooler=dict(HEALTH, read_your_writes="off"))
    wait_replica_reads(p, cluster)
    with p.connect(prepare_threshold=None) as c:
        ports = [port(c) for _ in range(30)]
    assert set(ports) == {cluster.replica_port}, ports


def test_a_weighted_primary_shares_reads(pooler, cluster):
    p = pooler(node_overrides={"primary": {"weight": 1}},
               extra_pooler=dict(HEALTH, read_your_writes="off"))
    wait_replica_reads(p, cluster)
    conns = [p.connect(prepare_threshold=None) for _ in range(4)]
    try:
        ports = set()
        for _ in range(20):  # in-flight ties rotate over both nodes
            ports.update(port(c) for c in conns)
    finally:
        for c in conns:
            c.close()
    assert ports == {cluster.primary_port, cluster.replica_port}, ports


def test_set_and_show_do_not_count_as_writes(pooler, cluster):
    """read_your_writes = window (30 s): only a transaction that may write keeps the
    client's reads on the primary; SET, SHOW and an empty transaction do not."""
    cluster.psql(cluster.primary_port, "create table if not exists rd_t(a int)", user="app")
    cluster.wait_replay()
    p = pooler(extra_pooler=dict(HEALTH, read_your_writes="window",
                                 read_your_writes_window="30s"))
    wait_replica_reads(p, cluster)
    with p.connect(prepare_threshold=None) as c:
        c.execute("set application_name = 'rd_app'")
        assert port(c) == cluster.replica_port
        c.execute("show work_mem")
        c.execute("begin")
        c.execute("commit")
        assert port(c) == cluster.replica_port
        c.execute("set default_transaction_read_only = on")
        assert port(c) == cluster.replica_port
        c.execute("set default_transaction_read_only = off")
        c.execute("insert into rd_t values (1)")  # a write: reads stay on the primary now
        assert port(c) == cluster.primary_port


def test_learned_write_survives_a_catalog_refresh(pooler, cluster):
    """A statement the replica refused (a function wrongly marked STABLE that writes) is
    learned as a write; reading the function catalog again (every 60 probes) keeps that."""
    cluster.psql(cluster.primary_port,
                 "create sequence if not exists rd_seq;"
                 " create or replace function rd_sneaky() returns bigint language sql stable"
                 " as $$ select nextval('rd_seq') $$", user="app")
    cluster.wait_replay()
    p = pooler(node_overrides={"primary": {"weight": 0}},
               extra_pooler=dict(HEALTH, read_your_writes="off"))
    wait_for(lambda: "function catalog" in p.log(), timeout=10, what="the function catalog")
    wait_replica_reads(p, cluster)
    with psycopg.connect(p.dsn(), autocommit=True, prepare_threshold=None) as c:
        cur = psycopg.ClientCursor(c)  # simple protocol: the safety net reruns it
        cur.execute("select rd_sneaky() is not null, inet_server_port()")
        assert cur.fetchone() == (True, cluster.primary_port)
        # 60 probes at 100 ms: the catalog is read again
        wait_for(lambda: p.log().count("function catalog from node") >= 2, timeout=15,
                 interval=0.2, what="a second read of the function catalog")
        for _ in range(3):
            cur.execute("select rd_sneaky() is not null, inet_server_port()")
            assert cur.fetchone() == (True, cluster.primary_port)
    assert p.log().count("a replica refused a statement") == 1, p.log_tail(30)
    await_metric(p, "pooler_replica_refusals_total", lambda v: v == 1)


def test_quiet_replica_is_not_reported_behind(pooler, cluster):
    """After a quiet spell, WAL without commits (checkpoints, segment switches) reaches the
    replica: its last replayed commit is old, but it is not behind, and stays in rotation."""
    p = pooler(node_overrides={"primary": {"weight": 0}},
               extra_pooler=dict(HEALTH, read_your_writes="off", max_replica_lag="1s",
                                 max_replica_lag_bytes=1 << 30))  # a switch jumps 16 MB
    wait_replica_reads(p, cluster)
    cluster.psql(cluster.primary_port, "create table if not exists rd_q(a int);"
                 " insert into rd_q values (1)", user="app")
    time.sleep(2.5)  # no commit from here on
    deadline = time.monotonic() + 4
    with p.connect(prepare_threshold=None) as c:
        while time.monotonic() < deadline:
            cluster.psql(cluster.primary_port, "checkpoint", db="postgres")
            cluster.psql(cluster.primary_port, "select pg_switch_wal()", db="postgres")
            assert port(c) == cluster.replica_port
            time.sleep(0.1)
    assert "leaves the read rotation" not in p.log(), p.log_tail(20)


def test_delayed_replica_lag_is_the_delay_not_the_quiet_time(pooler, cluster):
    """A replica that applies commits 2 s late, after 6 s without commits: while a new
    commit waits, its lag is about 2 s (how long the primary has had that WAL), not the 6 s
    since the last commit it replayed; with max_replica_lag = 4s it stays in rotation."""
    p = pooler(node_overrides={"primary": {"weight": 0}},
               extra_pooler=dict(HEALTH, read_your_writes="off", max_replica_lag="4s"))
    wait_replica_reads(p, cluster)
    cluster.psql(cluster.primary_port, "create table if not exists rd_d(a int)", user="app")
    cluster.wait_replay()
    def set_delay(value):
        cluster.psql(cluster.replica_port,
                     "alter system set recovery_min_apply_delay = '%s'" % value, db="postgres")
        cluster.psql(cluster.replica_port, "select pg_reload_conf()", db="postgres")

    set_delay("2s")
    try:
        time.sleep(6)  # quiet: the replica's last replayed commit grows old
        cluster.psql(cluster.primary_port, "insert into rd_d values (1)", user="app")
        deadline = time.monotonic() + 3.5
        with p.connect(prepare_threshold=None) as c:
            while time.monotonic() < deadline:
                assert port(c) == cluster.replica_port, p.log_tail(10)
                time.sleep(0.1)
    finally:
        set_delay("0")
        cluster.wait_replay()
    assert "leaves the read rotation" not in p.log(), p.log_tail(20)


def test_notices_on_probe_connections_go_to_the_log(pooler, cluster):
    """What a server says on the pooler's own connections (here DEBUG messages, since the
    probe's role has client_min_messages = debug5) becomes logfmt lines, never raw
    stderr."""
    cluster.psql(cluster.primary_port,
                 "do $$ begin if not exists (select from pg_roles where rolname = 'rd_noisy')"
                 " then create role rd_noisy login; end if; end $$;"
                 " alter role rd_noisy set client_min_messages = 'debug5'", db="postgres")
    cluster.wait_replay()
    p = pooler(with_replica=False,
               extra_pooler=dict(HEALTH, health_user="rd_noisy", health_dbname="app"))
    wait_for(lambda: "notice on the pooler's own connection (primary)" in p.log(), timeout=10,
             what="a probe notice in the log")
    raw = [line for line in p.log().splitlines() if line and not line.startswith("ts=")]
    assert raw == [], raw[:5]


def test_reads_of_unlogged_tables_and_their_views_go_to_the_primary(pooler, cluster):
    """The catalog says which relations a standby cannot read (unlogged tables, views over
    them, views of those views): reads of them go to the primary at once, in both
    protocols, without a refusal from the replica."""
    cluster.psql(cluster.primary_port, "drop table if exists rd_ul cascade;"
                 " create unlogged table rd_ul(a int); insert into rd_ul values (5);"
                 " create view rd_ul_v as select a from rd_ul;"
                 " create view rd_ul_vv as select a * 2 as b from rd_ul_v", user="app")
    cluster.wait_replay()
    p = pooler(node_overrides={"primary": {"weight": 0}},
               extra_pooler=dict(HEALTH, read_your_writes="off"))
    wait_for(lambda: re.search(r"[1-9]\d* relations a standby cannot read", p.log()),
             timeout=10, what="the catalog of unlogged relations")
    wait_replica_reads(p, cluster)
    with psycopg.connect(p.dsn(), autocommit=True, prepare_threshold=None) as c:
        cur = psycopg.ClientCursor(c)
        for sql in ("select sum(a), inet_server_port() from rd_ul",
                    "select sum(a), inet_server_port() from public.RD_UL_V",
                    "select sum(b) / 2, inet_server_port() from rd_ul_vv"):
            cur.execute(sql)
            assert cur.fetchone() == (5, cluster.primary_port), sql
            assert c.execute(sql).fetchone() == (5, cluster.primary_port), sql  # extended
        assert port(c) == cluster.replica_port  # other reads stay on the replica
    assert "a replica refused" not in p.log()


def test_unlogged_table_read_reruns_on_the_primary_and_is_learned(pooler, cluster):
    """A standby cannot read an unlogged table (0A000). One created after the catalog was
    read: the autocommit read is rerun on the primary before anything reached the
    client, and its shape is learned."""
    p = pooler(node_overrides={"primary": {"weight": 0}},
               extra_pooler={"health_interval": "300ms", "read_your_writes": "off"})
    wait_for(lambda: "function catalog" in p.log(), timeout=10, what="the catalog")
    cluster.psql(cluster.primary_port, "drop table if exists rd_unlogged;"
                 " create unlogged table rd_unlogged(a int); insert into rd_unlogged values (7)",
                 user="app")
    cluster.wait_replay()
    wait_replica_reads(p, cluster)
    with psycopg.connect(p.dsn(), autocommit=True, prepare_threshold=None) as c:
        cur = psycopg.ClientCursor(c)  # simple protocol, as the safety net needs
        for _ in range(3):
            cur.execute("select sum(a), inet_server_port() from rd_unlogged")
            assert cur.fetchone() == (7, cluster.primary_port)
    assert p.log().count("a replica refused a statement classified as a read (0A000)") == 1


def test_reads_fall_back_to_the_primary_at_once_when_a_replica_goes(pooler, cluster):
    """replica_fallback = primary: a replica that stops answering (here a proxy in front of
    it closes) sends its reads to the primary at once, before the probes notice."""
    from test_resilience import FlakyProxy
    proxy = FlakyProxy(cluster.replica_port, drops=0)
    p = pooler(node_overrides={"replica1": {"port": proxy.port}},
               extra_pooler={"health_interval": "3s", "read_your_writes": "off",
                             "retry_base": "10ms", "retry_max": "20ms", "retry_max_tries": "1"})
    wait_replica_reads(p, cluster)
    proxy.close()
    for a, b in proxy.links:
        for x in (a, b):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
    time.sleep(0.2)  # the pooler sees its replica connections end
    t0 = time.monotonic()
    with p.connect(prepare_threshold=None) as c:
        ports = [port(c) for _ in range(10)]
    assert set(ports) == {cluster.primary_port}, ports
    assert time.monotonic() - t0 < 2.5, "the probes noticed first: no fallback at once"
    await_metric(p, "pooler_replica_connect_fallbacks_total", lambda v: v >= 1)


def routed(p, reason, target="primary"):
    return metric(p, "pooler_routing_decisions_total", target=target, reason=reason)


def test_routing_metrics_say_why_a_read_went_to_the_primary(pooler, cluster):
    """pooler_routing_decisions_total names the reason: a hint, the client's own recent
    write (read_your_writes), the primary's weight, a session that keeps its server; a
    write counts as write and a replica read as read."""
    cluster.psql(cluster.primary_port, "create table if not exists rd_m(a int)", user="app")
    cluster.wait_replay()
    p = pooler(extra_pooler=dict(HEALTH, read_your_writes="window",
                                 read_your_writes_window="30s"))
    wait_replica_reads(p, cluster)
    with p.connect(prepare_threshold=None) as c:
        assert port(c) == cluster.replica_port
        assert port(c, "/* pooler:primary */ select inet_server_port()") == \
            cluster.primary_port
        c.execute("insert into rd_m values (1)")
        assert port(c) == cluster.primary_port  # its own write is not on the replica yet
        c.execute("create temp table rd_tmp(a int)")  # pins: a write, then pinned reads
    # the snapshot /metrics serves is taken every second: wait for the client's last
    # decision (its second write), so that one snapshot has them all
    await_metric(p, "pooler_routing_decisions_total", lambda v: v >= 2, target="primary",
                 reason="write")
    assert routed(p, "hint") == 1
    assert routed(p, "read_your_writes") == 1
    assert routed(p, "write") == 2
    assert routed(p, "read", target="replica") >= 2
    assert routed(p, "weight") == 0
    assert routed(p, "no_replica", target="none") == 0

    p2 = pooler(node_overrides={"primary": {"weight": 1000}},
                extra_pooler=dict(HEALTH, read_your_writes="off"))
    wait_replica_reads(p2, cluster)
    with p2.connect(prepare_threshold=None) as c:
        for _ in range(10):
            port(c)
    await_metric(p2, "pooler_routing_decisions_total", lambda v: v >= 1, target="primary",
                 reason="weight")
    assert routed(p2, "read_your_writes") == 0
    assert routed(p2, "hint") == 0


def test_a_database_of_replicas_only(pooler, cluster):
    """[database.app_ro] lists only the replica (a reporting database): it is accepted, its
    reads run on the replica, and a write gets the replica's own read-only error (25006),
    never the primary the operator did not list for it."""
    cluster.psql(cluster.primary_port, "create table if not exists rd_ro(a int)", user="app")
    cluster.wait_replay()
    p = pooler(extra_pooler=HEALTH, extra_sections={"database.app_ro": {
        "dbname": "app", "nodes": "replica1", "server_user": "app", "server_password": "app"}})
    with psycopg.connect(p.dsn(dbname="app_ro"), autocommit=True,
                         prepare_threshold=None) as c:
        for _ in range(5):
            assert port(c) == cluster.replica_port
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            c.execute("insert into rd_ro values (1)")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            with c.transaction():
                c.execute("insert into rd_ro values (2)")
        assert port(c) == cluster.replica_port  # the session goes on
    assert cluster.psql(cluster.primary_port, "select count(*) from rd_ro", user="app") \
        .strip() == "0"
    assert "a replica refused" not in p.log()
    await_metric(p, "pooler_routing_decisions_total", lambda v: v >= 8, target="replica",
                 reason="replicas_only")
    assert routed(p, "write") == 0


def test_serializable_set_after_begin_read_only_moves_to_the_primary(pooler, cluster):
    """BEGIN READ ONLY, then SET TRANSACTION ISOLATION LEVEL SERIALIZABLE in a batch of its
    own: a standby cannot run serializable transactions, so the transaction moves to the
    primary before anything ran in it; the client sees no error and stays READ ONLY.
    A read-only transaction that does not ask for it stays on the replica."""
    p = pooler(extra_pooler=dict(HEALTH, read_your_writes="off"))
    wait_replica_reads(p, cluster)
    with psycopg.connect(p.dsn(), autocommit=True, prepare_threshold=None) as c:
        for _ in range(2):
            c.execute("begin read only")
            c.execute("set transaction isolation level serializable")
            assert port(c) == cluster.primary_port
            assert c.execute("show transaction_isolation").fetchone() == ("serializable",)
            assert c.execute("show transaction_read_only").fetchone() == ("on",)
            c.execute("commit")
        c.execute("BEGIN TRANSACTION READ ONLY")
        c.execute("set local statement_timeout = 5000")
        assert port(c) == cluster.replica_port
        c.execute("commit")
    assert "moves to the primary" in p.log()


def test_a_serializable_session_runs_on_the_primary(pooler, cluster):
    """Logged in with default_transaction_isolation = serializable (a startup option):
    every transaction is serializable, which a standby cannot run: all go to the primary,
    reads too, and work."""
    p = pooler(extra_pooler=dict(HEALTH, read_your_writes="off"))
    wait_replica_reads(p, cluster)
    with psycopg.connect(p.dsn(), autocommit=True, prepare_threshold=None,
                         options="-c default_transaction_isolation=serializable") as c:
        for _ in range(3):
            assert port(c) == cluster.primary_port
        with c.transaction():
            c.execute("set transaction read only")
            assert c.execute("show transaction_isolation").fetchone() == ("serializable",)
            assert port(c) == cluster.primary_port
    assert "a replica refused" not in p.log()  # sent there at once, not after a refusal
