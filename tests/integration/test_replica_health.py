"""Replica health: a replica that is down or lagging leaves the read rotation and comes back
after good probes; replica_fallback; read-your-writes.

The destructive tests run against their own primary + replica (module fixture `own`, a
second pgcluster.Cluster), never against the session-wide cluster; the read-your-writes
tests use the session cluster.  Where a read ran is told by `select inet_server_port()`.
"""

import tempfile
import threading
import time

import pytest

import pgcluster
from conftest import wait_for
from pgwire import ConnectionClosed, RawConn

INTERVAL = 0.2                 # health_interval used below, in seconds
HEALTH = {"health_interval": "200ms", "health_timeout": "1s"}
ATTEMPT_TIMEOUT = 5.0          # a read taking longer than this is a hang
# The primary also takes a share of reads by its weight; 0 keeps reads off it while a
# replica is usable, so that where reads go shows the replica's health.
PRIMARY_NO_READS = {"primary": {"weight": 0}}


@pytest.fixture(scope="module")
def own():
    """A primary + replica of our own, which the tests here stop, start and slow down."""
    c = pgcluster.Cluster(tempfile.mkdtemp(prefix="pooler-health-"))
    c.start()
    try:
        c.psql(c.primary_port, "create table if not exists health_t(x int, pad text)", user="app")
        c.wait_replay()
        yield c
    finally:
        c.stop()


def one_read(p, sql="select inet_server_port()", timeout=ATTEMPT_TIMEOUT):
    """One autocommit read on a fresh connection: (port, None) or (None, error text)."""
    try:
        with RawConn(p.host, p.port, timeout=timeout) as c:
            c.login_trust("app", "app")
            rows, _, errors = c.simple_query(sql)
            if errors:
                return None, "%s: %s" % (errors[0].get("C"), errors[0].get("M"))
            return int(rows[0][0]), None
    except (OSError, ConnectionClosed, AssertionError, ValueError) as e:
        return None, repr(e)


