"""Query cancellation through the pooler (CancelRequest with the key the pooler gave)."""

import asyncio
import random
import socket
import struct
import threading
import time

import psycopg
import pytest

from conftest import wait_for
from pgwire import cancel_request, wait_closed
from test_admin import admin, rows
from test_metrics import metrics_port, value, wait_metrics
from test_resilience import FlakyProxy


def sleeping_backends(cluster):
    return [r for r in cluster.app_backends() if r[1] == "active" and "pg_sleep(10)" in (r[3] or "")]


def test_psycopg_cancel_interrupts_long_query(pooler, cluster):
    p = pooler()
    with p.connect() as conn:
        timer = threading.Timer(0.5, conn.cancel)
        t0 = time.monotonic()
        timer.start()
        try:
            with pytest.raises(psycopg.errors.QueryCanceled) as ei:
                conn.execute("select pg_sleep(10)")
        finally:
            timer.cancel()
        elapsed = time.monotonic() - t0
        assert ei.value.sqlstate == "57014"
        assert elapsed < 2.0, "cancel took %.2f s" % elapsed
        assert conn.execute("select 'still usable'").fetchone() == ("still usable",)
    wait_for(lambda: not sleeping_backends(cluster), timeout=3, what="pg_sleep to stop on primary")


def test_asyncpg_timeout_cancels_query(pooler, cluster):
    p = pooler()

    async def main():
        conn = await p.aconnect()
        try:
            t0 = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):
                await conn.fetchval("select pg_sleep(10)", timeout=0.5)
            assert await conn.fetchval("select 1") == 1
            return time.monotonic() - t0
        finally:
            await conn.close()

    elapsed = asyncio.run(main())
    assert elapsed < 2.5, "timeout + cancel + next query took %.2f s" % elapsed
    wait_for(lambda: not sleeping_backends(cluster), timeout=3, what="pg_sleep to stop on primary")


def test_cancel_hits_only_the_right_client(pooler):
    """Two clients sleep on two servers; cancelling one leaves the other alone."""
    p = pooler(pool_size=2)
    with p.connect() as a, p.connect() as b:
        result = {}

        def run_b():
            try:
                result["b"] = b.execute("select pg_sleep(1.5), 'b done'").fetchone()[1]
            except Exception as e:
                result["b"] = e

        tb = threading.Thread(target=run_b, daemon=True)
        tb.start()
        time.sleep(0.2)
        timer = threading.Timer(0.5, a.cancel)
        timer.start()
        try:
            with pytest.raises(psycopg.errors.QueryCanceled):
                a.execute("select pg_sleep(10)")
        finally:
            timer.cancel()
        tb.join(10)
        assert result.get("b") == "b done", result


def test_cancel_request_with_unknown_key_is_ignored(pooler):
    p = pooler()
    with p.connect() as conn:
        result = {}

        def run():
            try:
                result["v"] = conn.execute("select pg_sleep(1), 'finished'").fetchone()[1]
            except Exception as e:
                result["v"] = e

        t = threading.Thread(target=run, daemon=True)
        t.start()
        time.sleep(0.2)
        for _ in range(3):
            s = socket.create_connection((p.host, p.port), timeout=5)
            s.sendall(cancel_request(random.getrandbits(32), random.getrandbits(32)))
            assert wait_closed(s, timeout=5), "pooler kept a bogus CancelRequest connection open"
            s.close()
        t.join(10)
        assert result.get("v") == "finished", result
        assert conn.execute("select 1").fetchone() == (1,)
    assert p.alive()


class CancelDelayProxy(FlakyProxy):
    """Loopback TCP proxy to a server that holds each CancelRequest for `delay` seconds
    before passing it on (everything else goes straight through)."""

    def __init__(self, target_port, delay):
        self.delay = delay
        self.cancels = 0
        super().__init__(target_port, drops=0)

    def handle(self, c):
        # a thread each: a held cancel must not hold up the connections behind it
        threading.Thread(target=self.link, args=(c,), daemon=True).start()

    def link(self, c):
        try:
            c.settimeout(5)
            head = c.recv(8, socket.MSG_PEEK | socket.MSG_WAITALL)
            c.settimeout(None)
            if head == struct.pack("!II", 16, 80877102):
                self.cancels += 1
                time.sleep(self.delay)
            s = socket.create_connection(("127.0.0.1", self.target))
        except OSError:
            c.close()
            return
        for a, b in ((c, s), (s, c)):
            threading.Thread(target=self.pipe, args=(a, b), daemon=True).start()


def test_a_late_cancel_never_reaches_the_next_client(cluster, pooler):
    """A cancel still on its way when its query ends would interrupt whatever the backend
    runs next: the server serves no other client until the postmaster has answered it."""
    proxy = CancelDelayProxy(cluster.primary_port, delay=3.0)
    try:
        p = pooler(with_replica=False, pool_size=1,
                   node_overrides={"primary": {"port": proxy.port}})
        with p.connect() as a, p.connect() as b:
            timer = threading.Timer(0.1, a.cancel)
            timer.start()
            try:
                # the cancel is held by the proxy: the query ends normally
                assert a.execute("select pg_sleep(1), 'a'").fetchone()[1] == "a"
            finally:
                timer.join(5)
            assert proxy.cancels == 1
            with admin(p) as console:
                cols, pools = rows(console, "SHOW POOLS")
            pool = dict(zip(cols, pools[0]))
            assert (pool["sv_being_canceled"], pool["sv_idle"]) == (1, 0), pool
            # /metrics (a snapshot a second) says the same of the server
            def state(s, st):
                return value(s, "pooler_server_connections", node="primary", state=st)
            s = wait_metrics(metrics_port(p), lambda s: state(s, "being_canceled") == 1,
                             timeout=1.5)
            assert [state(s, st) for st in ("being_canceled", "idle", "tested")] == [1, 0, 0]
            t0 = time.monotonic()
            # the only server: b gets it once the cancel has been answered (about 2 s
            # from now), and keeps it; without the wait the cancel would stop this sleep
            assert b.execute("select pg_sleep(2.5), 'b'").fetchone()[1] == "b"
            assert time.monotonic() - t0 >= 2.5
            assert a.execute("select 'a again'").fetchone() == ("a again",)
        assert p.alive()
    finally:
        proxy.close()
