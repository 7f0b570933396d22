"""The routing safety net: a statement that looks like a read but writes (here a function
wrongly marked STABLE that calls nextval) is refused by the replica with 25006 before any
row reaches the client. The pooler reruns it on the primary, the client sees only the
result, the refusal is counted, and the statement's shape is remembered as a write."""
import re
import time
import urllib.request

import psycopg

from conftest import wait_for
from test_metrics import metrics_port, samples, value


def wait_replica_reads(p, cluster):
    """Until the probes have put the replica in the read rotation (on a busy machine the
    first reads may still fall back to the primary, and nothing would be refused)."""
    def ok():
        with p.connect(prepare_threshold=None) as c:
            return c.execute("select inet_server_port()").fetchone()[0] == cluster.replica_port
    wait_for(ok, timeout=15, interval=0.1, what="reads to reach the replica")


def test_replica_refusal_reruns_on_primary_and_is_learned(cluster, pooler):
    cluster.psql(cluster.primary_port,
                 "create sequence if not exists sn_seq;"
                 " create or replace function sn_sneaky() returns bigint language sql stable"
                 " as $$ select nextval('sn_seq') $$", user="app")
    cluster.wait_replay()
    p = pooler(node_overrides={"primary": {"weight": 0}},
               extra_pooler={"health_interval": "100ms", "read_your_writes": "off"})
    port = metrics_port(p)
    # the function catalog must be in before the classifier trusts STABLE
    deadline = time.monotonic() + 10
    while "function catalog" not in p.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    wait_replica_reads(p, cluster)
    with psycopg.connect(p.dsn(), autocommit=True, prepare_threshold=None) as c:
        rows = []
        for _ in range(3):
            cur = psycopg.ClientCursor(c)  # simple protocol, as the safety net needs
            cur.execute("select sn_sneaky() is not null, inet_server_port()")
            rows.append(cur.fetchone())
    assert all(ok for ok, _ in rows), rows
    assert {port_ for _, port_ in rows} == {cluster.primary_port}, rows
    assert len(re.findall(r"a replica refused a statement", p.log())) == 1, p.log()
    deadline = time.monotonic() + 5
    while True:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
            s = samples(r.read().decode())
        if value(s, "pooler_replica_refusals_total") == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert value(s, "pooler_replica_refusals_total") == 1


def test_replica_refusal_in_the_extended_protocol(cluster, pooler):
    """The same through Parse/Bind/Execute/Sync (psycopg with a parameter)."""
    cluster.psql(cluster.primary_port,
                 "create sequence if not exists sn_seq2;"
                 " create or replace function sn_sneaky2(int) returns bigint language sql"
                 " stable as $$ select nextval('sn_seq2') + $1 $$", user="app")
    cluster.wait_replay()
    p = pooler(node_overrides={"primary": {"weight": 0}},
               extra_pooler={"health_interval": "100ms", "read_your_writes": "off"})
    deadline = time.monotonic() + 10
    while "function catalog" not in p.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    wait_replica_reads(p, cluster)
    with psycopg.connect(p.dsn(), autocommit=True, prepare_threshold=None) as c:
        rows = [c.execute("select sn_sneaky2(%s) is not null, inet_server_port()",
                          (i,)).fetchone() for i in range(3)]
    assert all(ok for ok, _ in rows), rows
    assert {port for _, port in rows} == {cluster.primary_port}, rows
    assert len(re.findall(r"a replica refused a statement", p.log())) == 1, p.log()