class Sampler:
    """Reads `select inet_server_port()` through the pooler in a thread, on one connection
    that is replaced when it breaks. Records (start, end, port, error) per attempt."""

    def __init__(self, p, pause=0.02):
        self.p = p
        self.pause = pause
        self.samples = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._conn = None

    def _read(self):
        try:
            if self._conn is None:
                self._conn = RawConn(self.p.host, self.p.port, timeout=ATTEMPT_TIMEOUT)
                self._conn.login_trust("app", "app")
            rows, _, errors = self._conn.simple_query("select inet_server_port()")
            if errors:
                return None, "%s: %s" % (errors[0].get("C"), errors[0].get("M"))
            return int(rows[0][0]), None
        except (OSError, ConnectionClosed, AssertionError, ValueError) as e:
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            return None, repr(e)

    def _run(self):
        while not self._stop.is_set():
            t0 = time.monotonic()
            port, err = self._read()
            self.samples.append((t0, time.monotonic(), port, err))
            self._stop.wait(self.pause)
        if self._conn is not None:
            self._conn.close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(ATTEMPT_TIMEOUT + 5)

    def wait_port(self, port, after, timeout):
        """Wait until an attempt started after `after` returned `port`; its start time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for s in list(self.samples):
                if s[0] >= after and s[2] == port:
                    return s[0]
            time.sleep(0.05)
        return None

    def between(self, t0, t1):
        return [s for s in self.samples if t0 <= s[0] <= t1]


def describe(samples, cl, t_ref):
    names = {cl.primary_port: "P", cl.replica_port: "R"}
    return " ".join("%+.2f:%s" % (s[0] - t_ref, names.get(s[2], "E")) for s in samples)


def wait_replica_reads(p, cl, timeout=15.0):
    last = []

    def ok():
        port, err = one_read(p)
        last[:] = [port, err]
        return port == cl.replica_port
    try:
        wait_for(ok, timeout=timeout, interval=0.1, what="reads to reach the replica")
    except AssertionError as e:
        raise AssertionError("%s; last: %s\n%s" % (e, last, p.log_tail(30))) from None


def ensure_replica_running(own):
    if not pgcluster.port_open(own.replica_port):
        own.start_server(own.replica_dir)


def settle(own):
    """Start from a streaming replica that has received and replayed a fresh commit, whatever
    an earlier test did to it (after a restart an idle standby reports a receive position
    behind its replay position until new WAL arrives)."""
    ensure_replica_running(own)
    own.psql(own.primary_port, "insert into health_t(x) values (0)", user="app")
    own.wait_replay()


# ---- a replica that stops and starts again --------------------------------------------

@pytest.mark.timeout(90)
def test_replica_down_reads_go_to_primary_then_return(pooler, own):
    settle(own)
    p = pooler(on_cluster=own, auth_type="trust", node_overrides=PRIMARY_NO_READS,
               extra_pooler=dict(HEALTH))
    wait_replica_reads(p, own)
    try:
        with Sampler(p) as s:
            time.sleep(0.5)
            t_stop0 = time.monotonic()
            own.stop_server(own.replica_dir, mode="fast")
            t_stop1 = time.monotonic()
            time.sleep(3.0)
            t_start0 = time.monotonic()
            own.start_server(own.replica_dir)
            t_start1 = time.monotonic()
            back = s.wait_port(own.replica_port, t_start1, timeout=10.0)
            time.sleep(0.5)
    finally:
        ensure_replica_running(own)
    samples = s.samples
    grace = t_stop1 + 2 * INTERVAL + 0.3
    hangs = [x for x in samples if x[1] - x[0] >= ATTEMPT_TIMEOUT - 0.1]
    errors = [x for x in samples if x[3] is not None]
    late_errors = [x for x in errors if not (x[1] >= t_stop0 and x[0] <= grace)]
    timeline = describe(samples, own, t_stop0)
    print("replica stop took %.2fs, %d reads, %d errors (all within %.2fs of the stop: %s);"
          " reads back on the replica %.2fs after it started"
          % (t_stop1 - t_stop0, len(samples), len(errors), grace - t_stop0, not late_errors,
             (back - t_start1) if back else -1))
    assert not hangs, "reads hung for %.0fs: %s" % (ATTEMPT_TIMEOUT, hangs[:3])
    assert not late_errors, (
        "reads failed later than 2 probe intervals after the replica stopped: %s\ntimeline: %s"
        "\n--- pooler ---\n%s" % (late_errors[:5], timeline, p.log_tail(40)))
    down = s.between(grace, t_start0)
    assert len(down) >= 10, timeline
    assert all(x[2] == own.primary_port for x in down), (
        "while the replica was down, reads went elsewhere than the primary: %s" % timeline)
    assert back is not None and back - t_start1 <= 3.0, (
        "reads did not return to the replica within 3 s of its start (2 good probes at %.1fs"
        " intervals): %s\n--- pooler ---\n%s" % (INTERVAL, timeline, p.log_tail(40)))
    # no read reached the replica before it was up again
    early = [x for x in s.between(t_stop1, t_start1) if x[2] == own.replica_port]
    assert not early, early


@pytest.mark.timeout(90)
def test_replica_fallback_error(pooler, own):
    """replica_fallback = error: with the replica down a read gets an ErrorResponse (57P03
    or 08006) naming the replica, the session goes on, writes still work; once the replica
    is back, reads run on it."""
    settle(own)
    p = None
    own.stop_server(own.replica_dir, mode="fast")
    try:
        p = pooler(on_cluster=own, auth_type="trust", node_overrides=PRIMARY_NO_READS,
                   extra_pooler=dict(HEALTH, replica_fallback="error"))
        time.sleep(4 * INTERVAL)
        with RawConn(p.host, p.port, timeout=ATTEMPT_TIMEOUT) as c:
            c.login_trust("app", "app")
            for sql in ("select inet_server_port()", "select x from health_t limit 1"):
                t0 = time.monotonic()
                rows, _, errors = c.simple_query(sql)
                assert time.monotonic() - t0 < 2.0, "the error took %.1fs" % (time.monotonic() - t0)
                assert not rows and len(errors) == 1, (sql, rows, errors)
                e = errors[0]
                assert e.get("C") in ("57P03", "08006"), e
                assert "replica" in e.get("M", "").lower(), e
            rows, _, errors = c.simple_query(
                "insert into health_t(x) values (1) returning inet_server_port()")
            assert not errors and int(rows[0][0]) == own.primary_port, (rows, errors)
            rows, _, errors = c.simple_query("begin; select inet_server_port(); commit")
            assert not errors and int(rows[0][0]) == own.primary_port, (rows, errors)
    finally:
        ensure_replica_running(own)
    settle(own)        # (a replica back from a restart is tested above, not here)
    wait_replica_reads(p, own, timeout=10.0)


# ---- a replica that lags -----------------------------------------------------------------

def _lsn_reached(own, lsn):
    return own.psql(own.replica_port, "select pg_last_wal_replay_lsn() >= '%s'::pg_lsn" % lsn,
                    db="postgres") == "t"


@pytest.mark.timeout(90)
def test_lagging_replica_leaves_rotation_by_time(pooler, own):
    """recovery_min_apply_delay = 3s, max_replica_lag = 1s: after a write on the primary,
    reads leave the replica while it lags and come back after it has replayed the write."""
    settle(own)
    p = pooler(on_cluster=own, auth_type="trust", node_overrides=PRIMARY_NO_READS,
               extra_pooler=dict(HEALTH, max_replica_lag="1s", read_your_writes="off"))
    wait_replica_reads(p, own)
    own.set_replica_conf({"recovery_min_apply_delay": "'3s'"})
    try:
        time.sleep(0.5)                     # the reload has taken effect
        with Sampler(p, pause=0.05) as s:
            time.sleep(0.5)
            t0 = time.monotonic()
            own.psql(own.primary_port, "insert into health_t(x) values (2)", user="app")
            lsn = own.psql(own.primary_port, "select pg_current_wal_insert_lsn()", db="postgres")
            wait_for(lambda: _lsn_reached(own, lsn), timeout=15, interval=0.05,
                     what="the replica to replay the write")
            t_replayed = time.monotonic()
            back = s.wait_port(own.replica_port, t_replayed, timeout=8.0)
            time.sleep(0.3)
    finally:
        own.set_replica_conf({"recovery_min_apply_delay": "0"})
    timeline = describe(s.samples, own, t0)
    print("replayed after %.2fs; back on the replica %.2fs later; timeline: %s"
          % (t_replayed - t0, (back - t_replayed) if back else -1, timeline))
    assert t_replayed - t0 >= 2.5, "test setup: the apply delay did not hold the write back"
    errors = [x for x in s.samples if x[3] is not None]
    assert not errors, errors[:5]
    lagging = s.between(t0 + 1.0 + 3 * INTERVAL, t_replayed - 0.1)
    assert len(lagging) >= 5, timeline
    assert all(x[2] == own.primary_port for x in lagging), (
        "reads reached the replica while it lagged more than max_replica_lag: %s\n%s"
        % (timeline, p.log_tail(30)))
    assert back is not None and back - t_replayed <= 3.0, (
        "reads did not return to the replica within 3 s after it caught up: %s\n%s"
        % (timeline, p.log_tail(30)))


@pytest.mark.timeout(90)
def test_lagging_replica_leaves_rotation_by_bytes(pooler, own):
    """Replay paused, max_replica_lag_bytes = 64kB: a 300 kB write makes reads leave the
    replica; they return once replay resumes and catches up."""
    settle(own)
    p = pooler(on_cluster=own, auth_type="trust", node_overrides=PRIMARY_NO_READS,
               extra_pooler=dict(HEALTH, max_replica_lag="1h", max_replica_lag_bytes=65536,
                                 read_your_writes="off"))
    wait_replica_reads(p, own)
    own.psql(own.replica_port, "select pg_wal_replay_pause()", db="postgres")
    try:
        with Sampler(p, pause=0.05) as s:
            time.sleep(0.5)
            t0 = time.monotonic()
            own.psql(own.primary_port, "insert into health_t select g, repeat('x', 100)"
                     " from generate_series(1, 2000) g", user="app")
            time.sleep(2.0)
            t_resume = time.monotonic()
            own.psql(own.replica_port, "select pg_wal_replay_resume()", db="postgres")
            back = s.wait_port(own.replica_port, t_resume, timeout=8.0)
            time.sleep(0.3)
    finally:
        own.psql(own.replica_port, "select pg_wal_replay_resume()", db="postgres", check=False)
    timeline = describe(s.samples, own, t0)
    print("back on the replica %.2fs after replay resumed; timeline: %s"
          % ((back - t_resume) if back else -1, timeline))
    errors = [x for x in s.samples if x[3] is not None]
    assert not errors, errors[:5]
    lagging = s.between(t0 + 4 * INTERVAL, t_resume)
    assert len(lagging) >= 5, timeline
    assert all(x[2] == own.primary_port for x in lagging), (
        "reads reached the replica while it was more than max_replica_lag_bytes behind: %s\n%s"
        % (timeline, p.log_tail(30)))
    assert back is not None and back - t_resume <= 3.0, (
        "reads did not return to the replica within 3 s after replay resumed: %s\n%s"
        % (timeline, p.log_tail(30)))


# ---- read-your-writes (session cluster) -----------------------------------------------

@pytest.fixture
def ryw_table(cluster):
    cluster.psql(cluster.primary_port, "drop table if exists ryw_t;"
                 " create table ryw_t(id int primary key, who text)", user="app")
    cluster.wait_replay()
    return "ryw_t"


@pytest.mark.timeout(90)
def test_read_your_writes_lsn_200_of_200(pooler, cluster, ryw_table):
    """A client that inserts a row and at once selects it sees it every time (simple and
    extended protocol alternately), while another client's reads still reach the replica;
    once the replica has replayed, the writer's reads go back to it too."""
    # read_your_writes = lsn is the default
    p = pooler(node_overrides=PRIMARY_NO_READS, extra_pooler=dict(HEALTH))
    wait_replica_reads_psycopg(p, cluster)
    seen, other = 0, []
    misses = []
    with p.connect(prepare_threshold=None) as a, p.connect(prepare_threshold=None) as b:
        for i in range(200):
            if i % 2:
                a.execute("insert into ryw_t values (%s, 'a')", (i,))
                got = a.execute("select count(*) from ryw_t where id = %s", (i,)).fetchone()[0]
            else:
                a.execute("insert into ryw_t values (%d, 'a')" % i)
                got = a.execute("select count(*) from ryw_t where id = %d" % i).fetchone()[0]
            if got == 1:
                seen += 1
            else:
                misses.append(i)
            if i % 5 == 0:
                other.append(b.execute("select inet_server_port()").fetchone()[0])
        on_replica = sum(1 for x in other if x == cluster.replica_port)
        print("writer saw %d/200 of its rows; other client: %d/%d reads on the replica"
              % (seen, on_replica, len(other)))
        assert seen == 200, "the writer did not see its own row in %d cases: %s" % (
            200 - seen, misses[:20])
        assert on_replica >= 0.9 * len(other), other
        wait_for(lambda: a.execute("select inet_server_port()").fetchone()[0]
                 == cluster.replica_port, timeout=5, interval=0.1,
                 what="the writer's reads to return to the replica once it caught up")


