"""Several event-loop workers (workers = N): one node budget for all of them, servers that
move to the worker whose client waited longest, cancel requests that reach the client's
worker, a console and metrics that add every worker up, Unix socket clients spread over
the workers, and a drain on SIGTERM. Real PostgreSQL, real clients, loopback only."""
import asyncio
import os
import signal
import socket
import subprocess
import threading
import time

import psycopg
import pytest

from conftest import POOLER_BIN, BackendSampler, wait_for, wait_no_app_backends
from pgwire import RawConn, cancel_request, message, parse_fields
from test_metrics import get, metrics_port, samples, value

WORKERS = {"workers": 2}


def start(pooler, **kw):
    extra = dict(WORKERS)
    extra.update(kw.pop("extra_pooler", {}))
    return pooler(extra_pooler=extra, **kw)


def unix_raw(p):
    """A RawConn over the Unix socket. Worker 0 accepts there and hands the clients round
    the workers in turn, so that consecutive ones land on different workers."""
    raw = RawConn.__new__(RawConn)
    raw.sock = socket.socket(socket.AF_UNIX)
    raw.sock.settimeout(5)
    raw.sock.connect(os.path.join(p.unix_dir, ".s.PGSQL.%d" % p.port))
    raw.buf, raw.params, raw.backend_key = b"", {}, None
    return raw


def console_rows(p, sql, host=None):
    with p.connect("admin", dbname="pooler", host=host) as admin:
        cur = admin.execute(sql)
        names = [d.name for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]


def test_workers_start_and_say_so(pooler):
    p = start(pooler)
    assert "2 workers, each accepting on its own socket" in p.log()
    rows = console_rows(p, "show config")
    assert any(r["key"] == "workers" and r["value"] == "2" for r in rows), rows


def test_auto_is_the_cores_the_process_may_use(pooler):
    p = start(pooler, extra_pooler={"workers": "auto"})
    n = len(os.sched_getaffinity(0))
    with p.connect() as c:
        assert c.execute("select 1").fetchone() == (1,)
    if n > 1:
        assert "%d workers" % n in p.log()
    else:
        assert "workers, each accepting" not in p.log()


def test_node_budget_is_one_total_over_the_workers(pooler, cluster):
    """40 clients at once on 2 workers: the primary never sees more than the node's
    pool_size (4) connections of the pooler, and every client is served."""
    wait_no_app_backends(cluster)
    p = start(pooler, pool_size=4, with_replica=False,
              node_overrides={"primary": {"pool_size": 4}})

    async def one(i):
        conn = await psycopg.AsyncConnection.connect(p.dsn(), autocommit=True)
        async with conn:
            for _ in range(5):
                await conn.execute("select pg_sleep(0.02)")
        return i

    async def main():
        return await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(40)),
                                                     return_exceptions=True), 60)

    with BackendSampler(cluster) as sampler:
        results = asyncio.run(main())
    assert not sampler.errors, sampler.errors
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert 1 <= sampler.peak <= 4, sampler.peak_rows
    rows = console_rows(p, "show pools")
    assert sum(r["sv_active"] + r["sv_idle"] + r["sv_login"] for r in rows) <= 4, rows


def test_one_server_moves_between_workers(pooler, cluster):
    """pool_size 1 with clients on both workers: every transaction runs on the one server,
    which goes to whichever worker's client has waited longest."""
    wait_no_app_backends(cluster)
    p = start(pooler, pool_size=1, with_replica=False)
    # over the Unix socket: three clients on each worker
    conns = [psycopg.connect(p.dsn(host=p.unix_dir), autocommit=True) for _ in range(6)]
    pids, errors = set(), []

    def run(c):
        try:
            for _ in range(15):
                pids.add(c.execute("select pg_backend_pid()").fetchone()[0])
        except Exception as e:  # reported below
            errors.append(e)

    try:
        threads = [threading.Thread(target=run, args=(c,)) for c in conns]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        for c in conns:
            c.close()
    assert not errors, errors
    assert len(pids) == 1, pids
    port = metrics_port(p)
    # /metrics serves a snapshot taken every second
    wait_for(lambda: value(samples(get(port, "/metrics")[1]), "pooler_servers_moved_total") >= 1,
             timeout=4, what="a server moved between workers")


