"""Everyday client traffic through the pooler: psql, psycopg (simple and extended
protocol), asyncpg, big results, transactions, errors and ParameterStatus."""

import asyncio
import os
import subprocess

import psycopg
import pytest

import pgcluster
from conftest import CONNECT_TIMEOUT

PSQL = os.path.join(pgcluster.PG_BIN, "psql")


def run_psql(host, port, sql, user="app", password="app", db="app"):
    env = dict(os.environ, PGPASSWORD=password, PGCONNECT_TIMEOUT=str(CONNECT_TIMEOUT))
    return subprocess.run([PSQL, "-X", "-A", "-t", "-h", host, "-p", str(port), "-U", user,
                           "-d", db, "-c", sql], env=env, capture_output=True, text=True,
                          timeout=30)


def test_psql_select_1_over_tcp(pooler):
    p = pooler()
    r = run_psql("127.0.0.1", p.port, "select 1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1"


def test_psql_select_1_over_unix_socket(pooler):
    p = pooler()
    assert os.path.exists(os.path.join(p.unix_dir, ".s.PGSQL.%d" % p.port)), \
        "no unix socket in unix_socket_dir"
    r = run_psql(p.unix_dir, p.port, "select 1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1"


def test_psycopg_over_unix_socket(pooler):
    p = pooler()
    with psycopg.connect(p.dsn(host=p.unix_dir), autocommit=True) as conn:
        assert conn.execute("select %s::int", (5,)).fetchone() == (5,)
        assert conn.info.host == p.unix_dir


def test_psycopg_simple_protocol(pooler):
    """Without parameters psycopg sends a simple Query; several statements in one go work."""
    p = pooler()
    with p.connect() as conn:
        assert conn.execute("select 40 + 2").fetchone() == (42,)
        cur = conn.execute("select 'a'; select 'b', 2")
        assert cur.fetchall() == [("a",)]
        assert cur.nextset()
        assert cur.fetchall() == [("b", 2)]


def test_psycopg_extended_protocol(pooler):
    """With parameters psycopg uses Parse/Bind/Execute (unnamed statement)."""
    p = pooler()
    with p.connect() as conn:
        assert conn.execute("select %s::int * 2, %s::text", (21, "x")).fetchone() == (42, "x")
        cur = conn.execute("select %s::int + 1", (1,), prepare=False)
        assert cur.fetchone() == (2,)
        rows = conn.execute("select g, %s::text from generate_series(1, 3) g", ("r",)).fetchall()
        assert rows == [(1, "r"), (2, "r"), (3, "r")]


def test_psycopg_named_prepared_statement_reused(pooler):
    """prepare=True makes psycopg Parse a named statement once and Bind it again later."""
    p = pooler()
    with p.connect() as conn:
        for i in range(10):
            cur = conn.execute("select %s::int * 10", (i,), prepare=True)
            assert cur.fetchone() == (i * 10,)


def test_asyncpg_fetch_with_params(pooler):
    p = pooler()

    async def main():
        conn = await p.aconnect()
        try:
            rows = await conn.fetch("select $1::int as a, $2::text as b", 7, "seven")
            assert [tuple(r) for r in rows] == [(7, "seven")]
            assert await conn.fetchval("select $1::int + $2::int", 2, 3) == 5
            # the same statement again: asyncpg reuses its named prepared statement
            assert await conn.fetchval("select $1::int + $2::int", 20, 30) == 50
        finally:
            await conn.close()

    asyncio.run(main())


def test_asyncpg_first_query_while_another_client_logs_in(pooler):
    """The first extended-protocol query of an asyncpg client (which asks for
    client_encoding 'utf-8', so the pooler adjusts the server first) answers promptly
    even when a second client has just logged in. Repeated on fresh poolers because
    the failure this guards against was intermittent."""
    async def once(p):
        a = await p.aconnect(command_timeout=3)
        b = await p.aconnect(statement_cache_size=0, command_timeout=3)
        try:
            return await a.fetchval("select $1::int", 1)
        finally:
            await a.close()
            await b.close()

    for attempt in range(10):
        p = pooler(pool_size=2)
        try:
            assert asyncio.run(once(p)) == 1
        except asyncio.TimeoutError:
            raise AssertionError("attempt %d: first query got no answer in 3 s; pooler log:\n%s"
                                 % (attempt, p.log_tail(15)))


def test_large_result_arrives_complete(pooler):
    p = pooler()
    with p.connect() as conn:
        cur = conn.execute("select g, repeat('x', 20) from generate_series(1, 100000) g")
        n = total = 0
        for g, s in cur:
            n += 1
            total += g
            assert s == "x" * 20
        assert n == 100000
        assert total == 100000 * 100001 // 2


def test_large_query_text_and_parameter(pooler):
    p = pooler()
    big = "y" * (1 << 20)
    with p.connect() as conn:
        assert conn.execute("select length('%s')" % big).fetchone() == (1 << 20,)
        assert conn.execute("select md5(%s)", (big,)).fetchone()[0] == \
            conn.execute("select md5(repeat('y', %s))", (1 << 20,)).fetchone()[0]


def test_commit_is_visible_and_rollback_is_not(cluster, pooler):
    cluster.psql(cluster.primary_port, "drop table if exists basic_tx;"
                 " create table basic_tx(id int primary key, note text)", user="app")
    p = pooler(with_replica=False)  # another client's read on a replica may lag the commit
    with p.connect(autocommit=False) as conn:
        conn.execute("insert into basic_tx values (1, 'kept')")
        conn.commit()
        conn.execute("insert into basic_tx values (2, 'discarded')")
        conn.rollback()
    with p.connect() as other:
        assert other.execute("select id from basic_tx order by id").fetchall() == [(1,)]
    assert cluster.query("select id, note from basic_tx") == [(1, "kept")]


def test_error_in_transaction_reaches_client_and_session_recovers(pooler):
    p = pooler()
    with p.connect(autocommit=False) as conn:
        conn.execute("select 1")
        with pytest.raises(psycopg.errors.DivisionByZero) as ei:
            conn.execute("select 1/0")
        assert ei.value.sqlstate == "22012"
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            conn.execute("select 2")
        conn.rollback()
        assert conn.execute("select 3").fetchone() == (3,)
        conn.commit()
    with p.connect() as conn:  # autocommit: error outside a transaction
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("select 1/0")
        assert conn.execute("select 4").fetchone() == (4,)


def test_parameter_status_reaches_client(pooler):
    p = pooler()
    with p.connect() as conn:
        ps = conn.info.parameter_status
        assert ps("server_version") and ps("server_version").startswith("15"), ps("server_version")
        assert ps("client_encoding") == "UTF8"
        assert ps("DateStyle") and "ISO" in ps("DateStyle")
        assert ps("TimeZone")
        assert ps("standard_conforming_strings") == "on"
        assert ps("integer_datetimes") == "on"


def test_each_client_keeps_its_startup_timezone_on_a_shared_server(pooler):
    """Three clients with different TimeZone startup options share ONE server
    connection; every transaction of each sees its own TimeZone. (One node, so that
    reads have no replica to spread to.)"""
    p = pooler(pool_size=1, with_replica=False)
    zones = ["Asia/Tokyo", "America/New_York", "UTC"]
    # prepare_threshold=None: keep psycopg's automatic prepared statements out of
    # this test (test_psycopg_auto_prepared_statements_on_a_shared_server covers them)
    conns = [psycopg.connect(p.dsn(options="-c TimeZone=%s" % z), autocommit=True,
                             prepare_threshold=None) for z in zones]
    try:
        for z, c in zip(zones, conns):
            assert c.info.parameter_status("TimeZone") == z
        pids = set()
        for i in range(20):
            for z, c in zip(zones, conns):
                if i % 2:
                    with c.transaction():
                        tz, pid = c.execute("select current_setting('TimeZone'),"
                                            " pg_backend_pid()").fetchone()
                else:
                    tz = c.execute("show timezone").fetchone()[0]
                    pid = c.execute("select pg_backend_pid()").fetchone()[0]
                assert tz == z, "transaction %d of the %s client saw TimeZone %s" % (i, z, tz)
                pids.add(pid)
        assert len(pids) == 1, "pool_size=1 but clients ran on servers %s" % pids
    finally:
        for c in conns:
            c.close()
