"""Pipelining: several requests in flight before the first answer arrives."""

import asyncio

import psycopg
import pytest

from pgwire import RawConn, query_message


def test_psycopg_pipeline_results_in_order(pooler):
    p = pooler()
    with p.connect() as conn:
        with conn.pipeline() as pipe:
            curs = [conn.execute("select %s::int, pg_backend_pid()", (i,)) for i in range(20)]
            pipe.sync()
            curs += [conn.execute("select %s::int, pg_backend_pid()", (i,)) for i in range(20, 40)]
            pipe.sync()
            curs += [conn.execute("select %s::int, pg_backend_pid()", (i,)) for i in range(40, 50)]
        values = [c.fetchone()[0] for c in curs]
        assert values == list(range(50))


def test_psycopg_pipeline_in_transaction(pooler, cluster):
    cluster.psql(cluster.primary_port, "drop table if exists pipe_t; create table pipe_t(x int)",
                 user="app")
    cluster.wait_replay()  # reads through the pooler may use the replica
    p = pooler()
    with p.connect(autocommit=False) as conn:
        with conn.pipeline():
            for i in range(100):
                conn.execute("insert into pipe_t values (%s)", (i,))
            cur = conn.execute("select count(*), sum(x) from pipe_t")
        assert cur.fetchone() == (100, 4950)
        conn.commit()
    assert cluster.scalar("select count(*) from pipe_t") == 100


def test_psycopg_pipeline_error_skips_to_sync(pooler):
    p = pooler()
    with p.connect() as conn:
        with pytest.raises(psycopg.errors.DivisionByZero):
            with conn.pipeline():
                conn.execute("select 1")
                conn.execute("select 1/0")
                conn.execute("select 2")
        assert conn.execute("select 3").fetchone() == (3,)


def test_asyncpg_executemany(pooler, cluster):
    cluster.psql(cluster.primary_port, "drop table if exists many_t;"
                 " create table many_t(seq int, val text)", user="app")
    cluster.wait_replay()  # reads through the pooler may use the replica
    p = pooler()

    async def main():
        conn = await p.aconnect()
        try:
            await conn.executemany("insert into many_t values ($1, $2)",
                                   [(i, "v%d" % i) for i in range(1000)])
            rows = await conn.fetch("select seq, val from many_t order by seq")
            assert [(r[0], r[1]) for r in rows] == [(i, "v%d" % i) for i in range(1000)]
        finally:
            await conn.close()

    asyncio.run(main())
    assert cluster.scalar("select count(*) from many_t") == 1000


def test_simple_queries_sent_back_to_back(pooler):
    """Ten Query messages in a single write; ten answers come back in order."""
    p = pooler(auth_type="trust")
    with RawConn(p.host, p.port) as c:
        c.login_trust("app", "app")
        c.send(b"".join(query_message("select %d" % i) for i in range(10)))
        got = []
        for _ in range(10):
            msgs, _ = c.read_until("Z")
            rows = [m for m in msgs if m[0] == "D"]
            assert len(rows) == 1 and not [m for m in msgs if m[0] == "E"], msgs
            got.append(int(rows[0][1][6:].decode()))
        assert got == list(range(10))


def test_psycopg_pipeline_of_5000_statements_before_one_sync(pooler):
    """psycopg's pipeline mode sends every Parse/Bind/Execute before one Sync: no count of
    outstanding answers ends the session; memory is bounded by the sockets' backpressure."""
    p = pooler(pool_size=2, with_replica=False)
    with p.connect(prepare_threshold=None) as conn:
        with conn.pipeline():
            curs = [conn.execute("select %s::int + 1", (i,)) for i in range(5000)]
        assert [c.fetchone()[0] for c in curs] == list(range(1, 5001))
        assert conn.execute("select 41 + 1").fetchone() == (42,)
