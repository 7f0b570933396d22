"""Integration tests for `pooler`, run against real PostgreSQL 15 servers.

How it works
------------
* Session fixture `cluster` (pgcluster.Cluster): once per pytest run, a PostgreSQL 15
  primary and a streaming replica are created under tempfile.mkdtemp() on two free
  loopback ports; both are stopped (pg_ctl stop -m fast) and the directory removed at
  the end.  Role `app` / password `app` owns database `app`; the superuser `postgres`
  is trusted on loopback and is what the tests use to look at the servers directly.
  As root the servers run as the OS user `postgres`.
* Function fixture `pooler` is a factory: `p = pooler(pool_size=5, pool_mode='session',
  auth_type='md5', extra_pooler={...}, extra_database={...})` writes pooler.ini and
  users.txt into the test's tmp_path, starts `build/pooler -c pooler.ini` (env POOLER_BIN
  overrides the binary) on a free port, and waits (10 s) until it accepts TCP
  connections.  `on_cluster=c` serves another pgcluster.Cluster (for destructive tests);
  `node_overrides={"primary": {"role": "auto"}}` changes keys of a [node.NAME] section.
  `p.port`, `p.host`, `p.unix_dir`, `p.dsn(user, password, dbname)`,
  `p.connect(...)` (psycopg), `await p.aconnect(...)` (asyncpg), `p.log()` (its
  stderr so far), `p.proc`.  At teardown each pooler gets SIGTERM (SIGKILL after 5 s)
  and the test errors if the daemon had died, needed SIGKILL, exited by another
  signal or with a non-zero code, or printed sanitizer reports
  (SANITIZER_MARKERS: ASan, LSan, UBSan, TSan, MSan).
* Users in users.txt: app/app (plain), md5user/secret (md5 secret), scramuser/secret
  (SCRAM verifier), admin/admin.  The pooler itself always logs in to PostgreSQL as
  app/app.
* Time limits: every test runs under a SIGALRM deadline (default 60 s, change with
  `@pytest.mark.timeout(seconds)`; tests/integration/pytest.ini registers the marker), and clients use 5 s connect timeouts, so a broken
  daemon fails tests fast instead of hanging the run.

Run:  cd /work/main && /usr/bin/python3 -m pytest -q tests/integration
Env:  POOLER_BIN (daemon binary), POOLER_TEST_BENCH_SECONDS (pgbench -T, default 10),
      PG_BIN (PostgreSQL binaries, default /usr/lib/postgresql/15/bin),
      POOLER_WORKERS (when set and not empty, every ini gets `workers = <value>` in
      [pooler] unless the test sets workers itself through extra_pooler; make tsan-test
      uses it to run the suite with several event loops).
"""

import faulthandler
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import pgcluster  # noqa: E402
from pgwire import md5_secret, scram_verifier  # noqa: E402

REPO_ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
POOLER_BIN = os.environ.get("POOLER_BIN", os.path.join(REPO_ROOT, "build", "pooler"))
POOLER_WORKERS = os.environ.get("POOLER_WORKERS", "").strip()
# extra_pooler for a test that arranges for one client to change server connections: with
# more workers, each keeps its own servers, and two clients on different workers never meet
ONE_WORKER = {"workers": 1}
DEFAULT_TEST_TIMEOUT = 60
CONNECT_TIMEOUT = 5

PASSWORDS = {"app": "app", "md5user": "secret", "scramuser": "secret", "admin": "admin"}

SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                     "ThreadSanitizer", "MemorySanitizer")


# ---- per-test deadline ------------------------------------------------------------

class DeadlineExceeded(Exception):
    pass


def pytest_configure(config):
    config.addinivalue_line("markers", "timeout(seconds): per-test deadline (SIGALRM)")


@pytest.fixture(autouse=True)
def _deadline(request):
    """Abort the test with DeadlineExceeded if it runs past its deadline."""
    marker = request.node.get_closest_marker("timeout")
    seconds = marker.args[0] if marker else DEFAULT_TEST_TIMEOUT
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum, frame):
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        raise DeadlineExceeded("test exceeded its %s s deadline" % seconds)

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# ---- the PostgreSQL cluster ---------------------------------------------------------

@pytest.fixture(scope="session")
def cluster():
    c = pgcluster.Cluster(tempfile.mkdtemp(prefix="pooler-it-"))
    c.start()
    try:
        yield c
    finally:
        c.stop()