def test_a_busy_pool_on_both_workers_gives_way_to_a_starved_one(pooler):
    """Node budget 2, database app busy on both workers (one server each, clients queued
    on both): a client of database other, on either worker, gets a server within a second
    or so, as with one worker (a bulkhead), not when app's load stops."""
    other = {"dbname": "app", "nodes": "primary", "server_user": "app",
             "server_password": "app", "pool_size": 2}
    p = start(pooler, pool_size=2, with_replica=False,
              node_overrides={"primary": {"pool_size": 2}},
              extra_sections={"database.other": other})
    stop_at = time.monotonic() + 6
    errors = []

    def busy():
        try:
            with psycopg.connect(p.dsn(host=p.unix_dir), autocommit=True) as c:
                while time.monotonic() < stop_at:
                    c.execute("select pg_sleep(0.05)")
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=busy) for _ in range(6)]  # 3 on each worker
    for t in threads:
        t.start()
    try:
        time.sleep(0.8)
        for host in (p.unix_dir, p.unix_dir):  # the next two accepts: one on each worker
            t0 = time.monotonic()
            with psycopg.connect(p.dsn(host=host, dbname="other"), autocommit=True) as c:
                assert c.execute("select 1").fetchone() == (1,)
            assert time.monotonic() - t0 < 3, "database other waited for app's load to end"
    finally:
        for t in threads:
            t.join(timeout=15)
    assert not errors, errors


@pytest.mark.parametrize("cancel_over", ["unix", "tcp"])
def test_cancel_reaches_the_clients_worker(pooler, cancel_over):
    """Sleeping clients, each cancelled through a new connection: over the Unix socket the
    cancel lands on the other worker every time (worker 0 hands the accepted connections
    round the workers in turn); over TCP the kernel picks. Every sleep ends with 57014 at
    once, not after its 10 s."""
    p = start(pooler, auth_type="trust")
    for i in range(4):
        with unix_raw(p) as victim:
            victim.login_trust("app", "app")
            pid, key = victim.backend_key
            victim.send(message(b"Q", b"select pg_sleep(10)\0"))
            time.sleep(0.1)
            t0 = time.monotonic()
            if cancel_over == "unix":
                with unix_raw(p) as s:
                    s.sock.sendall(cancel_request(pid, key))
            else:
                with socket.create_connection(("127.0.0.1", p.port), timeout=5) as s:
                    s.sendall(cancel_request(pid, key))
            _, (kind, payload) = victim.read_until("EZ")
            assert kind == "E" and parse_fields(payload)["C"] == "57014", (i, kind, payload)
            assert time.monotonic() - t0 < 3


def test_console_adds_every_worker_up(pooler):
    """Ten clients over two workers, and admin connections that may land on either
    worker: each sees all ten clients and one pool row."""
    p = start(pooler, with_replica=False)
    apps = [p.connect() for _ in range(10)]
    try:
        for c in apps:
            c.execute("select 1")
        for i in range(4):
            # over the Unix socket the admin connections alternate between the workers:
            # those accepted by worker 1 move to worker 0, which runs the console
            clients = console_rows(p, "show clients", host=p.unix_dir)
            assert len([r for r in clients if r["database"] == "app"]) == 10, clients
            pools = console_rows(p, "show pools")
            assert len([r for r in pools if r["database"] == "app"]) == 1, pools
            totals = console_rows(p, "show lists")
            assert any(r["list"] == "pools" and r["items"] == 1 for r in totals), totals
    finally:
        for c in apps:
            c.close()


def test_idle_clients_spread_over_the_workers(pooler):
    """60 TCP clients: the kernel spreads them over both workers' sockets (SHOW CLIENTS
    says which worker holds each), neither gets fewer than a sixth."""
    p = start(pooler, with_replica=False)
    apps = [p.connect() for _ in range(60)]
    try:
        rows = [r for r in console_rows(p, "show clients") if r["database"] == "app"]
        assert len(rows) == 60
        per_worker = {1: 0, 2: 0}
        for r in rows:
            per_worker[r["worker"]] += 1
        assert min(per_worker.values()) >= 10, per_worker
        servers = console_rows(p, "show servers")
        assert all(r["worker"] in (1, 2) for r in servers), servers
    finally:
        for c in apps:
            c.close()


