"""Pool sizing by the core-count formula, the node budget shared by pools (bulkheads),
reserve pools, per-database and per-user caps, session time limits, server recycling,
the circuit breaker's speed, and per-address rate limits, against real servers."""
import asyncio
import hashlib
import os
import struct
import subprocess
import threading
import time

import psycopg
import pytest

from conftest import POOLER_BIN, BackendSampler, wait_for, wait_no_app_backends, write_ini
from pgwire import RawConn, message, parse_fields, startup_message
from test_metrics import get, metrics_port, samples, value
from test_resilience import FlakyProxy


def sleepers(p, n, seconds, dbname="app", user="app"):
    """n clients each running pg_sleep(seconds) at once; returns (errors, elapsed)."""
    async def one():
        conn = await p.aconnect(user=user, dbname=dbname, statement_cache_size=0)
        try:
            await conn.execute("select pg_sleep(%s)" % seconds)
        finally:
            await conn.close()

    async def main():
        return await asyncio.wait_for(
            asyncio.gather(*(one() for _ in range(n)), return_exceptions=True), 60)

    t0 = time.monotonic()
    results = asyncio.run(main())
    return [r for r in results if isinstance(r, BaseException)], time.monotonic() - t0


def metric(p, name, **labels):
    return value(samples(get(metrics_port(p), "/metrics")[1]), name, **labels)


def await_metric(p, name, check, **labels):
    """The HTTP endpoint serves a snapshot taken every second: poll until check(value)."""
    return wait_for(lambda: check(metric(p, name, **labels)), timeout=4,
                    what="%s%r to match" % (name, labels))


# ---- sizing ----------------------------------------------------------------------------

