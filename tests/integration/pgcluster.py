"""A throw-away PostgreSQL 15 primary with one streaming replica, on loopback.

Used by the integration tests (see conftest.py) and by the benchmark scripts.
It needs nothing but the standard library, the PostgreSQL 15 server binaries and
psql; psycopg is used when available for quicker queries.

    from pgcluster import Cluster
    c = Cluster(tempfile.mkdtemp())
    c.start()                    # initdb, start primary, pg_basebackup -R, start replica
    c.psql(c.primary_port, "select 1")
    c.wait_replay()              # replica has replayed the primary's current LSN
    c.stop()                     # pg_ctl stop -m fast on both, remove the directory

Layout of the base directory:
    primary/   replica/   data directories
    sock/      unix_socket_directories of both servers
    primary.log  replica.log

Authentication: everything on loopback is trusted (superuser `postgres`), except
the role `app` (password `app`, owner of database `app`) which must use
scram-sha-256 over TCP.  Over the unix socket everything is trusted.

When running as root, the servers run as the unprivileged OS user `postgres`
(PostgreSQL refuses to run as root); otherwise as the current user.
"""

import atexit
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time

# PG_BINDIR is taken as another name for it (pg_config's word for the directory)
PG_BIN = (os.environ.get("PG_BIN") or os.environ.get("PG_BINDIR")
          or "/usr/lib/postgresql/15/bin")
HOST = "127.0.0.1"
SUPERUSER = "postgres"
APP_USER = "app"
APP_PASSWORD = "app"
APP_DB = "app"

SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "300",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "128MB",
    "wal_level": "replica",
    "max_wal_senders": "5",
    "hot_standby": "on",
    "hot_standby_feedback": "on",
    "password_encryption": "'scram-sha-256'",
    "log_line_prefix": "'%m [%p] %u@%d '",
}

