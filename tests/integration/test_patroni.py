"""Patroni: a database names a [cluster.NAME] instead of nodes, and the pooler follows the
cluster through its REST API (GET /cluster, polled on the event loop).

The first tests need no Patroni: a small HTTP server plays the API and describes the
session cluster (its primary as the leader, its replica as a replica), so that the member
set, the fallback between URLs and an unreachable API can be set up exactly.

The last ones run a real cluster (patronicluster.py: a one-member etcd and three
Patroni-managed PostgreSQL 15 on loopback, synchronous_mode on) with clients writing and
reading through the pooler in a loop while the leader is switched over, the leader's
postmaster is killed, a replica is stopped and started, and a fourth member joins. Each
prints the measured unavailability windows (run pytest with -s to see them).
"""

import http.server
import json
import os
import re
import signal
import tempfile
import threading
import time
import urllib.error
import urllib.request

import psycopg
import pytest

import pgcluster
from conftest import wait_for

POLL = 0.2  # poll_interval of the cluster, and health_interval of the probes


def _metrics_port(p):
    m = wait_for(lambda: re.search(r"metrics on http://\S+ \(port (\d+)\)", p.log()),
                 what="metrics port in the log")
    return int(m.group(1))


def _get(port, path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _start(pooler, urls, **extra_pooler):
    pooler_keys = {"health_interval": "%dms" % (POLL * 1000), "health_timeout": "1s",
                   "retry_base": "20ms", "retry_max": "200ms"}
    pooler_keys.update(extra_pooler)
    return pooler(extra_pooler=pooler_keys,
                  extra_database={"nodes": None, "cluster": "main", "pool_size": 20},
                  extra_sections={"cluster.main": {"urls": ", ".join(urls),
                                                   "poll_interval": "%dms" % (POLL * 1000),
                                                   "timeout": "500ms"}})


# ---- a stand-in for the API ---------------------------------------------------------

class FakeApi:
    """GET /cluster answers self.body (a dict), on a loopback port of its own."""

    def __init__(self, members):
        self.members = members
        self.requests = 0
        self.status = 200
        self.raw = None  # bytes to send instead of the JSON
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                api.requests += 1
                body = api.raw or json.dumps({"members": api.members}).encode()
                self.send_response(api.status if self.path == "/cluster" else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _member(name, role, port, state="running", tags=None):
    m = {"name": name, "role": role, "state": state, "host": "127.0.0.1", "port": port,
         "api_url": "http://127.0.0.1:1/patroni"}
    if tags:
        m["tags"] = tags
    return m


@pytest.fixture
def fake_api(cluster):
    api = FakeApi([_member("a", "leader", cluster.primary_port),
                   _member("b", "replica", cluster.replica_port)])
    yield api
    api.close()


def _served_by(p, sql, dbname="app"):
    with p.connect(dbname=dbname) as c:
        return c.execute(sql).fetchone()[0]


def _try_served_by(p, sql):
    """_served_by, or None on an error (for wait_for)."""
    try:
        return _served_by(p, sql)
    except psycopg.Error:
        return None


@pytest.mark.timeout(60)
def test_login_before_any_member_is_known_gets_57P03(pooler):
    """No URL of the cluster ever answered: the database has no node yet. A client that
    logs in hears 57P03 (try again), and the pooler goes on."""
    dead = "http://127.0.0.1:%d" % pgcluster.free_port()
    p = _start(pooler, [dead])
    for _ in range(3):
        with pytest.raises(psycopg.OperationalError) as e:
            psycopg.connect(p.dsn(), connect_timeout=5)
        assert "members are not known" in str(e.value), e.value
    assert p.alive()
    assert re.search(r"error 57P03: database .{1,3}app.{1,3} has no server yet", p.log())


def test_members_become_nodes_and_api_loss_keeps_them(pooler, cluster, fake_api):
    """Members become nodes main.a / main.b without a [node] section; a closed first URL
    falls back to the next; when no URL answers the pooler keeps routing by the last known
    members and says so in /ready, the log and the metrics."""
    dead = "http://127.0.0.1:%d" % pgcluster.free_port()
    p = _start(pooler, [dead, fake_api.url])
    mport = _metrics_port(p)
    wait_for(lambda: _get(mport, "/ready")[0] == 200, timeout=10, what="ready")
    assert "node main.a (127.0.0.1:%d) added" % cluster.primary_port in p.log()
    write = "select inet_server_port() from (select txid_current()) t"
    assert _served_by(p, write) == cluster.primary_port
    wait_for(lambda: _try_served_by(p, "select inet_server_port()") == cluster.replica_port,
             timeout=10, what="a read on the replica member")
    metrics = _get(mport, "/metrics")[1]
    assert 'pooler_cluster_api_up{cluster="main"} 1' in metrics
    assert 'pooler_cluster_members{cluster="main"} 2' in metrics
    assert re.search(r'pooler_cluster_poll_failures_total\{cluster="main"\} [1-9]', metrics)

    fake_api.close()
    wait_for(lambda: "Patroni API unreachable" in _get(mport, "/ready")[1], timeout=10,
             what="/ready to report the unreachable API")
    status, body = _get(mport, "/ready")
    assert status == 200 and body.startswith("ready; cluster main: Patroni API unreachable")
    assert "no Patroni API answered (2 tried); keeping the last known members" in p.log()
    assert 'pooler_cluster_api_up{cluster="main"} 0' in _get(mport, "/metrics")[1]
    assert _served_by(p, write) == cluster.primary_port  # last known leader still writes
    assert _served_by(p, "select inet_server_port()") == cluster.replica_port


@pytest.mark.timeout(60)
def test_bad_answers_keep_the_last_view(pooler, cluster, fake_api):
    """An error status or a body that is not Patroni's JSON counts as no answer: the last
    view stays, and the log says why."""
    p = _start(pooler, [fake_api.url])
    mport = _metrics_port(p)
    wait_for(lambda: _get(mport, "/ready")[0] == 200, timeout=10, what="ready")
    for status, raw, why in ((503, None, "HTTP status 503"),
                             (200, b'{"members": [{"name": "a"}]}', "unreadable /cluster answer"),
                             (200, b"<html>", "unreadable /cluster answer")):
        fake_api.status, fake_api.raw = status, raw
        wait_for(lambda: why in p.log() and "unreachable" in _get(mport, "/ready")[1],
                 timeout=10, what=why)
        assert _served_by(p, "select inet_server_port() from (select txid_current()) t") \
            == cluster.primary_port
        fake_api.status, fake_api.raw = 200, None
        wait_for(lambda: _get(mport, "/ready") == (200, "ready\n"), timeout=10,
                 what="the API back")
    assert "node main.a" in p.log() and "removed" not in p.log()
    # SIGHUP reads the ini again with the members it knows: none of them retires
    reloads = p.log().count("reloaded")
    p.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: p.log().count("reloaded") > reloads, timeout=10, what="the reload")
    assert "removed" not in p.log() and "added" not in p.log().split("reloaded")[-1]
    assert _served_by(p, "select inet_server_port() from (select txid_current()) t") \
        == cluster.primary_port


@pytest.mark.timeout(60)
def test_api_roles_only_take_away(pooler, cluster, fake_api):
    """The API decides who may write and read; the probe has the last word: a member the
    API calls the leader but which is in recovery gets no write; a member tagged
    noloadbalance gets no read; a member that leaves is retired."""
    p = _start(pooler, [fake_api.url], query_wait_timeout="1s")  # a write waits 1 s for one
    write = "select inet_server_port() from (select txid_current()) t"
    wait_for(lambda: _try_served_by(p, "select inet_server_port()") == cluster.replica_port,
             timeout=10, what="a read on the replica")

    # the API names the replica (in recovery) leader: no write goes anywhere
    fake_api.members = [_member("a", "replica", cluster.primary_port),
                        _member("b", "leader", cluster.replica_port)]
    time.sleep(POLL * 5)
    with p.connect() as c:
        with pytest.raises(psycopg.Error) as e:
            c.execute(write)
        assert e.value.sqlstate == "57P03"
        assert "no primary" in str(e.value)
    assert "read-only transaction" not in p.log()

    # back as it is; then the replica is tagged noloadbalance: reads go to the primary
    fake_api.members = [_member("a", "leader", cluster.primary_port),
                        _member("b", "replica", cluster.replica_port,
                                tags={"noloadbalance": True})]
    wait_for(lambda: _try_served_by(p, write) == cluster.primary_port,
             timeout=10, what="writes back on the leader")
    wait_for(lambda: re.search(r"cluster main: 2 members now.*\n(.*\n)*.*reloaded", p.log()),
             timeout=10, what="a new generation for the tag")
    for _ in range(20):
        assert _served_by(p, "select inet_server_port()") == cluster.primary_port

    # the replica leaves the cluster: its node retires
    fake_api.members = [_member("a", "leader", cluster.primary_port)]
    wait_for(lambda: "node main.b (127.0.0.1:%d) removed" % cluster.replica_port in p.log(),
             timeout=10, what="main.b retired")


# ---- a real cluster -----------------------------------------------------------------

from patronicluster import PatroniCluster  # noqa: E402

OP_TIMEOUT = 5  # seconds any one statement may take: more counts as a hang


@pytest.fixture(scope="module")
def patroni():
    pc = PatroniCluster(tempfile.mkdtemp(prefix="pooler-patroni-"), members=3, synchronous=True)
    try:
        pc.start()
        _report("cluster started", **{k: "%.1fs" % v for k, v in pc.timings.items()})
        pgcluster.psql(pc.members[pc.leader()].pg_port,
                       "create table pt(id bigserial primary key, port int)", user="app",
                       password="app")
        yield pc
    finally:
        pc.stop()


class Load:
    """Clients writing and reading through the pooler in a loop, each on its own
    connection, every outcome recorded with its time: (t, port) for a success, (t, sqlstate,
    message) for an error. Writes record the id the pooler acknowledged."""

    def __init__(self, p, writers=2, readers=2, pause=0.01):
        self.p = p
        self.pause = pause
        self.stop_flag = threading.Event()
        self.writes, self.write_errors, self.acked = [], [], []
        self.reads, self.read_errors = [], []
        self.threads = [threading.Thread(target=self._loop, args=(True,), daemon=True)
                        for _ in range(writers)]
        self.threads += [threading.Thread(target=self._loop, args=(False,), daemon=True)
                         for _ in range(readers)]

    def _connect(self):
        return psycopg.connect(self.p.dsn(options="-c statement_timeout=%d" % (OP_TIMEOUT * 1000)),
                               autocommit=True)

    def _loop(self, write):
        sql = ("insert into pt(port) values (inet_server_port()) returning id, inet_server_port()"
               if write else "select 0, inet_server_port()")
        ok, errors = (self.writes, self.write_errors) if write else (self.reads, self.read_errors)
        conn = None
        while not self.stop_flag.is_set():
            try:
                if conn is None or conn.closed:
                    conn = self._connect()
                row = conn.execute(sql).fetchone()
                ok.append((time.monotonic(), row[1]))
                if write:
                    self.acked.append(row[0])
            except psycopg.Error as e:
                errors.append((time.monotonic(), e.sqlstate, str(e).strip()[:200]))
                if conn is not None and conn.closed:
                    conn = None
                time.sleep(0.02)
            time.sleep(self.pause)
        if conn is not None:
            conn.close()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        for t in self.threads:
            t.join(OP_TIMEOUT + 5)

    @staticmethod
    def window(successes, since):
        """Longest time without a success, from `since` on (seconds)."""
        times = [t for t, _ in successes if t >= since - 1]
        gaps = [b - a for a, b in zip(times, times[1:]) if b >= since]
        return max(gaps, default=0.0)

    def first_on(self, successes, port, since):
        return next((t for t, prt in successes if t >= since and prt == port), None)


def _report(what, **figures):
    print("\n[patroni] %s: %s" % (what, ", ".join("%s=%s" % kv for kv in figures.items())))


def _pooler_for(pooler, patroni):
    patroni.wait_members(3)
    urls = [m.api_url for m in patroni.members.values()]
    p = _start(pooler, urls, query_wait_timeout="10s")
    leader = patroni.members[patroni.leader()].pg_port
    wait_for(lambda: _try_served_by(p, "insert into pt(port) values (0) returning "
                                       "inet_server_port()") == leader,
             timeout=20, what="writes on the leader")
    return p


def _assert_no_write_in_recovery(load, p):
    """25006: a write reached a server in recovery. Never, whatever the API said."""
    assert not [e for e in load.write_errors if e[1] == "25006"], load.write_errors
    assert "read-only transaction" not in p.log()


@pytest.mark.timeout(180)
def test_switchover(pooler, patroni):
    p = _pooler_for(pooler, patroni)
    old = patroni.leader()
    new = patroni.sync_standby()  # synchronous_mode: only the sync standby may take over
    new_port = patroni.members[new].pg_port
    with Load(p) as load:
        time.sleep(1.5)
        t0 = time.monotonic()
        patroni.switchover(new)
        t_cmd = time.monotonic()
        wait_for(lambda: load.first_on(load.writes, new_port, t0) is not None, timeout=30,
                 what="a write on the new leader %s" % new)
        time.sleep(2)
    t_write = load.first_on(load.writes, new_port, t0)
    _report("switchover %s -> %s" % (old, new),
            patronictl_s="%.2f" % (t_cmd - t0),
            first_write_on_new_leader_after_s="%.2f" % (t_write - t0),
            write_window_s="%.2f" % load.window(load.writes, t0),
            read_window_s="%.2f" % load.window(load.reads, t0),
            write_errors=len(load.write_errors), read_errors=len(load.read_errors),
            errors=sorted({(str(e[1]), e[2][:70]) for e in load.write_errors + load.read_errors}))
    _assert_no_write_in_recovery(load, p)
    # writes resume within Patroni's own switchover time plus a poll and a probe or two
    assert t_write - t_cmd < 4 * POLL + 2, (t_write, t_cmd)
    assert load.window(load.reads, t0) < 3, load.reads
    # every write after the switchover went to the new leader
    assert all(prt == new_port for t, prt in load.writes if t > t_write)
    # errors: only writes in flight on the old primary, or refused while none is primary;
    # every one with a clear SQLSTATE
    assert all(e[1] in ("57P01", "57P03", "08006", "08003", "25P03", None) for e in
               load.write_errors + load.read_errors), load.write_errors + load.read_errors


@pytest.mark.timeout(180)
def test_leader_killed(pooler, patroni):
    """kill -9 of the leader's postmaster: Patroni (master_start_timeout 0) gives up the
    leader key and promotes the sync standby; every acknowledged write is on it."""
    p = _pooler_for(pooler, patroni)
    old = patroni.leader()
    sync = patroni.sync_standby()
    with Load(p) as load:
        time.sleep(1.5)
        t0 = time.monotonic()
        os.kill(patroni.postmaster_pid(old), signal.SIGKILL)
        wait_for(lambda: patroni.leader() not in (None, old), timeout=60, what="a new leader")
        t_promoted = time.monotonic()
        new = patroni.leader()
        new_port = patroni.members[new].pg_port
        wait_for(lambda: load.first_on(load.writes, new_port, t0) is not None, timeout=30,
                 what="a write on the promoted member %s" % new)
        time.sleep(2)
    t_write = load.first_on(load.writes, new_port, t0)
    _report("leader %s killed, %s promoted (sync standby was %s)" % (old, new, sync),
            promoted_after_s="%.2f" % (t_promoted - t0),
            first_write_on_new_leader_after_s="%.2f" % (t_write - t0),
            write_window_s="%.2f" % load.window(load.writes, t0),
            read_window_s="%.2f" % load.window(load.reads, t0),
            write_errors=len(load.write_errors), read_errors=len(load.read_errors),
            errors=sorted({(str(e[1]), e[2][:70]) for e in load.write_errors + load.read_errors}))
    _assert_no_write_in_recovery(load, p)
    assert new == sync
    assert t_write - t_promoted < 4 * POLL + 2
    # synchronous_mode: what the pooler acknowledged survived the failover
    acked = set(load.acked)
    on_new = {r[0] for r in pgcluster.query(new_port, "select id from pt", user="app",
                                            password="app")}
    assert acked and not acked - on_new, sorted(acked - on_new)[:20]
    wait_for(lambda: len(patroni.running_replicas()) == 2, timeout=90,
             what="the old leader back as a replica")


@pytest.mark.timeout(240)
def test_replica_stop_start_and_new_member(pooler, patroni):
    p = _pooler_for(pooler, patroni)
    leader = patroni.leader()
    replica = sorted(patroni.running_replicas())[0]
    r_port = patroni.members[replica].pg_port
    with Load(p, writers=1, readers=3) as load:
        wait_for(lambda: load.first_on(load.reads, r_port, 0) is not None, timeout=20,
                 what="reads on %s" % replica)
        t0 = time.monotonic()
        patroni.stop_member(replica)
        t_stopped = time.monotonic()
        time.sleep(2)
        patroni.start_member(replica)
        wait_for(lambda: load.first_on(load.reads, r_port, t_stopped + 2) is not None,
                 timeout=60, what="reads back on %s" % replica)
        t_back = load.first_on(load.reads, r_port, t_stopped + 2)
        gone = [t for t, prt in load.reads if t_stopped + 0.5 < t < t_stopped + 2 and prt == r_port]
        read_window = load.window(load.reads, t0)
        write_window = load.window(load.writes, t0)

        t1 = time.monotonic()
        m = patroni.start_member("pg4")
        wait_for(lambda: load.first_on(load.reads, m.pg_port, t1) is not None, timeout=90,
                 what="reads on the new member pg4")
        t_new = load.first_on(load.reads, m.pg_port, t1)
    _report("replica %s stopped and started; pg4 added" % replica,
            replica_stop_s="%.2f" % (t_stopped - t0),
            read_window_s="%.2f" % read_window, write_window_s="%.2f" % write_window,
            back_in_rotation_after_start_s="%.2f" % (t_back - t_stopped - 2),
            pg4_serving_reads_after_s="%.2f" % (t_new - t1),
            read_errors=len(load.read_errors), write_errors=len(load.write_errors),
            errors=sorted({(str(e[1]), e[2][:70]) for e in load.write_errors + load.read_errors}))
    assert not gone, "reads on the stopped replica"
    assert read_window < 3 and write_window < 3
    assert leader == patroni.leader()
    assert "main.pg4" in p.log() and "reloaded" in p.log()
    _assert_no_write_in_recovery(load, p)