def wait_replica_reads_psycopg(p, cl, timeout=15.0):
    def ok():
        with p.connect(prepare_threshold=None) as conn:
            return conn.execute("select inet_server_port()").fetchone()[0] == cl.replica_port
    wait_for(ok, timeout=timeout, interval=0.1, what="reads to reach the replica")


def test_read_your_writes_window(pooler, cluster, ryw_table):
    """read_your_writes = window: reads stay on the primary for the window after a write."""
    p = pooler(node_overrides=PRIMARY_NO_READS, extra_pooler=dict(HEALTH, read_your_writes="window",
                                 read_your_writes_window="1500ms"))
    wait_replica_reads_psycopg(p, cluster)
    with p.connect(prepare_threshold=None) as a:
        assert a.execute("select inet_server_port()").fetchone()[0] == cluster.replica_port
        t0 = time.monotonic()
        a.execute("insert into ryw_t values (1, 'w')")
        early = []
        while time.monotonic() - t0 < 1.2:
            early.append(a.execute("select inet_server_port()").fetchone()[0])
            time.sleep(0.05)
        assert early and all(x == cluster.primary_port for x in early), early
        time.sleep(max(0.0, t0 + 1.5 + 2 * INTERVAL - time.monotonic()))
        wait_for(lambda: a.execute("select inet_server_port()").fetchone()[0]
                 == cluster.replica_port, timeout=3, interval=0.1,
                 what="reads to return to the replica after the window")


def test_read_your_writes_off(pooler, cluster, ryw_table):
    """read_your_writes = off: the writer's next read goes to the replica at once."""
    p = pooler(node_overrides=PRIMARY_NO_READS, extra_pooler=dict(HEALTH, read_your_writes="off"))
    wait_replica_reads_psycopg(p, cluster)
    with p.connect(prepare_threshold=None) as a:
        for i in range(5):
            a.execute("insert into ryw_t values (%s, 'o')", (100 + i,))
            assert a.execute("select inet_server_port()").fetchone()[0] == cluster.replica_port