# ---- the pooler -------------------------------------------------------------------

def write_users(path):
    lines = [
        '"app" "app"',
        '"md5user" "%s"' % md5_secret("md5user", "secret"),
        '"scramuser" "%s"' % scram_verifier("secret"),
        '"admin" "admin"',
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def _fmt_section(name, items):
    out = ["[%s]" % name]
    for k, v in items.items():
        if v is not None:
            out.append("%s = %s" % (k, v))
    return "\n".join(out) + "\n"


def write_ini(directory, cluster, port, pool_size=10, pool_mode="transaction",
              auth_type="scram-sha-256", log_level="debug", with_replica=True,
              unix_socket_dir=None, extra_pooler=None, extra_database=None, extra_sections=None,
              node_overrides=None):
    """Write pooler.ini + users.txt into `directory`; return the ini path.
    A key whose value is None in the extra_* dicts is left out.  node_overrides maps a
    node name ("primary", "replica1") to keys merged into its [node.NAME] section
    (for example {"primary": {"role": "auto"}}).  With env POOLER_WORKERS set, [pooler]
    gets `workers = <value>` unless extra_pooler names workers (None leaves it out)."""
    write_users(os.path.join(directory, "users.txt"))
    pooler = {
        "listen_addr": "127.0.0.1",
        "listen_port": port,
        "unix_socket_dir": directory if unix_socket_dir is None else unix_socket_dir,
        "auth_type": auth_type,
        "auth_file": "users.txt",
        "admin_users": "admin",
        "metrics_listen": "127.0.0.1:0",
        "log_level": log_level,
    }
    if POOLER_WORKERS:
        pooler["workers"] = POOLER_WORKERS
    pooler.update(extra_pooler or {})
    database = {
        "dbname": "app",
        "nodes": "primary, replica1" if with_replica else "primary",
        "server_user": "app",
        "server_password": "app",
        "pool_mode": pool_mode,
        "pool_size": pool_size,
    }
    database.update(extra_database or {})
    text = _fmt_section("pooler", pooler) + "\n"
    node_overrides = node_overrides or {}
    # A node's pool_size bounds all its pools; tests that size pools by hand get a budget
    # large enough not to interfere, tests of the formula keep auto.
    budget = "auto" if str(pool_size) == "auto" else 50
    primary = {"host": cluster.host, "port": cluster.primary_port, "role": "primary",
               "pool_size": budget}
    primary.update(node_overrides.get("primary", {}))
    text += _fmt_section("node.primary", primary) + "\n"
    if with_replica:
        replica = {"host": cluster.host, "port": cluster.replica_port, "role": "replica",
                   "pool_size": budget}
        replica.update(node_overrides.get("replica1", {}))
        text += _fmt_section("node.replica1", replica) + "\n"
    text += _fmt_section("database.app", database)
    for name, items in (extra_sections or {}).items():
        text += "\n" + _fmt_section(name, items)
    path = os.path.join(directory, "pooler.ini")
    with open(path, "w") as f:
        f.write(text)
    return path


class Pooler:
    """A running pooler daemon (see module docstring)."""

    def __init__(self, directory, ini, port, proc, log_path):
        self.dir = directory
        self.ini = ini
        self.host = "127.0.0.1"
        self.port = port
        self.unix_dir = directory
        self.proc = proc
        self.log_path = log_path
        self.startup_failed = False

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n=60):
        return "\n".join(self.log().splitlines()[-n:])

    def dsn(self, user="app", password=None, dbname="app", host=None, **extra):
        if password is None:
            password = PASSWORDS.get(user, "")
        parts = {"host": host or self.host, "port": self.port, "user": user,
                 "password": password, "dbname": dbname, "connect_timeout": CONNECT_TIMEOUT}
        parts.update(extra)
        return " ".join("%s='%s'" % (k, str(v).replace("\\", "\\\\").replace("'", "\\'"))
                        for k, v in parts.items())

    def connect(self, user="app", password=None, dbname="app", autocommit=True, **kw):
        import psycopg
        return psycopg.connect(self.dsn(user, password, dbname), autocommit=autocommit, **kw)

    async def aconnect(self, user="app", password=None, dbname="app", **kw):
        import asyncpg
        if password is None:
            password = PASSWORDS.get(user, "")
        kw.setdefault("timeout", CONNECT_TIMEOUT)
        kw.setdefault("command_timeout", 30)
        return await asyncpg.connect(host=self.host, port=self.port, user=user,
                                     password=password, database=dbname, ssl=False, **kw)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """SIGTERM, wait 5 s, SIGKILL. Returns a list of problems found (empty if fine)."""
        problems = []
        if self.startup_failed:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
            return problems          # already reported by the failing test
        if self.proc.poll() is not None:
            if not getattr(self, "exit_expected", False):
                problems.append("pooler had already exited during the test (returncode %s)"
                                % self.proc.returncode)
        else:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                problems.append("pooler did not exit within 5 s of SIGTERM (SIGKILLed)")
        rc = self.proc.returncode
        if rc not in (0, -signal.SIGTERM, 128 + signal.SIGTERM, -signal.SIGKILL) or (
                rc == -signal.SIGKILL and not problems):
            try:
                how = "killed by signal %s" % signal.Signals(-rc).name if rc < 0 else "exit code %d" % rc
            except ValueError:
                how = "returncode %d" % rc
            problems.append("pooler ended badly: %s" % how)
        log = self.log()
        for m in SANITIZER_MARKERS:
            if m in log:
                problems.append("sanitizer report in pooler stderr (%r)" % m)
        return problems