HBA = """\
# written by pgcluster.py
local   all          all                    trust
host    replication  all       127.0.0.1/32 trust
host    all          app       127.0.0.1/32 scram-sha-256
host    all          all       127.0.0.1/32 trust
"""


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_open(port, host=HOST, timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _become_subreaper():
    """Adopt orphaned descendants (the postmasters pg_ctl leaves behind), so that we
    can reap them ourselves instead of leaving zombies to an init that may not."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except Exception:
        pass


def _reap(pid, timeout=10):
    """Collect the exit status of postmaster `pid` if it became our child."""
    if pid is None:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done:
            return
        time.sleep(0.05)


def _server_user():
    """(uid, gid, name) of the OS user that runs the servers, or None for 'us'."""
    if os.geteuid() != 0:
        return None
    pw = pwd.getpwnam("postgres")
    return pw.pw_uid, pw.pw_gid, pw.pw_name


def _chown_tree(path, ids):
    if ids is None:
        return
    uid, gid, _ = ids
    os.chown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, gid)


def _client_env(password=None):
    env = dict(os.environ)
    env.setdefault("PGCONNECT_TIMEOUT", "5")
    for k in ("PGSERVICE", "PGSSLMODE", "PGOPTIONS", "PGDATABASE", "PGUSER", "PGHOST", "PGPORT"):
        env.pop(k, None)
    if password is not None:
        env["PGPASSWORD"] = password
    else:
        env.pop("PGPASSWORD", None)
    return env


def default_password(user):
    return APP_PASSWORD if user == APP_USER else None


def psql(port, sql, db=APP_DB, user=SUPERUSER, password=None, host=HOST, timeout=60, check=True):
    """Run `sql` with psql -X -A -t; return stdout stripped (rows '|'-separated)."""
    if password is None:
        password = default_password(user)
    cmd = [os.path.join(PG_BIN, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
           "-h", host, "-p", str(port), "-U", user, "-d", db, "-c", sql]
    r = subprocess.run(cmd, env=_client_env(password), capture_output=True, text=True,
                       timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError("psql failed (rc=%d) on port %s: %s\n%s"
                           % (r.returncode, port, sql, r.stderr))
    return r.stdout.strip()


def connect(port, db=APP_DB, user=SUPERUSER, password=None, host=HOST, autocommit=True, **kw):
    """A psycopg 3 connection straight to a server (5 s connect timeout)."""
    import psycopg
    if password is None:
        password = default_password(user)
    kw.setdefault("connect_timeout", 5)
    return psycopg.connect(host=host, port=port, dbname=db, user=user, password=password,
                           autocommit=autocommit, **kw)


def query(port, sql, params=None, db=APP_DB, user=SUPERUSER, password=None, host=HOST):
    """All rows of `sql` run on a fresh psycopg connection (autocommit)."""
    with connect(port, db=db, user=user, password=password, host=host) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description is not None else []


def scalar(port, sql, params=None, **kw):
    rows = query(port, sql, params, **kw)
    return rows[0][0] if rows else None


class Cluster:
    """A primary and a streaming replica under `base_dir` (which it owns and removes)."""

    def __init__(self, base_dir, primary_port=None, replica_port=None, settings=None):
        self.base = os.path.abspath(base_dir)
        self.host = HOST
        self.primary_port = primary_port or free_port()
        self.replica_port = replica_port or free_port()
        while self.replica_port == self.primary_port:
            self.replica_port = free_port()
        self.primary_dir = os.path.join(self.base, "primary")
        self.replica_dir = os.path.join(self.base, "replica")
        self.socket_dir = os.path.join(self.base, "sock")
        self.settings = dict(SERVER_SETTINGS)
        self.settings.update(settings or {})
        self.ids = _server_user()
        self.started = []          # data dirs that pg_ctl started
        self._atexit = False

    # ---- process helpers -------------------------------------------------
    def _run(self, args, timeout=120, check=True):
        """Run a PostgreSQL binary as the server OS user."""
        kw = {}
        if self.ids is not None:
            uid, gid, name = self.ids
            kw.update(user=uid, group=gid, extra_groups=[])
        env = _client_env()
        env["LC_ALL"] = "C"
        env["LANG"] = "C"
        if self.ids is not None:
            env["HOME"] = self.base
            env["USER"] = env["LOGNAME"] = self.ids[2]
        cmd = [os.path.join(PG_BIN, args[0])] + list(args[1:])
        r = subprocess.run(cmd, cwd=self.base, env=env, capture_output=True, text=True,
                           timeout=timeout, stdin=subprocess.DEVNULL, **kw)
        if check and r.returncode != 0:
            raise RuntimeError("%s failed (rc=%d)\nstdout:\n%s\nstderr:\n%s\n%s"
                               % (" ".join(cmd), r.returncode, r.stdout, r.stderr,
                                  self.log_tail()))
        return r

    def log_tail(self, n=40):
        out = []
        for name in ("primary.log", "replica.log"):
            p = os.path.join(self.base, name)
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    lines = f.readlines()[-n:]
                out.append("--- %s (tail) ---\n%s" % (name, "".join(lines)))
        return "\n".join(out)

    def _pg_ctl_start(self, datadir, logname):
        self._run(["pg_ctl", "-D", datadir, "-l", os.path.join(self.base, logname),
                   "-w", "-t", "60", "start"])
        self.started.append(datadir)

    # ---- lifecycle ---------------------------------------------------------
    def start(self):
        _become_subreaper()
        os.makedirs(self.base, exist_ok=True)
        os.makedirs(self.socket_dir, exist_ok=True)
        _chown_tree(self.base, self.ids)
        if not self._atexit:
            atexit.register(self.stop)
            self._atexit = True
        try:
            self._start_primary()
            self._start_replica()
            self.wait_streaming()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_primary(self):
        self._run(["initdb", "-D", self.primary_dir, "-U", SUPERUSER, "--auth=trust",
                   "--no-sync", "--encoding=UTF8", "--locale=C"], timeout=180)
        conf = dict(self.settings)
        conf["port"] = str(self.primary_port)
        conf["unix_socket_directories"] = "'%s'" % self.socket_dir
        with open(os.path.join(self.primary_dir, "postgresql.conf"), "a") as f:
            f.write("\n# pgcluster.py\n")
            for k, v in conf.items():
                f.write("%s = %s\n" % (k, v))
        with open(os.path.join(self.primary_dir, "pg_hba.conf"), "w") as f:
            f.write(HBA)
        self._pg_ctl_start(self.primary_dir, "primary.log")
        self.wait_ready(self.primary_port)
        psql(self.primary_port, "CREATE ROLE %s LOGIN PASSWORD '%s'" % (APP_USER, APP_PASSWORD),
             db="postgres")
        psql(self.primary_port, "CREATE DATABASE %s OWNER %s" % (APP_DB, APP_USER), db="postgres")

    def _start_replica(self):
        self._run(["pg_basebackup", "-h", HOST, "-p", str(self.primary_port), "-U", SUPERUSER,
                   "-D", self.replica_dir, "-R", "-X", "stream", "-c", "fast",
                   "-C", "-S", "replica1", "--no-sync"], timeout=180)
        with open(os.path.join(self.replica_dir, "postgresql.conf"), "a") as f:
            f.write("\n# pgcluster.py (replica)\nport = %d\n" % self.replica_port)
        self._pg_ctl_start(self.replica_dir, "replica.log")
        self.wait_ready(self.replica_port)

    def wait_ready(self, port, timeout=60):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                psql(port, "select 1", db="postgres", timeout=10)
                return
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                last = e
                time.sleep(0.2)
        raise RuntimeError("server on port %d not ready after %ss: %s\n%s"
                           % (port, timeout, last, self.log_tail()))

    def wait_streaming(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            n = psql(self.primary_port,
                     "select count(*) from pg_stat_replication where state = 'streaming'",
                     db="postgres")
            if n and int(n) >= 1:
                return
            time.sleep(0.2)
        raise RuntimeError("replica not streaming after %ss\n%s" % (timeout, self.log_tail()))

    def wait_replay(self, timeout=30):
        """Wait until the replica has replayed the primary's current WAL position."""
        lsn = psql(self.primary_port, "select pg_current_wal_insert_lsn()", db="postgres")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ok = psql(self.replica_port,
                      "select pg_last_wal_replay_lsn() >= '%s'::pg_lsn" % lsn, db="postgres")
            if ok == "t":
                return lsn
            time.sleep(0.05)
        raise RuntimeError("replica did not replay %s within %ss" % (lsn, timeout))

    def stop(self):
        """Stop both servers (replica first) and remove the base directory. Idempotent."""
        for datadir in reversed(self.started):
            pid = self._postmaster_pid(datadir)
            try:
                self._run(["pg_ctl", "-D", datadir, "-m", "fast", "-w", "-t", "30", "stop"],
                          timeout=60, check=False)
            except Exception:
                pass
            self._kill_leftover(datadir)
            _reap(pid)
        self.started = []
        if os.path.isdir(self.base):
            shutil.rmtree(self.base, ignore_errors=True)

    @staticmethod
    def _postmaster_pid(datadir):
        try:
            with open(os.path.join(datadir, "postmaster.pid")) as f:
                return int(f.readline().strip())
        except (OSError, ValueError):
            return None

    @classmethod
    def _kill_leftover(cls, datadir):
        """If the postmaster we started is still there, SIGKILL it (by its PID)."""
        pid = cls._postmaster_pid(datadir)
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass

    # ---- failures on purpose (tests of health checks and failover) -----------
    def pg_ctl(self, datadir, *args, timeout=90, check=True):
        """Run pg_ctl -D datadir ARGS as the server OS user; returns CompletedProcess."""
        return self._run(["pg_ctl", "-D", datadir] + list(args), timeout=timeout, check=check)

    def stop_server(self, datadir, mode="fast"):
        """Stop one server (pg_ctl stop -m mode -w) and reap its postmaster."""
        pid = self._postmaster_pid(datadir)
        self.pg_ctl(datadir, "-m", mode, "-w", "-t", "60", "stop")
        _reap(pid)

    def start_server(self, datadir):
        """Start a server stopped with stop_server() again (waits until it accepts)."""
        logname = "replica.log" if datadir == self.replica_dir else "primary.log"
        self.pg_ctl(datadir, "-l", os.path.join(self.base, logname), "-w", "-t", "60", "start")
        if datadir not in self.started:
            self.started.append(datadir)
        self.wait_ready(self.replica_port if datadir == self.replica_dir else self.primary_port)

    def promote_replica(self):
        """pg_ctl promote -w on the replica: it leaves recovery and accepts writes."""
        self.pg_ctl(self.replica_dir, "-w", "-t", "60", "promote")

    def set_replica_conf(self, settings):
        """Append settings (name -> value as written in postgresql.conf) to the replica's
        postgresql.conf and reload it; later lines win, so this also undoes earlier ones."""
        with open(os.path.join(self.replica_dir, "postgresql.conf"), "a") as f:
            f.write("\n# pgcluster.py set_replica_conf\n")
            for k, v in settings.items():
                f.write("%s = %s\n" % (k, v))
        self.pg_ctl(self.replica_dir, "reload")

    # ---- convenience -------------------------------------------------------
    def enable_ssl(self, cert_file, key_file):
        """Turn on TLS on the primary with this certificate (copied into its data dir,
        owned by the server user); plain connections keep working."""
        for src, name in ((cert_file, "server.crt"), (key_file, "server.key")):
            dst = os.path.join(self.primary_dir, name)
            shutil.copyfile(src, dst)
            os.chmod(dst, 0o600)
            if self.ids is not None:
                os.chown(dst, self.ids[0], self.ids[1])
        self.psql(self.primary_port, "alter system set ssl_cert_file = 'server.crt'")
        self.psql(self.primary_port, "alter system set ssl_key_file = 'server.key'")
        self.psql(self.primary_port, "alter system set ssl = on")
        self.psql(self.primary_port, "select pg_reload_conf()")

    def disable_ssl(self):
        for key in ("ssl", "ssl_cert_file", "ssl_key_file"):
            self.psql(self.primary_port, "alter system reset %s" % key)
        self.psql(self.primary_port, "select pg_reload_conf()")

    def psql(self, port, sql, **kw):
        return psql(port, sql, **kw)

    def query(self, sql, params=None, port=None, **kw):
        return query(port or self.primary_port, sql, params, **kw)

    def scalar(self, sql, params=None, port=None, **kw):
        return scalar(port or self.primary_port, sql, params, **kw)

    def connect(self, port=None, **kw):
        return connect(port or self.primary_port, **kw)

    def app_backends(self, port=None, user=APP_USER):
        """Rows (pid, state, application_name, query) of client backends of `user`,
        leaving out the pooler's own health-probe connection (one per node, outside
        the pools)."""
        return self.query(
            "select pid, state, application_name, left(query, 80) from pg_stat_activity"
            " where usename = %s and backend_type = 'client backend'"
            " and application_name <> 'pooler health probe'"
            " and pid <> pg_backend_pid()", (user,), port=port, db="postgres")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


if __name__ == "__main__":
    import tempfile
    c = Cluster(tempfile.mkdtemp(prefix="pgcluster-"))
    c.start()
    print("primary", c.primary_port, "replica", c.replica_port, "dir", c.base)
    print(c.wait_replay())
    c.stop()
