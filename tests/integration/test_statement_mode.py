"""pool_mode = statement: every statement gets a server connection of its own and gives it
back at its ReadyForQuery. A transaction block cannot span statements then, so BEGIN (or a
multi-statement query that opens one) is refused with SQLSTATE 0A000 "transaction blocks
not allowed in statement pooling mode"; autocommit statements, including implicit
transactions of several statements in one query, run."""
import os
import subprocess

import psycopg
import pytest

import pgcluster
from conftest import wait_no_app_backends
from test_metrics import metrics_port, value, wait_metrics
from test_pgbench import initialized, parse, pgbench  # noqa: F401 (fixture)

PSQL = os.path.join(pgcluster.PG_BIN, "psql")
MESSAGE = "transaction blocks not allowed in statement pooling mode"


def psql(p, sql):
    env = dict(os.environ, PGPASSWORD="app", PGCONNECT_TIMEOUT="5")
    return subprocess.run([PSQL, "-X", "-q", "-At", "-h", p.host, "-p", str(p.port), "-U",
                           "app", "-d", "app", "-c", sql], env=env, capture_output=True,
                          text=True, timeout=30)


def test_statements_share_one_server_and_blocks_are_refused(pooler):
    p = pooler(pool_size=1, pool_mode="statement", with_replica=False)
    with psycopg.connect(p.dsn(), autocommit=True) as a, \
            psycopg.connect(p.dsn(), autocommit=True) as b:
        # two clients interleave on the one server, statement by statement
        for i in range(5):
            assert a.execute("select %s::int", (i,)).fetchone() == (i,)
            assert b.execute("select %s::int", (i,)).fetchone() == (i,)
        cur = a.execute("select 1; select 2")  # one implicit transaction: allowed
        assert cur.nextset() and cur.fetchone() == (2,)
        with pytest.raises(psycopg.errors.FeatureNotSupported) as ei:
            a.execute("begin")
        assert MESSAGE in str(ei.value)
        assert a.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            a.execute("select 1; begin; select 2")
        # the session goes on, and b was never blocked
        assert a.execute("select 3").fetchone() == (3,)
        assert b.execute("select 4").fetchone() == (4,)
    s = wait_metrics(metrics_port(p),
                     lambda s: value(s, "pooler_statement_mode_refusals_total") >= 2)
    assert value(s, "pooler_statement_mode_refusals_total") == 2


def test_psycopg_transactions_are_refused(pooler):
    p = pooler(pool_size=2, pool_mode="statement")
    with psycopg.connect(p.dsn()) as c:  # not autocommit: psycopg sends BEGIN
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            c.execute("select 1")


def test_psql(pooler):
    p = pooler(pool_size=1, pool_mode="statement", with_replica=False)
    r = psql(p, "select 40 + 2")
    assert r.returncode == 0 and r.stdout.strip() == "42", r.stderr
    r = psql(p, "begin; select 1; commit")
    assert r.returncode != 0 and MESSAGE in r.stderr, (r.stdout, r.stderr)
    r = psql(p, "select 7")  # the server was not left inside a transaction
    assert r.returncode == 0 and r.stdout.strip() == "7", r.stderr


@pytest.mark.timeout(90)
def test_pgbench_select_only(pooler, cluster, initialized):  # noqa: F811
    wait_no_app_backends(cluster)
    p = pooler(pool_size=4, pool_mode="statement")
    r = pgbench(p.host, p.port, "-n", "-S", "-c", "20", "-j", "2", "-T", "5", timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    processed, failed, _ = parse(out)
    assert processed and processed > 0 and failed == 0, out
    # the TPC-B script opens transaction blocks: every client fails on its first BEGIN
    r = pgbench(p.host, p.port, "-n", "-c", "2", "-j", "1", "-t", "3", timeout=60)
    assert r.returncode != 0 and MESSAGE in r.stdout + r.stderr
