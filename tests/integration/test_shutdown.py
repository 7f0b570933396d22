"""Stopping the daemon: SIGTERM stops accepting, lets running transactions finish, tells
idle clients 57P01 and exits 0 when the last transaction is done (or at shutdown_timeout);
SIGINT exits at once."""
import os
import re
import signal
import subprocess
import time
import uuid

import psycopg
import pytest

import pgcluster
from pgwire import RawConn

PGBENCH = os.path.join(pgcluster.PG_BIN, "pgbench")
ADMIN_SHUTDOWN = "terminating connection due to administrator command"


def wait_exit(p, timeout):
    p.exit_expected = True
    try:
        return p.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError("pooler still running %.1f s after the signal:\n%s"
                             % (timeout, p.log_tail(30)))


@pytest.fixture(scope="module")
def table(cluster):
    cluster.psql(cluster.primary_port,
                 "create table if not exists shutdown_rows(v text); "
                 "grant all on shutdown_rows to app")
    return "shutdown_rows"


def test_sigterm_lets_a_running_transaction_commit(pooler, cluster, table):
    p = pooler(with_replica=False, auth_type="trust", extra_pooler={"shutdown_timeout": "10s"})
    marker = uuid.uuid4().hex
    with p.connect() as busy, RawConn(p.host, p.port) as idle:
        idle.login_trust("app", "app")
        assert idle.simple_query("select 1")[0] == [["1"]]
        busy.execute("begin")
        busy.execute("insert into shutdown_rows values (%s)", (marker,))
        started = time.monotonic()
        p.proc.send_signal(signal.SIGTERM)
        # the idle client is told why it goes, with the SQLSTATE PostgreSQL uses
        kind, fields = idle.eof_or_error()
        assert kind == "E" and fields["C"] == "57P01" and fields["S"] == "FATAL", fields
        assert fields["M"] == ADMIN_SHUTDOWN
        # no new clients
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(p.dsn(connect_timeout=2)).close()
        assert p.alive(), "exited while a transaction was still running"
        busy.execute("select pg_sleep(0.5)")
        busy.execute("insert into shutdown_rows values (%s)", (marker,))
        busy.execute("commit")
        rc = wait_exit(p, 5)
    assert rc == 0, p.log_tail(30)
    assert time.monotonic() - started < 10
    n = cluster.scalar("select count(*) from shutdown_rows where v = %s", (marker,))
    assert n == 2


def test_sigterm_gives_up_after_shutdown_timeout(pooler):
    p = pooler(with_replica=False, extra_pooler={"shutdown_timeout": "1s"})
    stuck = p.connect()
    stuck.execute("begin")
    stuck.execute("select 1")
    started = time.monotonic()
    p.proc.send_signal(signal.SIGTERM)
    rc = wait_exit(p, 5)
    took = time.monotonic() - started
    stuck.close()
    assert rc == 0
    assert 0.8 < took < 3, took
    assert "shutdown_timeout" in p.log()


def test_sigint_exits_at_once(pooler):
    p = pooler(with_replica=False, extra_pooler={"shutdown_timeout": "30s"})
    c = p.connect()
    c.execute("begin")
    c.execute("select 1")
    started = time.monotonic()
    p.proc.send_signal(signal.SIGINT)
    rc = wait_exit(p, 5)
    c.close()
    assert rc == 0
    assert time.monotonic() - started < 3  # not the 30 s shutdown_timeout


@pytest.fixture(scope="module")
def bench_tables(cluster):
    env = dict(os.environ, PGPASSWORD="app")
    r = subprocess.run([PGBENCH, "-h", cluster.host, "-p", str(cluster.primary_port), "-U",
                        "app", "-i", "-s", "1", "-q", "app"], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr


@pytest.mark.timeout(60)
def test_sigterm_during_pgbench_aborts_no_transaction(pooler, bench_tables):
    """pgbench's clients see their connection end between transactions, never a failed
    or half-done one."""
    p = pooler(pool_size=4, with_replica=False, extra_pooler={"shutdown_timeout": "10s"})
    env = dict(os.environ, PGPASSWORD="app", PGCONNECT_TIMEOUT="5")
    bench = subprocess.Popen([PGBENCH, "-h", p.host, "-p", str(p.port), "-U", "app", "-n",
                              "-c", "8", "-j", "2", "-T", "8", "app"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(2)
    p.proc.send_signal(signal.SIGTERM)
    rc = wait_exit(p, 10)
    out, _ = bench.communicate(timeout=30)
    assert rc == 0, p.log_tail(30)
    processed = re.search(r"number of transactions actually processed: (\d+)", out)
    failed = re.search(r"number of failed transactions: (\d+)", out)
    assert processed and int(processed.group(1)) > 0, out
    assert failed and int(failed.group(1)) == 0, out
    # clients end only where a transaction would begin: command 4 is BEGIN (0-3 are
    # \set), so no transaction was cut in the middle
    aborted = re.findall(r"client \d+ .*aborted in command (\d+)", out)
    assert aborted and set(aborted) == {"4"}, out
    assert ADMIN_SHUTDOWN in out
