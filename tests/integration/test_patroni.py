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
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                api.requests += 1
                body = json.dumps({"members": api.members}).encode()
                self.send_response(200 if self.path == "/cluster" else 404)
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
def test_api_roles_only_take_away(pooler, cluster, fake_api):
    """The API decides who may write and read; the probe has the last word: a member the
    API calls the leader but which is in recovery gets no write; a member tagged
    noloadbalance gets no read; a member that leaves is retired."""
    p = _start(pooler, [fake_api.url])
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
