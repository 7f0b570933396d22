"""Backend faults on real servers: a backend terminated in the middle of a query or while it
idles in the pool, the primary restarted under a write load, a replica crashing under a
read in flight. Clients get clear errors (never a hang), the others go on, and the pool
replaces what it lost.

The replica-stop-under-read-load case with a clean (fast) shutdown is in
test_replica_health.py; here the replica dies with `pg_ctl stop -m immediate` while a read
runs on it. The destructive tests use a primary + replica of their own (module fixture
`own`)."""

import tempfile
import threading
import time

import pytest

import pgcluster
from conftest import wait_for
from pgwire import ConnectionClosed, RawConn, parse_fields, query_message
from test_hostile import GoodClient

ATTEMPT_TIMEOUT = 8.0        # any single attempt taking longer counts as a hang
CLEAR_ERRORS = {"57P01", "57P02", "57P03", "08006", "08P01", "25006"}


def backends_running(cl, marker, port):
    return cl.query("select pid from pg_stat_activity where query like %s"
                    " and pid <> pg_backend_pid()", ("%" + marker + "%",),
                    port=port, db="postgres")


def find_backend(cl, marker, ports, timeout=5.0):
    """(port, pid) of the server backend running the statement containing marker."""
    def look():
        for port in ports:
            rows = backends_running(cl, marker, port)
            if rows:
                return port, rows[0][0]
        return None
    return wait_for(look, timeout=timeout, what="a backend running %s" % marker)


def read_outcome(c, timeout=ATTEMPT_TIMEOUT):
    """Messages up to ReadyForQuery or the close: ('ok', rows), ('error', [fields...]) or
    ('closed', [fields before the close])."""
    c.sock.settimeout(timeout)
    rows, errors = [], []
    try:
        while True:
            kind, payload = c.read_msg()
            if kind == "D":
                rows.append(payload)
            elif kind == "E":
                errors.append(parse_fields(payload))
            elif kind == "Z":
                return ("error", errors) if errors else ("ok", rows)
    except ConnectionClosed:
        return "closed", errors


# ---- a backend terminated --------------------------------------------------------------

@pytest.mark.parametrize("in_tx", [False, True], ids=["autocommit", "in-transaction"])
def test_backend_terminated_mid_query(pooler, cluster, in_tx):
    p = pooler(auth_type="trust", pool_size=3)
    ports = (cluster.primary_port, cluster.replica_port)
    with GoodClient(p):
        for round_ in range(3):
            marker = "victim_%d_%d" % (round_, in_tx)
            with RawConn(p.host, p.port) as c:
                c.login_trust("app", "app")
                if in_tx:
                    _, tags, errors = c.simple_query("begin")
                    assert not errors
                c.send(query_message("select pg_sleep(20) /* %s */" % marker))
                port, pid = find_backend(cluster, marker, ports)
                assert cluster.scalar("select pg_terminate_backend(%s)", (pid,), port=port,
                                      db="postgres")
                t0 = time.monotonic()
                outcome, errors = read_outcome(c)
                assert time.monotonic() - t0 < 5, "the client waited %.1f s for its error" % (
                    time.monotonic() - t0)
                assert errors, "the client got no error (%s)" % outcome
                assert errors[0].get("C") in ("57P01", "08006"), errors
            # the pool replaced the dead server: queries on fresh connections work
            with p.connect() as conn:
                assert conn.execute("select 1").fetchone() == (1,)
                assert conn.execute("select count(*) from pg_class").fetchone()[0] > 0
    assert p.alive()