def test_metrics_count_clients_of_both_workers(pooler):
    p = start(pooler, with_replica=False)
    apps = [p.connect() for _ in range(8)]
    try:
        for c in apps:
            c.execute("select 1")
        port = metrics_port(p)

        def both_counted():
            # the endpoint serves a snapshot taken every second
            s = samples(get(port, "/metrics")[1])
            return (value(s, "pooler_clients") == 8 and
                    value(s, "pooler_pool_transactions_total", database="app") >= 8)

        wait_for(both_counted, timeout=4, what="8 clients and their transactions counted")
    finally:
        for c in apps:
            c.close()


def test_unix_socket_clients_are_spread_over_the_workers(pooler):
    p = start(pooler, with_replica=False)
    conns = [psycopg.connect(p.dsn(host=p.unix_dir), autocommit=True) for _ in range(6)]
    try:
        for c in conns:
            assert c.execute("select 1").fetchone() == (1,)
    finally:
        for c in conns:
            c.close()


def test_a_stalled_client_on_one_worker_leaves_the_others_served(pooler):
    """Half a startup packet on several connections (some on each worker): twenty other
    clients are served meanwhile."""
    p = start(pooler, with_replica=False)
    stalled = []
    try:
        for _ in range(6):
            s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
            s.sendall(b"\x00\x00\x00\x50\x00\x03")
            stalled.append(s)
        t0 = time.monotonic()
        for _ in range(20):
            with p.connect() as c:
                assert c.execute("select 1").fetchone() == (1,)
        assert time.monotonic() - t0 < 10
    finally:
        for s in stalled:
            s.close()


def test_sigterm_drains_every_worker(pooler):
    """A transaction running on each worker when SIGTERM comes finishes; then the pooler
    exits 0."""
    p = start(pooler, with_replica=False)
    conns = [psycopg.connect(p.dsn()) for _ in range(4)]
    results, errors = [], []

    def run(c):
        try:
            c.execute("select pg_sleep(0.5)")
            c.commit()
            results.append(1)
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(c,)) for c in conns]
    for t in threads:
        t.start()
    time.sleep(0.2)
    p.proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(timeout=10)
    assert not errors and len(results) == 4, errors
    assert p.proc.wait(timeout=10) == 0
    p.exit_expected = True
    for c in conns:
        c.close()


def test_second_daemon_on_the_port_is_refused(pooler, tmp_path):
    """Workers share their port through SO_REUSEPORT, but only among themselves: a second
    daemon on the same port fails to start, as with one worker."""
    p = start(pooler, with_replica=False)
    ini = open(p.ini).read().replace("metrics_listen = 127.0.0.1:0", "metrics_listen =")
    d = tmp_path / "second"
    d.mkdir()
    (d / "pooler.ini").write_text(ini.replace("unix_socket_dir = %s" % p.dir,
                                              "unix_socket_dir = %s" % d))
    (d / "users.txt").write_text(open(os.path.join(p.dir, "users.txt")).read())
    r = subprocess_run([POOLER_BIN, "-c", str(d / "pooler.ini")], cwd=str(d))
    assert r.returncode != 0
    assert "Address already in use" in r.stderr, r.stderr


def subprocess_run(args, cwd):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=20)


def test_bad_workers_value_names_the_key(pooler, tmp_path):
    p = start(pooler, with_replica=False)
    ini = open(p.ini).read().replace("workers = 2", "workers = 0")
    path = tmp_path / "bad.ini"
    path.write_text(ini)
    r = subprocess.run([POOLER_BIN, "--check-config", "-c", str(path)], cwd=p.dir,
                       capture_output=True, text=True, timeout=20)
    assert r.returncode != 0
    assert "workers" in r.stderr and "auto" in r.stderr, r.stderr