@pytest.fixture
def pooler(cluster, tmp_path):
    """Factory: pooler(**ini_overrides) -> running Pooler. All are stopped at teardown."""
    started = []

    def start(pool_size=10, pool_mode="transaction", auth_type="scram-sha-256", on_cluster=None,
              **kw):
        """on_cluster: serve that pgcluster.Cluster instead of the session-wide one."""
        assert os.path.exists(POOLER_BIN), "pooler binary not found: %s" % POOLER_BIN
        d = tmp_path / ("pooler%d" % len(started))
        d.mkdir()
        port = pgcluster.free_port()
        ini = write_ini(str(d), on_cluster or cluster, port, pool_size=pool_size,
                        pool_mode=pool_mode, auth_type=auth_type, **kw)
        log_path = str(d / "pooler.stderr")
        with open(log_path, "wb") as logf:
            proc = subprocess.Popen([POOLER_BIN, "-c", ini], stdin=subprocess.DEVNULL,
                                    stdout=logf, stderr=subprocess.STDOUT, cwd=str(d))
        p = Pooler(str(d), ini, port, proc, log_path)
        started.append(p)
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                p.startup_failed = True
                pytest.fail("pooler exited during startup (rc=%s); stderr:\n%s"
                            % (proc.returncode, p.log_tail()))
            if pgcluster.port_open(port):
                break
            if time.monotonic() > deadline:
                p.startup_failed = True
                pytest.fail("pooler not accepting on port %d after 10 s; stderr:\n%s"
                            % (port, p.log_tail()))
            time.sleep(0.05)
        return p

    yield start
    problems = []
    for p in started:
        for problem in p.stop():
            problems.append("%s\n--- pooler stderr (tail) ---\n%s" % (problem, p.log_tail(80)))
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


# ---- helpers used by several tests ------------------------------------------------

def wait_for(predicate, timeout=5.0, interval=0.05, what="condition"):
    """Poll predicate() until truthy (returns its value) or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %ss waiting for %s (last: %r)" % (timeout, what, last))


def wait_no_app_backends(cluster, timeout=10.0):
    """Wait until no client backend of user app is left on the primary (from earlier tests)."""
    wait_for(lambda: not cluster.app_backends(), timeout=timeout,
             what="leftover app backends to exit")


class BackendSampler:
    """Samples, in a thread, the app client backends on the primary; records the peak."""

    def __init__(self, cluster, interval=0.05):
        self.cluster = cluster
        self.interval = interval
        self.peak = 0
        self.peak_rows = []
        self.samples = 0
        self.errors = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        sql = ("select pid, state, application_name, left(query, 60) from pg_stat_activity"
               " where usename = 'app' and backend_type = 'client backend'"
               " and application_name <> 'pooler health probe'"
               " and pid <> pg_backend_pid()")
        try:
            with self.cluster.connect(db="postgres") as conn:
                while not self._stop.is_set():
                    rows = conn.execute(sql).fetchall()
                    self.samples += 1
                    if len(rows) > self.peak:
                        self.peak, self.peak_rows = len(rows), rows
                    self._stop.wait(self.interval)
        except Exception as e:  # reported by the test through .errors
            self.errors.append(e)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)
