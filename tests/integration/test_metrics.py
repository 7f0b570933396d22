"""The HTTP endpoint: /health while the process serves, /ready when a primary is
reachable, /metrics in the Prometheus text format with pool, node, routing and latency
figures that move with the traffic."""
import re
import time
import urllib.error
import urllib.request

import psycopg
import pytest


def metrics_port(p):
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        m = re.search(r"metrics on http://\S+ \(port (\d+)\)", p.log())
        if m:
            return int(m.group(1))
        time.sleep(0.05)
    raise AssertionError("no metrics port in the log:\n" + p.log())


def get(port, path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def samples(text):
    """{(name, frozenset(labels)): value} from Prometheus text, checking its shape."""
    out = {}
    typed = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r'([a-z_:][a-z0-9_:]*)(\{([^}]*)\})? (\S+)', line)
        assert m, "malformed sample line: %r" % line
        name, labels = m.group(1), m.group(3) or ""
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in typed or base in typed, "sample without # TYPE: %s" % name
        assert name.startswith(("pooler_", "process_")), name
        pairs = frozenset(re.findall(r'(\w+)="([^"]*)"', labels))
        out[(name, pairs)] = float(m.group(4).replace("+Inf", "inf"))
    return out


def value(s, name, **labels):
    want = frozenset(labels.items())
    return sum(v for (n, l), v in s.items() if n == name and want <= l)


def wait_metrics(port, pred, timeout=5):
    deadline = time.monotonic() + timeout
    while True:
        s = samples(get(port, "/metrics")[1])
        if pred(s) or time.monotonic() > deadline:
            return s
        time.sleep(0.2)


