"""Failover with `role = auto`: the pooler finds the primary by probing, and after the primary
stops and the replica is promoted, writes through the pooler reach the new primary within a
few probe intervals.  Runs on a cluster of its own (the session cluster is left alone)."""

import re
import signal
import psycopg
import tempfile
import threading
import time

import pytest

import pgcluster
from conftest import wait_for
from pgwire import ConnectionClosed, RawConn

INTERVAL = 0.2
ATTEMPT_TIMEOUT = 3.0          # every attempt is bounded; longer counts as a hang


@pytest.fixture
def fo_cluster():
    c = pgcluster.Cluster(tempfile.mkdtemp(prefix="pooler-failover-"))
    c.start()
    try:
        c.psql(c.primary_port, "create table fo_t(id serial primary key, port int)", user="app")
        c.wait_replay()
        yield c
    finally:
        c.stop()


def attempt(p, sql):
    """One statement on a fresh connection: (first column of the first row, None) or
    (None, error text).  Bounded by ATTEMPT_TIMEOUT."""
    try:
        with RawConn(p.host, p.port, timeout=ATTEMPT_TIMEOUT) as c:
            c.login_trust("app", "app")
            rows, _, errors = c.simple_query(sql)
            if errors:
                return None, "%s: %s" % (errors[0].get("C"), errors[0].get("M"))
            return rows[0][0], None
    except (OSError, ConnectionClosed, AssertionError, ValueError) as e:
        return None, repr(e)


WRITE = "insert into fo_t(port) values (inet_server_port()) returning inet_server_port()"
READ = "select inet_server_port()"


@pytest.mark.timeout(120)
def test_writes_follow_promotion(pooler, fo_cluster):
    cl = fo_cluster
    p = pooler(on_cluster=cl, auth_type="trust",
               node_overrides={"primary": {"role": "auto", "weight": 0},
                               "replica1": {"role": "auto"}},
               extra_pooler={"health_interval": "200ms", "health_timeout": "1s"})

    # before: the pooler found out by itself which node is the primary
    def write_on(port):
        v, err = attempt(p, WRITE)
        return v is not None and int(v) == port
    wait_for(lambda: write_on(cl.primary_port), timeout=10, interval=0.1,
             what="a write to run on the primary")
    wait_for(lambda: attempt(p, READ)[0] == str(cl.replica_port), timeout=10, interval=0.1,
             what="a read to run on the replica")
    for _ in range(5):
        v, err = attempt(p, WRITE)
        assert err is None and int(v) == cl.primary_port, (v, err)

    # a writer keeps trying while the primary is down (1 s) and the replica is promoted
    log = []                        # (start, seconds taken, value, error)
    stop = threading.Event()

    def writer():
        while not stop.is_set():
            t0 = time.monotonic()
            v, err = attempt(p, WRITE)
            log.append((t0, time.monotonic() - t0, v, err))
            stop.wait(0.05)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        time.sleep(0.3)
        t_stop = time.monotonic()
        cl.stop_server(cl.primary_dir, mode="fast")
        time.sleep(1.0)
        cl.promote_replica()
        t_promoted = time.monotonic()
        deadline = t_promoted + 30
        while time.monotonic() < deadline and not any(
                x[0] >= t_promoted and x[3] is None for x in log):
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        stop.set()
        t.join(ATTEMPT_TIMEOUT + 5)
    wrong = [x for x in log
             if x[3] is None and x[0] > t_stop + 0.5 and int(x[2]) != cl.replica_port]
    assert not wrong, "writes after the primary stopped ran elsewhere: %s" % wrong[:5]
    ok_after = [x[0] for x in log if x[0] >= t_promoted and x[3] is None]
    first_ok = ok_after[0] if ok_after else None
    hangs = [x for x in log if x[1] >= ATTEMPT_TIMEOUT - 0.1]
    log = [(round(x[0] - t_promoted, 2), round(x[1], 2), x[2], x[3]) for x in log
           if x[0] >= t_stop - 0.1]
    errs = sorted({x[3][:60] for x in log if x[3] is not None})
    print("errors seen while there was no primary: %s" % errs[:5])
    print("primary stopped, replica promoted %.2fs later; first write through the pooler"
          " %.2fs after the promotion; %d attempts in between failed, %d hung" % (
              t_promoted - t_stop, (first_ok - t_promoted) if first_ok else -1,
              sum(1 for x in log if x[3] is not None), len(hangs)))
    assert first_ok is not None, "no write succeeded within 30 s of the promotion: %s\n%s" % (
        log[-5:], p.log_tail(40))
    assert first_ok - t_promoted <= 5.0, (
        "writes reached the new primary only %.1fs after the promotion (probe every %.1fs): %s"
        % (first_ok - t_promoted, INTERVAL, log[-20:]))
    assert not hangs, "attempts hung for %.0fs instead of failing fast: %s\n%s" % (
        ATTEMPT_TIMEOUT, hangs[:5], p.log_tail(40))

    # after: everything works on the new primary; reads fall back to it (no replica left)
    for _ in range(10):
        v, err = attempt(p, WRITE)
        assert err is None and int(v) == cl.replica_port, (v, err, p.log_tail(20))
        v, err = attempt(p, READ)
        assert err is None and int(v) == cl.replica_port, (v, err, p.log_tail(20))
    rows = cl.query("select count(*) from fo_t where port = %s", (cl.replica_port,),
                    port=cl.replica_port)
    assert rows[0][0] >= 11


def test_a_write_waits_for_the_new_primary_instead_of_failing(pooler, cluster):
    """While no primary is known (here the node meant to be the primary answers as a
    replica, as an old primary does after a failover until the new one is found), a write
    waits for one, up to query_wait_timeout: past it, 57P03 and the session goes on; when
    a probe finds the primary, the waiting write runs there at once."""
    p = pooler(node_overrides={"primary": {"role": "auto", "port": cluster.replica_port}},
               extra_pooler={"health_interval": "100ms", "query_wait_timeout": "3s"})
    wait_for(lambda: re.search(r"node primary \S+ is up \(replica\)", p.log()), timeout=10,
             what="the probe of the node meant to be the primary")
    write = "select inet_server_port() from (select txid_current()) t"
    with psycopg.connect(p.dsn(), autocommit=True, prepare_threshold=None) as c:
        t0 = time.monotonic()
        with pytest.raises(psycopg.errors.CannotConnectNow):
            c.execute(write)
        waited = time.monotonic() - t0
        assert 2.5 <= waited <= 6, waited  # held for query_wait_timeout, then told
        assert c.execute("select 1").fetchone() == (1,)  # the session goes on
        with open(p.ini) as f:
            ini = f.read()
        with open(p.ini, "w") as f:  # the first port is [node.primary]'s
            f.write(ini.replace("port = %d" % cluster.replica_port,
                                "port = %d" % cluster.primary_port, 1))
        threading.Timer(0.5, p.proc.send_signal, (signal.SIGHUP,)).start()
        t0 = time.monotonic()
        assert c.execute(write).fetchone()[0] == cluster.primary_port
        assert time.monotonic() - t0 < 2.5
    assert "the transaction waits for one" in p.log()