def test_formula_sizes_the_pool_from_the_nodes_cores(pooler, cluster, tmp_path):
    """cores = 3, effective_spindle_count = 2: pool_size 3 * 2 + 2 = 8, shown with its
    source by --check-config, and 20 concurrent clients use exactly 8 servers."""
    wait_no_app_backends(cluster)
    p = pooler(pool_size="auto", with_replica=False,
               node_overrides={"primary": {"cores": 3, "effective_spindle_count": 2}})
    out = subprocess.run([POOLER_BIN, "--check-config", "-c", p.ini], capture_output=True,
                         text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    assert "connection budget: 8 (cores 3 * 2 + effective_spindle_count 2)" in out.stdout
    assert "pool size per user on node primary: 8" in out.stdout
    with BackendSampler(cluster) as sampler:
        errors, _ = sleepers(p, 20, 0.5)
    assert not errors, errors[:3]
    assert sampler.peak == 8, (sampler.peak, sampler.peak_rows[:10])
    assert "size 8 from node primary pool_size 8" in p.log()


def test_auto_cores_is_this_machines(pooler, cluster, tmp_path):
    ini = write_ini(str(tmp_path), cluster, 6432, pool_size="auto", with_replica=False)
    out = subprocess.run([POOLER_BIN, "--check-config", "-c", ini], capture_output=True,
                         text=True, timeout=10)
    cores = os.cpu_count()
    assert "connection budget: %d (cores %d (this machine) * 2 + effective_spindle_count 1)" % (
        cores * 2 + 1, cores) in out.stdout, out.stdout


def test_budget_never_exceeds_the_servers_max_connections(pooler, cluster):
    """A pool_size above max_connections - superuser_reserved_connections is cut down to
    it once the probe has read the server's settings, with a warning."""
    limit = int(cluster.scalar("select current_setting('max_connections')::int"
                               " - current_setting('superuser_reserved_connections')::int"))
    p = pooler(pool_size="auto", with_replica=False,
               node_overrides={"primary": {"pool_size": limit + 500}})
    await_metric(p, "pooler_node_connection_budget", lambda v: v == limit, node="primary")
    assert "more than the server allows" in p.log()
    with p.connect() as c:
        assert c.execute("select 1").fetchone() == (1,)


@pytest.mark.timeout(120)
def test_300_clients_through_a_pool_of_4(pooler, cluster):
    wait_no_app_backends(cluster)
    p = pooler(pool_size=4, with_replica=False)

    async def client(i):
        conn = await p.aconnect(statement_cache_size=0, timeout=30)
        try:
            async with conn.transaction():
                assert await conn.fetchval("select $1::int + 1", i) == i + 1
            return i
        finally:
            await conn.close()

    async def main():
        return await asyncio.wait_for(
            asyncio.gather(*(client(i) for i in range(300)), return_exceptions=True), 90)

    with BackendSampler(cluster) as sampler:
        results = asyncio.run(main())
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, "%d failed, first: %r" % (len(failures), failures[0])
    assert sorted(results) == list(range(300))
    assert sampler.peak <= 4, sampler.peak_rows[:8]


def two_databases(**other):
    section = {"dbname": "app", "nodes": "primary", "server_user": "app",
               "server_password": "app"}
    section.update(other)
    return {"database.other": section}


@pytest.mark.timeout(90)
def test_bulkhead_a_saturated_pool_does_not_starve_another(pooler, cluster):
    """Node budget 4, shared by two pools that may each take all of it. Pool `app` is
    flooded by 24 clients looping short transactions; a client of pool `other` still gets
    served promptly, and the server never sees more than 4 connections."""
    wait_no_app_backends(cluster)
    p = pooler(pool_size="auto", with_replica=False,
               node_overrides={"primary": {"pool_size": 4}},
               extra_sections=two_databases())
    stop = time.monotonic() + 6
    errors = []

    def flood():
        try:
            with p.connect() as c:
                while time.monotonic() < stop:
                    c.execute("select pg_sleep(0.02)")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    with BackendSampler(cluster) as sampler:
        threads = [threading.Thread(target=flood) for _ in range(24)]
        for t in threads:
            t.start()
        time.sleep(1.5)  # the flood holds the whole budget now
        latencies = []
        with p.connect(dbname="other") as c:
            for _ in range(5):
                t0 = time.monotonic()
                assert c.execute("select current_database()").fetchone() == ("app",)
                latencies.append(time.monotonic() - t0)
        for t in threads:
            t.join()
    assert not errors, errors[:3]
    assert max(latencies) < 1.0, latencies
    assert sampler.peak <= 4, sampler.peak_rows[:8]
    await_metric(p, "pooler_servers_evicted_total", lambda v: v >= 1)


def test_max_pool_share_caps_one_pool(pooler, cluster):
    wait_no_app_backends(cluster)
    p = pooler(pool_size="auto", with_replica=False, extra_database={"max_pool_share": "50%"},
               node_overrides={"primary": {"pool_size": 6}})
    with BackendSampler(cluster) as sampler:
        errors, _ = sleepers(p, 10, 0.3)
    assert not errors
    assert sampler.peak == 3, sampler.peak_rows[:8]


def test_max_db_connections(pooler, cluster):
    """max_db_connections bounds one database over its users; max_user_connections bounds
    one user over its databases."""
    wait_no_app_backends(cluster)
    p = pooler(pool_size=10, with_replica=False, extra_database={"max_db_connections": 3},
               extra_pooler={"server_idle_timeout": "1s"})

    with BackendSampler(cluster) as sampler:
        errs = []
        ts = [threading.Thread(target=lambda u=u: errs.extend(sleepers(p, 6, 0.4, user=u)[0]))
              for u in ("app", "scramuser")]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    assert not errs, errs[:3]
    assert sampler.peak <= 3, sampler.peak_rows[:8]
    assert sampler.peak >= 2


def test_max_user_connections(pooler, cluster):
    wait_no_app_backends(cluster)
    q = pooler(pool_size=10, with_replica=False, extra_pooler={"max_user_connections": 2},
               extra_sections=two_databases(pool_size=10))
    with BackendSampler(cluster) as sampler:
        errs = []
        ts = [threading.Thread(target=lambda d=d: errs.extend(sleepers(q, 5, 0.3, dbname=d)[0]))
              for d in ("app", "other")]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    assert not errs, errs[:3]
    assert sampler.peak <= 2, sampler.peak_rows[:8]


def test_reserve_pool_lends_connections_to_a_long_queue(pooler, cluster):
    """pool_size 2 with a reserve of 2 after 300 ms: four 1.5 s queries finish together
    (about 1.8 s) instead of in two rounds (3 s); the reserve closes again afterwards."""
    wait_no_app_backends(cluster)
    p = pooler(pool_size=2, with_replica=False,
               extra_database={"reserve_pool_size": 2},
               extra_pooler={"reserve_pool_timeout": "300ms"})
    with BackendSampler(cluster) as sampler:
        errors, elapsed = sleepers(p, 4, 1.5)
    assert not errors
    assert sampler.peak == 4, sampler.peak_rows[:8]
    assert elapsed < 2.8, elapsed
    await_metric(p, "pooler_reserve_connections_opened_total", lambda v: v == 2)
    wait_for(lambda: len(cluster.app_backends()) <= 2, what="reserve connections to close")


# ---- time limits -----------------------------------------------------------------------

def test_query_wait_timeout_answers_57014(pooler):
    p = pooler(pool_size=1, with_replica=False, auth_type="trust",
               extra_pooler={"query_wait_timeout": "400ms"})
    with p.connect() as holder:
        holder.execute("begin")
        holder.execute("select 1")
        with RawConn("127.0.0.1", p.port) as raw:
            raw.login_trust("app", "app")
            t0 = time.monotonic()
            raw.send(message(b"Q", b"select 1\0"))
            kind, fields = raw.eof_or_error(timeout=5)
            assert kind == "E" and fields["C"] == "57014", (kind, fields)
            assert "query_wait_timeout" in fields["M"]
            assert 0.3 < time.monotonic() - t0 < 3
        holder.execute("rollback")


def test_client_idle_timeout_closes_idle_clients(pooler):
    p = pooler(with_replica=False, extra_pooler={"client_idle_timeout": "300ms"})
    with p.connect() as busy, p.connect() as idle:
        for _ in range(6):  # activity keeps a client in
            busy.execute("select 1")
            time.sleep(0.1)
        time.sleep(0.4)
        with pytest.raises(psycopg.Error) as e:
            idle.execute("select 1")
    assert "idle-session timeout" in str(e.value)
    await_metric(p, "pooler_clients_timed_out_total", lambda v: v >= 2, reason="client_idle_timeout")


def test_idle_transaction_timeout_frees_the_server(pooler, cluster):
    wait_no_app_backends(cluster)
    p = pooler(pool_size=1, with_replica=False,
               extra_pooler={"idle_transaction_timeout": "400ms"})
    c = p.connect()
    c.execute("begin")
    c.execute("create temporary table if not exists t_idle(x int)")
    time.sleep(0.8)
    with pytest.raises(psycopg.Error):
        c.execute("select 1")
    c.close()
    # the only server was rolled back and serves the next client
    with p.connect() as d:
        assert d.execute("select 1").fetchone() == (1,)
    assert not [r for r in cluster.app_backends() if r[1] == "idle in transaction"]
    assert "idle-in-transaction timeout" in p.log()


def test_client_stalling_mid_message_is_bounded(pooler):
    """A client sends half a message while holding the only server, then stalls: it is cut
    off after idle_transaction_timeout and the pool serves others again."""
    p = pooler(pool_size=1, with_replica=False, auth_type="trust",
               extra_pooler={"idle_transaction_timeout": "500ms"})
    with RawConn("127.0.0.1", p.port) as raw:
        raw.login_trust("app", "app")
        assert raw.simple_query("begin")[2] == []  # holds the only server now
        raw.send(message(b"P", b"\0select 1\0\0\0"))
        raw.send(b"B\x00\x00\x01\x00")  # a Bind announcing 256 bytes, never sent
        t0 = time.monotonic()
        with p.connect() as other:
            assert other.execute("select 2").fetchone() == (2,)
        assert time.monotonic() - t0 < 5
        kind, fields = raw.eof_or_error(timeout=5)
        assert kind == "E" and fields["C"] == "25P03", (kind, fields)


def test_query_timeout_cancels_and_keeps_the_client(pooler):
    p = pooler(with_replica=False, extra_pooler={"query_timeout": "500ms"})
    with p.connect() as c:
        t0 = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            c.execute("select pg_sleep(10)")
        assert time.monotonic() - t0 < 3
        assert c.execute("select 1").fetchone() == (1,)
    await_metric(p, "pooler_queries_cancelled_total", lambda v: v == 1)


def test_server_lifetime_recycles_between_transactions_only(pooler):
    p = pooler(pool_size=1, with_replica=False, extra_pooler={"server_lifetime": "1s"})
    with p.connect() as c:
        first = c.execute("select pg_backend_pid()").fetchone()[0]
        c.execute("begin")
        assert c.execute("select pg_backend_pid()").fetchone()[0] == first
        time.sleep(1.3)  # past its lifetime, but inside a transaction: kept
        assert c.execute("select pg_backend_pid()").fetchone()[0] == first
        c.execute("commit")
        later = c.execute("select pg_backend_pid()").fetchone()[0]
    assert later != first
    await_metric(p, "pooler_servers_closed_total", lambda v: v >= 1, reason="server_lifetime")


def test_server_idle_timeout_closes_unused_servers(pooler, cluster):
    wait_no_app_backends(cluster)
    p = pooler(pool_size=3, with_replica=False, extra_pooler={"server_idle_timeout": "2s"})
    errors, _ = sleepers(p, 3, 0.1)
    assert not errors
    assert len(cluster.app_backends()) >= 1
    wait_for(lambda: not cluster.app_backends(), timeout=5, what="idle servers to close")
    await_metric(p, "pooler_servers_closed_total", lambda v: v >= 1, reason="server_idle_timeout")


# ---- circuit breaker --------------------------------------------------------------------

def behind_proxy(pooler, proxy, **settings):
    """A pooler whose one node is the primary, reached through proxy; settings go to
    [pooler]."""
    return pooler(with_replica=False, node_overrides={"primary": {"port": proxy.port}},
                  extra_pooler=settings)


def test_breaker_fails_fast_and_closes_when_the_node_returns(cluster, pooler):
    """The node goes away: the circuit opens and a client learns it in well under 100 ms
    instead of waiting out server_connect_timeout; the node returns: the circuit closes and
    clients are served."""
    proxy = FlakyProxy(cluster.primary_port, drops=10 ** 9)  # refuses everything for now
    try:
        p = behind_proxy(pooler, proxy, retry_base="10ms", retry_max="50ms", retry_max_tries=1,
                         health_interval="100ms", breaker_failure_threshold=3,
                         breaker_recovery="30s", server_connect_timeout="5s")
        wait_for(lambda: metric(p, "pooler_breaker_state", node="primary") == 1, timeout=10,
                 what="the circuit to open")
        times = []
        for _ in range(5):
            t0 = time.monotonic()
            with pytest.raises(psycopg.OperationalError, match="circuit open"):
                psycopg.connect(p.dsn(), connect_timeout=5).close()
            times.append(time.monotonic() - t0)
        print("open circuit answered in %s s" % ", ".join("%.4f" % t for t in times))
        assert sorted(times)[2] < 0.1, times  # the median, SCRAM login included
        proxy.drops = 0  # the node is back
        wait_for(lambda: metric(p, "pooler_breaker_state", node="primary") == 0, timeout=10,
                 what="the circuit to close")
        with p.connect() as c:
            assert c.execute("select 1").fetchone() == (1,)
    finally:
        proxy.close()


def test_waiters_fail_when_a_probe_opens_the_circuit_during_their_retry(cluster, pooler):
    """A client waits while its pool backs off between connect tries; meanwhile failed
    health probes open the node's circuit. When the retry comes due it must tell the client
    (circuit open) instead of leaving it queued until query_wait_timeout."""
    proxy = FlakyProxy(cluster.primary_port, drops=0)
    try:
        p = behind_proxy(pooler, proxy, retry_base="3s", retry_max="3s", retry_max_tries=10,
                         health_interval="200ms", breaker_failure_threshold=3,
                         breaker_recovery="30s", query_wait_timeout="20s")
        with p.connect() as c:  # user app has a server; md5user's pool has none
            c.execute("select 1")
        proxy.drops = proxy.seen + 10 ** 9  # the node goes away: no new connections,
        proxy.cut()  # and the ones open (the health probe's) break
        t0 = time.monotonic()
        with pytest.raises(psycopg.OperationalError) as e:
            psycopg.connect(p.dsn(user="md5user"), connect_timeout=15).close()
        took = time.monotonic() - t0
        print("waiter answered after %.2f s: %s" % (took, str(e.value).strip()[:80]))
        assert took < 5, took  # the retry is due within 3 s; not query_wait_timeout's 20 s
        assert "circuit open" in str(e.value) or "could not connect" in str(e.value), e.value
    finally:
        proxy.close()


# ---- rate limits ------------------------------------------------------------------------

def md5_login(source, port, user, password, dbname="app"):
    """Log in with MD5 from a given source address; returns (RawConn or None, error)."""
    raw = RawConn("127.0.0.1", port, source=source)
    raw.send(startup_message({"user": user, "database": dbname}))
    kind, payload = raw.read_msg()
    if kind == "E":
        raw.close()
        return None, parse_fields(payload)
    assert kind == "R" and struct.unpack("!I", payload[:4])[0] == 5, (kind, payload)
    salt = payload[4:8]
    inner = hashlib.md5((password + user).encode()).hexdigest()
    outer = "md5" + hashlib.md5(inner.encode() + salt).hexdigest()
    raw.send(message(b"p", outer.encode() + b"\0"))
    kind, payload = raw.read_msg()
    if kind == "E":
        raw.close()
        return None, parse_fields(payload)
    raw.finish_login()
    return raw, None


def test_connection_flood_from_one_address_is_throttled(pooler):
    p = pooler(with_replica=False, auth_type="trust", extra_pooler={"client_rate_limit": 5})
    refused = served = 0
    t0 = time.monotonic()
    for _ in range(40):  # far faster than 5 per second
        with RawConn("127.0.0.1", p.port, source="127.0.0.1") as raw:
            raw.send(startup_message({"user": "app", "database": "app"}))
            kind, fields = raw.eof_or_error()
            if kind == "E":
                assert fields["C"] == "53300" and "client_rate_limit" in fields["M"], fields
                refused += 1
            else:
                served += 1
    elapsed = time.monotonic() - t0
    print("client_rate_limit 5/s: %d served, %d refused in %.2f s" % (served, refused, elapsed))
    # a burst of 10 (less what the harness's port check took), plus 5 per second after
    assert 5 <= served <= 10 + 5 * elapsed + 1, (served, refused, elapsed)
    assert refused >= 40 - (10 + 5 * elapsed + 1)
    # another address is still served, and so is the Unix socket
    with RawConn("127.0.0.1", p.port, source="127.0.0.2") as raw:
        raw.login_trust("app", "app")
        assert raw.simple_query("select 7")[0] == [["7"]]
    with psycopg.connect(p.dsn(host=p.unix_dir)) as c:
        assert c.execute("select 1").fetchone() == (1,)
    await_metric(p, "pooler_clients_throttled_total", lambda v: v == refused, reason="client_rate_limit")


def test_password_brute_force_is_throttled_per_address(pooler):
    p = pooler(with_replica=False, auth_type="md5",
               extra_pooler={"auth_failure_limit": 5, "rate_limit_exempt": "127.0.0.3"})
    for _ in range(5):
        conn, err = md5_login("127.0.0.1", p.port, "md5user", "wrong")
        assert conn is None and err["C"] == "28P01" and "password" in err["M"], err
    # the right password from that address is now refused before any password exchange
    conn, err = md5_login("127.0.0.1", p.port, "md5user", "secret")
    assert conn is None and err["C"] == "28P01" and "auth_failure_limit" in err["M"], err
    # other addresses are served; an exempt one is never throttled
    for source in ("127.0.0.2", "127.0.0.3"):
        conn, err = md5_login(source, p.port, "md5user", "secret")
        assert err is None, (source, err)
        assert conn.simple_query("select 1")[0] == [["1"]]
        conn.close()
    for _ in range(8):
        conn, err = md5_login("127.0.0.3", p.port, "md5user", "wrong")
        assert "auth_failure_limit" not in err["M"]
    conn, err = md5_login("127.0.0.3", p.port, "md5user", "secret")
    assert err is None, err
    conn.close()
    await_metric(p, "pooler_clients_throttled_total", lambda v: v >= 1, reason="auth_failure_limit")