def test_a_slow_reader_gets_all_a_dying_server_sent(pooler, cluster):
    """The server sends a large result, then ends the session with a FATAL error, while
    the client is not reading. When the client reads, it gets every row, the server's
    error and the pooler's, in order, and then the close: nothing queued for it is
    dropped because the server went first."""
    p = pooler(auth_type="trust", pool_size=2, with_replica=False)
    # 400 kB: the pooler reads it all (under its high-water mark), and the server's close
    # with it, while the client's small window takes a little at a time
    rows_sent = 200
    with GoodClient(p):
        for _ in range(3):
            with RawConn(p.host, p.port, rcvbuf=4096) as c:
                c.login_trust("app", "app")
                c.send(query_message(
                    "select repeat('x', 2000) from generate_series(1, %d);"
                    " select pg_terminate_backend(pg_backend_pid())" % rows_sent))
                time.sleep(1.5)  # the server is done (and gone) before we read a byte
                c.sock.settimeout(ATTEMPT_TIMEOUT)
                rows, errors = 0, []
                try:
                    while True:
                        kind, payload = c.read_msg()
                        if kind == "D":
                            rows += 1
                        elif kind == "E":
                            errors.append(parse_fields(payload).get("C"))
                except ConnectionClosed:
                    pass
                # (the row of pg_terminate_backend itself may come before its FATAL)
                assert rows in (rows_sent, rows_sent + 1), (rows, errors)
                assert errors and errors[0] == "57P01", errors  # the server's own, first
    assert p.alive()


def test_idle_pooled_backends_terminated(pooler, cluster):
    """Servers killed while they idle in the pool are noticed and never handed out."""
    p = pooler(auth_type="trust", pool_size=3)
    conns = [p.connect() for _ in range(6)]
    for c in conns:
        c.execute("select 1")
    for c in conns:
        c.close()
    victims = [(port, r[0]) for port in (cluster.primary_port, cluster.replica_port)
               for r in cluster.app_backends(port=port)]
    assert victims, "no pooled server to terminate"
    for port, pid in victims:
        cluster.scalar("select pg_terminate_backend(%s)", (pid,), port=port, db="postgres")
    time.sleep(0.3)
    for i in range(30):
        with p.connect() as conn:
            assert conn.execute("select %s::int" % i).fetchone() == (i,)
            conn.execute("begin")
            assert conn.execute("select 2").fetchone() == (2,)
            conn.execute("commit")


# ---- the primary restarted under load ----------------------------------------------------

@pytest.fixture(scope="module")
def own():
    c = pgcluster.Cluster(tempfile.mkdtemp(prefix="pooler-faults-"))
    c.start()
    try:
        c.psql(c.primary_port, "create table fault_t(id serial primary key, t text)",
               user="app")
        c.wait_replay()
        yield c
    finally:
        c.stop()


def ensure_running(cl):
    for d, port in ((cl.primary_dir, cl.primary_port), (cl.replica_dir, cl.replica_port)):
        if not pgcluster.port_open(port):
            cl.start_server(d)


def attempt(p, sql, timeout=ATTEMPT_TIMEOUT):
    """One statement on a fresh connection: (t0, t1, outcome, detail)."""
    t0 = time.monotonic()
    try:
        with RawConn(p.host, p.port, timeout=timeout) as c:
            c.login_trust("app", "app")
            c.send(query_message(sql))
            outcome, detail = read_outcome(c, timeout)
    except (OSError, ConnectionClosed, AssertionError, ValueError) as e:
        outcome, detail = "exception", repr(e)
    return t0, time.monotonic(), outcome, detail


class Writers:
    """`n` threads writing through the pooler, one fresh connection per write, each attempt
    recorded as (t0, t1, outcome, detail). Bounded by max_attempts per thread."""

    def __init__(self, p, n=4, max_attempts=3000, pause=0.01):
        self.p, self.n, self.max_attempts, self.pause = p, n, max_attempts, pause
        self.samples = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(n)]

    def _run(self):
        for _ in range(self.max_attempts):
            if self._stop.is_set():
                break
            self.samples.append(attempt(self.p, "insert into fault_t(t) values ('w')"))
            self._stop.wait(self.pause)

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join(ATTEMPT_TIMEOUT + 5)


def unclear(samples):
    """Attempts that failed without a clear error (an ErrorResponse with a connection or
    availability SQLSTATE)."""
    bad = []
    for s in samples:
        if s[2] == "ok":
            continue
        errors = s[3] if isinstance(s[3], list) else []
        if not errors or errors[0].get("C") not in CLEAR_ERRORS:
            bad.append(s)
    return bad


