"""Pooling: many clients on few server connections, waiting for a free server,
and session mode resetting a server before the next client gets it."""

import asyncio
import threading
import time

import pytest

from conftest import BackendSampler, wait_no_app_backends

CLIENTS = 200
POOL = 5


@pytest.mark.timeout(90)
def test_200_clients_share_5_server_connections(pooler, cluster):
    wait_no_app_backends(cluster)
    p = pooler(pool_size=POOL)

    async def client(i):
        conn = await p.aconnect(statement_cache_size=0, timeout=30)
        try:
            for k in range(3):
                async with conn.transaction():
                    assert await conn.fetchval("select $1::int * 2", i + k) == 2 * (i + k)
                await conn.execute("select pg_sleep(0.005)")
            return i
        finally:
            await conn.close()

    async def main():
        return await asyncio.wait_for(
            asyncio.gather(*(client(i) for i in range(CLIENTS)), return_exceptions=True), 60)

    with BackendSampler(cluster) as sampler:
        started = time.monotonic()
        results = asyncio.run(main())
        elapsed = time.monotonic() - started
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, "%d of %d clients failed, first: %r" % (len(failures), CLIENTS, failures[0])
    assert sorted(results) == list(range(CLIENTS))
    assert not sampler.errors, sampler.errors
    assert sampler.samples > 0
    assert sampler.peak <= POOL, "primary saw %d app backends (pool_size=%d): %s" % (
        sampler.peak, POOL, sampler.peak_rows[:12])
    assert elapsed < 60


def test_client_waits_for_a_free_server_then_proceeds(pooler):
    """pool_size=1: while A holds the only server in a transaction, B's query waits;
    it runs as soon as A commits. (One node, so that B's read has no replica to go to.)"""
    p = pooler(pool_size=1, with_replica=False)
    with p.connect() as a, p.connect() as b:
        a.execute("begin")
        a.execute("select 1")
        result = {}

        def run_b():
            try:
                t0 = time.monotonic()
                result["value"] = b.execute("select 'b ran'").fetchone()[0]
                result["at"] = time.monotonic() - t0
            except Exception as e:
                result["error"] = e

        t = threading.Thread(target=run_b, daemon=True)
        t.start()
        t.join(0.7)
        assert t.is_alive(), "B ran while the only server was inside A's transaction: %r" % result
        a.execute("commit")
        t.join(10)
        assert not t.is_alive(), "B still waiting 10 s after A committed"
        assert result.get("value") == "b ran", result


def test_session_mode_resets_server_between_clients(pooler, cluster):
    """Session mode, pool of 1: the second client gets the same server connection
    but none of the first client's session state (DISCARD ALL)."""
    p = pooler(pool_size=1, pool_mode="session")
    with p.connect() as first:
        default_path = first.execute("show search_path").fetchone()[0]
        first.execute("set search_path = pg_catalog, nothing_here")
        first.execute("create temp table session_tmp(x int)")
        first.execute("prepare session_stmt as select 1")
        assert first.execute("show search_path").fetchone()[0] == "pg_catalog, nothing_here"
        pid1 = first.execute("select pg_backend_pid()").fetchone()[0]
    with p.connect() as second:
        pid2 = second.execute("select pg_backend_pid()").fetchone()[0]
        assert pid2 == pid1, "pool_size=1 session mode but a new server was used"
        assert second.execute("show search_path").fetchone()[0] == default_path
        assert second.execute("select count(*) from pg_prepared_statements").fetchone() == (0,)
        assert second.execute(
            "select count(*) from pg_class where relname = 'session_tmp'").fetchone() == (0,)


def test_session_mode_keeps_session_state_for_one_client(pooler):
    p = pooler(pool_size=2, pool_mode="session")
    with p.connect() as c:
        c.execute("set application_name = 'kept'")
        pid = c.execute("select pg_backend_pid()").fetchone()[0]
        for _ in range(5):
            with c.transaction():
                assert c.execute("show application_name").fetchone()[0] == "kept"
                assert c.execute("select pg_backend_pid()").fetchone()[0] == pid


def test_pool_size_auto(pooler, cluster):
    """pool_size = auto (cores * 2 + 1) works and stays within that bound."""
    import os
    wait_no_app_backends(cluster)
    p = pooler(pool_size="auto")
    bound = (os.cpu_count() or 1) * 2 + 1

    async def main():
        conns = [await p.aconnect(statement_cache_size=0) for _ in range(bound + 5)]
        try:
            await asyncio.gather(*(c.execute("select pg_sleep(0.3)") for c in conns))
        finally:
            for c in conns:
                await c.close()

    with BackendSampler(cluster) as sampler:
        asyncio.run(main())
    assert 1 <= sampler.peak <= bound, (sampler.peak, bound, sampler.peak_rows[:12])