def test_health_ready_and_unknown_paths(pooler):
    p = pooler()
    port = metrics_port(p)
    assert get(port, "/health") == (200, "ok\n")
    deadline = time.monotonic() + 5
    while get(port, "/ready")[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert get(port, "/ready") == (200, "ready\n")
    assert get(port, "/nope")[0] == 404


def test_metrics_follow_the_traffic(pooler):
    p = pooler(pool_size=3, extra_pooler={"health_interval": "200ms"})
    port = metrics_port(p)
    with psycopg.connect(p.dsn(), autocommit=True, prepare_threshold=None) as c:
        for i in range(30):
            c.execute("select %s::int", (i,))
        with c.transaction():
            c.execute("create temp table if not exists m_t(a int)")
    # the pinned client's transaction ends (and is timed) when its close has been read
    s = wait_metrics(port, lambda s: value(s, "pooler_node_transactions_total") >= 31 and value(
        s, "pooler_transaction_duration_seconds_bucket", le="+Inf") >= 31)
    assert value(s, "pooler_up") == 1
    assert value(s, "pooler_node_transactions_total") >= 31
    assert value(s, "pooler_node_up", node="primary") == 1
    assert value(s, "pooler_node_up", node="replica1") == 1
    assert value(s, "pooler_routing_decisions_total", target="primary", reason="write") >= 1
    # reads: on the replica, or on the primary for a reason the label names (until the
    # first probes, no replica is known to be usable: "fallback")
    reads = (value(s, "pooler_routing_decisions_total")
             - value(s, "pooler_routing_decisions_total", reason="write"))
    assert reads >= 30
    assert value(s, "pooler_pool_size", node="primary") == 3
    assert value(s, "pooler_client_wait_seconds_count") >= 31
    assert value(s, "pooler_transaction_duration_seconds_bucket", le="+Inf") >= 31
    assert value(s, "pooler_pinned_clients_total") == 1  # the temp table
    assert value(s, "pooler_classify_cache_total", result="hit") > 0


def test_failed_logins_are_counted(pooler):
    p = pooler()
    port = metrics_port(p)
    for _ in range(2):
        try:
            psycopg.connect(p.dsn(password="wrong"), connect_timeout=5).close()
        except psycopg.OperationalError:
            pass
    s = wait_metrics(port, lambda s: value(s, "pooler_clients_rejected_total",
                                           reason="authentication") >= 2)
    assert value(s, "pooler_clients_rejected_total", reason="authentication") == 2


def test_ready_turns_503_when_the_primary_is_unreachable(cluster, pooler):
    """A config whose primary points at a closed port: alive, but not ready."""
    from pgcluster import free_port
    p = pooler(with_replica=False, node_overrides={"primary": {"port": free_port()}},
               extra_pooler={"health_interval": "100ms", "health_timeout": "500ms"})
    port = metrics_port(p)
    time.sleep(0.6)
    status, body = get(port, "/ready")
    assert status == 503 and "no reachable primary" in body, (status, body)
    assert get(port, "/health")[0] == 200


def test_promtool_accepts_the_exposition(pooler):
    """Prometheus's own linter (Debian package prometheus, installed by make test)."""
    import shutil
    import subprocess
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: make test installs the prometheus package"
    p = pooler()
    port = metrics_port(p)
    with p.connect() as c:
        c.execute("select 1")
    time.sleep(1.2)
    status, text = get(port, "/metrics")
    assert status == 200
    r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


def test_queries_bytes_and_connects_are_counted_by_node(pooler):
    p = pooler(pool_size=2, with_replica=False)
    port = metrics_port(p)
    with p.connect() as c:
        for i in range(20):
            c.execute("select %s::int", (i,))
        c.execute("select pg_sleep(0.03)")
        with c.transaction():  # one transaction, three requests
            c.execute("select 1")
            c.execute("select 2")
    s = wait_metrics(port, lambda s: value(s, "pooler_node_queries_total") >= 25)
    assert value(s, "pooler_node_queries_total", node="primary", role="primary") >= 25
    assert value(s, "pooler_pool_queries_total", database="app", user="app") >= 25
    assert value(s, "pooler_node_transactions_total", node="primary") >= 22
    assert value(s, "pooler_query_duration_seconds_count", node="primary") >= 25
    # the pg_sleep(0.03) query landed above the 25 ms bound
    assert value(s, "pooler_query_duration_seconds_bucket", node="primary", le="0.025") < \
        value(s, "pooler_query_duration_seconds_bucket", node="primary", le="+Inf")
    assert value(s, "pooler_client_received_bytes_total") > 20 * 20
    assert value(s, "pooler_client_sent_bytes_total") > 20 * 20
    assert value(s, "pooler_server_sent_bytes_total", node="primary") > 20 * 20
    assert value(s, "pooler_server_received_bytes_total", node="primary") > 20 * 20
    assert value(s, "pooler_server_connect_attempts_total", node="primary") >= 1
    assert value(s, "pooler_server_connect_failures_total", node="primary") == 0
    assert value(s, "pooler_server_connect_duration_seconds_count", node="primary") >= 1
    assert value(s, "pooler_pool_servers", node="primary") >= 1
    assert value(s, "pooler_server_connections", node="primary", state="idle") >= 1


def test_connect_failures_are_counted(cluster, pooler):
    from pgcluster import free_port
    p = pooler(with_replica=False, node_overrides={"primary": {"port": free_port()}},
               extra_pooler={"retry_max_tries": 0})
    port = metrics_port(p)
    try:
        with p.connect() as c:
            c.execute("select 1")
    except psycopg.OperationalError:
        pass
    s = wait_metrics(port, lambda s: value(s, "pooler_server_connect_failures_total") >= 1)
    assert value(s, "pooler_server_connect_failures_total", node="primary") >= 1
    assert value(s, "pooler_server_connect_attempts_total", node="primary") >= \
        value(s, "pooler_server_connect_failures_total", node="primary")


def test_rejected_clients_are_counted_by_reason(pooler):
    p = pooler(pool_size=1, with_replica=False,
               extra_pooler={"max_client_conn": 3, "query_wait_timeout": "300ms"})
    port = metrics_port(p)
    with p.connect() as holder, p.connect() as waiter:
        holder.execute("begin")
        holder.execute("select 1")
        with pytest.raises(psycopg.OperationalError) as e:
            waiter.execute("select 1")
        assert "query_wait_timeout" in str(e.value)
        with p.connect(), p.connect(), pytest.raises(psycopg.OperationalError) as e:
            psycopg.connect(p.dsn(sslmode="disable")).close()  # the fourth (waiter gone)
        assert "max_client_conn" in str(e.value)
        holder.execute("rollback")
    s = wait_metrics(port, lambda s: value(s, "pooler_clients_rejected_total",
                                           reason="max_client_conn") >= 1)
    assert value(s, "pooler_clients_rejected_total", reason="max_client_conn") == 1
    assert value(s, "pooler_clients_rejected_total", reason="query_wait_timeout") == 1
    assert value(s, "pooler_clients_rejected_total", reason="authentication") == 0