@pytest.mark.timeout(120)
def test_primary_restart_under_write_load(pooler, own):
    ensure_running(own)
    p = pooler(on_cluster=own, auth_type="trust", pool_size=4)
    queued = []
    with Writers(p) as w:
        time.sleep(1.0)
        t_stop0 = time.monotonic()
        own.stop_server(own.primary_dir, mode="fast")
        t_stop1 = time.monotonic()
        # clients that arrive while it is down, all at once: each gets an answer
        threads = [threading.Thread(target=lambda: queued.append(
            attempt(p, "insert into fault_t(t) values ('q')")), daemon=True)
            for _ in range(8)]
        for t in threads:
            t.start()
        time.sleep(3.0)
        t_start0 = time.monotonic()
        own.start_server(own.primary_dir)
        t_start1 = time.monotonic()
        back = wait_for(lambda: next((s[0] for s in list(w.samples)
                                      if s[0] >= t_start1 and s[2] == "ok"), None),
                        timeout=10, interval=0.05, what="a write to succeed after the restart")
        time.sleep(1.0)
        for t in threads:
            t.join(ATTEMPT_TIMEOUT + 2)
    samples = w.samples
    longest = max(s[1] - s[0] for s in samples + queued)
    errors = [s for s in samples if s[2] != "ok"]
    after = [s for s in samples if s[0] >= back + 1.0]  # one probe interval to settle
    print("primary down %.1f s: %d writes, %d failed, longest attempt %.2f s, writes back"
          " %.2f s after the primary accepted again; queued: %s"
          % (t_start1 - t_stop0, len(samples), len(errors), longest, back - t_start1,
             sorted(q[2] for q in queued)))
    kinds = {}
    for s in samples + queued:
        errs = s[3] if isinstance(s[3], list) else []
        key = "%s %s" % (s[2], errs[0].get("C") if errs else "")
        kinds[key] = kinds.get(key, 0) + 1
    print("outcomes: %s" % kinds)
    assert len(queued) == 8, "queued clients left without an answer: %d of 8" % len(queued)
    assert longest < ATTEMPT_TIMEOUT, "an attempt hung for %.1f s" % longest
    assert not unclear(samples + queued), (unclear(samples + queued)[:5], p.log_tail(40))
    assert [s for s in samples if s[0] < t_stop0 - 0.1 and s[2] == "ok"], "no write before"
    assert any(s[2] != "ok" for s in samples if t_stop1 <= s[0] <= t_start0), (
        "writes kept succeeding while the primary was down?")
    assert back - t_start1 <= 2.5, "writes came back %.1f s after the restart\n%s" % (
        back - t_start1, p.log_tail(40))
    assert after and all(s[2] == "ok" for s in after), (
        "writes failed after service came back: %s\n%s"
        % ([(round(s[0] - back, 2),) + s[2:] for s in after if s[2] != "ok"][:5],
           p.log_tail(40)))


# ---- a replica crashing under a read -------------------------------------------------

@pytest.mark.timeout(120)
def test_replica_crash_mid_read(pooler, own):
    ensure_running(own)
    p = pooler(on_cluster=own, auth_type="trust", pool_size=4,
               node_overrides={"primary": {"weight": 0}},
               extra_pooler={"health_interval": "200ms", "health_timeout": "1s"})
    try:
        # after a restart the replica rejoins the rotation after two good probes
        wait_for(lambda: (lambda r: r[2] == "ok" and int(r[3][0][6:]) == own.replica_port)(
            attempt(p, "select inet_server_port()")), timeout=15, interval=0.1,
            what="reads to reach the replica")
        with RawConn(p.host, p.port) as c:
            c.login_trust("app", "app")
            c.send(query_message("select pg_sleep(20) /* crashread */"))
            port, _ = find_backend(own, "crashread", (own.replica_port, own.primary_port))
            assert port == own.replica_port, "the read did not go to the replica"
            own.stop_server(own.replica_dir, mode="immediate")
            t0 = time.monotonic()
            outcome, errors = read_outcome(c)
            assert time.monotonic() - t0 < 5
            assert errors and errors[0].get("C") in CLEAR_ERRORS, (outcome, errors)
        # later reads run on the primary; none fails once the probes noticed
        time.sleep(1.0)
        for _ in range(20):
            t0, t1, outcome, rows = attempt(p, "select inet_server_port()")
            assert outcome == "ok", rows
            assert int(rows[0][6:]) == own.primary_port
    finally:
        ensure_running(own)
